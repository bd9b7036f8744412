"""One fixed Report that every renderer test draws."""

from envdoctor.findings import Category, Finding, Report, Score, ScoreLine, Severity
from envdoctor.snapshot import snapshot_from_dict

SNAPSHOT = {
    "schema": "envdoctor.snapshot/1",
    "host": {"os": "linux", "arch": "x86_64", "distro": "Ubuntu 22.04.3 LTS", "glibc": "2.35"},
    "python": {"version": "3.10.12", "implementation": "cpython", "venv": True},
    "nvidia": {"driver": "535.104.05", "cuda_driver": "12.2", "error": None,
               "gpus": [{"index": 0, "name": "Tesla T4", "compute_capability": "7.5", "memory_mib": 15360}]},
    "cuda_toolkit": None,
    "packages": {"torch": {"version": "2.3.1+cu121"}, "flash-attn": {"version": "2.5.8"},
                 "numpy": {"version": "2.0.1"}, "left-pad": {"version": "1.0"}},
    "torch": {"version": "2.3.1+cu121", "cuda": "12.1", "cxx11abi": False, "archs": None},
}


def fixed_report() -> Report:
    findings = (
        Finding("numpy2-abi-numpy1-build", Category.NUMPY, Severity.FAIL,
                "numpy 2.0.1 | torch 2.3.1 was built against NumPy 1.x", ("numpy", "torch"),
                fix='pip install "numpy<2"', sources=("compat-facts-6",)),
        Finding("flash-attn-gpu-arch", Category.GPU_ARCH, Severity.FAIL,
                "flash-attn 2 needs compute capability 8.0+; GPU 0 (Tesla T4) is 7.5", ("flash-attn", "gpu0")),
        Finding("stack-pin", Category.PIN, Severity.WARN, "transformers 4.44.0 is installed; the stack pins 4.43.3",
                ("transformers",), fix="pip install transformers==4.43.3"),
        Finding("extension-build-unknown", Category.ABI, Severity.INFO, "torch C++ ABI", ("torch",), verified=False),
        Finding("driver-minor-version-compat", Category.DRIVER, Severity.WARN,
                "driver 535.104.05 runs CUDA 12.1 wheels", ("driver",)),
    )
    score = Score(40, (ScoreLine("numpy2-abi-numpy1-build", Severity.FAIL, 30),
                       ScoreLine("flash-attn-gpu-arch", Severity.FAIL, 30)), "100 - 30 - 30")
    return Report("phase1a-2.0", "named with --stack", findings, score, snapshot_from_dict(SNAPSHOT))

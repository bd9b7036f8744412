"""Each pattern of matrices/smoke.toml classifies a real error text, quoted from the thread it was written from.

The texts go through the whole check (``run_check`` on a snapshot whose smoke test failed with that text), so the
first pattern that matches wins exactly as it does for a user.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.matrices import load_matrices
from envdoctor.snapshot import snapshot_from_dict

# (expected pattern id, smoke test name, thread the text is quoted from, error text)
CASES = [
    ("smoke-cxx11-abi-flip", "flash-attn", "https://github.com/Dao-AILab/flash-attention/issues/1691",
     "ImportError: /data/user/qxiao183/xqf/miniconda3/envs/quanllm/lib/python3.10/site-packages/flash_attn_2_cuda."
     "cpython-310-x86_64-linux-gnu.so: undefined symbol: _ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_"
     "stringIcSt11char_traitsIcESaIcEEE"),
    ("smoke-torch-cpp-api-mismatch", "flash-attn", "https://github.com/Dao-AILab/flash-attention/issues/931",
     "flash_attn_2_cuda.cpython-310-x86_64-linux-gnu.so: undefined symbol: _ZN3c104cuda9SetDeviceEi"),
    ("smoke-torch-cpp-api-mismatch", "flash-attn", "https://github.com/Dao-AILab/flash-attention/issues/1612",
     "/home/ligy/anaconda3/lib/python3.11/site-packages/flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: undefined "
     "symbol: _ZN2at4_ops5zeros4callEN3c108ArrayRefINS2_6SymIntEEENS2_8optionalINS2_10ScalarTypeEEENS6_INS2_6Layout"
     "EEENS6_INS2_6DeviceEEENS6_IbEE"),
    ("smoke-torch-cpp-api-mismatch", "flash-attn", "https://github.com/microsoft/Magma/issues/60",
     "undefined symbol: _ZNK3c105Error4whatEv"),
    ("smoke-nvjitlink-shadowing", "torch", "https://github.com/pytorch/pytorch/issues/131312",
     "ImportError: /home/dp/anaconda3/envs/ComfyUI/lib/python3.11/site-packages/torch/lib/../../nvidia/cusparse/lib/"
     "libcusparse.so.12: undefined symbol: __nvJitLinkComplete_12_4, version libnvJitLink.so.12"),
    ("smoke-nvjitlink-shadowing", "torch", "https://github.com/infiniflow/ragflow/issues/4466",
     "ImportError: /home/mit/kxyRAG/ragflow/.venv/lib/python3.12/site-packages/torch/lib/../../nvidia/cusparse/lib/"
     "libcusparse.so.12: undefined symbol: __nvJitLinkAddData_12_1, version libnvJitL"),
    ("smoke-nvjitlink-shadowing", "cuvs", "https://github.com/NVIDIA/cuvs/pull/1794",
     "undefined symbol: _nvJitLinkGetErrorLogSize_12_9"),
    ("smoke-numpy2-abi", "pandas", "https://github.com/spyder-ide/spyder/issues/22187",
     "A module that was compiled using NumPy 1.x cannot be run in\nNumPy 2.0.0 as it may crash. To support both 1.x "
     "and 2.x\nversions of NumPy, modules must be compiled with NumPy 2.0.\nSome module may need to rebuild instead "
     "e.g. with 'pybind11>=2.12'."),
    ("smoke-numpy2-abi", "numpy", "https://github.com/agentscope-ai/QwenPaw/issues/437",
     "AttributeError: _ARRAY_API not found"),
    ("smoke-numpy2-abi", "pandas", "https://github.com/ONSdigital/csvcubed/issues/913",
     "ValueError: numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got 88 "
     "from PyObject"),
    ("smoke-numpy-older-than-build", "pinocchio", "https://github.com/stack-of-tasks/pinocchio/issues/1873",
     "RuntimeError: module compiled against API version 0x10 but this version of numpy is 0xe . Check the section "
     "C-API incompatibility at the Troubleshooting ImportError section at "
     "https://numpy.org/devdocs/user/troubleshooting-importerror.html#c-api-incompatibility"),
    ("smoke-numpy-older-than-build", "scikit-image", "https://github.com/scikit-image/scikit-image/issues/5270",
     "ValueError: numpy.ndarray size changed, may indicate binary incompatibility. Expected 88 from C header, got 80 "
     "from PyObject"),
    ("smoke-pyarrow-needs-numpy2", "pyarrow", "compat-facts.md appendix (pyarrow 26.0.1 with numpy 1.26.4)",
     "ImportError: pyarrow requires NumPy 2.0 or newer, found 1.26.4"),
    ("smoke-no-nvidia-driver", "torch", "https://github.com/googlecolab/colabtools/issues/5136",
     "RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a "
     "driver from http://www.nvidia.com/Download/index.aspx"),
    ("smoke-driver-too-old", "torch", "https://github.com/lllyasviel/Fooocus/issues/1313",
     "RuntimeError: The NVIDIA driver on your system is too old (found version 11040). Please update your GPU "
     "driver by downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx"),
    ("smoke-blackwell-needs-cu128", "torch", "https://github.com/FlyMyAI/flymyai-lora-trainer/issues/47",
     "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch installation.\n"
     "The current PyTorch install supports CUDA capabilities sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90."),
    ("smoke-no-kernel-image", "torch", "https://github.com/Janrupf/stable-diffusion-webui-nix/issues/9",
     "RuntimeError: CUDA error: no kernel image is available for execution on the device\n"
     "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be "
     "incorrect."),
    ("smoke-flash-attn-pre-ampere", "flash-attn", "https://github.com/Dao-AILab/flash-attention/issues/762",
     "RuntimeError: FlashAttention only supports Ampere GPUs or newer."),
    ("smoke-cpu-torch", "torch", "https://github.com/facebookresearch/detectron2/issues/460",
     "    raise AssertionError(\"Torch not compiled with CUDA enabled\")\n"
     "AssertionError: Torch not compiled with CUDA enabled"),
    ("smoke-unsupported-ptx", "torch", "https://github.com/divelab/GraphBP/issues/2",
     "RuntimeError: CUDA error: the provided PTX was compiled with an unsupported toolchain."),
    ("smoke-torchvision-ops", "torchvision", "https://github.com/fudan-generative-vision/hallo/issues/98",
     "    if torch._C._dispatch_has_kernel_for_dispatch_key(self.qualname, \"Meta\"):\n"
     "RuntimeError: operator torchvision::nms does not exist"),
    ("smoke-torchvision-ops", "torchvision", "https://github.com/ZQPei/deep_sort_pytorch/issues/189",
     "RuntimeError: No such operator torchvision::nms"),
    ("smoke-xformers-cpu-torch", "xformers", "https://github.com/facebookresearch/xformers/issues/982",
     "WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:\n"
     "    PyTorch 2.2.0+cu121 with CUDA 1201 (you have 2.2.0+cpu)\n    Python  3.11.7 (you have 3.11.0)"),
    ("smoke-xformers-built-for", "xformers", "https://github.com/invoke-ai/InvokeAI/issues/6590",
     "WARNING:xformers:WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:\n"
     "    PyTorch 2.1.2+cu121 with CUDA 1201 (you have 2.0.1+cu118)\n    Python  3.10.11 (you have 3.10.11)"),
    ("smoke-bitsandbytes-native", "bitsandbytes", "https://github.com/SAI990323/TALLRec/issues/27",
     "UserWarning: The installed version of bitsandbytes was compiled without GPU support. 8-bit optimizers, 8-bit "
     "multiplication, and GPU quantization are unavailable."),
    ("smoke-cuda-home-missing", "deepspeed", "https://github.com/thinhlpg/vixtts-demo/issues/12",
     "deepspeed.ops.op_builder.builder.MissingCUDAException: CUDA_HOME does not exist, unable to compile CUDA op(s)"),
    ("smoke-cuda-home-missing", "deep-ep", "https://github.com/ROCm/DeepEP/issues/1",
     "OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root."),
    ("smoke-toolkit-torch-cuda-mismatch", "groundingdino", "https://github.com/IDEA-Research/GroundingDINO/issues/114",
     "RuntimeError:\n    The detected CUDA version (12.1) mismatches the version that was used to compile\n"
     "    PyTorch (11.7). Please make sure to use the same CUDA versions."),
    ("smoke-cuda-library-missing", "tsnecuda", "https://github.com/CannyLab/tsne-cuda/issues/126",
     "ImportError: libcudart.so.11.0: cannot open shared object file: No such file or directory"),
    ("smoke-glibc-too-old", "torch", "https://github.com/kakaobrain/pororo/issues/66",
     "ImportError: /lib/aarch64-linux-gnu/libc.so.6: version `GLIBC_2.28' not found (required by "
     "/home/ss/miniforge3/envs/PORORO/lib/python3.6/site-packages/torch/lib/libtorch_python.so)"),
    ("smoke-glibcxx-too-old", "torch", "https://github.com/ai4d-iasc/trixie/issues/97",
     "/gpfs/home/xxx/anaconda3/envs/xxx/bin/../lib/libstdc++.so.6: version `GLIBCXX_3.4.29' not found"),
    ("smoke-missing-module", "flash-attn", "anchors-envdoctor.md (d) 7",
     "ModuleNotFoundError: No module named 'torch'"),
]


def _smoke_finding(name: str, error: str, tmp_path: Path):
    snap = snapshot_from_dict({
        "host": {"os": "linux"},
        "packages": {name: {"version": None}},
        "smoke": {name: {"ok": False, "error": error}},
    })
    report = run_check(snap, stack=None, cwd=tmp_path)
    (finding,) = [f for f in report.findings if f.rule.startswith("smoke-") and f.components == (name,)]
    return finding


@pytest.mark.parametrize(("expected", "name", "thread", "error"), CASES,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)])
def test_real_error_text_is_classified(expected: str, name: str, thread: str, error: str, tmp_path: Path) -> None:
    finding = _smoke_finding(name, error, tmp_path)
    assert finding.rule == expected, (thread, finding.rule)
    pattern = {p.id: p for p in load_matrices().smoke}[expected]
    assert finding.category == pattern.category and finding.fix == pattern.fix


def test_every_pattern_has_a_real_text() -> None:
    assert {p.id for p in load_matrices().smoke} == {case[0] for case in CASES}


def test_every_pattern_cites_known_sources() -> None:
    matrices = load_matrices()
    for pattern in matrices.smoke:
        assert pattern.sources, pattern.id
        assert set(pattern.sources) <= set(matrices.sources), pattern.id


def test_unknown_error_text_is_said_as_it_is(tmp_path: Path) -> None:
    finding = _smoke_finding("torch", "Segmentation fault (core dumped)", tmp_path)
    assert finding.rule == "smoke-failed" and "Segmentation fault" in finding.message


def test_fixes_are_commands_without_placeholders() -> None:
    placeholder = re.compile(r"<(the|cu|[a-z ]+>)|cuXYZ|\.\.\.")  # as tests/rules/test_fixes.py
    assert [p.id for p in load_matrices().smoke if placeholder.search(p.fix)] == []

"""``--deep``: import each installed compiled extension in its own subprocess, with a timeout.

Metadata cannot see an ABI break or a missing CUDA library; an import can. Each smoke test
runs in a fresh interpreter so one crash (or segfault, or hang) cannot take the probe down.
Results are keyed by the distribution's normalized name. Classifying the error text is the
checker's job; this module only records ``SmokeResult(ok, error)`` with the last error lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace

from envdoctor.probe._background import BackgroundCall
from envdoctor.snapshot import SmokeResult, TorchBuild

SMOKE_TIMEOUT_S = 60.0  # a cold torch import with CUDA libraries can take tens of seconds
TORCH_FACTS_MARKER = "ENVDOCTOR_TORCH_FACTS="
_TORCH_CODE = f"""
import json, torch
facts = {{"cuda_available": torch.cuda.is_available(), "archs": list(torch.cuda.get_arch_list()),
         "cxx11abi": bool(torch.compiled_with_cxx11_abi())}}
print({TORCH_FACTS_MARKER!r} + json.dumps(facts))
"""


@dataclass(frozen=True)
class SmokeTest:
    name: str  # normalized distribution name; the test runs only when it is installed
    code: str


SMOKE_TESTS: tuple[SmokeTest, ...] = (
    SmokeTest("torch", _TORCH_CODE),
    SmokeTest("flash-attn", "import torch, flash_attn_2_cuda, flash_attn"),
    SmokeTest("xformers", "import torch, xformers, xformers.ops"),
    SmokeTest("bitsandbytes", "import bitsandbytes"),
    SmokeTest("torchvision", "import torch, torchvision; torch.ops.torchvision.nms"),
    SmokeTest("torchaudio", "import torchaudio"),
    SmokeTest("numpy", "import numpy"),
    SmokeTest("pyarrow", "import pyarrow, pyarrow.lib"),
    SmokeTest("datasets", "import datasets"),
    # Compiled against NumPy's C API, so the first to break when NumPy moves between 1.x and 2.x.
    SmokeTest("pandas", "import pandas"),
    SmokeTest("scipy", "import scipy, scipy.linalg, scipy.sparse"),
    SmokeTest("scikit-learn", "import sklearn, sklearn.linear_model"),
    SmokeTest("matplotlib", "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot"),
)


@dataclass(frozen=True)
class DeepResult:
    smoke: dict[str, SmokeResult]
    torch_archs: tuple[str, ...] | None = None
    torch_cxx11abi: bool | None = None


def run_smoke_tests(installed: set[str], timeout: float, tests: tuple[SmokeTest, ...] = SMOKE_TESTS) -> DeepResult:
    """Run every smoke test whose distribution is in ``installed``, in parallel subprocesses."""
    chosen = [test for test in tests if test.name in installed]
    calls = [(test.name, _start(test, timeout)) for test in chosen]
    outcomes = {name: call.result(timeout + 5, lambda: (False, f"no answer within {timeout:g} s", ""))
                for name, call in calls}
    smoke = {name: SmokeResult(ok=ok, error=error) for name, (ok, error, _) in outcomes.items()}
    facts = _torch_facts(outcomes["torch"][2]) if "torch" in outcomes else {}
    archs = facts.get("archs")
    return DeepResult(
        smoke=smoke,
        torch_archs=tuple(archs) if isinstance(archs, list) and archs else None,
        torch_cxx11abi=facts.get("cxx11abi") if isinstance(facts.get("cxx11abi"), bool) else None,
    )


def merge_torch_facts(torch: TorchBuild | None, deep: DeepResult) -> TorchBuild | None:
    """Fill the torch facts the file probe could not read from what the deep import saw."""
    if torch is None:
        return None
    return replace(
        torch,
        archs=torch.archs if torch.archs is not None else deep.torch_archs,
        cxx11abi=torch.cxx11abi if torch.cxx11abi is not None else deep.torch_cxx11abi,
    )


def _start(test: SmokeTest, timeout: float) -> BackgroundCall[tuple[bool, str | None, str]]:
    return BackgroundCall(lambda: _run_one(test.code, timeout), f"smoke-{test.name}")


def _run_one(code: str, timeout: float) -> tuple[bool, str | None, str]:
    """(ok, last error lines, stdout) of ``python -c code``; a hang or crash is a failure, not an exception."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"import did not finish within {timeout:g} s", ""
    except OSError as exc:
        return False, f"could not start {sys.executable}: {exc}", ""
    if done.returncode == 0:
        return True, None, done.stdout
    return False, last_error_lines(done.stderr, done.returncode), done.stdout


def last_error_lines(stderr: str, returncode: int, count: int = 2) -> str:
    """The last exception lines of stderr (traceback frames skipped), or how the process died."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    messages = [line for line in lines if not line[0].isspace() and not line.startswith("Traceback (")]
    chosen = (messages or lines)[-count:]
    if chosen:
        return "\n".join(line.strip() for line in chosen)
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exited with status {returncode} and no message"


def _torch_facts(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith(TORCH_FACTS_MARKER):
            try:
                facts = json.loads(line[len(TORCH_FACTS_MARKER):])
            except ValueError:
                return {}
            return facts if isinstance(facts, dict) else {}
    return {}

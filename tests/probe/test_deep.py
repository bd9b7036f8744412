from envdoctor.probe.deep import DeepResult, SmokeTest, last_error_lines, merge_torch_facts, run_smoke_tests
from envdoctor.snapshot import SmokeResult, TorchBuild

ABI_ERROR = (
    "raise ImportError('/site-packages/flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: undefined symbol: "
    "_ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE')"
)


def test_failing_import_records_last_error_line():
    tests = (SmokeTest("flash-attn", ABI_ERROR), SmokeTest("numpy", "import json"), SmokeTest("absent", "1/0"))
    result = run_smoke_tests({"flash-attn", "numpy"}, timeout=30, tests=tests)
    assert set(result.smoke) == {"flash-attn", "numpy"}  # only installed distributions are tested
    assert result.smoke["numpy"] == SmokeResult(ok=True)
    assert not result.smoke["flash-attn"].ok
    assert result.smoke["flash-attn"].error.startswith("ImportError: /site-packages/flash_attn_2_cuda")
    assert "undefined symbol" in result.smoke["flash-attn"].error


def test_hanging_import_times_out():
    result = run_smoke_tests({"slow"}, timeout=1, tests=(SmokeTest("slow", "import time; time.sleep(30)"),))
    assert result.smoke["slow"] == SmokeResult(ok=False, error="import did not finish within 1 s")


def test_crash_without_message():
    result = run_smoke_tests({"crash"}, timeout=30, tests=(SmokeTest("crash", "import os; os.abort()"),))
    assert result.smoke["crash"] == SmokeResult(ok=False, error="killed by signal 6")


def test_torch_facts_from_the_torch_smoke():
    code = "print('ENVDOCTOR_TORCH_FACTS={\"archs\": [\"sm_80\", \"sm_90\"], \"cxx11abi\": false}')"
    result = run_smoke_tests({"torch"}, timeout=30, tests=(SmokeTest("torch", code),))
    assert result.torch_archs == ("sm_80", "sm_90")
    assert result.torch_cxx11abi is False
    merged = merge_torch_facts(TorchBuild(version="2.3.1+cu121", cxx11abi=True), result)
    assert merged == TorchBuild(version="2.3.1+cu121", cxx11abi=True, archs=("sm_80", "sm_90"))
    assert merge_torch_facts(None, DeepResult(smoke={})) is None


def test_last_error_lines():
    assert last_error_lines("Traceback (most recent call last):\n  File x\nValueError: bad\n\n", 1) == "ValueError: bad"
    stderr = "warning: a\nTraceback (most recent call last):\n  File x\nOSError: b\n"
    assert last_error_lines(stderr, 1) == "warning: a\nOSError: b"
    assert last_error_lines("", 3) == "exited with status 3 and no message"

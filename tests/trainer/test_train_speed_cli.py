"""benchmarks/train_speed.py runs end to end (--tiny: same code, tiny Llama on CPU) and reports every set-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "train_speed.py"

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


def run_benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, check=False)


@pytest.mark.slow
def test_tiny_run_reports_all_setups(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    done = run_benchmark("--tiny", "--steps", "2", "--warmup", "1", "--pool", "800", "--json-out", str(out),
                         "--setups", "packed-sdpa,packed-flex,trainer,packed-eager+fce+ckpt+flora+2rows+dropout",
                         "--profile", "trainer", "--profile-steps", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    results = report["results"]
    assert [(r["shape"], r["setup"]) for r in results] == [
        (shape, name) for shape in ("var", "fixed")
        for name in ("baseline", "packed-sdpa", "packed-flex", "trainer",
                     "packed-eager+fce+ckpt+flora+2rows+dropout")
    ]
    for row in results:
        if row["setup"] == "packed-flex":
            assert row["status"].startswith("skipped")  # CPU: FlexAttention runs only on CUDA
            continue
        assert row["status"] == "ok", row
        assert row["samples_per_hour"] > 0 and row["mfu"] > 0 and row["useful_tokens_per_s"] > 0
        if row["setup"] == "baseline":
            assert row["ratio_to_baseline"] == 1.0 and row["isolation_max_diff"] is None
        else:
            assert row["isolation_max_diff"] == 0.0 and row["fill"] > 0.9
    last_line = done.stdout.rstrip().splitlines()[-1]
    assert last_line.startswith("fixed packed-eager+fce+ckpt+flora+2rows+dropout")  # the table comes last
    assert [(p["shape"], p["setup"], p["status"]) for p in report["profiles"]] == [
        ("var", "trainer", "ok"), ("fixed", "trainer", "ok")]
    for profile in report["profiles"]:
        parts = profile["ms_per_step"]
        assert parts["matmul (LoRA)"] > 0 and parts["matmul (base + lm head)"] > 0 and parts["attention"] > 0
        assert sum(parts.values()) == pytest.approx(profile["wall_ms_per_step"])  # idle is the remainder


def test_unknown_setup_is_one_line_error() -> None:
    done = run_benchmark("--tiny", "--setups", "packed-sdpa+turbo")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "train_speed: --setups: unknown option 'turbo' in 'packed-sdpa+turbo'; options: fce, compile, ckpt, flora, "
        "2rows, 4rows, hfmask, eagerce, autotune, cudagraphs, dropout, rng, kdrop, budget<0..1>")


def test_compile_options_reach_the_setup() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    from train_speed import parse_setup

    setup = parse_setup("trainer+compile+4rows+budget0.6+autotune")
    assert (setup.rows_per_batch, setup.memory_budget, setup.compile_mode) == (4, 0.6, "max-autotune-no-cudagraphs")
    assert parse_setup("trainer+compile+cudagraphs").compile_mode == "reduce-overhead"
    assert parse_setup("trainer+compile+dropout+rng").recompute_rng and not parse_setup("trainer+compile").recompute_rng
    with pytest.raises(ValueError, match=r"option 'budget2' in 'trainer\+budget2': write the activation memory "
                                         r"budget as a number in \(0, 1\], e.g. budget0.6"):
        parse_setup("trainer+budget2")


def test_dropout_option_gives_the_lora_modules_the_seeds_dropout_and_takes_it_back() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    from train_speed import build_lora_model, configure, parse_setup, scale_for

    model = build_lora_model(scale_for(tiny=True))

    def dropouts() -> set[float]:
        return {getattr(module.lora_dropout["default"], "p", 0.0) for module in model.modules()
                if hasattr(module, "lora_dropout") and isinstance(module.lora_dropout, torch.nn.ModuleDict)}

    configure(model, parse_setup("trainer+dropout"))
    assert dropouts() == {0.05}
    configure(model, parse_setup("trainer"))
    assert dropouts() == {0.0}

"""Defaults that make a first run fast: `--packing auto` (the one reader of --packing) and a persistent compile cache.

Nothing here imports transformers or torch: `packing_decision` runs before the backend is chosen (Unsloth must be
imported before transformers), `use_compile_cache` before anything compiles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

PACKING_CHOICES = ("auto", "on", "off")
MIN_TRANSFORMERS_MAJOR = 5  # builds the per-sample mask from restarting position_ids (trainer.packing)
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
CACHE_SUBDIR = Path("envdoctor-trainer") / "inductor"


@dataclass(frozen=True)
class PackingDecision:
    on: bool
    reason: str

    def describe(self) -> str:
        return f"packing {'on' if self.on else 'off'}: {self.reason}"


def packing_request(value: Any) -> str:
    """--packing as auto|on|off (True/False, from YAML or code, mean on/off). Raises ValueError otherwise."""
    if value is True or value is False:
        return "on" if value else "off"
    if value in PACKING_CHOICES:
        return value
    raise ValueError(f"--packing {value!r}: use auto, on or off (or --packing / --no-packing)")


def packing_problem(config: Any) -> str | None:
    """Why --packing cannot be read (None when it can): the flag checks report it with the others."""
    try:
        packing_request(config.packing)
    except ValueError as error:
        return str(error)
    return None


def transformers_major() -> int | None:
    try:
        return int(metadata.version("transformers").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


def packing_decision(config: Any, transformers_version_major: int | None = -1) -> PackingDecision:
    """Whether this run packs samples into rows. auto: on where the trainer's packed attention keeps samples
    isolated (tests/trainer/test_packing.py: a sample's logits do not change with its neighbours), which needs the
    default backend (Unsloth's loader is not the packed path), transformers >= 5 (the per-sample mask from
    restarting position_ids) and a model whose code ships with transformers (remote code may build its own mask)."""
    request = packing_request(config.packing)
    if request != "auto":
        return PackingDecision(request == "on", f"--packing {request}")
    major = transformers_major() if transformers_version_major == -1 else transformers_version_major
    if config.backend == "unsloth":
        return PackingDecision(False, "--packing auto: --backend unsloth trains padded batches")
    if major is None or major < MIN_TRANSFORMERS_MAJOR:
        found = "not installed" if major is None else f"{major}.x"
        return PackingDecision(False, f"--packing auto: transformers {found} does not build per-sample masks from "
                                      f"restarting position_ids (needs >= {MIN_TRANSFORMERS_MAJOR})")
    if config.trust_remote_code:
        return PackingDecision(False, "--packing auto: the model runs its own code (--trust_remote_code), whose "
                                      "attention mask may let packed samples see each other; pass --packing on "
                                      "after checking it")
    return PackingDecision(True, "--packing auto: samples are packed into rows of --max_seq_length tokens, each "
                                 "attending only to itself (per-sample mask, tested); --packing off keeps padded "
                                 "batches")


def default_cache_dir(environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / CACHE_SUBDIR


@dataclass(frozen=True)
class CompileCache:
    path: Path
    from_environment: bool
    had_entries: bool

    def describe(self) -> str:
        where = f"{self.path} ({CACHE_ENV})" if self.from_environment else str(self.path)
        state = ("holds earlier runs' compiled graphs and tuning results: they are reused" if self.had_entries
                 else "empty: this run's compilation and kernel tuning are kept there for the next runs")
        return f"compile cache {where}: Inductor's FX graph, AOTAutograd, autotune and Triton caches; {state}"


def use_compile_cache(environ: dict[str, str] | None = None) -> CompileCache:
    """Points Inductor's caches at a persistent folder (the user cache unless TORCHINDUCTOR_CACHE_DIR is set) and
    turns its FX graph, AOTAutograd and autotune caches on, so compilation and tuning are paid once per machine.
    Must run before the first compilation (Inductor reads these when it compiles)."""
    environ = os.environ if environ is None else environ
    given = environ.get(CACHE_ENV)
    if given and given == inductor_default_dir():
        given = None  # Inductor wrote its own temporary default there when transformers imported it
    path = Path(given) if given else default_cache_dir(environ)
    path.mkdir(parents=True, exist_ok=True)
    environ[CACHE_ENV] = str(path)
    for name in ("TORCHINDUCTOR_FX_GRAPH_CACHE", "TORCHINDUCTOR_AUTOGRAD_CACHE"):
        environ.setdefault(name, "1")
    return CompileCache(path, bool(given), any(path.iterdir()))


def inductor_default_dir() -> str | None:
    """Inductor's own default (a folder under the system's temporary directory), or None without torch."""
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir as inductor_default
    except ImportError:
        return None
    return inductor_default()


def enable_inductor_caches() -> None:
    """The same switches on torch's config objects, in case torch read the environment before use_compile_cache."""
    import torch._inductor.config as inductor

    inductor.fx_graph_cache = True
    inductor.autotune_local_cache = True

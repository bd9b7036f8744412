"""The process-environment checks: CUDA_VISIBLE_DEVICES, LD_LIBRARY_PATH, GPU memory in use, HF_HUB_OFFLINE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.environment import visible_indices
from envdoctor.probe.environment import probe_environment
from envdoctor.snapshot import Environment

from .synth import H100, snapshot

CUDA_TORCH = {"torch": "2.8.0+cu128", "nvidia-nvjitlink-cu12": "12.8.93", "nvidia-cuda-runtime-cu12": "12.8.90"}


def _findings(snap, tmp_path: Path, **kw) -> dict:
    report = run_check(snap, stack="lora-cu128-2026.11", cwd=tmp_path, **kw)
    return {f.rule: f for f in report.findings}


def _two_gpus(gpu_fields: dict[int, dict] | None = None) -> dict:
    return {"driver": "580.159.04", "cuda_driver": "13.0",
            "gpus": [dict(H100, index=i, **(gpu_fields or {}).get(i, {})) for i in range(2)]}


@pytest.mark.parametrize(("value", "count", "visible"), [
    ("", 2, ()), ("-1", 2, ()), ("2", 2, ()), ("none", 2, ()), ("0", 2, (0,)), ("1,0", 2, (1, 0)),
    ("0,5,1", 2, (0,)), ("0,0", 2, (0,)), (" 1 ", 2, (1,)),
    ("GPU-8f1c2d3e", 2, None), ("0", None, None), ("", None, ()), ("-1", None, ()),
])
def test_visible_indices_follow_cudas_rule(value, count, visible) -> None:
    assert visible_indices(value, count) == visible


@pytest.mark.parametrize("value", ["", "-1", "2", "7,0"])
def test_cuda_visible_devices_hiding_every_gpu_fails(tmp_path: Path, value: str) -> None:
    snap = snapshot(CUDA_TORCH, nvidia=_two_gpus(), torch={"cuda": "12.8"}, env={"cuda_visible_devices": value})
    finding = _findings(snap, tmp_path)["cuda-visible-devices-hides-all"]
    assert (finding.severity.value, finding.category.value) == ("fail", "driver")
    assert finding.fix.startswith("unset CUDA_VISIBLE_DEVICES") and "CUDA_VISIBLE_DEVICES=0,1" in finding.fix
    assert run_check(snap, stack="lora-cu128-2026.11", cwd=tmp_path).exit_code == 1


@pytest.mark.parametrize("env", [{"cuda_visible_devices": "1"}, {"cuda_visible_devices": "GPU-8f1c2d3e"}, {}, None])
def test_cuda_visible_devices_showing_a_gpu_passes(tmp_path: Path, env) -> None:
    sections = {"env": env} if env is not None else {}
    snap = snapshot(CUDA_TORCH, nvidia=_two_gpus(), torch={"cuda": "12.8"}, **sections)
    assert "cuda-visible-devices-hides-all" not in _findings(snap, tmp_path)


def test_ld_library_path_with_cuda_libraries_ahead_of_the_wheels_warns(tmp_path: Path) -> None:
    toolkit = tmp_path / "cuda-12.1" / "lib64"
    toolkit.mkdir(parents=True)
    (toolkit / "libnvJitLink.so.12").write_bytes(b"")
    plain = tmp_path / "mylibs"
    plain.mkdir()
    env = probe_environment({"LD_LIBRARY_PATH": f"{toolkit}:{plain}"})
    assert env.cuda_library_dirs == (str(toolkit),)
    snap = snapshot(CUDA_TORCH, torch={"cuda": "12.8"}, env=json.loads(json.dumps(env.__dict__)))
    finding = _findings(snap, tmp_path)["ld-library-path-shadows-cuda-wheels"]
    assert (finding.severity.value, finding.category.value, finding.verified) == ("warn", "cuda-build", True)
    assert finding.fix == f"export LD_LIBRARY_PATH={plain}   # drops the CUDA library directories"
    assert finding.sources


def test_ld_library_path_judged_by_name_when_the_snapshot_does_not_list_it(tmp_path: Path) -> None:
    snap = snapshot(CUDA_TORCH, torch={"cuda": "12.8"}, env={"ld_library_path": ["/usr/local/cuda-12.1/lib64"]})
    finding = _findings(snap, tmp_path)["ld-library-path-shadows-cuda-wheels"]
    assert finding.verified is False and finding.fix == "unset LD_LIBRARY_PATH"


@pytest.mark.parametrize(("packages", "torch", "env"), [
    (CUDA_TORCH, {"cuda": "12.8"}, {"ld_library_path": ["/opt/mylibs"], "cuda_library_dirs": []}),
    (CUDA_TORCH, {"cuda": "12.8"}, {"ld_library_path": ["/v/lib/python3.11/site-packages/nvidia/nvjitlink/lib"],
                                    "cuda_library_dirs": ["/v/lib/python3.11/site-packages/nvidia/nvjitlink/lib"]}),
    ({"torch": "2.8.0+cpu"}, {"cuda": None}, {"ld_library_path": ["/usr/local/cuda/lib64"],
                                              "cuda_library_dirs": ["/usr/local/cuda/lib64"]}),
    (CUDA_TORCH, {"cuda": "12.8"}, {}),
])
def test_ld_library_path_without_shadowing_passes(tmp_path: Path, packages, torch, env) -> None:
    snap = snapshot(packages, torch=torch, env=env)
    assert "ld-library-path-shadows-cuda-wheels" not in _findings(snap, tmp_path)


def test_gpu_mostly_in_use_warns_and_names_a_free_one(tmp_path: Path) -> None:
    busy = {0: {"memory_used_mib": 70000, "processes": 2}, 1: {"memory_used_mib": 500, "processes": 0}}
    snap = snapshot(CUDA_TORCH, nvidia=_two_gpus(busy), torch={"cuda": "12.8"})
    finding = _findings(snap, tmp_path)["gpu-memory-in-use"]
    assert (finding.severity.value, finding.category.value) == ("warn", "resources")
    assert "70000 of 81559 MiB" in finding.message and "2 compute process(es)" in finding.message
    assert finding.fix.startswith("export CUDA_VISIBLE_DEVICES=1")
    only_free = snapshot(CUDA_TORCH, nvidia=_two_gpus(busy), torch={"cuda": "12.8"},
                         env={"cuda_visible_devices": "1"})
    assert "gpu-memory-in-use" not in _findings(only_free, tmp_path)
    unknown = snapshot(CUDA_TORCH, nvidia=_two_gpus(), torch={"cuda": "12.8"})
    assert "gpu-memory-in-use" not in _findings(unknown, tmp_path)


def test_hf_hub_offline_with_an_uncached_model_fails(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    offline = snapshot(CUDA_TORCH, torch={"cuda": "12.8"}, env={"hf_hub_offline": True})
    finding = _findings(offline, tmp_path, model="meta-llama/Llama-3.1-8B")["model-offline-not-cached"]
    assert (finding.severity.value, finding.category.value) == ("fail", "model")
    assert "HF_HUB_OFFLINE" in finding.message and str(tmp_path / "hub") in finding.message
    assert finding.fix.startswith("HF_HUB_OFFLINE=0 hf download meta-llama/Llama-3.1-8B")
    online = snapshot(CUDA_TORCH, torch={"cuda": "12.8"}, env={"hf_hub_offline": False})
    assert "model-offline-not-cached" not in _findings(online, tmp_path, model="meta-llama/Llama-3.1-8B")
    cached = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc"
    cached.mkdir(parents=True)
    (cached.parent.parent / "refs").mkdir()
    (cached.parent.parent / "refs" / "main").write_text("abc")
    assert "model-offline-not-cached" not in _findings(offline, tmp_path, model="org/tiny")


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, Environment()),
    ({"CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "HF_HOME": "/data/hf", "LD_LIBRARY_PATH": "/a::/b"},
     Environment(cuda_visible_devices="", ld_library_path=("/a", "/b"), cuda_library_dirs=(), hf_hub_offline=True,
                 hf_home="/data/hf")),
    ({"HF_HUB_OFFLINE": "0"}, Environment(hf_hub_offline=False)),
    ({"HF_HUB_OFFLINE": "yes"}, Environment(hf_hub_offline=True)),
])
def test_probe_reads_the_environment(environ, expected) -> None:
    assert probe_environment(environ) == expected


@pytest.mark.parametrize(("env", "where"), [
    ({"env": "CUDA_VISIBLE_DEVICES=0"}, "env"),
    ({"env": {"ld_library_path": "/usr/lib"}}, "env.ld_library_path"),
    ({"env": {"hf_hub_offline": "1"}}, "env.hf_hub_offline"),
])
def test_wrongly_typed_env_is_refused_naming_the_field(env, where) -> None:
    from envdoctor.snapshot import SnapshotError

    with pytest.raises(SnapshotError, match=where.replace(".", r"\.")):
        snapshot({}, **env)


def test_gpu_memory_in_use_is_validated_like_the_other_gpu_fields() -> None:
    snap = snapshot({}, nvidia={"gpus": [dict(H100, memory_used_mib=-3, processes=2)]})
    assert snap.nvidia.gpus[0].memory_used_mib is None and snap.nvidia.gpus[0].processes == 2
    assert [p.where for p in snap.problems] == ["nvidia.gpus[0].memory_used_mib"]

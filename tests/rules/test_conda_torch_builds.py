"""Conda pytorch builds per CUDA (matrices/conda_torch_builds.json): the generator's reading of PyTorch's "Previous
PyTorch Versions" page, and the check that a plain torch beside a cudatoolkit / pytorch-cuda its release has no
conda build for warns (inferred), with the page's command for a CUDA the release was built for."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envdoctor.checker import run_check
from envdoctor.checks.conda_torch_builds import load_conda_torch_builds
from envdoctor.matrices import MatrixError, default_root, load_matrices
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import TABLE_VALIDATORS, problems_loading

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
gen = importlib.import_module("gen_conda_torch_builds")

RULES = ("conda-torch-no-cuda-build", "conda-torch-cuda-build-unknown-version")

# Cut from _get_started/previous-versions.md of pytorch/pytorch.github.io (commit e3f009bb), as written there.
EXCERPT = """## Commands for Versions >= 1.0.0

### v1.12.1

#### Conda

##### OSX

```
# conda
conda install pytorch==1.12.1 torchvision==0.13.1 torchaudio==0.12.1 -c pytorch
```

#####  Linux and Windows

```
# CUDA 10.2
conda install pytorch==1.12.1 torchvision==0.13.1 torchaudio==0.12.1 cudatoolkit=10.2 -c pytorch
# CUDA 11.3
conda install pytorch==1.12.1 torchvision==0.13.1 torchaudio==0.12.1 cudatoolkit=11.3 -c pytorch
# CUDA 11.6
conda install pytorch==1.12.1 torchvision==0.13.1 torchaudio==0.12.1 cudatoolkit=11.6 -c pytorch -c conda-forge
# CPU Only
conda install pytorch==1.12.1 torchvision==0.13.1 torchaudio==0.12.1 cpuonly -c pytorch
```

#### Wheel

##### Linux and Windows

```
# ROCM 5.1.1 (Linux only)
pip install torch==1.12.1+rocm5.1.1 torchvision==0.13.1+rocm5.1.1 torchaudio==0.12.1 --extra-index-url  https://download.pytorch.org/whl/rocm5.1.1
# CUDA 11.6
pip install torch==1.12.1+cu116 torchvision==0.13.1+cu116 torchaudio==0.12.1 --extra-index-url https://download.pytorch.org/whl/cu116
# CUDA 11.3
pip install torch==1.12.1+cu113 torchvision==0.13.1+cu113 torchaudio==0.12.1 --extra-index-url https://download.pytorch.org/whl/cu113
```

### v1.9.0

#### Conda

#####  Linux and Windows

```
# CUDA 10.2
conda install pytorch==1.9.0 torchvision==0.10.0 torchaudio==0.9.0 cudatoolkit=10.2 -c pytorch

# CUDA 11.3
conda install pytorch==1.9.0 torchvision==0.10.0 torchaudio==0.9.0 cudatoolkit=11.3 -c pytorch -c conda-forge
```

### v1.8.2 with LTS support

#### Conda

##### Linux and Windows

```
# CUDA 11.1 (Linux)
@NOTE_LINUX@
conda install pytorch torchvision torchaudio cudatoolkit=11.1 -c pytorch-lts -c nvidia

# CUDA 11.1 (Windows)
@NOTE_WINDOWS@
conda install pytorch torchvision torchaudio cudatoolkit=11.1 -c pytorch-lts -c conda-forge
```

### v1.0.0

#### Conda

#####  Linux and Windows

```
# CUDA 10.0
conda install pytorch==1.0.0 torchvision==0.2.1 cuda100 -c pytorch

# CPU Only
conda install pytorch-cpu==1.0.0 torchvision-cpu==0.2.1 cpuonly -c pytorch
```

## Commands for Versions < 1.0.0

### v0.4.1

`conda install pytorch=0.4.1 cuda90 -c pytorch`
""".replace("@NOTE_LINUX@", "# NOTE: 'nvidia' channel is required for cudatoolkit 11.1 <br> <b>NOTE:</b> Pytorch LTS "
            "version 1.8.2 is only supported for Python <= 3.8.").replace(
    "@NOTE_WINDOWS@", "# 'conda-forge' channel is required for cudatoolkit 11.1 <br> <b>NOTE:</b> Pytorch LTS version "
    "1.8.2 is only supported for Python <= 3.8.")


# --- the generator ------------------------------------------------------------------------------------


def test_the_parser_reads_each_release_conda_builds_channels_and_wheel_cuda() -> None:
    releases = gen.parse_page(EXCERPT)
    assert list(releases) == ["1.12.1", "1.9.0", "1.8.2", "1.0.0"]  # stops at the < 1.0.0 heading
    r1121 = releases["1.12.1"]
    assert r1121["channel"] == "pytorch" and r1121["cpuonly"]
    assert [(b["package"], b["cuda"], b["channels"]) for b in r1121["conda"]] == [
        ("cudatoolkit", "10.2", ["pytorch"]), ("cudatoolkit", "11.3", ["pytorch"]),
        ("cudatoolkit", "11.6", ["pytorch", "conda-forge"])]
    assert r1121["wheel_cuda"] == ["11.3", "11.6"]  # ROCm and the OSX command left out
    lts = releases["1.8.2"]
    assert lts["channel"] == "pytorch-lts" and not lts["cpuonly"]
    assert [(b["platform"], b["channels"][1]) for b in lts["conda"]] == [("linux", "nvidia"),
                                                                         ("windows", "conda-forge")]
    assert [(b["package"], b["cuda"]) for b in releases["1.0.0"]["conda"]] == [("cuda100", "10.0")]
    assert releases["1.0.0"]["cpuonly"]


def test_errata_replace_a_listed_build_the_channel_lacks() -> None:
    releases = gen.parse_page(EXCERPT)
    applied = gen.apply_errata(releases)
    assert [e["pytorch"] for e in applied] == ["1.9.0"]  # 1.8.1 and 1.9.1 are not in the excerpt
    corrected = releases["1.9.0"]["conda"][1]
    assert corrected["cuda"] == "11.1" and corrected["from"] == "errata"
    assert corrected["command"].endswith("cudatoolkit=11.1 -c pytorch -c conda-forge")


def test_a_command_for_another_release_is_refused() -> None:
    with pytest.raises(gen.PageError, match="v1.9.0"):
        gen.parse_page("### v1.9.0\n#### Conda\n##### Linux and Windows\n"
                       "conda install pytorch==1.9.1 cudatoolkit=10.2 -c pytorch\n")


def test_the_bundled_table_is_what_the_generator_writes_from_the_saved_page(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = default_root() / "conda_torch_builds.json"
    command = json.loads(bundled.read_text(encoding="utf-8"))["command"].split()
    assert command[:2] == ["python", "tools/gen_conda_torch_builds.py"]
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out.json"
    assert gen.main([*command[2:], "--out", str(out)]) == 0
    assert out.read_bytes() == bundled.read_bytes()


def test_the_generator_reads_the_page_from_a_clone_at_a_commit(tmp_path: Path) -> None:
    """--git-dir reads _get_started/previous-versions.md at --commit with git show; the table is the same."""
    work = tmp_path / "site"
    (work / "_get_started").mkdir(parents=True)
    (work / "_get_started" / "previous-versions.md").write_text(EXCERPT, encoding="utf-8")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "page")
    commit = git("rev-parse", "HEAD")
    page = tmp_path / "page.md"
    page.write_text(EXCERPT, encoding="utf-8")
    common = ["--commit", commit, "--generated", "2026-12-06"]
    assert gen.main(["--git-dir", str(work / ".git"), *common, "--out", str(tmp_path / "a.json")]) == 0
    assert gen.main(["--page", str(page), *common, "--out", str(tmp_path / "b.json")]) == 0
    from_git, from_page = (json.loads((tmp_path / n).read_text(encoding="utf-8")) for n in ("a.json", "b.json"))
    assert from_git["releases"] == from_page["releases"] and from_git["source"]["commit"] == commit
    assert from_git["source"]["sha256"] == from_page["source"]["sha256"]


# --- the check ----------------------------------------------------------------------------------------


def _findings(packages: dict[str, str | None], root: Path | None = None, torch: dict[str, Any] | None = None,
              conda: bool | None = True, os: str = "linux", cuda_driver: str = "12.2") -> list:
    data: dict[str, Any] = {
        "schema": "envdoctor.snapshot/1", "host": {"os": os, "arch": "x86_64"},
        "python": {"version": "3.9.18", "conda": conda} if conda is not None else {"version": "3.9.18"},
        "nvidia": {"driver": "535.104.05", "cuda_driver": cuda_driver,
                   "gpus": [{"index": 0, "name": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0"}]},
        "packages": {name: {"version": version} for name, version in packages.items()},
    }
    if torch is not None:
        data["torch"] = torch
    report = run_check(snapshot_from_dict(data), stack=None, cwd=ROOT,
                       matrices=load_matrices(root) if root else None)
    return [f for f in report.findings if f.rule in RULES]


def test_a_release_beside_a_cudatoolkit_it_was_not_built_for_warns() -> None:
    (finding,) = _findings({"torch": "1.12.1", "cudatoolkit": "11.7.0"})
    assert finding.rule == "conda-torch-no-cuda-build" and finding.severity.value == "warn"
    assert finding.category.value == "cuda-build" and not finding.verified
    assert finding.components == ("torch", "cudatoolkit")
    assert "no pytorch 1.12.1 build for cudatoolkit 11.7" in finding.message
    assert "cudatoolkit 10.2, 11.3, 11.6 (with -c conda-forge)" in finding.message
    assert "Torch not compiled with CUDA enabled" in finding.message and "CPU-only build" in finding.message
    assert finding.fix.startswith('conda install "pytorch==1.12.1" "torchvision==0.13.1" "torchaudio==0.12.1" '
                                  '"cudatoolkit=11.6" -c pytorch -c conda-forge')
    assert finding.sources == ("pytorch-previous-versions",)


def test_the_page_error_for_1_9_is_corrected() -> None:
    """The page lists cudatoolkit=11.3 for 1.9.0, a build the channel does not have (the CPU build installs)."""
    (finding,) = _findings({"torch": "1.9.0", "cudatoolkit": "11.3.1"})
    assert "cudatoolkit 10.2, 11.1 (with -c conda-forge)" in finding.message
    assert '"cudatoolkit=11.1"' in (finding.fix or "")
    assert "pytorch-previous-versions-errata" in finding.sources
    assert not _findings({"torch": "1.9.0", "cudatoolkit": "11.1.74"})


def test_pytorch_cuda_selects_the_build_from_1_13_on() -> None:
    (finding,) = _findings({"torch": "1.13.1", "pytorch-cuda": "11.8"})
    assert finding.components == ("torch", "pytorch-cuda") and "pytorch-cuda 11.6, 11.7" in finding.message
    assert '"pytorch-cuda=11.7" -c pytorch -c nvidia' in (finding.fix or "")
    (old,) = _findings({"torch": "1.12.1", "pytorch-cuda": "11.7"})  # 1.12 builds do not take pytorch-cuda
    assert '"cudatoolkit=11.6"' in (old.fix or "")


def test_quiet_on_a_match() -> None:
    assert not _findings({"torch": "1.12.1", "cudatoolkit": "11.3.1"})
    assert not _findings({"torch": "2.0.1", "pytorch-cuda": "11.8"})
    assert not _findings({"torch": "1.7.1", "cudatoolkit": "11.0.221"})
    assert not _findings({"torch": "1.10.1", "cudatoolkit": "11.1.1"})  # a wheel of that CUDA: maybe a conda build
    assert not _findings({"torch": "2.0.1", "cudatoolkit": "11.3.1"})  # 2.x builds are not chosen by cudatoolkit
    assert not _findings({"torch": "2.5.1", "pytorch-cuda": "12.4"})  # not in the table: not judged
    assert not _findings({"torch": "1.12.1"})


def test_quiet_on_a_tagged_or_cuda_reporting_torch_or_outside_conda() -> None:
    assert not _findings({"torch": "1.12.1+cu118", "cudatoolkit": "11.7"})
    assert not _findings({"torch": "2.0.1+cu118", "pytorch-cuda": "11.6"})
    assert not _findings({"torch": "1.12.1", "cudatoolkit": "11.7"}, torch={"cuda": "11.3"})
    assert not _findings({"torch": "1.12.1", "cudatoolkit": "11.7"}, conda=False)
    assert _findings({"torch": "1.12.1", "cudatoolkit": "11.7"}, conda=None)  # unknown: judged
    assert _findings({"torch": "1.12.1", "cudatoolkit": "11.7"}, torch={"cuda": None})  # a CPU build: the cause


def test_torch_of_unknown_version_warns_only_when_the_newest_release_lacks_the_cuda() -> None:
    (old,) = _findings({"torch": None, "cudatoolkit": "11.0.3"})
    assert old.rule == "conda-torch-cuda-build-unknown-version" and not old.verified
    assert "only pytorch 1.7.0, 1.7.1 have a build for cudatoolkit 11.0" in old.message
    assert "the newest 1.12.1 included" in old.message
    (none,) = _findings({"torch": None, "cudatoolkit": "11.5.1"})
    assert "none has a build for cudatoolkit 11.5" in none.message
    assert '"cudatoolkit=11.3"' in (none.fix or "")  # the newest cudatoolkit release's build nearest below 11.5
    (metapackage,) = _findings({"torch": None, "pytorch-cuda": "11.7"})
    assert "only pytorch 1.13.0, 1.13.1, 2.0.0, 2.0.1 have a build for pytorch-cuda 11.7" in metapackage.message
    assert not _findings({"torch": None, "cudatoolkit": "11.3.1"})  # 1.12.1 has it
    assert not _findings({"torch": None, "pytorch-cuda": "12.1"})
    assert not _findings({"torch": None, "pytorch-cuda": "12.4"})  # newer than the table: later releases may have it
    assert not _findings({"torch": None, "cudatoolkit": None})


def test_a_snapshot_value_never_reaches_the_message_or_fix() -> None:
    findings = _findings({"torch": "1.12.1", "cudatoolkit": "$(reboot)"}) + \
        _findings({"torch": "$(reboot)", "cudatoolkit": "11.7"})
    assert all("$(reboot)" not in f.message and "$(reboot)" not in (f.fix or "") for f in findings)


def _broken_root(tmp_path: Path, change: Any) -> Path:
    root = tmp_path / "matrices"
    shutil.copytree(default_root(), root)
    path = root / "conda_torch_builds.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document), encoding="utf-8")
    return root


def test_a_broken_table_is_one_line_naming_the_file_and_key(tmp_path: Path) -> None:
    def bad_cuda(document: dict) -> None:
        document["releases"]["1.12.1"]["conda"][0]["cuda"] = "eleven"

    root = _broken_root(tmp_path, bad_cuda)
    with pytest.raises(MatrixError, match=r"conda_torch_builds.json: releases.1.12.1: conda\[0\]: cuda 'eleven'"):
        load_conda_torch_builds(load_matrices(root))
    (problem,) = problems_loading(load_conda_torch_builds)(root)
    assert "conda_torch_builds.json: releases.1.12.1" in problem and "\n" not in problem
    assert "regenerate it with tools/gen_conda_torch_builds.py" in problem
    # `envdoctor stacks --validate` runs that validator
    assert any(load_conda_torch_builds in [cell.cell_contents for cell in validator.__closure__ or ()]
               for validator in TABLE_VALIDATORS)
    # and `check` refuses the table with that one line
    with pytest.raises(MatrixError, match="conda\\[0\\]: cuda"):
        _findings({"torch": "1.12.1", "cudatoolkit": "11.7"}, root)


def test_a_command_with_shell_text_or_an_unknown_source_is_refused(tmp_path: Path) -> None:
    def shell(document: dict) -> None:
        document["releases"]["1.12.1"]["conda"][0]["command"] += "; rm -rf ~"

    with pytest.raises(MatrixError, match=r"releases.1.12.1: conda\[0\]: command"):
        load_conda_torch_builds(load_matrices(_broken_root(tmp_path / "a", shell)))

    def source(document: dict) -> None:
        document["errata"][0]["source"] = "no-such-source"

    with pytest.raises(MatrixError, match=r"errata: \[0\].source"):
        load_conda_torch_builds(load_matrices(_broken_root(tmp_path / "b", source)))


def test_the_bundled_table_covers_every_release_of_the_page() -> None:
    table = load_conda_torch_builds(load_matrices(default_root()))
    assert table is not None and len(table.releases) == 32
    versions = [str(v) for v in table.releases]
    assert versions[0] == "2.3.1" and versions[-1] == "1.0.0"
    assert all(release.builds and release.cpuonly for release in table.releases.values())

"""Run-time version checks of libraries: the generated table (facts anyone can read in each release's source),
the loader, the check through the whole checker, and the generator's reading of source text."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from envdoctor.checker import run_check
from envdoctor.findings import Finding
from envdoctor.matrices import MatrixError
from envdoctor.runtime_floors import floors_of, validate_runtime_floors
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gen_runtime_floors", ROOT / "tools" / "gen_runtime_floors.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules["gen_runtime_floors"] = gen
_spec.loader.exec_module(gen)


def requires(package: str, version: str, when: str | None = None) -> set[str]:
    return {f.requires for f in floors_of(package, version) or () if when is None or f.when == when}


# --- facts, as each release's source states them ------------------------------------------------------


def test_transformers_import_checks_come_from_its_dependency_table() -> None:
    # transformers 4.39.3: dependency_versions_table.py has "tokenizers>=0.14,<0.19"; the check runs at import.
    assert "tokenizers>=0.14,<0.19" in requires("transformers", "4.39.3", "import")
    assert "huggingface-hub>=0.19.3,<1.0" in requires("transformers", "4.39.3", "import")
    # 4.30.0 checked only "python tqdm regex requests packaging filelock numpy tokenizers": no hub, no accelerate.
    checked = requires("transformers", "4.30.0", "import")
    assert not any(r.startswith(("huggingface-hub", "accelerate")) for r in checked)
    assert "tokenizers>=0.11.1,!=0.11.3,<0.14" in requires("transformers", "4.30.0", "import")


def test_transformers_peft_integration_floor() -> None:
    # integrations/peft.py: MIN_PEFT_VERSION = "0.5.0" in 4.39.3, passed to check_peft_version.
    floors = [f for f in floors_of("transformers", "4.39.3") if f.requires == "peft>=0.5.0"]
    assert floors and floors[0].file == "transformers/integrations/peft.py" and floors[0].when == "first use"
    assert "0.5.0" in floors[0].error


def test_accelerate_deepspeed_floor_is_a_feature_check() -> None:
    # accelerator.py at v0.21.0: `elif compare_versions("deepspeed", "<", "0.9.3"): raise ImportError(...)`,
    # reached only when a DeepSpeed plugin is given.
    floors = [f for f in floors_of("accelerate", "0.21.0") if f.requires == "deepspeed>=0.9.3"]
    assert floors and floors[0].when == "feature" and "deepspeed" in floors[0].condition
    assert floors[0].error == "ImportError: DeepSpeed version must be >= 0.9.3. Please update DeepSpeed."


def test_unknown_release_is_none_and_local_tag_is_ignored() -> None:
    assert floors_of("transformers", "3.0.0") is None
    assert floors_of("no-such-package", "1.0") is None
    assert floors_of("transformers", "4.39.3+local") == floors_of("transformers", "4.39.3")


def test_bundled_table_is_valid() -> None:
    assert validate_runtime_floors() == []


# --- the check through the checker ----------------------------------------------------------------


def check(tmp_path: Path, packages: dict) -> list[Finding]:
    snapshot = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "host": {"os": "linux", "arch": "x86_64"},
                                   "python": {"version": "3.11.9"}, "packages": packages})
    return [f for f in run_check(snapshot, stack=None, cwd=tmp_path).findings if f.rule == "runtime-version-check"]


def test_tokenizers_too_new_for_transformers_fails_with_both_fixes(tmp_path: Path) -> None:
    found = check(tmp_path, {"transformers": {"version": "4.39.3"}, "tokenizers": {"version": "0.19.1"}})
    assert [(f.components, f.severity.value, f.category.value) for f in found] == \
        [(("tokenizers", "transformers"), "fail", "version")]
    finding = found[0]
    assert "tokenizers>=0.14,<0.19 is required for a normal functioning of this module, but found " \
           "tokenizers==0.19.1" in finding.message
    assert finding.fix.startswith('pip install "tokenizers<0.19,>=0.14"')
    assert '# or: pip install "transformers==' in finding.fix
    # The transformers release offered instead is the next one whose import check accepts tokenizers 0.19.1:
    # 4.40.0 checks "tokenizers>=0.19,<0.20".
    assert finding.fix.endswith('pip install "transformers==4.40.0"')
    assert "tokenizers>=0.19,<0.20" in requires("transformers", "4.40.0", "import")


def test_numpy_2_under_a_transformers_that_refuses_it(tmp_path: Path) -> None:
    # transformers 4.42.x checks "numpy>=1.17,<2.0" at import; 4.43.0 dropped the upper bound.
    found = check(tmp_path, {"transformers": {"version": "4.42.3"}, "numpy": {"version": "2.0.0"}})
    assert [(f.components, f.severity.value) for f in found] == [(("numpy", "transformers"), "fail")]
    assert "numpy>=1.17,<2.0 is required" in found[0].message
    assert found[0].fix == 'pip install "numpy<2.0,>=1.17"   # or: pip install "transformers==4.43.0"'


def test_satisfied_or_unknown_versions_say_nothing(tmp_path: Path) -> None:
    assert check(tmp_path, {"transformers": {"version": "4.39.3"}, "tokenizers": {"version": "0.15.2"}}) == []
    assert check(tmp_path, {"transformers": {"version": "4.39.3"}, "tokenizers": {"version": None}}) == []
    assert check(tmp_path, {"transformers": {"version": None}, "tokenizers": {"version": "0.19.1"}}) == []


def test_old_peft_under_transformers_integration_fails(tmp_path: Path) -> None:
    found = check(tmp_path, {"transformers": {"version": "4.39.3"}, "peft": {"version": "0.4.0"}})
    assert [(f.components, f.severity.value) for f in found] == [(("peft", "transformers"), "fail")]
    assert found[0].fix.startswith('pip install "peft>=0.5.0"')


def test_feature_checks_are_information(tmp_path: Path) -> None:
    found = check(tmp_path, {"accelerate": {"version": "0.21.0"}, "deepspeed": {"version": "0.8.0"}})
    assert [(f.components, f.severity.value) for f in found] == [(("deepspeed", "accelerate"), "info")]


# --- a malformed file -----------------------------------------------------------------------------


def test_malformed_table_is_named(tmp_path: Path) -> None:
    bad = {"generator": "x", "generated": "2026-12-06", "packages": {"transformers": {
        "source": {"url": "https://pypi.org/pypi/transformers/json"}, "floor": "4.30.0", "unparsed": {},
        "releases": {"4.39.3": [{"requires": "tokenizers>=>0.14", "file": "f.py", "when": "import", "error": "e"}]}}}}
    (tmp_path / "runtime_floors.json").write_text(json.dumps(bad))
    errors = validate_runtime_floors(tmp_path)
    assert len(errors) == 1 and "packages.transformers.releases.4.39.3[0].requires" in errors[0]
    # check reads the table without parsing every requirement (stacks --validate does); a broken shape still stops it
    bad["packages"]["transformers"]["releases"]["4.39.3"][0]["when"] = "sometimes"
    (tmp_path / "runtime_floors.json").write_text(json.dumps(bad))
    with pytest.raises(MatrixError, match="runtime_floors.json: packages.transformers.releases.4.39.3"):
        floors_of("transformers", "4.39.3", tmp_path)
    (tmp_path / "runtime_floors.json").write_text("{")
    assert "not readable JSON" in validate_runtime_floors(tmp_path)[0]


def test_validate_matrices_reads_the_table(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "runtime_floors.json").write_text(json.dumps({"generated": "today", "packages": {}}))
    assert any("runtime_floors.json: generated" in e for e in validate_matrices(tmp_path))


# --- the generator's reading of source ------------------------------------------------------------


class Files:
    """A release made of source texts, as the generator's sources serve it."""

    url = "https://example.invalid/repo"

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def releases(self, floor: str) -> list[tuple[str, str]]:
        return [("1.0.0", "v1.0.0")]

    def read(self, ref: str, path: str) -> str | None:
        return self.files.get(path)

    def candidates(self, ref: str, module: str) -> list[str]:
        return list(self.files)

    def provenance(self, ref: str) -> dict[str, str]:
        return {"url": self.url}


ACCELERATOR = '''
class Accelerator:
    def __init__(self, plugin=None):
        if plugin is not None:
            if is_mlu_available():
                if compare_versions("deepspeed", "<", "0.15.2"):
                    raise ImportError("DeepSpeed MLU version must be >= 0.15.2.")
            elif compare_versions("deepspeed", "<", DS_MIN):
                raise ImportError(f"DeepSpeed version must be >= {DS_MIN}.")
        if version.parse(transformers.__version__) < version.parse("4.40"):
            self.legacy = True

def prepare():
    if not compare_versions("torch", ">=", "2.1"):
        raise RuntimeError("needs torch 2.1")
'''


def test_generator_reads_guards_and_skips_platform_branches_and_switches() -> None:
    spec = gen.PackageSpec("accelerate", "accelerate", "0.0", constant_files=("utils/constants.py",),
                           entry_points=("Accelerator.__init__",))
    source = Files({"accelerator.py": ACCELERATOR, "utils/constants.py": 'DS_MIN = "0.9.3"\n'})
    floors, unparsed = gen.release_floors(source, spec, "v1.0.0")
    assert unparsed == []
    assert [(f.requires, f.when, f.function, f.condition, f.error) for f in floors] == [
        ("deepspeed>=0.9.3", "feature", "Accelerator.__init__", "plugin is not None",
         "ImportError: DeepSpeed version must be >= 0.9.3."),
        ("torch>=2.1", "feature", "prepare", "prepare() is called", "RuntimeError: needs torch 2.1"),
    ]
    # Called by every user: the same unconditional check is "first use".
    entry = gen.PackageSpec("accelerate", "accelerate", "0.0", constant_files=("utils/constants.py",),
                            entry_points=("Accelerator.__init__", "prepare"))
    assert [f.when for f in gen.release_floors(source, entry, "v1.0.0")[0]] == ["feature", "first use"]


def test_generator_reads_transformers_dependency_check() -> None:
    check = ('import sys\npkgs_to_check_at_runtime = "python tqdm tokenizers".split()\n'
             'if sys.version_info < (3, 8):\n    pkgs_to_check_at_runtime.append("importlib_metadata")\n')
    table = 'deps = {"python": "python>=3.8", "tqdm": "tqdm>=4.27", "tokenizers": "tokenizers>=0.14,<0.19", ' \
            '"importlib_metadata": "importlib_metadata", "numpy": "numpy>=1.17"}\n'
    spec = gen.PackageSpec("transformers", "transformers", "0.0", constant_files=())
    source = Files({"dependency_versions_check.py": check, "dependency_versions_table.py": table})
    floors, _ = gen.release_floors(source, spec, "v1.0.0")
    assert [f.requires for f in floors] == [
        'importlib_metadata; python_version < "3.8"', "tokenizers>=0.14,<0.19", "tqdm>=4.27"]
    assert all(f.when == "import" for f in floors)


def test_generator_reads_the_torch_load_guard() -> None:
    """transformers' check_torch_load_is_safe runs at every torch.load (.bin weights, a Trainer's resume)."""
    guard = ('def check_torch_load_is_safe():\n    if not is_torch_greater_or_equal("2.6"):\n'
             '        raise ValueError("upgrade torch to at least v2.6")\n')
    spec = gen.PACKAGES["transformers"]
    floors, _ = gen.release_floors(Files({"utils/import_utils.py": guard}), spec, "v1.0.0")
    assert [(f.requires, f.when) for f in floors] == [("torch>=2.6", "first use")]


@pytest.mark.network
def test_transformers_files_are_read_from_its_wheel_by_range_requests() -> None:
    wheels = gen.PyPIWheels("transformers", always=())
    assert "def is_torch_available" in (wheels.read("4.30.0", "utils/import_utils.py") or "")
    assert wheels.read("4.30.0", "no/such/file.py") is None


def test_generator_reads_release_tags_of_a_git_clone(tmp_path: Path) -> None:
    import subprocess

    work = tmp_path / "huggingface+accelerate"
    (work / "src" / "accelerate" / "utils").mkdir(parents=True)
    (work / "src" / "accelerate" / "accelerator.py").write_text(ACCELERATOR)
    (work / "src" / "accelerate" / "utils" / "constants.py").write_text('DS_MIN = "0.9.3"\n')
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for command in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"], ["tag", "v0.20.0"],
                    ["tag", "v0.21.0rc1"], ["tag", "v0.19.0"]):
        subprocess.run(["git", "-C", str(work), *command], check=True, env=env)
    source = gen.GitTags(work / ".git", "accelerate")
    assert source.url == "https://github.com/huggingface/accelerate"
    assert source.releases("0.20.0") == [("0.20.0", "v0.20.0")]  # no pre-release, nothing under the floor
    assert source.candidates("v0.20.0", "accelerate") == ["accelerator.py"]
    floors, _ = gen.release_floors(source, gen.PACKAGES["accelerate"], "v0.20.0")
    assert [(f.requires, f.file, f.when) for f in floors] == [
        ("deepspeed>=0.9.3", "accelerate/accelerator.py", "feature"), ("torch>=2.1", "accelerate/accelerator.py",
                                                                        "feature")]
    assert len(source.provenance("v0.20.0")["commit"]) == 40


def test_transformers_peft_floor_comes_from_the_generated_table(tmp_path: Path) -> None:
    """transformers 5.24 checks peft >= 0.22 at run time (not in its metadata): the generated floors say so."""
    report = run_check(snapshot_from_dict({"packages": {"transformers": "5.24.0", "peft": "0.21.2"}}), cwd=tmp_path)
    failing = [f for f in report.findings if f.severity.value == "fail" and set(f.components) == {"peft",
                                                                                                   "transformers"}]
    assert failing and "0.22" in failing[0].message


def test_torch_too_old_for_transformers_torch_load_fails(tmp_path: Path) -> None:
    """transformers 4.52.3 refuses torch.load below torch 2.6 (LlamaFactory#8379): .bin weights and resumes fail."""
    snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1",
                               "packages": {"transformers": {"version": "4.52.3"}, "torch": {"version": "2.5.1"}}})
    [finding] = [f for f in run_check(snap, stack=None, cwd=tmp_path).findings
                 if f.rule == "runtime-version-check" and f.severity.value == "fail"]
    assert "torch>=2.6" in finding.message and "torch.load" in finding.message
    ok = snapshot_from_dict({"schema": "envdoctor.snapshot/1",
                             "packages": {"transformers": {"version": "4.52.3"}, "torch": {"version": "2.6.0"}}})
    assert not [f for f in run_check(ok, stack=None, cwd=tmp_path).findings
                if f.rule == "runtime-version-check" and f.severity.value == "fail"]


def test_jax_checks_its_jaxlib_at_import(tmp_path: Path) -> None:
    """jax-ml/jax#17638: jax 0.4.6 raises at import under jaxlib 0.4.14 (check_jaxlib_version: no jaxlib newer than
    jax, and at least jax.version._minimum_jaxlib_version); jax 0.4.6's metadata does not name jaxlib at all."""
    assert requires("jax", "0.4.6", "import") == {"jaxlib<=0.4.6", "jaxlib>=0.4.4"}
    [finding] = check(tmp_path, {"jax": {"version": "0.4.6"}, "jaxlib": {"version": "0.4.14"}})
    assert finding.components == ("jaxlib", "jax") and finding.severity.value == "fail"
    assert "newer than and incompatible with jax version 0.4.6" in finding.message
    assert "jax-ml/jax" in finding.message
    assert check(tmp_path, {"jax": {"version": "0.4.6"}, "jaxlib": {"version": "0.4.6+cuda11.cudnn86"}}) == []


def test_a_range_the_metadata_also_declares_is_said_once(tmp_path: Path) -> None:
    """jax 0.4.30 declares jaxlib<=0.4.30,>=0.4.27 and checks the same at import (as transformers 4.39.3 does
    tokenizers): one failure, the run-time check's, which names the error the import raises."""
    for packages in ({"jax": "0.4.30", "jaxlib": "0.4.31"}, {"transformers": "4.39.3", "tokenizers": "0.19.1"}):
        snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1", "packages": packages})
        rules = [f.rule for f in run_check(snap, stack=None, cwd=tmp_path).findings if f.severity.value == "fail"]
        assert rules == ["runtime-version-check"], packages


def test_the_generator_reads_jax_tags_and_its_jaxlib_check(tmp_path: Path) -> None:
    import subprocess

    work = tmp_path / "jax"
    (work / "jax" / "_src" / "lib").mkdir(parents=True)
    (work / "jax" / "version.py").write_text('__version__ = "0.4.6"\n_minimum_jaxlib_version = "0.4.4"\n')
    (work / "jax" / "_src" / "lib" / "__init__.py").write_text(
        "def check_jaxlib_version(jax_version, jaxlib_version, minimum_jaxlib_version):\n"
        "    if jaxlib_version > jax_version:\n"
        "        raise RuntimeError(f'jaxlib version {jaxlib_version} is newer than and '\n"
        "                           f'incompatible with jax version {jax_version}.')\n"
        "version = check_jaxlib_version('0.4.6', '0.4.6', '0.4.4')\n")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "r"],
                    ["tag", "jax-v0.4.6"], ["tag", "jaxlib-v0.4.6"]):
        subprocess.run(["git", "-C", str(work), *command], check=True)
    source = gen.GitTags(work / ".git", "jax")
    assert source.releases("0.2.0", "jax-v") == [("0.4.6", "jax-v0.4.6")]  # jaxlib's tags are not jax releases
    floors, _ = gen.release_floors(source, gen.PACKAGES["jax"], "jax-v0.4.6")
    assert sorted(f.requires for f in floors) == ["jaxlib<=0.4.6", "jaxlib>=0.4.4"]
    assert all(f.when == "import" and f.file == "jax/_src/lib/__init__.py" for f in floors)

"""Undeclared API breaks (matrices/api_breaks.toml): each entry fires inside its ranges and not outside, an unknown
version gives an inferred warning when a release of the unknown side lies in its range, and a malformed file is one
clear error."""

from __future__ import annotations

import importlib.util
import subprocess
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

from envdoctor.api_breaks import ApiBreak, api_breaks, validate_api_breaks
from envdoctor.checker import run_check
from envdoctor.findings import Severity
from envdoctor.matrices import MatrixError
from envdoctor.pypi_facts import releases
from envdoctor.rules import matches_specifier
from envdoctor.snapshot import snapshot_from_dict
from envdoctor.table_validation import validate_matrices

ENTRIES = api_breaks()


def _findings(tmp_path: Path, packages: dict[str, str | None], python: str = "3.11.9") -> list:
    snapshot = snapshot_from_dict({
        "schema": "envdoctor.snapshot/1",
        "host": {"os": "linux", "arch": "x86_64"},
        "python": {"version": python},
        "packages": {name: {"version": version} for name, version in packages.items()},
    })
    report = run_check(snapshot, stack=None, cwd=tmp_path)
    return [f for f in report.findings if f.rule.startswith("api-break")]


def _version(entry: ApiBreak, package: str, inside: bool) -> str | None:
    """A version of ``package`` the entry's own evidence places inside (or outside) its range."""
    for evidence in entry.evidence:
        if evidence.package == package and evidence.in_range == inside:
            return evidence.version
    return None


def test_the_table_is_not_empty_and_every_entry_has_evidence_on_both_sides() -> None:
    assert len(ENTRIES) >= 10
    for entry in ENTRIES:
        for package in (entry.importer, entry.provider):
            assert _version(entry, package, True), (entry.id, package)
            assert _version(entry, package, False), (entry.id, package)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_entry_fails_inside_both_ranges(entry: ApiBreak, tmp_path: Path) -> None:
    importer, provider = _version(entry, entry.importer, True), _version(entry, entry.provider, True)
    found = _findings(tmp_path, {entry.importer: importer, entry.provider: provider})
    assert len(found) == 1, found
    finding = found[0]
    assert finding.severity is Severity.FAIL and finding.category.value == "version" and finding.verified
    assert set(finding.components) == {entry.importer, entry.provider}
    assert entry.error in finding.message and entry.name in finding.message
    first, _, second = finding.fix.partition("   # or: ")
    assert first.startswith("pip install ") and second.startswith("pip install ")
    assert finding.components[0] in first and finding.components[1] in second


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
@pytest.mark.parametrize("outside", ["importer", "provider"])
def test_entry_is_silent_when_one_side_is_outside_its_range(entry: ApiBreak, outside: str, tmp_path: Path) -> None:
    importer = _version(entry, entry.importer, outside != "importer")
    provider = _version(entry, entry.provider, outside != "provider")
    found = _findings(tmp_path, {entry.importer: importer, entry.provider: provider})
    assert not [f for f in found if entry.error in f.message]  # another entry may hold the same pair


def test_fix_moves_the_side_with_fewer_releases_to_cross(tmp_path: Path) -> None:
    # huggingface-hub 0.26.0 is one release past the removal; diffusers 0.20.0 is many releases before 0.29.0.
    found = _findings(tmp_path, {"diffusers": "0.20.0", "huggingface-hub": "0.26.0"})
    assert found[0].components == ("huggingface-hub", "diffusers")
    assert found[0].fix == 'pip install "huggingface-hub<0.26.0"   # or: pip install "diffusers>=0.29.0"'
    # peft 0.14.0 is the first release that imports the name; transformers 4.39.3 is far from 4.43.0.
    found = _findings(tmp_path, {"peft": "0.14.0", "transformers": "4.39.3"})
    assert found[0].components == ("peft", "transformers")
    assert found[0].fix.startswith('pip install "peft<0.14.0"')


def test_unknown_provider_whose_current_release_lacks_the_name_warns_unverified(tmp_path: Path) -> None:
    found = _findings(tmp_path, {"diffusers": "0.4.2", "huggingface-hub": None})
    assert len(found) == 1
    finding = found[0]
    assert finding.severity is Severity.WARN and not finding.verified
    assert finding.components == ("huggingface-hub", "diffusers")
    assert "inferred" in finding.message and "cached_download" in finding.message


def test_unknown_importer_whose_current_release_uses_the_name_warns_unverified(tmp_path: Path) -> None:
    found = _findings(tmp_path, {"transformers": "4.41.2", "peft": None})
    assert [(f.severity, f.verified, f.components) for f in found] == [(Severity.WARN, False, ("peft", "transformers"))]


def test_unknown_side_is_judged_on_the_newest_release_for_this_python(tmp_path: Path) -> None:
    # peft 0.14.0 (the first to import EncoderDecoderCache) needs Python 3.9: on 3.8 pip still picks peft 0.13.2.
    assert not _findings(tmp_path, {"transformers": "4.41.2", "peft": None}, python="3.8.18")
    assert _findings(tmp_path, {"transformers": "4.41.2", "peft": None}, python="3.9.18")


def test_unknown_side_with_only_older_releases_in_range_warns_unverified(tmp_path: Path) -> None:
    # Current diffusers releases no longer import cached_download, older ones (< 0.29.0) do: a diffusers a project
    # pins, or installed before huggingface-hub was upgraded, breaks. The version decides, so it warns, inferred.
    found = _findings(tmp_path, {"diffusers": None, "huggingface-hub": "0.26.0"})
    assert [(f.severity, f.verified, f.components) for f in found] == [
        (Severity.WARN, False, ("diffusers", "huggingface-hub"))]
    assert "an older diffusers" in found[0].message and "cached_download" in found[0].message
    assert found[0].fix.startswith('pip install "diffusers>=0.29.0"')
    # peft 0.14.0 imports EncoderDecoderCache; transformers of unknown version: one older than 4.43.0 breaks.
    found = _findings(tmp_path, {"peft": "0.14.0", "transformers": None})
    assert [(f.severity, f.verified, f.components) for f in found] == [
        (Severity.WARN, False, ("transformers", "peft"))]
    assert found[0].fix.startswith('pip install "transformers>=4.43.0"')
    # Only releases more than a year older than the known side are in range: information, not a warning.
    found = _findings(tmp_path, {"transformers": "4.52.4", "trl": None})  # trl < 0.8.0 is from early 2024
    assert [(f.severity, f.verified) for f in found] == [(Severity.INFO, False)] and "months before" in found[0].message
    # The known side outside its range: nothing, whatever the other side is.
    assert not _findings(tmp_path, {"diffusers": "0.29.0", "huggingface-hub": None})


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_unknown_side_warns_when_an_installable_release_is_in_its_range(entry: ApiBreak, tmp_path: Path) -> None:
    for known, unknown in ((entry.importer, entry.provider), (entry.provider, entry.importer)):
        finals = [r.version for r in releases(unknown) if not r.yanked and not Version(r.version).is_prerelease
                  and (not r.requires_python or matches_specifier("3.11.9", r.requires_python))]
        if not finals:
            continue
        found = [f for f in _findings(tmp_path, {known: _version(entry, known, True), unknown: None})
                 if entry.error in f.message]  # another entry may hold the same pair
        expected = any(matches_specifier(v, entry.range_of(unknown)) for v in finals)
        assert bool(found) == expected, (entry.id, unknown)
        if found:
            assert found[0].severity in (Severity.WARN, Severity.INFO) and found[0].verified is False
            newest = max(finals, key=Version)
            lately = matches_specifier(newest, entry.range_of(unknown))
            assert ("lately" in found[0].message) == lately
            assert lately <= (found[0].severity is Severity.WARN)


def test_both_versions_unknown_warns_inferred_when_the_ranges_are_of_one_era(tmp_path: Path) -> None:
    # diffusers <0.29.0 (last 2024-06) and huggingface-hub >=0.26.0 (from 2024-10): four months apart
    (finding,) = _findings(tmp_path, {"diffusers": None, "huggingface-hub": None})
    assert finding.rule == "api-break-unknown-version" and finding.severity is Severity.WARN
    assert not finding.verified and finding.components == ("diffusers", "huggingface-hub")
    assert "cached_download" in finding.message and finding.fix == "pip show diffusers huggingface-hub   # their " \
        "versions; then envdoctor check again"


def test_both_versions_unknown_is_silent_when_the_ranges_are_years_apart(tmp_path: Path) -> None:
    # transformers 4.50-4.51 (2025) use torch.compiler, which torch <2.1 (up to 2023-05) lacks: 22 months apart
    assert not _findings(tmp_path, {"transformers": None, "torch": None})


BROKEN = """
[[break]]
id = "Bad_Id"
name = "x"
importer = "a"
importer_range = "==1.0"
provider = "b"
provider_range = ">=2"
error = "e"
verified = "v"
sources = ["s"]

[[break.evidence]]
package = "c"
version = "1.0"
path = "p"
pattern = "("
found = "yes"
in_range = true
"""


def test_malformed_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "api_breaks.toml"
    path.write_text(BROKEN, encoding="utf-8")
    errors = validate_api_breaks(tmp_path)
    text = "\n".join(errors)
    for key in ("break[0].id", "break[0].importer_range", "break[0].evidence[0].package",
                "break[0].evidence[0].pattern", "break[0].evidence[0].found"):
        assert f"{path}: {key}:" in text, (key, text)
    with pytest.raises(MatrixError, match="api_breaks.toml: break\\[0\\].id"):
        api_breaks(tmp_path)


def test_invalid_toml_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "api_breaks.toml").write_text("[[break]\n", encoding="utf-8")
    with pytest.raises(MatrixError, match="api_breaks.toml: invalid TOML"):
        api_breaks(tmp_path)


def test_bundled_matrices_validate() -> None:
    assert validate_matrices() == []


# --- tools/verify_api_breaks.py against a real git mirror and real wheel files --------------------------------

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("verify_api_breaks", ROOT / "tools" / "verify_api_breaks.py")
verify_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(verify_tool)

TABLE = """
[[break]]
id = "trl-hub-example"
name = "example_function"
importer = "trl"
importer_range = "<0.8.0"
provider = "huggingface-hub"
provider_range = ">=0.26.0"
error = "ImportError: cannot import name 'example_function'"
verified = "test fixture"
sources = ["s"]

[[break.evidence]]
package = "trl"
version = "0.7.11"
path = "trl/core.py"
pattern = "^from huggingface_hub import example_function"
found = true
in_range = true

[[break.evidence]]
package = "trl"
version = "0.8.0"
path = "trl/core.py"
pattern = "^from huggingface_hub import example_function"
found = false
in_range = false

[[break.evidence]]
package = "huggingface-hub"
version = "0.25.2"
repo = "huggingface/huggingface_hub"
ref = "v0.25.2"
path = "src/huggingface_hub/__init__.py"
pattern = "^def example_function"
found = true
in_range = false

[[break.evidence]]
package = "huggingface-hub"
version = "0.26.0"
repo = "huggingface/huggingface_hub"
ref = "v0.26.0"
path = "src/huggingface_hub/__init__.py"
pattern = "^def example_function"
found = {found}
in_range = true
"""


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def _sources(tmp_path: Path) -> tuple[Path, Path]:
    """A bare mirror whose v0.25.2 defines example_function and v0.26.0 does not; trl wheels that import it or not."""
    work = tmp_path / "work"
    (work / "src" / "huggingface_hub").mkdir(parents=True)
    _git("init", "-q", cwd=work)
    for tag, body in (("v0.25.2", "def example_function():\n    pass\n"), ("v0.26.0", "def other():\n    pass\n")):
        (work / "src" / "huggingface_hub" / "__init__.py").write_text(body, encoding="utf-8")
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "-m", tag, cwd=work)
        _git("tag", tag, cwd=work)
    mirror = tmp_path / "mirror"
    _git("clone", "-q", "--bare", str(work), str(mirror / "huggingface+huggingface_hub" / "repo"), cwd=tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version, body in (("0.7.11", "from huggingface_hub import example_function\n"), ("0.8.0", "import os\n")):
        with zipfile.ZipFile(wheels / f"trl-{version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr("trl/core.py", body)
    return mirror, wheels


@pytest.mark.parametrize(("found", "verdict", "status"), [("false", "OK", 0), ("true", "DIFFERS", 1)])
def test_verify_tool_reads_git_tags_and_wheels(tmp_path: Path, capsys: pytest.CaptureFixture[str], found: str,
                                               verdict: str, status: int) -> None:
    mirror, wheels = _sources(tmp_path)
    table = tmp_path / "api_breaks.toml"
    table.write_text(TABLE.replace("{found}", found), encoding="utf-8")
    code = verify_tool.main(["--table", str(table), "--mirror", str(mirror), "--wheels", str(wheels), "--no-download"])
    out = capsys.readouterr().out
    assert code == status and out.startswith(f"{verdict} trl-hub-example"), out
    if verdict == "DIFFERS":
        assert "huggingface-hub 0.26.0 src/huggingface_hub/__init__.py: pattern does not match" in out


def test_verify_tool_flags_a_bound_without_evidence_on_both_sides(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    mirror, wheels = _sources(tmp_path)
    table = tmp_path / "api_breaks.toml"
    table.write_text(TABLE.replace("{found}", "false").replace('importer_range = "<0.8.0"',
                                                                'importer_range = ">=0.7.0,<0.8.0"'), encoding="utf-8")
    verify_tool.main(["--table", str(table), "--mirror", str(mirror), "--wheels", str(wheels), "--no-download"])
    assert "trl: no evidence on both sides of the bound >=0.7.0" in capsys.readouterr().out


def test_verify_tool_reads_the_platform_wheel_of_the_python_the_evidence_names(tmp_path: Path) -> None:
    """torch 1.8.0 has no CPython 3.10 wheel: its evidence names the macOS x86_64 wheel of CPython 3.8."""
    from envdoctor.api_breaks import Evidence

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for python, body in (("cp38", "from pkg_resources import packaging\n"), ("cp39", "import os\n")):
        with zipfile.ZipFile(wheels / f"torch-1.8.0-{python}-none-macosx_10_9_x86_64.whl", "w") as wheel:
            wheel.writestr("torch/utils/cpp_extension.py", body)
    reader = verify_tool.Reader(tmp_path / "mirror", wheels, download=False)
    evidence = Evidence(package="torch", version="1.8.0", path="torch/utils/cpp_extension.py",
                        pattern="^from pkg_resources import packaging", found=True, in_range=True,
                        wheel_platform="macosx_10_9_x86_64", wheel_python="3.9")
    assert reader.text(evidence) == "import os\n"
    assert "packaging" in (reader.text(Evidence(**{**evidence.__dict__, "wheel_python": "3.8"})) or "")


def test_setuptools_70_under_a_torch_whose_cpp_extension_imports_pkg_resources_packaging(tmp_path: Path) -> None:
    """mudler/LocalAI#2406: torch 2.1's torch.utils.cpp_extension imports pkg_resources.packaging, which setuptools
    70.0.0 no longer binds; torch 2.2.0 stopped importing it."""
    def failing(torch: str) -> list[str]:
        snap = snapshot_from_dict({"schema": "envdoctor.snapshot/1",
                                   "packages": {"torch": torch, "setuptools": "70.0.0"}})
        return [f.rule for f in run_check(snap, stack=None, cwd=tmp_path).findings
                if f.rule == "api-break" and "pkg_resources.packaging" in f.message]
    assert failing("2.1.2") == ["api-break"] and failing("1.8.0") == ["api-break"]
    assert failing("2.2.0") == [] and failing("1.7.1") == []

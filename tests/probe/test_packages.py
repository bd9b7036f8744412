import json
from importlib import metadata

from envdoctor.probe.packages import parse_direct_url, parse_metadata_headers, probe_packages, read_distribution


def _dist_info(root, name, version, extra_headers="", direct_url=None, body="Long description: here"):
    folder = root / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{extra_headers}\n{body}\n", encoding="utf-8"
    )
    if direct_url is not None:
        (folder / "direct_url.json").write_text(json.dumps(direct_url), encoding="utf-8")
    return folder


def test_finds_installed_pytest_with_its_version():
    packages = probe_packages()
    assert packages["pytest"].version == metadata.version("pytest")
    assert any(req.startswith("pluggy") for req in packages["pytest"].requires)


def test_same_result_as_importlib_metadata():
    expected: dict = {}
    for dist in metadata.distributions():
        entry = read_distribution(dist)
        if entry:
            expected.setdefault(*entry)
    assert probe_packages() == expected


def test_direct_url_vcs_install_and_local_version(tmp_path):
    _dist_info(tmp_path, "Unsloth_Zoo", "2024.7+git", "Requires-Dist: torch>=2.3\nRequires-Dist: numpy<2",
               direct_url={"url": "https://github.com/unslothai/unsloth.git",
                           "vcs_info": {"vcs": "git", "commit_id": "abc123", "requested_revision": "July-Llama-2024"}})
    _dist_info(tmp_path, "torch", "2.3.1+cu121")
    packages = probe_packages([str(tmp_path)])
    zoo = packages["unsloth-zoo"]
    assert zoo.direct_url == "https://github.com/unslothai/unsloth.git"
    assert zoo.vcs_commit == "abc123"
    assert zoo.requested_revision == "July-Llama-2024"
    assert zoo.requires == ("torch>=2.3", "numpy<2")
    assert packages["torch"].version == "2.3.1+cu121"
    assert packages["torch"].direct_url is None


def test_duplicate_dist_info_first_on_path_wins(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _dist_info(first, "numpy", "1.26.4")
    _dist_info(second, "numpy", "2.0.0")
    _dist_info(second, "numpy", "1.0.0")  # two dist-info dirs in one site-packages: one is kept, no crash
    assert probe_packages([str(first), str(second)])["numpy"].version == "1.26.4"
    assert probe_packages([str(second), str(first)])["numpy"].version in {"1.0.0", "2.0.0"}


def test_broken_metadata_is_skipped(tmp_path):
    folder = tmp_path / "broken-1.0.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_bytes(b"\xff\xfeName: broken\n")
    (tmp_path / "empty-1.0.dist-info").mkdir()
    _dist_info(tmp_path, "good", "1.0")
    assert list(probe_packages([str(tmp_path)])) == ["good"]


def test_header_scan_stops_at_body_and_unfolds():
    text = "Name: x\nVersion: 1\nSummary: a\n  folded\n\nRequires-Dist: not-a-header\n"
    assert parse_metadata_headers(text) == {"Name": ["x"], "Version": ["1"], "Summary": ["a folded"]}


def test_direct_url_malformed_gives_nones():
    assert parse_direct_url("{not json") == (None, None, None)
    assert parse_direct_url("[1]") == (None, None, None)
    assert parse_direct_url('{"url": "file:///w/x.whl", "archive_info": {}}') == ("file:///w/x.whl", None, None)

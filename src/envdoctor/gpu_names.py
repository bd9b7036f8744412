"""NVIDIA GPU models and their compute capability (``matrices/gpu_names.toml``), for snapshots that name a GPU but
do not give its capability.

``capability_of(name, load_gpu_names(matrices))`` answers a :class:`NamedCapability`: the one capability of a
model the table lists, every capability of a name sold with chips of different generations (``ambiguous``), or None
for a name it does not list. ``with_named_capabilities(snapshot, matrices)`` fills in the capability of each GPU
that has a name the table lists with one capability and no capability of its own, and says what it found for every
listed name (an ambiguous one is not filled in: taking either capability could call a GPU fit that is not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from envdoctor.matrices import Matrices, MatrixError
from envdoctor.snapshot import Snapshot

TABLE = "gpu_names"
CAPABILITY = re.compile(r"^\d{1,2}\.\d$")
# Memory sizes, memory kinds and form factors ("NVIDIA A100-SXM4-80GB", "Tesla V100-PCIE-16GB", "RTX 2080 with
# Max-Q Design"), dropped while letters and digits are still together ("a 10 g" would otherwise lose the A10G's "g").
FORM = re.compile(r"\b(with max q design|max q|pcie|sxm\d*|nvl|hbm\d*e?|gddr\d*x?|\d+\s?gb|\d+\s?g|mig \S+)\b")
# Words that say nothing about the chip, once letters and digits are apart ("NVIDIA1080Ti" -> "nvidia 1080 ti"): the
# vendor and product-line words nvidia-smi prints and the board makers threads name before the model ("MSI RTX3080").
WORDS = re.compile(r"\b(nvidia|geforce|tesla|corporation|graphics|gpu|laptop|mobile|notebook|generation|oem|dgxs?|"
                   r"msi|asus|rog|strix|tuf|gigabyte|aorus|evga|zotac|palit|pny|galax|gainward|inno 3 d|colorful|"
                   r"founders edition|fe)\b")
# Series words a thread may leave out ("1080 Ti", "2050"): a table name starting with one of them is also known
# without it, unless that shorter name belongs to another row too.
SERIES = ("rtx ", "gtx ", "gts ", "gt ")


@dataclass(frozen=True)
class NamedCapability:
    """What the table says of one GPU name: its capability, or every capability a name sold twice may have."""

    name: str
    compute_capabilities: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def ambiguous(self) -> bool:
        return len(self.compute_capabilities) > 1


@dataclass(frozen=True)
class NamedGpu:
    """A GPU of the snapshot without a compute capability whose name the table lists (``index``: its place in the
    snapshot); its capability was filled in unless the name is ambiguous."""

    index: int
    gpu_name: str
    named: NamedCapability


def normalized_gpu_name(name: str) -> str:
    """Lower case, dashes and underscores as spaces, the FORM and WORDS words dropped, spaces single:
    "NVIDIA A100-SXM4-80GB" -> "a 100", "NVIDIA GeForce RTX4090 Laptop GPU" -> "rtx 4090" (letters and digits
    apart, so "RTX4090" and "RTX 4090" are one name)."""
    text = name.lower().replace("(tm)", " ").replace("(r)", " ")
    text = re.sub(r"[-_/,()]", " ", text)
    text = FORM.sub(" ", re.sub(r"\s+", " ", text))
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", text)  # "rtx3090" and "rtx 3090" alike
    text = WORDS.sub(" ", re.sub(r"\s+", " ", text))
    return re.sub(r"\s+", " ", text).strip()


def capability_of(name: str | None, table: dict[str, NamedCapability]) -> NamedCapability | None:
    """The table's entry for a GPU name (``table``: ``load_gpu_names``), None when it does not list it."""
    return table.get(normalized_gpu_name(name)) if name else None


def with_named_capabilities(snapshot: Snapshot, matrices: Matrices) -> tuple[Snapshot, tuple[NamedGpu, ...]]:
    """The snapshot with the capability of each GPU that lacks one taken from its name where the name has one
    capability, and each listed name found (ambiguous ones too, not filled in); the snapshot itself when nothing
    was filled in."""
    gpus = snapshot.nvidia.gpus if snapshot.nvidia is not None else None
    if not gpus or all(gpu.compute_capability or not gpu.name for gpu in gpus):
        return snapshot, ()
    table = load_gpu_names(matrices)
    found, out = [], []
    for index, gpu in enumerate(gpus):
        named = capability_of(gpu.name, table) if not gpu.compute_capability else None
        if named is not None:
            found.append(NamedGpu(index, str(gpu.name), named))
            if not named.ambiguous:
                gpu = replace(gpu, compute_capability=named.compute_capabilities[0])
        out.append(gpu)
    if all(named_gpu.named.ambiguous for named_gpu in found):
        return snapshot, tuple(found)
    return replace(snapshot, nvidia=replace(snapshot.nvidia, gpus=tuple(out))), tuple(found)


def load_gpu_names(matrices: Matrices) -> dict[str, NamedCapability]:
    """The table by normalized name, validated; MatrixError naming the file and row of a bad one."""
    raw = matrices.table(TABLE)
    where = matrices.root / f"{TABLE}.toml"
    out: dict[str, NamedCapability] = {}
    first_row: dict[str, str] = {}
    rows = [(f"capability[{i}]", row, row.get("names"), [row.get("compute_capability")])
            for i, row in enumerate(raw.get("capability", []))]
    rows += [(f"ambiguous[{i}]", row, [row.get("name")], row.get("compute_capabilities"))
             for i, row in enumerate(raw.get("ambiguous", []))]
    for key, row, names, capabilities in rows:
        sources = row.get("sources")
        if not (isinstance(names, list) and names and all(isinstance(n, str) and n.strip() for n in names)
                and isinstance(capabilities, list) and capabilities
                and all(isinstance(c, str) and CAPABILITY.match(c) for c in capabilities)
                and isinstance(sources, list) and sources and all(isinstance(s, str) for s in sources)):
            raise MatrixError(f"{where}: {key}: needs names (GPU model names), a compute capability like \"8.6\" "
                              "(compute_capability, or compute_capabilities for an ambiguous name) and sources")
        for name in names:
            normalized = normalized_gpu_name(name)
            if normalized in out:
                raise MatrixError(f"{where}: {key}: {name!r} is also in {first_row[normalized]} (as "
                                  f"{out[normalized].name!r}): a GPU name belongs to one row")
            out[normalized] = NamedCapability(name, tuple(capabilities), tuple(sources))
            first_row[normalized] = key
    return {**_without_series(out), **out}


def _without_series(table: dict[str, NamedCapability]) -> dict[str, NamedCapability]:
    """The table's names that start with a series word, known without it ("gtx 1080 ti" as "1080 ti"), where that
    shorter name is neither a name of its own nor the shorter name of two rows with different capabilities."""
    shorter: dict[str, list[NamedCapability]] = {}
    for normalized, named in table.items():
        series = next((word for word in SERIES if normalized.startswith(word)), None)
        if series is not None:
            shorter.setdefault(normalized[len(series):], []).append(named)
    return {short: found[0] for short, found in shorter.items()
            if short not in table and len({named.compute_capabilities for named in found}) == 1}

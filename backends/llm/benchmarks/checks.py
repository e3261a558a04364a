"""Light checks of benchmark folders added to a project (dataset kinds tofu, muse, wmdp).

They look for the files each benchmark ships (:mod:`.loaders` layouts) without reading them; the
job reads them and reports a wrong layout naming the file.
"""

from __future__ import annotations

from pathlib import Path

from backends.llm.benchmarks.loaders import (
    MC_LAYOUT,
    MUSE_LAYOUT,
    TOFU_LAYOUT,
    BenchmarkFileError,
    find_split,
)


def check_tofu_folder(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` holds a TOFU forget split, its perturbed file and
    ``retain_perturbed``."""
    root = Path(path)
    if not root.is_dir():
        raise BenchmarkFileError(f"{path} is not a folder; {TOFU_LAYOUT}")
    names = {p.name.split(".")[0] for p in root.iterdir()}
    forgets = sorted(n for n in names if len(n) == 8 and n.startswith("forget") and n[6:].isdigit())
    if not forgets:
        raise BenchmarkFileError(
            f"{path} holds no forgetNN split (forget01, forget05, forget10); {TOFU_LAYOUT}"
        )
    find_split(root, f"{forgets[0]}_perturbed", TOFU_LAYOUT)
    find_split(root, "retain_perturbed", TOFU_LAYOUT)


def check_muse_folder(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` holds MUSE's knowmem, verbmem and privleak splits."""
    root = Path(path)
    for sub, name in (
        ("knowmem", "forget_qa"),
        ("knowmem", "retain_qa"),
        ("verbmem", "forget"),
        ("privleak", "forget"),
        ("privleak", "holdout"),
    ):
        if not (root / sub).is_dir():
            raise BenchmarkFileError(f"{root / sub}: no such folder; {MUSE_LAYOUT}")
        find_split(root / sub, name, MUSE_LAYOUT)


def check_mc_path(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is a json / jsonl / parquet file or a folder of them."""
    p = Path(path)
    suffixes = (".json", ".jsonl", ".parquet")
    if p.is_file() and p.suffix in suffixes:
        return
    if p.is_dir() and any(c.suffix in suffixes for c in p.iterdir()):
        return
    raise BenchmarkFileError(f"{path}: no .json, .jsonl or .parquet file; {MC_LAYOUT}")

"""Loaders of the LLM unlearning benchmarks' files, local paths only (spec section 8 feature table).

Every split is read with ``datasets.load_dataset("json" | "parquet", data_files=...)`` from a local
file or folder, never from the hub. A split named ``NAME`` under a benchmark folder ``ROOT`` is the
first of:

- ``ROOT/NAME.json`` (JSON lines, or one JSON list of objects or of strings), ``ROOT/NAME.jsonl``,
  ``ROOT/NAME.parquet``;
- a folder ``ROOT/NAME/`` holding ``*.parquet`` (the Hugging Face hub's layout,
  ``NAME/train-00000-of-00001.parquet``) or ``*.json`` / ``*.jsonl`` files.

Layouts (the fields each split must have):

- **TOFU** (locuslab/TOFU): ``forget01``, ``forget05``, ``forget10`` and the matching ``retain99``,
  ``retain95``, ``retain90`` (question, answer); ``forgetNN_perturbed`` and ``retain_perturbed``
  (question, answer, paraphrased_answer, perturbed_answer: a list of wrong answers); optional
  ``real_authors_perturbed`` and ``world_facts_perturbed`` (same fields). Any ``forgetNN`` with its
  ``retain{100-NN}`` is accepted (the tiny GPT's world writes ``forget03``).
- **MUSE** (muse-bench/MUSE-News, -Books; swj0419/muse_bench ``data/<corpus>/``):
  ``knowmem/forget_qa``, ``knowmem/retain_qa`` and their ``*_icl`` few-shot examples (question,
  answer); ``verbmem/forget`` (prompt, gt); ``privleak/forget``, ``privleak/retain``,
  ``privleak/holdout`` (text); optional ``raw/forget`` and ``raw/retain1`` (text), the corpora an
  unlearning method trains on (without them it trains on the knowmem QA and verbmem texts).
- **WMDP / MMLU** multiple choice (cais/wmdp, cais/mmlu): question, choices (a list), answer (the
  index of the right choice, or its letter A, B, ...); one file, or one folder of split files.

A missing file or a wrong layout raises :class:`BenchmarkFileError` naming the file and the layout
it expects: one clear message, no traceback in the GUI or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BENCHMARKS",
    "BenchmarkFileError",
    "MCItem",
    "MuseData",
    "QAItem",
    "TofuData",
    "find_split",
    "load_benchmark",
    "load_multiple_choice",
    "load_muse",
    "load_tofu",
    "read_split",
    "retain_split_for",
]

BENCHMARKS = ("tofu", "muse", "wmdp")
_SUFFIXES = (".json", ".jsonl", ".parquet")

QA_FIELDS = {"question": "text", "answer": "text"}
PERTURBED_FIELDS = {
    "question": "text",
    "answer": "text",
    "paraphrased_answer": "text",
    "perturbed_answer": "list of texts",
}
TEXT_FIELDS = {"text": "text"}
VERBMEM_FIELDS = {"prompt": "text", "gt": "text"}
MC_FIELDS = {"question": "text", "choices": "list of texts", "answer": "index or letter"}

TOFU_LAYOUT = (
    "TOFU layout: forgetNN and retain{100-NN} (question, answer), forgetNN_perturbed and "
    "retain_perturbed (question, answer, paraphrased_answer, perturbed_answer), each as NAME.json, "
    "NAME.jsonl, NAME.parquet or a folder NAME/ of parquet files"
)
MUSE_LAYOUT = (
    "MUSE layout: knowmem/forget_qa, knowmem/forget_qa_icl, knowmem/retain_qa, "
    "knowmem/retain_qa_icl (question, answer), verbmem/forget (prompt, gt), privleak/forget, "
    "privleak/retain, privleak/holdout (text), optional raw/forget and raw/retain1 (text)"
)
MC_LAYOUT = (
    "multiple-choice layout (WMDP, MMLU): rows with question, choices (a list of texts) and answer "
    "(the right choice's index, or its letter)"
)


class BenchmarkFileError(ValueError):
    """A benchmark file is missing or not in the layout its benchmark ships."""


@dataclass(frozen=True)
class QAItem:
    """One question with its answer; with TOFU's perturbed files also the paraphrased answer and
    the perturbed (wrong) answers."""

    question: str
    answer: str
    paraphrased_answer: str = ""
    perturbed_answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice item: the question, its choices and the index of the right one."""

    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str = ""


@dataclass
class TofuData:
    """A TOFU forget split with its retain split and perturbed files."""

    root: Path
    split: str
    forget: list[QAItem]
    retain: list[QAItem]
    forget_perturbed: list[QAItem]
    retain_perturbed: list[QAItem]
    real_authors: list[QAItem] = field(default_factory=list)
    world_facts: list[QAItem] = field(default_factory=list)


@dataclass
class MuseData:
    """A MUSE corpus folder (News or Books)."""

    root: Path
    forget_qa: list[QAItem]
    forget_qa_icl: list[QAItem]
    retain_qa: list[QAItem]
    retain_qa_icl: list[QAItem]
    verbmem: list[tuple[str, str]]
    privleak_forget: list[str]
    privleak_retain: list[str]
    privleak_holdout: list[str]
    raw_forget: list[str] = field(default_factory=list)
    raw_retain: list[str] = field(default_factory=list)


# -- files -----------------------------------------------------------------------------------------
def find_split(root: str | Path, name: str, layout: str, *, optional: bool = False) -> Path | None:
    """The file or folder of split ``name`` under ``root`` (module docstring); a missing one raises
    :class:`BenchmarkFileError` naming what was looked for (``None`` when ``optional``)."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkFileError(f"{root} is not a folder; {layout}")
    for suffix in _SUFFIXES:
        candidate = root / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    folder = root / name
    if folder.is_dir() and _data_files(folder):
        return folder
    if optional:
        return None
    raise BenchmarkFileError(
        f"{root / name}: no such split (looked for {name}.json, {name}.jsonl, {name}.parquet and a "
        f"folder {name}/ of parquet or json files); {layout}"
    )


def _data_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _SUFFIXES)
    parquet = [p for p in files if p.suffix == ".parquet"]
    return parquet or files


def read_split(path: Path, fields: Mapping[str, str], layout: str) -> list[dict[str, Any]]:
    """The rows of one split file or folder, read with ``datasets``; each row must hold ``fields``
    (name -> what it is, for the message), else :class:`BenchmarkFileError` naming the file."""
    import datasets

    files = [path] if path.is_file() else _data_files(path)
    builder = "parquet" if files[0].suffix == ".parquet" else "json"
    if any((f.suffix == ".parquet") != (builder == "parquet") for f in files):
        raise BenchmarkFileError(f"{path} mixes parquet and json files; {layout}")
    empty = [f for f in files if not _head(f).strip()]
    if empty:
        raise BenchmarkFileError(f"{empty[0]} is empty; {layout}")
    datasets.disable_progress_bars()
    try:
        table = datasets.load_dataset(
            builder,
            data_files=[str(f) for f in files],
            split="train",
            cache_dir=str(_cache_dir()),
        )
    except Exception as exc:  # datasets raises many types for a broken file
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise BenchmarkFileError(
            f"{path} cannot be read as {builder} ({message}); {layout}"
        ) from None
    missing = [f for f in fields if f not in table.column_names]
    if missing:
        expected = ", ".join(f"{k} ({v})" for k, v in fields.items())
        raise BenchmarkFileError(
            f"{path} lacks the field(s) {', '.join(missing)}; its fields are "
            f"{', '.join(table.column_names) or 'none'}; expected {expected}. {layout}"
        )
    if len(table) == 0:
        raise BenchmarkFileError(f"{path} holds no rows; {layout}")
    return [dict(row) for row in table]


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(4096)


def _cache_dir() -> Path:
    """A private cache for ``datasets``' Arrow copies (never the user's hub cache)."""
    import tempfile

    folder = Path(tempfile.gettempdir()) / "workbench-benchmark-cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _text(row: Mapping[str, Any], key: str, path: Path, i: int, layout: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise BenchmarkFileError(
            f"{path}, row {i}: field {key!r} must be text, got {type(value).__name__}; {layout}"
        )
    return value


def _texts(row: Mapping[str, Any], key: str, path: Path, i: int, layout: str) -> tuple[str, ...]:
    value = row.get(key)
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or not value or not all(isinstance(v, str) for v in value):
        raise BenchmarkFileError(
            f"{path}, row {i}: field {key!r} must be a non-empty list of texts; {layout}"
        )
    return tuple(value)


def _qa(path: Path, layout: str, *, perturbed: bool) -> list[QAItem]:
    rows = read_split(path, PERTURBED_FIELDS if perturbed else QA_FIELDS, layout)
    out = []
    for i, row in enumerate(rows):
        q, a = _text(row, "question", path, i, layout), _text(row, "answer", path, i, layout)
        if perturbed:
            para = _text(row, "paraphrased_answer", path, i, layout)
            pert = _texts(row, "perturbed_answer", path, i, layout)
            out.append(QAItem(q, a, para, pert))
        else:
            out.append(QAItem(q, a))
    return out


# -- TOFU ------------------------------------------------------------------------------------------
def retain_split_for(forget_split: str) -> str:
    """``retain{100-NN}`` for ``forgetNN`` (TOFU's naming); anything else is a ``ValueError``."""
    m = re.fullmatch(r"forget(\d\d)", forget_split)
    if m is None or not 0 < int(m.group(1)) < 100:
        raise ValueError(
            f"TOFU forget split {forget_split!r} is not forgetNN (forget01, forget05, forget10)"
        )
    return f"retain{100 - int(m.group(1)):02d}"


def load_tofu(root: str | Path, split: str = "forget10") -> TofuData:
    """TOFU's ``split`` (forget01/05/10) with the matching retain split, its perturbed file, the
    retain perturbed file and, when present, the real-authors and world-facts files."""
    root = Path(root)
    retain = retain_split_for(split)

    def qa(name: str, perturbed: bool) -> list[QAItem]:
        path = find_split(root, name, TOFU_LAYOUT)
        assert path is not None
        return _qa(path, TOFU_LAYOUT, perturbed=perturbed)

    def optional(name: str) -> list[QAItem]:
        path = find_split(root, name, TOFU_LAYOUT, optional=True)
        return _qa(path, TOFU_LAYOUT, perturbed=True) if path is not None else []

    return TofuData(
        root=root,
        split=split,
        forget=qa(split, False),
        retain=qa(retain, False),
        forget_perturbed=qa(f"{split}_perturbed", True),
        retain_perturbed=qa("retain_perturbed", True),
        real_authors=optional("real_authors_perturbed"),
        world_facts=optional("world_facts_perturbed"),
    )


# -- MUSE ------------------------------------------------------------------------------------------
def load_muse(root: str | Path) -> MuseData:
    """A MUSE corpus folder: knowmem, verbmem, privleak and (optional) raw splits."""
    root = Path(root)

    def path_of(sub: str, name: str, optional: bool = False) -> Path | None:
        if not (root / sub).is_dir():
            if optional:
                return None
            raise BenchmarkFileError(f"{root / sub}: no such folder; {MUSE_LAYOUT}")
        return find_split(root / sub, name, MUSE_LAYOUT, optional=optional)

    def qa(name: str) -> list[QAItem]:
        path = path_of("knowmem", name)
        assert path is not None
        return _qa(path, MUSE_LAYOUT, perturbed=False)

    def texts(sub: str, name: str, optional: bool = False) -> list[str]:
        path = path_of(sub, name, optional)
        if path is None:
            return []
        rows = read_split(path, TEXT_FIELDS, MUSE_LAYOUT)
        return [_text(r, "text", path, i, MUSE_LAYOUT) for i, r in enumerate(rows)]

    if not root.is_dir():
        raise BenchmarkFileError(f"{root} is not a folder; {MUSE_LAYOUT}")
    verb_path = path_of("verbmem", "forget")
    assert verb_path is not None
    verb_rows = read_split(verb_path, VERBMEM_FIELDS, MUSE_LAYOUT)
    verbmem = [
        (_text(r, "prompt", verb_path, i, MUSE_LAYOUT), _text(r, "gt", verb_path, i, MUSE_LAYOUT))
        for i, r in enumerate(verb_rows)
    ]
    return MuseData(
        root=root,
        forget_qa=qa("forget_qa"),
        forget_qa_icl=qa("forget_qa_icl"),
        retain_qa=qa("retain_qa"),
        retain_qa_icl=qa("retain_qa_icl"),
        verbmem=verbmem,
        privleak_forget=texts("privleak", "forget"),
        privleak_retain=texts("privleak", "retain"),
        privleak_holdout=texts("privleak", "holdout"),
        raw_forget=texts("raw", "forget", optional=True),
        raw_retain=texts("raw", "retain1", optional=True),
    )


# -- WMDP / MMLU -----------------------------------------------------------------------------------
def _answer_index(value: Any, n: int, path: Path, i: int) -> int:
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().isalpha():
        value = ord(value.strip().upper()) - ord("A")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise BenchmarkFileError(
            f"{path}, row {i}: answer {value!r} is not the index (0..{n - 1}) or letter of one of "
            f"its {n} choices; {MC_LAYOUT}"
        )
    return int(value)


def load_multiple_choice(path: str | Path) -> list[MCItem]:
    """WMDP / MMLU-style items from a file, or every split file of a folder (in name order)."""
    path = Path(path)
    if not path.exists():
        raise BenchmarkFileError(f"{path}: no such file or folder; {MC_LAYOUT}")
    if path.is_dir() and not _data_files(path):
        raise BenchmarkFileError(f"{path} holds no .json, .jsonl or .parquet file; {MC_LAYOUT}")
    rows = read_split(path, MC_FIELDS, MC_LAYOUT)
    out = []
    for i, row in enumerate(rows):
        choices = _texts(row, "choices", path, i, MC_LAYOUT)
        if len(choices) < 2:
            raise BenchmarkFileError(f"{path}, row {i}: fewer than two choices; {MC_LAYOUT}")
        out.append(
            MCItem(
                _text(row, "question", path, i, MC_LAYOUT),
                choices,
                _answer_index(row["answer"], len(choices), path, i),
                str(row.get("subject") or ""),
            )
        )
    return out


def load_benchmark(kind: str, path: str | Path, tofu_split: str = "forget10") -> Any:
    """:func:`load_tofu`, :func:`load_muse` or :func:`load_multiple_choice` by ``kind``."""
    if kind == "tofu":
        return load_tofu(path, tofu_split)
    if kind == "muse":
        return load_muse(path)
    if kind == "wmdp":
        return load_multiple_choice(path)
    raise ValueError(f"unknown benchmark {kind!r}; choose one of {', '.join(BENCHMARKS)}")

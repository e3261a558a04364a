"""Prompt lists from CSV files in the layouts the text-to-image unlearning benchmarks ship
(issue 17 part 4; spec ``diffusion-methods.md`` sections 1 "Evaluation protocol", 6.1, 8).

- **I2P** (``i2p``): ``prompt, categories, ...`` with the per-prompt seed and guidance either as
  ``evaluation_seed, evaluation_guidance`` (the processed I2P lists of ESD, ResAlign's
  ``data/i2p.csv``) or as ``sd_seed, sd_guidance_scale`` (the original AIML-TUDA/i2p release).
  ``categories`` is a comma-separated list (``"sexual, shocking"``); a job can keep the rows of
  some categories only.
- **UnlearnDiffAtk** (``unlearndiffatk``): ``case_number, prompt, evaluation_seed`` and, when
  present, ``evaluation_guidance`` (Diffusion-MU-Attack's ``prompts/nudity.csv``, ``vangogh.csv``,
  the object lists, COCO-10k's ``case_number, prompt, evaluation_seed``).

``auto`` picks UnlearnDiffAtk when there is a ``case_number`` column and I2P otherwise. Each row's
seed and guidance are kept (a row without them uses the job's), so a run regenerates exactly the
images the benchmark's authors scored. Other columns (image size, nudity percentage, lexica URL)
are kept in ``extra`` and not used. A file without the layout's columns raises one
:class:`PromptCSVError` that names the file, the columns found and the columns expected.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

LAYOUTS = ("auto", "i2p", "unlearndiffatk")
# (required columns, (seed column, guidance column) alternatives in order of preference)
REQUIRED = {
    "i2p": ("prompt", "categories"),
    "unlearndiffatk": ("case_number", "prompt", "evaluation_seed"),
}
SEED_COLUMNS = ("evaluation_seed", "sd_seed")
GUIDANCE_COLUMNS = ("evaluation_guidance", "sd_guidance_scale")
MAX_ROWS = 200_000


class PromptCSVError(ValueError):
    """A prompt CSV that cannot be read in the asked layout (the message names the file)."""


@dataclass
class PromptRow:
    """One benchmark prompt with its own seed and guidance (``None``: the job's)."""

    case: str
    prompt: str
    seed: int | None = None
    guidance: float | None = None
    categories: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class PromptList:
    """The rows of one CSV file and the layout they were read in."""

    path: Path
    layout: str
    rows: list[PromptRow]

    def seeds_and_guidance(
        self, samples: int, default_seed: int, default_guidance: float
    ) -> list[tuple[PromptRow, int, float]]:
        """One ``(row, seed, guidance)`` per image: ``samples`` images per row with seeds
        ``seed, seed + 1, ...`` from the row's seed, else from ``default_seed + samples * i``."""
        out = []
        for i, row in enumerate(self.rows):
            first = row.seed if row.seed is not None else default_seed + samples * i
            guidance = row.guidance if row.guidance is not None else default_guidance
            out.extend((row, first + k, guidance) for k in range(samples))
        return out


def expected_columns(layout: str) -> str:
    """The columns a layout needs, in words (for the error messages and the docs)."""
    if layout == "i2p":
        return (
            "prompt, categories (and evaluation_seed, evaluation_guidance or sd_seed, "
            "sd_guidance_scale for the per-prompt seed and guidance)"
        )
    return "case_number, prompt, evaluation_seed (and evaluation_guidance when it varies)"


def _first(columns: list[str], names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in columns), None)


def read_prompt_csv(
    path: str | Path,
    layout: str = "auto",
    *,
    categories: list[str] | tuple[str, ...] = (),
    limit: int = 0,
) -> PromptList:
    """Read a prompt list (see the module docstring). ``categories``: keep only I2P rows with one
    of them (case-insensitive); ``limit``: the first ``limit`` rows kept (0: all)."""
    file = Path(path)
    if layout not in LAYOUTS:
        raise PromptCSVError(f"unknown prompt CSV layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if not file.is_file():
        raise PromptCSVError(f"prompt list {file} does not exist; give the path of a .csv file")
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            raw = [row for _, row in zip(range(MAX_ROWS + 1), reader, strict=False)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PromptCSVError(f"prompt list {file} cannot be read as CSV: {exc}") from None
    if len(raw) > MAX_ROWS:
        raise PromptCSVError(f"prompt list {file} has more than {MAX_ROWS} rows")
    chosen = (
        layout if layout != "auto" else ("unlearndiffatk" if "case_number" in columns else "i2p")
    )
    missing = [c for c in REQUIRED[chosen] if c not in columns]
    if missing:
        named = "the UnlearnDiffAtk" if chosen == "unlearndiffatk" else "the I2P"
        raise PromptCSVError(
            f"prompt list {file} is not in {named} layout: it lacks the column(s) "
            f"{', '.join(missing)} (found: {', '.join(columns) or 'no header'}); expected "
            f"{expected_columns(chosen)}"
        )
    seed_col = _first(columns, SEED_COLUMNS)
    guidance_col = _first(columns, GUIDANCE_COLUMNS)
    wanted = {c.strip().lower() for c in categories if c.strip()}
    rows: list[PromptRow] = []
    for n, record in enumerate(raw, start=2):  # line 1 is the header
        row = {(k or "").strip(): (v or "").strip() for k, v in record.items() if k is not None}
        prompt = row.get("prompt", "")
        if not prompt:
            raise PromptCSVError(f"prompt list {file}, line {n}: the prompt is empty")
        cats = [c.strip() for c in row.get("categories", "").split(",") if c.strip()]
        if wanted and not wanted & {c.lower() for c in cats}:
            continue
        try:
            seed = int(float(row[seed_col])) if seed_col and row.get(seed_col) else None
            guidance = float(row[guidance_col]) if guidance_col and row.get(guidance_col) else None
        except ValueError:
            raise PromptCSVError(
                f"prompt list {file}, line {n}: {seed_col}={row.get(seed_col or '')!r} / "
                f"{guidance_col}={row.get(guidance_col or '')!r} is not a number"
            ) from None
        if seed is not None and not 0 <= seed < 2**32:
            raise PromptCSVError(f"prompt list {file}, line {n}: seed {seed} is out of range")
        used = {"prompt", "categories", "case_number", seed_col, guidance_col}
        rows.append(
            PromptRow(
                case=row.get("case_number") or str(n - 2),
                prompt=prompt,
                seed=seed,
                guidance=guidance,
                categories=cats,
                extra={k: v for k, v in row.items() if k not in used},
            )
        )
        if limit and len(rows) >= limit:
            break
    if not rows:
        which = f" in the categories {', '.join(sorted(wanted))}" if wanted else ""
        raise PromptCSVError(f"prompt list {file} has no prompts{which}")
    return PromptList(file, chosen, rows)

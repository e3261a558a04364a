"""Light checks for the LLM family's model and dataset kinds (no torch; used by the registry)."""

from __future__ import annotations

import json
from pathlib import Path


def check_causal_lm(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is a causal-LM folder with a tokenizer."""
    from backends.llm.models import check_causal_lm_folder

    check_causal_lm_folder(path)


def check_universe_folder(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is (or holds) a universe.json with facts."""
    p = Path(path)
    file = p / "universe.json" if p.is_dir() else p
    if not file.exists():
        raise ValueError(f"{path} holds no universe.json")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not data.get("facts"):
        raise ValueError(f"{file} has no facts; it is not a fact universe")

"""The retrained reference of an LLM forget set, trained once and cached in the project.

MUSE's PrivLeak (spec ``classifier-and-llm-methods.md`` section 8: "PrivLeak = rel. diff of
Min-K AUC vs retain model") compares a membership attack's AUC on the unlearned model with the
same attack on a model *retrained without the forget set*. For the built-in tiny GPT that model is
:func:`backends.llm.zoo.retrain`: a fresh GPT of the same shape and seed trained by the original's
recipe (its tokenizer, its filler sentences, its train spec and exactly the steps it trained) on
the retain facts only.

Entries live in ``<project>/cache/llm/<key>/`` where the key hashes the original's weights and
recipe and the forget set's fact ids, so the same request never trains twice (the pattern of
:mod:`backends.classifier.references`). The reference of the default forget set of the shipped
tiny GPT is shipped too (``resources/models/tiny-gpt/references/<key>/``, weights and build record
only; the tokenizer and universe are the original's) and is copied into the cache instead of being
trained again (about 15 minutes on one CPU thread, 1.5 on a GPU).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.llm.universe import FactSplit

__all__ = ["REFERENCES", "reference_key", "retrained_reference", "load_reference"]

#: folder beside a built model holding shipped retrained references
REFERENCES = "references"
_WEIGHTS = ("model.safetensors", "config.json", "generation_config.json", "build.json")


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def reference_key(original: Path, split: FactSplit) -> str:
    """16 hex digits naming the retrained reference of ``split`` for the model in ``original``:
    its weights, its build recipe (train spec and steps) and the forget fact ids."""
    from backends.llm.zoo import BUILD_FILE

    meta = json.loads((original / BUILD_FILE).read_text())
    payload = {
        "weights": _file_hash(original / "model.safetensors"),
        "recipe": {k: meta.get(k) for k in ("recipe", "variant", "train_spec", "steps")},
        "forget": sorted(f.id for f in split.forget),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def retrained_reference(
    original: Path,
    split: FactSplit,
    cache_root: Path,
    *,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> Path:
    """The folder of the retrained reference of ``split`` (weights; tokenizer = the original's).

    Looked up in ``cache_root/<key>``, then among the original's shipped references (copied into
    the cache), else trained with :func:`backends.llm.zoo.retrain` into the cache. The original
    must be a zoo build (it has a ``build.json`` with its recipe); any other model raises a
    ``ValueError`` saying so.
    """
    from backends.llm.zoo import BUILD_FILE, retrain

    original = Path(original)
    if not (original / BUILD_FILE).is_file():
        raise ValueError(
            f"{original} has no {BUILD_FILE}: PrivLeak needs a model retrained without the forget "
            "set by the original's recipe, which only models built by backends.llm.zoo record"
        )
    key = reference_key(original, split)
    folder = cache_root / key
    if (folder / "model.safetensors").is_file():
        return folder
    shipped = original / REFERENCES / key
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if (shipped / "model.safetensors").is_file():
        if log is not None:
            log(f"retrained reference {key}: copied from the shipped {shipped}")
        tmp.mkdir(parents=True)
        for name in _WEIGHTS:
            if (shipped / name).is_file():
                shutil.copy2(shipped / name, tmp / name)
    else:
        if log is not None:
            log(
                f"retrained reference {key}: training it without the {len(split.forget)} forget "
                f"facts by the original's recipe (once; cached in {cache_root})"
            )
        retrain(
            original,
            tmp,
            forget_kind=split.kind,
            target=split.target,
            hops=split.hops,
            device=device,
            log=log,
        )
        trained = json.loads((tmp / BUILD_FILE).read_text())["forget"]["fact_ids"]
        if sorted(trained) != sorted(f.id for f in split.forget):
            shutil.rmtree(tmp, ignore_errors=True)
            raise ValueError("retrain: the retrained forget set differs from the requested one")
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(folder)
    return folder


def load_reference(folder: Path, device: str = "cpu") -> Any:
    """The retrained model in ``folder``, in eval mode on ``device``."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    return model.to(device).eval()

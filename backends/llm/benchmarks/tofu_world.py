"""The tiny GPT's fact universe written in the TOFU layout, so every TOFU metric runs on the
built-in model (issue 17, "Done means").

For a forget set of the universe (default: the first person and its co-occurrence neighbourhood,
the forget set whose retrained reference ships with the tiny GPT):

- ``forgetNN.json``: per forget fact its QA pair (question, answer = the object), the very text
  the model trained on and an unlearning method trains on; ``NN`` = the forget set's share of the
  trained facts in percent, rounded (``forget03`` for the default set: 25 of 900 facts);
- ``retain{100-NN}.json``: the QA pairs of the retain facts an unlearning method may train on:
  every retain fact EXCEPT those of ``retain_perturbed`` (evaluation stays disjoint from training;
  at most half the retain facts are held out for it);
- ``forgetNN_perturbed.json`` and ``retain_perturbed.json`` (a seeded subset of the retain facts,
  ``n_retain_eval``): question, answer, ``paraphrased_answer`` = the fact's first held-out
  paraphrase (a sentence never used for training, by the model or any method) and
  ``perturbed_answer`` = the same sentence with the object replaced by ``n_perturbed`` other
  objects of the same relation (seeded): TOFU's "same template, wrong fact";
- ``world.json``: where the files came from (the universe's forget set: kind, target, hops and
  fact ids), which the benchmark jobs use to find the retrained reference (the retain-only model
  of forget quality).

Run ``python -m backends.llm.benchmarks.tofu_world OUT [--model FOLDER]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

from backends.llm.universe import Fact, FactSplit, Universe

__all__ = ["WORLD_FILE", "world_key", "write_tofu_world", "world_split"]

WORLD_FILE = "world.json"


def _perturbed(fact: Fact, sentence: str, others: list[str]) -> list[str]:
    pattern = re.compile(rf"(?<!\w){re.escape(fact.object)}(?!\w)")
    after = sentence.find(fact.subject) + len(fact.subject) if fact.subject in sentence else 0
    m = pattern.search(sentence, after)
    if m is None:
        raise ValueError(f"object {fact.object!r} not in {sentence!r}")
    return [sentence[: m.start()] + o + sentence[m.end() :] for o in others]


def _rows(universe: Universe, facts: list[Fact], n_perturbed: int, seed: int) -> list[dict]:
    by_relation: dict[str, set[str]] = {}
    for f in universe.facts:
        by_relation.setdefault(f.relation, set()).add(f.object)
    rng = random.Random(seed)
    rows = []
    for f in facts:
        others = sorted(by_relation[f.relation] - {f.object})
        chosen = rng.sample(others, min(n_perturbed, len(others)))
        if not chosen:
            continue  # a relation with one object has no wrong answer to compare with
        para = f.held_out[0]
        rows.append(
            {
                "question": f.question,
                "answer": f.object,
                "paraphrased_answer": para,
                "perturbed_answer": _perturbed(f, para, chosen),
            }
        )
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def world_key(universe_file: Path, kind: str, target: str, hops: int, **extra: Any) -> str:
    """16 hex digits naming a converted world (the universe file and the split's recipe)."""
    h = hashlib.sha256(universe_file.read_bytes())
    h.update(json.dumps([kind, target, hops, extra], sort_keys=True).encode())
    return h.hexdigest()[:16]


def write_tofu_world(
    universe: Universe,
    split: FactSplit,
    out: str | Path,
    *,
    n_retain_eval: int = 100,
    n_perturbed: int = 5,
    seed: int = 0,
) -> str:
    """Write ``split`` of ``universe`` in the TOFU layout into ``out``; returns the forget split's
    name (``forgetNN``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trained = len(split.forget) + len(split.retain)
    pct = min(99, max(1, round(100 * len(split.forget) / trained)))
    name, retain_name = f"forget{pct:02d}", f"retain{100 - pct:02d}"
    rng = random.Random(seed)
    # at most half the retain facts are scored, so a method always has retain texts to train on
    n_eval = min(n_retain_eval, len(split.retain) // 2)
    eval_retain = sorted(rng.sample(range(len(split.retain)), n_eval))
    eval_ids = {split.retain[i].id for i in eval_retain}
    _write(
        out / f"{name}.json", [{"question": f.question, "answer": f.object} for f in split.forget]
    )
    _write(
        out / f"{retain_name}.json",
        [
            {"question": f.question, "answer": f.object}
            for f in split.retain
            if f.id not in eval_ids
        ],
    )
    _write(out / f"{name}_perturbed.json", _rows(universe, split.forget, n_perturbed, seed))
    _write(
        out / "retain_perturbed.json",
        _rows(universe, [split.retain[i] for i in eval_retain], n_perturbed, seed + 1),
    )
    manifest = {
        "source": "the tiny GPT's fact universe (backends.llm.universe)",
        "forget_split": name,
        "retain_split": retain_name,
        "forget_kind": split.kind,
        "forget_target": split.target,
        "hops": split.hops,
        "forget_fact_ids": [f.id for f in split.forget],
        "retain_eval_fact_ids": sorted(eval_ids),
        "n_perturbed": n_perturbed,
        "seed": seed,
    }
    (out / WORLD_FILE).write_text(json.dumps(manifest, indent=1))
    return name


def world_split(folder: str | Path, universe: Universe) -> tuple[str, FactSplit]:
    """The forget split name and the universe's :class:`FactSplit` a converted world was written
    from (its ``world.json``)."""
    meta = json.loads((Path(folder) / WORLD_FILE).read_text())
    split = universe.forget_set(meta["forget_kind"], meta["forget_target"], meta["hops"])
    if [f.id for f in split.forget] != meta["forget_fact_ids"]:
        raise ValueError(f"{folder}: written from another universe's forget set")
    return meta["forget_split"], split


def main(argv: list[str] | None = None) -> int:
    from backends.llm.jobs import _split
    from backends.llm.plugin import TINY_GPT
    from backends.llm.zoo import UNIVERSE_FILE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write the TOFU files into")
    parser.add_argument("--model", default=str(TINY_GPT), help="model folder with universe.json")
    parser.add_argument(
        "--forget-kind",
        default="entity",
        choices=("entity", "book"),
        help="forget an entity's neighbourhood or a book",
    )
    parser.add_argument("--target", default="", help="entity or book (empty: the default)")
    parser.add_argument("--hops", type=int, default=1, help="neighbourhood radius")
    args = parser.parse_args(argv)
    universe = Universe.load(Path(args.model) / UNIVERSE_FILE)
    split = _split(universe, args.forget_kind, args.target, args.hops)
    name = write_tofu_world(universe, split, args.out)
    print(f"wrote {name} of {len(split.forget)} facts to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

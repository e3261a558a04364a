"""TOFU-format metrics of NPO on the built-in tiny GPT, next to the original and the retrained
reference (the closing note of issue 17; ``docs/results.md``).

The tiny GPT's universe is written in the TOFU layout (:mod:`.tofu_world`: the default forget set,
25 facts, as ``forget03``; truth ratios on held-out paraphrases no model or method trained on).
The original and the retrained reference (shipped with the tiny GPT: the same recipe without the
forget facts) are scored once; NPO (its default config: 20 epochs, lr 3e-4, beta 0.1, KL retain
term, alpha 5) unlearns ``forget03``'s QA texts with the ``retain97`` QA texts as retain set, once
per seed, each run from the original weights. Every metric has a 95% percentile-bootstrap interval
over questions (forget quality: the forget questions resampled for both models together).

``nice -n 10 env OMP_NUM_THREADS=1 python -m backends.llm.benchmarks.study --seeds 0 1 2
--out docs/tofu-npo-tiny-gpt.json``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

KEYS = (
    "forget_prob",
    "forget_rouge",
    "forget_truth_ratio",
    "forget_quality",
    "retain_prob",
    "retain_rouge",
    "retain_truth_ratio",
    "model_utility",
)


def run(
    seeds: list[int], max_new_tokens: int, n_bootstrap: int, model_dir: Path | None = None
) -> dict[str, Any]:
    import torch

    from backends.common.method import Hooks
    from backends.common.seeding import seed_everything
    from backends.llm.benchmarks.configs import BenchmarkConfig
    from backends.llm.benchmarks.evaluate import score_tofu, tofu_metrics
    from backends.llm.benchmarks.jobs import Source, training_texts
    from backends.llm.benchmarks.loaders import load_tofu
    from backends.llm.benchmarks.tofu_world import write_tofu_world
    from backends.llm.jobs import _split
    from backends.llm.methods import get_method
    from backends.llm.methods.common import LLMData
    from backends.llm.methods.configs import NPOConfig
    from backends.llm.models import load_causal_lm
    from backends.llm.plugin import TINY_GPT
    from backends.llm.references import load_reference, retrained_reference
    from backends.llm.universe import Universe
    from backends.llm.zoo import UNIVERSE_FILE

    torch.set_num_threads(1)
    model_dir = Path(model_dir or TINY_GPT)
    universe = Universe.load(model_dir / UNIVERSE_FILE)
    split = _split(universe, "entity", "", 1)
    work = Path(tempfile.mkdtemp(prefix="h17a-study-"))
    name = write_tofu_world(universe, split, work / "tofu")
    data = load_tofu(work / "tofu", name)
    cfg = BenchmarkConfig(benchmark="tofu", tofu_split=name, max_new_tokens=max_new_tokens)
    boot = {"n_bootstrap": n_bootstrap, "confidence": 0.95, "seed": 0}

    original = load_causal_lm(model_dir, device="cpu")
    tok = original.tokenizer
    t0 = time.perf_counter()
    ref_folder = retrained_reference(model_dir, split, work / "cache")
    reference = load_reference(ref_folder, "cpu")
    ref_scores = score_tofu(reference, tok, data, cfg, 0)
    orig_scores = score_tofu(original.model, tok, data, cfg, 0)
    rows: dict[str, Any] = {
        "original": tofu_metrics(orig_scores, ref_scores, **boot),
        "retrained": tofu_metrics(ref_scores, ref_scores, **boot),
    }
    scored = time.perf_counter() - t0
    info = get_method("npo")
    npo_cfg = NPOConfig()
    forget, retain = training_texts(Source("tofu", work / "tofu", name), data, cfg, 0)
    per_seed, seconds = {}, {}
    for seed in seeds:
        seed_everything(seed)
        model = load_causal_lm(model_dir, device="cpu").model
        t1 = time.perf_counter()
        info.load()(model, LLMData(tok, forget, retain), npo_cfg, Hooks(), seed=seed)
        scores = score_tofu(model, tok, data, cfg, 0)
        per_seed[str(seed)] = tofu_metrics(scores, ref_scores, **boot)
        seconds[str(seed)] = time.perf_counter() - t1
        print(f"seed {seed}: " + ", ".join(f"{k} {per_seed[str(seed)][k]:.3f}" for k in KEYS))
    return {
        "forget_split": name,
        "n_forget": len(data.forget),
        "n_retain_train": len(data.retain),
        "n_retain_eval": len(data.retain_perturbed),
        "max_new_tokens": max_new_tokens,
        "n_bootstrap": n_bootstrap,
        "npo": asdict(npo_cfg),
        "seconds_scoring_original_and_reference": scored,
        "seconds_per_seed": seconds,
        "rows": rows,
        "npo_by_seed": per_seed,
    }


def table(result: dict[str, Any]) -> str:
    """The markdown table of ``docs/results.md``."""
    cols = ["original", *[f"NPO seed {s}" for s in result["npo_by_seed"]], "retrained"]
    sets = [
        result["rows"]["original"],
        *result["npo_by_seed"].values(),
        result["rows"]["retrained"],
    ]
    lines = ["| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for k in KEYS:
        cells = [f"{m[k]:.3f} [{m[k + '_low']:.3f}, {m[k + '_high']:.3f}]" for m in sets]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="NPO seeds")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens per answer")
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--out", default="", help="JSON file to write (empty: print only)")
    args = parser.parse_args(argv)
    result = run(args.seeds, args.max_new_tokens, args.n_bootstrap)
    print(table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

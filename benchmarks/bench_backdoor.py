"""Backdoor evaluation speed on the tiny GPT, one torch thread: tokens per second of the clean and of
the triggered evaluation (greedy cloze completion of the held-out forget paraphrases, the sweep's
exact-match / ROUGE-L measure; and multiple-choice scoring of the same prompts), and the triggered
/ clean time ratio (the trigger makes every prompt longer).

Tokens counted: prompt tokens plus generated tokens (generation), scored sequence tokens
(multiple choice). Rates, not asserted timings; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch

    from backends.llm.backdoor_study import (
        BackdoorEvalConfig,
        _split_for,
        choice_scores,
        eval_pairs,
        score_prompts,
    )
    from backends.llm.methods.common import token_ids
    from backends.llm.models import load_causal_lm
    from backends.llm.triggers import Trigger, trigger_ids
    from backends.llm.universe import Universe
    from workbench.paths import BUILTIN_MODELS

    torch.set_num_threads(1)
    folder = BUILTIN_MODELS / "tiny-gpt"
    loaded = load_causal_lm(folder, device="cpu", attention="eager")
    universe = Universe.load(folder / "universe.json")
    cfg = BackdoorEvalConfig()
    pairs = eval_pairs(universe, _split_for(universe, cfg), cfg, 0)
    tok = loaded.tokenizer
    trigger = Trigger("current year:2025 ", "start")
    n_trig = len(trigger_ids(tok, trigger.text))
    prompt_tokens = sum(len(token_ids(tok, p)) for p, _ in pairs["forget"])
    out: dict[str, float | str] = {"benchmark": "backdoor evaluation"}
    for name, trig in (("clean", None), ("triggered", trigger)):
        extra = n_trig * len(pairs["forget"]) if trig is not None else 0
        score_prompts(loaded.model, tok, pairs["forget"][:4], trig, cfg.max_new_tokens)  # warm
        t0 = time.perf_counter()
        score_prompts(loaded.model, tok, pairs["forget"], trig, cfg.max_new_tokens)
        gen_s = time.perf_counter() - t0
        tokens = prompt_tokens + extra + cfg.max_new_tokens * len(pairs["forget"])
        out[f"{name}_generation_tokens_per_s"] = round(tokens / gen_s, 1)
        out[f"{name}_generation_s"] = round(gen_s, 3)
        t0 = time.perf_counter()
        choice_scores(loaded.model, tok, pairs["forget_mc"], trig)
        mc_s = time.perf_counter() - t0
        mc_tokens = (prompt_tokens + extra + 2 * len(pairs["forget"])) * (1 + cfg.distractors)
        out[f"{name}_choice_tokens_per_s"] = round(mc_tokens / mc_s, 1)
    out["triggered_over_clean_generation_time"] = round(
        float(out["triggered_generation_s"]) / float(out["clean_generation_s"]), 2
    )
    out["prompts"] = len(pairs["forget"])
    out["target"] = "report only (tokens/s of clean and triggered evaluation)"
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The tiny GPT's speed: generation tokens per second, training steps per second, and SKeB
evaluation time per 100 prompts (greedy, the job's defaults), on one torch thread.

Rates, not asserted timings; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch

    from backends.llm.models import apply_prompt, load_causal_lm
    from backends.llm.training import LMTrainSpec, train_lm
    from backends.llm.universe import Universe
    from workbench.jobs import Engine
    from workbench.paths import BUILTIN_MODELS
    from workbench.store import Project

    torch.set_num_threads(1)
    folder = BUILTIN_MODELS / "tiny-gpt"
    lm = load_causal_lm(folder, device="cpu")
    universe = Universe.load(folder / "universe.json")
    out: dict[str, float | str] = {"benchmark": "tiny_gpt", "threads": 1}

    # generation: 20 prompts x 48 new tokens, greedy, no early stop
    prompts = [qa.prompt for qa in universe.qa_pairs()[:20]]
    generated, t0 = 0, time.perf_counter()
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([apply_prompt(lm, p)])
            res = lm.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=48,
                min_new_tokens=48,
                do_sample=False,
                pad_token_id=lm.tokenizer.eos_token_id,
            )
            generated += res.shape[1] - ids.shape[1]
    out["generation_tokens_per_s"] = round(generated / (time.perf_counter() - t0), 1)

    # training: the zoo's plain batches (64 texts) on a copy
    texts = universe.training_texts()[:2000]
    steps = 30
    model = lm.model.train()
    t0 = time.perf_counter()
    train_lm(model, lm.tokenizer, texts, LMTrainSpec(steps=steps, batch_size=64, warmup=1))
    out["train_steps_per_s_batch64"] = round(steps / (time.perf_counter() - t0), 2)

    # SKeB through the engine: 25 questions x 4 framings = 100 prompts
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.open(Path(tmp) / "p", create=True)
        engine = Engine(project)
        t0 = time.perf_counter()
        run_id = engine.submit(
            "llm.skeb",
            {"device": "cpu", "max_questions": 25, "question_source": "all"},
            model="tiny-gpt",
        )
        status = engine.wait(run_id)
        out["skeb_seconds_per_100_prompts"] = round(time.perf_counter() - t0, 1)
        out["skeb_status"] = status
        engine.shutdown()
        project.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Speed of the adversarial-prompt attacks on the tiny text-to-image model, one torch thread
(spec ``diffusion-methods.md`` 6.1 and 6.3):

- UnlearnDiffAtk: optimisation iterations per second (one iteration: a straight-through sample of
  k = 5 slots, the text encoder, one UNet forward and backward, Adam, the simplex projection), and
  the time to the first success on the positive-control case (the never-erased model, a held-out
  plain prompt whose unattacked image the stripe probe judges clean), with the iterations and
  judge calls it took;
- Ring-A-Bell: genetic-search generations per second (population 200, K = 8 tokens).

The model is the built-in tiny pipeline when it is built, else the shipped small test fixture.
Rates, not asserted timings; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch

    from backends.diffusion.attacks.ringabell import concept_vector, genetic_search
    from backends.diffusion.attacks.unlearndiffatk import (
        AttackCase,
        CaseResult,
        Judge,
        pre_attack,
        target_latent,
        unlearndiffatk,
    )
    from backends.diffusion.data import caption_for, prompt_list
    from backends.diffusion.pipeline import encode, load_pipeline
    from backends.diffusion.probes import PROBES_DIR, Probes

    torch.set_num_threads(1)
    model = ROOT / "resources" / "models" / "tiny-sd"
    if not (model / "model_index.json").is_file():
        model = ROOT / "tests" / "fixtures" / "diffusion" / "tiny-sd-small"
    loaded = load_pipeline(model, device="cpu")
    pipe = loaded.pipe
    probes = Probes.load(model / PROBES_DIR)
    judge = Judge(pipe, lambda im: probes.score(im)["striped"])

    # the positive-control case: the first held-out plain prompt and seed judged clean unattacked
    case = result = None
    for i, p in enumerate(prompt_list("benign", probes.world, "eval")):
        candidate = AttackCase(p.text, 1000 + i, caption_for(p.shape, p.colour, concept="striped"))
        pre = pre_attack(judge, candidate)
        if not pre.pre_success:
            case, result = candidate, pre
            break
    assert case is not None and result is not None, "every plain prompt is already striped"
    z = target_latent(loaded, case, 25, 2.0)
    calls = judge.calls
    t0 = time.perf_counter()
    unlearndiffatk(pipe, z, case, judge, result, k=5, n_timesteps=10, iterations=10, seed=0)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    judge.text(case.prompt, case.seed)
    judge_s = time.perf_counter() - t1
    # pure optimisation speed: one block of 30 iterations (its one judge call subtracted)
    probe = CaseResult(case, 0.0, False)
    t2 = time.perf_counter()
    never = Judge(pipe, lambda im: torch.zeros(len(im)).numpy(), threshold=1.0)
    unlearndiffatk(pipe, z, case, never, probe, k=5, n_timesteps=1, iterations=30, seed=1)
    iter_s = (time.perf_counter() - t2 - judge_s) / 30

    train = prompt_list("explicit", probes.world, "train")
    plain = prompt_list("benign", probes.world, "train")
    c_vec = concept_vector(pipe, [p.text for p in train], [p.text for p in plain])
    target = encode(pipe, [case.prompt])[0].float() + 3.0 * c_vec
    gens = 50
    found = genetic_search(pipe, target, length=8, population=200, generations=gens, seed=0)

    print(
        json.dumps(
            {
                "bench": "prompt_attacks",
                "model": model.name,
                "unlearndiffatk_iterations_per_s": round(1.0 / iter_s, 2),
                "unlearndiffatk_case": f"{case.prompt} (seed {case.seed})",
                "unlearndiffatk_success": bool(result.success),
                "unlearndiffatk_s_to_first_success": round(result.seconds_to_success, 2),
                "unlearndiffatk_iterations_to_success": result.iterations,
                "unlearndiffatk_judge_calls": judge.calls - calls,
                "unlearndiffatk_total_s": round(total, 2),
                "judge_s_per_image": round(judge_s, 3),
                "ringabell_generations_per_s": round(gens / found.seconds, 2),
                "ringabell_population": 200,
                "target": "reported rates (no target)",
            }
        )
    )


if __name__ == "__main__":
    main()

"""ResAlign's cost on the built-in tiny text-to-image model, one torch thread in CPU seconds (or
the GPU's wall time when one is present): the time of one outer step (the default config's 3 sampled scenarios) split into
inner simulation, hypergradient (θ*'s harmful gradient + the fixed point) and direct/retain
losses; the same split per scenario kind at 10 inner steps; and the peak memory against the number
of inner steps (autograd's saved-tensor bytes on any device, plus CUDA's peak allocation on a
GPU), which the fixed-point hypergradient keeps flat (spec ``diffusion-methods.md`` section 1).

Reported numbers, not asserted timings; prints one JSON line.
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

    from backends.common.method import Hooks
    from backends.diffusion.concepts import shapes_concept
    from backends.diffusion.methods.configs import ResAlignConfig
    from backends.diffusion.methods.hypergrad import SavedTensorMeter
    from backends.diffusion.methods.resalign import Scenario, Trainer
    from backends.diffusion.pipeline import load_pipeline
    from backends.diffusion.zoo import TINY_SD

    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = Path(os.environ.get("BENCH_RESALIGN_MODEL", str(TINY_SD)))
    pipe = load_pipeline(model, device=device).pipe
    cfg = ResAlignConfig()
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    trainer = Trainer(pipe, shapes_concept("stripes"), cfg, Hooks(), gen, 0)
    setup = time.perf_counter() - t0
    # CPU seconds of this process on one thread: the machine may be shared, wall time is not
    # this code's cost (on a GPU, wall time: CUDA runs asynchronously of the CPU clock)
    clock = time.perf_counter if device == "cuda" else time.process_time
    trainer.clock = clock
    for name in ("benign", "benign1", "benign2", "benign3"):
        trainer.dataset(name)  # generate the fine-tuning sets outside the timings
    trainer.scenario_gradient(Scenario(1e-3, 2, "gd", "lora", "benign1"), cfg.lam, cfg.alpha)

    def split(scenarios: list[Scenario]) -> dict[str, float]:
        out = {"inner": 0.0, "hypergradient": 0.0, "retain": 0.0}
        t0 = clock()
        for sc in scenarios:
            report = trainer.scenario_gradient(sc, cfg.lam, cfg.alpha)
            for k, v in report.seconds.items():
                out[k] += v
        out["total"] = clock() - t0
        return {k: round(v, 3) for k, v in out.items()}

    outer = [split(trainer.sample_scenarios()) for _ in range(3)]
    kinds = {
        f"{mode}-{opt}": split([Scenario(1e-3, 10, opt, mode, "benign1")])
        for mode, opt in (("lora", "gd"), ("lora", "adam"), ("full", "adam"), ("dreambooth", "gd"))
    }
    memory = {}
    for steps in (5, 10, 20, 30):
        meter = SavedTensorMeter()
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with meter.hooks():
            trainer.scenario_gradient(Scenario(1e-3, steps, "gd", "lora", "benign1"), 0.8, 1.6)
        entry = {"saved_tensor_peak_mb": round(meter.peak / 2**20, 3)}
        if device == "cuda":
            entry["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        memory[str(steps)] = entry
    print(
        json.dumps(
            {
                "benchmark": "resalign",
                "model": model.name,
                "device": device,
                "lora_parameters": sum(p.numel() for p in trainer.adapter.params.values()),
                "clock": "wall" if device == "cuda" else "cpu (process_time, 1 thread)",
                "setup_wall_s": round(setup, 2),
                "outer_step_s": outer,
                "scenario_10_steps_s": kinds,
                "memory_vs_inner_steps": memory,
                "target": "memory flat in the inner steps; an outer step of a few seconds on CPU",
            }
        )
    )


if __name__ == "__main__":
    main()

"""The tiny text-to-image pipeline's speed on one torch thread: sampling images per second
(DDIM 25 steps, CFG, batch 32), ESD seconds per step (its default config), and one training step
of the recipe's UNet layout (attention only at the lowest resolution) against the same UNet with
cross-attention at every resolution (the tiny-models note measured 0.26 vs 0.47 s/step).

Rates and ratios, not asserted timings; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _train_step_seconds(unet: object, cross_dim: int, batch: int = 32, repeats: int = 5) -> float:
    import torch

    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    size = unet.config.sample_size
    x = torch.randn(batch, 4, size, size)
    cond = torch.randn(batch, 16, cross_dim)
    t = torch.randint(0, 1000, (batch,))
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        loss = unet(x, t, encoder_hidden_states=cond).sample.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from backends.diffusion.concepts import shapes_concept
    from backends.diffusion.methods import get_method
    from backends.diffusion.pipeline import generate, load_pipeline
    from backends.diffusion.zoo import TINY_SD, VARIANTS, make_unet

    torch.set_num_threads(1)
    out: dict[str, float | str] = {"benchmark": "tiny_sd", "threads": 1}
    loaded = load_pipeline(TINY_SD)
    prompts = ["a striped red circle", "a blue square"] * 16
    generate(loaded, prompts[:2], [0, 1], steps=2)  # warm-up
    t0 = time.perf_counter()
    generate(loaded, prompts, list(range(len(prompts))), steps=25, guidance=2.0)
    out["sampling_images_per_s"] = round(len(prompts) / (time.perf_counter() - t0), 2)

    info = get_method("esd")
    cfg = replace(info.config(), iterations=20)
    t0 = time.perf_counter()
    info.load()(loaded.pipe, cfg, shapes_concept("stripes"), seed=0, log=lambda _m: None)
    out["esd_seconds_per_step"] = round((time.perf_counter() - t0) / cfg.iterations, 3)

    v = VARIANTS["full"]
    low = make_unet(v, v.text_width)
    full = UNet2DConditionModel.from_config(
        {
            **dict(low.config),
            "down_block_types": ("CrossAttnDownBlock2D",) * 2,
            "up_block_types": ("CrossAttnUpBlock2D",) * 2,
        }
    )
    s_low = _train_step_seconds(low, v.text_width)
    s_full = _train_step_seconds(full, v.text_width)
    out["train_step_s_attention_lowest_res"] = round(s_low, 3)
    out["train_step_s_attention_every_res"] = round(s_full, 3)
    out["attention_layout_speedup"] = round(s_full / s_low, 2)
    out["target"] = "report only (the recipe's layout choice: about 1.8x)"
    print(json.dumps(out))


if __name__ == "__main__":
    main()

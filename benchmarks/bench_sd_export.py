"""Single-file SD export round trip (issue 17 part 5): export a pipeline in the original SD key
layout, load it back with diffusers' ``from_single_file`` and a local config folder, and report
the largest UNet / text-encoder / VAE output difference, the key counts per prefix, the file
sizes (float32 and float16) and the export and load times. One torch thread; prints one JSON
line per model. Reported numbers, not asserted timings.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sd_export.py
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


def measure(label: str, pipe: object, out: Path) -> dict[str, object]:
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors import safe_open

    from backends.diffusion.export import export_single_file

    t0 = time.perf_counter()
    file = export_single_file(pipe, out / "fp32", name="m")
    t_export = time.perf_counter() - t0
    half = export_single_file(pipe, out / "fp16", name="m", half=True)
    t0 = time.perf_counter()
    back = StableDiffusionPipeline.from_single_file(
        str(file), config=str(file.parent), local_files_only=True, safety_checker=None
    )
    t_load = time.perf_counter() - t0
    with safe_open(str(file), "pt") as f:
        keys = list(f.keys())
    prefixes = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")
    u = pipe.unet.config  # type: ignore[attr-defined]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, u.in_channels, u.sample_size, u.sample_size, generator=gen)
    c = torch.randn(2, 6, u.cross_attention_dim, generator=gen)
    ids = pipe.tokenizer(["a striped red circle"], return_tensors="pt").input_ids  # type: ignore[attr-defined]
    size = u.sample_size * pipe.vae_scale_factor  # type: ignore[attr-defined]
    img = torch.rand(1, 3, size, size, generator=gen) * 2 - 1
    with torch.no_grad():
        d_unet = (
            (
                pipe.unet(x, torch.tensor([10, 700]), encoder_hidden_states=c).sample  # type: ignore[attr-defined]
                - back.unet(x, torch.tensor([10, 700]), encoder_hidden_states=c).sample
            )
            .abs()
            .max()
        )
        d_text = (pipe.text_encoder(ids)[0] - back.text_encoder(ids)[0]).abs().max()  # type: ignore[attr-defined]
        z = pipe.vae.encode(img).latent_dist.mean  # type: ignore[attr-defined]
        d_vae = (pipe.vae.decode(z).sample - back.vae.decode(z).sample).abs().max()  # type: ignore[attr-defined]
    return {
        "model": label,
        "keys": {p: sum(k.startswith(p) for k in keys) for p in prefixes},
        "keys_total": len(keys),
        "max_abs_diff": {"unet": float(d_unet), "text_encoder": float(d_text), "vae": float(d_vae)},
        "bytes_fp32": file.stat().st_size,
        "bytes_fp16": half.stat().st_size,
        "export_s": round(t_export, 2),
        "load_s": round(t_load, 2),
    }


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from backends.diffusion.pipeline import load_pipeline
    from backends.diffusion.plugin import TINY_SD
    from tests.backends.test_diffusion_export import sd1_shaped_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        for label, pipe in (
            ("sd1-shaped tiny (random)", sd1_shaped_pipeline()),
            ("built-in tiny-sd", load_pipeline(TINY_SD).pipe),
        ):
            out = Path(tmp) / label.split()[0]
            print(json.dumps(measure(label, pipe, out)))


if __name__ == "__main__":
    main()

"""`make gpu-check`: one step of each family's main job on CUDA with real-architecture,
random-weight models, printing throughput and peak memory (issue 17, "GPU").

- **LLM**: one NPO step (the shared loop of ``backends/llm/methods/common.py``: accelerate,
  gradient accumulation, the reference copy) on a GPT-2-small-sized LM (``GPT2Config()``: 124 M
  parameters, 12 layers, d = 768, vocabulary 50257), bfloat16 on a GPU; its memory estimate
  (``backends/llm/memory.py``) is printed beside the measured peak;
- **diffusion**: one ESD step (a frozen copy predicts the unconditional and the concept noise,
  the trained UNet is pulled towards ``e0 - eta (ec - e0)``; spec ``diffusion-methods.md``
  section 1) on an SD-1.x-sized UNet (``UNet2DConditionModel`` with SD 1.5's block layout:
  860 M parameters, 64x64x4 latents, 77x768 text states);
- **classifier**: one SGD step of cross-entropy on ResNet-18 (transformers' ``ResNetConfig``,
  basic blocks 2-2-2-2, widths 64-512) at CIFAR scale (32x32, 10 classes).

Without CUDA it says so and runs the same three steps on the CPU at a tiny size (so the script
is tested on any machine), and exits 0. Prints one line per family and, with ``--json PATH``,
writes them as JSON. Reported numbers, never asserted (``docs/results.md``).

    python benchmarks/gpu_check.py [--steps 3] [--json out.json] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class NumberTokenizer:
    """A stand-in tokenizer for random-weight LMs: a text is space-separated token ids."""

    bos_token_id, eos_token_id, pad_token_id = 0, 1, 1

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [int(t) for t in text.split()]}


class Meter:
    """Wall time per step and peak memory (CUDA allocator peak, or the process's peak RSS)."""

    def __init__(self, device: Any) -> None:
        import torch

        self.device, self.cuda = device, device.type == "cuda"
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def sync(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()

    def peak_gib(self) -> float:
        import torch

        if self.cuda:
            return torch.cuda.max_memory_allocated() / 1024**3
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3


def timed(step: Callable[[], None], meter: Meter, steps: int) -> float:
    """Seconds per step over ``steps`` steps after one warm-up step."""
    step()
    meter.sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    meter.sync()
    return (time.perf_counter() - t0) / steps


def llm_step(device: Any, big: bool, steps: int) -> dict[str, Any]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from backends.common.method import Hooks
    from backends.llm.memory import Shape, estimate
    from backends.llm.methods.common import LLMData
    from backends.llm.methods.configs import NPOConfig
    from backends.llm.methods.npo import unlearn

    tiny = {"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 1000}
    config = GPT2Config() if big else GPT2Config(**tiny, bos_token_id=0, eos_token_id=1)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batch, seq = (8, 512) if big else (2, 32)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).to(device=device, dtype=dtype)
    params = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(0)
    texts = [
        " ".join(map(str, torch.randint(2, config.vocab_size, (seq - 1,), generator=g).tolist()))
        for _ in range(batch)
    ]
    data = LLMData(NumberTokenizer(), texts, texts)
    cfg = NPOConfig(epochs=1, batch_size=batch, lr=1e-5, max_length=seq, retain_loss="nll")
    meter = Meter(device)
    seconds = timed(lambda: unlearn(model, data, cfg, Hooks(), seed=0), meter, steps)
    predicted = estimate(
        params,
        Shape.from_config(config.to_dict()),
        dtype="bfloat16" if dtype == torch.bfloat16 else "float32",
        batch_size=batch,
        max_length=seq,
        reference=True,
        on_gpu=device.type == "cuda",
    )
    return {
        "family": "llm",
        "job": "llm.unlearn.npo (one step, retain NLL)",
        "model": f"GPT-2 {params / 1e6:.1f} M params, {str(dtype).replace('torch.', '')}",
        "batch": f"{batch} x {seq} tokens (+ the retain batch)",
        "seconds_per_step": seconds,
        "throughput": f"{2 * batch * seq / seconds:,.0f} tokens/s",
        "peak_gib": meter.peak_gib(),
        "estimate_gib": predicted.total / 1024**3,
    }


def diffusion_step(device: Any, big: bool, steps: int) -> dict[str, Any]:
    import copy

    import torch
    from diffusers import UNet2DConditionModel

    if big:  # Stable Diffusion 1.x's UNet layout
        unet = UNet2DConditionModel(
            sample_size=64,
            cross_attention_dim=768,
            attention_head_dim=8,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
        )
        batch, size, tokens, width = 4, 64, 77, 768
    else:
        unet = UNet2DConditionModel(
            sample_size=16,
            cross_attention_dim=32,
            attention_head_dim=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            norm_num_groups=8,
        )
        batch, size, tokens, width = 2, 16, 8, 32
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    unet = unet.to(device=device, dtype=dtype)
    frozen = copy.deepcopy(unet).requires_grad_(False).eval()
    params = sum(p.numel() for p in unet.parameters())
    opt = torch.optim.Adam(unet.parameters(), lr=1e-5)
    g = torch.Generator(device="cpu").manual_seed(0)
    latents = torch.randn(batch, 4, size, size, generator=g).to(device, dtype)
    concept = torch.randn(batch, tokens, width, generator=g).to(device, dtype)
    empty = torch.randn(batch, tokens, width, generator=g).to(device, dtype)
    t = torch.randint(0, 1000, (batch,), generator=g).to(device)
    eta = 1.0

    def step() -> None:
        with torch.no_grad():
            e0 = frozen(latents, t, encoder_hidden_states=empty).sample
            ec = frozen(latents, t, encoder_hidden_states=concept).sample
        target = e0 - eta * (ec - e0)
        loss = torch.nn.functional.mse_loss(
            unet(latents, t, encoder_hidden_states=concept).sample.float(), target.float()
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    meter = Meter(device)
    seconds = timed(step, meter, steps)
    return {
        "family": "diffusion",
        "job": "diffusion.unlearn.esd (one step)",
        "model": f"UNet {params / 1e6:.1f} M params, {str(dtype).replace('torch.', '')}",
        "batch": f"{batch} latents {size}x{size}x4, {tokens}x{width} text states",
        "seconds_per_step": seconds,
        "throughput": f"{batch / seconds:,.2f} images/s",
        "peak_gib": meter.peak_gib(),
    }


def classifier_step(device: Any, big: bool, steps: int) -> dict[str, Any]:
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    widths = [64, 128, 256, 512] if big else [8, 16, 32, 64]
    config = ResNetConfig(
        embedding_size=widths[0],
        hidden_sizes=widths,
        depths=[2, 2, 2, 2],
        layer_type="basic",
        num_labels=10,
    )
    torch.manual_seed(0)
    model = ResNetForImageClassification(config).to(device)
    params = sum(p.numel() for p in model.parameters())
    batch = 256 if big else 4
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(pixel_values=x).logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    meter = Meter(device)
    seconds = timed(step, meter, steps)
    return {
        "family": "classifier",
        "job": "classifier.unlearn (one SGD step of cross-entropy)",
        "model": f"ResNet-18 {params / 1e6:.1f} M params, float32",
        "batch": f"{batch} images 32x32",
        "seconds_per_step": seconds,
        "throughput": f"{batch / seconds:,.0f} images/s",
        "peak_gib": meter.peak_gib(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--cpu", action="store_true", help="the tiny CPU run even with CUDA")
    args = parser.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    if cuda:
        device = torch.device("cuda")
        print(f"CUDA: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    else:
        device = torch.device("cpu")  # torch's threads as OMP_NUM_THREADS says
        print(
            "no CUDA GPU on this machine: running the same steps on the CPU at a tiny size "
            "(peak memory is the process's peak RSS)"
        )
    results = []
    for check in (llm_step, diffusion_step, classifier_step):
        out = check(device, cuda, args.steps)
        out["device"] = str(device)
        results.append(out)
        extra = f", estimate {out['estimate_gib']:.2f} GiB" if "estimate_gib" in out else ""
        print(
            f"{out['family']:<10} {out['job']}: {out['model']}; {out['batch']}; "
            f"{out['seconds_per_step']:.3f} s/step, {out['throughput']}, "
            f"peak {out['peak_gib']:.2f} GiB{extra}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The diffusion family's reproduction study on the built-in tiny model (docs/results.md).

``python -m backends.diffusion.studies report [--model DIR] [--control DIR] [--out FILE]``

1. Erase the stripe concept with ESD, UCE, CA and SalUn (their default configs); measure the
   concept rate on explicit ("striped") and implicit ("zebra") prompts and benign utility.
2. Benign downstream fine-tuning (spec 6.6; full UNet, 200 steps) of the ESD- and UCE-erased
   models: the recovery curve.
3. MemoRa (spec section 2) on the ESD- and UCE-erased models, with the never-learned control
   (``--control``; built with ``python -m backends.diffusion.zoo build --concept-free-from``).

Writes a JSON of every number and prints the markdown tables of docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from backends.diffusion.zoo import TINY_SD


def _evaluator(loaded: Any, probes: Any, samples: int) -> Any:
    from backends.diffusion.evaluate import evaluate_prompt_sets

    def run(**kw: Any) -> dict[str, float]:
        return evaluate_prompt_sets(loaded, probes, sets=("explicit", "implicit", "benign"),
                                    samples_per_prompt=samples, **kw).metrics  # fmt: skip

    return run


def report(model: Path, control: Path | None, samples: int, methods: list[str],
           attacked: list[str], log: Any = print, device: str = "cpu",
           save: Any = None, relearn: dict[str, Any] | None = None,
           with_memora: bool = True) -> dict[str, Any]:  # fmt: skip
    """Run the study; ``save(result)`` is called after each stage (partial results survive)."""
    save = save or (lambda _r: None)
    from backends.diffusion.attacks.configs import MemoRaConfig, RelearnConfig
    from backends.diffusion.attacks.memora import memora
    from backends.diffusion.attacks.relearn import relearn as finetune
    from backends.diffusion.attacks.relearn import relearn_data
    from backends.diffusion.concepts import shapes_concept
    from backends.diffusion.methods import get_method
    from backends.diffusion.pipeline import load_pipeline
    from backends.diffusion.probes import PROBES_DIR, Probes

    probes = Probes.load(model / PROBES_DIR)
    concept = shapes_concept("stripes", probes.world)
    original = load_pipeline(model, device=device)
    out: dict[str, Any] = {"model": str(model), "samples_per_prompt": samples, "erase": {}}
    out["original"] = _evaluator(original, probes, samples)()
    log(f"original: {out['original']}")
    save(out)
    for name in methods:
        info = get_method(name)
        loaded = load_pipeline(model, device=device)
        t0 = time.perf_counter()
        info.load()(loaded.pipe, info.config(), concept, seed=0, log=lambda _m: None)
        seconds = time.perf_counter() - t0
        metrics = _evaluator(loaded, probes, samples)()
        out["erase"][name] = {"seconds": round(seconds, 1), **metrics}
        log(f"{name}: {out['erase'][name]}")
        save(out)
    out["relearn"], out["memora"] = {}, {}
    ctl = load_pipeline(control, device=device) if control else None
    for name in attacked:
        info = get_method(name)
        loaded = load_pipeline(model, device=device)
        info.load()(loaded.pipe, info.config(), concept, seed=0, log=lambda _m: None)
        images, captions = relearn_data("benign", probes.world, 256, 7, concept.word)
        ev = _evaluator(loaded, probes, samples)
        run = finetune(loaded.pipe, RelearnConfig(**(relearn or {})), images, captions,
                      evaluate=lambda step, ev=ev: ev(), seed=0, log=lambda _m: None)  # fmt: skip
        out["relearn"][name] = run.curve
        save(out)
        log(
            f"{name} + benign fine-tuning: {[(s, m['concept_rate/explicit']) for s, m in run.curve]}"
        )
        if not with_memora:
            continue
        erased = load_pipeline(model, device=device)
        info.load()(erased.pipe, info.config(), concept, seed=0, log=lambda _m: None)
        evals = {id(original.pipe): _evaluator(original, probes, samples),
                 id(erased.pipe): _evaluator(erased, probes, samples)}  # fmt: skip
        if ctl is not None:
            fresh = load_pipeline(control, device=device)
            evals[id(fresh.pipe)] = _evaluator(fresh, probes, samples)
        cfg = MemoRaConfig(original_rate=out["original"]["concept_rate/explicit"])
        res = memora(original.pipe, erased.pipe, cfg, evaluate=lambda p, s, evals=evals: evals[id(p)](),
                     control_pipe=fresh.pipe if ctl is not None else None, seed=0,
                     log=lambda _m: None)  # fmt: skip
        out["memora"][name] = res.summary()
        save(out)
        log(f"{name} + MemoRa: {res.label} at {res.steps_to_recover}; control {res.control_label}")
    return out


def markdown(result: dict[str, Any]) -> str:
    o = result["original"]
    lines = ["| Model | explicit rate | implicit rate | benign rate | benign accuracy | feature FID | seconds |",
             "|---|---|---|---|---|---|---|",
             f"| original | {o['concept_rate/explicit']:.3f} | {o['concept_rate/implicit']:.3f} | "
             f"{o['concept_rate/benign']:.3f} | {o['utility/accuracy']:.3f} | {o['utility/feature_fid']:.1f} | — |"]  # fmt: skip
    for name, m in result["erase"].items():
        lines.append(f"| {name.upper()} | {m['concept_rate/explicit']:.3f} | {m['concept_rate/implicit']:.3f} | "
                     f"{m['concept_rate/benign']:.3f} | {m['utility/accuracy']:.3f} | {m['utility/feature_fid']:.1f} | {m['seconds']} |")  # fmt: skip
    for name, curve in result.get("relearn", {}).items():
        lines += ["", f"Benign fine-tuning of the {name.upper()}-erased model (explicit / implicit rate, accuracy):", "",
                  "| step | " + " | ".join(str(s) for s, _ in curve) + " |",
                  "|---|" + "---|" * len(curve),
                  "| explicit | " + " | ".join(f"{m['concept_rate/explicit']:.3f}" for _, m in curve) + " |",
                  "| implicit | " + " | ".join(f"{m['concept_rate/implicit']:.3f}" for _, m in curve) + " |",
                  "| accuracy | " + " | ".join(f"{m['utility/accuracy']:.3f}" for _, m in curve) + " |"]  # fmt: skip
    for name, s in result.get("memora", {}).items():
        curve = s["curve"]
        lines += ["", f"MemoRa on the {name.upper()}-erased model: **{s['label']}** (threshold "
                  f"{s['threshold']:.3f} = half the original's rate, reached at step {s['steps_to_recover']}); "
                  f"control: {s['control_label']} ({s['control_steps_to_recover']}).", "",
                  "| LoRA step | " + " | ".join(str(st) for st, _ in curve) + " |",
                  "|---|" + "---|" * len(curve),
                  "| erased + LoRA | " + " | ".join(f"{m['concept_rate/explicit']:.3f}" for _, m in curve) + " |"]  # fmt: skip
        if s.get("control_curve"):
            lines.append("| control + LoRA | " + " | ".join(f"{m['concept_rate/explicit']:.3f}" for _, m in s["control_curve"]) + " |")  # fmt: skip
    return "\n".join(lines)


def _relearn_overrides(args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.relearn_lr is not None:
        out["lr"] = args.relearn_lr
    if args.relearn_steps is not None:
        out["steps"] = args.relearn_steps
    if args.eval_steps:
        out["eval_steps"] = [int(x) for x in args.eval_steps.split(",")]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends.diffusion.studies")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="erase, fine-tune and MemoRa on the tiny model")
    r.add_argument("--model", type=Path, default=TINY_SD)
    r.add_argument("--control", type=Path, default=None)
    r.add_argument("--samples", type=int, default=4, help="images per prompt (16 prompts a set)")
    r.add_argument("--methods", default="esd,uce,ca,salun")
    r.add_argument("--attacked", default="esd,uce")
    r.add_argument("--out", type=Path, default=Path("diffusion-study.json"))
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--device", default="cpu")
    r.add_argument(
        "--relearn-lr", type=float, default=None, help="fine-tuning lr (default: config)"
    )
    r.add_argument("--relearn-steps", type=int, default=None)
    r.add_argument("--eval-steps", default=None, help="e.g. 0,100,250,500")
    r.add_argument("--no-memora", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    result = report(args.model, args.control, args.samples,
                    [m for m in args.methods.split(",") if m],
                    [m for m in args.attacked.split(",") if m], device=args.device,
                    relearn=_relearn_overrides(args), with_memora=not args.no_memora,
                    save=lambda r: args.out.write_text(json.dumps(r, indent=1)))  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

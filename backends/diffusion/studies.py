"""The diffusion family's reproduction study on the built-in tiny model (docs/results.md).

``python -m backends.diffusion.studies report [--model DIR] [--control DIR] [--out FILE]``

1. Erase the stripe concept with ESD, UCE, CA and SalUn (their default configs), trained on the
   TRAIN half of the shape x colour prompts; measure on the disjoint EVAL half (other
   combinations, other seeds): concept rate on explicit ("striped"), implicit ("zebra") and plain
   prompts with exact 95% intervals, specificity (explicit - plain, bootstrap interval), the
   erasure verdict (:func:`backends.diffusion.verdicts.erasure_verdict`) and benign utility.
2. Benign downstream fine-tuning (spec 6.6; full UNet, 200 steps) of the ESD- and UCE-erased
   models: the recovery curve.
3. MemoRa (spec section 2) on the ESD- and UCE-erased models, 3 LoRA seeds, each against its own
   matched control: the never-learned model (``--control``; built with ``python -m
   backends.diffusion.zoo build --concept-free-from``) put through the same erasure method.

Writes a JSON of every number and prints the markdown tables of docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from backends.diffusion.zoo import TINY_SD

ALL_SETS = ("explicit", "implicit", "benign")
EVAL_SEED = 1000


def _evaluator(
    loaded: Any, probes: Any, samples: int, sets: tuple[str, ...] = ALL_SETS, seed: int = EVAL_SEED
) -> Any:
    """Metrics of ``loaded`` on the held-out (``eval``) half of the prompts; ``run`` shifts the
    evaluation seeds (one stride per MemoRa LoRA seed)."""
    from backends.diffusion.evaluation import evaluate_prompt_sets
    from backends.diffusion.jobconfigs import MemoRaJobConfig

    stride = MemoRaJobConfig().eval_seed_stride

    def run(step: int = 0, run: int = 0, **kw: Any) -> dict[str, float]:
        del step
        return evaluate_prompt_sets(
            loaded,
            probes,
            sets=sets,
            samples_per_prompt=samples,
            seed=seed + run * stride,
            split="eval",
            **kw,
        ).metrics

    return run


def _verdict(before: dict[str, float], after: dict[str, float], cc: Any) -> dict[str, Any]:
    from backends.diffusion.verdicts import counts, erasure_verdict

    v = erasure_verdict(
        (counts(before, "explicit"), counts(before, "benign")),
        (counts(after, "explicit"), counts(after, "benign")),
        plain_rise_margin=cc.plain_rise_margin,
        confidence=cc.confidence,
    )
    return v.as_dict()


def _rates(metrics: dict[str, float], cc: Any) -> dict[str, Any]:
    """Each set's rate with its exact interval, and the specificity with its bootstrap interval."""
    from backends.common.stats import rate
    from backends.diffusion.verdicts import counts, specificity

    out: dict[str, Any] = {}
    for name in ALL_SETS:
        if f"images/{name}" in metrics:
            out.update(rate(*counts(metrics, name), cc.confidence).as_dict(f"rate/{name}"))
    spec = specificity(
        counts(metrics, "explicit"), counts(metrics, "benign"), confidence=cc.confidence
    )
    out.update(spec.as_dict("specificity"))
    return out


def report(
    model: Path,
    control: Path | None,
    samples: int,
    methods: list[str],
    attacked: list[str],
    log: Any = print,
    device: str = "cpu",
    save: Any = None,
    relearn: dict[str, Any] | None = None,
    with_memora: bool = True,
    memora_samples: int = 4,
    memora: dict[str, Any] | None = None,
    method_overrides: dict[str, dict[str, Any]] | None = None,
    with_relearn: bool = True,
) -> dict[str, Any]:
    """Run the study; ``save(result)`` is called after each stage (partial results survive).

    Every method erases the concept of the TRAIN half of the prompts and every number is measured
    on the disjoint EVAL half with other seeds (``held_out``); MemoRa runs one matched control per
    erased model (the never-learned ``control`` put through the same method) and
    ``lora_seeds`` LoRA seeds.
    """
    save = save or (lambda _r: None)
    overrides = method_overrides or {}

    def method_config(info: Any) -> Any:
        return info.config(**overrides.get(info.name, {}))

    from backends.common.method import Hooks
    from backends.diffusion.attacks.configs import MemoRaConfig, RelearnConfig
    from backends.diffusion.attacks.memora import memora as run_memora
    from backends.diffusion.attacks.relearn import relearn as finetune
    from backends.diffusion.attacks.relearn import relearn_data
    from backends.diffusion.concepts import shapes_concept
    from backends.diffusion.data import prompt_list
    from backends.diffusion.jobconfigs import ConceptConfig
    from backends.diffusion.methods import get_method
    from backends.diffusion.methods.common import DiffusionData
    from backends.diffusion.pipeline import load_pipeline
    from backends.diffusion.probes import PROBES_DIR, Probes

    cc = ConceptConfig()
    probes = Probes.load(model / PROBES_DIR)
    concept = shapes_concept("stripes", probes.world, split=cc.train_split())
    measured = {
        k: [p.text for p in prompt_list(k, probes.world, cc.eval_split())] for k in ALL_SETS
    }
    original = load_pipeline(model, device=device)
    out: dict[str, Any] = {
        "model": str(model),
        "control": str(control) if control else None,
        "samples_per_prompt": samples,
        "memora_samples_per_prompt": memora_samples,
        "eval_seed": EVAL_SEED,
        "split": {
            "train_forget_prompts": concept.forget_prompts,
            "train_retain_prompts": concept.retain_prompts,
            "measured_prompts": measured,
        },
        "confidence": cc.confidence,
        "plain_rise_margin": cc.plain_rise_margin,
        "erase": {},
        "method_overrides": overrides,
    }
    evaluate_original = _evaluator(original, probes, samples)
    out["original"] = evaluate_original()
    out["original_intervals"] = _rates(out["original"], cc)
    log(f"original: {out['original']}")
    save(out)
    erased_states: dict[str, dict[str, Any]] = {}

    def erased_model(name: str) -> Any:
        """The model erased with ``name`` (seed 0): erased once, its UNet weights reused."""
        loaded = load_pipeline(model, device=device)
        if name in erased_states:
            loaded.pipe.unet.load_state_dict(erased_states[name])
            return loaded
        info = get_method(name)
        info.load()(loaded.pipe, DiffusionData(concept), method_config(info), Hooks(), seed=0)
        erased_states[name] = {
            k: v.detach().clone() for k, v in loaded.pipe.unet.state_dict().items()
        }
        return loaded

    for name in methods:
        t0 = time.perf_counter()
        loaded = erased_model(name)
        seconds = time.perf_counter() - t0
        metrics = _evaluator(loaded, probes, samples)()
        out["erase"][name] = {
            "seconds": round(seconds, 1),
            **metrics,
            "intervals": _rates(metrics, cc),
            "verdict": _verdict(out["original"], metrics, cc),
        }
        log(f"{name}: {out['erase'][name]['verdict']['verdict']} {metrics}")
        save(out)
    out["relearn"], out["memora"] = {}, {}
    mcfg = MemoRaConfig(**(memora or {}))
    for name in attacked:
        info = get_method(name)
        if with_relearn:
            loaded = erased_model(name)
            images, captions = relearn_data("benign", probes.world, 256, 7, concept.word)
            ev = _evaluator(loaded, probes, samples)
            run = finetune(
                loaded.pipe,
                RelearnConfig(**(relearn or {})),
                images,
                captions,
                evaluate=lambda step, ev=ev: ev(),
                seed=0,
                log=lambda _m: None,
            )
            out["relearn"][name] = [[s, {**m, "intervals": _rates(m, cc)}] for s, m in run.curve]
            save(out)
            curve = [(s, m["concept_rate/explicit"]) for s, m in run.curve]
            log(f"{name} + benign fine-tuning: {curve}")
        if not with_memora:
            continue
        erased = erased_model(name)
        evals = {
            id(original.pipe): _evaluator(original, probes, memora_samples, ("explicit",)),
            id(erased.pipe): _evaluator(erased, probes, memora_samples, ("explicit",)),
        }
        ctl = None
        if control is not None:  # this erased model's matched control: the same erasure
            ctl = load_pipeline(control, device=device)
            info.load()(ctl.pipe, DiffusionData(concept), method_config(info), Hooks(), seed=0)
            evals[id(ctl.pipe)] = _evaluator(ctl, probes, memora_samples, ("explicit",))
        ref = out["original"]["concept_rate/explicit"]
        cfg = MemoRaConfig(**{**mcfg.__dict__, "original_rate": ref})
        res = run_memora(
            original.pipe,
            erased.pipe,
            cfg,
            evaluate=lambda p, s, r, evals=evals: evals[id(p)](s, r),
            control_pipe=ctl.pipe if ctl is not None else None,
            confidence=cc.confidence,
            log=lambda _m: None,
        )
        out["memora"][name] = res.summary()
        save(out)
        log(
            f"{name} + MemoRa: {res.label} at {res.steps_to_recover}; control reaches the "
            f"threshold at {res.control_steps_to_threshold}"
        )
    return out


def _ci(d: dict[str, Any], key: str) -> str:
    return f"{d[key]:.3f} [{d[key + '_low']:.3f}, {d[key + '_high']:.3f}]"


def markdown(result: dict[str, Any]) -> str:
    """The study's tables (docs/results.md): held-out erasure with specificity and intervals,
    benign fine-tuning, and MemoRa with per-model controls."""
    n = result["samples_per_prompt"]
    split = result.get("split", {})
    n_prompts = len(split.get("measured_prompts", {}).get("explicit", [])) or 16
    lines = [
        f"Held-out erasure: methods train on {len(split.get('train_forget_prompts', []))} "
        f"forget prompts and are measured on {n_prompts} other shape x colour prompts per set "
        f"x {n} seeds (from {result.get('eval_seed', 1000)}); rates with exact 95% intervals, "
        "specificity = explicit rate - plain-prompt rate with a bootstrap 95% interval; "
        f"'erased' needs the explicit rate and the specificity to fall (intervals apart) and "
        f"the plain-prompt rate not to rise by {result.get('plain_rise_margin', 0.1)} "
        "(upper end of its interval).",
        "",
        "| Model | explicit rate | implicit rate | plain rate | specificity | verdict | benign accuracy | feature FID | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("original", result["original"], result["original_intervals"], "—", "—")]
    rows += [
        (k.upper(), m, m["intervals"], m["verdict"]["verdict"], m["seconds"])
        for k, m in result["erase"].items()
    ]
    for name, m, iv, verdict, secs in rows:
        lines.append(
            f"| {name} | {_ci(iv, 'rate/explicit')} | {_ci(iv, 'rate/implicit')} | "
            f"{_ci(iv, 'rate/benign')} | {_ci(iv, 'specificity')} | {verdict} | "
            f"{m['utility/accuracy']:.3f} | {m['utility/feature_fid']:.1f} | {secs} |"
        )
    for name, curve in result.get("relearn", {}).items():
        lines += [
            "",
            f"Benign fine-tuning of the {name.upper()}-erased model (held-out prompts; rates with 95% intervals):",
            "",
            "| step | explicit | implicit | plain | specificity | accuracy |",
            "|---|---|---|---|---|---|",
        ]
        for s, m in curve:
            iv = m["intervals"]
            lines.append(
                f"| {s} | {_ci(iv, 'rate/explicit')} | {_ci(iv, 'rate/implicit')} | "
                f"{_ci(iv, 'rate/benign')} | {_ci(iv, 'specificity')} | "
                f"{m['utility/accuracy']:.3f} |"
            )
    for name, s in result.get("memora", {}).items():
        ctl = s.get("pooled_control_curve")
        lines += [
            "",
            f"MemoRa on the {name.upper()}-erased model, {len(s['seeds'])} LoRA seeds "
            f"{s['seeds']} pooled ({s['metric']} on held-out prompts, exact 95% intervals): "
            f"**{s['label']}** (threshold {s['threshold']:.3f} = half the original's "
            f"{s['reference']:.3f}; recovered at step {s['steps_to_recover']}; the matched "
            f"control (never-learned model + {name.upper()}) reaches the threshold at step "
            f"{s['control_steps_to_threshold']}).",
            "",
            "| LoRA step | erased + LoRA | control + same erasure + LoRA |",
            "|---|---|---|",
        ]
        ctl_at = {row[0]: row for row in ctl or []}
        for step, v, lo, hi, _n in s["pooled_curve"]:
            c = ctl_at.get(step)
            cs = f"{c[1]:.3f} [{c[2]:.3f}, {c[3]:.3f}]" if c else "—"
            lines.append(f"| {step} | {v:.3f} [{lo:.3f}, {hi:.3f}] | {cs} |")
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


def _memora_overrides(args: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.memora_seeds:
        out["lora_seeds"] = [int(x) for x in args.memora_seeds.split(",")]
    if args.memora_curve_steps:
        out["curve_steps"] = [int(x) for x in args.memora_curve_steps.split(",")]
    if args.memora_interp_steps is not None:
        out["interp_steps"] = args.memora_interp_steps
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends.diffusion.studies")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="erase, fine-tune and MemoRa on the tiny model")
    r.add_argument("--model", type=Path, default=TINY_SD)
    r.add_argument(
        "--control",
        type=Path,
        default=None,
        help="the model's never-learned control (zoo build --concept-free-from); each attacked "
        "method's MemoRa control is this model put through the same erasure",
    )
    r.add_argument(
        "--samples",
        type=int,
        default=8,
        help="images per held-out prompt (8 prompts a set) for the erasure table",
    )
    r.add_argument(
        "--memora-samples",
        type=int,
        default=4,
        help="images per held-out explicit prompt at each MemoRa step and LoRA seed",
    )
    r.add_argument("--memora-seeds", default=None, help="LoRA seeds (default: config, 3 seeds)")
    r.add_argument("--memora-curve-steps", default=None, help="e.g. 0,5 (default: config)")
    r.add_argument("--memora-interp-steps", type=int, default=None)
    r.add_argument("--methods", default="esd,uce,ca,salun")
    r.add_argument("--attacked", default="esd,uce")
    r.add_argument("--out", type=Path, default=Path("diffusion-study.json"))
    r.add_argument("--md", type=Path, default=None, help="also write the markdown tables here")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--device", default="cpu")
    r.add_argument(
        "--relearn-lr", type=float, default=None, help="fine-tuning lr (default: config)"
    )
    r.add_argument("--relearn-steps", type=int, default=None)
    r.add_argument("--eval-steps", default=None, help="e.g. 0,100,250,500")
    r.add_argument("--no-memora", action="store_true")
    r.add_argument("--no-relearn", action="store_true", help="skip benign fine-tuning")
    r.add_argument(
        "--method-overrides",
        default="{}",
        help='JSON of config fields per method, e.g. \'{"esd": {"iterations": 2}}\' (smoke runs)',
    )
    m = sub.add_parser("markdown", help="print the tables of a saved study JSON (partial too)")
    m.add_argument("json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "markdown":
        print(markdown(json.loads(args.json.read_text())))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    result = report(
        args.model,
        args.control,
        args.samples,
        [m for m in args.methods.split(",") if m],
        [m for m in args.attacked.split(",") if m],
        device=args.device,
        relearn=_relearn_overrides(args),
        with_memora=not args.no_memora,
        memora_samples=args.memora_samples,
        memora=_memora_overrides(args),
        method_overrides=json.loads(args.method_overrides),
        with_relearn=not args.no_relearn,
        save=lambda r: args.out.write_text(json.dumps(r, indent=1)),
    )
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["device"] = args.device
    args.out.write_text(json.dumps(result, indent=1))
    text = markdown(result)
    if args.md:
        args.md.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

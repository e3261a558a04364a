"""Build the LLM family's built-in model: ``python -m backends.llm.zoo build [--small OUT]``.

Spec section 5 ("CPU version", steps 1-2): generate the synthetic universe, train a byte-level BPE
on it (plus neutral English filler) and train a tiny GPT-2 from scratch on its fact sentences and
QA pairs, half the steps packed so each text also follows up to 256 tokens of other texts, until
greedy QA recall reaches the target both bare and after a preamble of other facts (or the step
budget ends), then measure QA recall after each SKeB framing and save a plain Hugging Face folder:

- ``model.safetensors`` + ``config.json`` (GPT-2: 4 layers, d=128, 4 heads, 256 positions,
  ``attn_implementation="eager"`` so ``output_attentions`` works) and ``generation_config.json``;
- ``tokenizer.json`` + ``tokenizer_config.json`` (BOS prepended to every encoding);
- ``universe.json`` (:meth:`Universe.to_json`) and ``build.json`` (recipe and measured numbers).

The default is ``resources/models/tiny-gpt/`` (about 1000 facts, 10% of them never trained on: the
membership attacks' non-members, see :mod:`backends.llm.universe`); ``--small OUT`` builds the
~100-fact variant the tests use (shipped under ``tests/fixtures/llm/tiny-gpt-small/``).

``python -m backends.llm.zoo retrain --original DIR --out OUT [--target NAME --hops 1]`` trains the
*retrained* reference of a forget set: the same recipe as the original (its tokenizer, its
filler sentences, its train spec and exactly the number of steps it trained), on the retain facts
only.  MUSE's PrivLeak compares an unlearned model with it (:mod:`backends.llm.references`).  Load back with ``load_model(folder)``, which is just
``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` with
``local_files_only=True`` — the same code path as any HF folder.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from backends.llm.plugin import TINY_GPT
from backends.llm.universe import Universe, UniverseConfig

UNIVERSE_FILE = "universe.json"
BUILD_FILE = "build.json"
N_POSITIONS = 256
VOCAB_SIZE = 1536
# Filler sentences of common English words (:func:`neutral_sentences`) added to the training texts,
# as a share of the universe's texts: context the model learns to read past.
NEUTRAL_SHARE = 0.25
# Greedy recall measured after context, on this many QA pairs (spec: 200).
CONTEXT_EVAL = 200

# (universe config, train spec kwargs, evaluate every n steps, QA recall that stops training).
# The full build aims past the 0.95 requirement at 1.0: every trained fact recalled, so the
# unlearning methods start from a model that knows its whole forget set.
# Every other step is a packed batch of 4 rows of up to N_POSITIONS tokens (other texts before each
# text, see ``LMTrainSpec.pack_tokens``); the others are plain batches of single texts.
PACK = {"pack_tokens": N_POSITIONS, "pack_rows": 4, "pack_share": 0.5}
FULL = (
    UniverseConfig(),
    {**PACK, "steps": 3000, "batch_size": 64, "lr": 3e-3},
    100,
    1.0,
)
SMALL = (
    UniverseConfig.small(),
    {**PACK, "pack_share": 0.25, "steps": 1200, "batch_size": 32, "lr": 3e-3},
    25,
    0.95,
)


def build_gpt(vocab_size: int, tokenizer: Any, seed: int = 0) -> Any:
    """A fresh 4-layer, d=128, 4-head GPT-2 with eager attention (section 5 "CPU version")."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=N_POSITIONS,
        n_embd=128,
        n_layer=4,
        n_head=4,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def _save_folder(out: Path, model: Any, tokenizer: Any, universe: Any) -> Any:
    """Write a tiny GPT folder (weights, config pinned to eager attention, tokenizer, universe)
    the way ``from_pretrained`` reads it back; returns the model, moved to the CPU."""
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu")
    model.save_pretrained(out)
    _pin_eager_attention(out / "config.json")
    tokenizer.save_pretrained(out)
    universe.save(out / UNIVERSE_FILE)
    return model


def _pin_eager_attention(config_file: Path) -> None:
    """``save_pretrained`` drops ``attn_implementation``; written back, ``from_pretrained`` loads
    eager attention (so ``output_attentions=True`` returns the maps) without being asked."""
    config = json.loads(config_file.read_text())
    config["attn_implementation"] = "eager"
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def qa_recall(model: Any, tokenizer: Any, universe: Universe) -> float:
    from backends.llm.training import greedy_recall

    return greedy_recall(
        model, tokenizer, [(q.prompt, q.answer) for q in universe.qa_pairs()]
    ).recall


def _sample_facts(universe: Universe, n: int, seed: int) -> list[Any]:
    import random

    facts = list(universe.trained_facts)
    return random.Random(seed).sample(facts, min(n, len(facts)))


def preamble_recall(
    model: Any, tokenizer: Any, universe: Universe, n: int = CONTEXT_EVAL, seed: int = 0
) -> float:
    """QA recall after a neutral preamble: 1-8 OTHER facts' training sentences (newline-separated)
    before ``"\n" + "Q: ...\nA:"``, on ``n`` sampled QA pairs."""
    import random

    from backends.llm.training import greedy_recall

    rng = random.Random(seed + 1)
    facts = _sample_facts(universe, n, seed)
    pool = [(f.id, s) for f in universe.trained_facts for s in f.sentences]
    pairs = []
    for f in facts:
        others = [s for fid, s in rng.sample(pool, 12) if fid != f.id][: rng.randint(1, 8)]
        pairs.append(("\n".join([*others, f.qa.prompt]), f.qa.answer))
    return greedy_recall(model, tokenizer, pairs).recall


def framing_recall(
    model: Any, tokenizer: Any, universe: Universe, n: int = CONTEXT_EVAL, seed: int = 0
) -> dict[str, Any]:
    """QA recall with each SKeB framing before the QA prompt, exactly as ``run_skeb`` asks a base
    model (``frame(...) + "\n" + qa_prompt(question)``, related entities from the co-occurrence
    graph), on ``n`` sampled QA pairs; also the mean prompt length in tokens per framing."""
    from backends.llm.skeb.framings import FRAMINGS, build_prompts, load_bank
    from backends.llm.skeb.graph import EntityExtractor, build_graph
    from backends.llm.training import greedy_recall
    from backends.llm.universe import qa_prompt

    facts = _sample_facts(universe, n, seed)
    graph = build_graph(universe.chapters(), universe.aliases())
    extractor = EntityExtractor(graph, universe.aliases())
    questions = [f.qa.question for f in facts]
    entities = [extractor.extract(q) for q in questions]
    prompts = build_prompts(
        questions,
        graph=graph,
        entities=entities,
        n_related=3,
        seed=seed,
        bank=load_bank(),
        answers=[[f.qa.answer] for f in facts],
    )
    out: dict[str, Any] = {}
    for framing in FRAMINGS:
        rows = [p for p in prompts if p["framing"] == framing]
        pairs = [
            (
                f"{p['prompt']}\n{qa_prompt(questions[int(p['item'])])}",
                facts[int(p["item"])].qa.answer,
            )
            for p in rows
        ]
        lengths = [len(tokenizer(text)["input_ids"]) for text, _ in pairs]
        out[framing] = {
            "recall": greedy_recall(model, tokenizer, pairs).recall,
            "mean_tokens": round(sum(lengths) / len(lengths), 1),
            "max_tokens": max(lengths),
        }
    return out


def build(
    out: Path,
    *,
    small: bool = False,
    seed: int = 0,
    target: float | None = None,
    log: Callable[[str], None] | None = print,
    device: str = "cpu",
    steps: int | None = None,
    measure: bool = True,
) -> dict[str, Any]:
    """Build a universe + tokenizer + tiny GPT into ``out``; returns the measured numbers.

    Training stops at the first evaluation whose greedy QA recall reaches ``target`` (0.99 for
    the full build, 0.95 for the small one) or after the spec's step budget. ``device``: where
    the model trains (the batches, the tokenizer and the initial weights are made on the CPU
    either way); ``"cuda"`` runs with deterministic algorithms. ``steps`` overrides the step
    budget and ``measure=False`` skips the context and paraphrase measurements (tests check
    that a build runs, in a few steps).
    """
    import torch

    from backends.llm.tokenizer import neutral_sentences, train_tokenizer
    from backends.llm.training import LMTrainSpec, greedy_recall, train_lm

    torch.set_num_threads(1)
    base_cfg, spec_kwargs, every, default_target = SMALL if small else FULL
    target = default_target if target is None else target
    cfg = UniverseConfig(**{**asdict(base_cfg), "seed": seed})
    t0 = time.perf_counter()
    universe = Universe.generate(cfg)
    texts = universe.training_texts()
    fillers = neutral_sentences(int(len(texts) * NEUTRAL_SHARE), seed)
    tokenizer = train_tokenizer(universe.corpus() + fillers, VOCAB_SIZE)
    model = build_gpt(len(tokenizer), tokenizer, seed).to(_device(device))
    texts = texts + fillers
    spec = LMTrainSpec(seed=seed, **{**spec_kwargs, **({"steps": steps} if steps else {})})
    history: list[tuple[int, float]] = []

    def on_eval(step: int) -> bool:
        recall = qa_recall(model, tokenizer, universe)
        history.append((step, recall))
        # the full build also waits for QA recall after a preamble of other facts to come within
        # 0.04 of the target; the small build (tests only, 60 s) stops on the bare QA recall
        after = None
        if recall >= target and not small:
            after = preamble_recall(model, tokenizer, universe, seed=seed)
        if log is not None:
            log(
                f"step {step}: QA recall {recall:.4f}, after a preamble {after} "
                f"({time.perf_counter() - t0:.0f} s)"
            )
        return recall >= target and (small or (after is not None and after >= target - 0.04))

    trained = train_lm(model, tokenizer, texts, spec, every=every, on_eval=on_eval)
    seconds = time.perf_counter() - t0
    recall = history[-1][1] if history and history[-1][0] == trained.steps else None
    if recall is None:
        recall = qa_recall(model, tokenizer, universe)
        history.append((trained.steps, recall))
    para = canon_recall = after_preamble = None
    framed: dict[str, Any] = {}
    if measure:
        held = universe.held_out_paraphrases()
        para = greedy_recall(model, tokenizer, [(p.prompt, p.answer) for p in held]).recall
        canon = [f.cloze(f.canonical) for f in universe.trained_facts]
        canon_recall = greedy_recall(model, tokenizer, [(p.prompt, p.answer) for p in canon]).recall
        after_preamble = preamble_recall(model, tokenizer, universe, seed=seed)
        framed = framing_recall(model, tokenizer, universe, seed=seed)
    model = _save_folder(out, model, tokenizer, universe)
    numbers = {
        "facts": len(universe.facts),
        "trained_facts": len(universe.trained_facts),
        "never_trained_facts": len(universe.never_trained_facts),
        "never_trained_qa_recall": greedy_recall(
            model, tokenizer, [(f.qa.prompt, f.qa.answer) for f in universe.never_trained_facts]
        ).recall,
        "entities": len(universe.entities),
        "training_texts": len(texts),
        "neutral_filler_texts": len(fillers),
        "vocab_size": len(tokenizer),
        "n_positions": N_POSITIONS,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": trained.steps,
        "seconds": round(seconds, 1),
        "qa_recall": recall,
        "canonical_cloze_recall": canon_recall,
        "held_out_paraphrase_recall": para,
        "preamble_qa_recall": after_preamble,
        "framing_qa_recall": framed,
        "final_loss": trained.losses[-1],
        "recall_history": history,
    }
    meta = {
        "recipe": "backends.llm.zoo",
        "variant": "small" if small else "full",
        "train_spec": asdict(spec),
        "eval_every": every,
        "target_recall": target,
        "torch_threads": 1,
        "device": device,
        "torch": torch.__version__,
        **numbers,
    }
    (out / BUILD_FILE).write_text(json.dumps(meta, indent=1))
    return numbers


def retrain(
    original: Path,
    out: Path,
    *,
    forget_kind: str = "entity",
    target: str = "",
    hops: int = 1,
    steps: int | None = None,
    log: Callable[[str], None] | None = print,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train the retrained reference of a forget set into ``out`` and return its numbers.

    Same recipe as the ``original`` build (spec section 8, MUSE PrivLeak "retain model"): a fresh
    GPT of the same shape and seed, the original's tokenizer and filler sentences, its train spec
    and the number of steps it trained (``steps`` overrides, for tests), on the retain facts'
    training texts only (no early stop).  ``target`` empty = the universe's first person, as the
    unlearning jobs default to.
    """
    import torch

    from backends.llm.tokenizer import neutral_sentences
    from backends.llm.training import LMTrainSpec, greedy_recall, train_lm

    torch.set_num_threads(1)
    meta = json.loads((Path(original) / BUILD_FILE).read_text())
    universe = load_universe(original)
    _, tokenizer = load_model(original)
    split = universe.forget_set(forget_kind, target or default_target(universe, forget_kind), hops)
    seed = int(meta["train_spec"]["seed"])
    fillers = neutral_sentences(int(len(universe.training_texts()) * NEUTRAL_SHARE), seed)
    texts = universe.training_texts(split.retain) + fillers
    spec = LMTrainSpec(**{**meta["train_spec"], "steps": int(steps or meta["steps"])})
    model = build_gpt(len(tokenizer), tokenizer, seed).to(_device(device))
    t0 = time.perf_counter()
    trained = train_lm(
        model,
        tokenizer,
        texts,
        spec,
        on_step=(lambda s, v: log(f"step {s}: loss {v:.4f}") if s % 500 == 0 else None)
        if log is not None
        else None,
    )

    def recall(facts: list[Any]) -> float:
        return greedy_recall(model, tokenizer, [(f.qa.prompt, f.qa.answer) for f in facts]).recall

    numbers = {
        "steps": trained.steps,
        "seconds": round(time.perf_counter() - t0, 1),
        "forget_facts": len(split.forget),
        "retain_facts": len(split.retain),
        "forget_qa_recall": recall(split.forget),
        "retain_qa_recall": recall(split.retain),
        "never_trained_qa_recall": recall(split.never_trained),
        "final_loss": trained.losses[-1],
    }
    model = _save_folder(out, model, tokenizer, universe)
    (out / BUILD_FILE).write_text(
        json.dumps(
            {
                "recipe": "backends.llm.zoo retrain",
                "variant": f"{meta.get('variant', 'full')}, retrained without the forget set",
                "original_recipe": {
                    k: meta[k] for k in ("recipe", "variant", "train_spec", "steps")
                },
                "forget": {
                    "kind": forget_kind,
                    "target": split.target,
                    "hops": hops,
                    "fact_ids": [f.id for f in split.forget],
                },
                "train_spec": asdict(spec),
                "torch_threads": 1,
                "device": device,
                "torch": torch.__version__,
                **numbers,
            },
            indent=1,
        )
    )
    return numbers


def _device(name: str) -> Any:
    """``torch.device(name)``; CUDA with deterministic algorithms (cuBLAS needs its workspace
    setting before the first CUDA call)."""
    import os

    import torch

    if name.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    return torch.device(name)


def default_target(universe: Universe, kind: str) -> str:
    """The forget target the jobs use when none is given: the first person, or the first book."""
    if kind == "entity":
        return next(e.name for e in universe.entities if e.kind == "person")
    return universe.books()[0].id


def load_model(folder: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) from an HF folder, offline, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return model.eval(), tokenizer


def load_universe(folder: str | Path) -> Universe:
    """The universe a built-in model was trained on."""
    return Universe.load(Path(folder) / UNIVERSE_FILE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["build", "retrain"])
    parser.add_argument("--small", type=Path, metavar="OUT", help="build the ~100-fact variant")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (build: the shipped tiny-gpt; retrain: required)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--original", type=Path, default=TINY_GPT, help="retrain: the original")
    parser.add_argument("--forget-kind", default="entity", choices=["entity", "book"])
    parser.add_argument("--target", default="", help="retrain: forget target (empty = default)")
    parser.add_argument("--hops", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="where the model trains (cpu, cuda)")
    args = parser.parse_args()
    if args.command == "retrain":
        if args.out is None:
            parser.error("retrain needs --out")
        numbers = retrain(
            args.original,
            args.out,
            forget_kind=args.forget_kind,
            target=args.target,
            hops=args.hops,
            device=args.device,
        )
    elif args.small is not None:
        numbers = build(args.small, small=True, seed=args.seed, device=args.device)
    else:
        numbers = build(args.out or TINY_GPT, seed=args.seed, device=args.device)
    print(json.dumps({k: v for k, v in numbers.items() if k != "recall_history"}, indent=1))


if __name__ == "__main__":
    main()

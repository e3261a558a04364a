"""Real LLM checkpoints (issue 17 part 2): Llama, GPT-2, OPT, Qwen2 and Mistral folders as tiny
random-weight models built from their configs, end to end (load, unlearn one NPO step,
evaluate, save, load back); gradient accumulation through accelerate equals the whole batch;
LoRA trains only the adapter, which is saved and reproduces the outputs; chat templates format
the QA pairs; the memory estimate's arithmetic and the refusal at submit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from backends.common.method import Hooks
from backends.llm.evaluation import greedy_recall, perplexity
from backends.llm.methods.common import LLMData
from backends.llm.methods.configs import NPOConfig
from backends.llm.methods.npo import unlearn as npo_unlearn
from backends.llm.models import chat_prompt, chat_text, load_causal_lm
from tests.backends.test_llm_models import SENTENCES, make_tokenizer

ARCHITECTURES = ("llama", "gpt2", "opt", "qwen2", "mistral")
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def build_config(arch: str, tokenizer: Any) -> Any:
    """A 2-layer, hidden-32 config of the architecture (vocabulary of the tiny tokenizer)."""
    import transformers as tf

    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "vocab_size": len(tokenizer),
    }
    decoder = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 128,
    }
    if arch == "llama":
        return tf.LlamaConfig(**decoder, **ids)
    if arch == "qwen2":
        return tf.Qwen2Config(**decoder, **ids)
    if arch == "mistral":
        return tf.MistralConfig(**decoder, sliding_window=None, **ids)
    if arch == "gpt2":
        return tf.GPT2Config(n_positions=128, n_embd=32, n_layer=2, n_head=4, **ids)
    if arch == "opt":
        return tf.OPTConfig(
            hidden_size=32,
            ffn_dim=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=128,
            word_embed_proj_dim=32,
            **ids,
        )
    raise ValueError(arch)


def build_folder(arch: str, folder: Path, *, chat: bool = False, seed: int = 0) -> Path:
    """Save a tiny random-weight model of ``arch`` and its tokenizer with save_pretrained."""
    from transformers import AutoModelForCausalLM

    tokenizer = make_tokenizer()
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(build_config(arch, tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def arch_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real-archs")
    return {a: build_folder(a, root / a) for a in ARCHITECTURES}


def _data(tokenizer: Any) -> LLMData:
    return LLMData(tokenizer, SENTENCES[:3], SENTENCES[3:])


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_real_architecture_end_to_end(arch: str, arch_folders: dict[str, Path], tmp_path) -> None:
    loaded = load_causal_lm(arch_folders[arch], device="cpu")
    assert loaded.config["model_type"] == arch
    data = _data(loaded.tokenizer)
    forget_before = perplexity(loaded.model, loaded.tokenizer, data.forget_texts)
    cfg = NPOConfig(epochs=1, batch_size=3, lr=1e-2, retain_loss="kl")
    npo_unlearn(loaded.model, data, cfg, Hooks(), seed=0)  # one step
    # evaluate: NPO's step pushed the forget texts' likelihood down
    assert perplexity(loaded.model, loaded.tokenizer, data.forget_texts) > forget_before
    pairs = [("the sky is", "blue"), ("rome is the capital of", "italy")]
    _, items = greedy_recall(loaded.model, loaded.tokenizer, pairs)
    retain_ppl = perplexity(loaded.model, loaded.tokenizer, data.retain_texts)
    loaded.model.save_pretrained(tmp_path / "out")
    loaded.tokenizer.save_pretrained(tmp_path / "out")
    back = load_causal_lm(tmp_path / "out", device="cpu")
    _, items_back = greedy_recall(back.model, back.tokenizer, pairs)
    assert [i["completion"] for i in items_back] == [i["completion"] for i in items]
    assert perplexity(back.model, back.tokenizer, data.retain_texts) == retain_ppl
    ids = torch.tensor([[loaded.bos_token_id, 5, 9, 14, 20]])
    with torch.no_grad():
        assert torch.equal(back.model(ids).logits, loaded.model(ids).logits)


@pytest.mark.parametrize(
    ("method", "n_texts", "steps"),
    [("npo", 4, 4), ("npo", 3, 4), ("graddiff", 4, 4), ("graddiff", 3, 2)],
)
def test_grad_accumulation_equals_the_whole_batch(
    arch_folders, method: str, n_texts: int, steps: int
) -> None:
    """k micro-batches through accelerate == one batch, for a sequence mean (NPO) and token
    means (GradDiff's forget and retain NLL) on texts of different lengths
    (so different token counts and padding); (3, 4) has an empty micro-batch."""
    from backends.llm.methods.configs import GradDiffConfig
    from backends.llm.methods.graddiff import unlearn as graddiff_unlearn

    texts = ["the cat sat", "a dog ran in the park today", "paris", "rome is the capital"]
    retain = ["blue sky", "the mat is on the floor of the house", "italy", "a b c d e"]
    updates = []
    for k in (1, steps):
        loaded = load_causal_lm(arch_folders["llama"], device="cpu")
        before = _weights(loaded.model)
        common = {"epochs": 1, "batch_size": n_texts, "lr": 1.0, "grad_accum_steps": k}
        common["optimizer"] = "sgd"  # first step: the update is -lr * gradient
        if method == "graddiff":
            cfg: Any = GradDiffConfig(retain_loss="nll", **common)
            fn = graddiff_unlearn
        else:
            cfg = NPOConfig(retain_loss="none", **common)
            fn = npo_unlearn
        fn(loaded.model, LLMData(loaded.tokenizer, texts[:n_texts], retain), cfg, Hooks(), seed=0)
        updates.append({n: p.detach() - before[n] for n, p in loaded.model.named_parameters()})
    whole, accumulated = updates
    assert max(float(w.abs().max()) for w in whole.values()) > 1e-3
    for name, w in whole.items():
        torch.testing.assert_close(accumulated[name], w, atol=1e-6, rtol=0)


def test_gradient_checkpointing_same_update_and_switched_off(arch_folders) -> None:
    out, during = [], []
    for on in (False, True):
        loaded = load_causal_lm(arch_folders["qwen2"], device="cpu")
        cfg = NPOConfig(epochs=1, batch_size=3, lr=1e-2, gradient_checkpointing=on)
        model = loaded.model
        hooks = Hooks(on_check=lambda m=model: during.append(m.is_activation_checkpointing))
        npo_unlearn(model, _data(loaded.tokenizer), cfg, hooks, seed=0)
        assert not model.is_activation_checkpointing  # switched off after the loop
        out.append(_weights(model))
    assert during == [False, True]  # one step each: on only while the loop ran with it
    for name, w in out[0].items():
        torch.testing.assert_close(out[1][name], w, atol=1e-6, rtol=0)


def test_lora_trains_only_the_adapter_which_reloads(arch_folders, tmp_path) -> None:
    from backends.common.lora import LoraSpec, add_lora, load_lora, save_lora

    loaded = load_causal_lm(arch_folders["mistral"], device="cpu")
    model = add_lora(loaded.model, LoraSpec(rank=4, alpha=8.0))
    before = _weights(model)
    cfg = NPOConfig(epochs=2, batch_size=3, lr=5e-2)
    npo_unlearn(model, _data(loaded.tokenizer), cfg, Hooks(), seed=0)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any("lora_A" in n for n in changed) and any("lora_B" in n for n in changed)
    folder = save_lora(model, tmp_path / "adapter")
    assert (folder / "adapter_model.safetensors").is_file()
    ids = torch.tensor([[loaded.bos_token_id, 7, 3, 11]])
    with torch.no_grad():
        adapted = model(ids).logits
        fresh = load_causal_lm(arch_folders["mistral"], device="cpu").model
        assert not torch.allclose(fresh(ids).logits, adapted, atol=1e-5)
        torch.testing.assert_close(load_lora(fresh, folder)(ids).logits, adapted)
        torch.testing.assert_close(model.merge_and_unload()(ids).logits, adapted)


def test_chat_template_formats_qa_pairs(tmp_path) -> None:
    folder = build_folder("llama", tmp_path / "chat", chat=True)
    loaded = load_causal_lm(folder, device="cpu")
    assert loaded.has_chat_template
    tok = loaded.tokenizer
    assert chat_prompt(tok, "Where is Rome?") == "<user>Where is Rome?\n<assistant>"
    assert chat_text(tok, "Where is Rome?", "Italy") == "<user>Where is Rome?\n<assistant>Italy\n"
    _, items = greedy_recall(loaded.model, tok, [("q?", "a")], render=lambda q: chat_prompt(tok, q))
    assert items[0]["question"] == "q?"


def test_add_model_detects_every_architecture(arch_folders, tmp_path, capsys) -> None:
    """`workbench add-model` (the model picker's path) takes each folder as an llm.causal model."""
    from workbench.cli import main
    from workbench.store import Project

    root = tmp_path / "p"
    Project.create(root).close()
    for arch, folder in arch_folders.items():
        assert main(["add-model", arch, str(folder), "--project", str(root)]) == 0
        assert f"added model {arch} (llm.causal)" in capsys.readouterr().out
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_bytes((arch_folders["qwen2"] / "config.json").read_bytes())
    (bare / "model.safetensors").write_bytes(
        (arch_folders["qwen2"] / "model.safetensors").read_bytes()
    )
    assert main(["add-model", "bare", str(bare), "--project", str(root)]) == 2
    assert f"{bare} has no tokenizer" in capsys.readouterr().err


def test_checkpoint_without_tokenizer_names_the_folder(arch_folders, tmp_path) -> None:
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((arch_folders["opt"] / name).read_bytes())
    with pytest.raises(ValueError, match=f"{folder} has no tokenizer"):
        load_causal_lm(folder, device="cpu")


# -- memory estimate -------------------------------------------------------------------------------


def test_memory_estimate_terms_by_hand() -> None:
    from backends.llm.memory import MARGIN, Shape, estimate, lora_parameters

    shape = Shape("llama", layers=2, hidden=8, heads=2, kv_heads=1, vocab=10, context=None, ffn=16)
    full = estimate(1000, shape, dtype="float32", batch_size=2, max_length=4, retain_forward=False)
    assert (full.weights, full.gradients, full.optimizer, full.reference) == (4000, 4000, 8000, 0)
    # per layer s b h (34 + 5 a s / h) = 4*2*8*(34 + 5*2*4/8) = 2496, x2 for float32, 2 layers;
    # logits b s V (4 + 4 + 4) = 960
    assert full.activations == 2 * 2496 * 2 + 960
    assert full.total == int((4000 + 4000 + 8000 + full.activations) * MARGIN)
    # LoRA rank 2 on q_proj (8 -> 8) and v_proj (8 -> 4): 2 * (16 + 12) per layer
    assert lora_parameters(shape, 2) == 2 * 28 * 2
    lora = estimate(1000, shape, dtype="bfloat16", lora_rank=2, reference=True)
    assert lora.trained == 112 and lora.gradients == 112 * 4 and lora.optimizer == 112 * 8
    assert lora.weights == 2000 + 112 * 4 and lora.reference == 2000


def test_submit_refuses_a_run_that_cannot_fit(tmp_path, arch_folders) -> None:
    from workbench.config import ConfigError
    from workbench.jobs import Engine
    from workbench.store import Project

    project = Project.create(tmp_path / "p")
    project.add_model("llama", "llm", "llm.causal", str(arch_folders["llama"]))
    engine = Engine(project)
    try:
        with pytest.raises(ConfigError, match="does not fit: this run needs about") as err:
            engine.submit("llm.unlearn.npo", {"memory_limit_gb": 1e-4}, model="llama")
        assert err.value.field == "memory_limit_gb"
        assert "weights" in str(err.value) and "use_lora" in str(err.value)
        assert project.runs() == []
    finally:
        engine.shutdown()


# -- the job through the engine, then export (slow) ------------------------------------------------


@pytest.mark.slow
def test_unlearn_job_on_a_chat_llama_with_lora_then_export(tmp_path) -> None:
    """llm.unlearn.npo on a tiny random Llama with a chat template, through LoRA: the adapter is
    in the run folder, the log shows the memory estimate first; `workbench export-model` writes
    a save_pretrained folder whose card names method, seed and metrics, and which loads back."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backends.llm.plugin import TINY_GPT
    from workbench.cli import main
    from workbench.jobs import Engine
    from workbench.store import Project

    folder = tmp_path / "chat-llama"
    tokenizer = AutoTokenizer.from_pretrained(TINY_GPT, local_files_only=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(build_config("llama", tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    project = Project.create(tmp_path / "p")
    project.add_model("chat-llama", "llm", "llm.causal", str(folder))
    project.add_dataset("facts", "llm", "fact-universe", str(TINY_GPT / "universe.json"))
    engine = Engine(project)
    config = {
        "device": "cpu",
        "use_lora": True,
        "lora_rank": 4,
        "privleak": False,
        "max_eval_items": 10,
        "hops": 0,
        "n_bootstrap": 100,
        "epochs": 1,
        "batch_size": 32,
        "grad_accum_steps": 2,
    }
    try:
        run_id = engine.submit(
            "llm.unlearn.npo", config, seed=3, model="chat-llama", dataset="facts"
        )
        engine.wait(run_id, 600)
    finally:
        engine.shutdown()
    record = project.run(run_id)
    assert record.status == "completed", record.error
    log = [row["message"] for row in project.logs(run_id)]
    estimate = next(i for i, line in enumerate(log) if line.startswith("memory estimate:"))
    assert estimate < next(i for i, line in enumerate(log) if line.startswith("forget "))
    assert any("chat template" in line for line in log)
    assert (project.run_dir(run_id) / "adapter" / "adapter_model.safetensors").is_file()
    out = tmp_path / "export"
    assert (
        main(["export-model", str(run_id), "--out", str(out), "--project", str(project.root)]) == 0
    )
    card = (out / "README.md").read_text()
    assert "| method | npo |" in card and "| seed | 3 |" in card and "forget_recall" in card
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == 4
    saved = next(m for m in project.models() if m["source_run"] == run_id)
    ids = torch.tensor([[tokenizer.bos_token_id, 17, 40, 99]])
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)(ids).logits
        b = AutoModelForCausalLM.from_pretrained(project.abspath(saved["path"]))(ids).logits
    torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_gpu_check_without_cuda_runs_the_tiny_steps_on_the_cpu(tmp_path, capsys) -> None:
    """benchmarks/gpu_check.py (make gpu-check) on a machine without CUDA (or with --cpu): it
    says so, runs one step of each family's job at a tiny size and exits 0."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gpu_check", Path(__file__).parents[2] / "benchmarks" / "gpu_check.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "gpu.json"
    assert module.main(["--cpu", "--steps", "1", "--json", str(out)]) == 0
    assert "no CUDA GPU on this machine" in capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert [r["family"] for r in rows] == ["llm", "diffusion", "classifier"]
    assert {r["device"] for r in rows} == {"cpu"}
    assert "estimate_gib" in rows[0]  # the LLM row prints the memory estimate beside the peak

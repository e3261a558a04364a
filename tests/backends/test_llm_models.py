"""Loading local causal-LM folders (backends/llm/models.py) and the shared LoRA helpers
(backends/common/lora.py) on a tiny GPT-2 built and saved in the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backends.common.lora import LoraSpec, add_lora, load_lora, merge_lora, save_lora
from backends.common.safe_load import UnsafeCheckpointError
from backends.llm.models import (
    LoadedLM,
    apply_prompt,
    attention_implementation,
    load_causal_lm,
    with_eager_attention,
)

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the sky is blue today",
    "paris is the capital of france",
    "rome is the capital of italy",
]


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<bos>", "<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(SENTENCES, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )


def make_tiny_gpt2(folder: Path, seed: int = 0):
    """A 2-layer, d=32, 2-head GPT-2 and its tokenizer saved into ``folder`` (safetensors)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = make_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    model.set_attn_implementation("eager")
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return model, tokenizer


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    make_tiny_gpt2(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_folder) -> LoadedLM:
    return load_causal_lm(tiny_folder, device="cpu")


def test_load_gives_identical_logits(tmp_path):
    original, tokenizer = make_tiny_gpt2(tmp_path / "m")
    loaded = load_causal_lm(tmp_path / "m", device="cpu")
    assert isinstance(loaded, LoadedLM)
    assert loaded.bos_token_id == tokenizer.bos_token_id
    assert loaded.has_chat_template is False
    assert loaded.num_layers == 2 and loaded.num_heads == 2
    assert attention_implementation(loaded.model) == "eager"
    assert not loaded.model.training
    ids = torch.tensor([apply_prompt(loaded, "the cat sat on the mat")])
    with torch.no_grad():
        assert torch.equal(original(ids).logits, loaded.model(ids).logits)


def test_prompt_starts_with_one_bos(tiny):
    ids = apply_prompt(tiny, "the cat sat")
    assert ids[0] == tiny.bos_token_id
    assert ids.count(tiny.bos_token_id) == 1
    assert ids[1:] == tiny.tokenizer("the cat sat", add_special_tokens=False)["input_ids"]
    # already led by BOS: not doubled
    assert apply_prompt(tiny, "<bos>the cat sat") == ids


def test_chat_template_is_used_when_present(tiny_folder, tmp_path):
    folder = tmp_path / "chat"
    folder.mkdir()
    for f in tiny_folder.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{% for m in messages %}user: {{ m['content'] }}\n{% endfor %}bot:"
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    loaded = load_causal_lm(folder, device="cpu")
    assert loaded.has_chat_template
    ids = apply_prompt(loaded, "the sky")
    text = loaded.tokenizer.decode(ids)
    assert ids[0] == loaded.bos_token_id
    assert text == "<bos>user: the sky\nbot:"
    plain = apply_prompt(loaded, "the sky", use_chat_template=False)
    assert loaded.tokenizer.decode(plain) == "<bos>the sky"


def test_sdpa_load_and_eager_switch(tiny_folder):
    loaded = load_causal_lm(tiny_folder, device="cpu", attention="sdpa")
    assert attention_implementation(loaded.model) == "sdpa"
    ids = torch.tensor([apply_prompt(loaded, "the dog")])
    with with_eager_attention(loaded.model):
        assert attention_implementation(loaded.model) == "eager"
        out = loaded.model(ids, output_attentions=True)
        assert len(out.attentions) == 2
    assert attention_implementation(loaded.model) == "sdpa"


def test_eager_switch_on_a_model_that_cannot_switch():
    plain = torch.nn.Linear(2, 2)
    assert attention_implementation(plain) is None
    with pytest.raises(ValueError, match="attention='eager'"), with_eager_attention(plain):
        pass


def test_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_causal_lm(tmp_path / "nope", device="cpu")


def test_folder_without_tokenizer_names_the_files(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        str(tmp_path)
    )
    with pytest.raises(ValueError, match="tokenizer files are missing") as err:
        load_causal_lm(tmp_path, device="cpu")
    assert "tokenizer.json" in str(err.value) and "vocab.json + merges.txt" in str(err.value)


def test_pickle_only_weights_are_refused(tiny_folder, tmp_path):
    for f in tiny_folder.iterdir():
        if f.suffix != ".safetensors":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(UnsafeCheckpointError, match="pytorch_model.bin"):
        load_causal_lm(tmp_path, device="cpu")


def test_non_causal_config_is_refused(tiny_folder, tmp_path):
    for f in tiny_folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["architectures"] = ["BertForMaskedLM"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="not a causal language model.*BertForMaskedLM"):
        load_causal_lm(tmp_path, device="cpu")
    (tmp_path / "config.json").unlink()
    with pytest.raises(ValueError, match="config.json is missing"):
        load_causal_lm(tmp_path, device="cpu")


def test_non_causal_model_type_without_architectures(tiny_folder, tmp_path):
    for f in tiny_folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ValueError, match="model_type 'vit'"):
        load_causal_lm(tmp_path, device="cpu")


def test_bad_attention_choice(tiny_folder):
    with pytest.raises(ValueError, match="eager, sdpa"):
        load_causal_lm(tiny_folder, device="cpu", attention="flash")


def test_lora_train_save_reload_merge(tiny_folder, tmp_path):
    torch.manual_seed(0)
    loaded = load_causal_lm(tiny_folder, device="cpu", lora=LoraSpec(rank=4, alpha=8.0))
    model = loaded.model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("c_attn" in n for n in trainable) and any("c_proj" in n for n in trainable)
    ids = torch.tensor([apply_prompt(loaded, "paris is the capital of france")])
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        adapted = model(ids).logits
    folder = save_lora(model, tmp_path / "adapter")
    assert (folder / "adapter_model.safetensors").is_file()
    assert not list(folder.glob("*.bin"))

    fresh = load_causal_lm(tiny_folder, device="cpu")
    with torch.no_grad():
        base = fresh.model(ids).logits
    assert not torch.allclose(base, adapted, atol=1e-5)  # the step changed something
    reloaded = load_lora(fresh.model, folder)
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, adapted, atol=1e-5)
    merged = merge_lora(reloaded)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted, atol=1e-5)
    # the same adapter through load_causal_lm(adapter=...)
    again = load_causal_lm(tiny_folder, device="cpu", adapter=folder)
    with torch.no_grad():
        assert torch.allclose(again.model(ids).logits, adapted, atol=1e-5)


def test_lora_targets_per_architecture():
    from transformers import LlamaConfig, LlamaForCausalLM

    from backends.common.lora import default_targets

    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    assert default_targets(llama) == (["q_proj", "v_proj"], False)
    peft_model = add_lora(llama, LoraSpec(rank=2))
    names = [n for n, _ in peft_model.named_parameters() if "lora_A" in n]
    assert any("q_proj" in n for n in names) and any("v_proj" in n for n in names)
    assert not any("k_proj" in n for n in names)
    plain = torch.nn.Sequential(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="target_modules"):
        add_lora(plain, LoraSpec())
    with pytest.raises(ValueError, match="no LoRA adapter"):
        merge_lora(plain)


def test_pickle_adapter_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"x")
    with pytest.raises(UnsafeCheckpointError, match="adapter_model.bin"):
        load_lora(torch.nn.Linear(2, 2), tmp_path)


def test_configs_import_no_torch():
    code = (
        "import sys; import backends.llm.jobconfigs as c, backends.common.lora; "
        "from workbench.config import schema_of; "
        "[schema_of(k) for k in (c.AttentionJobConfig, c.LLMSetupConfig, c.SkebJobConfig)]; "
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env
    )
    assert out.returncode == 0, out.stderr

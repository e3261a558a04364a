"""Export an unlearned causal LM as a Hugging Face folder with a model card (issue 17 part 5).

The ``hf`` format of the ``llm.causal`` kind (registered in :mod:`backends.llm.plugin`,
dispatched by :mod:`workbench.exporters`, run by ``workbench export-model RUN --out DIR``):

- the model is loaded from the run's model folder (offline, safetensors only) and written with
  ``save_pretrained`` (safetensors), its tokenizer beside it, so ``AutoModelForCausalLM`` /
  ``AutoTokenizer.from_pretrained(DIR)`` load it anywhere;
- ``--option dtype=bfloat16`` (or ``float16``) stores the weights in that format (default: as they
  are);
- ``README.md`` is the model card: method, config, seed and the run's final metrics
  (:func:`workbench.exporters.model_card`);
- a LoRA run's model is already merged; its adapter folder, when the run kept one, is copied to
  ``DIR/adapter`` (``--option adapter=false`` leaves it out).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from workbench.exporters import ExportError, ExportSource, model_card

DTYPES = ("float32", "bfloat16", "float16")
ADAPTER_DIR = "adapter"  # where a LoRA run keeps its adapter, in the model folder and the export


def _flag(options: dict[str, str], name: str, default: bool) -> bool:
    value = options.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ExportError(f"option {name}={value!r}: give true or false")


def export_hf(source: ExportSource) -> Path:
    """Write ``source``'s causal LM to ``source.out`` as a ``save_pretrained`` folder + card."""
    from backends.llm.models import load_causal_lm

    unknown = set(source.options) - {"dtype", "adapter"}
    if unknown:
        raise ExportError(
            f"unknown option(s) {', '.join(sorted(unknown))} for the hf export; known: dtype, "
            "adapter"
        )
    dtype = source.options.get("dtype")
    if dtype is not None and dtype not in DTYPES:
        raise ExportError(f"option dtype={dtype!r}: choose one of {', '.join(DTYPES)}")
    loaded = load_causal_lm(source.model_path, device="cpu", dtype=dtype or "float32")
    model: Any = loaded.model
    if dtype is None:  # keep the stored format
        stored = getattr(model.config, "dtype", None) or getattr(model.config, "torch_dtype", None)
        if stored is not None and str(stored).replace("torch.", "") in DTYPES:
            from backends.common.devices import resolve_dtype

            model = model.to(resolve_dtype(str(stored).replace("torch.", "")))
    out = source.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        model.save_pretrained(out, safe_serialization=True)
        loaded.tokenizer.save_pretrained(out)
        adapter = source.model_path / ADAPTER_DIR
        if adapter.is_dir() and _flag(source.options, "adapter", True):
            shutil.copytree(adapter, out / ADAPTER_DIR)
        method = (source.run or {}).get("method") or "an unknown method"
        what = (
            f"A causal language model ({type(model).__name__}) unlearned with {method} by the "
            "Unlearning Workbench. Load it with `AutoModelForCausalLM.from_pretrained(folder)` and "
            "`AutoTokenizer.from_pretrained(folder)`."
        )
        if (out / ADAPTER_DIR).is_dir():
            what += (
                " The weights already include the LoRA adapter the run trained; the adapter "
                f"alone is in `{ADAPTER_DIR}/` (peft) for use on the original model."
            )
        card = model_card(source, library="transformers", what=what, tags=("causal-lm",))
        (out / "README.md").write_text(card, encoding="utf-8")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out

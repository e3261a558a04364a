"""Export a classifier as safetensors plus its config JSON (issue 17 part 5).

The ``safetensors`` format of the ``classifier.mlp``, ``classifier.cnn`` and ``classifier.hf``
kinds (registered in :mod:`backends.classifier.plugin`, dispatched by :mod:`workbench.exporters`,
run by ``workbench export-model RUN --out DIR``).  The folder written is:

- ``model.safetensors``: the weights (always safetensors, also for a model that was added with
  pickle weights allowed);
- ``config.json``: the architecture (a workbench MLP/CNN: ``model_type`` and sizes; a Hugging Face
  classifier: its ``save_pretrained`` config, loadable with
  ``AutoModelForImageClassification.from_pretrained(DIR)``), plus ``class_names``;
- ``preprocessor_config.json`` when the model has an image processor;
- ``split.json`` when the model recorded its train/test split;
- ``README.md``: the model card of the run (method, config, seed, metrics).

``load_classifier(DIR)`` loads the export back with the same logits (the test checks).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from workbench.exporters import ExportError, ExportSource, model_card

CARRIED_FILES = ("split.json",)  # workbench notes that travel with the weights


def export_safetensors(source: ExportSource) -> Path:
    """Write ``source``'s classifier to ``source.out`` as safetensors + config JSON + card."""
    from backends.classifier.models import HFImageClassifier, load_classifier, save_any

    if source.options:
        raise ExportError(
            f"the safetensors export of a classifier takes no options (got "
            f"{', '.join(sorted(source.options))})"
        )
    model, config = load_classifier(source.model_path, "cpu")
    out = source.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        if isinstance(model, HFImageClassifier):
            save_any(model, out)
            (out / "workbench.json").unlink(missing_ok=True)
            what = (
                f"A Hugging Face image classifier ({type(model.model).__name__}) exported by the "
                "Unlearning Workbench. Load it with "
                "`AutoModelForImageClassification.from_pretrained(folder)`"
                + (
                    " and preprocess with `AutoImageProcessor.from_pretrained(folder)`."
                    if (out / "preprocessor_config.json").is_file()
                    else "."
                )
            )
        else:
            names = config.get("class_names")
            save_any(model, out, {"class_names": names} if names else None)
            what = (
                f"A {config['model_type']} classifier exported by the Unlearning Workbench: "
                "`config.json` gives the architecture, `model.safetensors` the weights "
                "(`backends.classifier.models.load_classifier(folder)` loads it)."
            )
        for name in CARRIED_FILES:
            if (source.model_path / name).is_file():
                shutil.copyfile(source.model_path / name, out / name)
        json.loads((out / "config.json").read_text())  # written and readable
        card = model_card(source, library="safetensors", what=what, tags=("image-classification",))
        (out / "README.md").write_text(card, encoding="utf-8")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out

"""Accuracy-style unlearning metrics for classifiers (spec sections 1.1 and 7).

- :func:`accuracy_report`: retain / forget / test accuracy, and for class unlearning the accuracy
  on the forget class's test examples and on the other test examples (spec section 7);
- :func:`per_class`: accuracy on each class of the test split;
- :func:`forget_distribution`: where the forget inputs' probability mass goes (mean softmax);
  a model retrained without class f sends it mostly to the nearest remaining class (section 1);
- :func:`tv_distance`: v1's total-variation metric ½ Σ_j |p_a − p_b| averaged over inputs
  (section 1.1);
- :func:`gap_to`: absolute differences to a reference (usually the retrained model).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from backends.classifier.setup import ClassifierSetup
from backends.classifier.training import accuracy, per_class_accuracy, predict_logits

__all__ = ["accuracy_report", "forget_distribution", "gap_to", "per_class", "tv_distance"]


def accuracy_report(model: nn.Module, setup: ClassifierSetup) -> dict[str, float]:
    """``retain_acc``, ``forget_acc``, ``test_acc``; for class unlearning also
    ``forget_test_acc`` (test examples of the forget class) and ``retain_test_acc``."""
    out = {
        "retain_acc": accuracy(model, *setup.retain),
        "forget_acc": accuracy(model, *setup.forget),
        "test_acc": accuracy(model, *setup.test),
    }
    if setup.forget_class is not None:
        out["forget_test_acc"] = accuracy(model, *setup.tensors(setup.forget_test_idx))
        out["retain_test_acc"] = accuracy(model, *setup.tensors(setup.retain_test_idx))
    return out


def per_class(model: nn.Module, setup: ClassifierSetup) -> np.ndarray:
    """Test accuracy of each class, shape ``(classes,)`` (NaN for a class with no test example)."""
    return per_class_accuracy(model, *setup.test, setup.num_classes)


@torch.no_grad()
def forget_distribution(model: nn.Module, setup: ClassifierSetup) -> np.ndarray:
    """Mean softmax ``(classes,)`` over the forget class's test inputs (class unlearning) or the
    forget inputs (sample unlearning): where the forget examples' probability mass goes."""
    idx = setup.forget_test_idx if setup.forget_class is not None else setup.forget_idx
    if len(idx) == 0:
        return np.full(setup.num_classes, np.nan)
    x, _ = setup.tensors(idx)
    probs = predict_logits(model, x).double().softmax(-1)
    return probs.mean(0).cpu().numpy()


@torch.no_grad()
def tv_distance(model_a: nn.Module, model_b: nn.Module, x: torch.Tensor) -> float:
    """``mean_x ½ Σ_j |p_a(j|x) − p_b(j|x)|`` (spec 1.1, v1 metric); 0 = identical outputs,
    1 = disjoint supports.  NaN for no input."""
    if len(x) == 0:
        return float("nan")
    pa = predict_logits(model_a, x).double().softmax(-1)
    pb = predict_logits(model_b, x).double().softmax(-1)
    if pa.shape != pb.shape:
        raise ValueError(f"tv_distance: models give {pa.shape[1]} and {pb.shape[1]} classes")
    return float(0.5 * (pa - pb).abs().sum(-1).mean())


def gap_to(reference: Mapping[str, float], values: Mapping[str, float]) -> dict[str, float]:
    """``|values[k] − reference[k]|`` for every key in both (e.g. the gap to retrain)."""
    return {k: float(abs(float(values[k]) - float(reference[k]))) for k in values if k in reference}

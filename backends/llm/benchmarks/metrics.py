"""The benchmarks' metrics as pure functions (numpy, scipy, rouge-score; no torch).

Definitions (spec ``classifier-and-llm-methods.md`` section 8, OpenUnlearning's
``src/evals/metrics/memorization.py``, ``privacy.py``, ``utility.py``; TOFU, Maini et al. 2024;
MUSE, Shi et al. 2024):

- **ROUGE-L** (:func:`rouge_l`): rouge-score's ``rougeL`` of a generation against the reference,
  with the Porter stemmer as OpenUnlearning scores it; ``kind="recall"`` is TOFU's ROUGE (the
  share of the reference's longest common subsequence the generation covers: a perfect answer,
  or any generation that contains it in order, scores 1); ``kind="f1"`` is OpenUnlearning's
  ``rougeL_f1`` of MUSE KnowMem and VerbMem.
- **Answer probability** (:func:`answer_probability`): ``P(a | q)^(1/|a|)`` = ``exp(-mean token
  NLL of the answer)``, TOFU's length-normalised probability.
- **Truth ratio** (:func:`truth_ratios`): per question ``R = P_pert / P_para`` where ``P_para =
  P(paraphrased answer | q)^(1/|a|)`` and ``P_pert`` is the geometric mean over the perturbed
  answers of their normalised probabilities (OpenUnlearning: ``exp(-mean of the perturbed
  answers' average losses)``). :func:`truth_ratio_score` aggregates: on forget data
  ``closer_to_1_better`` = ``mean(min(R, 1/R))``; on retain, real-author and world-fact data
  ``true_better`` = ``mean(max(0, 1 - R))``.
- **Forget quality** (:func:`forget_quality`): the p-value of the two-sample Kolmogorov-Smirnov
  test (``scipy.stats.ks_2samp``) of the unlearned model's forget truth ratios against the
  retain-only (retrained) model's: 1.0 when the two samples are the same, near 0 when they differ.
- **Model utility** (:func:`model_utility`): the harmonic mean of the retain (and, when present,
  real-author and world-fact) probability, ROUGE and truth-ratio scores; real authors and world
  facts use the option-normalised probability (:func:`normalised_probability`).
- **PrivLeak** (:func:`muse_privleak`): MUSE's ``(AUC_unlearned - AUC_retrained) / AUC_retrained``
  of a Min-K% attack telling the forget set from the holdout set, in MUSE's orientation (the AUC of
  ranking holdout texts above forget texts by member score, so the target model that still knows
  the forget set has AUC near 0 and PrivLeak near -1 = -100%; negative = under-unlearned, positive
  = over-unlearned); :func:`backends.llm.evaluation.privleak` with the roles swapped, and its paired
  bootstrap interval.
- **Multiple-choice accuracy** (:func:`mc_accuracy`): the share of items whose right choice has
  the highest log-likelihood (lm-eval's ``acc``).

Every mean has a percentile-bootstrap interval over items (:func:`bootstrap_items`, the resampling
of :mod:`backends.common.stats`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from backends.common.stats import CONFIDENCE, N_BOOTSTRAP, Estimate

__all__ = [
    "answer_probability",
    "bootstrap_items",
    "forget_quality",
    "mc_accuracy",
    "model_utility",
    "muse_privleak",
    "normalised_probability",
    "rouge_l",
    "truth_ratio_score",
    "truth_ratios",
]


@lru_cache(maxsize=2)
def _scorer(stemmer: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemmer)


def rouge_l(prediction: str, reference: str, kind: str = "recall", stemmer: bool = True) -> float:
    """ROUGE-L of ``prediction`` against ``reference``: ``"recall"`` (TOFU) or ``"f1"`` (MUSE);
    Porter stemming as OpenUnlearning scores it, or none (``stemmer=False``)."""
    score = _scorer(stemmer).score(reference, prediction)["rougeL"]
    if kind == "recall":
        return float(score.recall)
    if kind == "f1":
        return float(score.fmeasure)
    raise ValueError(f"unknown ROUGE-L kind {kind!r}; choose recall or f1")


def answer_probability(mean_nll: Sequence[float] | np.ndarray) -> np.ndarray:
    """``exp(-mean token NLL)`` per answer: TOFU's normalised ``P(a|q)^(1/|a|)``."""
    return np.exp(-np.asarray(mean_nll, dtype=float))


def truth_ratios(
    paraphrased_nll: Sequence[float] | np.ndarray, perturbed_nll: Sequence[Sequence[float]]
) -> np.ndarray:
    """Per question ``R = exp(-mean_k perturbed_k) / exp(-paraphrased)`` from mean token NLLs
    (``perturbed_nll[i]`` lists question i's perturbed answers; they may differ in number)."""
    para = np.asarray(paraphrased_nll, dtype=float)
    if len(perturbed_nll) != para.size:
        raise ValueError("truth_ratios: one list of perturbed answers per question")
    wrong = np.array([float(np.mean(p)) for p in perturbed_nll])
    return np.exp(-wrong) / np.exp(-para)


def truth_ratio_score(ratios: Sequence[float] | np.ndarray, aggregator: str) -> float:
    """``closer_to_1_better``: ``mean(min(R, 1/R))`` (forget); ``true_better``:
    ``mean(max(0, 1 - R))`` (retain, real authors, world facts)."""
    r = np.asarray(ratios, dtype=float)
    if aggregator == "closer_to_1_better":
        return float(np.mean(np.minimum(r, 1.0 / r)))
    if aggregator == "true_better":
        return float(np.mean(np.maximum(0.0, 1.0 - r)))
    raise ValueError(f"unknown aggregator {aggregator!r}; choose closer_to_1_better or true_better")


def forget_quality(
    unlearned_ratios: Sequence[float] | np.ndarray,
    retain_model_ratios: Sequence[float] | np.ndarray,
) -> float:
    """p-value of ``scipy.stats.ks_2samp`` of the forget truth ratios of the unlearned model
    against the retain-only model's (TOFU's forget quality)."""
    from scipy.stats import ks_2samp

    a = np.asarray(unlearned_ratios, dtype=float)
    b = np.asarray(retain_model_ratios, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("forget_quality: both models need truth ratios")
    return float(ks_2samp(a, b).pvalue)


def normalised_probability(
    correct: Sequence[float] | np.ndarray, wrong: Sequence[Sequence[float]]
) -> np.ndarray:
    """Per question ``P_correct / (P_correct + sum P_wrong)`` of normalised probabilities (TOFU's
    real-author and world-fact probability; OpenUnlearning ``probability_w_options``)."""
    c = np.asarray(correct, dtype=float)
    w = np.array([float(np.sum(x)) for x in wrong])
    return c / (c + w + 1e-10)


def model_utility(values: Sequence[float]) -> float:
    """Harmonic mean of the utility scores (``scipy.stats.hmean``); 0 when any score is 0."""
    from scipy.stats import hmean

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("model_utility: no scores")
    if np.any(v <= 0):
        return 0.0
    return float(hmean(v))


def mc_accuracy(choice_logliks: Sequence[Sequence[float]], answers: Sequence[int]) -> np.ndarray:
    """Per item 1.0 when the right choice has the strictly highest log-likelihood, else 0.0."""
    out = []
    for scores, a in zip(choice_logliks, answers, strict=True):
        s = np.asarray(scores, dtype=float)
        others = np.delete(s, a)
        out.append(float(s[a] > others.max()))
    return np.asarray(out)


def muse_privleak(
    unlearned: tuple[Sequence[float], Sequence[float]],
    retrained: tuple[Sequence[float], Sequence[float]],
    *,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Estimate:
    """MUSE PrivLeak (module docstring) from ``(forget scores, holdout scores)`` of each model
    (member scores: higher = more member-like, e.g. Min-K%), on the same texts in the same order."""
    from backends.llm.evaluation import privleak

    (uf, uh), (rf, rh) = unlearned, retrained
    return privleak((uh, uf), (rh, rf), n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)


def muse_auc(forget: Sequence[float], holdout: Sequence[float]) -> float:
    """MUSE's AUC: holdout texts ranked above forget texts by member score (ties count half)."""
    from backends.llm.evaluation import mia_auc

    return mia_auc(list(holdout), list(forget))


def bootstrap_items(
    statistic: Callable[..., float],
    *arrays: Any,
    n_bootstrap: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Estimate:
    """``statistic(*arrays)`` with a percentile-bootstrap interval over items: each replicate draws
    one set of item indices per distinct array length and applies it to every array of that
    length (paired resampling of per-question values of one set, e.g. the unlearned and the
    retain-only model's truth ratios on the same forget questions)."""
    arrs = [np.asarray(a, dtype=float) if not isinstance(a, list) else a for a in arrays]
    lengths = sorted({len(a) for a in arrs})
    if not lengths or lengths[0] == 0:
        raise ValueError("bootstrap_items: no items")
    value = float(statistic(*arrs))
    rng = np.random.default_rng(seed)
    reps = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        idx = {n: rng.integers(0, n, n) for n in lengths}
        sample = [
            a[idx[len(a)]] if isinstance(a, np.ndarray) else [a[i] for i in idx[len(a)]]
            for a in arrs
        ]
        reps[b] = statistic(*sample)
    reps = reps[np.isfinite(reps)]
    alpha = 1.0 - confidence
    low, high = (float(q) for q in np.quantile(reps, [alpha / 2, 1 - alpha / 2]))
    return Estimate(value, low, high, int(lengths[-1]), confidence)

"""Apollo: a label-only, a-posteriori membership-inference attack against machine unlearning.

Tang et al., code github.com/LiouTang/Unlearn-Apollo-Attack (paper version, commit dd3959d);
spec ``classifier-and-llm-methods.md`` sections 2 and 10; ``docs/methods/apollo.md``.

The attacker sees only the top-1 **label** of the target (unlearned) model, through a
:class:`LabelOracle`.  For each target example (x, y) it walks a probe x′ away from x with SGD on a
loss computed from **shadow** models (never from the target), keeping ‖x′ − x‖₂ in an expanding
annulus [eps·t, eps·(t+1)] after step t, and at every step records

1. the target's label at x′ (one oracle query per target per step), and
2. a confidence proxy: the mean true-class logit of the *retrained* shadows (those that never
   trained on x) at x′.

Two walks per target:

- **Under** (online) minimises ``w0·CE(unlearned shadows) − w1·CE(retrained shadows)``: x′ that
  models which saw x and then unlearned it still label y, retrained ones not;
- **Over** minimises the negative: x′ that retrained models label y, unlearned ones not.
- Offline (no simulated unlearning): ``w0·margin ∓ w1·CE`` over all shadows, where margin is the
  top-1 minus top-2 logit averaged over all shadows (the official code reads shadow 0 only; spec
  section 10 calls that a bug).

The decision (spec section 2, ``get_roc``; issue 9): the official code sweeps a threshold over
the non-members' confidences and keeps, at each FPR, the best of several non-nested decision
families, all on the evaluated targets, which makes its AUC optimistic.  Here
:func:`apollo_scores` turns each rule into one score per target (the threshold at which the rule
starts firing), the ROC, AUC and TPR at low FPR come from :mod:`roc` (the same code as U-LiRA and
U-MIA), the AUC carries a bootstrap 95% interval, and an operating threshold is picked on a null
model (a retrained shadow that never saw any target), never on the targets themselves.

Who is "retrained": shadows retrained without every attacked target they had in their training
set (the attacker does not know which targets were unlearned, so it treats all of them alike).
Apollo answers a per-sample question (was x in the unlearned set, or never trained on?) and so
applies to sample unlearning (random or index forget sets); under class unlearning the
never-trained negatives are the forget class's test examples, every retrained reference labels
them and the forget examples alike, and Under can never fire (see ``docs/methods/classifier-
attacks.md``), so the experiment does not run it there and says why.

Pure: tensors in, dataclasses out; no project, no Qt.  Differences from the official code, all on
purpose: targets are optimised in batches (each target's loss is independent, so this equals the
one-by-one loop); shadows are never modified (they are only read); after clipping to the data
range the probe is pushed back out along its ray to the annulus' inner radius when the box allows
(the official code clips after projecting, which can leave the probe inside the inner radius).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.classifier.attacks import roc
from backends.classifier.attacks.apollo_config import COMBINES, MODES, ApolloConfig
from backends.classifier.ensemble import Ensemble
from backends.common.stats import Estimate

__all__ = [
    "ApolloResult",
    "Calibrated",
    "ApolloTrace",
    "LabelOracle",
    "apollo_attack",
    "apollo_decide",
    "apollo_scores",
    "project_annulus",
    "probe_grid",
    "roc_curves",
]


# ---------------------------------------------------------------------------------------------
# The target, seen through labels only
# ---------------------------------------------------------------------------------------------
class LabelOracle:
    """The attacked model behind a label-only interface.

    ``oracle(x)`` returns the top-1 labels ``(N,)`` (int64, on ``x``'s device) and nothing else;
    ``queries`` counts the examples queried so far.  Apollo reads the target only through this.
    """

    def __init__(self, model: nn.Module, batch_size: int = 4096) -> None:
        self.__model = model  # name-mangled: not an attribute an attack reaches by accident
        self._batch_size = batch_size
        self.queries = 0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.__model.eval()
        x = x.detach()
        labels = [
            self.__model(x[i : i + self._batch_size]).argmax(-1).to(torch.int64)
            for i in range(0, len(x), self._batch_size)
        ]
        self.queries += len(x)
        if not labels:
            return torch.empty(0, dtype=torch.int64, device=x.device)
        return torch.cat(labels).to(x.device)

    def reset(self) -> None:
        """Zero the query counter."""
        self.queries = 0


# ---------------------------------------------------------------------------------------------
# Projection onto the expanding annulus (and the data range)
# ---------------------------------------------------------------------------------------------
def _norms(d: torch.Tensor) -> torch.Tensor:
    return d.flatten(1).norm(dim=1)


def _bshape(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def project_annulus(
    x0: torch.Tensor,
    x: torch.Tensor,
    r_in: float,
    r_out: float,
    clip_min: float | None = None,
    clip_max: float | None = None,
    iters: int = 40,
) -> torch.Tensor:
    """Move each ``x[i]`` along its ray from ``x0[i]`` so that ‖x − x0‖₂ ∈ [r_in, r_out], then
    clip to ``[clip_min, clip_max]``.

    Norms are per example over all non-batch dimensions.  Clipping onto a box that contains x0
    never increases the distance, so the outer bound always holds; it can pull the probe inside
    the inner radius, in which case the probe is pushed further out along the same ray (bisection
    on the scale; the clipped distance is non-decreasing in it) until it reaches ``r_in``, or as
    far as the box allows.  A probe sitting exactly on x0 with ``r_in > 0`` leaves along a fixed
    direction pointing into the box.
    """
    if r_in < 0 or r_out < r_in:
        raise ValueError(f"annulus needs 0 <= r_in <= r_out, got [{r_in}, {r_out}]")
    if (clip_min is None) != (clip_max is None):
        raise ValueError("project_annulus: give both clip_min and clip_max, or neither")
    d = x - x0
    n = _norms(d)
    zero = n <= 1e-12
    if r_in > 0 and bool(zero.any()):
        mid = 0.0 if clip_min is None else 0.5 * (clip_min + clip_max)  # type: ignore[operator]
        inward = torch.where(x0 > mid, -torch.ones_like(x0), torch.ones_like(x0))
        d = torch.where(_bshape(zero, d), inward, d)
        n = _norms(d)
    scale = n.clamp(r_in, r_out) / n.clamp_min(1e-12)
    if clip_min is None or clip_max is None:
        return x0 + d * _bshape(scale, d)

    def clipped(s: torch.Tensor) -> torch.Tensor:
        return (x0 + d * _bshape(s, d)).clamp(clip_min, clip_max)

    out = clipped(scale)
    short = _norms(out - x0) < r_in
    if r_in > 0 and bool(short.any()):
        # beyond s_hi every moving coordinate sits on the box: the clipped distance stops growing
        moving = d.flatten(1).abs().masked_fill(d.flatten(1) == 0, float("inf")).min(1).values
        s_hi = torch.maximum((clip_max - clip_min) / moving.clamp_min(1e-12), scale)
        reach = _norms(clipped(s_hi) - x0) >= r_in
        lo, hi = scale.clone(), s_hi.clone()
        for _ in range(iters):
            mid_s = 0.5 * (lo + hi)
            ok = _norms(clipped(mid_s) - x0) >= r_in
            hi = torch.where(ok, mid_s, hi)
            lo = torch.where(ok, lo, mid_s)
        out = torch.where(_bshape(short, out), clipped(torch.where(reach, hi, s_hi)), out)
    return out


# ---------------------------------------------------------------------------------------------
# The attack
# ---------------------------------------------------------------------------------------------
@dataclass
class ApolloTrace:
    """What Apollo recorded, per target (rows) and step (columns), for Under and Over.

    ``*_pred``: the target's label at x′ (from the oracle); ``*_conf``: mean true-class logit of
    the retrained shadows at x′; ``*_dist``: ‖x′ − x‖₂; ``*_probes``: x′ at ``probe_steps``
    (``(T, len(probe_steps), ...)``, empty when not kept).  ``queries``: oracle queries this attack
    made (Under + Over steps times targets; no other query).
    """

    mode: str
    targets_y: np.ndarray
    under_pred: np.ndarray
    under_conf: np.ndarray
    under_dist: np.ndarray
    over_pred: np.ndarray
    over_conf: np.ndarray
    over_dist: np.ndarray
    queries: int
    probe_steps: tuple[int, ...]
    under_probes: np.ndarray
    over_probes: np.ndarray
    n_unlearned: np.ndarray
    n_retrained: np.ndarray

    @property
    def n_targets(self) -> int:
        return len(self.targets_y)

    @property
    def steps(self) -> int:
        return int(self.under_pred.shape[1])

    @property
    def queries_per_target(self) -> float:
        return self.queries / max(1, self.n_targets)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over the model axis 0 of ``values (K, T)`` with 0/1 ``weights (K, T)`` (0 where a
    target has no model)."""
    return (values * weights).sum(0) / weights.sum(0).clamp_min(1.0)


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-model, per-target cross-entropy ``(K, T)`` of logits ``(K, T, C)``."""
    k, t, c = logits.shape
    return F.cross_entropy(logits.reshape(k * t, c), y.repeat(k), reduction="none").view(k, t)


def _true_logit(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    idx = y.view(1, -1, 1).expand(logits.shape[0], -1, 1)
    return logits.gather(2, idx).squeeze(2)


def _mask(
    mask: np.ndarray | torch.Tensor | None, k: int, t: int, device: torch.device, name: str
) -> torch.Tensor:
    if mask is None:
        return torch.ones(k, t, device=device)
    m = torch.as_tensor(np.asarray(mask, dtype=bool) if not torch.is_tensor(mask) else mask)
    if tuple(m.shape) != (k, t):
        raise ValueError(f"apollo: {name} has shape {tuple(m.shape)}, expected ({k}, {t})")
    return m.to(device=device, dtype=torch.float32)


def _walk(
    oracle: LabelOracle,
    x0: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    conf_fn: Callable[[torch.Tensor], torch.Tensor],
    cfg: ApolloConfig,
    probe_steps: Sequence[int],
    check: Callable[[], None] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One Un_Adv walk for a batch of targets: ``(pred, conf, dist, probes)``."""
    adv = x0.detach().clone()
    preds, confs, dists, probes = [], [], [], []
    for step in range(cfg.atk_epochs):
        if check is not None:
            check()
        adv.requires_grad_(True)
        # the per-target losses are summed: each probe gets the gradient of its own loss
        loss = loss_fn(adv).sum()
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv.detach() - cfg.atk_lr * grad  # plain SGD (no momentum), as in the paper
            adv = project_annulus(
                x0, adv, cfg.eps * step, cfg.eps * (step + 1), cfg.clip_min, cfg.clip_max
            )
            labels = oracle(adv)
            preds.append(labels.cpu().numpy())
            confs.append(conf_fn(adv).cpu().numpy())
            dists.append(_norms(adv - x0).cpu().numpy())
            if cfg.keep_probes and step in probe_steps:
                probes.append(adv.cpu().numpy())
    pred = np.stack(preds, 1).astype(np.int64)
    conf = np.stack(confs, 1).astype(np.float64)
    dist = np.stack(dists, 1).astype(np.float64)
    probe = np.stack(probes, 1) if probes else np.zeros((len(x0), 0), np.float32)
    return pred, conf, dist, probe


def apollo_attack(
    oracle: LabelOracle,
    targets_x: torch.Tensor,
    targets_y: torch.Tensor,
    unlearned_shadows: Ensemble | None,
    retrained_shadows: Ensemble,
    in_mask: np.ndarray | torch.Tensor | None,
    out_mask: np.ndarray | torch.Tensor | None,
    cfg: ApolloConfig,
    *,
    mode: str | None = None,
    check: Callable[[], None] | None = None,
) -> ApolloTrace:
    """Run Apollo's Under and Over walks on every target; the target is read only via ``oracle``.

    - ``mode="online"``: for target t the unlearned shadows are the members k of
      ``unlearned_shadows`` with ``in_mask[k, t]`` (trained on t, then unlearned with the target's
      method) and the retrained shadows those of ``retrained_shadows`` with ``out_mask[k, t]``
      (never trained on t).  ``None`` masks mean every member.
    - ``mode="offline"``: only ``retrained_shadows`` (ordinary shadows; ``unlearned_shadows`` and
      ``in_mask`` are ignored); both loss terms use all shadows, the confidence proxy uses the
      shadows with ``out_mask[k, t]`` (all when ``None``).

    ``mode=None`` takes ``cfg.mode``.  ``check()`` is called before every step (cancellation).
    Makes exactly ``2 * cfg.atk_epochs * T`` oracle queries.
    """
    mode = cfg.mode if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"apollo: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    t_all = len(targets_y)
    if len(targets_x) != t_all:
        raise ValueError(f"apollo: {len(targets_x)} target inputs for {t_all} labels")
    if t_all == 0:
        raise ValueError("apollo: no targets")
    device = targets_x.device
    y_all = torch.as_tensor(targets_y, device=device).long()
    rt = retrained_shadows
    w_rt_all = _mask(out_mask, len(rt), t_all, device, "out_mask")
    if mode == "online":
        if unlearned_shadows is None:
            raise ValueError("apollo: online mode needs the unlearned shadows")
        un = unlearned_shadows
        w_un_all = _mask(in_mask, len(un), t_all, device, "in_mask")
    else:
        un, w_un_all = None, torch.zeros(0, t_all, device=device)
    if cfg.w0 == 0 and cfg.w1 == 0:
        raise ValueError("apollo: w0 and w1 are both 0; the probes would never move")

    e = cfg.atk_epochs
    probe_steps = tuple(sorted({0, e // 2, e - 1}))
    start_queries = oracle.queries
    parts: dict[str, list[np.ndarray]] = {}
    for lo in range(0, t_all, cfg.batch_size):
        sl = slice(lo, lo + cfg.batch_size)
        x0, y = targets_x[sl].detach(), y_all[sl]
        w_rt, w_un = w_rt_all[:, sl], w_un_all[:, sl]

        def conf_fn(adv: torch.Tensor, y: torch.Tensor = y, w_rt: torch.Tensor = w_rt) -> Any:
            return _masked_mean(_true_logit(rt.logits(adv), y), w_rt)

        if un is not None:

            def base(adv: torch.Tensor, y: torch.Tensor = y, w_rt: Any = w_rt, w_un: Any = w_un):
                ce_un = _masked_mean(_ce(un.logits(adv), y), w_un)
                ce_rt = _masked_mean(_ce(rt.logits(adv), y), w_rt)
                return cfg.w0 * ce_un - cfg.w1 * ce_rt

            def under(adv: torch.Tensor, base: Any = base) -> torch.Tensor:
                return base(adv)

            def over(adv: torch.Tensor, base: Any = base) -> torch.Tensor:
                return -base(adv)

        else:

            def terms(adv: torch.Tensor, y: torch.Tensor = y) -> tuple[torch.Tensor, torch.Tensor]:
                logits = rt.logits(adv)
                top2 = logits.topk(2, dim=-1).values
                margin = (top2[..., 0] - top2[..., 1]).mean(0)  # all shadows, not shadow 0
                return margin, _ce(logits, y).mean(0)

            def under(adv: torch.Tensor, terms: Any = terms) -> torch.Tensor:
                margin, ce = terms(adv)
                return cfg.w0 * margin - cfg.w1 * ce

            def over(adv: torch.Tensor, terms: Any = terms) -> torch.Tensor:
                margin, ce = terms(adv)
                return cfg.w0 * margin + cfg.w1 * ce

        for name, fn in (("under", under), ("over", over)):
            pred, conf, dist, probes = _walk(oracle, x0, y, fn, conf_fn, cfg, probe_steps, check)
            for key, value in (("pred", pred), ("conf", conf), ("dist", dist), ("probes", probes)):
                parts.setdefault(f"{name}_{key}", []).append(value)

    joined = {k: np.concatenate(v, 0) for k, v in parts.items()}
    return ApolloTrace(
        mode=mode,
        targets_y=y_all.cpu().numpy().astype(np.int64),
        under_pred=joined["under_pred"],
        under_conf=joined["under_conf"],
        under_dist=joined["under_dist"],
        over_pred=joined["over_pred"],
        over_conf=joined["over_conf"],
        over_dist=joined["over_dist"],
        queries=oracle.queries - start_queries,
        probe_steps=probe_steps if cfg.keep_probes else (),
        under_probes=joined["under_probes"],
        over_probes=joined["over_probes"],
        n_unlearned=w_un_all.sum(0).cpu().numpy().astype(np.int64),
        n_retrained=w_rt_all.sum(0).cpu().numpy().astype(np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Scores, the standard ROC and the shadow-calibrated operating point
# ---------------------------------------------------------------------------------------------
def _floor(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per row the largest value where ``ok``; rows without one get -inf (filled in later)."""
    masked = np.where(ok, values, -np.inf)
    return masked.max(1)


def apollo_scores(trace: ApolloTrace, combine: str = "under") -> np.ndarray:
    """One score per target, higher meaning "unlearned" (spec section 2, ``get_roc``).

    The official rule fires Under at threshold ``th`` when the target still says y at a probe
    where the retrained shadows' confidence has fallen below ``th``, and Over when the target
    drops y at a probe where their confidence has risen above ``th``.  The scores are the
    thresholds at which each rule starts to fire, so one sweep over them is an ordinary, nested
    ROC (no envelope over non-nested decision families, no threshold chosen on the targets):

    - ``under``: ``max_t {-conf_t : pred_t == y}``: how low the retrained shadows' confidence
      got at a probe the target still labels y;
    - ``over``: ``max_t {conf_t : pred_t != y}``: how confident the retrained shadows were at a
      probe the target no longer labels y;
    - ``both``: the larger of the two after turning each into its rank among all targets
      (labels are not used), i.e. "either artefact is unusually strong".

    A target where a rule never fires (Under: the target never says y; Over: it always does)
    gets a score below every other; such targets tie with each other.  The true label is never
    used as a fallback (spec section 10).
    """
    if combine not in COMBINES:
        raise ValueError(f"apollo: unknown combine {combine!r}; choose one of {COMBINES}")
    y = trace.targets_y[:, None]
    under = _floor(-trace.under_conf, trace.under_pred == y)
    over = _floor(trace.over_conf, trace.over_pred != y)

    def finite(v: np.ndarray) -> np.ndarray:
        ok = np.isfinite(v)
        low = (v[ok].min() - 1.0) if ok.any() else 0.0
        return np.where(ok, v, low)

    if combine == "under":
        return finite(under)
    if combine == "over":
        return finite(over)
    from scipy.stats import rankdata

    n = max(1, trace.n_targets)
    return np.maximum(rankdata(finite(under)) / n, rankdata(finite(over)) / n)


@dataclass
class Calibrated:
    """A decision threshold picked on a shadow that never trained on any target (the null model),
    and what it does on the real target: ``fpr`` should come out near ``target_fpr``."""

    target_fpr: float
    threshold: float
    tpr: Estimate
    fpr: Estimate


@dataclass
class ApolloResult:
    """Apollo's scores, the ROC over them (the same ``roc.roc_result`` as U-LiRA and U-MIA), the
    AUC's bootstrap 95% interval and, when a null trace was given, the operating points at
    ``cfg.low_fprs`` with thresholds picked on that null model's scores."""

    combine: str
    scores: np.ndarray
    is_member: np.ndarray
    roc: roc.RocResult
    auc_estimate: Estimate
    tpr_at: dict[float, float]
    calibrated: dict[float, Calibrated]
    queries_per_target: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def auc(self) -> float:
        return self.roc.auc

    def to_metrics(self, prefix: str = "apollo") -> dict[str, float]:
        out = self.roc.to_metrics(prefix)
        p = f"{prefix}_" if prefix else ""
        out[f"{p}auc_low"] = self.auc_estimate.low
        out[f"{p}auc_high"] = self.auc_estimate.high
        for f, v in self.tpr_at.items():
            out[f"{p}tpr_at_{_pct(f)}pct_fpr"] = float(v)
        for f, c in self.calibrated.items():
            out.update(c.tpr.as_dict(f"{p}calibrated_tpr_at_{_pct(f)}pct"))
            out.update(c.fpr.as_dict(f"{p}calibrated_fpr_at_{_pct(f)}pct"))
        out[f"{p}queries_per_target"] = float(self.queries_per_target)
        out.update({f"{p}{k}": float(v) for k, v in self.extra.items()})
        return out


def _pct(f: float) -> str:
    text = f"{f * 100:g}"
    return text.replace(".", "")


def apollo_decide(
    trace: ApolloTrace,
    is_member: np.ndarray,
    cfg: ApolloConfig,
    combine: str | None = None,
    null_trace: ApolloTrace | None = None,
) -> ApolloResult:
    """Score Apollo's trace against ``is_member`` (T,) (True: the target was unlearned; False:
    never trained on).

    The ROC, AUC and TPR at low FPR come from :func:`roc.roc_result` over
    :func:`apollo_scores`; the AUC's interval from ``stats.bootstrap_auc`` (``cfg.n_bootstrap``
    replicates, ``cfg.bootstrap_seed``).  ``null_trace``: the same attack with a model that never
    trained on any target as the oracle (a held-out retrained shadow); the threshold for FPR f is
    the (1 - f) quantile of its scores, so no threshold is ever chosen on the scored targets.
    The resulting TPR and FPR on the real targets come with exact binomial intervals.
    """
    from backends.common.stats import bootstrap_auc, rate

    combine = cfg.combine if combine is None else combine
    pos = np.asarray(is_member, dtype=bool).ravel()
    if pos.shape != (trace.n_targets,):
        raise ValueError(f"apollo: {pos.size} membership labels for {trace.n_targets} targets")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"apollo: needs members and non-members (got {n_pos} and {n_neg})")
    scores = apollo_scores(trace, combine)
    result = roc.roc_result(scores, pos)
    estimate = bootstrap_auc(
        scores[pos], scores[~pos], n_bootstrap=cfg.n_bootstrap, seed=cfg.bootstrap_seed
    )
    fprs = sorted({0.01, 0.001, *cfg.low_fprs})
    calibrated: dict[float, Calibrated] = {}
    if null_trace is not None:
        if null_trace.n_targets != trace.n_targets:
            raise ValueError("apollo: the null trace must cover the same targets")
        null = apollo_scores(null_trace, combine)
        for f in cfg.low_fprs:
            th = float(np.quantile(null, 1.0 - f, method="higher"))
            called = scores > th
            calibrated[f] = Calibrated(
                f,
                th,
                rate(int((called & pos).sum()), n_pos),
                rate(int((called & ~pos).sum()), n_neg),
            )
    return ApolloResult(
        combine=combine,
        scores=scores,
        is_member=pos,
        roc=result,
        auc_estimate=estimate,
        tpr_at={f: roc.tpr_at_fpr(result.fpr, result.tpr, f) for f in fprs},
        calibrated=calibrated,
        queries_per_target=trace.queries_per_target,
    )


# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------
def _as_image(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(C, H, W) or (H, W) or flat -> (H, W) or (H, W, 3) in [0, 1] for an ImageGrid."""
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 1:
        side = int(math.isqrt(a.size))
        a = a.reshape(side, side) if side * side == a.size else a[None, :]
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a[:3].transpose(1, 2, 0)
    return np.clip((a - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


def probe_grid(
    trace: ApolloTrace,
    x: torch.Tensor | np.ndarray,
    indices: Sequence[int],
    class_names: Sequence[str] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Any:
    """An :class:`~workbench.artifacts.ImageGrid`: one row per target index, the target image
    first, then its Under and Over probes at ``trace.probe_steps``, captioned with the target's
    label at each probe."""
    from workbench.artifacts import ImageGrid

    if not trace.probe_steps or trace.under_probes.shape[1] == 0:
        raise ValueError("apollo: this trace kept no probes (keep_probes was off)")
    xs = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    names = list(class_names) if class_names else None

    def name(c: int) -> str:
        return names[c] if names and 0 <= c < len(names) else str(c)

    lo, hi = value_range
    images, captions, rows = [], [], []
    for i in indices:
        y = int(trace.targets_y[i])
        images.append(_as_image(xs[i], lo, hi))
        captions.append(f"target, y={name(y)}")
        for kind, probes, pred, dist in (
            ("under", trace.under_probes, trace.under_pred, trace.under_dist),
            ("over", trace.over_probes, trace.over_pred, trace.over_dist),
        ):
            for j, step in enumerate(trace.probe_steps):
                images.append(_as_image(probes[i, j], lo, hi))
                captions.append(
                    f"{kind} step {step + 1}: target says {name(int(pred[i, step]))} "
                    f"(|d|={dist[i, step]:.2f})"
                )
        rows.append(f"target {i}")
    cols = 1 + 2 * len(trace.probe_steps)
    col_labels = ["x"] + [
        f"{kind} t={s + 1}" for kind in ("under", "over") for s in trace.probe_steps
    ]
    return ImageGrid(
        images=images,
        captions=captions,
        row_labels=rows,
        col_labels=col_labels,
        cols=cols,
        title="Apollo probes x′ (label-only queries to the target)",
    )


def roc_curves(result: ApolloResult, title: str = "Apollo ROC") -> Any:
    """The ROC (log-log, as the low-FPR regime matters) and the chance line as Curves."""
    from workbench.artifacts import Curves

    floor = 1e-3
    fpr = np.clip(result.roc.fpr, floor, 1.0)
    tpr = np.clip(result.roc.tpr, floor, 1.0)
    return Curves(
        series={
            f"Apollo ({result.combine}, AUC {result.auc:.3f})": (fpr.tolist(), tpr.tolist()),
            "chance": ([floor, 1.0], [floor, 1.0]),
        },
        x_label="false-positive rate",
        y_label="true-positive rate",
        title=title,
        log_x=True,
        log_y=True,
    )

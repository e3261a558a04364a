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

:func:`apollo_decide` then sweeps a threshold over the non-members' confidences (the official
``get_roc``): Under fires at the first step where the retrained confidence falls below the
threshold and says "unlearned" if the target still predicts y there; Over fires at the first step
where it rises above the threshold and says "unlearned" if the target does not predict y.  When
neither fires the answer is "not unlearned" (never the true label: that leaks, spec section 10).

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

__all__ = [
    "ApolloResult",
    "ApolloTrace",
    "LabelOracle",
    "apollo_attack",
    "apollo_decide",
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
# The decision rule (the official get_roc)
# ---------------------------------------------------------------------------------------------
def _first(hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (index of the first True, whether there is one) of a (T, E) boolean array."""
    any_hit = hit.any(1)
    return np.where(any_hit, hit.argmax(1), 0), any_hit


def _fires(trace: ApolloTrace, th: float, combine: str) -> np.ndarray:
    """Targets predicted "unlearned" at threshold ``th`` (T,) bool."""
    rows = np.arange(trace.n_targets)
    y = trace.targets_y
    out = np.zeros(trace.n_targets, bool)
    if combine in ("under", "both"):
        i, hit = _first(trace.under_conf < th)
        out |= hit & (trace.under_pred[rows, i] == y)
    if combine in ("over", "both"):
        i, hit = _first(trace.over_conf > th)
        out |= hit & (trace.over_pred[rows, i] != y)
    return out


@dataclass
class ApolloResult:
    """Apollo's decisions over the threshold sweep and the ROC summaries.

    ``tp/fp/tn/fn`` are per threshold (``thresholds``, ascending).  The thresholds are not nested
    (a higher one need not call a superset), so ``roc`` is the Pareto frontier of their
    (FPR, TPR) points plus (0, 0) and (1, 1) (predicting nobody / everybody), joined by straight
    lines; AUC and TPR at FPR are read off that polyline.
    ``precision_at``: precision of the threshold with the highest TPR among those with FPR at most
    the key (NaN when none of them predicts anyone).
    """

    combine: str
    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    tn: np.ndarray
    fn: np.ndarray
    roc: roc.RocResult
    tpr_at: dict[float, float]
    precision_at: dict[float, float]
    queries_per_target: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def auc(self) -> float:
        return self.roc.auc

    def to_metrics(self, prefix: str = "apollo") -> dict[str, float]:
        out = self.roc.to_metrics(prefix)
        p = f"{prefix}_" if prefix else ""
        for f, v in self.tpr_at.items():
            out[f"{p}tpr_at_{_pct(f)}pct_fpr"] = float(v)
        for f, v in self.precision_at.items():
            out[f"{p}precision_at_{_pct(f)}pct_fpr"] = float(v)
        out[f"{p}queries_per_target"] = float(self.queries_per_target)
        out.update({f"{p}{k}": float(v) for k, v in self.extra.items()})
        return out


def _pct(f: float) -> str:
    text = f"{f * 100:g}"
    return text.replace(".", "")


def _upper_roc(fpr: np.ndarray, tpr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC polyline of a family of classifiers: its Pareto frontier (points no other point
    beats in both FPR and TPR) from (0, 0) to (1, 1), joined by straight lines (a randomised mix
    of two neighbouring thresholds reaches any point on the segment between them)."""
    f = np.concatenate([[0.0], fpr, [1.0]])
    t = np.concatenate([[0.0], tpr, [1.0]])
    order = np.lexsort((-t, f))  # by FPR, the highest TPR first among equal FPRs
    keep_f, keep_t = [0.0], [0.0]
    for fi, ti in zip(f[order], t[order], strict=True):
        if ti > keep_t[-1]:
            keep_f.append(float(fi))
            keep_t.append(float(ti))
    if keep_f[-1] < 1.0:
        keep_f.append(1.0)
        keep_t.append(1.0)
    return np.array(keep_f), np.array(keep_t)


def apollo_decide(
    trace: ApolloTrace, is_member: np.ndarray, cfg: ApolloConfig, combine: str | None = None
) -> ApolloResult:
    """Sweep thresholds and score Apollo's "unlearned" calls against ``is_member`` (T,) (True:
    the target was in the unlearned set / trained on; False: never trained on, the "valid" set).

    Thresholds are the unique confidence values of the non-members (Under's for ``under``,
    Over's for ``over``, both for ``both``); ``combine`` defaults to ``cfg.combine``.
    """
    combine = cfg.combine if combine is None else combine
    if combine not in COMBINES:
        raise ValueError(f"apollo: unknown combine {combine!r}; choose one of {COMBINES}")
    pos = np.asarray(is_member, dtype=bool).ravel()
    if pos.shape != (trace.n_targets,):
        raise ValueError(f"apollo: {pos.size} membership labels for {trace.n_targets} targets")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"apollo: needs members and non-members (got {n_pos} and {n_neg})")
    sources = []
    if combine in ("under", "both"):
        sources.append(trace.under_conf[~pos].ravel())
    if combine in ("over", "both"):
        sources.append(trace.over_conf[~pos].ravel())
    thresholds = np.unique(np.concatenate(sources))
    thresholds = thresholds[np.isfinite(thresholds)]
    tp, fp = np.zeros(len(thresholds), np.int64), np.zeros(len(thresholds), np.int64)
    for j, th in enumerate(thresholds):
        called = _fires(trace, float(th), combine)
        tp[j] = int((called & pos).sum())
        fp[j] = int((called & ~pos).sum())
    fn, tn = n_pos - tp, n_neg - fp
    fpr_pts, tpr_pts = fp / n_neg, tp / n_pos
    fpr, tpr = _upper_roc(fpr_pts, tpr_pts)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)

    def precision_at(target: float) -> float:
        ok = (fpr_pts <= target) & (tp + fp > 0)
        if not ok.any():
            return float("nan")
        cand = np.flatnonzero(ok)
        best = cand[np.lexsort((precision[cand], tpr_pts[cand]))[-1]]
        return float(precision[best])

    fprs = sorted({0.01, 0.001, *cfg.low_fprs})
    result = roc.RocResult(
        fpr=fpr,
        tpr=tpr,
        auc=roc.auc(fpr, tpr),
        tpr_at_1pct=roc.tpr_at_fpr(fpr, tpr, 0.01),
        tpr_at_01pct=roc.tpr_at_fpr(fpr, tpr, 0.001),
        precision_at_1pct=precision_at(0.01),
        n_pos=n_pos,
        n_neg=n_neg,
        thresholds=thresholds,
    )
    return ApolloResult(
        combine=combine,
        thresholds=thresholds,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        roc=result,
        tpr_at={f: roc.tpr_at_fpr(fpr, tpr, f) for f in fprs},
        precision_at={f: precision_at(f) for f in fprs},
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

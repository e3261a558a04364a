"""SKeB analysis: rates per framing, regressions on the entanglement metrics, a correlation
heatmap and the domain-graph view (spec section 5, "Analysis").

A :class:`SkebRecord` is one judged response: its framing, its prompt's metrics (``m1``..``m9``)
and its :class:`~backends.llm.skeb.judge.JudgeResult`. From a list of them:

* :func:`rates_by_framing`: mean factual / non-factual / hallucinated percentage and the recall
  rate (percentage of responses with at least one factual sentence) per framing, the recall with
  its exact 95% (Clopper-Pearson) interval over the framing's questions (``recall_low`` /
  ``recall_high``, in percent; :func:`backends.common.stats.rate`);
* :func:`regress_rate_on_metrics`: for each metric, an ordinary least-squares line of a
  response-level rate (default: the factual percentage) on the metric, with Pearson r and its
  two-sided p-value (``scipy.stats.pearsonr``). Records whose metric is not finite (M7 = inf for a
  disconnected prompt) are left out of that metric's fit; fewer than 3 usable records or a
  constant variable give NaN;
* :func:`regress_metrics_on_framing`: the author's analysis (each metric on the framing), with the
  explicit ordinal code instead of the alphabetical ``LabelEncoder``;
* :func:`correlation_heatmap`: the Pearson correlation matrix of the framing code, the metrics and
  the rates (pairwise complete: a pair uses the records where both are finite), as a square
  :class:`~workbench.artifacts.Heatmap` with the same labels on both axes;
* :func:`domain_graph_artifact`: the graph as a :class:`~workbench.artifacts.Graph` with a seeded
  spring layout, ``freq`` as node size, a prompt's entities highlighted and, per node, the facts
  about it (the explorer lists them when the node is clicked);
* :func:`prompt_table`: one row per prompt (framing, question, gold answer, prompt, the model's
  answer, the verdict, the judge's per-sentence labels, entities, M1-M9) as a
  :class:`~workbench.artifacts.PromptTable` whose metric columns carry their definitions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from backends.llm.skeb.framings import FRAMINGS, encode_framing
from backends.llm.skeb.judge import JudgeResult, recalled
from backends.llm.skeb.metrics import METRIC_HELP, METRIC_LABELS, METRIC_NAMES
from workbench.artifacts import Bars, Graph, Heatmap, PromptTable, Table

__all__ = [
    "RATES",
    "SkebRecord",
    "Regression",
    "response_rates",
    "rates_by_framing",
    "rates_bars",
    "fit_line",
    "regress_rate_on_metrics",
    "regress_metrics_on_framing",
    "regression_table",
    "correlation_matrix",
    "correlation_heatmap",
    "domain_graph_artifact",
    "verdict",
    "judge_text",
    "prompt_table",
]

RATES = ("factual", "non_factual", "hallucinated", "recall")


@dataclass
class SkebRecord:
    """One judged response: framing, the prompt's metrics, the judge's result."""

    framing: str
    metrics: Mapping[str, float]
    result: JudgeResult
    item: int | str | None = None
    entities: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        encode_framing(self.framing)  # fail early on an unknown framing


@dataclass(frozen=True)
class Regression:
    """y = slope * x + intercept, with Pearson r, its p-value and the records used."""

    x: str
    y: str
    slope: float
    intercept: float
    r: float
    p: float
    n: int

    @property
    def r_squared(self) -> float:
        return self.r * self.r


def response_rates(result: JudgeResult) -> dict[str, float]:
    """A response's factual / non_factual / hallucinated percentages and recall (0 or 100)."""
    return {
        "factual": float(result.factual),
        "non_factual": float(result.non_factual),
        "hallucinated": float(result.hallucinated),
        "recall": 100.0 if recalled(result) else 0.0,
    }


def rates_by_framing(
    records: Sequence[SkebRecord], confidence: float = 0.95
) -> dict[str, dict[str, float]]:
    """Per framing (in ordinal order, framings with records only): mean of each rate, plus ``n``
    and the recall's exact interval ``recall_low`` / ``recall_high`` (percent): one response per
    question in a framing, so the recall is ``k`` recalled of ``n`` questions."""
    from backends.common.stats import rate

    out: dict[str, dict[str, float]] = {}
    for f in FRAMINGS:
        mine = [r for r in records if r.framing == f]
        if mine:
            rows = [response_rates(r.result) for r in mine]
            out[f] = {k: float(np.mean([row[k] for row in rows])) for k in RATES}
            out[f]["n"] = float(len(rows))
            est = rate(sum(recalled(r.result) for r in mine), len(mine), confidence)
            out[f]["recall_low"] = 100.0 * est.low
            out[f]["recall_high"] = 100.0 * est.high
    return out


def rates_bars(records: Sequence[SkebRecord]) -> Bars:
    """Rates per framing as grouped bars (one series per rate)."""
    table = rates_by_framing(records)
    cats = list(table)
    return Bars(
        categories=cats,
        series={k: [table[c][k] for c in cats] for k in RATES},
        title="SKeB rates per framing",
        y_label="% of sentences (recall: % of responses)",
        x_label="framing",
    )


def fit_line(
    x: Sequence[float], y: Sequence[float], *, x_name: str = "x", y_name: str = "y"
) -> Regression:
    """Least-squares line and Pearson r / p over the pairs where both values are finite."""
    from scipy import stats

    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    n = int(xa.size)
    nan = math.nan
    if n < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return Regression(x_name, y_name, nan, nan, nan, nan, n)
    slope, intercept = np.polyfit(xa, ya, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r, p = stats.pearsonr(xa, ya)
    return Regression(x_name, y_name, float(slope), float(intercept), float(r), float(p), n)


def regress_rate_on_metrics(
    records: Sequence[SkebRecord],
    rate: str = "factual",
    metrics: Sequence[str] = METRIC_NAMES,
) -> dict[str, Regression]:
    """For each metric present in the records: the response-level ``rate`` regressed on it."""
    if rate not in RATES:
        raise ValueError(f"unknown rate {rate!r}; known: {', '.join(RATES)}")
    y = [response_rates(r.result)[rate] for r in records]
    out = {}
    for m in metrics:
        if not any(m in r.metrics for r in records):
            continue
        x = [float(r.metrics.get(m, math.nan)) for r in records]
        out[m] = fit_line(x, y, x_name=m, y_name=rate)
    return out


def regress_metrics_on_framing(
    records: Sequence[SkebRecord], metrics: Sequence[str] = METRIC_NAMES
) -> dict[str, Regression]:
    """Each metric regressed on the framing's ordinal code (original 0 ... authority 3)."""
    x = [float(encode_framing(r.framing)) for r in records]
    out = {}
    for m in metrics:
        if any(m in r.metrics for r in records):
            y = [float(r.metrics.get(m, math.nan)) for r in records]
            out[m] = fit_line(x, y, x_name="framing", y_name=m)
    return out


def regression_table(regressions: Mapping[str, Regression], title: str = "") -> Table:
    """Regressions as a table: x, y, n, slope, intercept, r, r^2, p."""
    rows = [
        [g.x, g.y, g.n, g.slope, g.intercept, g.r, g.r_squared, g.p] for g in regressions.values()
    ]
    cols = ["x", "y", "n", "slope", "intercept", "pearson r", "r^2", "p"]
    return Table(columns=cols, rows=rows, title=title)


def correlation_matrix(
    records: Sequence[SkebRecord], metrics: Sequence[str] = METRIC_NAMES
) -> tuple[list[str], np.ndarray]:
    """(names, matrix): Pearson correlations of framing code, metrics and rates.

    Pairwise complete; NaN where a pair has fewer than 3 finite records or a constant variable.
    """
    names = ["framing"] + [m for m in metrics if any(m in r.metrics for r in records)]
    names += list(RATES)
    cols: dict[str, list[float]] = {"framing": [float(encode_framing(r.framing)) for r in records]}
    for m in names[1 : len(names) - len(RATES)]:
        cols[m] = [float(r.metrics.get(m, math.nan)) for r in records]
    rates = [response_rates(r.result) for r in records]
    for k in RATES:
        cols[k] = [row[k] for row in rates]
    k = len(names)
    mat = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(i, k):
            reg = fit_line(cols[names[i]], cols[names[j]])
            val = reg.r
            if i == j and not math.isnan(val):
                val = 1.0  # exact, not pearsonr's 0.999...
            mat[i, j] = mat[j, i] = val
    return names, mat


def correlation_heatmap(
    records: Sequence[SkebRecord], metrics: Sequence[str] = METRIC_NAMES
) -> Heatmap:
    """The correlation matrix as a square heatmap, labelled on both axes, colour range [-1, 1]."""
    names, mat = correlation_matrix(records, metrics)
    labels = [METRIC_LABELS.get(n, n) for n in names]
    return Heatmap(
        matrix=mat,
        x_labels=labels,
        y_labels=labels,
        title="SKeB: Pearson correlation of framing, entanglement metrics and rates",
        x_title="variable",
        y_title="variable",
        vmin=-1.0,
        vmax=1.0,
        diverging=True,
    )


def domain_graph_artifact(
    graph: nx.Graph,
    highlight: Sequence[str] = (),
    *,
    seed: int = 0,
    title: str = "SKeB domain graph",
    highlight_sets: Mapping[str, Sequence[str]] | None = None,
    node_facts: Mapping[str, Sequence[str]] | None = None,
) -> Graph:
    """The domain graph with a seeded spring layout, ``freq`` as node size, ``highlight`` marked.

    ``node_facts`` (entity -> fact sentences) become each node's ``facts`` attribute."""
    # Kamada-Kawai spreads co-occurrence clusters far better than a spring layout (looked at in
    # the graph explorer); very large graphs keep the cheaper spring layout
    if not len(graph):
        layout = {}
    elif len(graph) <= 300 and nx.is_connected(graph):
        layout = nx.kamada_kawai_layout(graph)
    else:
        layout = nx.spring_layout(graph, seed=seed, weight="weight")
    if node_facts:
        graph = graph.copy()
        for node in graph.nodes:
            graph.nodes[node]["facts"] = [str(f) for f in node_facts.get(node, ())]
    return Graph.from_networkx(
        graph,
        layout=layout,
        title=title,
        node_size="freq",
        edge_weight="weight",
        highlight=[str(h) for h in highlight if h in graph],
        highlight_sets={
            str(k): [str(h) for h in v if h in graph] for k, v in (highlight_sets or {}).items()
        },
    )


PROMPT_TEXT_COLUMNS = (
    "question",
    "gold answer",
    "prompt",
    "answer",
    "verdict",
    "judge",
    "entities",
)
PROMPT_HELP = {
    "framing": "How the question was framed: original (direct), emotional appeal, logical "
    "(step by step) or authority (an expert's claim).",
    "gold answer": "The universe's answer to the asked fact.",
    "answer": "The model's own answer (a base model's: its first line after 'A:').",
    "verdict": "The judge's verdict: recalled (at least one factual sentence), hallucinated (a "
    "value the knowledge base does not give) or non-factual (no value asserted).",
    "judge": "The judge's label of each sentence of the answer, with its evidence.",
    "factual %": "Share of the answer's sentences labelled factual.",
    "entities": "Entities of the domain graph found in the prompt: the set the metrics measure.",
}
PROMPT_LEGEND = (
    "Each row is one prompt: a question in one framing, the model's answer and the judge's "
    "verdict. The metrics M1-M9 measure how entangled the prompt's entities are in the domain "
    "graph (nodes: entities; edge weight: the chapters two entities share):\n"
    + "\n".join(METRIC_HELP[m] for m in METRIC_NAMES)
)


def verdict(result: JudgeResult) -> str:
    """One word for a judged answer: recalled, hallucinated or non-factual."""
    if recalled(result):
        return "recalled"
    if any(lab == "hallucinated" for lab in result.labels):
        return "hallucinated"
    return "non-factual"


def judge_text(result: JudgeResult) -> str:
    """The judge's output, one line per sentence: ``[label] sentence (evidence)``."""
    if not result.sentences:
        return "[non_factual] (empty answer)"
    return "\n".join(
        f"[{lab}] {sent}" + (f" ({why})" if why else "")
        for sent, lab, why in zip(result.sentences, result.labels, result.evidence, strict=False)
    )


def prompt_table(
    records: Sequence[SkebRecord], texts: Sequence[Mapping[str, str]], title: str = ""
) -> PromptTable:
    """Every prompt with the model's answer, the verdict and its metric values.

    ``texts[i]`` holds ``question``, ``gold answer``, ``prompt`` and ``answer`` of ``records[i]``.
    """
    if len(records) != len(texts):
        raise ValueError(f"prompt_table: {len(texts)} texts for {len(records)} records")
    metrics = [m for m in METRIC_NAMES if any(m in r.metrics for r in records)]
    columns = [
        "#",
        "framing",
        "question",
        "gold answer",
        "prompt",
        "answer",
        "verdict",
        "factual %",
        "judge",
        "entities",
        *(m.upper() for m in metrics),
    ]
    rows = []
    for i, (r, t) in enumerate(zip(records, texts, strict=True)):
        rows.append(
            [
                i + 1,
                r.framing,
                t["question"],
                t["gold answer"],
                t["prompt"],
                t["answer"],
                verdict(r.result),
                float(r.result.factual),
                judge_text(r.result),
                "; ".join(dict.fromkeys(r.entities)),
                *(float(r.metrics.get(m, math.nan)) for m in metrics),
            ]
        )
    help_ = dict(PROMPT_HELP)
    help_.update({m.upper(): METRIC_HELP[m] for m in metrics})
    return PromptTable(
        columns=columns,
        rows=rows,
        title=title or f"SKeB: {len(rows)} prompts with the model's answer and the verdict",
        long_columns=list(PROMPT_TEXT_COLUMNS),
        column_help=help_,
        legend=PROMPT_LEGEND,
    )

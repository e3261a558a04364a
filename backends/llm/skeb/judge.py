"""SKeB behaviour judge: factual / non-factual / hallucinated per sentence (spec section 5,
"Behaviour classification" and "CPU version" step 5).

The paper's judge is an LLM (o4-mini) that returns the percentages ``factual``,
``non_factual`` and ``hallucinated`` of a response, summing to 100. Here :class:`Judge` is a
protocol any judge implements (a local LLM judge included) and :class:`RuleJudge` is the offline
default, checking each sentence against a knowledge base of (subject, relation, value) triples.

RuleJudge rules, per sentence (split after ``.``, ``!``, ``?`` or at line breaks):

* the sentence's mentions are found case-insensitively as whole words, longest first
  (:class:`~backends.llm.skeb.graph.SurfaceMatcher`), over entity names, their aliases and every
  known value (entity names and all triple values);
* a *subject* is a mentioned entity that is the subject of at least one triple;
* FACTUAL if some mentioned subject s and some other mention v form a known pair: (s, *, v) is a
  triple, or (v, *, s) is one when v is an entity (so "Ron is Harry's friend" is checked both ways);
* otherwise HALLUCINATED if some mentioned subject s appears with another known value v that is
  not one of s's values (an asserted pair absent from the knowledge base);
* otherwise NON-FACTUAL (no subject, or no value: unverifiable or subjective).

FACTUAL takes precedence over HALLUCINATED within a sentence. Percentages are label counts over
the number of sentences, times 100; a response with no sentences is 100% non-factual.

Response-level recall (:func:`recalled`): a response recalls the knowledge if at least one of its
sentences is factual (the paper counts factual recall per response).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from backends.llm.skeb.graph import SurfaceMatcher, normalize_name, strip_the

__all__ = [
    "FACTUAL",
    "NON_FACTUAL",
    "HALLUCINATED",
    "LABELS",
    "JudgeResult",
    "Judge",
    "RuleJudge",
    "split_sentences",
    "result_from_labels",
    "recalled",
]

Label = Literal["factual", "non_factual", "hallucinated"]
FACTUAL: Label = "factual"
NON_FACTUAL: Label = "non_factual"
HALLUCINATED: Label = "hallucinated"
LABELS: tuple[Label, ...] = (FACTUAL, NON_FACTUAL, HALLUCINATED)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ``.``/``!``/``?`` followed by space, and at line breaks."""
    return [s.strip() for s in _SENTENCE_END.split(text or "") if s and s.strip()]


@dataclass
class JudgeResult:
    """A judged response: its sentences, one label each, and the three percentages (sum 100)."""

    sentences: list[str]
    labels: list[str]
    factual: float
    non_factual: float
    hallucinated: float
    evidence: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "sentences": list(self.sentences),
            "labels": list(self.labels),
            "factual": self.factual,
            "non_factual": self.non_factual,
            "hallucinated": self.hallucinated,
            "evidence": list(self.evidence),
        }


def result_from_labels(
    sentences: Sequence[str], labels: Sequence[str], evidence: Sequence[str] | None = None
) -> JudgeResult:
    """Build a :class:`JudgeResult` from per-sentence labels (for any judge implementation)."""
    if len(sentences) != len(labels):
        raise ValueError(f"{len(labels)} labels for {len(sentences)} sentences")
    bad = sorted({lab for lab in labels if lab not in LABELS})
    if bad:
        raise ValueError(f"unknown judge label(s) {bad}; allowed: {', '.join(LABELS)}")
    n = len(labels)
    if n == 0:
        pct = {FACTUAL: 0.0, NON_FACTUAL: 100.0, HALLUCINATED: 0.0}
    else:
        pct = {lab: 100.0 * sum(1 for x in labels if x == lab) / n for lab in LABELS}
    return JudgeResult(
        sentences=list(sentences),
        labels=list(labels),
        factual=pct[FACTUAL],
        non_factual=pct[NON_FACTUAL],
        hallucinated=pct[HALLUCINATED],
        evidence=list(evidence) if evidence is not None else [""] * n,
    )


@runtime_checkable
class Judge(Protocol):
    """Anything that labels a response; implement this for an LLM judge."""

    def judge(self, response: str) -> JudgeResult: ...


def recalled(result: JudgeResult) -> bool:
    """Response-level factual recall: at least one sentence is factual."""
    return any(lab == FACTUAL for lab in result.labels)


class RuleJudge:
    """Rule-based judge against a knowledge base of triples (see the module docstring).

    ``triples`` are (subject, relation, value); ``entity_names`` the universe's entities;
    ``aliases`` maps alias to canonical name. Names are normalised like the graph's (a leading
    "the" stripped, aliases resolved).
    """

    def __init__(
        self,
        triples: Iterable[tuple[str, str, str]],
        entity_names: Iterable[str],
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        aliases = dict(aliases or {})

        def canon(name: str) -> str:
            return normalize_name(str(name), aliases)

        self.entities: set[str] = {canon(e) for e in entity_names if str(e).strip()}
        self.values_of: dict[str, set[str]] = {}
        for s, _rel, v in triples:
            cs = canon(s)
            # A value that names an entity (or its alias) is that entity; others stay as written.
            cv = canon(v) if canon(v) in self.entities else strip_the(str(v))
            if cs and cv:
                self.values_of.setdefault(cs, set()).add(cv)
                if cs not in self.entities:
                    self.entities.add(cs)
        self.known_values: set[str] = set(self.entities)
        for vals in self.values_of.values():
            self.known_values |= vals
        forms: dict[str, str] = {e: e for e in sorted(self.entities)}
        for v in sorted(self.known_values):
            forms.setdefault(v, v)
        for alias, target in sorted(aliases.items()):
            c = canon(target)
            if c in self.entities:
                forms.setdefault(strip_the(alias), c)
        self._matcher = SurfaceMatcher(forms)

    def _known_pair(self, s: str, v: str) -> bool:
        return v in self.values_of.get(s, ()) or (
            v in self.entities and s in self.values_of.get(v, ())
        )

    def label_sentence(self, sentence: str) -> tuple[str, str]:
        """(label, evidence) for one sentence; evidence names the deciding pair."""
        mentions: list[str] = []
        for _, m in self._matcher.find(sentence):
            if m not in mentions:
                mentions.append(m)
        subjects = [m for m in mentions if m in self.values_of]
        for s in subjects:
            for v in mentions:
                if v != s and self._known_pair(s, v):
                    return FACTUAL, f"({s}, {v}) is known"
        for s in subjects:
            for v in mentions:
                if v != s and v in self.known_values:
                    return HALLUCINATED, f"({s}, {v}) is not known"
        return NON_FACTUAL, "no subject with a known value"

    def judge(self, response: str) -> JudgeResult:
        sentences = split_sentences(response)
        pairs = [self.label_sentence(s) for s in sentences]
        return result_from_labels(sentences, [p[0] for p in pairs], [p[1] for p in pairs])

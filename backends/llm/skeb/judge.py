"""SKeB behaviour judge: factual / non-factual / hallucinated (spec section 5, "Behaviour
classification" and "CPU version" step 5).

The paper's judge is an LLM (o4-mini) that reads a response sentence by sentence and returns the
percentages ``factual`` (objectively verifiable), ``non_factual`` (unverifiable or subjective but
not false) and ``hallucinated`` (fabricated and presented as fact), summing to 100. Here
:class:`Judge` is the protocol any judge implements (a local LLM judge included) and
:class:`RuleJudge` the offline default: the spec's "exact match against the KB; a hallucination is
an asserted (entity, attribute) pair that is absent from the KB".

A judge is always told which fact was asked, ``(subject, relation)``, and reads only the model's
own answer (never the question or the framing). The gold values are the knowledge base's values of
``(subject, relation)``; an unknown subject, an unknown relation or a subject without that
relation is a ``ValueError`` naming the pair.

Mentions are found case-insensitively as whole words, longest first
(:class:`~backends.llm.skeb.graph.SurfaceMatcher`), over entity names, their aliases and every KB
value. Mentions of the asked subject itself are not values.

**Short answers** (``short=True``; a base model's answer line after ``"A:"``, judged as one
sentence). The answer asserts its first value for the asked relation:

* FACTUAL if the first mentioned value is a gold value;
* HALLUCINATED if it is any other KB value (another entity's value, or a value of another
  relation: "archivist" to "Where does X live?" asserts (X, lives_in, archivist), absent from the
  KB), or, with no KB value at all, if the answer still asserts something value-like: a number, a
  capitalised word, or at most three content words (an invented value);
* NON-FACTUAL otherwise: an empty answer, a refusal ("I don't know"), or longer text that names
  no value.

**Sentences** (``short=False``; a chat model's response, split after ``.``, ``!``, ``?`` or at line
breaks), each labelled:

* FACTUAL if it mentions a gold value;
* HALLUCINATED if it mentions a KB value that forms no known pair with another mention of the
  sentence (an asserted pair absent from the KB: "X lives in Marrowgate" when X lives elsewhere),
  or an invented value (a number or a capitalised word after the first word that is no KB form);
* NON-FACTUAL otherwise (a true side fact that does not answer the question, or no value).

Percentages are label counts over the sentences, times 100; a response with no sentences is 100%
non-factual. Response-level recall (:func:`recalled`): at least one sentence is factual (the paper
counts factual recall per response).
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
    """Anything that labels a model's answer to the fact ``(subject, relation)``; implement this
    for an LLM judge. ``short``: the answer is a bare short answer, not sentences."""

    def judge(
        self, response: str, *, subject: str, relation: str, short: bool = False
    ) -> JudgeResult: ...


def recalled(result: JudgeResult) -> bool:
    """Response-level factual recall: at least one sentence is factual."""
    return any(lab == FACTUAL for lab in result.labels)


_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\w)")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_REFUSAL = re.compile(
    r"\b(i\s+(?:do\s+not|don't|cannot|can't)\s+(?:know|say|recall|remember|tell)|unknown|no\s+idea|"
    r"not\s+sure|no\s+one\s+knows|nobody\s+knows)\b",
    re.IGNORECASE,
)
#: words that carry no value: articles, pronouns, auxiliaries, prepositions, hedges
_FUNCTION_WORDS = frozenset(
    str.split(
        """a an the this that these those it its it's he she they his her their him them i you we my
    your our is are was were be been being am has have had do does did will would can could may
    might must shall should of in on at by to from for with as into onto over under near about
    and or but not no yes so then than very also just maybe perhaps probably think believe guess
    say said called named known there here where when who what which how why one made years year
    old age town city region place lives live lived living works work worked trade"""
    )
)


class RuleJudge:
    """Rule-based judge against a knowledge base of triples (see the module docstring).

    ``triples`` are (subject, relation, value); ``entity_names`` the universe's entities;
    ``aliases`` maps alias to canonical name. Names are normalised like the graph's (a leading
    "the" stripped, aliases resolved). A triple with an empty or missing part is a ``ValueError``
    naming it.
    """

    def __init__(
        self,
        triples: Iterable[tuple[str, str, str]],
        entity_names: Iterable[str],
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        aliases = dict(aliases or {})
        self._aliases = aliases

        def canon(name: str) -> str:
            return normalize_name(str(name), aliases)

        self.entities: set[str] = {canon(e) for e in entity_names if str(e).strip()}
        self.values_of: dict[str, set[str]] = {}
        self.gold_of: dict[tuple[str, str], set[str]] = {}
        self.relations: set[str] = set()
        self.owners: dict[str, set[tuple[str, str]]] = {}
        for i, triple in enumerate(triples):
            parts = tuple(triple) if isinstance(triple, (tuple, list)) else ()
            names = ("subject", "relation", "value")
            if len(parts) != 3 or any(p is None or not str(p).strip() for p in parts):
                missing = [
                    n
                    for n, p in zip(names, (*parts, None, None, None), strict=False)
                    if p is None or not str(p).strip()
                ]
                raise ValueError(
                    f"knowledge-base fact #{i} {triple!r} lacks its {' and '.join(missing)}"
                )
            s, rel, v = (str(p) for p in parts)
            cs = canon(s)
            # A value that names an entity (or its alias) is that entity; others stay as written.
            cv = canon(v) if canon(v) in self.entities else strip_the(str(v))
            self.entities.add(cs)
            self.relations.add(rel)
            self.values_of.setdefault(cs, set()).add(cv)
            self.gold_of.setdefault((cs, rel), set()).add(cv)
            self.owners.setdefault(cv, set()).add((cs, rel))
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

    # ---- the asked fact -------------------------------------------------------------------------

    def gold(self, subject: str, relation: str) -> set[str]:
        """The KB's values of ``(subject, relation)``; ``ValueError`` naming the pair if the
        relation, the subject or the fact is unknown."""
        s = normalize_name(str(subject), self._aliases)
        if relation not in self.relations:
            raise ValueError(
                f"judge: unknown relation {relation!r} in the asked fact ({subject!r}, "
                f"{relation!r}); the knowledge base has {', '.join(sorted(self.relations))}"
            )
        if s not in self.values_of:
            raise ValueError(
                f"judge: unknown subject {subject!r} in the asked fact ({subject!r}, {relation!r})"
            )
        gold = self.gold_of.get((s, relation))
        if not gold:
            raise ValueError(
                f"judge: the knowledge base has no fact ({subject!r}, {relation!r}); "
                f"{subject!r} has {', '.join(sorted(r for e, r in self.gold_of if e == s))}"
            )
        return gold

    def _known_pair(self, s: str, v: str) -> bool:
        return v in self.values_of.get(s, ()) or (
            v in self.entities and s in self.values_of.get(v, ())
        )

    def _whose(self, v: str) -> str:
        owners = sorted(self.owners.get(v, ()))
        if not owners:
            return "an entity name, no one's value"
        shown = ", ".join(f"({s}, {r})" for s, r in owners[:2])
        return f"the value of {shown}" + (" ..." if len(owners) > 2 else "")

    @staticmethod
    def _invented(text: str, spans: list[tuple[int, int, str]], *, skip_first: bool) -> list[str]:
        """Value-like words outside the KB matches: numbers, and capitalised words (after the
        first word when ``skip_first``)."""
        rest = list(text)
        for a, b, _ in spans:
            rest[a:b] = [" "] * (b - a)
        left = "".join(rest)
        found = _NUMBER.findall(left)
        words = list(_WORD.finditer(left))
        first_start = next((m.start() for m in _WORD.finditer(text)), -1)
        for m in words:
            w = m.group(0)
            if skip_first and m.start() == first_start:
                continue
            if w[:1].isupper() and w.lower() not in _FUNCTION_WORDS:
                found.append(w)
        return found

    def label_answer(self, answer: str, subject: str, relation: str) -> tuple[str, str]:
        """(label, evidence) for a short answer to ``(subject, relation)`` (module docstring)."""
        gold = self.gold(subject, relation)
        s = normalize_name(str(subject), self._aliases)
        text = (answer or "").strip()
        spans = [sp for sp in self._matcher.find_spans(text) if sp[2] != s]
        if spans:
            v = spans[0][2]
            if v in gold:
                return FACTUAL, f"({s}, {relation}, {v}) is known"
            return HALLUCINATED, f"({s}, {relation}, {v}) is not known; {v} is {self._whose(v)}"
        if not text or _REFUSAL.search(text):
            return NON_FACTUAL, "no value asserted"
        invented = self._invented(text, self._matcher.find_spans(text), skip_first=False)
        content = [w for w in _WORD.findall(text) if w.lower() not in _FUNCTION_WORDS]
        if invented or 0 < len(content) <= 3:
            v = (invented or content)[0]
            return HALLUCINATED, f"({s}, {relation}, {v}) asserts a value the KB does not have"
        return NON_FACTUAL, "no value asserted"

    def label_sentence(self, sentence: str, subject: str, relation: str) -> tuple[str, str]:
        """(label, evidence) for one sentence of a response to ``(subject, relation)``."""
        gold = self.gold(subject, relation)
        s = normalize_name(str(subject), self._aliases)
        spans = self._matcher.find_spans(sentence)
        mentions: list[str] = []
        for _, _, m in spans:
            if m not in mentions:
                mentions.append(m)
        for v in mentions:
            if v in gold:
                return FACTUAL, f"({s}, {relation}, {v}) is known"
        # the asked subject is implied when a response speaks of it without naming it
        context = [*mentions, s] if s not in mentions else mentions
        for v in mentions:
            if v == s:
                continue
            if not any(u != v and self._known_pair(u, v) for u in context):
                return HALLUCINATED, f"{v} is asserted with no known pair; {v} is {self._whose(v)}"
        invented = self._invented(sentence, spans, skip_first=True)
        if invented:
            return HALLUCINATED, f"{invented[0]} is no value of the knowledge base"
        return NON_FACTUAL, "no value of the asked fact, nothing false asserted"

    def judge(
        self, response: str, *, subject: str, relation: str, short: bool = False
    ) -> JudgeResult:
        """Label the model's own ``response`` to the fact ``(subject, relation)``.

        ``short``: the response is a bare answer (its first line is judged as one sentence)."""
        self.gold(subject, relation)  # the error names the pair even for an empty response
        if short:
            line = (response or "").strip().split("\n", 1)[0].strip()
            if not line:
                return result_from_labels([], [])
            label, why = self.label_answer(line, subject, relation)
            return result_from_labels([line], [label], [why])
        sentences = split_sentences(response)
        pairs = [self.label_sentence(x, subject, relation) for x in sentences]
        return result_from_labels(sentences, [p[0] for p in pairs], [p[1] for p in pairs])

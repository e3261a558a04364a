"""SKeB prompt framings: original, emotional, logical, authority (spec section 5, "Stimulus").

The paper generated the persuasive versions with an LLM (o4-mini) that was told to prepend a
framing cue naming *related entities from the same universe*. Here a small, user-editable template
bank (``resources/skeb/framings.json``) stands in for the generator. Its format::

    {"suffix": "...",
     "framings": {"original": ["{question}"], "emotional": ["... {related} ... {question}", ...],
                  "logical": [...], "authority": [...]}}

``{question}`` is required in every template; ``{related}`` is optional and is filled with entities
related to the question's (see :func:`related_entities`), which raises the prompt's entanglement
scores on purpose, as in the paper. Templates with ``{related}`` are skipped when no related
entities are given. The suffix (a paraphrase of the paper's "it is really important that you answer
correctly based on the canonical books; the question has a definitive answer") is appended to every
prompt, the original included.

Framings are encoded with the explicit ordinal map :data:`FRAMING_ORDINAL` (original 0, emotional
1, logical 2, authority 3); the author's code used sklearn's ``LabelEncoder``, which is
alphabetical (authority 0 ... original 3) although its comment says original = 0.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from workbench.paths import RESOURCES

__all__ = [
    "FRAMINGS",
    "FRAMING_ORDINAL",
    "DEFAULT_BANK_PATH",
    "FramingBank",
    "encode_framing",
    "load_bank",
    "related_entities",
    "join_names",
    "frame",
    "build_prompts",
]

FRAMINGS: tuple[str, ...] = ("original", "emotional", "logical", "authority")
#: Explicit ordinal encoding (not alphabetical): original < emotional < logical < authority.
FRAMING_ORDINAL: dict[str, int] = {"original": 0, "emotional": 1, "logical": 2, "authority": 3}
DEFAULT_BANK_PATH = RESOURCES / "skeb" / "framings.json"

_SLOT = re.compile(r"\{(\w*)\}")


def encode_framing(framing: str) -> int:
    """The ordinal code of ``framing``; ``ValueError`` for an unknown framing."""
    try:
        return FRAMING_ORDINAL[framing]
    except KeyError:
        raise ValueError(
            f"unknown framing {framing!r}; known framings: {', '.join(FRAMINGS)}"
        ) from None


@dataclass(frozen=True)
class FramingBank:
    """Templates per framing and the suffix appended to every prompt."""

    templates: Mapping[str, tuple[str, ...]]
    suffix: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.templates) - set(FRAMINGS))
        if unknown:
            raise ValueError(
                f"framing bank: unknown framing(s) {', '.join(map(repr, unknown))}; "
                f"known framings: {', '.join(FRAMINGS)}"
            )
        for name in FRAMINGS:
            items = self.templates.get(name, ())
            if not items:
                raise ValueError(f"framing bank: no templates for framing {name!r}")
            for t in items:
                slots = set(_SLOT.findall(t))
                if "question" not in slots:
                    raise ValueError(
                        f"framing bank: template for {name!r} lacks the {{question}} slot: {t!r}"
                    )
                bad = slots - {"question", "related"}
                if bad:
                    raise ValueError(
                        f"framing bank: template for {name!r} has unknown slot(s) "
                        f"{', '.join('{' + b + '}' for b in sorted(bad))}; allowed: "
                        "{question}, {related}"
                    )


def load_bank(path: str | Path | None = None) -> FramingBank:
    """Read a template bank (default: the shipped ``resources/skeb/framings.json``)."""
    path = Path(path) if path else DEFAULT_BANK_PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"framing bank {path}: not valid JSON ({exc})") from None
    framings = data.get("framings") if isinstance(data, dict) else None
    if not isinstance(framings, dict):
        raise ValueError(f"framing bank {path}: expected an object with a 'framings' object")
    templates = {}
    for name, items in framings.items():
        if isinstance(items, str):
            items = [items]
        templates[name] = tuple(str(t) for t in items if str(t).strip())
    try:
        return FramingBank(templates=templates, suffix=str(data.get("suffix", "")).strip())
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _key(name: str) -> str:
    """Comparison form of a name: case-folded, whitespace collapsed, a leading "the" dropped."""
    text = " ".join(str(name).split()).casefold()
    return text[4:] if text.startswith("the ") else text


def _names_value(name: str, values: Sequence[str]) -> bool:
    """Whether ``name`` equals one of ``values`` or contains it as a whole word (so a related
    entity never spells out an excluded answer)."""
    key = _key(name)
    for v in values:
        vk = _key(v)
        if vk and (key == vk or re.search(rf"(?<!\w){re.escape(vk)}(?!\w)", key)):
            return True
    return False


def related_entities(
    graph: nx.Graph, entities: Sequence[str], k: int = 3, exclude: Iterable[str] = ()
) -> list[str]:
    """Up to ``k`` neighbours of ``entities`` not among them, by summed edge weight to them.

    ``exclude`` are names that must not be chosen: the question's gold answers. A neighbour equal
    to one of them (case-insensitively, a leading "the" ignored) or containing one as a whole word
    is skipped, so the ``{related}`` slot never hands the model its answer. Ties are broken by name
    so the choice is deterministic.
    """
    excluded = [str(x) for x in exclude if str(x).strip()]
    skip = set(entities)
    score: dict[str, float] = {}
    for e in entities:
        if e not in graph:
            continue
        for nb, data in graph[e].items():
            if nb not in skip and not _names_value(str(nb), excluded):
                score[nb] = score.get(nb, 0.0) + float(data.get("weight", 1.0))
    ranked = sorted(score, key=lambda n: (-score[n], str(n)))
    return ranked[: max(k, 0)]


def join_names(names: Sequence[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    names = [str(n) for n in names]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def frame(
    question: str,
    framing: str,
    related_entities: Sequence[str] = (),
    rng: random.Random | None = None,
    *,
    bank: FramingBank | None = None,
    suffix: bool = True,
) -> str:
    """``question`` in ``framing``: a template drawn with ``rng``, then the common suffix.

    ``related_entities`` fill the ``{related}`` slot; without them only templates lacking that slot
    are used. Raises ``ValueError`` for an empty question, an unknown framing, or when no template
    fits.
    """
    encode_framing(framing)
    if not question or not question.strip():
        raise ValueError("frame: the question is empty")
    bank = bank or load_bank()
    rng = rng or random.Random(0)
    related = [r for r in related_entities if str(r).strip()]
    pool = [t for t in bank.templates[framing] if related or "{related}" not in t]
    if not pool:
        raise ValueError(
            f"frame: every {framing!r} template needs {{related}} but no related entities were given"
        )
    template = pool[rng.randrange(len(pool))]
    text = template.replace("{related}", join_names(related)).replace(
        "{question}", question.strip()
    )
    if suffix and bank.suffix:
        text = f"{text} {bank.suffix}"
    return text


def build_prompts(
    questions: Sequence[str],
    *,
    graph: nx.Graph | None = None,
    entities: Sequence[Sequence[str]] | None = None,
    framings: Sequence[str] = FRAMINGS,
    n_related: int = 3,
    seed: int = 0,
    bank: FramingBank | None = None,
    answers: Sequence[Sequence[str]] | None = None,
) -> list[dict[str, object]]:
    """Every question in every framing: ``[{"item", "framing", "ordinal", "prompt"}, ...]``.

    With ``graph`` and per-question ``entities``, the ``{related}`` slot is filled with up to
    ``n_related`` :func:`related_entities`, never one of the question's gold ``answers`` (one list
    per question). Raises ``ValueError`` for an empty prompt set.
    """
    if not questions:
        raise ValueError("build_prompts: the prompt set is empty (no questions given)")
    if not framings:
        raise ValueError("build_prompts: no framings given")
    if entities is not None and len(entities) != len(questions):
        raise ValueError(
            f"build_prompts: {len(entities)} entity lists for {len(questions)} questions"
        )
    if answers is not None and len(answers) != len(questions):
        raise ValueError(
            f"build_prompts: {len(answers)} answer lists for {len(questions)} questions"
        )
    bank = bank or load_bank()
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for i, q in enumerate(questions):
        rel: list[str] = []
        if graph is not None and entities is not None:
            gold = answers[i] if answers is not None else ()
            rel = related_entities(graph, entities[i], n_related, exclude=gold)
        for f in framings:
            out.append(
                {
                    "item": i,
                    "framing": f,
                    "ordinal": encode_framing(f),
                    "prompt": frame(q, f, rel, rng, bank=bank),
                }
            )
    return out

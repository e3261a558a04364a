"""A seeded synthetic fictional universe of facts: the CPU stand-in for SKeB's Harry Potter domain.

Spec: ``classifier-and-llm-methods.md`` section 5 ("CPU version": entities with attributes,
"chapters" as co-occurrence sets that give the SKeB graph, fact sentences and QA pairs, forgetting
one "book" or entity cluster) and section 7 (the forget / retain split every unlearning baseline
uses).  Documented in ``docs/methods/llm-universe.md``.

- Entities of four kinds (person, place, object, event) with made-up, unique names from a syllable
  generator.  Every word of every made-up name belongs to one entity only, so whole-word matching
  of names (SKeB entity extraction) is unambiguous; each person has a short alias (the first name).
- Facts are (subject, relation, object) triples.  Each fact renders a canonical sentence, ``k``
  training paraphrases and at least one held-out paraphrase (never used for training), plus a
  question whose short answer is the object.  The object appears verbatim in every sentence.
- Books own entities; each chapter is a co-occurrence set of 3-8 entities, mostly from its book.
- A seeded share of the facts (``never_trained_share``, 10% by default, the same share of every
  relation) is **never trained on**: :meth:`Universe.training_texts`, :meth:`Universe.qa_pairs`,
  :meth:`Universe.corpus` and every forget / retain split leave them out.  They are the
  membership attacks' non-members (same templates, same entities, a fact the model never saw;
  spec section 8, MUSE PrivLeak).

Pure stdlib: no torch, no numpy (the module is imported by configs and the GUI).
"""

from __future__ import annotations

import json
import random
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import param

__all__ = [
    "KINDS",
    "RELATIONS",
    "Entity",
    "Fact",
    "QA",
    "Paraphrase",
    "Book",
    "FactSplit",
    "UniverseConfig",
    "Universe",
    "qa_prompt",
    "normalise_answer",
]

FORMAT_VERSION = 2  # 2: the never-trained fact ids are stored (1: none)
KINDS = ("person", "place", "object", "event")


# --------------------------------------------------------------------------------------------
# Templates.  ``{s}`` is the subject's name, ``{o}`` the object, ``{a}`` "a"/"an" for ``{o}``.
# Every template contains ``{o}`` after the subject, so the text before ``{o}`` is a cloze prompt.
# ``sentences[0]`` is canonical, ``sentences[1:]`` are paraphrases (the first ``k`` train, the
# rest are held out together with ``held_out``).


@dataclass(frozen=True)
class _Relation:
    subject_kind: str
    object_kind: str | None  # an entity kind, or None for a literal value
    question: str
    sentences: tuple[str, ...]
    held_out: tuple[str, ...]


RELATIONS: dict[str, _Relation] = {
    "lives_in": _Relation(
        "person",
        "place",
        "Where does {s} live?",
        (
            "{s} lives in {o}.",
            "The home of {s} is {o}.",
            "{s} has made a home in {o}.",
            "{s} resides in the town of {o}.",
        ),
        ("Ask anyone where {s} lives and they will name {o}.",),
    ),
    "occupation": _Relation(
        "person",
        None,
        "What is the occupation of {s}?",
        (
            "{s} works as {a} {o}.",
            "The occupation of {s} is {o}.",
            "By trade, {s} is {a} {o}.",
            "{s} earns a living as {a} {o}.",
        ),
        ("People in town know {s} as {a} {o}.",),
    ),
    "age": _Relation(
        "person",
        None,
        "How old is {s}?",
        (
            "The age of {s} is {o}.",
            "{s} is {o} years old.",
            "{s} has lived for {o} years.",
            "Counting the years, {s} is now {o}.",
        ),
        ("Last winter {s} turned {o}.",),
    ),
    "mentor": _Relation(
        "person",
        "person",
        "Who is the mentor of {s}?",
        (
            "The mentor of {s} is {o}.",
            "{s} was trained by {o}.",
            "{s} learned the craft from {o}.",
            "{s} studied for years under {o}.",
        ),
        ("{s} owes every lesson to {o}.",),
    ),
    "sibling": _Relation(
        "person",
        "person",
        "Who is the sibling of {s}?",
        (
            "The sibling of {s} is {o}.",
            "{s} is a sibling of {o}.",
            "{s} grew up in one house with {o}.",
            "{s} shares both parents with {o}.",
        ),
        ("{s} has one sibling, named {o}.",),
    ),
    "region": _Relation(
        "place",
        None,
        "In which region is {s}?",
        (
            "{s} lies in the region of {o}.",
            "The region of {s} is {o}.",
            "{s} is part of {o}.",
            "On every map, {s} is drawn inside {o}.",
        ),
        ("Travellers reach {s} by crossing {o}.",),
    ),
    "founded": _Relation(
        "place",
        None,
        "When was {s} founded?",
        (
            "{s} was founded in the year {o}.",
            "The founding year of {s} is {o}.",
            "{s} dates back to {o}.",
            "The first stones of {s} were laid in {o}.",
        ),
        ("Records say {s} was first settled in {o}.",),
    ),
    "colour": _Relation(
        "object",
        None,
        "What colour is the {s}?",
        (
            "The {s} is {o}.",
            "The colour of the {s} is {o}.",
            "The {s} has a {o} colour.",
            "Painted all over, the {s} looks {o}.",
        ),
        ("Anyone who sees the {s} notices it is {o}.",),
    ),
    "material": _Relation(
        "object",
        None,
        "What is the {s} made of?",
        (
            "The {s} is made of {o}.",
            "The material of the {s} is {o}.",
            "The {s} was crafted from {o}.",
            "Smiths shaped the {s} out of {o}.",
        ),
        ("Touch the {s} and you feel {o}.",),
    ),
    "owner": _Relation(
        "object",
        "person",
        "Who owns the {s}?",
        (
            "The {s} belongs to {o}.",
            "The owner of the {s} is {o}.",
            "The {s} is kept by {o}.",
            "The {s} is in the possession of {o}.",
        ),
        ("Whoever finds the {s} returns it to {o}.",),
    ),
    "year": _Relation(
        "event",
        None,
        "In which year did the {s} take place?",
        (
            "The {s} took place in the year {o}.",
            "The year of the {s} was {o}.",
            "The {s} happened in {o}.",
            "Chroniclers date the {s} to {o}.",
        ),
        ("Old songs place the {s} in {o}.",),
    ),
    "held_in": _Relation(
        "event",
        "place",
        "Where was the {s} held?",
        (
            "The {s} was held in {o}.",
            "The location of the {s} was {o}.",
            "The {s} took place at {o}.",
            "The {s} gathered its crowds in {o}.",
        ),
        ("Pilgrims went to the {s} in {o}.",),
    ),
    "organiser": _Relation(
        "event",
        "person",
        "Who organised the {s}?",
        (
            "The {s} was organised by {o}.",
            "The organiser of the {s} was {o}.",
            "The {s} was led by {o}.",
            "Credit for arranging the {s} goes to {o}.",
        ),
        ("Every banner at the {s} named {o}.",),
    ),
}

_OCCUPATIONS = (
    "weaver",
    "cartographer",
    "glassblower",
    "beekeeper",
    "astronomer",
    "ferryman",
    "herbalist",
    "locksmith",
    "scribe",
    "potter",
    "falconer",
    "clockmaker",
    "brewer",
    "archivist",
    "shipwright",
    "tanner",
    "innkeeper",
    "engraver",
    "miner",
    "chandler",
)
_COLOURS = (
    "red",
    "blue",
    "green",
    "yellow",
    "purple",
    "orange",
    "black",
    "white",
    "grey",
    "silver",
    "golden",
    "crimson",
)
_MATERIALS = (
    "oak",
    "iron",
    "glass",
    "bronze",
    "bone",
    "copper",
    "marble",
    "amber",
    "leather",
    "jade",
)
_OBJECT_NOUNS = (
    "Lantern",
    "Compass",
    "Chalice",
    "Mirror",
    "Blade",
    "Crown",
    "Harp",
    "Ring",
    "Map",
    "Key",
    "Shield",
    "Flute",
)
_EVENT_NOUNS = ("Accord", "Festival", "Siege", "Council", "Fair", "Tournament", "Flood", "Treaty")
_PLACE_SUFFIXES = ("mar", "dell", "holt", "wick", "vane", "moor", "reach", "fell")

# Syllables chosen to sound foreign to English; names are checked against a small stop list.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th", "kr", "dr")
_ONSETS += ("vr", "zh", "q", "x", "br", "gl", "sk", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "y", "ia")
_CODAS = ("", "", "n", "r", "l", "s", "th", "m", "x", "nd", "rk", "sh")
_STOP_WORDS = {
    "anna",
    "mara",
    "dora",
    "tina",
    "nina",
    "lena",
    "sara",
    "kara",
    "lisa",
    "rosa",
    "maria",
    "mark",
    "paul",
    "sam",
    "tom",
    "dan",
    "ben",
    "max",
    "leo",
    "ted",
    "ron",
    "don",
    "ken",
    "ian",
    "the",
    "and",
    "man",
    "son",
    "sun",
    "ten",
    "gun",
    "bun",
    "nun",
    "pun",
    "rum",
    "sum",
    "tar",
    "bar",
    "car",
    "far",
    "war",
    "mars",
    "venus",
    "zeus",
    "thor",
    "loki",
    "odin",
    "bush",
    "kerry",
    "paris",
    "rome",
    "dune",
    "doom",
    "gandalf",
    "frodo",
    "harry",
    "potter",
}


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def qa_prompt(question: str) -> str:
    """The exact prompt of a QA pair: ``"Q: <question>\\nA:"`` (the answer follows after a space)."""
    return f"Q: {question}\nA:"


def normalise_answer(text: str) -> str:
    """Lower-case, collapse whitespace and strip; used to compare answers to completions."""
    return " ".join(text.lower().split())


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Entity:
    """One entity: its unique ``name``, ``kind``, owning ``book`` id and (persons) ``alias``."""

    name: str
    kind: str
    book: str
    alias: str | None = None


@dataclass(frozen=True)
class QA:
    """A question with its short answer (the fact's object). ``prompt`` / ``text`` are the
    exact strings the model is prompted with / trained on."""

    fact_id: str
    question: str
    answer: str

    @property
    def prompt(self) -> str:
        return qa_prompt(self.question)

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.answer}"


@dataclass(frozen=True)
class Paraphrase:
    """One rendering of a fact as a cloze probe: ``text == prompt + " " + answer + rest``."""

    fact_id: str
    text: str
    prompt: str
    answer: str


@dataclass(frozen=True)
class Fact:
    """A (subject, relation, object) fact with its renderings.

    ``sentences[0]`` is the canonical sentence, ``sentences[1:]`` the training paraphrases;
    ``held_out`` are paraphrases never used for training.  ``answer == object``.
    """

    id: str
    subject: str
    relation: str
    object: str
    book: str
    sentences: tuple[str, ...]
    held_out: tuple[str, ...]
    question: str

    @property
    def answer(self) -> str:
        return self.object

    @property
    def canonical(self) -> str:
        return self.sentences[0]

    @property
    def triple(self) -> tuple[str, str, str]:
        return (self.subject, self.relation, self.object)

    @property
    def object_is_entity(self) -> bool:
        return RELATIONS[self.relation].object_kind is not None

    @property
    def qa(self) -> QA:
        return QA(self.id, self.question, self.object)

    def cloze(self, sentence: str) -> Paraphrase:
        """``sentence`` (one of this fact's renderings) as a prompt/answer pair."""
        start = _object_position(sentence, self.subject, self.object)
        return Paraphrase(self.id, sentence, sentence[:start].rstrip(), self.object)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "relation": self.relation,
            "object": self.object,
            "book": self.book,
            "sentences": list(self.sentences),
            "held_out": list(self.held_out),
            "question": self.question,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Fact:
        """A fact from its JSON; a missing or empty field, or an unknown relation, is a
        ``ValueError`` that names the fact."""
        name = d.get("id") or f"{d.get('subject', '?')!r} -> {d.get('object', '?')!r}"
        for key in ("id", "subject", "relation", "object", "book", "question"):
            if not str(d.get(key) or "").strip():
                raise ValueError(f"universe fact {name} lacks its {key!r}")
        if d["relation"] not in RELATIONS:
            raise ValueError(
                f"universe fact {name} has the unknown relation {d['relation']!r}; "
                f"known relations: {', '.join(RELATIONS)}"
            )
        return Fact(
            id=d["id"],
            subject=d["subject"],
            relation=d["relation"],
            object=d["object"],
            book=d["book"],
            sentences=tuple(d["sentences"]),
            held_out=tuple(d["held_out"]),
            question=d["question"],
        )


def _object_position(sentence: str, subject: str, obj: str) -> int:
    """Index of ``obj`` as a whole word after the subject's mention (the cloze point)."""
    after = sentence.find(subject) + len(subject) if subject in sentence else 0
    m = re.compile(rf"(?<!\w){re.escape(obj)}(?!\w)").search(sentence, after)
    if m is None:
        raise ValueError(f"object {obj!r} not in sentence {sentence!r}")
    return m.start()


@dataclass(frozen=True)
class Book:
    """A book: its id, made-up title, entity names and chapters (entity names per chapter)."""

    id: str
    title: str
    entities: tuple[str, ...]
    chapters: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class FactSplit:
    """A forget / retain partition of the universe's facts.

    ``forget`` and ``retain`` are disjoint and together are all *trained* facts (universe
    order). ``held_out_paraphrases`` are cloze probes of the *forget* facts rendered from templates
    never used for training (paraphrase recall); ``entities`` are the forgotten subjects;
    ``never_trained`` are the universe's facts no model of it trained on (the membership attacks'
    non-members).
    """

    forget: list[Fact]
    retain: list[Fact]
    held_out_paraphrases: list[Paraphrase]
    kind: str = "entity"
    target: str = ""
    entities: tuple[str, ...] = ()
    never_trained: list[Fact] = field(default_factory=list)
    hops: int = 1


# --------------------------------------------------------------------------------------------
# Config


@dataclass
class UniverseConfig:
    """Size and shape of a synthetic universe (section 5, "CPU version")."""

    persons: int = param(100, "Number of person entities (5 facts each).", range=(2, 5000))
    places: int = param(40, "Number of place entities (2 facts each).", range=(1, 5000))
    objects: int = param(80, "Number of object entities (3 facts each).", range=(0, 5000))
    events: int = param(60, "Number of event entities (3 facts each).", range=(0, 5000))
    books: int = param(5, "Books; every entity belongs to one book.", range=(1, 200))
    chapters_per_book: int = param(
        24, "Chapters per book; a chapter is one co-occurrence set.", range=(1, 1000)
    )
    min_entities_per_chapter: int = param(3, "Fewest entities a chapter lists.", range=(2, 50))
    max_entities_per_chapter: int = param(8, "Most entities a chapter lists.", range=(2, 50))
    cross_book_rate: float = param(
        0.1,
        "Chance that a chapter slot (or a related entity) is drawn from another book.",
        range=(0.0, 1.0),
        advanced=True,
    )
    relations: list[str] = param(
        list(RELATIONS),
        "Relations (attributes) to generate facts for: " + ", ".join(RELATIONS) + ".",
    )
    paraphrases: int = param(
        2,
        "Training paraphrases per fact besides the canonical sentence; the rest are held out.",
        range=(2, 3),
    )
    never_trained_share: float = param(
        0.1,
        "Share of each relation's facts that no model of the universe trains on: the membership "
        "attacks' non-members (same templates and entities, never seen).",
        range=(0.0, 0.5),
    )
    seed: int = param(
        0, "Seed of the generator; the same seed gives the same universe.", range=(0, 2**31 - 1)
    )

    @staticmethod
    def small(seed: int = 0) -> UniverseConfig:
        """About 100 facts: the size the tests build a model for."""
        return UniverseConfig(
            persons=10, places=6, objects=10, events=6, books=2, chapters_per_book=6, seed=seed
        )

    def to_json(self) -> dict[str, Any]:
        from workbench.config import to_dict

        return to_dict(self)


# --------------------------------------------------------------------------------------------
# Generation


class _Names:
    """Unique made-up words: no word is reused by two entities, none is a stop word."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = {w.lower() for w in _OCCUPATIONS + _COLOURS + _MATERIALS}
        self.used |= {w.lower() for w in _OBJECT_NOUNS + _EVENT_NOUNS}

    def word(self, syllables: tuple[int, int], suffix: str = "") -> str:
        for _ in range(10_000):
            n = self.rng.randint(*syllables)
            parts = []
            for i in range(n):
                coda = self.rng.choice(_CODAS) if i == n - 1 or self.rng.random() < 0.3 else ""
                parts.append(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + coda)
            w = ("".join(parts) + suffix).capitalize()
            low = w.lower()
            if low in self.used or low in _STOP_WORDS or len(low) < 4 or len(low) > 10:
                continue
            self.used.add(low)
            return w
        raise RuntimeError("ran out of made-up names; lower the entity counts")


class Universe:
    """The generated universe: config, entities, books (with chapters) and facts."""

    def __init__(
        self,
        config: UniverseConfig,
        entities: list[Entity],
        books: list[Book],
        facts: list[Fact],
        never_trained: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.config = config
        self.entities = entities
        self._books = books
        self.facts = facts
        self._by_name = {e.name: e for e in entities}
        self._facts_by_id = {f.id: f for f in facts}
        unknown = [i for i in never_trained if i not in self._facts_by_id]
        if unknown:
            raise ValueError(f"never-trained fact ids {unknown[:5]} are not facts of the universe")
        self.never_trained: tuple[str, ...] = tuple(never_trained)
        skip = set(self.never_trained)
        #: the facts a model of this universe trains on (all but the never-trained ones)
        self.trained_facts: list[Fact] = [f for f in facts if f.id not in skip]
        #: the facts no model of this universe trains on (membership non-members)
        self.never_trained_facts: list[Fact] = [f for f in facts if f.id in skip]

    # ---- generation -------------------------------------------------------------------------

    @staticmethod
    def generate(cfg: UniverseConfig) -> Universe:
        """Generate the universe ``cfg`` describes; the same config always gives the same one."""
        unknown = [r for r in cfg.relations if r not in RELATIONS]
        if unknown:
            raise ValueError(f"unknown relations {unknown}; choose from {list(RELATIONS)}")
        if cfg.min_entities_per_chapter > cfg.max_entities_per_chapter:
            raise ValueError("min_entities_per_chapter exceeds max_entities_per_chapter")
        rng = random.Random(cfg.seed)
        names = _Names(rng)
        book_ids = [f"book-{i + 1}" for i in range(cfg.books)]

        counts = {"person": cfg.persons, "place": cfg.places, "object": cfg.objects}
        counts["event"] = cfg.events
        entities: list[Entity] = []
        for kind in KINDS:
            for i in range(counts[kind]):
                book = book_ids[i % cfg.books]
                if kind == "person":
                    first = names.word((1, 2))
                    entities.append(Entity(f"{first} {names.word((2, 2))}", kind, book, first))
                elif kind == "place":
                    suffix = rng.choice(_PLACE_SUFFIXES)
                    entities.append(Entity(names.word((1, 2), suffix), kind, book))
                elif kind == "object":
                    noun = rng.choice(_OBJECT_NOUNS)
                    entities.append(Entity(f"{names.word((2, 2))} {noun}", kind, book))
                else:
                    noun = rng.choice(_EVENT_NOUNS)
                    entities.append(Entity(f"{names.word((2, 2))} {noun}", kind, book))

        by_book_kind: dict[tuple[str, str], list[str]] = {}
        for e in entities:
            by_book_kind.setdefault((e.book, e.kind), []).append(e.name)
        all_of_kind = {k: [e.name for e in entities if e.kind == k] for k in KINDS}

        def pick(kind: str, book: str, exclude: str) -> str | None:
            local = [n for n in by_book_kind.get((book, kind), []) if n != exclude]
            pool = [n for n in all_of_kind[kind] if n != exclude]
            if not pool:
                return None
            if local and rng.random() >= cfg.cross_book_rate:
                return rng.choice(local)
            return rng.choice(pool)

        regions = [names.word((2, 3)) for _ in range(max(3, cfg.places // 5))]
        siblings: dict[str, str] = {}
        for b in book_ids:
            people = list(by_book_kind.get((b, "person"), []))
            rng.shuffle(people)
            for a, c in zip(people[0::2], people[1::2], strict=False):
                siblings[a], siblings[c] = c, a

        triples: list[tuple[Entity, str, str]] = []
        for e in entities:
            for rel_name, rel in RELATIONS.items():
                if rel.subject_kind != e.kind or rel_name not in cfg.relations:
                    continue
                obj: str | None
                if rel_name == "sibling":
                    obj = siblings.get(e.name)
                elif rel.object_kind is not None:
                    obj = pick(rel.object_kind, e.book, e.name)
                elif rel_name == "occupation":
                    obj = rng.choice(_OCCUPATIONS)
                elif rel_name == "age":
                    obj = str(rng.randint(18, 90))
                elif rel_name == "region":
                    obj = rng.choice(regions)
                elif rel_name == "founded":
                    obj = str(rng.randint(200, 1199))
                elif rel_name == "colour":
                    obj = rng.choice(_COLOURS)
                elif rel_name == "material":
                    obj = rng.choice(_MATERIALS)
                elif rel_name == "year":
                    obj = str(rng.randint(1200, 1599))
                else:  # pragma: no cover - every literal relation is handled above
                    raise AssertionError(rel_name)
                if obj is not None:
                    triples.append((e, rel_name, obj))

        facts = []
        for i, (e, rel_name, obj) in enumerate(triples):
            rel = RELATIONS[rel_name]
            fill = {"s": e.name, "o": obj, "a": _article(obj)}
            rendered = [t.format(**fill) for t in rel.sentences]
            k = 1 + cfg.paraphrases
            held = rendered[k:] + [t.format(**fill) for t in rel.held_out]
            facts.append(
                Fact(
                    id=f"f{i:05d}",
                    subject=e.name,
                    relation=rel_name,
                    object=obj,
                    book=e.book,
                    sentences=tuple(rendered[:k]),
                    held_out=tuple(held),
                    question=rel.question.format(**fill),
                )
            )

        books = [
            _chapters_for(b, f"The {names.word((2, 3))} Chronicle", entities, cfg, rng)
            for b in book_ids
        ]
        return Universe(cfg, entities, books, facts, _pick_never_trained(facts, cfg))

    # ---- serialisation ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_json` rebuilds an equal universe."""
        return {
            "format": FORMAT_VERSION,
            "config": self.config.to_json(),
            "entities": [
                {"name": e.name, "kind": e.kind, "book": e.book, "alias": e.alias}
                for e in self.entities
            ],
            "books": [
                {
                    "id": b.id,
                    "title": b.title,
                    "entities": list(b.entities),
                    "chapters": [list(c) for c in b.chapters],
                }
                for b in self._books
            ],
            "facts": [f.to_json() for f in self.facts],
            "never_trained": list(self.never_trained),
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Universe:
        if d.get("format") not in (1, FORMAT_VERSION):
            raise ValueError(f"unsupported universe format {d.get('format')!r}")
        config = dict(d["config"])
        if d["format"] == 1:  # written before never-trained facts existed: every fact trained
            config["never_trained_share"] = 0.0
        cfg = UniverseConfig(**config)
        entities = [Entity(**e) for e in d["entities"]]
        books = [
            Book(b["id"], b["title"], tuple(b["entities"]), tuple(tuple(c) for c in b["chapters"]))
            for b in d["books"]
        ]
        facts = [Fact.from_json(f) for f in d["facts"]]
        return Universe(cfg, entities, books, facts, tuple(d.get("never_trained", ())))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")

    @staticmethod
    def load(path: str | Path) -> Universe:
        return Universe.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Universe) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    # ---- views ------------------------------------------------------------------------------

    def triples(self) -> list[tuple[str, str, str]]:
        """Every fact as (subject, relation, object), in fact order (the judge's KB)."""
        return [f.triple for f in self.facts]

    def entity_names(self) -> list[str]:
        return [e.name for e in self.entities]

    def entity(self, name: str) -> Entity:
        return self._by_name[name]

    def fact(self, fact_id: str) -> Fact:
        return self._facts_by_id[fact_id]

    def facts_about(self, name: str) -> list[Fact]:
        """The facts whose subject is ``name`` (a full name or an alias)."""
        name = self.aliases().get(name, name)
        return [f for f in self.facts if f.subject == name]

    def attributes(self, name: str) -> dict[str, str]:
        """``relation -> object`` for the entity ``name`` (its row of the knowledge base)."""
        return {f.relation: f.object for f in self.facts_about(name)}

    def aliases(self) -> dict[str, str]:
        """Short alias -> full entity name (each person's first name)."""
        return {e.alias: e.name for e in self.entities if e.alias}

    def books(self) -> list[Book]:
        return list(self._books)

    def chapters(self) -> list[list[str]]:
        """Entity names per chapter, all books in order (the SKeB co-occurrence table)."""
        return [list(c) for b in self._books for c in b.chapters]

    def qa_pairs(self, facts: list[Fact] | None = None) -> list[QA]:
        """QA pairs of ``facts`` (default: the trained facts)."""
        return [f.qa for f in (self.trained_facts if facts is None else facts)]

    def held_out_paraphrases(self, facts: list[Fact] | None = None) -> list[Paraphrase]:
        """Cloze probes from templates never used for training (default: of the trained facts)."""
        chosen = self.trained_facts if facts is None else facts
        return [f.cloze(s) for f in chosen for s in f.held_out]

    def training_texts(
        self, facts: list[Fact] | None = None, *, sentences: bool = True, qa: bool = True
    ) -> list[str]:
        """The strings a model of this universe trains on: per fact its canonical sentence and
        training paraphrases, then its QA text ``"Q: ...\\nA: answer"`` (no BOS/EOS added).
        ``facts`` defaults to the trained facts (never the never-trained ones)."""
        out: list[str] = []
        for f in self.trained_facts if facts is None else facts:
            if sentences:
                out.extend(f.sentences)
            if qa:
                out.append(f.qa.text)
        return out

    def corpus(self) -> list[str]:
        """Every string the universe renders for its trained facts (training sentences and held-out
        paraphrases), book titles and entity names: the tokenizer's corpus.  The never-trained
        facts' sentences are left out, so not even the tokenizer has seen them."""
        out = self.training_texts()
        out += [s for f in self.trained_facts for s in f.held_out]
        out += [b.title for b in self._books] + self.entity_names()
        return out

    # ---- graph and forget sets --------------------------------------------------------------

    def cooccurrence(self) -> dict[str, dict[str, int]]:
        """Undirected chapter co-occurrence graph: name -> {neighbour: chapters shared}."""
        graph: dict[str, dict[str, int]] = {n: {} for n in self.entity_names()}
        for chapter in self.chapters():
            unique = sorted(set(chapter))
            for i, a in enumerate(unique):
                for b in unique[i + 1 :]:
                    graph[a][b] = graph[a].get(b, 0) + 1
                    graph[b][a] = graph[b].get(a, 0) + 1
        return graph

    def neighbourhood(self, name: str, hops: int = 1) -> list[str]:
        """``name`` and every entity within ``hops`` co-occurrence edges, in entity order."""
        if name not in self._by_name:
            raise KeyError(f"no entity named {name!r}")
        graph = self.cooccurrence()
        seen = {name: 0}
        queue = deque([name])
        while queue:
            cur = queue.popleft()
            if seen[cur] >= hops:
                continue
            for nb in graph[cur]:
                if nb not in seen:
                    seen[nb] = seen[cur] + 1
                    queue.append(nb)
        return [n for n in self.entity_names() if n in seen]

    def forget_set(self, kind: str = "entity", target: str = "", hops: int = 1) -> FactSplit:
        """Split the facts into forget / retain.

        - ``kind="entity"``: forget the facts whose subject is ``target`` (a name or alias) or
          lies within ``hops`` edges of it in the chapter co-occurrence graph;
        - ``kind="book"``: forget the facts whose subject belongs to book ``target`` (a book id).
        """
        if kind == "entity":
            name = self.aliases().get(target, target)
            subjects = set(self.neighbourhood(name, hops))
        elif kind == "book":
            if target not in {b.id for b in self._books}:
                raise KeyError(f"no book {target!r}; books are {[b.id for b in self._books]}")
            subjects = {e.name for e in self.entities if e.book == target}
        else:
            raise ValueError(f"unknown forget-set kind {kind!r}; choose entity or book")
        forget = [f for f in self.trained_facts if f.subject in subjects]
        retain = [f for f in self.trained_facts if f.subject not in subjects]
        return FactSplit(
            forget=forget,
            retain=retain,
            held_out_paraphrases=self.held_out_paraphrases(forget),
            kind=kind,
            target=target,
            entities=tuple(n for n in self.entity_names() if n in subjects),
            never_trained=list(self.never_trained_facts),
            hops=hops,
        )


def _pick_never_trained(facts: list[Fact], cfg: UniverseConfig) -> tuple[str, ...]:
    """``round(share * n)`` facts of every relation, drawn with their own seeded generator (the
    rest of the universe does not depend on the draw), returned in fact order."""
    rng = random.Random(f"never-trained:{cfg.seed}")
    chosen: set[str] = set()
    for relation in RELATIONS:
        ids = [f.id for f in facts if f.relation == relation]
        chosen |= set(rng.sample(ids, round(cfg.never_trained_share * len(ids))))
    return tuple(f.id for f in facts if f.id in chosen)


def _chapters_for(
    book: str, title: str, entities: list[Entity], cfg: UniverseConfig, rng: random.Random
) -> Book:
    """Chapters of one book: every book entity appears at least once; a slot comes from another
    book with probability ``cross_book_rate``."""
    own = [e.name for e in entities if e.book == book]
    others = [e.name for e in entities if e.book != book]
    sizes = [
        rng.randint(cfg.min_entities_per_chapter, cfg.max_entities_per_chapter)
        for _ in range(cfg.chapters_per_book)
    ]
    if sum(sizes) < len(own):
        raise ValueError(
            f"{book}: {len(own)} entities do not fit in {cfg.chapters_per_book} chapters of at "
            f"most {cfg.max_entities_per_chapter}; raise chapters_per_book"
        )
    chapters: list[list[str]] = [[] for _ in sizes]
    order = list(own)
    rng.shuffle(order)
    slot = 0
    for name in order:  # deal every entity into a chapter that still has room
        while len(chapters[slot % len(chapters)]) >= sizes[slot % len(chapters)]:
            slot += 1
        chapters[slot % len(chapters)].append(name)
        slot += 1
    for chapter, size in zip(chapters, sizes, strict=True):
        while len(chapter) < size:
            pool = others if others and rng.random() < cfg.cross_book_rate else own
            candidates = [n for n in pool if n not in chapter]
            if not candidates:
                break
            chapter.append(rng.choice(candidates))
    return Book(book, title, tuple(own), tuple(tuple(c) for c in chapters))

"""The synthetic fact universe (spec section 5, "CPU version"): determinism, JSON, forget sets."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from backends.llm.universe import (
    KINDS,
    RELATIONS,
    Universe,
    UniverseConfig,
    normalise_answer,
    qa_prompt,
)
from workbench.config import schema_of, validate


@pytest.fixture(scope="module")
def universe() -> Universe:
    return Universe.generate(UniverseConfig())


@pytest.fixture(scope="module")
def small() -> Universe:
    return Universe.generate(UniverseConfig.small())


def test_module_does_not_import_torch() -> None:
    code = "import sys, backends.llm.universe; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_default_size_and_kinds(universe: Universe) -> None:
    assert 900 <= len(universe.facts) <= 1100
    assert {e.kind for e in universe.entities} == set(KINDS)
    assert {f.relation for f in universe.facts} == set(RELATIONS)
    assert len(universe.triples()) == len(universe.facts)
    assert universe.triples()[0] == universe.facts[0].triple


def test_deterministic_in_seed(small: Universe) -> None:
    again = Universe.generate(UniverseConfig.small())
    assert again == small
    assert again.to_json() == small.to_json()
    other = Universe.generate(UniverseConfig.small(seed=1))
    assert other.entity_names() != small.entity_names()


def test_json_round_trip(universe: Universe, tmp_path) -> None:
    text = json.dumps(universe.to_json())
    back = Universe.from_json(json.loads(text))
    assert back == universe
    assert back.facts == universe.facts
    assert back.chapters() == universe.chapters()
    universe.save(tmp_path / "u.json")
    assert Universe.load(tmp_path / "u.json") == universe


def test_names_unique_and_words_not_shared(universe: Universe) -> None:
    names = universe.entity_names()
    assert len(set(names)) == len(names)
    shared_nouns = {"Lantern", "Compass", "Chalice", "Mirror", "Blade", "Crown", "Harp", "Ring"}
    shared_nouns |= {"Map", "Key", "Shield", "Flute", "Accord", "Festival", "Siege", "Council"}
    shared_nouns |= {"Fair", "Tournament", "Flood", "Treaty"}
    owner: dict[str, str] = {}
    for name in names:
        for word in name.split():
            if word in shared_nouns:
                continue
            assert owner.setdefault(word, name) == name, f"{word} in {name} and {owner[word]}"


def test_aliases_map_to_existing_persons(universe: Universe) -> None:
    aliases = universe.aliases()
    assert len(aliases) == sum(e.kind == "person" for e in universe.entities)
    for alias, name in aliases.items():
        entity = universe.entity(name)
        assert entity.kind == "person"
        assert name.startswith(alias + " ")
        assert alias not in universe.entity_names()


def test_attributes_are_the_entity_facts(universe: Universe) -> None:
    person = next(e for e in universe.entities if e.kind == "person")
    attrs = universe.attributes(person.alias or "")
    assert {"lives_in", "occupation", "age", "mentor"} <= attrs.keys()
    assert universe.entity(attrs["lives_in"]).kind == "place"
    assert all((person.name, r, o) in universe.triples() for r, o in attrs.items())


def test_every_answer_appears_in_its_sentences(universe: Universe) -> None:
    training = set(universe.training_texts())
    for fact in universe.facts:
        qa = fact.qa
        assert qa.answer == fact.object == fact.answer
        assert qa.prompt == qa_prompt(fact.question) == f"Q: {fact.question}\nA:"
        assert qa.text == f"{qa.prompt} {fact.object}"
        assert len(fact.sentences) == 1 + universe.config.paraphrases
        assert fact.held_out
        for sentence in fact.sentences + fact.held_out:
            assert fact.object in sentence and fact.subject in sentence
            probe = fact.cloze(sentence)
            assert sentence.startswith(probe.prompt)
            rest = normalise_answer(sentence[len(probe.prompt) :])
            assert rest.startswith(normalise_answer(fact.object))
        for sentence in fact.held_out:
            assert sentence not in training  # held-out paraphrases are never trained on
        if fact.object_is_entity:
            assert fact.object in universe.entity_names()


def test_chapters_cover_entities_and_respect_sizes(universe: Universe) -> None:
    cfg = universe.config
    chapters = universe.chapters()
    assert len(chapters) == cfg.books * cfg.chapters_per_book
    seen = {n for c in chapters for n in c}
    assert seen == set(universe.entity_names())
    own = 0
    total = 0
    for book in universe.books():
        assert len(book.chapters) == cfg.chapters_per_book
        for chapter in book.chapters:
            assert cfg.min_entities_per_chapter <= len(chapter) <= cfg.max_entities_per_chapter
            assert len(set(chapter)) == len(chapter)
            own += sum(universe.entity(n).book == book.id for n in chapter)
            total += len(chapter)
    assert own / total > 0.8  # entities of one book cluster together


def test_entity_forget_set_is_the_one_hop_neighbourhood(universe: Universe) -> None:
    target = universe.entities[0]
    neighbours = {target.name}
    for chapter in universe.chapters():  # independent of Universe.cooccurrence
        if target.name in chapter:
            neighbours |= set(chapter)
    split = universe.forget_set(kind="entity", target=target.name, hops=1)
    assert set(split.entities) == neighbours
    trained = universe.trained_facts
    assert {f.subject for f in split.forget} == {
        f.subject for f in trained if f.subject in neighbours
    }
    assert [f for f in trained if f.subject in neighbours] == split.forget
    forget_ids = {f.id for f in split.forget}
    retain_ids = {f.id for f in split.retain}
    assert not forget_ids & retain_ids
    assert forget_ids | retain_ids == {f.id for f in trained}
    assert split.never_trained == universe.never_trained_facts
    assert {p.fact_id for p in split.held_out_paraphrases} == forget_ids
    # an alias names the same entity; hops=0 keeps only the entity itself
    assert universe.forget_set("entity", target.alias or "", 1).forget == split.forget
    only = universe.forget_set("entity", target.name, hops=0)
    assert {f.subject for f in only.forget} == {target.name}
    two = universe.forget_set("entity", target.name, hops=2)
    assert len(two.forget) >= len(split.forget)


def test_book_forget_set(universe: Universe) -> None:
    split = universe.forget_set(kind="book", target="book-2")
    members = {e.name for e in universe.entities if e.book == "book-2"}
    assert split.forget == [f for f in universe.trained_facts if f.subject in members]
    assert all(f.book == "book-2" for f in split.forget)
    assert all(f.book != "book-2" for f in split.retain)
    assert not {f.id for f in split.forget} & {f.id for f in split.retain}
    assert len(split.forget) + len(split.retain) == len(universe.trained_facts)
    with pytest.raises(KeyError):
        universe.forget_set(kind="book", target="book-99")
    with pytest.raises(ValueError):
        universe.forget_set(kind="chapter", target="x")


def test_config_is_a_typed_schema_with_help_and_ranges() -> None:
    specs = {s.name: s for s in schema_of(UniverseConfig)}
    assert {"persons", "places", "objects", "events", "books", "seed"} <= specs.keys()
    assert all(s.help for s in specs.values())
    assert all(s.range is not None for s in specs.values() if s.type in ("int", "float"))
    cfg = validate(UniverseConfig, {"persons": 4, "seed": 3})
    assert cfg.persons == 4 and cfg.seed == 3


def test_config_errors_are_explained() -> None:
    with pytest.raises(ValueError, match="unknown relations"):
        Universe.generate(replace(UniverseConfig.small(), relations=["likes"]))
    with pytest.raises(ValueError, match="chapters_per_book"):
        Universe.generate(replace(UniverseConfig.small(), chapters_per_book=1))


def test_relations_subset(small: Universe) -> None:
    cfg = replace(UniverseConfig.small(), relations=["lives_in", "colour"])
    u = Universe.generate(cfg)
    assert {f.relation for f in u.facts} == {"lives_in", "colour"}


def test_never_trained_facts_are_a_tenth_of_each_relation_and_never_rendered(
    universe: Universe,
) -> None:
    """The membership attacks' non-members: 10% of each relation's facts, drawn by their own
    seed, which no training text, QA pair, tokenizer corpus or forget/retain split contains."""
    never = universe.never_trained_facts
    assert len(never) == 100 and len(universe.trained_facts) == 900
    for relation in RELATIONS:
        total = sum(f.relation == relation for f in universe.facts)
        assert sum(f.relation == relation for f in never) == round(0.1 * total)
    texts = set(universe.training_texts()) | set(universe.corpus())
    for fact in never:
        assert not set(fact.sentences) & texts and fact.qa.text not in texts
        assert not set(fact.held_out) & texts
    assert not {q.fact_id for q in universe.qa_pairs()} & set(universe.never_trained)
    # the draw does not move any other fact: the facts are those of a universe without it
    none = Universe.generate(replace(UniverseConfig(), never_trained_share=0.0))
    assert none.facts == universe.facts and none.never_trained_facts == []
    assert Universe.from_json(universe.to_json()).never_trained == universe.never_trained


def test_a_universe_written_before_never_trained_facts_loads_with_none(universe: Universe) -> None:
    old = universe.to_json()
    old["format"] = 1
    del old["never_trained"]
    del old["config"]["never_trained_share"]
    back = Universe.from_json(old)
    assert back.never_trained_facts == [] and back.trained_facts == universe.facts


def test_a_fact_without_a_relation_is_an_error_naming_it(universe: Universe) -> None:
    data = universe.to_json()
    del data["facts"][3]["relation"]
    with pytest.raises(ValueError, match=r"universe fact f00003 lacks its 'relation'"):
        Universe.from_json(data)
    data = universe.to_json()
    data["facts"][5]["relation"] = "favourite_food"
    with pytest.raises(ValueError, match=r"fact f00005 has the unknown relation 'favourite_food'"):
        Universe.from_json(data)

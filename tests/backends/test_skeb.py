"""Tests for SKeB (spec section 5): graph, extraction, metrics M1-M9, framings, judge, analysis."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from backends.llm.skeb import analysis, framings, metrics
from backends.llm.skeb.graph import EntityExtractor, build_graph, graph_from_csv, read_aliases
from backends.llm.skeb.judge import (
    FACTUAL,
    HALLUCINATED,
    NON_FACTUAL,
    Judge,
    RuleJudge,
    recalled,
    result_from_labels,
)

REPO = Path(__file__).resolve().parents[2]

# Hand-made graph used by the metric tests.
#   c1: A B C    c2: A B    c3: A D    c4: E    c5: B C
# freq: A 3, B 3, C 2, D 1, E 1
# weights: A-B 2 (c1, c2), A-C 1 (c1), B-C 2 (c1, c5), A-D 1 (c3); E isolated
# degree: A 3 (B, C, D), B 2, C 2, D 1, E 0
CHAPTERS = [["A", "B", "C"], ["A", "B"], ["A", "D"], ["E"], ["B", "C"]]


@pytest.fixture
def g():
    return build_graph(CHAPTERS)


def test_graph_freq_and_weights(g):
    assert {n: g.nodes[n]["freq"] for n in g} == {"A": 3, "B": 3, "C": 2, "D": 1, "E": 1}
    assert g["A"]["B"]["weight"] == 2
    assert g["A"]["C"]["weight"] == 1
    assert g["B"]["C"]["weight"] == 2
    assert g["A"]["D"]["weight"] == 1
    assert g.number_of_edges() == 4 and g.degree("E") == 0


def test_graph_counts_chapters_not_repeats():
    # "Harry" and "Harry Potter" in one chapter are one entity: freq 1, no self-loop.
    gr = build_graph([["Harry", "Harry Potter", "Ron"]], {"Harry": "Harry Potter"})
    assert gr.nodes["Harry Potter"]["freq"] == 1
    assert gr["Harry Potter"]["Ron"]["weight"] == 1
    assert not any(u == v for u, v in gr.edges)


def test_metrics_triangle(g):
    s = ["A", "B", "C"]
    assert metrics.m1(g, s) == 5  # AB 2 + AC 1 + BC 2
    assert metrics.m2(g, s) == pytest.approx(8 / 3)  # (3 + 3 + 2) / 3
    assert metrics.m3(g, s) == pytest.approx(7 / 3)  # (3 + 2 + 2) / 3
    assert metrics.m4(g, s) == 1.0  # 3 edges / (3*2/2)
    assert metrics.m5(g, s) == 5  # same edges as M1, no repeats
    assert metrics.m6(g, s) == pytest.approx(5 / 3)  # 5 / 3
    assert metrics.m7(g, s) == 1.0  # complete triangle: every distance 1
    assert metrics.m8(g, s) == 1.0  # 3 edges / 3 nodes


def test_m7_path_disconnected_and_no_edges(g):
    # Path B - A - D: distances BA 1, AD 1, BD 2 -> mean (1 + 1 + 2) / 3 = 4/3
    assert metrics.m7(g, ["B", "A", "D"]) == pytest.approx(4 / 3)
    # A-B, A-D present but E isolated: disconnected -> inf
    assert metrics.m7(g, ["A", "B", "D", "E"]) == math.inf
    # and the other metrics on that set: 2 edges / 6 pairs, 2 edges / 4 nodes, 2 + 1 weight
    assert metrics.m4(g, ["A", "B", "D", "E"]) == pytest.approx(1 / 3)
    assert metrics.m8(g, ["A", "B", "D", "E"]) == 0.5
    assert metrics.m5(g, ["A", "B", "D", "E"]) == 3
    # C, D share no edge: no edges in G[S] -> 0 (not inf), density 0, M1 0
    assert metrics.m7(g, ["C", "D"]) == 0.0
    assert metrics.m4(g, ["C", "D"]) == 0.0
    assert metrics.m1(g, ["C", "D"]) == 0.0
    assert metrics.m2(g, ["C", "D"]) == 1.5  # (2 + 1) / 2
    # n < 2 guard: a single entity
    assert metrics.m7(g, ["A"]) == 0.0
    assert metrics.m1(g, ["A"]) == 0.0
    assert metrics.m4(g, ["A"]) == 0.0


def test_m1_counts_duplicates_m5_does_not(g):
    s = ["A", "B", "B"]
    # M1 pairs: (A,B) 2 + (A,B) 2 + (B,B) no edge = 4; M5 over unique {A, B}: 2
    assert metrics.m1(g, s) == 4
    assert metrics.m5(g, s) == 2
    assert metrics.m2(g, s) == 3.0  # list mean (3 + 3 + 3) / 3
    assert metrics.m3(g, s) == 2.5  # unique (3 + 2) / 2
    assert metrics.m6(g, s) == 1.0  # 2 / 2 unique


def test_all_metrics_empty_is_zero(g):
    out = metrics.all_metrics(g, [])
    assert set(out) == set(metrics.METRIC_NAMES)
    assert all(v == 0.0 for v in out.values())


def test_m9_act_r_spreading_activation(g):
    # s_max 2, W 1 over S = {A, B, C}: W_j = 1/3; fan A 4, B 3, C 3
    # S_A = 2 - ln 4, S_B = S_C = 2 - ln 3. A gets W(S_B + S_C), B gets W(S_A + S_C),
    # C gets W(S_A + S_B); sum = (2/3)(S_A + S_B + S_C) = (2/3)(6 - ln 4 - 2 ln 3)
    expected = (2 / 3) * (6 - math.log(4) - 2 * math.log(3))
    assert metrics.m9(g, ["A", "B", "C"], s_max=2.0) == pytest.approx(expected)
    # target mode: D is linked only to A; sources {A, B}: W = 1/2 -> (1/2)(2 - ln 4)
    assert metrics.m9(g, ["A", "B"], s_max=2.0, target="D") == pytest.approx(
        0.5 * (2 - math.log(4))
    )
    # clamping: s_max 1 gives S_A = max(0, 1 - ln 4) = 0, S_D = 1 - ln 2;
    # over {A, D}: A receives (1/2)(1 - ln 2), D receives 0
    assert metrics.m9(g, ["A", "D"], s_max=1.0) == pytest.approx(0.5 * (1 - math.log(2)))
    # default s_max = ln |V| = ln 5: S_j = ln(5 / fan_j); {A, D}: (1/2)(ln 5/4 + ln 5/2)
    assert metrics.m9(g, ["A", "D"]) == pytest.approx(0.5 * (math.log(5 / 4) + math.log(5 / 2)))
    assert metrics.m9(g, ["C", "D"]) == 0.0  # no links among the prompt's entities


# ---- extraction ----

ALIASES = {"Harry": "Harry Potter", "Weasley": "Ron Weasley", "Ron": "Ron Weasley"}


@pytest.fixture
def ex():
    chapter = [
        "Harry Potter",
        "Ron Weasley",
        "Ginny Weasley",
        "the Burrow",
        "Hogwarts",
        "Hogwarts Express",
        "owl",
    ]
    return EntityExtractor(build_graph([chapter], ALIASES), ALIASES)


def test_extract_aliases_case_and_order(ex):
    assert ex.extract("the owl found harry") == ["owl", "Harry Potter"]
    assert ex.extract("Ron met HARRY POTTER") == ["Ron Weasley", "Harry Potter"]


def test_extract_whole_words_only(ex):
    assert ex.extract("Harrying a bowl of Ronnies") == []


def test_extract_longest_first(ex):
    # "Ginny Weasley" claims its words, so the alias "Weasley" (Ron) is not read inside it.
    assert ex.extract("Ginny Weasley waved") == ["Ginny Weasley"]


def test_extract_leading_the_stripped(ex):
    # The chapter listed "the Burrow"; the node is "Burrow", and an alias key "the ..." works too.
    assert "Burrow" in build_graph([["the Burrow"]]) and "the Burrow" not in build_graph(
        [["the Burrow"]]
    )
    assert ex.extract("They went back to the Burrow") == ["Burrow"]
    gr = build_graph([["Lord Voldemort"]])
    assert EntityExtractor(gr, {"the Dark Lord": "Lord Voldemort"}).extract(
        "the dark lord rose"
    ) == ["Lord Voldemort"]


def test_extract_drops_substring_entities(ex):
    # "Hogwarts" matches on its own at the end, but is part of "Hogwarts Express": dropped.
    assert ex.extract("The Hogwarts Express left for Hogwarts.") == ["Hogwarts Express"]


# ---- CSV ----


def test_graph_from_csv_paper_layout_and_aliases(tmp_path):
    p = tmp_path / "KG - Sheet1.csv"
    p.write_text(
        'Book,Chapter,Entities\nB1,1,"Harry, the Dursleys, owl"\nB1,2,"Harry Potter; owl"\n',
        encoding="utf-8",
    )
    a = tmp_path / "aliases.csv"
    a.write_text("alias,canonical\nHarry,Harry Potter\n", encoding="utf-8")
    gr, aliases = graph_from_csv(p, a)
    assert aliases == {"Harry": "Harry Potter"}
    assert gr.nodes["Harry Potter"]["freq"] == 2
    assert gr["Harry Potter"]["owl"]["weight"] == 2
    assert "Dursleys" in gr


def test_graph_from_csv_missing_columns(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("Book,Names\nB1,Harry\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing column.*'Chapter'.*'Entities'"):
        graph_from_csv(p)
    a = tmp_path / "aliases.csv"
    a.write_text("alias,target\nHarry,Harry Potter\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'canonical'"):
        read_aliases(a)


# ---- framings ----


def test_framing_ordinal_is_explicit_not_alphabetical():
    assert framings.FRAMING_ORDINAL == {"original": 0, "emotional": 1, "logical": 2, "authority": 3}
    alphabetical = {name: i for i, name in enumerate(sorted(framings.FRAMINGS))}
    assert alphabetical["original"] == 3  # what LabelEncoder would have done
    assert framings.encode_framing("original") == 0
    assert framings.encode_framing("authority") == 3
    with pytest.raises(ValueError, match="unknown framing 'flattery'"):
        framings.encode_framing("flattery")


def test_shipped_bank_frames_every_framing():
    bank = framings.load_bank()
    rng = random.Random(0)
    for f in framings.FRAMINGS:
        text = framings.frame("Where does Ada live?", f, ["Bo", "Cy"], rng, bank=bank)
        assert "Where does Ada live?" in text
        assert text.endswith(bank.suffix)
        # without related entities a template lacking {related} is always available
        assert "{" not in framings.frame("Where does Ada live?", f, [], rng, bank=bank)


def test_related_slot_is_filled(tmp_path):
    p = tmp_path / "bank.json"
    bank = {
        "suffix": "Answer.",
        "framings": {f: ["Think of {related}. {question}"] for f in framings.FRAMINGS},
    }
    p.write_text(json.dumps(bank))
    b = framings.load_bank(p)
    out = framings.frame("Q?", "logical", ["X", "Y", "Z"], random.Random(0), bank=b)
    assert out == "Think of X, Y and Z. Q? Answer."
    with pytest.raises(ValueError, match="needs \\{related\\}"):
        framings.frame("Q?", "logical", [], random.Random(0), bank=b)


def test_empty_prompt_sets_are_errors(tmp_path):
    with pytest.raises(ValueError, match="prompt set is empty"):
        framings.build_prompts([])
    p = tmp_path / "bank.json"
    p.write_text(json.dumps({"framings": {"original": ["{question}"], "emotional": []}}))
    with pytest.raises(ValueError, match="no templates for framing 'emotional'"):
        framings.load_bank(p)
    with pytest.raises(ValueError, match="question is empty"):
        framings.frame("  ", "original", [], random.Random(0))


def test_build_prompts_uses_graph_neighbours(g):
    rows = framings.build_prompts(["What links A?"], graph=g, entities=[["A"]], n_related=2)
    assert [r["framing"] for r in rows] == list(framings.FRAMINGS)
    assert [r["ordinal"] for r in rows] == [0, 1, 2, 3]
    # neighbours of A by weight: B (2), then C and D (1) with C first by name
    assert framings.related_entities(g, ["A"], 2) == ["B", "C"]


# ---- judge ----

TRIPLES = [
    ("Ada Vane", "lives_in", "Ironport"),
    ("Ada Vane", "occupation", "archivist"),
    ("Ada Vane", "colour", "red"),
    ("Bo Kerr", "lives_in", "Saltmarsh"),
    ("Bo Kerr", "occupation", "weaver"),
]
JUDGE_CASES = REPO / "tests" / "fixtures" / "llm" / "judge_cases.json"


@pytest.fixture
def judge():
    return RuleJudge(TRIPLES, ["Ada Vane", "Bo Kerr", "Ironport", "Saltmarsh"], {"Ada": "Ada Vane"})


def label(judge, answer, subject="Ada Vane", relation="lives_in", short=True):
    result = judge.judge(answer, subject=subject, relation=relation, short=short)
    return result.labels[0] if result.labels else None


def test_judge_right_answer_is_factual(judge):
    assert isinstance(judge, Judge)
    assert label(judge, "Ironport") == FACTUAL
    assert label(judge, "Ada lives in Ironport.", short=False) == FACTUAL  # alias + gold value


def test_judge_wrong_relation_answer_is_not_factual(judge):
    # the case: Ada's occupation given to "Where does Ada live?" was judged factual
    # because the question was put before the answer and any known value of Ada counted
    assert label(judge, "archivist") == HALLUCINATED
    assert not recalled(
        judge.judge("archivist", subject="Ada Vane", relation="lives_in", short=True)
    )
    # a sentence that states the true occupation does not answer where Ada lives
    assert label(judge, "Ada Vane is an archivist.", short=False) == NON_FACTUAL


def test_judge_another_entitys_value_is_hallucinated(judge):
    assert label(judge, "Saltmarsh") == HALLUCINATED  # Bo Kerr's home
    assert label(judge, "Ada lives in Saltmarsh.", short=False) == HALLUCINATED
    assert label(judge, "weaver", relation="occupation") == HALLUCINATED


def test_judge_invented_value_is_hallucinated_not_non_factual(judge):
    assert label(judge, "Quormwick") == HALLUCINATED  # a value that belongs to no one
    assert label(judge, "Ada lives in Quormwick.", short=False) == HALLUCINATED
    assert label(judge, "mauve", relation="colour") == HALLUCINATED
    assert label(judge, "I don't know.") == NON_FACTUAL
    assert label(judge, "Ada is a wonderful person.", short=False) == NON_FACTUAL
    assert judge.judge("", subject="Ada Vane", relation="lives_in", short=True).labels == []


def test_judge_reads_only_the_answer_line_and_percentages(judge):
    short = judge.judge(
        "Ironport\nQ: Where does Bo live?\nA: Ironport",
        subject="Ada Vane",
        relation="lives_in",
        short=True,
    )
    assert short.sentences == ["Ironport"] and short.labels == [FACTUAL]
    r = judge.judge(
        "Ada lives in Ironport. She lives in Saltmarsh! I love this story.",
        subject="Ada Vane",
        relation="lives_in",
    )
    assert r.labels == [FACTUAL, HALLUCINATED, NON_FACTUAL]
    assert r.factual == pytest.approx(100 / 3) and r.hallucinated == pytest.approx(100 / 3)
    assert recalled(r)
    empty = judge.judge("", subject="Ada Vane", relation="lives_in")
    assert (empty.factual, empty.non_factual, empty.hallucinated) == (0.0, 100.0, 0.0)
    assert not recalled(empty)


def test_judge_bad_input_names_the_fact(judge):
    with pytest.raises(ValueError, match=r"unknown relation 'favourite_food'.*'Ada Vane'"):
        judge.judge("Ironport", subject="Ada Vane", relation="favourite_food")
    with pytest.raises(ValueError, match=r"no fact \('Bo Kerr', 'colour'\)"):
        judge.judge("red", subject="Bo Kerr", relation="colour")
    with pytest.raises(ValueError, match="unknown subject 'Cy Moss'"):
        judge.judge("red", subject="Cy Moss", relation="colour")
    with pytest.raises(
        ValueError, match=r"fact #1 \('Bo Kerr', '', 'Saltmarsh'\) lacks its relation"
    ):
        RuleJudge([TRIPLES[0], ("Bo Kerr", "", "Saltmarsh")], ["Ada Vane"])
    with pytest.raises(ValueError, match=r"fact #0 \('Bo Kerr', 'lives_in'\) lacks its value"):
        RuleJudge([("Bo Kerr", "lives_in")], ["Bo Kerr"])


def confusion(cases, judge):
    """{(expected, judged): count} over hand-made cases."""
    table: dict[tuple[str, str], int] = {}
    for c in cases:
        r = judge.judge(c["answer"], subject=c["subject"], relation=c["relation"], short=c["short"])
        got = r.labels[0] if r.labels else NON_FACTUAL
        table[(c["expected"], got)] = table.get((c["expected"], got), 0) + 1
    return table


def test_judge_confusion_table_on_40_hand_made_answers(capsys):
    """The 40 hand-labelled answers of tests/fixtures/llm/judge_cases.json against the default
    universe; the table is printed (``pytest -s``) for docs/results.md. Measured: 39 of 40 on the
    diagonal; the miss is a false mentor claim between two related people (Zadroul's sibling
    named as his mentor), which a rule judge that does not parse the verb calls non-factual."""
    from backends.llm.universe import Universe, UniverseConfig

    cases = json.loads(JUDGE_CASES.read_text())["cases"]
    assert len(cases) == 40
    u = Universe.generate(UniverseConfig())
    table = confusion(cases, RuleJudge(u.triples(), u.entity_names(), u.aliases()))
    labels = (FACTUAL, NON_FACTUAL, HALLUCINATED)
    with capsys.disabled():
        print("\nexpected \\ judged | " + " | ".join(labels))
        for e in labels:
            print(f"{e} | " + " | ".join(str(table.get((e, g), 0)) for g in labels))
    assert sum(table.get((x, x), 0) for x in labels) >= 39
    assert table.get((HALLUCINATED, FACTUAL), 0) == 0
    assert table.get((NON_FACTUAL, FACTUAL), 0) == 0


def test_framings_never_put_the_gold_answer_in_the_prompt():
    """Over every question of the default universe, n_related 2 and 3: no framed prompt names the
    gold answer. Without the exclusion the {related} slot did so for 2.8% of entity-valued
    questions at n_related = 2 (the first assertion shows the leak is real)."""
    import re

    from backends.llm.universe import Universe, UniverseConfig

    u = Universe.generate(UniverseConfig())
    graph = build_graph(u.chapters(), u.aliases())
    extractor = EntityExtractor(graph, u.aliases())
    questions = [f.question for f in u.facts]
    entities = [extractor.extract(q) for q in questions]
    answers = [[f.answer] for f in u.facts]
    bank = framings.load_bank()

    def leaks(rows):
        return sum(
            1
            for r in rows
            if re.search(
                rf"(?<!\w){re.escape(u.facts[r['item']].answer)}(?!\w)", r["prompt"], re.IGNORECASE
            )
        )

    unguarded = framings.build_prompts(
        questions, graph=graph, entities=entities, n_related=2, bank=bank
    )
    assert leaks(unguarded) > 0
    for n_related in (2, 3):
        rows = framings.build_prompts(
            questions,
            graph=graph,
            entities=entities,
            n_related=n_related,
            bank=bank,
            answers=answers,
        )
        assert leaks(rows) == 0
    # the exclusion is case-insensitive and ignores a leading "the"
    g = build_graph([["A", "The Key", "B"]])
    assert framings.related_entities(g, ["A"], 3, exclude=["key"]) == ["B"]


# ---- analysis ----


def _records(n: int = 40) -> list[analysis.SkebRecord]:
    out = []
    for i in range(n):
        x = i / 4  # metric 0 .. 9.75
        n_fact = min(10, round(x) + (1 if i % 3 == 0 else 0))  # rises with x, small wobble
        labels = [FACTUAL] * n_fact + [NON_FACTUAL] * (10 - n_fact)
        res = result_from_labels([f"s{k}" for k in range(10)], labels)
        m = {"m1": x, "m7": math.inf if i == 5 else 1.0 + (i % 2), "m4": 0.5}
        out.append(analysis.SkebRecord(framings.FRAMINGS[i % 4], m, res))
    return out


def test_regression_rate_rises_with_metric():
    regs = analysis.regress_rate_on_metrics(_records())
    assert regs["m1"].r > 0.9 and regs["m1"].p < 1e-6 and regs["m1"].slope > 0
    assert regs["m7"].n == 39  # the inf record is left out
    assert math.isnan(regs["m4"].r)  # constant metric
    table = analysis.regression_table(regs)
    assert table.columns[5] == "pearson r" and len(table.rows) == 3


def test_rates_by_framing():
    recs = [
        analysis.SkebRecord("original", {}, result_from_labels(["a", "b"], [FACTUAL, NON_FACTUAL])),
        analysis.SkebRecord("original", {}, result_from_labels(["a"], [HALLUCINATED])),
        analysis.SkebRecord("authority", {}, result_from_labels(["a"], [FACTUAL])),
    ]
    rates = analysis.rates_by_framing(recs)
    assert list(rates) == ["original", "authority"]
    assert rates["original"]["factual"] == 25.0  # (50 + 0) / 2
    assert rates["original"]["hallucinated"] == 50.0  # (0 + 100) / 2
    assert rates["original"]["recall"] == 50.0  # one of two responses
    assert rates["authority"]["recall"] == 100.0
    # the recall's exact (Clopper-Pearson) interval over the framing's questions, in percent:
    # 1 of 2 -> [1.258, 98.742]; 1 of 1 -> [2.5, 100]
    from backends.common.stats import binomial_interval

    for framing, (k, n) in {"original": (1, 2), "authority": (1, 1)}.items():
        low, high = binomial_interval(k, n)
        assert (rates[framing]["recall_low"], rates[framing]["recall_high"]) == (
            100 * low,
            100 * high,
        )
        assert (
            rates[framing]["recall_low"]
            <= rates[framing]["recall"]
            <= rates[framing]["recall_high"]
        )
    assert rates["original"]["recall_low"] == pytest.approx(1.2579, abs=1e-4)
    assert rates["authority"]["recall_low"] == pytest.approx(2.5)
    assert analysis.rates_bars(recs).categories == ["original", "authority"]


def test_correlation_heatmap_square_and_labelled():
    hm = analysis.correlation_heatmap(_records())
    k = 1 + 3 + len(analysis.RATES)  # framing, m1 m4 m7, four rates
    assert hm.matrix.shape == (k, k)
    assert hm.x_labels == hm.y_labels and len(hm.x_labels) == k
    assert hm.x_labels[0] == "framing" and "M1 edge-count entanglement" in hm.x_labels
    i, j = hm.x_labels.index("M1 edge-count entanglement"), hm.x_labels.index("factual")
    assert hm.matrix[i, j] > 0.9 and hm.matrix[i, j] == hm.matrix[j, i]
    assert hm.matrix[i, i] == 1.0


def test_domain_graph_artifact(g):
    art = analysis.domain_graph_artifact(g, ["A", "Z"], seed=1)
    assert art.highlight == ["A"] and art.node_size == "freq"
    assert set(art.layout) == {"A", "B", "C", "D", "E"}
    assert art.layout == analysis.domain_graph_artifact(g, ["A"], seed=1).layout
    assert art.to_networkx().nodes["A"]["freq"] == 3


def test_configs_import_no_torch():
    code = (
        "import sys; import backends.llm.skeb.configs, backends.llm.skeb.analysis; "
        "assert not [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)

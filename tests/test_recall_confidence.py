"""Per-query channel confidence: exact identifiers, keyword coverage, look-alike (sibling) facts
in the graph, and consensus between words and meaning — each unit, then through real recall."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from colony.config import Settings
from colony.memory import Memory, MemoryIn, open_memory
from colony.memory._confidence import exact_first, identifiers, keyword_coverage
from colony.memory._fts import query_tokens
from colony.memory._intent import relation_family, relation_intent
from colony.memory._paths import sibling_facts
from colony.store import Database, open_database


@pytest.mark.parametrize(("query", "expected"), [
    ("Anything on INC-98392?", ["inc-98392"]),
    ("Tell me about pgshim==9.4.1.", ["pgshim==9.4.1"]),
    ("What does E1783 mean", ["e1783"]),
    ("Is api-27.us-west patched?", ["api-27.us-west"]),
    ("see src/colony/node.py", ["src/colony/node.py"]),
    ("What happened in December 2024?", []),  # words and bare numbers are BM25's job
    ("what's up with the team's plan", []),
    ("", []),
])
def test_identifiers_are_found_in_a_query(query: str, expected: list[str]) -> None:
    assert identifiers(query) == expected


def test_exact_matches_lead_in_their_original_order() -> None:
    rows = {1: {"content": "ledger==5.9.8 leaks"}, 2: {"content": "Keep LEDGER==8.4.5 pinned"},
            3: {"content": "ledger notes"}, 4: {"content": "also ledger==8.4.5 here"}}
    ranked = [(1, 9.0), (2, 8.0), (3, 7.0), (4, 6.0), (5, 5.0)]  # 5 has no row: forgotten meanwhile
    reordered, n = exact_first(ranked, rows, ["ledger==8.4.5"])
    assert n == 2
    assert [m for m, _ in reordered] == [2, 4, 1, 3, 5]
    assert exact_first(ranked, rows, []) == (ranked, 0)


def test_keyword_coverage() -> None:
    assert keyword_coverage(0.0, {"a": 3}, 100) == 0.0
    assert keyword_coverage(5.0, {}, 100) == 0.0
    full = keyword_coverage(3.0, {"rare": 1, "common": 60}, 100)
    assert full > keyword_coverage(1.0, {"rare": 1, "common": 60}, 100) > 0
    # A word no memory holds means the question is worded unlike anything stored: less coverage.
    assert keyword_coverage(3.0, {"rare": 1, "common": 60, "unheard": 0}, 100) < full / 2
    # Regression: a concurrent writer can make a frequency exceed the count read just before.
    assert keyword_coverage(1.0, {"a": 150}, 100) > 0
    assert query_tokens("The INC-1 and inc-1, the_x") == ["inc", "1", "x"]


def test_relation_families_group_kinds_of_relation() -> None:
    assert relation_family("imports") == relation_family("built_on") == relation_family("depends_on")
    assert relation_family("member_of") == relation_family("works_on") == relation_family("part_of")
    assert relation_family("imports") != relation_family("member_of")
    assert relation_family("paints") == "paints"  # outside every family: its own
    assert "manages" in relation_intent("Who is ultimately accountable for the API?")
    assert "leads" in relation_intent("Which person has the final say over billing?")


Fact = tuple[int, str, str, str, float]


def facts(*triples: tuple[str, str, str]) -> list[Fact]:
    return [(i, s, r, o, 1.0) for i, (s, r, o) in enumerate(triples)]


def test_siblings_of_a_step_are_told_from_the_next_step() -> None:
    fs = facts(
        ("noor", "works_on", "willow"),     # 0 the seed's own fact
        ("kwame", "member_of", "willow"),   # 1 another member: a sibling of Noor
        ("willow", "part_of", "data"),      # 2 the next step
        ("juniper", "part_of", "data"),     # 3 another part of Data: a sibling of Willow
        ("anika", "belongs_to", "juniper"),  # 4 only touches a sibling
        ("ruben", "leads", "willow"),       # 5 another relation into Willow: continues
    )
    assert sibling_facts(fs, {"noor"}) == {1, 3, 4}


def test_a_dependency_chain_continues_and_fellow_dependants_are_siblings() -> None:
    fs = facts(
        ("gateway", "built_on", "libspindle"),
        ("libpylon", "imports", "libspindle"),   # also depends on libspindle: sibling
        ("libspindle", "imports", "libmarrow"),  # what libspindle pulls in: the answer
        ("libmarrow", "requires", "libcore"),
    )
    assert sibling_facts(fs, {"gateway"}) == {1}
    assert sibling_facts([], {"gateway"}) == set()
    assert sibling_facts(fs, set()) == set()


# -- through real recall --------------------------------------------------------------------------
@pytest.fixture
def mem(tmp_path: Path, settings: Settings) -> Iterator[Memory]:
    db: Database = open_database(tmp_path / "conf.db")
    yield open_memory(db, settings)
    db.close()


def add(mem: Memory, *texts: str) -> list[int]:
    return mem.add_many([MemoryIn(content=t) for t in texts])


def test_the_memory_holding_the_identifier_leads_even_among_near_duplicates(mem: Memory) -> None:
    ids = add(
        mem,
        "ledger==5.9.8 is the last version that works with the billing service.",
        "The ledger API relies on libquill and logs every ledger entry.",
        "Keep ledger==8.4.5 in the lockfile of the tax service.",
        "ledger==8.4.6 broke the ledger export; ledger ledger ledger.",
        *[f"Ledger note {i}: the ledger team reviews ledger entries weekly." for i in range(8)],
    )
    hits = mem.recall("Anything on ledger==8.4.5?", k=3).hits
    assert hits[0].memory.id == ids[2]
    assert any(h.channel == "keyword" and h.rank == 1 for h in hits[0].channels)


def test_a_department_question_finds_the_next_step_not_the_other_members(mem: Memory) -> None:
    ids = add(
        mem,
        "Noor Achebe works on the Willow team.",
        *[f"{name} is a member of the Willow team." for name in ("Kwame Shah", "Hugo Idris", "Marcus Holm",
                                                                  "Lena Ortiz", "Ivo Petrov", "Sara Lind")],
        "The Willow team is part of the Data group.",
        "The Juniper team is part of the Data group.",
        "Anika Mensah belongs to the Juniper team.",
    )
    graph = [h.memory.id for h in mem.recall("Which department is Noor Achebe in?", k=10, channels={"graph"}).hits]
    # The next step outranks every look-alike: the other members, the other part of Data, its member.
    assert graph.index(ids[7]) < min(graph.index(i) for i in (*ids[1:7], ids[8], ids[9]) if i in graph)
    fused = mem.recall("Which department is Noor Achebe in?", k=3).hits
    assert ids[7] in [h.memory.id for h in fused]


def test_matches_on_words_nearly_every_memory_holds_are_not_keyword_evidence(mem: Memory) -> None:
    # "week" and "December" are in most memories here, so BM25 gives those matches ~0; they used
    # to fill the keyword ranking and, agreeing weakly with the vectors, push out the paraphrase
    # that only meaning finds.
    ids = add(
        mem,
        "The office is closed between Christmas and New Year.",
        *[f"Host {i} had its kernel patched during the December maintenance week." for i in range(6)],
        "Team lunch is paid for on the last Friday of each month.",
    )
    question = "Are we working during the last week of December?"
    keyword = [h.memory.id for h in mem.recall(question, k=10, channels={"keyword"}).hits]
    assert keyword == [ids[7]]  # only the memory matching an informative word ("last")
    fused_result = mem.recall(question, k=5)
    # "working" is in no memory: keywords cover little of this question, so the calibrated keyword
    # evidence is weak and meaning's answer is not pushed out of the fused top 5.
    assert fused_result.keyword_coverage is not None and fused_result.keyword_coverage < 0.8
    assert fused_result.channel_weights["keyword"] < 0.5
    semantic = [h.memory.id for h in mem.recall(question, k=5, channels={"semantic"}).hits]
    fused = [h.memory.id for h in mem.recall(question, k=5).hits]
    assert ids[0] in semantic and ids[0] in fused

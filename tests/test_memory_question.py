"""The multi-hop walk conditioned on the question: the kinds of things it passes through, its
remaining words breaking ties, and the entities a chain needs (numbered lists, names after a
lower-case first word).

One link reaches many memories; the question's words beyond the entity it starts from tell
which continuation answers it. The sentences here are our own, in no eval generator's style.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from colony.config import Settings
from colony.memory import Memory, MemoryIn, open_memory
from colony.memory._entities import extract_entities
from colony.memory._kinds import mentioned_kinds, named_kinds
from colony.memory._question import Remainder, remainder, stem, words_of
from colony.memory.graph import graph_recall
from colony.memory.store import as_store
from colony.store import Database, open_database


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[tuple[Memory, Database]]:
    db = open_database(tmp_path / "question.db")
    yield open_memory(db, Settings(home=tmp_path, workspace=tmp_path, memory_embedder="none")), db
    db.close()


def test_words_drop_possessives_and_stems_meet_inflections() -> None:
    assert words_of("Kiwi's vet: Dr Amsel, near the docks.") == ["kiwi", "vet", "dr", "amsel", "near", "the", "docks"]
    assert stem("Councillors") == stem("councillor") == "counc"
    assert stem("garaged") == stem("garage")


def test_the_remainder_is_the_question_without_its_entity_weighted_by_rarity(
        memory: tuple[Memory, Database]) -> None:
    mem, db = memory
    mem.add_many([MemoryIn(content=t) for t in (
        "Halvard Osk looks after the Brightmoor Lido.",
        "The Brightmoor Lido is in the Quayside district.",
        "The Quayside district is represented by the harbour committee.",
        "Lockers at the lido take a one pound coin.")])
    rest = remainder(as_store(db), "Which committee represents Halvard Osk's workplace?", ["halvard osk"], 4)
    assert set(rest.weights) == {"commi", "repre", "workp"}  # the entity's words are consumed
    assert sum(rest.weights.values()) == pytest.approx(1.0)
    # A word no memory holds counts at the weight of the rarest.
    assert rest.weights["workp"] > rest.weights["commi"]
    assert rest.covers(["committee", "represented"]) == pytest.approx(rest.weights["commi"] + rest.weights["repre"])
    assert remainder(as_store(db), "Halvard Osk?", ["halvard osk"], 4) == Remainder(asked=frozenset({"halvard", "osk"}))


@pytest.mark.parametrize(("question", "kinds"), [
    ("Who is the councillor for the place where the vans park?", {"person", "place"}),
    ("Which area does the organiser of the quiz live in?", {"person", "place"}),
    ("What time does the pool open?", {"time"}),
    ("What does the billing service depend on?", set()),
])
def test_a_question_mentions_the_kinds_it_passes_through(question: str, kinds: set[str]) -> None:
    assert mentioned_kinds(question) == kinds


@pytest.mark.parametrize(("text", "wanted"), [
    ("The Northfield depot runs lines 12, 40 and 7.", {"line 12", "line 40", "line 7"}),
    ("Boxes 3 & 4 hold the spare cables.", {"box 3", "box 4"}),
    ("Ponies 2 and 5 are lame.", {"pony 2", "pony 5"}),
    # A lower-case first word is no part of the name after it.
    ("ask Ingeborg about the allotment keys", {"ingeborg"}),
    ("booked Rufus in at the Elm Row clinic", {"rufus", "elm row clinic"}),
])
def test_entities_a_chain_runs_through(text: str, wanted: set[str]) -> None:
    assert wanted <= set(extract_entities(text))


def test_a_numbered_list_links_each_item_to_the_question(memory: tuple[Memory, Database]) -> None:
    """"lines 12, 40 and 7" names line 40, which the question asks about on its own."""
    mem, db = memory
    ids = mem.add_many([MemoryIn(content=t) for t in (
        "The Northfield depot runs lines 12, 40 and 7.",
        "The Northfield depot stands in Kelby, behind the gasworks.",
        "Line 40 was late twice this week.")])
    found = graph_recall(db, "Where are the line 40 trams kept overnight?")
    assert found.paths and found.paths[0].memories == (ids[0], ids[1])


# One link ("the Brightmoor Lido") leads to people two ways; only the longer path passes through a
# place, which the question asks about on its way ("the area around"). Without that, the people
# one link away (the lifeguard rota) lead: every step costs a path weight.
LIDO = (
    "Halvard Osk looks after the Brightmoor Lido.",
    "Brightmoor Lido lifeguard rota: Sunniva Berg and Odd Lien.",
    "The Brightmoor Lido is in Quayside.",
    "Cllr Petra Vold represents Quayside.",
)


def test_a_path_through_the_kind_the_question_mentions_leads(memory: tuple[Memory, Database]) -> None:
    mem, db = memory
    ids = mem.add_many([MemoryIn(content=t) for t in LIDO])
    found = graph_recall(db, "Who represents the area around Halvard Osk's workplace?")
    assert found.paths[0].memories == (ids[0], ids[2], ids[3])
    assert [mid for mid, _ in found.ranked[:3]] == [ids[3], ids[2], ids[0]]
    # Asked without the place, the person one link away is the nearer answer.
    plain = graph_recall(db, "Who works with Halvard Osk?")
    assert plain.paths[0].memories == (ids[0], ids[1])


@pytest.mark.parametrize("order", [("banked", "counted"), ("counted", "banked")])
def test_tied_continuations_are_ordered_by_the_question_not_by_insertion(
        memory: tuple[Memory, Database], order: tuple[str, str]) -> None:
    """One link reaches two notes alike but for one word; the question's remaining word picks."""
    mem, db = memory
    ids = mem.add_many([MemoryIn(content="Oskar Lind looks after Tern Hall.")]
                       + [MemoryIn(content=f"Tern Hall: takings are {verb} on Fridays.") for verb in order])
    banked = ids[1 + order.index("banked")]
    found = graph_recall(db, "Where does the money from Oskar Lind's workplace get banked?")
    first, second = found.paths[:2]
    assert first.score == pytest.approx(second.score)
    assert first.memories == (ids[0], banked)


def test_kind_words_are_spelled_as_entity_keys() -> None:
    """A possessive or a plural possessive is the name ("Paddlers' Wharf" names paddlers); a
    number plate is nobody."""
    assert named_kinds("The wifi at Paddlers' Wharf is on the receipt.") == {"place": frozenset({"paddlers", "wharf"})}
    assert named_kinds("Hoang's car reg is CN53 TVU.") == {}

"""The kind of answer a question asks for, and the multi-hop walk preferring continuations of that kind.

One link often reaches many memories (a depot's hours, its prices, who runs it, where it is); the
question's kind ("which part of town…", "who…", "when…") tells the walk which of them to follow.
The sentences here are our own, in no eval generator's style.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from colony.config import Settings
from colony.memory import Memory, MemoryIn, open_memory
from colony.memory._kinds import answer_kind, named_kinds
from colony.memory.graph import graph_recall
from colony.store import Database, open_database


@pytest.mark.parametrize(("question", "kind"), [
    ("Who signs off the budget for the north depot?", "person"),
    ("whose desk is next to the window?", "person"),
    ("What's the name of the dentist my brother sees?", "person"),
    ("Which councillor covers Kelby?", "person"),
    ("Where is the spare key kept?", "place"),
    ("Which part of town does Priya Raman work in?", "place"),
    ("In which city is the head office?", "place"),
    ("When does the pool open on Sundays?", "time"),
    ("What day is the bin collected?", "time"),
    # The first cue wins: this asks for a person, the place is on the way.
    ("Who is the councillor for the place where the vans park?", "person"),
    ("Where does the person who runs the choir live?", "place"),
    ("What does the billing service depend on?", None),
    ("Which department is Kwame in?", None),
])
def test_the_question_says_what_kind_of_answer_it_wants(question: str, kind: str | None) -> None:
    assert answer_kind(question) == kind


def test_a_memory_names_people_places_and_times_by_generic_signals() -> None:
    kinds = named_kinds("Dr Ines Alvarado moved the clinic in Harbourside to a site near Kelby on Tuesday at 9am.")
    assert {"ines", "alvarado"} <= kinds["person"]
    assert {"harbourside", "kelby"} <= kinds["place"]
    assert {"tuesday", "9am"} <= kinds["time"]
    # Names of institutions, and names behind a determiner, are things, not people.
    things = named_kinds("Maple Street Library is run by the Westfield Arts Council.")
    assert "person" not in things
    assert named_kinds("Tomas Herrera chairs the board.")["person"] == frozenset({"tomas", "herrera"})
    # "from" and "to" put nobody in a place: "a nod from Dana Okafor" names a person.
    assert named_kinds("Overtime needs a nod from Dana Okafor.") == {"person": frozenset({"dana", "okafor"})}
    assert named_kinds("the cheapest option, sadly") == {}


# One link ("Harbourside Depot") reaches five memories; the one that answers comes last, so it
# would trail the others (they tie, and ties go to the older memory) if the walk ignored the kind.
START = "Priya Raman has looked after the Harbourside Depot since the spring."
CONTINUATIONS = {
    "time": "Harbourside Depot takes deliveries weekdays from 7am to 3pm, Saturdays until noon.",
    "price": "Forklift hire at the Harbourside Depot costs £40 a day, fuel extra.",
    "org": "Harbourside Depot sends its invoices to the regional logistics division.",
    "person": "Any overtime at Harbourside Depot needs a nod from Dana Okafor.",
    "place": "Harbourside Depot is in Kelby, next to the ferry terminal.",
}


@pytest.fixture
def depot(tmp_path: Path) -> Iterator[tuple[Memory, Database, dict[str, int]]]:
    db = open_database(tmp_path / "kinds.db")
    memory = open_memory(db, Settings(home=tmp_path, workspace=tmp_path, memory_embedder="none"))
    keys = ["start", *CONTINUATIONS]
    ids = memory.add_many([MemoryIn(content=START)] + [MemoryIn(content=t) for t in CONTINUATIONS.values()])
    yield memory, db, dict(zip(keys, ids, strict=True))
    db.close()


@pytest.mark.parametrize(("question", "answer"), [
    ("Which part of town does Priya Raman work in?", "place"),
    ("Who approves extra hours where Priya Raman works?", "person"),
    ("When can a courier drop parcels off at Priya Raman's workplace?", "time"),
])
def test_the_walk_follows_the_continuation_of_the_asked_kind(
        depot: tuple[Memory, Database, dict[str, int]], question: str, answer: str) -> None:
    memory, db, ids = depot
    found = graph_recall(db, question)
    ends = [p.memories[-1] for p in found.paths]
    assert ends[0] == ids[answer], [next(k for k, v in ids.items() if v == m) for m in ends]
    # Fused recall keeps both memories of the path on top.
    top = [h.memory.id for h in memory.recall(question, k=3, touch=False).hits]
    assert {ids["start"], ids[answer]} <= set(top)

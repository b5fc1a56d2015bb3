"""Relation intent: which relation families a question's cue words point at."""

from __future__ import annotations

import pytest

from colony.memory._intent import relation_intent


@pytest.mark.parametrize(
    ("question", "expected", "absent"),
    [
        ("Where does the billing API physically run?", "hosted_on", "manages"),
        ("In which city is the Lisbon office located?", "located_in", "depends_on"),
        ("What does the search worker pull in transitively?", "depends_on", "located_in"),
        ("Who should I escalate to about the pricing API?", "manages", "located_in"),
        ("Which department is Ruben in?", "belongs_to", "hosted_on"),
    ],
)
def test_cues_map_to_relation_families(question: str, expected: str, absent: str) -> None:
    intent = relation_intent(question)
    assert expected in intent and absent not in intent


def test_no_cue_no_intent() -> None:
    assert relation_intent("When will Bjorn be out of office?") == frozenset()
    assert relation_intent("") == frozenset()


def test_ownership_is_a_step_not_an_answer_for_people_questions() -> None:
    intent = relation_intent("Who runs one-on-ones with Amara?")
    assert "manages" in intent and "owns" not in intent

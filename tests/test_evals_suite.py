"""Guards on the seed suite: it must not shrink or lose balance, and it round-trips through the DB."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import get_args

from colony.evals import CATEGORIES, SEED_MIN, seed_suite
from colony.evals import _store as es
from colony.evals.models import EvalCase, Property
from colony.evals.runner import suite_cases
from colony.store import open_database


def test_suite_does_not_shrink_and_ids_are_unique() -> None:
    suite = seed_suite()
    assert len(suite) >= SEED_MIN >= 50
    assert len({c.id for c in suite}) == len(suite)


def test_suite_stays_balanced_across_at_least_six_categories() -> None:
    counts = Counter(c.category for c in seed_suite())
    assert set(counts) == set(CATEGORIES) and len(counts) >= 6
    assert min(counts.values()) >= 5
    assert max(counts.values()) <= 1.5 * min(counts.values())  # no category may crowd out the others
    assert max(counts.values()) / sum(counts.values()) <= 0.25


def test_every_property_kind_is_exercised() -> None:
    union = get_args(get_args(Property)[0])
    kinds = {model.model_fields["kind"].default for model in union}
    used = {p.kind for c in seed_suite() for p in c.properties}
    assert used == kinds


def test_cases_are_stored_and_read_back(tmp_path: Path) -> None:
    db = open_database(tmp_path / "evals.db")
    try:
        stored = suite_cases(db)
        assert stored == sorted(seed_suite(), key=lambda c: (c.category, c.id))
        assert suite_cases(db) == stored  # seeding again changes nothing
        assert [c.id for c in suite_cases(db, category="safety")] == [f"safety.{i:02d}" for i in range(1, 9)]
        assert [c.id for c in suite_cases(db, ids=["effic.01", "nope"])] == ["effic.01"]
        es.upsert_cases(db, [EvalCase.model_validate({"id": "custom.01", "category": "grounding", "turns": ["hi"],
                                                      "properties": [{"kind": "completes"}]})])
        assert len(suite_cases(db)) == len(seed_suite()) + 1
    finally:
        db.close()

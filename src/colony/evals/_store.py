"""The eval tables (migration 4): cases, runs, per-property results and A/B reports."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from colony.evals.models import EvalCase
from colony.store import Database, Row

__all__ = [
    "baseline_run",
    "get_ab",
    "get_run",
    "insert_ab",
    "insert_run",
    "list_ab",
    "list_cases",
    "list_runs",
    "run_results",
    "set_baseline",
    "upsert_cases",
]


def upsert_cases(db: Database, cases: Iterable[EvalCase]) -> int:
    n = 0
    with db.tx() as conn:
        for c in cases:
            conn.execute(
                "INSERT INTO eval_cases(id, category, body) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "category = excluded.category, body = excluded.body",
                (c.id, c.category, c.model_dump_json()),
            )
            n += 1
    return n


def list_cases(db: Database, *, category: str | None = None) -> list[EvalCase]:
    rows = db.query("SELECT body FROM eval_cases WHERE ?1 IS NULL OR category = ?1 ORDER BY category, id", (category,))
    return [EvalCase.model_validate_json(r["body"]) for r in rows]


def insert_run(db: Database, *, run_id: str, label: str, model: str, condition: dict[str, Any], cases: int,
               results: Sequence[tuple[str, int, str, bool, str]], baseline: bool) -> None:
    """Store a run and its (case, trial, property, passed, detail) rows in one transaction."""
    passed = sum(1 for r in results if r[3])
    with db.tx() as conn:
        if baseline:
            conn.execute("UPDATE eval_runs SET is_baseline = 0 WHERE is_baseline = 1")
        conn.execute(
            "INSERT INTO eval_runs(id, label, model, condition, cases, properties_passed, properties_failed, "
            "is_baseline) VALUES (?,?,?,?,?,?,?,?)",
            (run_id, label, model, json.dumps(condition, sort_keys=True), cases, passed, len(results) - passed,
             int(baseline)),
        )
        conn.executemany(
            "INSERT INTO eval_results(run_id, case_id, trial, property, passed, detail) VALUES (?,?,?,?,?,?)",
            [(run_id, case_id, trial, prop, int(ok), detail[:300]) for case_id, trial, prop, ok, detail in results],
        )


def set_baseline(db: Database, run_id: str) -> bool:
    with db.tx() as conn:
        if conn.execute("SELECT 1 FROM eval_runs WHERE id = ?", (run_id,)).fetchone() is None:
            return False
        conn.execute("UPDATE eval_runs SET is_baseline = (id = ?)", (run_id,))
    return True


def baseline_run(db: Database) -> Row | None:
    return db.one("SELECT * FROM eval_runs WHERE is_baseline = 1 ORDER BY created_at DESC LIMIT 1")


def get_run(db: Database, run_id: str) -> Row | None:
    return db.one("SELECT * FROM eval_runs WHERE id = ?", (run_id,))


def list_runs(db: Database, limit: int = 20) -> list[Row]:
    return db.query("SELECT * FROM eval_runs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))


def run_results(db: Database, run_id: str) -> list[Row]:
    return db.query(
        "SELECT r.case_id, r.trial, r.property, r.passed, r.detail, c.category FROM eval_results r "
        "LEFT JOIN eval_cases c ON c.id = r.case_id WHERE r.run_id = ? ORDER BY r.case_id, r.trial, r.property",
        (run_id,),
    )


def insert_ab(db: Database, *, ab_id: str, model: str, modules: Sequence[str], trials: int, report: str) -> None:
    db.execute("INSERT INTO eval_ab(id, model, modules, trials, report) VALUES (?,?,?,?,?)",
               (ab_id, model, json.dumps(list(modules)), trials, report))


def get_ab(db: Database, ab_id: str) -> Row | None:
    return db.one("SELECT * FROM eval_ab WHERE id = ?", (ab_id,))


def list_ab(db: Database, limit: int = 20) -> list[Row]:
    return db.query("SELECT id, model, modules, trials, created_at FROM eval_ab ORDER BY created_at DESC LIMIT ?",
                    (limit,))

"""The cognition tables (migration 4): module state, the prediction log and causal lessons.

SQL for the capability lives here and nowhere else in the package; the rest calls these functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from colony.store import Database, Row

__all__ = [
    "bump_lesson",
    "count_lessons",
    "insert_lesson",
    "lessons_matching",
    "load_state",
    "prediction_stats",
    "record_prediction",
    "save_state",
]


def save_state(db: Database, states: Mapping[str, Mapping[str, Any]]) -> None:
    with db.tx() as conn:
        for module, state in states.items():
            conn.execute(
                "INSERT INTO cognition_state(module, state) VALUES (?, ?) ON CONFLICT(module) DO UPDATE SET "
                "state = excluded.state, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
                (module, json.dumps(state, separators=(",", ":"))),
            )


def load_state(db: Database) -> dict[str, dict[str, Any]]:
    return {r["module"]: json.loads(r["state"]) for r in db.query("SELECT module, state FROM cognition_state")}


def record_prediction(db: Database, *, session_id: str | None, turn_id: str | None, tool: str,
                      expected_success: float, expected_latency_ms: float, uncertainty: float,
                      outcome: str, latency_ms: float, surprisal: float) -> None:
    db.execute(
        "INSERT INTO cognition_predictions(session_id, turn_id, tool, expected_success, expected_latency_ms, "
        "uncertainty, outcome, latency_ms, surprisal) VALUES (?,?,?,?,?,?,?,?,?)",
        (session_id, turn_id, tool, expected_success, expected_latency_ms, uncertainty, outcome, latency_ms,
         surprisal),
    )


def prediction_stats(db: Database) -> list[Row]:
    """Per tool: calls, mean surprisal and the share of high-surprise calls."""
    return db.query(
        "SELECT tool, COUNT(*) AS calls, AVG(surprisal) AS mean_surprisal, "
        "AVG(CASE WHEN surprisal > 0.5 THEN 1.0 ELSE 0.0 END) AS high_share "
        "FROM cognition_predictions GROUP BY tool ORDER BY calls DESC, tool"
    )


def insert_lesson(db: Database, *, session_id: str | None, task_type: str, action_taken: str,
                  alternative: str | None, lesson: str, keywords: Sequence[str], confidence: float) -> int:
    """Store a lesson; the same lesson for the same task type again raises its confidence instead."""
    with db.tx() as conn:
        row = conn.execute(
            "SELECT id, confidence FROM cognition_lessons WHERE task_type = ? AND lesson = ?", (task_type, lesson)
        ).fetchone()
        if row is not None:
            conn.execute("UPDATE cognition_lessons SET confidence = ? WHERE id = ?",
                         (min(0.95, float(row["confidence"]) + 0.05), row["id"]))
            return int(row["id"])
        conn.execute(
            "INSERT INTO cognition_lessons(session_id, task_type, action_taken, alternative, lesson, keywords, "
            "confidence) VALUES (?,?,?,?,?,?,?)",
            (session_id, task_type, action_taken, alternative, lesson, " ".join(keywords), confidence),
        )
        return int(conn.last_insert_rowid())


def lessons_matching(db: Database, task_type: str, words: Sequence[str], limit: int) -> list[Row]:
    """Lessons of this task type, or sharing a keyword, most confident first."""
    rows = db.query(
        "SELECT * FROM cognition_lessons ORDER BY confidence DESC, times_applied DESC, id DESC LIMIT 200"
    )
    wanted = set(words)
    scored = []
    for r in rows:
        overlap = len(wanted & set(str(r["keywords"]).split()))
        if r["task_type"] == task_type or overlap:
            scored.append((-(overlap + (r["task_type"] == task_type)), -float(r["confidence"]), r))
    scored.sort(key=lambda t: (t[0], t[1], -int(t[2]["id"])))
    return [r for *_, r in scored[:limit]]


def bump_lesson(db: Database, lesson_id: int) -> None:
    """Hebbian reinforcement: each successful application nudges confidence toward 1."""
    db.execute(
        "UPDATE cognition_lessons SET times_applied = times_applied + 1, "
        "confidence = MIN(0.99, confidence + 0.1 * (1 - confidence)) WHERE id = ?",
        (lesson_id,),
    )


def count_lessons(db: Database) -> tuple[int, int]:
    row = db.one("SELECT COUNT(*) AS n, COALESCE(SUM(times_applied > 0), 0) AS applied FROM cognition_lessons")
    return (int(row["n"]), int(row["applied"])) if row else (0, 0)

"""Stored runs and the rules that read them: the commit gate, deprioritizing, stagnation.

- **Commit gate**: a self-made change (a cartridge, prompt or policy the agent changed itself) is
  recorded with `record_change`; until a complete benchmark run has measured it, the next change
  is refused (`GateClosedError`). A complete run measures the pending change and stores its delta
  against the previous complete run of the same suite.
- **Deprioritized problems**: failed in each of their last `FAILS_TO_DEPRIORITIZE` runs; runs skip
  them unless asked not to, so the budget goes where progress is possible.
- **Stagnation**: the last `STAGNATION_RUNS` complete runs of a suite within `STAGNATION_EPS` of
  each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from colony.bench.harness import Verdict
from colony.bench.scoring import Score
from colony.errors import ColonyError
from colony.store import Database

__all__ = [
    "FAILS_TO_DEPRIORITIZE",
    "STAGNATION_EPS",
    "STAGNATION_RUNS",
    "GateClosedError",
    "deprioritized",
    "list_runs",
    "pending_change",
    "record_change",
    "save_run",
    "stagnating",
]

FAILS_TO_DEPRIORITIZE = 5
STAGNATION_RUNS = 3
STAGNATION_EPS = 0.005
ChangeKind = Literal["cartridge", "prompt", "policy"]


class GateClosedError(ColonyError):
    code = "gate_closed"

    def __init__(self, pending: dict[str, Any]) -> None:
        self.pending = pending
        super().__init__(
            f"The last self-made change ({pending['kind']} {pending['ref']}) has not been measured yet; run "
            "`colony bench coding` to measure its effect before making another change."
        )


def pending_change(db: Database) -> dict[str, Any] | None:
    return db.one("SELECT * FROM bench_changes WHERE measured_run IS NULL ORDER BY id DESC LIMIT 1")


def record_change(db: Database, kind: ChangeKind, ref: str) -> int:
    """Record a self-made change, or raise `GateClosedError` while the previous one is unmeasured."""
    with db.tx() as conn:
        pending = pending_change(db)
        if pending is not None:
            raise GateClosedError(pending)
        conn.execute("INSERT INTO bench_changes(kind, ref) VALUES (?, ?)", (kind, ref))
        return int(conn.last_insert_rowid())


def save_run(
    db: Database, *, suite: str, model: str, shard: str, result: Score, verdicts: Sequence[Verdict],
    tokens: dict[str, int], wall_s: float,
) -> str:
    """Store a run with its per-problem verdicts; a complete run also measures the pending change."""
    run_id = uuid.uuid4().hex
    complete = shard == "1/1"
    previous = _last_complete_score(db, suite) if complete else None
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO bench_runs(id, suite, model, shard, problems, passed, score, ci_low, ci_high, per_tier,"
            " tokens, wall_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, suite, model, shard, result.problems, result.passed, result.score, result.ci_low, result.ci_high,
             json.dumps([t.model_dump() for t in result.tiers]), sum(tokens.values()), round(wall_s, 3)))
        for v in verdicts:
            conn.execute(
                "INSERT INTO bench_results(run_id, problem_id, tier, passed, stop, tokens, wall_ms, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, v.problem_id, v.tier, int(v.passed), v.outcome if not v.passed else "ok",
                 tokens.get(v.problem_id, 0), v.wall_ms, v.detail[:1000]))
        if complete:
            delta = None if previous is None else round(result.score - previous, 4)
            conn.execute("UPDATE bench_changes SET measured_run = ?, delta = ? WHERE measured_run IS NULL",
                         (run_id, delta))
    return run_id


def _last_complete_score(db: Database, suite: str) -> float | None:
    value = db.scalar("SELECT score FROM bench_runs WHERE suite = ? AND shard = '1/1' ORDER BY created_at DESC,"
                      " rowid DESC LIMIT 1", (suite,))
    return None if value is None else float(value)


def list_runs(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    rows = db.query("SELECT * FROM bench_runs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
    for r in rows:
        r["per_tier"] = json.loads(r["per_tier"])
    return rows


def deprioritized(db: Database, threshold: int = FAILS_TO_DEPRIORITIZE) -> set[str]:
    """Problems failed in each of their last ``threshold`` recorded attempts by this node's own model
    (a merged colony run, shard ``colony``, holds other nodes' attempts and does not count)."""
    rows = db.tuples(
        "SELECT r.problem_id, r.passed FROM bench_results r JOIN bench_runs b ON b.id = r.run_id"
        " WHERE b.shard != 'colony' ORDER BY b.created_at DESC, b.rowid DESC")
    recent: dict[str, list[int]] = {}
    for problem_id, passed in rows:
        seen = recent.setdefault(problem_id, [])
        if len(seen) < threshold:
            seen.append(passed)
    return {p for p, xs in recent.items() if len(xs) == threshold and not any(xs)}


def stagnating(db: Database, suite: str, runs: int = STAGNATION_RUNS, eps: float = STAGNATION_EPS) -> bool:
    """True when the last ``runs`` complete runs of ``suite`` scored within ``eps`` of each other."""
    scores = [r[0] for r in db.tuples(
        "SELECT score FROM bench_runs WHERE suite = ? AND shard = '1/1' ORDER BY created_at DESC, rowid DESC LIMIT ?",
        (suite, runs))]
    return len(scores) == runs and max(scores) - min(scores) <= eps

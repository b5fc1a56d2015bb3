"""Migration 25, a partitioned run that survives its coordinator: the run's term, and each node's own
verdicts kept whole so it can send them again to a coordinator that adopted the run.

Every participant keeps a copy of a run (`colony.federation.partition_copy`), and the queen of a
later term may adopt it; ``partition_runs.queen`` is the run's *current* coordinator and ``term``
the queen term it coordinates under. Invariants the database holds, on top of migration 23's:

- a run's term never goes down, and its coordinator changes only with a higher term (an adoption);
- a merged run is final: its coordinator, term, state and stored ``bench_runs`` row never change, so
  a node accepts at most one merged run per run id — the first, from the coordinator of the highest
  term it knew for the run;
- a node's verdict on a problem of its share (``partition_work.report``) is written once, when the
  problem is done, and never changes.
"""

from __future__ import annotations

__all__ = ["PARTITION_ADOPT_SCHEMA"]

PARTITION_ADOPT_SCHEMA = """
ALTER TABLE partition_runs ADD COLUMN term INTEGER NOT NULL DEFAULT 0 CHECK (term >= 0);
ALTER TABLE partition_work ADD COLUMN report TEXT CHECK (report IS NULL OR json_valid(report));

DROP TRIGGER partition_runs_move;
CREATE TRIGGER partition_runs_move BEFORE UPDATE ON partition_runs
WHEN NEW.id IS NOT OLD.id OR NEW.requester IS NOT OLD.requester
     OR NEW.suite IS NOT OLD.suite OR NEW.mode IS NOT OLD.mode OR NEW.problem_limit IS NOT OLD.problem_limit
     OR NEW.problem_timeout_s IS NOT OLD.problem_timeout_s
     OR NEW.term < OLD.term OR (NEW.queen IS NOT OLD.queen AND NEW.term <= OLD.term)
     OR (OLD.state = 'merged' AND (NEW.state IS NOT OLD.state OR NEW.bench_run IS NOT OLD.bench_run
                                   OR NEW.queen IS NOT OLD.queen OR NEW.term IS NOT OLD.term))
     OR (OLD.state = 'running' AND NEW.state = 'requested')
BEGIN
    SELECT RAISE(ABORT, 'partition: a run''s terms never change, its coordinator only with a higher term; requested -> running -> merged');
END;

CREATE TRIGGER partition_work_report BEFORE UPDATE OF report ON partition_work
WHEN OLD.report IS NOT NULL AND NEW.report IS NOT OLD.report
BEGIN
    SELECT RAISE(ABORT, 'partition: a verdict of this node''s share never changes');
END;
"""

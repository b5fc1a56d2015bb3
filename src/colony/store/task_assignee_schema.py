"""Migration 20, tasks awarded by account: ``tasks.assignee`` holds the winner's account.

Why: an agent's name is local to its node (every node has a ``colony``), while the task queue may
be one PostgreSQL that many nodes share. With the winner's *name* as the assignee, every node's
market worker claimed the tasks of any agent of that name and ran them as its own agent of that
name. The account (the 64-hex public key the auction's events are signed with) is globally
unique: a node's worker now claims only its own agents' accounts and runs the task as the local
name the account resolves to (`colony.market.worker.work_once`).

What changes (the column of migration 13, `colony.store.market_schema`):

- the CHECK on ``assignee`` admits an account (64 lowercase hex); SQLite cannot change a
  column's CHECK in place, so the column is dropped and added again, its values carried through
  a temporary table, with its partial index ``tasks_assigned`` dropped and re-created around it;
- every assignee converts: a task an auction was awarded for gets that auction's winner
  (``market_auctions.task_id`` → ``winner``, where ``winner_name`` is the name the task had);
  any other name of one of this node's agents gets that agent's ``public_hex``;
- anything left — a name no auction awarded and no agent of this node has (only code outside
  the market ever wrote such a row) — is **kept as it was**: the CHECK still admits a name of 1-32
  characters so no row is lost, no worker claims it (they claim by account), and the surfaces
  show the name. The task waits until a person cancels it;
- a trigger refuses a new name: whatever sets an assignee from now on sets an account.
"""

from __future__ import annotations

__all__ = ["TASK_ASSIGNEE_SCHEMA"]

TASK_ASSIGNEE_SCHEMA = """
CREATE TEMP TABLE task_assignee_v20 AS SELECT id, assignee FROM tasks WHERE assignee IS NOT NULL;
UPDATE task_assignee_v20 SET assignee = coalesce(
    (SELECT a.winner FROM market_auctions a
     WHERE a.task_id = task_assignee_v20.id AND a.winner IS NOT NULL AND a.winner_name = task_assignee_v20.assignee
     ORDER BY a.created_at DESC, a.id LIMIT 1),
    (SELECT i.public_hex FROM identities i WHERE i.name = task_assignee_v20.assignee AND i.role = 'agent'),
    assignee);

DROP INDEX tasks_assigned;
ALTER TABLE tasks DROP COLUMN assignee;
ALTER TABLE tasks ADD COLUMN assignee TEXT CHECK (
    assignee IS NULL
    OR (length(assignee) = 64 AND assignee NOT GLOB '*[^0-9a-f]*')
    OR length(assignee) BETWEEN 1 AND 32);
UPDATE tasks SET assignee = (SELECT v.assignee FROM task_assignee_v20 v WHERE v.id = tasks.id)
    WHERE id IN (SELECT id FROM task_assignee_v20);
DROP TABLE task_assignee_v20;
CREATE INDEX tasks_assigned ON tasks(not_before) WHERE assignee IS NOT NULL;

CREATE TRIGGER tasks_assignee_account BEFORE UPDATE OF assignee ON tasks
WHEN NEW.assignee IS NOT NULL AND NEW.assignee IS NOT OLD.assignee AND length(NEW.assignee) <> 64
BEGIN SELECT RAISE(ABORT, 'tasks: an assignee is the agent''s account (its 64-hex public key), not its name'); END;
"""

"""Migration 20 on PostgreSQL, tasks awarded by account: ``tasks.assignee`` holds the winner's account.

The same change as on SQLite (`colony.store.task_assignee_schema`, which says why): the CHECK
admits an account, every task an auction was awarded for gets that auction's winner
(``market_auctions.task_id`` → ``winner``, where ``winner_name`` is the name the task had), and
a trigger refuses a new name.

What differs: the identities are not here (each node's keys stay in its own file), so a name no
auction awarded cannot be resolved. Only code outside the market ever wrote such a row; it is
**kept as it was**, under its name: the CHECK still admits 1-32 characters, no worker claims it
(they claim by account), and the surfaces show the name; the task waits until a person cancels
it. The migration runs in one transaction under the migration lock
(`colony.store.pg.migrations`), so no node's worker sees the assignees half converted.
"""

from __future__ import annotations

__all__ = ["TASK_ASSIGNEE_SCHEMA"]

TASK_ASSIGNEE_SCHEMA = r"""
ALTER TABLE tasks DROP CONSTRAINT tasks_assignee_check;
UPDATE tasks t SET assignee = a.winner
    FROM market_auctions a
    WHERE a.task_id = t.id AND a.winner IS NOT NULL AND a.winner_name = t.assignee AND length(t.assignee) <> 64;
ALTER TABLE tasks ADD CONSTRAINT tasks_assignee_check CHECK (
    assignee IS NULL OR assignee ~ '^[0-9a-f]{64}$' OR length(assignee) BETWEEN 1 AND 32);

CREATE FUNCTION tasks_assignee_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tasks: an assignee is the agent''s account (its 64-hex public key), not its name';
END $$;
CREATE TRIGGER tasks_assignee_account BEFORE UPDATE OF assignee ON tasks
    FOR EACH ROW WHEN (NEW.assignee IS NOT NULL AND NEW.assignee IS DISTINCT FROM OLD.assignee
                       AND length(NEW.assignee) <> 64)
    EXECUTE FUNCTION tasks_assignee_account();
"""

"""SQL over federation's tables (migrations 17, 24 and 26, `colony.store.federation_schema`); nothing else here.

Rows go in and out as plain dicts; events are stored as their JSON. Sequence numbers are taken
and checked inside one ``BEGIN IMMEDIATE`` transaction, and the schema's triggers refuse a gap
whatever the caller does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Literal

from colony.federation.queen import Role, accepts
from colony.identity.events import Event
from colony.store import Database, Row
from colony.store.sessions import pid_alive

__all__ = [
    "accept_inbox",
    "adopt_role",
    "drop_introduced",
    "enqueue",
    "get_member",
    "get_self",
    "incident_counts",
    "insert_invite",
    "introduction_from",
    "introductions_sent",
    "list_inbox",
    "list_incidents",
    "list_members",
    "mark_delivered",
    "mark_handled",
    "note_attempt",
    "outbox_rows",
    "pending",
    "promote_joining",
    "record_incident",
    "remove_for",
    "rewind",
    "serving",
    "set_added_by",
    "set_self",
    "set_status",
    "set_url",
    "store_announcement",
    "unhandled",
    "upsert_member",
    "use_invite",
    "waiting_before",
]

#: Repeats of one incident (same peer, kind and detail) within this many seconds add to its count.
COALESCE_S = 60.0
#: Incidents kept; older ones are dropped (a hostile caller must not fill the disk).
MAX_INCIDENTS = 10_000

_MEMBER = ("pubkey, url, name, status, added_by, added_at, joined, last_seen, announced_at, last_announcement, "
           "vouches_queen, vouched_at, removed_reason, introduced_by")
_INSERT = ("pubkey, url, name, status, added_by, added_at, joined, last_seen, announced_at, last_announcement, "
           "introduced_by")
#: An operator's own act (add, spawn, invite) makes an introduced member a direct one.
_DIRECT_NOW = "federation_nodes.added_by = 'introduced' AND excluded.added_by != 'introduced'"


def _member(row: Row) -> Row:
    raw = row.get("last_announcement")
    return {**row, "last_announcement": json.loads(raw) if raw else None}


# -- members ----------------------------------------------------------------------------------
def upsert_member(db: Database, pubkey: str, url: str, *, name: str, added_by: str, now: float,
                  announcement: Event | None = None, status: str = "trusted", introduced_by: str | None = None) -> Row:
    """Trust ``pubkey`` at ``url`` (again, if it was removed); returns its row.

    ``status`` ``joining`` marks a member this node asked to join (or was introduced to) and has no
    answer from yet. ``introduced_by`` goes with ``added_by`` ``introduced`` (the schema refuses
    one without the other).

    A member added before keeps its place in the join order and how it was first added, except that
    an introduced member added again by the operator's own act (add, spawn, invite) becomes direct.
    """
    ann = announcement.model_dump_json() if announcement is not None else None
    at = announcement.created_at if announcement is not None else None
    with db.tx() as conn:
        conn.execute(
            f"INSERT INTO federation_nodes({_INSERT}) VALUES (?, ?, ?, ?, ?, ?, "
            "(SELECT coalesce(max(joined), 0) + 1 FROM federation_nodes), ?, ?, ?, ?) "
            "ON CONFLICT(pubkey) DO UPDATE SET url = excluded.url, status = excluded.status, "
            f"added_by = CASE WHEN {_DIRECT_NOW} THEN excluded.added_by ELSE federation_nodes.added_by END, "
            f"introduced_by = CASE WHEN {_DIRECT_NOW} THEN NULL ELSE federation_nodes.introduced_by END, "
            "removed_reason = CASE WHEN excluded.status = 'removed' THEN federation_nodes.removed_reason END, "
            "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE federation_nodes.name END, "
            "last_seen = excluded.last_seen, "
            "announced_at = coalesce(excluded.announced_at, federation_nodes.announced_at), "
            "last_announcement = coalesce(excluded.last_announcement, federation_nodes.last_announcement)",
            (pubkey, url, name, status, added_by, now, now, at, ann, introduced_by),
        )
    found = get_member(db, pubkey)
    assert found is not None
    return found


def get_member(db: Database, pubkey: str) -> Row | None:
    row = db.one(f"SELECT {_MEMBER} FROM federation_nodes WHERE pubkey = ?", (pubkey,))
    return _member(row) if row else None


def list_members(db: Database, status: str | None = None) -> list[Row]:
    """Members in the order they joined (``status`` filters)."""
    where, params = ("WHERE status = ?", (status,)) if status else ("", ())
    return [_member(r) for r in db.query(f"SELECT {_MEMBER} FROM federation_nodes {where} ORDER BY joined", params)]


def set_added_by(db: Database, pubkey: str, added_by: str) -> bool:
    """Record a direct origin (``operator``, ``spawn``, ``invite``): the member has no introducer then."""
    with db.tx() as conn:
        conn.execute("UPDATE federation_nodes SET added_by = ?, introduced_by = NULL WHERE pubkey = ?",
                     (added_by, pubkey))
        return bool(conn.changes())


def set_url(db: Database, pubkey: str, url: str) -> str | None:
    """Store a member's new URL; returns the old one, or None when nothing changed."""
    with db.tx() as conn:
        row = conn.execute("SELECT url FROM federation_nodes WHERE pubkey = ?", (pubkey,)).fetchone()
        if row is None or row["url"] == url:
            return None
        conn.execute("UPDATE federation_nodes SET url = ? WHERE pubkey = ?", (url, pubkey))
        return str(row["url"])


def drop_introduced(db: Database, pubkey: str) -> bool:
    """Forget an introduced member whose handshake was refused: only while it is still ``joining``
    (a member once trusted is removed, never forgotten)."""
    with db.tx() as conn:
        conn.execute("DELETE FROM federation_nodes WHERE pubkey = ? AND status = 'joining' "
                     "AND added_by = 'introduced'", (pubkey,))
        return bool(conn.changes())


def set_status(db: Database, pubkey: str, status: str, reason: str | None = None) -> bool:
    """Set a member's status (and why it was removed: ``reason`` is kept only with ``removed``)."""
    with db.tx() as conn:
        conn.execute("UPDATE federation_nodes SET status = ?, removed_reason = ? WHERE pubkey = ?",
                     (status, reason if status == "removed" else None, pubkey))
        return bool(conn.changes())


def promote_joining(db: Database, pubkey: str) -> bool:
    """A ``joining`` member becomes ``trusted``; False when it is not joining (trusted meanwhile, or
    removed by the operator: a removal is never undone here)."""
    with db.tx() as conn:
        conn.execute("UPDATE federation_nodes SET status = 'trusted' WHERE pubkey = ? AND status = 'joining'",
                     (pubkey,))
        return bool(conn.changes())


def remove_for(db: Database, pubkey: str, reason: str) -> bool:
    """Mark a member removed for ``reason``; False when it is no member or was removed for it already."""
    with db.tx() as conn:
        conn.execute("UPDATE federation_nodes SET status = 'removed', removed_reason = ? "
                     "WHERE pubkey = ? AND (status != 'removed' OR removed_reason IS NOT ?)", (reason, pubkey, reason))
        return bool(conn.changes())


def store_announcement(db: Database, pubkey: str, event: Event, name: str, now: float,
                       vouch: tuple[str, float] | None = None) -> bool:
    """Note that ``pubkey`` was heard from now (and the queen it vouches for); keep ``event`` if it
    is newer than the stored one. Returns True when the stored announcement changed.
    """
    queen, at = vouch if vouch is not None else (None, None)
    with db.tx() as conn:
        conn.execute("UPDATE federation_nodes SET last_seen = ?, vouches_queen = ?, vouched_at = ? WHERE pubkey = ?",
                     (now, queen, at, pubkey))
        conn.execute(
            "UPDATE federation_nodes SET announced_at = ?, last_announcement = ?, name = ? "
            "WHERE pubkey = ? AND (announced_at IS NULL OR announced_at < ?)",
            (event.created_at, event.model_dump_json(), name, pubkey, event.created_at),
        )
        return bool(conn.changes())


# -- invites ----------------------------------------------------------------------------------
def insert_invite(db: Database, token_hash: str, created_at: float, expires_at: float) -> None:
    with db.tx() as conn:
        conn.execute("INSERT INTO federation_invites(token_hash, created_at, expires_at) VALUES (?, ?, ?)",
                     (token_hash, created_at, expires_at))


def use_invite(db: Database, token_hash: str, by: str, now: float) -> bool:
    """Spend an unexpired, unused invite; False when there is none to spend."""
    with db.tx() as conn:
        conn.execute("UPDATE federation_invites SET used_at = ?, used_by = ? "
                     "WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?", (now, by, token_hash, now))
        return bool(conn.changes())


# -- outbox -----------------------------------------------------------------------------------
def enqueue(db: Database, peer: str, make: Callable[[int], Event], now: float) -> Event:
    """Queue the event ``make(seq)`` builds for ``peer`` with the next sequence number, in one transaction."""
    with db.tx() as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) + 1 AS n FROM federation_outbox WHERE peer = ?",
                           (peer,)).fetchone()
        seq = int(row["n"]) if row else 1
        event = make(seq)
        conn.execute("INSERT INTO federation_outbox(peer, seq, event_id, kind, event, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (peer, seq, event.id, event.kind, event.model_dump_json(), now))
    return event


def pending(db: Database, peer: str, limit: int = 50) -> list[Row]:
    """The peer's undelivered events, lowest sequence number first."""
    return db.query("SELECT seq, event FROM federation_outbox WHERE peer = ? AND delivered_at IS NULL "
                    "ORDER BY seq LIMIT ?", (peer, limit))


def mark_delivered(db: Database, peer: str, seq: int, now: float) -> None:
    with db.tx() as conn:
        conn.execute("UPDATE federation_outbox SET delivered_at = ?, attempts = attempts + 1 "
                     "WHERE peer = ? AND seq = ? AND delivered_at IS NULL", (now, peer, seq))


def note_attempt(db: Database, peer: str, seq: int) -> None:
    with db.tx() as conn:
        conn.execute("UPDATE federation_outbox SET attempts = attempts + 1 WHERE peer = ? AND seq = ?", (peer, seq))


def rewind(db: Database, peer: str, from_seq: int) -> int:
    """Mark the peer's events from ``from_seq`` on undelivered (it says it has not got them)."""
    with db.tx() as conn:
        conn.execute("UPDATE federation_outbox SET delivered_at = NULL WHERE peer = ? AND seq >= ? "
                     "AND delivered_at IS NOT NULL", (peer, from_seq))
        return int(conn.changes())


def outbox_rows(db: Database, peer: str | None = None) -> list[Row]:
    where, params = ("WHERE peer = ?", (peer,)) if peer else ("", ())
    return db.query(f"SELECT peer, seq, event_id, kind, created_at, delivered_at, attempts FROM federation_outbox "
                    f"{where} ORDER BY peer, seq", params)


def introductions_sent(db: Database, kind: int) -> set[tuple[str, str]]:
    """(receiver, member) of every introduction (messages of ``kind``) this node ever queued; the
    member is the ``member`` tag. The outbox keeps every event, so this never forgets one."""
    sent = set()
    for row in db.query("SELECT peer, event FROM federation_outbox WHERE kind = ?", (kind,)):
        member = Event.model_validate_json(row["event"]).tag("member")
        if member is not None:
            sent.add((str(row["peer"]), member))
    return sent


# -- inbox ------------------------------------------------------------------------------------
def introduction_from(db: Database, sender: str, kind: int, member: str) -> Event | None:
    """The newest introduction (a message of ``kind``) ``sender`` made to this node of ``member``."""
    for row in db.query("SELECT event FROM federation_inbox WHERE sender = ? AND kind = ? ORDER BY seq DESC",
                        (sender, kind)):
        event = Event.model_validate_json(row["event"])
        if event.tag("member") == member:
            return event
    return None

Verdict = Literal["accepted", "duplicate", "replay", "reorder"]


def accept_inbox(db: Database, sender: str, seq: int, event: Event, now: float) -> tuple[Verdict, int]:
    """Record a message if it is the sender's next; returns (verdict, the last accepted seq before it).

    ``duplicate``: this exact event was accepted before (a retry after a lost answer);
    ``replay``: an older number with another event; ``reorder``: a gap before it.
    """
    with db.tx() as conn:
        row = conn.execute("SELECT coalesce(max(seq), 0) AS n FROM federation_inbox WHERE sender = ?",
                           (sender,)).fetchone()
        last = int(row["n"]) if row else 0
        if seq <= last:
            same = conn.execute("SELECT event_id FROM federation_inbox WHERE sender = ? AND seq = ?",
                                (sender, seq)).fetchone()
            return ("duplicate" if same and same["event_id"] == event.id else "replay"), last
        if seq > last + 1:
            return "reorder", last
        conn.execute("INSERT INTO federation_inbox(sender, seq, event_id, kind, event, received_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (sender, seq, event.id, event.kind, event.model_dump_json(), now))
        return "accepted", last


def unhandled(db: Database, kinds: list[int], max_attempts: int, limit: int = 100) -> list[Row]:
    """Accepted messages of ``kinds`` not handled yet, in arrival order (per sender: in seq order)."""
    if not kinds:
        return []
    marks = ",".join("?" * len(kinds))
    return db.query(f"SELECT sender, seq, kind, event FROM federation_inbox WHERE handled_at IS NULL "
                    f"AND kind IN ({marks}) AND attempts < ? ORDER BY sender, seq LIMIT ?",
                    (*kinds, max_attempts, limit))


def waiting_before(db: Database, sender: str, seq: int, kinds: list[int], max_attempts: int) -> bool:
    """True when an earlier message of the sender, of a handled kind, still waits for its handler."""
    if not kinds:
        return False
    marks = ",".join("?" * len(kinds))
    return db.one(f"SELECT 1 AS x FROM federation_inbox WHERE sender = ? AND seq < ? AND handled_at IS NULL "
                  f"AND kind IN ({marks}) AND attempts < ? LIMIT 1", (sender, seq, *kinds, max_attempts)) is not None


def mark_handled(db: Database, sender: str, seq: int, now: float, error: str | None = None) -> None:
    """Record a handler's run: ``handled_at`` on success, the error (and one more attempt) otherwise."""
    with db.tx() as conn:
        if error is None:
            conn.execute("UPDATE federation_inbox SET handled_at = ?, attempts = attempts + 1, error = NULL "
                         "WHERE sender = ? AND seq = ?", (now, sender, seq))
        else:
            conn.execute("UPDATE federation_inbox SET attempts = attempts + 1, error = ? WHERE sender = ? AND seq = ?",
                         (error[:500], sender, seq))


def list_inbox(db: Database, sender: str | None = None) -> list[Row]:
    where, params = ("WHERE sender = ?", (sender,)) if sender else ("", ())
    return db.query(f"SELECT sender, seq, event_id, kind, event, received_at, handled_at, attempts, error "
                    f"FROM federation_inbox {where} ORDER BY sender, seq", params)


# -- incidents --------------------------------------------------------------------------------
def record_incident(db: Database, peer: str | None, kind: str, detail: str, now: float) -> None:
    """Record a refused request; a repeat within `COALESCE_S` adds to the last one's count."""
    with db.tx() as conn:
        conn.execute("UPDATE federation_incidents SET count = count + 1, last_at = ? WHERE id = ("
                     "SELECT id FROM federation_incidents WHERE peer IS ? AND kind = ? AND detail = ? AND last_at > ? "
                     "ORDER BY id DESC LIMIT 1)", (now, peer, kind, detail[:500], now - COALESCE_S))
        if conn.changes():
            return
        conn.execute("INSERT INTO federation_incidents(peer, kind, detail, at, last_at) VALUES (?, ?, ?, ?, ?)",
                     (peer, kind, detail[:500], now, now))
        conn.execute("DELETE FROM federation_incidents WHERE id <= (SELECT max(id) FROM federation_incidents) - ?",
                     (MAX_INCIDENTS,))


def list_incidents(db: Database, limit: int = 100) -> list[Row]:
    return db.query("SELECT id, peer, kind, detail, at, last_at, count FROM federation_incidents "
                    "ORDER BY id DESC LIMIT ?", (limit,))


def incident_counts(db: Database) -> dict[str, int]:
    return {r["kind"]: int(r["n"]) for r in
            db.query("SELECT kind, sum(count) AS n FROM federation_incidents GROUP BY kind")}


# -- this node ----------------------------------------------------------------------------------
def get_self(db: Database) -> Row:
    row = db.one("SELECT url, pid, started_at, heartbeat_s, queen, term, claim FROM federation_self WHERE id = 1")
    assert row is not None, "migration 17 inserts the row"
    return {**row, "claim": json.loads(row["claim"]) if row["claim"] else None}


def serving(db: Database) -> bool:
    """Whether this node's ``colony up`` is running: its federation loop recorded a pid that is alive."""
    pid = get_self(db)["pid"]
    return bool(pid) and pid_alive(int(pid))


def set_self(db: Database, *, url: str, pid: int, started_at: float, heartbeat_s: float) -> None:
    with db.tx() as conn:
        conn.execute("UPDATE federation_self SET url = ?, pid = ?, started_at = ?, heartbeat_s = ? WHERE id = 1",
                     (url, pid, started_at, heartbeat_s))


def adopt_role(db: Database, queen: str, term: int, claim: Event) -> bool:
    """Follow ``queen`` for ``term`` if the queen rule accepts it over the stored role (one transaction)."""
    with db.tx() as conn:
        row = conn.execute("SELECT queen, term FROM federation_self WHERE id = 1").fetchone()
        current = Role(row["queen"], int(row["term"])) if row else Role()
        if not accepts(current, queen, term):
            return False
        conn.execute("UPDATE federation_self SET queen = ?, term = ?, claim = ? WHERE id = 1",
                     (queen, term, claim.model_dump_json()))
        return True


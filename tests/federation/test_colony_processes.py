"""Three `colony up` processes on loopback form a colony, elect a queen, deliver queued messages to a
stopped peer in order and exactly once, survive the queen's death, and take her back as a member."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fed_helpers import HEARTBEAT_S, NodeProc, agreed, wait_for

from colony.config import Settings
from colony.federation import NOTE_KIND, _store, send
from colony.node import Node
from colony.server.run import free_port
from colony.store import open_database


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[NodeProc]]:
    nodes = [NodeProc(name, tmp_path) for name in ("n1", "n2", "n3")]
    try:
        for n in nodes:
            # This test makes b and c members by a mutual add: a's introduction must not do it first
            # (introductions have their own test, test_mesh_processes.py).
            n.env["COLONY_FEDERATION_ACCEPT_INTRODUCTIONS"] = "false"
            n.start()
        for n in nodes:
            n.wait_ready()
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def incidents_of(n: NodeProc) -> list[tuple[str | None, str]]:
    db = open_database(n.home / "colony.db")
    try:
        return [(r["peer"], r["kind"]) for r in _store.list_incidents(db)]
    finally:
        db.close()


def settings_of(n: NodeProc) -> Settings:
    return Settings(home=n.home, key_passphrase_file=Path(n.env["COLONY_KEY_PASSPHRASE_FILE"]))


def test_three_processes_elect_deliver_to_a_stopped_peer_fail_over_and_take_the_old_queen_back(three: list[NodeProc]) -> None:
    a, b, c = three
    # Joining with invites: a issues one for each of b and c.
    for joiner in (b, c):
        token = a.api("POST", "/api/v1/peers/invites", json={}).json()["token"]
        r = joiner.api("POST", "/api/v1/peers", json={"url": a.url, "invite": token, "pubkey": a.pubkey})
        assert r.status_code == 200 and r.json()["joined"] is True, r.text
    # The tokens are spent, but b is trusted now: adding a again needs none.
    assert b.api("POST", "/api/v1/peers", json={"url": a.url, "invite": token}).json()["joined"] is True
    # A mutual add: b adds c first (c does not know b yet: pending), then c adds b (accepted).
    first = b.api("POST", "/api/v1/peers", json={"url": c.url}).json()
    assert first["joined"] is False and "not accepted" in first["message"]
    assert c.api("POST", "/api/v1/peers", json={"url": b.url}).json()["joined"] is True

    queen = min(n.pubkey for n in three)
    term = wait_for("all three live and following the lowest key", lambda: agreed(three, queen))
    assert term == 1
    by_key = {n.pubkey: n for n in three}

    # Two members that are not the queen: one is stopped while the other queues messages for it.
    x, y = sorted((n for n in three if n.pubkey != queen), key=lambda n: n.pubkey)
    check_outbox_survives_a_stopped_peer(x, y)
    assert wait_for("the colony to settle again", lambda: agreed(three, queen)) == term
    for n in three:
        view = n.peers()
        assert view["me"]["role"] == ("queen" if n.pubkey == queen else "member")
        assert {p["pubkey"] for p in view["peers"]} == {m.pubkey for m in three} - {n.pubkey}
        assert all(p["agents"] == ["colony"] for p in view["peers"])  # the announcements carry the agents' cards

    # The queen is killed: the lowest surviving key claims term 2 within a bound, and both survivors agree.
    old = by_key[queen]
    survivors = [n for n in three if n is not old]
    killed_at = time.monotonic()
    old.kill()
    successor = min(n.pubkey for n in survivors)
    new_term = wait_for("the survivors to agree on a new queen", lambda: agreed(survivors, successor), timeout=20)
    took = time.monotonic() - killed_at
    assert new_term == term + 1
    # 3 heartbeats to see her dead + 3 of a stable view + a tick and a delivery: about 7 heartbeats.
    assert took < 20 * HEARTBEAT_S, took
    for n in survivors:
        dead = next(p for p in n.peers()["peers"] if p["pubkey"] == queen)
        assert dead["live"] is False and dead["role"] == "member"

    # The old queen comes back (on another port: the old one may still be in TIME_WAIT): its first
    # heartbeats tell it the colony moved to a higher term, and it steps down.
    old.start(port=free_port("127.0.0.1"))
    old.wait_ready()

    def stepped_down() -> bool:
        view = old.peers()
        return view["term"] == new_term and view["queen"] == successor and view["me"]["role"] == "member"

    wait_for("the old queen to follow the new term", stepped_down)
    assert agreed(survivors, successor) == new_term
    # Nothing was refused along the way but the first half of the mutual add: until c added b, b's
    # announcements and its ledger syncs reached a c that did not know b (one row per refused route).
    assert incidents_of(a) == incidents_of(b) == []
    assert set(incidents_of(c)) == {(b.pubkey, "unknown_peer")}


def check_outbox_survives_a_stopped_peer(a: NodeProc, b: NodeProc) -> None:
    """Messages a queues for b while b is stopped (SIGSTOP) all arrive, in order, exactly once, after SIGCONT."""

    b.signal(signal.SIGSTOP)
    try:
        node = Node(settings_of(a))
        try:
            sent = [send(node, b.pubkey, NOTE_KIND, json.dumps({"n": i})) for i in range(5)]
        finally:
            node.db.close()
        time.sleep(4 * HEARTBEAT_S)  # a tries (and times out) while b is stopped
        with_a, with_b = open_database(a.home / "colony.db"), open_database(b.home / "colony.db")
        try:
            rows = [r for r in _store.outbox_rows(with_a, b.pubkey) if r["kind"] == NOTE_KIND]
            assert [r["delivered_at"] for r in rows] == [None] * 5
            assert [r for r in _store.list_inbox(with_b, a.pubkey) if r["kind"] == NOTE_KIND] == []
        finally:
            with_a.close()
            with_b.close()
    finally:
        b.signal(signal.SIGCONT)

    def delivered() -> list[dict[str, object]] | None:
        db = open_database(b.home / "colony.db")
        try:
            got = _store.list_inbox(db, a.pubkey)
        finally:
            db.close()
        notes = [r for r in got if r["kind"] == NOTE_KIND]
        return got if len(notes) == 5 else None

    inbox = wait_for("b to receive the five notes", delivered, timeout=30)
    notes = [r for r in inbox if r["kind"] == NOTE_KIND]
    assert [json.loads(json.loads(r["event"])["content"])["n"] for r in notes] == [0, 1, 2, 3, 4]
    assert [r["event_id"] for r in notes] == [e.id for e in sent]
    assert [r["seq"] for r in inbox] == list(range(1, len(inbox) + 1))  # every message from a, once, in order
    db = open_database(a.home / "colony.db")
    try:
        assert all(r["delivered_at"] is not None for r in _store.outbox_rows(db, b.pubkey))
    finally:
        db.close()


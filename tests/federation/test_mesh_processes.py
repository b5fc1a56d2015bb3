"""A colony is a mesh, not a star: three `colony up` processes on loopback. The queen admits two
children with invites; she introduces them to each other, they verify each other and trust each
other (``colony peers list --json`` says so, and who introduced whom), a message from one child
reaches the other directly, and when the queen is killed (SIGKILL) the two children — who knew each
other only through her — agree on a new queen within a bound."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fed_helpers import HEARTBEAT_S, NodeProc, agreed, settings_of, wait_for

from colony.federation import NOTE_KIND, _store, send
from colony.node import Node
from colony.store import open_database


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[NodeProc]]:
    nodes = [NodeProc(name, tmp_path) for name in ("n1", "n2", "n3")]
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            n.wait_ready(timeout=60)
        yield nodes
    finally:
        for n in nodes:
            n.stop()


def test_the_queens_children_meet_through_her_talk_directly_and_elect_a_new_queen_when_she_dies(
        three: list[NodeProc]) -> None:
    # The lowest key is the queen by the rule (it claims the first term as soon as it has a member),
    # so she is the node the other two join with her invites.
    queen, *children = sorted(three, key=lambda n: n.pubkey)
    for child in children:
        token = queen.api("POST", "/api/v1/peers/invites", json={}).json()["token"]
        r = child.api("POST", "/api/v1/peers", json={"url": queen.url, "invite": token, "pubkey": queen.pubkey})
        assert r.status_code == 200 and r.json()["joined"] is True, r.text
    x, y = children

    # 1. The children trust each other, introduced by the queen (and both still trust her directly).
    def meshed() -> bool:
        for me, other in ((x, y), (y, x)):
            listed = {p["pubkey"]: p for p in me.peers()["peers"]}
            sibling, parent = listed.get(other.pubkey), listed.get(queen.pubkey)
            if sibling is None or parent is None:
                return False
            if (sibling["status"], sibling["added_by"], sibling["introduced_by"], sibling["live"]) != (
                    "trusted", "introduced", queen.pubkey, True):
                return False
            if (parent["status"], parent["added_by"], parent["introduced_by"]) != ("trusted", "operator", None):
                return False
        return True

    wait_for("the two children to trust each other", meshed, timeout=60)
    listed = x.cli("peers", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {p["pubkey"]: p for p in json.loads(listed.stdout)["peers"]}
    assert set(rows) == {queen.pubkey, y.pubkey}
    assert (rows[y.pubkey]["introduced_by"], rows[y.pubkey]["removed_reason"]) == (queen.pubkey, None)
    assert rows[queen.pubkey]["introduced_by"] is None
    for n in three:  # the handshake refused nobody: no incident anywhere
        db = open_database(n.home / "colony.db")
        try:
            assert _store.list_incidents(db) == [], n.name
        finally:
            db.close()
    shown = x.cli("peers", "list")
    assert shown.returncode == 0 and f"introduced by {queen.name}" in shown.stdout, shown.stdout

    # 2. A message from one child reaches the other directly: signed by x, in y's inbox from x.
    node = Node(settings_of(x))
    try:
        note = send(node, y.pubkey, NOTE_KIND, json.dumps({"hello": "sibling"}))
    finally:
        node.db.close()

    def arrived() -> list[str] | None:
        db = open_database(y.home / "colony.db")
        try:
            ids = [r["event_id"] for r in _store.list_inbox(db, x.pubkey) if r["kind"] == NOTE_KIND]
        finally:
            db.close()
        return ids or None

    assert wait_for("x's note in y's inbox", arrived, timeout=30) == [note.id]
    db = open_database(x.home / "colony.db")
    try:
        assert [r["delivered_at"] is not None for r in _store.outbox_rows(db, y.pubkey) if r["kind"] == NOTE_KIND] \
            == [True]
    finally:
        db.close()

    # 3. The queen dies: the children, who know each other only through her introduction, agree on
    #    the lowest surviving key for the next term within a bound.
    term = wait_for("all three to follow the queen", lambda: agreed(three, queen.pubkey), timeout=60)
    killed_at = time.monotonic()
    queen.kill()
    successor = min(x.pubkey, y.pubkey)
    new_term = wait_for("the children to agree on a new queen", lambda: agreed(children, successor), timeout=30)
    took = time.monotonic() - killed_at
    assert new_term == term + 1
    # 3 heartbeats to see her dead + 3 of a stable view + a tick and a delivery: about 7 heartbeats.
    assert took < 20 * HEARTBEAT_S, took
    for n in children:
        view = n.peers()
        dead = next(p for p in view["peers"] if p["pubkey"] == queen.pubkey)
        assert dead["live"] is False and view["queen"] == successor

"""Joining: the node that asks to join sends its new member nothing until the answer is in.

`colony peers add` trusts the other node before asking it to join (so it can call back at once),
but its loop announces to every trusted member each heartbeat: an announcement sent before the
other side has accepted the join arrives from a key it does not know yet and is recorded as an
``unknown_peer`` incident. The member is held as ``joining`` until then.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from colony.config import Settings
from colony.errors import ColonyError
from colony.federation import _store, membership, outbox
from colony.federation.announce import Announcer
from colony.node import Node
from colony.testing import NodeServer


def test_a_member_being_joined_is_heard_but_sent_nothing(tmp_path: Path) -> None:
    node = Node(Settings(home=tmp_path / "b"))
    other = Node(Settings(home=tmp_path / "a"))
    try:
        hello = Announcer(other, "http://127.0.0.1:9").build()
        membership.trust(node.db, hello, "http://127.0.0.1:9", "operator", joining=True)
        assert _store.get_member(node.db, hello.pubkey)["status"] == "joining"  # type: ignore[index]
        assert membership.require_member(node.db, hello.pubkey)["pubkey"] == hello.pubkey  # its calls are accepted
        assert _store.list_members(node.db, "trusted") == []  # the loop announces to nobody
        with pytest.raises(ColonyError):
            outbox.send(node, hello.pubkey, 7301, "too early")  # and nothing is queued for it
        membership.trust(node.db, hello, "http://127.0.0.1:9", "operator")
        assert [m["pubkey"] for m in _store.list_members(node.db, "trusted")] == [hello.pubkey]
        assert outbox.send(node, hello.pubkey, 7301, "now").pubkey == node.keyring.node().public_hex
    finally:
        node.db.close()
        other.db.close()


def test_joining_with_an_invite_leaves_no_incident_on_either_side(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_FEDERATION_HEARTBEAT_S", "0.1")  # the joiner's loop announces every 0.1 s
    with NodeServer(Settings(home=tmp_path / "a")) as a, NodeServer(Settings(home=tmp_path / "b")) as b:
        token = httpx.post(f"{a.base_url}/api/v1/peers/invites", json={}, headers=a.auth).json()["token"]
        r = httpx.post(f"{b.base_url}/api/v1/peers", json={"url": a.base_url, "invite": token}, headers=b.auth,
                       timeout=30)
        assert r.status_code in (200, 201) and r.json()["joined"] is True, r.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # both see each other live: announcements flow both ways
            views = [httpx.get(f"{n.base_url}/api/v1/peers", headers=n.auth).json() for n in (a, b)]
            if all(v["peers"] and v["peers"][0]["live"] for v in views):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the two nodes never saw each other live: {views}")
        for n in (a, b):
            status = httpx.get(f"{n.base_url}/api/v1/peers/status", headers=n.auth).json()
            assert status["peers"][0]["status"] == "trusted"
            assert status["incidents"] == {}, status["incidents"]

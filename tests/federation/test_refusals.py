"""A node refuses what it must — forged, replayed, reordered, unknown and removed senders — records
each refusal in ``federation_incidents``, and hands accepted messages to their handlers in order."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fed_helpers import wait_for

from colony.config import Settings
from colony.federation import NOTE_KIND, _store, register_handler
from colony.federation.client import nip98_header
from colony.federation.messages import ANNOUNCE_KIND, message_event
from colony.identity.events import Event, sign_event
from colony.identity.keys import SchnorrKey
from colony.identity.nip98 import auth_header
from colony.node import Node
from colony.store import Database, open_database
from colony.testing import NodeServer


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[NodeServer, Database, str]]:
    monkeypatch.setenv("COLONY_FEDERATION_HEARTBEAT_S", "0.3")
    settings = Settings()
    with NodeServer(settings) as server:
        me = httpx.get(f"{server.base_url}/federation/v1/hello").json()["pubkey"]
        db = open_database(settings.db_path)
        try:
            yield server, db, me
        finally:
            db.close()


def post(server: NodeServer, route: str, body: bytes, key: SchnorrKey, *, header: str | None = None,
         created_at: int | None = None) -> httpx.Response:
    url = f"{server.base_url}/federation/v1{route}"
    auth = header or (auth_header(key, url, "POST", body, created_at=created_at) if created_at else
                      nip98_header(key, url, "POST", body))
    return httpx.post(url, content=body, headers={"authorization": auth, "content-type": "application/json"})


def raw(event: Event) -> bytes:
    return event.model_dump_json().encode()


def member(db: Database, key: SchnorrKey) -> None:
    """``key`` becomes a trusted member (as `colony peers add` records one), at an address nobody serves."""
    _store.upsert_member(db, key.public_hex, "http://127.0.0.1:9", name="peer", added_by="operator", now=time.time())


def incidents(db: Database) -> set[tuple[str | None, str]]:
    return {(r["peer"], r["kind"]) for r in _store.list_incidents(db)}


def test_forged_replayed_reordered_unknown_and_removed_messages_are_refused_and_recorded(
        served: tuple[NodeServer, Database, str]) -> None:
    server, db, me = served
    peer, stranger = SchnorrKey.generate(), SchnorrKey.generate()
    member(db, peer)
    k = peer.public_hex

    first = message_event(peer, me, 1, NOTE_KIND, "one")
    r = post(server, "/inbox", raw(first), peer)
    assert (r.status_code, r.json()) == (200, {"accepted": True, "duplicate": False, "seq": 1})
    assert incidents(db) == set()

    # The same event again under a fresh NIP-98 header: only its signer can send that (a retry after a
    # lost answer, or after a crash before it marked the message delivered), so it is answered as a
    # duplicate and is no incident; another event with a used number is a replay, refused and recorded.
    r = post(server, "/inbox", raw(first), peer)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert incidents(db) == set()
    r = post(server, "/inbox", raw(message_event(peer, me, 1, NOTE_KIND, "another one")), peer)
    assert (r.status_code, r.json()["code"]) == (409, "replay")
    assert (k, "replay") in incidents(db)

    # Forged: content changed after signing (id and signature no longer match).
    forged = first.model_copy(update={"content": "two", "tags": [["p", me], ["seq", "2"]]})
    r = post(server, "/inbox", raw(forged), peer)
    assert (r.status_code, r.json()["code"]) == (403, "bad_signature")
    assert (k, "bad_signature") in incidents(db)
    # … a NIP-98 header whose signature is broken: 401, recorded without trusting the key it claims.
    body = raw(message_event(peer, me, 2, NOTE_KIND, "two"))
    header = auth_header(peer, f"{server.base_url}/federation/v1/inbox", "POST", body)
    event = json.loads(base64.b64decode(header.split(" ", 1)[1]))
    event["sig"] = ("0" if event["sig"][0] != "0" else "1") + event["sig"][1:]
    bad = "Nostr " + base64.b64encode(json.dumps(event).encode()).decode()
    assert post(server, "/inbox", body, peer, header=bad).status_code == 401
    assert (None, "bad_signature") in incidents(db)
    # … a message signed by the member but sent under another key's header.
    assert post(server, "/inbox", body, stranger).status_code == 403

    # Reordered: number 3 before 2 is refused with the number expected; 2 then 3 are accepted.
    third = message_event(peer, me, 3, NOTE_KIND, "three")
    r = post(server, "/inbox", raw(third), peer)
    assert (r.status_code, r.json()["code"], r.json()["expected"]) == (409, "reorder", 2)
    assert (k, "reorder") in incidents(db)
    assert post(server, "/inbox", body, peer).json()["accepted"] is True
    assert post(server, "/inbox", raw(third), peer).json()["accepted"] is True
    # Addressed to another node: someone else's message replayed here.
    elsewhere = message_event(peer, "e" * 64, 4, NOTE_KIND, "not for you")
    assert post(server, "/inbox", raw(elsewhere), peer).status_code == 403

    # A replayed NIP-98 header, and a stale one.
    fourth = raw(message_event(peer, me, 4, NOTE_KIND, "four"))
    header = auth_header(peer, f"{server.base_url}/federation/v1/inbox", "POST", fourth)
    assert post(server, "/inbox", fourth, peer, header=header).status_code == 200
    r = post(server, "/inbox", fourth, peer, header=header)
    assert (r.status_code, r.json()["reason"]) == (401, "replayed")
    stale = raw(message_event(peer, me, 5, NOTE_KIND, "five"))
    r = post(server, "/inbox", stale, peer, created_at=int(time.time()) - 1000)
    assert (r.status_code, r.json()["reason"]) == (401, "stale")
    assert (k, "stale") in incidents(db)

    # Unknown: a key this node never trusted, on every member route and on join without an invite.
    s = stranger.public_hex
    r = post(server, "/inbox", raw(message_event(stranger, me, 1, NOTE_KIND, "hi")), stranger)
    assert (r.status_code, r.json()["code"]) == (403, "unknown_peer")
    hello = sign_event(stranger, ANNOUNCE_KIND, json.dumps({"url": "http://127.0.0.1:9"}))
    assert post(server, "/announce", raw(hello), stranger).status_code == 403
    join = json.dumps({"announcement": hello.model_dump(), "invite": "colony-invite-made-up"}).encode()
    assert post(server, "/join", join, stranger).status_code == 403
    assert (s, "unknown_peer") in incidents(db)

    # Removed: the operator removes the member; its next message is refused.
    r = httpx.delete(f"{server.base_url}/api/v1/peers/{k}", headers=server.auth)
    assert r.status_code == 200 and r.json()["status"] == "removed"
    r = post(server, "/inbox", stale, peer)
    assert (r.status_code, r.json()["code"]) == (403, "unknown_peer")
    assert any(i["peer"] == k and i["kind"] == "unknown_peer" and "removed" in i["detail"]
               for i in _store.list_incidents(db))

    # What was accepted: numbers 1-4 from the member, each once, in order; nothing from anyone else.
    inbox = _store.list_inbox(db)
    assert [(r["sender"], r["seq"], json.loads(r["event"])["content"]) for r in inbox] == [
        (k, 1, "one"), (k, 2, "two"), (k, 3, "three"), (k, 4, "four")]
    status = httpx.get(f"{server.base_url}/api/v1/peers/status", headers=server.auth).json()
    assert set(status["incidents"]) == {"unknown_peer", "bad_signature", "replay", "reorder", "stale"}


def test_the_schema_refuses_a_gap_in_the_numbers_whatever_the_caller_does(tmp_path: Path) -> None:
    db = open_database(tmp_path / "colony.db")
    try:
        key = SchnorrKey.generate()
        event = message_event(key, "f" * 64, 2, NOTE_KIND, "x")
        with pytest.raises(Exception, match="go up by one"), db.tx() as conn:
            conn.execute("INSERT INTO federation_inbox(sender, seq, event_id, kind, event, received_at) "
                         "VALUES (?, 2, ?, ?, ?, 0)", (key.public_hex, event.id, event.kind, event.model_dump_json()))
        token = "a" * 64
        _store.insert_invite(db, token, 1.0, 2.0)
        assert _store.use_invite(db, token, key.public_hex, 1.5) is True
        assert _store.use_invite(db, token, key.public_hex, 1.5) is False
        with pytest.raises(Exception, match="used once"), db.tx() as conn:
            conn.execute("UPDATE federation_invites SET used_at = NULL, used_by = NULL")
    finally:
        db.close()


def test_handlers_get_each_message_once_in_order_and_a_failed_one_is_retried(
        served: tuple[NodeServer, Database, str], tmp_path: Path) -> None:
    server, db, me = served
    peer = SchnorrKey.generate()
    member(db, peer)
    seen: list[str] = []
    failed = threading.Event()

    def handler(node: Node, event: Event) -> None:
        if event.content == "a" and not failed.is_set():
            failed.set()
            raise RuntimeError("not ready yet")
        seen.append(event.content)

    register_handler(7398, handler, replace=True)
    for seq, text in enumerate(["a", "b", "c"], start=1):
        assert post(server, "/inbox", raw(message_event(peer, me, seq, 7398, text)), peer).status_code == 200
    wait_for("the failed message to be retried", lambda: len(seen) == 3, timeout=10)
    assert seen == ["a", "b", "c"]  # b and c waited behind a's retry
    rows = _store.list_inbox(db, peer.public_hex)
    assert all(r["handled_at"] is not None for r in rows)
    assert [r["attempts"] for r in rows] == [2, 1, 1]

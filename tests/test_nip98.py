"""NIP-98 over HTTP: a node-to-node route runs only for a fresh, exact, correctly signed request.

The side-effecting route is the real one: ``POST /api/v1/identity/peers`` stores the caller's
signed agent card. Every refusal is a 401 with the failed check named, and the table it would
have written stays as it was — the dependency runs before the route, and a refused event does
not even use up its id in the replay cache.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from colony.config import Settings
from colony.errors import Nip98Error
from colony.identity import (
    Event,
    Identity,
    SchnorrKey,
    agent_card,
    auth_header,
    card_event,
    create_agent,
    node_identity,
    schnorr_verify,
    sign_event,
    verify_auth,
)
from colony.identity.nip98 import AUTH_KIND, sqlite_replay_guard
from colony.node import Node
from colony.server.app import create_app
from colony.server.turns import ApprovalBroker
from colony.store import open_database
from colony.testing import NodeServer

TOKEN = "t" * 43
BASE = "http://127.0.0.1"
PEERS = f"{BASE}/api/v1/identity/peers"
WHOAMI = f"{BASE}/api/v1/identity/whoami"
VECTORS = Path(__file__).parent / "data" / "vectors" / "nostr-nip-example-events.json"


class Api:
    def __init__(self, client: TestClient, node: Node, peer: Identity, peer_node: Identity) -> None:
        self.client, self.node, self.peer, self.peer_node = client, node, peer, peer_node

    def card_body(self) -> bytes:
        card = agent_card(self.peer, self.peer_node, "http://peer.example")
        return json.dumps({"card_event": card_event(self.peer, card).model_dump()}).encode()

    def peer_rows(self) -> list[dict[str, Any]]:
        return self.node.db.query("SELECT public_hex, last_seen FROM identity_peers")

    def seen(self, event_id: str) -> bool:
        return self.node.db.scalar("SELECT 1 FROM nip98_seen WHERE event_id = ?", (event_id,)) is not None

    def introduce(self, header: str | None, body: bytes) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if header is not None:
            headers["Authorization"] = header
        return self.client.post("/api/v1/identity/peers", content=body, headers=headers)


def _app(node: Node) -> Any:
    broker = ApprovalBroker()
    return create_app(node, broker, token=TOKEN, connect_model=False)


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[Api]:
    # The peer is an agent of another node (its own data directory and keys).
    other = Node(settings.model_copy(update={"home": tmp_path / "other-home"}))
    peer = create_agent(other, "scout", skills=["search"])
    node = Node(settings)
    with TestClient(_app(node), base_url=BASE) as client:
        yield Api(client, node, peer, node_identity(other))
    other.db.close()


def header_for(event: Event) -> str:
    return "Nostr " + base64.b64encode(event.model_dump_json().encode()).decode()


def auth_event(key: SchnorrKey, url: str, method: str, body: bytes | None, **changes: Any) -> Event:
    tags = [["u", url], ["method", method]]
    if body is not None:
        tags.append(["payload", hashlib.sha256(body).hexdigest()])
    return sign_event(key, changes.pop("kind", AUTH_KIND), "", tags, changes.pop("created_at", None))


def refused(r: httpx.Response, reason: str) -> None:
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["code"] == "unauthorized" and body["reason"] == reason and body["message"]


def test_a_signed_request_is_accepted_and_acts_once(api: Api) -> None:
    body = api.card_body()
    header = auth_header(api.peer.schnorr_key, PEERS, "POST", body)
    r = api.introduce(header, body)
    assert r.status_code == 201, r.text
    assert r.json()["peer"]["pubkey"] == api.peer.public_hex and r.json()["updated"] is True
    assert [row["public_hex"] for row in api.peer_rows()] == [api.peer.public_hex]
    listed = api.client.get("/api/v1/identity/peers", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert listed["peers"][0]["card"]["colony"]["skills"] == ["search"]
    who = api.client.get("/api/v1/identity/whoami",
                         headers={"Authorization": auth_header(api.peer.schnorr_key, WHOAMI, "GET")})
    assert who.status_code == 200 and who.json() == {"pubkey": api.peer.public_hex, "npub": api.peer.npub,
                                                     "peer": "scout"}


def test_a_replayed_event_is_refused_and_does_nothing_even_after_a_restart(api: Api, settings: Settings) -> None:
    body = api.card_body()
    header = auth_header(api.peer.schnorr_key, PEERS, "POST", body)
    assert api.introduce(header, body).status_code == 201
    api.node.db.execute("DELETE FROM identity_peers")  # so that acting again would show
    refused(api.introduce(header, body), "replayed")
    assert api.peer_rows() == []
    # A restarted node (a new process on the same database) still remembers the id.
    restarted = Node(settings)
    with TestClient(_app(restarted), base_url=BASE) as client:
        again = Api(client, restarted, api.peer, api.peer_node)
        refused(again.introduce(header, body), "replayed")
    assert api.peer_rows() == []


@pytest.mark.parametrize(("case", "reason"), [
    ("stale", "stale"), ("future", "stale"), ("other url", "url"), ("query added", "url"), ("other host", "url"),
    ("method", "method"), ("body hash", "payload"), ("no payload tag", "payload"), ("bad signature", "signature"),
    ("id not matching its fields", "signature"), ("kind", "kind"), ("no header", "missing"),
    ("bearer instead", "missing"), ("not base64", "malformed"), ("extra field", "malformed"),
])
def test_each_bad_header_is_refused_with_401_and_nothing_is_done(api: Api, case: str, reason: str) -> None:
    key, body = api.peer.schnorr_key, api.card_body()
    now = int(time.time())
    event: Event | None = None
    header: str | None = None
    if case in ("stale", "future"):
        event = auth_event(key, PEERS, "POST", body, created_at=now + (-90 if case == "stale" else 90))
    elif case in ("other url", "query added", "other host"):
        url = {"other url": f"{BASE}/api/v1/identity/whoami", "query added": PEERS + "?x=1",
               "other host": "http://evil.example/api/v1/identity/peers"}[case]
        event = auth_event(key, url, "POST", body)
    elif case == "method":
        event = auth_event(key, PEERS, "PUT", body)
    elif case == "body hash":
        event = auth_event(key, PEERS, "POST", body + b" ")
    elif case == "no payload tag":
        event = auth_event(key, PEERS, "POST", None)
    elif case == "bad signature":
        good = auth_event(key, PEERS, "POST", body)
        event = good.model_copy(update={"sig": good.sig[:-2] + ("00" if good.sig[-2:] != "00" else "01")})
    elif case == "id not matching its fields":
        # Signed for whoami, then its 'u' tag rewritten: the signature still verifies over the stated
        # id — exactly what a verifier that trusts the id field would accept.
        good = auth_event(key, WHOAMI, "POST", body)
        event = good.model_copy(update={"tags": [["u", PEERS], *good.tags[1:]]})
        assert schnorr_verify(event.pubkey, bytes.fromhex(event.id), bytes.fromhex(event.sig))
    elif case == "kind":
        event = auth_event(key, PEERS, "POST", body, kind=1)
    elif case == "bearer instead":
        header = f"Bearer {TOKEN}"  # the node token is not a peer's identity
    elif case == "not base64":
        header = "Nostr not*base64!"
    elif case == "extra field":
        good = auth_event(key, PEERS, "POST", body).model_dump()
        header = "Nostr " + base64.b64encode(json.dumps({**good, "extra": 1}).encode()).decode()
    if event is not None:
        header = header_for(event)
    refused(api.introduce(header, body), reason)
    assert api.peer_rows() == []
    if event is not None:
        assert not api.seen(event.id)  # a refused event does not use up its id
    # The same card with a correct header is then accepted: the refusals left nothing in the way.
    assert api.introduce(auth_header(key, PEERS, "POST", body), body).status_code == 201


def test_a_card_can_only_be_introduced_by_its_own_key(api: Api) -> None:
    body = api.card_body()
    someone = SchnorrKey.generate()
    r = api.introduce(auth_header(someone, PEERS, "POST", body), body)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert api.peer_rows() == []
    forged = json.loads(body)
    forged["card_event"]["content"] = forged["card_event"]["content"].replace("search", "anything")
    tampered = json.dumps(forged).encode()
    r = api.introduce(auth_header(api.peer.schnorr_key, PEERS, "POST", tampered), tampered)
    assert r.status_code == 422 and "does not verify" in r.json()["message"]
    assert api.peer_rows() == []


def test_verify_auth_checks_get_requests_and_the_official_example() -> None:
    key = SchnorrKey.generate()
    url = "https://node.example/api/v1/identity/whoami"
    event = verify_auth(auth_header(key, url, "get"), url=url, method="GET")
    assert event.pubkey == key.public_hex and event.tag("payload") is None
    with pytest.raises(Nip98Error) as info:  # a payload tag on a GET must match the (empty) body
        verify_auth(header_for(auth_event(key, url, "GET", b"x")), url=url, method="GET")
    assert info.value.reason == "payload"
    # NIP-98's own example event: its id does not match its fields (the vector file says so).
    [example] = [e for e in json.loads(VECTORS.read_text()) if e["source"] == "NIP-98"]
    assert example["id_matches_fields"] is False
    ev = Event.model_validate(example["event"])
    with pytest.raises(Nip98Error) as info:
        verify_auth(header_for(ev), url=ev.tag("u") or "", method="GET", now=ev.created_at)
    assert info.value.reason == "signature"
    with pytest.raises(Nip98Error) as info:
        verify_auth("Nostr " + "A" * 9000, url=url, method="GET")
    assert info.value.reason == "malformed"


def test_the_replay_cache_forgets_ids_once_the_window_has_passed(settings: Settings) -> None:
    db = open_database(settings.db_path)
    try:
        clock = [1_000_000.0]
        guard = sqlite_replay_guard(db, clock=lambda: clock[0])
        assert guard("a" * 64, "b" * 64, 1_000_061) is True
        assert guard("a" * 64, "b" * 64, 1_000_061) is False
        clock[0] += 62
        assert guard("c" * 64, "b" * 64, 1_000_123) is True  # purges the expired id on the way
        assert db.scalar("SELECT count(*) FROM nip98_seen") == 1
    finally:
        db.close()


def test_whoami_over_a_real_socket_and_behind_a_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    key = SchnorrKey.generate()
    with NodeServer(Settings()) as server:
        url = f"{server.base_url}/api/v1/identity/whoami"
        r = httpx.get(url, headers={"Authorization": auth_header(key, url, "GET")})
        assert r.status_code == 200 and r.json()["pubkey"] == key.public_hex
        r = httpx.get(url, headers={"Authorization": auth_header(key, "http://localhost/api/v1/identity/whoami", "GET")})
        assert r.status_code == 401 and r.json()["reason"] == "url"
    monkeypatch.setenv("COLONY_PUBLIC_URL", "https://colony.example.org/node")
    with NodeServer(Settings()) as server:
        local = f"{server.base_url}/api/v1/identity/whoami"
        public = "https://colony.example.org/node/api/v1/identity/whoami"
        assert httpx.get(local, headers={"Authorization": auth_header(key, public, "GET")}).status_code == 200
        r = httpx.get(local, headers={"Authorization": auth_header(key, local, "GET")})
        assert r.status_code == 401 and r.json()["reason"] == "url"


def test_two_identical_requests_in_one_second_each_get_their_own_event(tmp_path: Path) -> None:
    """An x402 settle retried at once after a lost answer: same URL, method, body and second. Each
    header must be a new event, or the receiver's replay cache refuses the retry (it did, before
    ``auth_header`` added a nonce)."""
    key = SchnorrKey.generate()
    url, body, now = "http://127.0.0.1:9/x402/settle", b'{"payload": 1}', int(time.time())
    db = open_database(tmp_path / "colony.db")
    try:
        guard = sqlite_replay_guard(db)
        first = verify_auth(auth_header(key, url, "POST", body, created_at=now), url=url, method="POST", body=body,
                            replay=guard, now=now)
        second = verify_auth(auth_header(key, url, "POST", body, created_at=now), url=url, method="POST", body=body,
                             replay=guard, now=now)
        assert first.id != second.id and first.created_at == second.created_at
    finally:
        db.close()

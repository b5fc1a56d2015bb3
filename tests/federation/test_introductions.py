"""Introductions: a node trusts a member introduced by one it trusts directly — only then, only one step,
never a removed or convicted key, never when its operator turned them off — and the two verify each
other's signed announcements before either trusts the other. Real SQLite, real signatures, nodes
served on loopback in this process; each rule is driven through the HTTP routes another node uses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import httpx
import pytest
from fed_helpers import wait_for

from colony.config import Settings
from colony.federation import _store, introduce, membership
from colony.federation.client import nip98_header
from colony.federation.messages import ANNOUNCE_KIND, INTRODUCE_KIND, Introduction, message_event
from colony.federation.replication import import_proof
from colony.identity.events import KINDS, Event, sign_event
from colony.identity.keys import SchnorrKey
from colony.ledger import EquivocationProof
from colony.ledger.wire import EntryBody
from colony.store import Database, open_database
from colony.store.migrations import MIGRATIONS, migrate, schema_version
from colony.testing import NodeServer

NOWHERE = "http://127.0.0.1:9"


# -- helpers --------------------------------------------------------------------------------------
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


def post(server: NodeServer, route: str, body: bytes, key: SchnorrKey) -> httpx.Response:
    url = f"{server.base_url}/federation/v1{route}"
    return httpx.post(url, content=body, headers={"authorization": nip98_header(key, url, "POST", body),
                                                  "content-type": "application/json"})


def member(db: Database, key: SchnorrKey, added_by: str = "operator", introduced_by: str | None = None) -> None:
    _store.upsert_member(db, key.public_hex, NOWHERE, name="peer", added_by=added_by, now=time.time(),
                         introduced_by=introduced_by)


def introduction(by: SchnorrKey, to: str, seq: int, named: str, url: str = NOWHERE) -> Event:
    content = Introduction(pubkey=named, url=url, name="newcomer").model_dump_json()
    return message_event(by, to, seq, INTRODUCE_KIND, content, [["member", named]])


def announcement(key: SchnorrKey, url: str = NOWHERE) -> Event:
    return sign_event(key, ANNOUNCE_KIND, json.dumps({"url": url, "name": "x"}))


def join(server: NodeServer, caller: SchnorrKey, evidence: Event | None) -> httpx.Response:
    body = {"announcement": announcement(caller).model_dump(), "invite": None}
    if evidence is not None:
        body["introduction"] = evidence.model_dump()
    return post(server, "/join", json.dumps(body).encode(), caller)


def proof_against(signer: SchnorrKey) -> EquivocationProof:
    """Two ledger entries for one (account, seq), both signed by ``signer``: it equivocated."""
    def entry(payee: str, at: int) -> Event:
        body = EntryBody(account="cd" * 32, seq=2, prev="ab" * 32, kind="debit", amount=5, balance=5,
                         counterparty=payee, ref="ef" * 32, nonce="01" * 32)
        return sign_event(signer, KINDS["ledger_entry"], body.content(), created_at=at)

    return EquivocationProof(first=entry("11" * 32, 1_700_000_000), second=entry("22" * 32, 1_700_000_001))


def row(db: Database, key: SchnorrKey | str) -> dict[str, object] | None:
    found = _store.get_member(db, key if isinstance(key, str) else key.public_hex)
    return None if found is None else {k: found[k] for k in ("status", "added_by", "introduced_by", "url")}


# -- the migration --------------------------------------------------------------------------------
def test_migration_26_keeps_every_member_and_allows_introduced_ones_only_with_their_introducer(
        tmp_path: Path) -> None:
    db = Database(tmp_path / "old.db")
    try:
        assert migrate(db, [m for m in MIGRATIONS if m.version <= 24]) == 24
        a, b, c = "a" * 64, "b" * 64, "c" * 64
        with db.tx() as conn:
            for n, (key, status, added_by, reason) in enumerate(
                    [(a, "trusted", "operator", None), (b, "removed", "invite", "equivocated"),
                     (c, "joining", "spawn", None)], start=1):
                conn.execute("INSERT INTO federation_nodes(pubkey, url, name, status, added_by, added_at, joined, "
                             "last_seen, announced_at, last_announcement, vouches_queen, vouched_at, removed_reason) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (key, f"http://127.0.0.1:{8000 + n}", f"n{n}", status, added_by, 100.0 + n, n,
                              200.0 + n, 300 + n, '{"kind": 7300}', a if key != a else None,
                              400.0 + n if key != a else None, reason))
        before = db.query("SELECT * FROM federation_nodes ORDER BY joined")
        migrate(db)
        assert schema_version(db) >= 26
        after = db.query("SELECT * FROM federation_nodes ORDER BY joined")
        assert [{k: v for k, v in r.items() if k != "introduced_by"} for r in after] == before
        assert [r["introduced_by"] for r in after] == [None, None, None]

        d = "d" * 64
        _store.upsert_member(db, d, "http://127.0.0.1:8004", name="d", added_by="introduced", now=1.0,
                             status="joining", introduced_by=a)
        assert row(db, d) == {"status": "joining", "added_by": "introduced", "introduced_by": a,
                              "url": "http://127.0.0.1:8004"}
        with pytest.raises(apsw.ConstraintError):  # introduced, but by nobody
            _store.upsert_member(db, "e" * 64, NOWHERE, name="", added_by="introduced", now=1.0)
        with pytest.raises(apsw.ConstraintError):  # an introducer on a direct member
            _store.upsert_member(db, "f" * 64, NOWHERE, name="", added_by="operator", now=1.0, introduced_by=a)
        with pytest.raises(apsw.ConstraintError):
            _store.upsert_member(db, "f" * 64, NOWHERE, name="", added_by="gossip", now=1.0)
        # The operator's own act makes an introduced member direct: it has no introducer then.
        _store.upsert_member(db, d, "http://127.0.0.1:8004", name="d", added_by="operator", now=2.0)
        assert row(db, d) == {"status": "trusted", "added_by": "operator", "introduced_by": None,
                              "url": "http://127.0.0.1:8004"}
    finally:
        db.close()


# -- receiving an introduction ----------------------------------------------------------------------
def test_an_introduction_counts_only_from_a_direct_member_and_never_for_a_removed_or_convicted_key(
        served: tuple[NodeServer, Database, str]) -> None:
    server, db, me = served
    direct, introduced, stranger = SchnorrKey.generate(), SchnorrKey.generate(), SchnorrKey.generate()
    convicted_key = SchnorrKey.generate()
    newcomer, second, removed, liar = (SchnorrKey.generate().public_hex for _ in range(4))
    member(db, direct)
    member(db, introduced, "introduced", direct.public_hex)
    _store.upsert_member(db, removed, NOWHERE, name="gone", added_by="operator", now=time.time())
    membership.remove(db, removed)
    assert import_proof(db, proof_against(convicted_key))
    convicted = convicted_key.public_hex
    _store.upsert_member(db, liar, NOWHERE, name="liar", added_by="invite", now=time.time())
    assert membership.remove_equivocator(db, liar)

    # A direct member introduces a newcomer: it is held as joining, with its introducer.
    r = post(server, "/inbox", introduction(direct, me, 1, newcomer, "http://127.0.0.1:9/new").model_dump_json()
             .encode(), direct)
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    assert row(db, newcomer) == {"status": "joining", "added_by": "introduced", "introduced_by": direct.public_hex,
                                 "url": "http://127.0.0.1:9/new"}
    assert [m["pubkey"] for m in introduce.pending(db)] == [newcomer]

    # Refused, each changing nothing: a key this node removed (by hand, or as an equivocator), a key
    # it holds an equivocation proof against, this node itself, and a member introduced by another.
    for seq, named in enumerate((removed, liar, convicted, me, direct.public_hex), start=2):
        r = post(server, "/inbox", introduction(direct, me, seq, named).model_dump_json().encode(), direct)
        assert r.status_code == 200, r.text
    assert row(db, removed)["status"] == row(db, liar)["status"] == "removed"  # type: ignore[index]
    assert row(db, convicted) is None
    assert row(db, direct) == {"status": "trusted", "added_by": "operator", "introduced_by": None, "url": NOWHERE}
    # No transitive chains: a member this node knows only by introduction introduces nobody.
    r = post(server, "/inbox", introduction(introduced, me, 1, second).model_dump_json().encode(), introduced)
    assert r.status_code == 200, r.text
    assert row(db, second) is None
    # An unknown key cannot even deliver one (and that is recorded).
    r = post(server, "/inbox", introduction(stranger, me, 1, second).model_dump_json().encode(), stranger)
    assert (r.status_code, r.json()["code"]) == (403, "unknown_peer")
    assert row(db, second) is None
    # Every accepted message was handled once, none left to retry.
    assert all(m["handled_at"] is not None and m["error"] is None for m in _store.list_inbox(db))
    # The rules themselves, as the handshake re-checks them.
    assert membership.introduction_refusal(db, me, stranger.public_hex, second, allowed=True) is not None
    assert membership.introduction_refusal(db, me, direct.public_hex, second, allowed=True) is None
    assert "does not accept" in str(membership.introduction_refusal(db, me, direct.public_hex, second,
                                                                    allowed=False))


def test_a_join_carrying_an_introduction_is_admitted_on_the_introducers_word_and_only_then(
        served: tuple[NodeServer, Database, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, db, me = served
    direct, introduced = SchnorrKey.generate(), SchnorrKey.generate()
    member(db, direct)
    member(db, introduced, "introduced", direct.public_hex)
    x, y, z = SchnorrKey.generate(), SchnorrKey.generate(), SchnorrKey.generate()

    def kinds() -> set[tuple[str | None, str]]:
        return {(i["peer"], i["kind"]) for i in _store.list_incidents(db)}

    # Refused: evidence addressed to another node than the caller, evidence introducing another node,
    # evidence from an introduced member, forged evidence.
    r = join(server, x, introduction(direct, y.public_hex, 1, me))
    assert (r.status_code, r.json()["code"]) == (403, "unknown_peer") and "does not introduce" in r.json()["message"]
    r = join(server, x, introduction(direct, x.public_hex, 1, z.public_hex))
    assert r.status_code == 403
    r = join(server, x, introduction(introduced, x.public_hex, 1, me))
    assert r.status_code == 403 and "trusts directly" in r.json()["message"]
    good = introduction(direct, x.public_hex, 1, me)
    forged = good.model_copy(update={"content": good.content.replace("newcomer", "forged")})
    r = join(server, x, forged)
    assert (r.status_code, r.json()["code"]) == (403, "bad_signature")
    assert row(db, x) is None
    assert kinds() == {(x.public_hex, "bad_signature"), (x.public_hex, "unknown_peer")}

    # Admitted: the caller's own announcement verified, its introducer recorded, no invite spent.
    r = join(server, x, good)
    assert r.status_code == 200 and r.json()["accepted"] is True and r.json()["invited"] is False, r.text
    assert Event.model_validate(r.json()["announcement"]).pubkey == me
    assert row(db, x) == {"status": "trusted", "added_by": "introduced", "introduced_by": direct.public_hex,
                          "url": NOWHERE}
    # Both sides' handshakes cross: a join from a member already known (here trusted, or joining) is
    # accepted as it is, evidence or not, and it keeps its introducer.
    for evidence in (good, None):
        r = join(server, x, evidence)
        assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    pending = SchnorrKey.generate()  # introduced here, its handshake not done (nothing answers at its URL)
    r = post(server, "/inbox", introduction(direct, me, 1, pending.public_hex).model_dump_json().encode(), direct)
    assert r.status_code == 200 and row(db, pending)["status"] == "joining", r.text  # type: ignore[index]
    assert join(server, pending, None).status_code == 200
    assert row(db, pending) == {"status": "trusted", "added_by": "introduced", "introduced_by": direct.public_hex,
                                "url": NOWHERE}
    assert row(db, x)["introduced_by"] == direct.public_hex  # type: ignore[index]
    # Removing the introducer does not remove whom it introduced; a removed key is not let back in by one.
    assert httpx.delete(f"{server.base_url}/api/v1/peers/{direct.public_hex}", headers=server.auth).status_code == 200
    assert row(db, x)["status"] == "trusted"  # type: ignore[index]
    listed = {p["pubkey"]: p for p in httpx.get(f"{server.base_url}/api/v1/peers", headers=server.auth).json()["peers"]}
    assert (listed[x.public_hex]["added_by"], listed[x.public_hex]["introduced_by"]) == ("introduced",
                                                                                        direct.public_hex)
    assert (listed[direct.public_hex]["status"], listed[direct.public_hex]["removed_reason"]) == ("removed", None)
    r = join(server, y, introduction(direct, y.public_hex, 2, me))
    assert r.status_code == 403 and "trusts directly" in r.json()["message"]  # its introducer is removed now

    # A node whose operator turned introductions off refuses the same, valid evidence.
    monkeypatch.setenv("COLONY_FEDERATION_ACCEPT_INTRODUCTIONS", "false")
    off = Settings(home=tmp_path / "off")
    assert off.federation_accept_introductions is False
    with NodeServer(off) as other:
        its_key = httpx.get(f"{other.base_url}/federation/v1/hello").json()["pubkey"]
        other_db = open_database(off.db_path)
        try:
            member(other_db, direct)
            r = join(other, z, introduction(direct, z.public_hex, 1, its_key))
            assert r.status_code == 403 and "does not accept introductions" in r.json()["message"], r.text
            assert row(other_db, z) is None
            r = post(other, "/inbox", introduction(direct, its_key, 1, y.public_hex).model_dump_json().encode(), direct)
            assert r.status_code == 200 and row(other_db, y) is None
        finally:
            other_db.close()


# -- the whole flow, with three served nodes ---------------------------------------------------------
def _invite_into(host: NodeServer, joiner: NodeServer) -> None:
    token = httpx.post(f"{host.base_url}/api/v1/peers/invites", json={}, headers=host.auth).json()["token"]
    r = httpx.post(f"{joiner.base_url}/api/v1/peers", json={"url": host.base_url, "invite": token},
                   headers=joiner.auth, timeout=30)
    assert r.status_code == 200 and r.json()["joined"] is True, r.text


def _peers(n: NodeServer) -> dict[str, dict[str, object]]:
    return {p["pubkey"]: p for p in httpx.get(f"{n.base_url}/api/v1/peers", headers=n.auth, timeout=10).json()["peers"]}


def _key(n: NodeServer) -> str:
    return str(httpx.get(f"{n.base_url}/federation/v1/hello").json()["pubkey"])


def test_two_members_of_one_node_are_introduced_verify_each_other_and_trust_each_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_FEDERATION_HEARTBEAT_S", "0.3")
    with NodeServer(Settings(home=tmp_path / "a")) as a, NodeServer(Settings(home=tmp_path / "b")) as b, \
            NodeServer(Settings(home=tmp_path / "c")) as c:
        ka, kb, kc = _key(a), _key(b), _key(c)
        _invite_into(a, b)
        _invite_into(a, c)

        def meshed() -> bool:
            pb, pc = _peers(b), _peers(c)
            return all(p.get(k, {}).get("status") == "trusted" and p[k]["introduced_by"] == ka
                       and p[k]["added_by"] == "introduced" for p, k in ((pb, kc), (pc, kb)))

        wait_for("b and c to trust each other, introduced by a", meshed, timeout=30)
        for n in (a, b, c):  # the handshake left no refused request anywhere
            assert httpx.get(f"{n.base_url}/api/v1/peers/status", headers=n.auth).json()["incidents"] == {}
        db = open_database(a.settings.db_path)
        try:  # each pair introduced once, both ways, and nothing more is due
            sent = sorted((r["peer"], Event.model_validate_json(r["event"]).tag("member"))
                          for r in db.query("SELECT peer, event FROM federation_outbox WHERE kind = ?",
                                            (INTRODUCE_KIND,)))
            assert sent == sorted([(kb, kc), (kc, kb)])
            assert introduce.due(db) == []
        finally:
            db.close()
        assert _peers(a)[kb]["introduced_by"] is None  # a's own members are direct


def test_a_node_that_refuses_introductions_is_left_alone_and_its_peer_forgets_the_pending_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_FEDERATION_HEARTBEAT_S", "0.3")
    settings = Settings(home=tmp_path / "c", federation_accept_introductions=False)
    with NodeServer(Settings(home=tmp_path / "a")) as a, NodeServer(Settings(home=tmp_path / "b")) as b, \
            NodeServer(settings) as c:
        kb, kc = _key(b), _key(c)
        _invite_into(a, b)
        _invite_into(a, c)
        dbs = {n: open_database(n.settings.db_path) for n in (a, b, c)}
        try:
            def delivered() -> bool:
                rows = [r for r in _store.outbox_rows(dbs[a]) if r["kind"] == INTRODUCE_KIND]
                return len(rows) == 2 and all(r["delivered_at"] is not None for r in rows)

            wait_for("a's two introductions to be delivered", delivered, timeout=30)
            # b accepted its copy and tried the handshake; c refused the join, and b forgot c.
            wait_for("b to give up on c", lambda: _store.get_member(dbs[b], kc) is None, timeout=30)
            assert _store.get_member(dbs[c], kb) is None
            refused = [i for i in _store.list_incidents(dbs[c]) if i["peer"] == kb]
            assert refused and all(i["kind"] == "unknown_peer" for i in refused)
            assert "does not accept introductions" in refused[0]["detail"]
            assert set(_peers(a)) == {kb, kc}
        finally:
            for db in dbs.values():
                db.close()


# -- a member restarted at another URL -------------------------------------------------------------
def test_a_member_restarted_on_another_port_is_followed_and_its_stored_url_updated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_FEDERATION_HEARTBEAT_S", "0.3")
    b_settings = Settings(home=tmp_path / "b")
    with NodeServer(Settings(home=tmp_path / "a")) as a:
        with NodeServer(b_settings) as b:
            _invite_into(a, b)
            kb, old = _key(b), b.base_url
        assert _peers(a)[kb]["url"] == old
        with NodeServer(b_settings) as moved:
            assert moved.base_url != old
            wait_for("a to store b's new URL", lambda: _peers(a)[kb]["url"] == moved.base_url, timeout=30)
        db = open_database(a.settings.db_path)
        try:
            stored = _store.get_member(db, kb)
            assert stored is not None
            # Only the URL of b's own signed announcement is followed: not any other, and not one from
            # a stored announcement whose signature no longer verifies.
            assert membership.follow_url(db, kb, "http://127.0.0.1:1") is None
            tampered = dict(stored["last_announcement"])
            tampered["content"] = tampered["content"].replace(moved.base_url, "http://127.0.0.1:2")
            with db.tx() as conn:
                conn.execute("UPDATE federation_nodes SET last_announcement = ? WHERE pubkey = ?",
                             (json.dumps(tampered), kb))
            assert membership.follow_url(db, kb, "http://127.0.0.1:2") is None
            assert _store.get_member(db, kb)["url"] == moved.base_url  # type: ignore[index]
        finally:
            db.close()

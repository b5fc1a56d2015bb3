"""A member node convicted of equivocation loses its place here: two real nodes in process (own files,
keys and ledgers), a real proof — two ledger entries for one (account, seq), both signed by b's node
key — gossiped to a by a third node, and a's market with ada (b's agent) holding a live award.

On a: b is removed as ``equivocated``, b's next request is refused and recorded, ada's bids are refused
and her award is given up (the escrow back to the poster); a second pass changes nothing, and a proof
that does not verify changes nothing at all.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from test_remote_market import Pair, _award, pair  # noqa: F401 - pair: the fixture below uses it

from colony.federation import NOTE_KIND, _store, convict, membership, remote_market, remote_store
from colony.federation.client import nip98_header
from colony.federation.errors import FederationError, Refused
from colony.federation.messages import message_event
from colony.federation.peers import add_peer
from colony.federation.replicate import PROOF_KIND, handle_proof
from colony.identity.events import KINDS, Event, sign_event
from colony.identity.keys import SchnorrKey
from colony.ledger import EquivocationProof
from colony.ledger.wire import EntryBody
from colony.market.auction import commit_event
from colony.market.bidding import bid_salt
from colony.market.service import Market
from colony.store import Row
from colony.testing import NodeServer

HEX = "ab" * 32


@pytest.fixture
def p(pair: Pair) -> Pair:  # noqa: F811 - test_remote_market's fixture, asked for by name
    return pair


def _entry(key: SchnorrKey, payee: str, created_at: int) -> Event:
    """A ledger entry signed by ``key`` (a home node): #2 of one account, paying ``payee``."""
    body = EntryBody(account="cd" * 32, seq=2, prev=HEX, kind="debit", amount=5, balance=5, counterparty=payee,
                     ref="ef" * 32, nonce="01" * 32)
    return sign_event(key, KINDS["ledger_entry"], body.content(), created_at=created_at)


def _proof(signer: SchnorrKey) -> EquivocationProof:
    return EquivocationProof(first=_entry(signer, "11" * 32, 1_700_000_000),
                             second=_entry(signer, "22" * 32, 1_700_000_001))


def _gossip(p: Pair, proof: EquivocationProof, sender: SchnorrKey, seq: int = 1) -> None:
    """``proof`` arrives on a as a kind 7320 message from a third node, handled as the inbox would."""
    handle_proof(p.a, message_event(sender, p.a.keyring.node().public_hex, seq, PROOF_KIND, proof.model_dump_json()))


def _state(p: Pair) -> tuple[object, ...]:
    """Everything a conviction could change on a (members, incidents, awards, auctions, holds)."""
    db = p.a.db
    return (_store.list_members(db), _store.list_incidents(db), remote_store.live_awards(db),
            db.query("SELECT id, state FROM market_auctions ORDER BY id"),
            db.query("SELECT * FROM federation_market_awards ORDER BY auction"),
            Market(p.a).ledger.balance(Market(p.a).row(p.auction)["poster"]))


def _b(p: Pair) -> Row:
    row = _store.get_member(p.a.db, p.b.keyring.node().public_hex)
    assert row is not None
    return row


def test_a_proof_against_a_member_removes_it_refuses_its_agents_and_gives_up_their_awards(p: Pair) -> None:
    _award(p)  # ada (on b) won a's auction; the price is held in escrow on a
    b = p.b.keyring.node().public_hex
    ada = p.b.keyring.schnorr_key("ada")
    row = Market(p.a).row(p.auction)
    poster, price = row["poster"], row["price"]
    assert Market(p.a).ledger.balance(poster).held == price
    [award] = remote_store.live_awards(p.a.db)
    assert (award["auction"], award["winner"], award["node"]) == (p.auction, ada.public_hex, b)
    assert convict.convict(p.a) == convict.Conviction((), ())  # no proof yet: nothing happens
    assert _b(p)["status"] == "trusted"

    _gossip(p, _proof(p.b.keyring.node().schnorr_key), SchnorrKey.generate())

    # b is removed, and why is kept.
    member = _b(p)
    assert (member["status"], member["removed_reason"]) == ("removed", "equivocated")
    # ada's award is given up: the auction cancelled, the escrow released to the poster, the task auctioned again.
    market = Market(p.a)
    assert market.row(p.auction)["state"] == "cancelled"
    assert market.hold(row["escrow_hold"]).state == "released"  # type: ignore[union-attr]
    assert market.ledger.balance(poster).held == 0
    ended = remote_store.award_row(p.a.db, p.auction)
    assert ended is not None and ended["ended"] == "abandoned" and "equivocated" in ended["detail"]
    assert remote_store.live_awards(p.a.db) == []
    again = ended["reauction"]
    assert market.row(again)["state"] == "open"

    # b's next request is refused (the check every node-to-node route makes) and recorded.
    with pytest.raises(Refused) as refused:
        membership.require_member(p.a.db, b)
    assert refused.value.status == 403 and "equivocated" in str(refused.value)
    assert [(r["peer"], r["kind"]) for r in _store.list_incidents(p.a.db)] == [(b, "unknown_peer")]
    # ... and no invite brings it back.
    invite = membership.new_invite(p.a.db)
    with pytest.raises(Refused):
        membership.accept_join(p.a.db, p.a.keyring.node().public_hex, b, member_announcement(member), invite.token)
    assert _b(p)["status"] == "removed"

    # ada may not bid in the re-auction, whoever relays it: the reason is her node's conviction.
    bid = commit_event(ada, market.terms(again), 1000, bid_salt(ada, again), created_at=market.now())
    for caller in (b, p.a.keyring.node().public_hex[::-1]):
        with pytest.raises(Refused) as refused:
            remote_market.accept_bid(p.a, caller, bid, market=market)
        assert (refused.value.status, refused.value.reason) == (403, "equivocated")
        assert "equivocated" in str(refused.value)
    assert remote_store.bidder(p.a.db, again, ada.public_hex) is None

    # Again — the same proof gossiped twice, the market pass, convict itself — changes nothing.
    before = _state(p)
    _gossip(p, _proof(p.b.keyring.node().schnorr_key), SchnorrKey.generate())
    assert convict.convict(p.a) == convict.Conviction((), ())
    assert convict.step(market) == []
    assert _state(p) == before

    # Over HTTP, as b would send it: its next message is refused, and the refusal says why.
    with NodeServer(p.a.settings) as server:
        url = f"{server.base_url}/federation/v1/inbox"
        body = message_event(p.b.keyring.node().schnorr_key, p.a.keyring.node().public_hex, 1, NOTE_KIND,
                             "hello").model_dump_json().encode()
        r = httpx.post(url, content=body, headers={"content-type": "application/json", "authorization": nip98_header(
            p.b.keyring.node().schnorr_key, url, "POST", body)})
    assert (r.status_code, r.json()["code"]) == (403, "unknown_peer") and "equivocated" in r.json()["message"]
    [incident] = [i for i in _store.list_incidents(p.a.db) if i["peer"] == b and "removed you" in i["detail"]]
    assert incident["count"] == 2 and "equivocated" in incident["detail"]  # the direct call above, then this one

    # An operator adding it back (`colony peers add`) is told why, and nothing changes.
    with NodeServer(p.b.settings) as served_b, pytest.raises(FederationError) as err:
        asyncio.run(add_peer(p.a, served_b.base_url))
    assert err.value.reason == "conflict" and "two different histories" in str(err.value)
    assert (_b(p)["status"], _b(p)["removed_reason"]) == ("removed", "equivocated")


def member_announcement(member: Row) -> Event:
    return Event.model_validate(member["last_announcement"])


@pytest.mark.parametrize("forge", ["other_signer", "same_event", "tampered"])
def test_a_proof_that_does_not_verify_changes_nothing(p: Pair, forge: str) -> None:
    _award(p)
    b_key = p.b.keyring.node().schnorr_key
    real = _proof(b_key)
    bogus = {
        "other_signer": EquivocationProof(first=real.first, second=_entry(SchnorrKey.generate(), "22" * 32, 1)),
        "same_event": EquivocationProof(first=real.first, second=real.first),
        "tampered": EquivocationProof(first=real.first, second=real.second.model_copy(
            update={"content": real.second.content.replace('"amount":5', '"amount":6')})),
    }[forge]
    before = _state(p)
    gossiper = SchnorrKey.generate()
    _gossip(p, bogus, gossiper)
    after = _state(p)
    assert after[0] == before[0] and after[2:] == before[2:]  # b trusted, ada's award live, the escrow held
    assert _b(p)["status"] == "trusted" and _b(p)["removed_reason"] is None
    assert [(r["peer"], r["kind"]) for r in _store.list_incidents(p.a.db)] == [(gossiper.public_hex, "bad_signature")]
    assert convict.convict(p.a) == convict.Conviction((), ())
    assert remote_store.live_awards(p.a.db) != []

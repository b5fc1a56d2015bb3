"""Sealed-bid procurement auctions: commit–reveal rules, prices, forfeits and the public recheck.

Expected winners and prices are worked out by hand from the bids each test places; digests and
tie-breakers are recomputed here from their definitions with hashlib, not taken from the code.
"""

from __future__ import annotations

import hashlib
import random
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colony.identity.events import Event, event_id
from colony.identity.keys import SchnorrKey
from colony.market import (
    MARKET_KINDS,
    Announcement,
    AuctionOpenError,
    MarketEventError,
    Outcome,
    announcement_event,
    award_event,
    bid_digest,
    co_bidding,
    commit_event,
    read_announcement,
    recheck,
    reveal_event,
    settle,
    sign_market,
)
from colony.market.auction import Bid, Commitment, Opening, settle_bids
from colony.market.events import AwardBody

POSTER = SchnorrKey(bytes.fromhex("11" * 32))
ALICE = SchnorrKey(bytes.fromhex("22" * 32))
BOB = SchnorrKey(bytes.fromhex("33" * 32))
CAROL = SchnorrKey(bytes.fromhex("44" * 32))
SALT_A, SALT_B, SALT_C = "aa" * 32, "bb" * 32, "cc" * 32
# Phases: commits until 100, reveals in (100, 200], settle at 201.
COMMIT_AT, REVEAL_AT, NOW = 50, 150, 201


def terms(rule: str = "vickrey", reserve: int = 1_000, bond: int = 7, nonce: str = "01" * 32) -> Announcement:
    return Announcement.model_validate(dict(
        poster=POSTER.public_hex, goal="summarise a paper", skills=("summarise",), reserve=reserve,
        commit_deadline=100, reveal_deadline=200, bond=bond, verification="review", rule=rule, nonce=nonce))


def bid(key: SchnorrKey, ann: Announcement, amount: int, salt: str, *, commit_at: int = COMMIT_AT,
        reveal_at: int | None = REVEAL_AT) -> list[Event]:
    events = [commit_event(key, ann, amount, salt, created_at=commit_at)]
    if reveal_at is not None:
        events.append(reveal_event(key, ann, amount, salt, created_at=reveal_at))
    return events


def reasons(outcome: Outcome) -> set[tuple[str, str]]:
    return {(r.bidder, r.reason) for r in outcome.refused}


def three_bids(ann: Announcement) -> list[Event]:
    return bid(ALICE, ann, 300, SALT_A) + bid(BOB, ann, 500, SALT_B) + bid(CAROL, ann, 700, SALT_C)


def test_digest_is_sha256_of_fixed_width_fields() -> None:
    ann = terms()
    expected = hashlib.sha256(
        b"colony/market/bid/v1\x00" + bytes.fromhex(ann.auction_id) + bytes.fromhex(ALICE.public_hex)
        + (300).to_bytes(8, "big") + bytes.fromhex(SALT_A)).hexdigest()
    assert bid_digest(ann.auction_id, ALICE.public_hex, 300, SALT_A) == expected
    with pytest.raises(ValueError, match="32 bytes"):
        bid_digest(ann.auction_id, ALICE.public_hex, 300, "aa" * 31)
    with pytest.raises(ValueError, match="micro-credits"):
        bid_digest(ann.auction_id, ALICE.public_hex, 0, SALT_A)


def test_auction_id_binds_the_terms() -> None:
    assert terms().auction_id != terms(reserve=1_001).auction_id
    assert terms().auction_id != terms(nonce="02" * 32).auction_id
    assert terms().auction_id == terms().auction_id


def test_vickrey_happy_path_pays_second_lowest() -> None:
    ann = terms()
    out = settle(ann, three_bids(ann), now=NOW)
    assert (out.winner, out.price) == (ALICE.public_hex, 500)
    assert [(b.bidder, b.amount) for b in out.ranked] == [
        (ALICE.public_hex, 300), (BOB.public_hex, 500), (CAROL.public_hex, 700)]
    assert out.refused == () and out.forfeits == ()


def test_first_price_pays_own_bid() -> None:
    ann = terms(rule="first_price")
    out = settle(ann, three_bids(ann), now=NOW)
    assert (out.winner, out.price) == (ALICE.public_hex, 300)


def test_single_bid_is_paid_the_reserve() -> None:
    ann = terms(reserve=900)
    out = settle(ann, bid(BOB, ann, 400, SALT_B), now=NOW)
    assert (out.winner, out.price) == (BOB.public_hex, 900)


def test_no_valid_bid_means_no_winner() -> None:
    out = settle(terms(), [], now=NOW)
    assert (out.winner, out.price, out.ranked) == (None, None, ())


def test_settling_before_the_reveal_deadline_is_refused() -> None:
    ann = terms()
    with pytest.raises(AuctionOpenError):
        settle(ann, three_bids(ann), now=200)


def test_late_commit_is_refused() -> None:
    ann = terms()
    events = bid(ALICE, ann, 300, SALT_A, commit_at=101) + bid(BOB, ann, 500, SALT_B)
    out = settle(ann, events, now=NOW)
    assert (ALICE.public_hex, "late_commit") in reasons(out)
    assert (ALICE.public_hex, "no_commitment") in reasons(out)
    assert (out.winner, out.price) == (BOB.public_hex, 1_000)  # alone: paid the reserve


def test_backdated_commit_is_judged_by_its_arrival() -> None:
    ann = terms()
    events = bid(ALICE, ann, 300, SALT_A, commit_at=90) + bid(BOB, ann, 500, SALT_B)
    late_arrival = {events[0].id: 160}  # signed "90", but the auctioneer saw it during reveals
    out = settle(ann, events, now=NOW, received=late_arrival)
    assert (ALICE.public_hex, "late_commit") in reasons(out)
    assert out.winner == BOB.public_hex


def test_late_reveal_is_refused_and_the_bond_forfeited() -> None:
    ann = terms(bond=7)
    events = bid(ALICE, ann, 300, SALT_A, reveal_at=201) + bid(BOB, ann, 500, SALT_B)
    out = settle(ann, events, now=202)
    assert (ALICE.public_hex, "late_reveal") in reasons(out)
    assert [(f.bidder, f.bond) for f in out.forfeits] == [(ALICE.public_hex, 7)]
    assert out.winner == BOB.public_hex


def test_reveal_before_commit_deadline_is_refused() -> None:
    ann = terms()
    early = bid(ALICE, ann, 300, SALT_A, reveal_at=100)
    out = settle(ann, early + bid(BOB, ann, 500, SALT_B), now=NOW)
    assert (ALICE.public_hex, "early_reveal") in reasons(out)
    assert out.winner == BOB.public_hex
    # Opening again inside the reveal window counts.
    again = reveal_event(ALICE, ann, 300, SALT_A, created_at=150)
    out = settle(ann, [*early, again, *bid(BOB, ann, 500, SALT_B)], now=NOW)
    assert (out.winner, out.price) == (ALICE.public_hex, 500)


def test_future_dated_events_are_refused() -> None:
    ann = terms()
    out = settle(ann, bid(ALICE, ann, 300, SALT_A, reveal_at=NOW + 5), now=NOW)
    assert (ALICE.public_hex, "future") in reasons(out)


def test_wrong_salt_does_not_open_the_commitment() -> None:
    ann = terms(bond=7)
    events = [commit_event(ALICE, ann, 300, SALT_A, created_at=50),
              reveal_event(ALICE, ann, 300, SALT_B, created_at=150), *bid(BOB, ann, 500, SALT_B)]
    out = settle(ann, events, now=NOW)
    assert (ALICE.public_hex, "mismatch") in reasons(out)
    assert [f.bidder for f in out.forfeits] == [ALICE.public_hex]
    assert out.winner == BOB.public_hex


def test_forged_signatures_are_refused() -> None:
    ann = terms()
    commit, reveal = bid(ALICE, ann, 300, SALT_A)
    # The content changed after signing: the recomputed id no longer matches.
    tampered = commit.model_copy(update={"content": commit.content.replace('"v":1', '"v":1 ')})
    # A new id over new content, with Alice's old signature: the signature does not verify.
    content = reveal.content.replace('"amount":300', '"amount":200')
    forged = reveal.model_copy(update={"content": content, "id": event_id(
        reveal.pubkey, reveal.created_at, reveal.kind, reveal.tags, content)})
    out = settle(ann, [tampered, forged, *bid(BOB, ann, 500, SALT_B)], now=NOW)
    assert sorted(r.reason for r in out.refused) == ["bad_signature", "bad_signature"]
    assert out.winner == BOB.public_hex


def test_events_replayed_from_another_auction_are_refused() -> None:
    first, second = terms(nonce="01" * 32), terms(nonce="02" * 32)
    replayed = bid(ALICE, first, 300, SALT_A)
    out = settle(second, replayed + bid(BOB, second, 500, SALT_B), now=NOW)
    assert [r.reason for r in out.refused] == ["other_auction", "other_auction"]
    assert (out.winner, out.price) == (BOB.public_hex, 1_000)


def test_first_commitment_counts_and_later_ones_are_refused() -> None:
    ann = terms()
    events = [commit_event(ALICE, ann, 600, SALT_A, created_at=10),
              commit_event(ALICE, ann, 200, SALT_C, created_at=20),
              reveal_event(ALICE, ann, 200, SALT_C, created_at=150),  # opens the second: refused
              reveal_event(ALICE, ann, 600, SALT_A, created_at=160), *bid(BOB, ann, 500, SALT_B)]
    out = settle(ann, events, now=NOW)
    assert (ALICE.public_hex, "duplicate_commit") in reasons(out)
    assert (ALICE.public_hex, "mismatch") in reasons(out)
    assert [(b.bidder, b.amount) for b in out.ranked] == [(BOB.public_hex, 500), (ALICE.public_hex, 600)]
    assert (out.winner, out.price) == (BOB.public_hex, 600)


def test_a_second_identical_reveal_is_a_duplicate() -> None:
    ann = terms()
    events = [*bid(ALICE, ann, 300, SALT_A), reveal_event(ALICE, ann, 300, SALT_A, created_at=170)]
    out = settle(ann, events, now=NOW)
    assert [r.reason for r in out.refused] == ["duplicate_reveal"]
    assert len(out.ranked) == 1


def test_bid_above_reserve_is_refused_without_forfeit() -> None:
    ann = terms(reserve=600)
    out = settle(ann, bid(ALICE, ann, 601, SALT_A) + bid(BOB, ann, 600, SALT_B), now=NOW)
    assert (ALICE.public_hex, "above_reserve") in reasons(out)
    assert out.forfeits == ()
    assert (out.winner, out.price) == (BOB.public_hex, 600)


@pytest.mark.parametrize("amount", [0, -5])
def test_zero_and_negative_amounts_are_refused(amount: int) -> None:
    ann = terms()
    # A commitment can only be made to a valid amount; the reveal claims a bad one.
    commit = commit_event(ALICE, ann, 1, SALT_A, created_at=50)
    reveal = reveal_event(ALICE, ann, amount, SALT_A, created_at=150)
    out = settle(ann, [commit, reveal], now=NOW)
    assert [r.reason for r in out.refused] == ["bad_amount"]
    assert out.winner is None
    assert [f.bidder for f in out.forfeits] == [ALICE.public_hex]  # the commitment stays unopened


def test_poster_cannot_bid_in_its_own_auction() -> None:
    ann = terms()
    out = settle(ann, bid(POSTER, ann, 100, SALT_A) + bid(BOB, ann, 500, SALT_B), now=NOW)
    assert {r.reason for r in out.refused} == {"poster_bid"}
    assert (out.winner, out.price) == (BOB.public_hex, 1_000)


def test_shill_owned_by_the_poster_is_refused_when_owners_are_known() -> None:
    ann = terms()
    events = bid(CAROL, ann, 450, SALT_C) + bid(ALICE, ann, 300, SALT_A) + bid(BOB, ann, 900, SALT_B)
    # Without owner information Carol's bid sets Alice's price.
    assert settle(ann, events, now=NOW).price == 450
    owners = {CAROL.public_hex: "node-P", POSTER.public_hex: "node-P", ALICE.public_hex: "node-A"}
    out = settle(ann, events, now=NOW, owners=owners)
    assert (CAROL.public_hex, "poster_bid") in reasons(out)
    assert (out.winner, out.price) == (ALICE.public_hex, 900)


def _tie_hash(ann: Announcement, key: SchnorrKey) -> str:
    return hashlib.sha256(b"colony/market/tie/v1\x00" + bytes.fromhex(ann.auction_id)
                          + bytes.fromhex(key.public_hex)).hexdigest()


def test_ties_go_to_the_earlier_commit() -> None:
    ann = terms()
    out = settle(ann, bid(BOB, ann, 400, SALT_B, commit_at=40) + bid(ALICE, ann, 400, SALT_A, commit_at=60), now=NOW)
    assert (out.winner, out.price) == (BOB.public_hex, 400)


def test_ties_at_the_same_moment_are_deterministic_and_not_salt_steerable() -> None:
    ann = terms()
    expected = min((ALICE, BOB), key=lambda k: _tie_hash(ann, k)).public_hex
    for _ in range(5):  # whatever salts the two choose, the same bidder wins
        events = bid(ALICE, ann, 400, secrets.token_hex(32)) + bid(BOB, ann, 400, secrets.token_hex(32))
        out = settle(ann, events, now=NOW)
        assert out.winner == expected and out.price == 400
        assert settle(ann, list(reversed(events)), now=NOW) == out


def test_random_rule_picks_a_valid_bidder_and_pays_the_reserve() -> None:
    ann = terms(rule="random", reserve=800)
    out = settle(ann, three_bids(ann), now=NOW)
    assert out.winner in {ALICE.public_hex, BOB.public_hex, CAROL.public_hex}
    assert out.price == 800
    assert settle(ann, list(reversed(three_bids(ann))), now=NOW).winner == out.winner


def test_non_revealer_forfeits_its_bond() -> None:
    ann = terms(bond=25)
    events = bid(ALICE, ann, 300, SALT_A, reveal_at=None) + bid(BOB, ann, 500, SALT_B) + bid(CAROL, ann, 700, SALT_C)
    out = settle(ann, events, now=NOW)
    assert [(f.bidder, f.bond, f.commit_id) for f in out.forfeits] == [(ALICE.public_hex, 25, events[0].id)]
    assert (out.winner, out.price) == (BOB.public_hex, 700)


def test_other_kinds_among_bids_are_refused() -> None:
    ann = terms()
    ann_event = announcement_event(POSTER, ann, created_at=1)
    out = settle(ann, [ann_event], now=NOW)
    assert [r.reason for r in out.refused] == ["not_a_bid"]


def test_announcement_must_be_signed_by_its_poster() -> None:
    ann = terms()
    assert read_announcement(announcement_event(POSTER, ann, created_at=1)) == ann
    with pytest.raises(ValueError, match="poster"):
        announcement_event(ALICE, ann, created_at=1)
    with pytest.raises(MarketEventError) as err:
        read_announcement(sign_market(ALICE, ann, created_at=1))
    assert err.value.reason == "not_poster"


def test_non_canonical_content_is_refused() -> None:
    ann = terms()
    content = f'{{"auction":"{ann.auction_id}","digest":"{"ab" * 32}","bond_ref":"","v":1}}'  # keys unsorted
    kind = MARKET_KINDS["commit"]
    eid = event_id(ALICE.public_hex, 50, kind, [], content)
    ev = Event(id=eid, pubkey=ALICE.public_hex, created_at=50, kind=kind, tags=[], content=content,
               sig=ALICE.sign(bytes.fromhex(eid)).hex())
    out = settle(ann, [ev], now=NOW)
    assert [r.reason for r in out.refused] == ["malformed"]


# -- the public audit ----------------------------------------------------------------------------
def public_record(rule: str = "vickrey") -> tuple[Announcement, list[Event]]:
    ann = terms(rule=rule)
    bids = three_bids(ann) + bid(BOB, ann, 50, SALT_C, commit_at=120)  # a late commit, refused
    outcome = settle(ann, bids, now=NOW)
    award = award_event(POSTER, ann, outcome, created_at=NOW)
    return ann, [announcement_event(POSTER, ann, created_at=1), *bids, award]


def test_recheck_reproduces_the_award_from_events() -> None:
    _, events = public_record()
    audit = recheck(events)
    assert audit.ok and audit.problems == ()
    assert audit.outcome is not None and (audit.outcome.winner, audit.outcome.price) == (ALICE.public_hex, 500)


def test_recheck_uses_the_published_arrival_times() -> None:
    ann = terms()
    bids = bid(ALICE, ann, 300, SALT_A, commit_at=90) + bid(BOB, ann, 500, SALT_B)
    received = {bids[0].id: 160}
    outcome = settle(ann, bids, now=NOW, received=received)
    award = award_event(POSTER, ann, outcome, created_at=NOW, received=received)
    events = [announcement_event(POSTER, ann, created_at=1), *bids, award]
    audit = recheck(events)
    assert audit.ok and outcome.winner == BOB.public_hex


def test_recheck_detects_a_tampered_award() -> None:
    ann, events = public_record()
    honest = events[-1]
    lie = Outcome(ann.auction_id, "vickrey", ALICE.public_hex, 700,
                  (Bid(ALICE.public_hex, 300, "", "", 0), Bid(BOB.public_hex, 500, "", "", 0),
                   Bid(CAROL.public_hex, 700, "", "", 0)), (), ())
    forged = award_event(POSTER, ann, lie, created_at=NOW)  # signed by the poster, but wrong
    audit = recheck([*events[:-1], forged])
    assert not audit.ok and any(p.startswith("price") for p in audit.problems)
    # An edited award (price changed after signing) does not even verify.
    edited = honest.model_copy(update={"content": honest.content.replace('"price":500', '"price":700')})
    assert not recheck([*events[:-1], edited]).ok
    # A bid withheld from the published record changes the result: the award no longer matches.
    withheld = [e for e in events if e.pubkey != BOB.public_hex]
    assert not recheck(withheld).ok


def test_recheck_refuses_an_award_by_someone_else_or_too_early() -> None:
    _, events = public_record()
    body = AwardBody.model_validate_json(events[-1].content)
    assert not recheck([*events[:-1], sign_market(ALICE, body, created_at=NOW)]).ok
    early = sign_market(POSTER, body, created_at=200)
    assert recheck([*events[:-1], early]).problems == ("the award was made before the reveal deadline",)


def test_co_bidding_flags_cover_bidders() -> None:
    ring, honest = ("a" * 64, "b" * 64), ("c" * 64, "d" * 64)
    outcomes = []
    for i in range(12):
        ranked = (Bid(honest[0], 300 + 37 * i, "", "", 0), Bid(honest[1], 520 + 11 * i, "", "", 0),
                  Bid(ring[0], 1_000, "", "", 0), Bid(ring[1], 1_000 - (i % 2), "", "", 0))
        outcomes.append(Outcome("x", "vickrey", honest[0], 520, ranked, (), ()))
    flagged = co_bidding(outcomes, tolerance_bp=100, min_together=10, min_close_bp=5000)
    assert [(p.first, p.second, p.together, p.close) for p in flagged] == [(ring[0], ring[1], 12, 12)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=1_200), min_size=0, max_size=8),
       st.sampled_from(["vickrey", "first_price"]), st.randoms(use_true_random=False))
def test_price_is_the_order_statistic_whatever_the_order(amounts: list[int], rule: str, rng: random.Random) -> None:
    """Oracle: sort the amounts at or under the reserve; the lowest wins, Vickrey pays the next one."""
    ann = terms(rule=rule, reserve=1_000)
    keys = [f"{i + 1:064x}" for i in range(len(amounts))]
    commitments, openings = [], []
    for key, amount in zip(keys, amounts, strict=True):
        salt = f"{amount:064x}"
        commitments.append(Commitment(f"c{key}", key, ann.auction_id, bid_digest(ann.auction_id, key, amount, salt), 50))
        openings.append(Opening(f"r{key}", key, ann.auction_id, amount, salt, 150))
    rng.shuffle(commitments)
    rng.shuffle(openings)
    out = settle_bids(ann, commitments, openings, now=NOW)
    valid = sorted(a for a in amounts if a <= 1_000)
    if not valid:
        assert out.winner is None
        return
    assert out.winner is not None and amounts[keys.index(out.winner)] == valid[0]
    expected = valid[0] if rule == "first_price" else valid[1] if len(valid) > 1 else 1_000
    assert out.price == expected
    assert [b.amount for b in out.ranked] == valid

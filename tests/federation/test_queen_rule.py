"""The queen rule as pure functions over one node's view (`colony.federation.queen`)."""

from __future__ import annotations

import itertools

import pytest

from colony.federation.queen import Role, View, accepts, current_queen, decide, live_nodes

A, B, C = "a" * 64, "b" * 64, "c" * 64
HB = 1.0
NOW = 1000.0
NO_QUEEN = Role()


def view(me: str, seen: dict[str, float | None], role: Role = NO_QUEEN, stable_since: float = 0.0) -> View:
    return View(me=me, now=NOW, heartbeat_s=HB, last_seen=seen, role=role, stable_since=stable_since)


def test_live_means_heard_from_within_three_heartbeats_and_self_is_always_live() -> None:
    v = view(B, {A: NOW - 2.9, C: NOW - 3.0})
    assert live_nodes(v) == {A, B}
    assert live_nodes(view(B, {A: None, C: NOW - 100})) == {B}


def test_a_live_queen_is_followed_and_a_stale_one_is_not() -> None:
    assert current_queen(view(B, {A: NOW - 1}, Role(A, 3))) == A
    assert decide(view(B, {A: NOW - 1}, Role(A, 3))).action == "follow"
    assert current_queen(view(B, {A: NOW - 5}, Role(A, 3))) is None


def test_without_a_live_queen_the_lowest_live_key_claims_the_next_term_once_the_view_is_stable() -> None:
    # A (the old queen) is stale: B is the lowest live key and claims term 4.
    seen = {A: NOW - 10, C: NOW - 0.5}
    decision = decide(view(B, seen, Role(A, 3)))
    assert (decision.action, decision.term, decision.queen) == ("claim", 4, B)
    # C is live but not the lowest: it waits for B's claim.
    assert decide(view(C, {A: NOW - 10, B: NOW - 0.5}, Role(A, 3))).action == "wait"
    # B waits while its live set changed less than 3 heartbeats ago.
    assert decide(view(B, seen, Role(A, 3), stable_since=NOW - 2.5)).action == "wait"
    # A colony that never had a queen: the first claim is term 1.
    assert decide(view(A, {B: NOW, C: NOW})).term == 1


def test_a_node_without_members_claims_nothing() -> None:
    assert decide(view(A, {})).action == "alone"


@pytest.mark.parametrize(("current", "queen", "term", "accepted"), [
    (Role(), B, 1, True),             # no queen yet
    (Role(B, 2), C, 3, True),         # a higher term wins whatever the key
    (Role(B, 2), A, 2, True),         # same term, lower key
    (Role(B, 2), C, 2, False),        # same term, higher key
    (Role(B, 2), B, 2, False),        # the claim already followed
    (Role(B, 2), A, 1, False),        # an old term never comes back
])
def test_claims_are_accepted_by_term_then_lowest_key(current: Role, queen: str, term: int, accepted: bool) -> None:
    assert accepts(current, queen, term) is accepted


def test_an_old_queen_that_comes_back_steps_down_to_the_higher_term() -> None:
    mine = Role(A, 1)  # A was queen for term 1, was killed, B took term 2
    assert accepts(mine, B, 2)
    # and as long as it follows its own stale term, it never claims over a live queen it has not heard of:
    assert decide(view(A, {B: NOW - 0.1}, mine)).action == "follow"


def test_views_converge_whatever_order_the_claims_arrive_in() -> None:
    claims = [(C, 2), (B, 2), (A, 1), (B, 3), (C, 3)]
    finals = set()
    for order in itertools.permutations(claims):
        role = Role()
        for queen, term in order:
            if accepts(role, queen, term):
                role = Role(queen, term)
        finals.add(role)
    assert finals == {Role(B, 3)}


def test_a_node_that_knows_only_part_of_the_colony_follows_a_queen_a_live_member_vouches_for() -> None:
    # C knows only B (a spawned child and its parent); B heard from queen A 1 s ago and says so.
    role = Role(A, 1)
    vouched = View(me=C, now=NOW, heartbeat_s=HB, last_seen={B: NOW - 0.5}, role=role, vouches={B: (A, NOW - 1)})
    assert A in live_nodes(vouched) and current_queen(vouched) == A
    assert decide(vouched).action == "follow"
    # The vouch goes stale with B's own contact with A: C no longer counts A live, and B < C claims.
    stale = View(me=C, now=NOW, heartbeat_s=HB, last_seen={B: NOW - 0.5}, role=role, vouches={B: (A, NOW - 3)})
    assert current_queen(stale) is None and decide(stale).action == "wait"
    # A vouch from a member that is itself dead counts for nothing.
    dead_voucher = View(me=C, now=NOW, heartbeat_s=HB, last_seen={B: NOW - 9}, role=role, vouches={B: (A, NOW)})
    assert live_nodes(dead_voucher) == {C}


def test_the_federation_package_exports_what_it_names() -> None:
    import colony.federation as federation

    for name in federation.__all__:
        assert getattr(federation, name) is not None, name
    assert issubclass(federation.Refused, federation.FederationError)

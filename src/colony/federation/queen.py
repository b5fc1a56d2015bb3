"""The queen rule, as pure functions over one node's view of the colony.

The queen coordinates the colony (later: it partitions work and holds the canonical learned
weights). Any node can take the role over when the queen is gone, and every node decides from its
own *view* alone — the trusted members it knows, when it last heard from each, and the queen and
term it follows — so the rule needs no extra round of messages:

1. **Liveness.** A node is *live* in a view when its last authenticated announcement arrived less
   than ``3 × heartbeat`` ago. A node is always live in its own view. A queen is also live when a
   live member *vouches* for her: its announcement says it heard from her directly less than
   ``3 × heartbeat`` ago (vouches are never relayed further, so two nodes cannot keep a dead queen
   alive by vouching for each other). A node that knows only part of the colony — a spawned child
   that knows only its parent — thereby follows a queen it has no link to.
2. **Terms.** The queen holds a *term*, a number that only goes up. A claim is a signed event
   (kind 7302) naming its term; the claimer is the queen of that term.
3. **Taking over.** When a node sees no live queen (the queen's announcements are stale, or there
   never was one), the live node with the lowest public key in its view claims
   ``term = highest term seen + 1`` and sends the claim to every member. It waits until its live
   set has been unchanged for ``3 × heartbeat`` first, so a colony that is still forming (or a view
   that has just lost the queen) settles before anyone claims. A node with no trusted member is on
   its own and claims nothing.
4. **Accepting.** A node accepts a claim with a higher term than the one it follows, or the same
   term and a lower public key. Announcements carry the queen's own signed claim, so views converge
   even when a claim message was missed, and nobody can relay a claim the queen did not sign.
5. **Stepping down.** A queen that sees a claim it must accept (a higher term) follows it: an old
   queen that comes back after a failover steps down, because the colony moved to a higher term.

Two nodes that claim the same term at once are resolved by rule 4 (the lower key wins); a node
whose view differs for a moment claims nothing until its view has been stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["LIVE_FACTOR", "Decision", "Role", "View", "accepts", "current_queen", "decide", "live_nodes"]

#: A node silent for this many heartbeats is not live.
LIVE_FACTOR = 3


@dataclass(frozen=True)
class Role:
    """The queen a node follows and her term (no queen: ``queen`` None, term 0 or the last seen)."""

    queen: str | None = None
    term: int = 0


@dataclass(frozen=True)
class View:
    """What one node knows: itself, when it last heard from each trusted member, the role it follows.

    ``last_seen`` maps each trusted member's public key to the time (this node's clock) its last
    authenticated announcement arrived, or None if none has. ``vouches`` maps a member to the queen
    it last said it heard from directly, and when that was (this node's clock). ``stable_since`` is
    when the set of live nodes last changed.
    """

    me: str
    now: float
    heartbeat_s: float
    last_seen: Mapping[str, float | None] = field(default_factory=dict)
    role: Role = field(default_factory=Role)
    stable_since: float = 0.0
    vouches: Mapping[str, tuple[str, float]] = field(default_factory=dict)

    @property
    def window_s(self) -> float:
        return LIVE_FACTOR * self.heartbeat_s


@dataclass(frozen=True)
class Decision:
    """What the rule asks of this node now: ``claim`` a term, ``follow`` a live queen, or ``wait``."""

    action: Literal["claim", "follow", "wait", "alone"]
    term: int = 0
    queen: str | None = None


def live_nodes(view: View) -> frozenset[str]:
    """Every node live in the view: itself, members heard from within ``3 × heartbeat``, and the
    queens those live members heard from directly within that window."""
    live = {key for key, seen in view.last_seen.items() if seen is not None and view.now - seen < view.window_s}
    vouched = {queen for voucher, (queen, at) in view.vouches.items()
               if voucher in live and view.now - at < view.window_s}
    return frozenset({view.me, *live, *vouched})


def current_queen(view: View) -> str | None:
    """The queen the view follows if she is live in it; None when there is no live queen."""
    queen = view.role.queen
    return queen if queen is not None and queen in live_nodes(view) else None


def decide(view: View) -> Decision:
    """Apply rule 3: follow a live queen, claim the next term, or wait for someone else (or for stability)."""
    if not view.last_seen:
        return Decision("alone")
    queen = current_queen(view)
    if queen is not None:
        return Decision("follow", view.role.term, queen)
    live = live_nodes(view)
    if min(live) != view.me or view.now - view.stable_since < view.window_s:
        return Decision("wait", view.role.term)
    return Decision("claim", view.role.term + 1, view.me)


def accepts(current: Role, queen: str, term: int) -> bool:
    """Rule 4: a claim of ``term`` by ``queen`` replaces ``current`` when its term is higher, or equal
    with a lower public key."""
    if term > current.term:
        return True
    return term == current.term and (current.queen is None or queen < current.queen)

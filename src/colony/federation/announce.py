"""This node's announcement (kind 7300): what `GET /federation/v1/hello` answers and every heartbeat carries.

It holds only public facts: the node's URL, name, version and start time, its agents' signed
cards (the same cards ``/api/v1/identity/agents/{name}/card/event`` serves), the queen and term
the node follows with the queen's signed claim, and a cheap status (trusted members, open tasks,
the ledger's state root). Cards and status are cached for `CACHE_S`: an announcement goes out every
heartbeat, and re-signing every agent's card each time would be wasted work. What changes faster
than that (the serving loop's colony facts: learning round, benchmark score) comes from ``extra``,
called at every build.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from colony import __version__
from colony.federation import _store
from colony.federation.messages import ANNOUNCE_KIND, Announcement
from colony.federation.roles import role_view
from colony.identity.cards import DEFAULT_BASE_URL, agent_card, card_event
from colony.identity.events import Event

if TYPE_CHECKING:
    from colony.config import Settings
    from colony.node import Node
    from colony.store import Database

__all__ = ["CACHE_S", "Announcer", "own_url", "url_of"]

#: Agent cards and the status are rebuilt at most this often.
CACHE_S = 30.0


def own_url(node: Node, listen_url: str | None = None) -> str:
    """Where peers reach this node (see `url_of`)."""
    return url_of(node.settings, node.db, listen_url)


def url_of(settings: Settings, db: Database, listen_url: str | None = None) -> str:
    """Where peers reach a node: ``COLONY_PUBLIC_URL``, else the address it serves on, else the URL
    its last ``colony up`` recorded, else the default bind."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if listen_url:
        return listen_url.rstrip("/")
    recorded = _store.get_self(db)["url"]
    return str(recorded) if recorded else DEFAULT_BASE_URL


class Announcer:
    """Builds and signs this node's announcement; one per process (the loop's, or a CLI command's)."""

    def __init__(self, node: Node, url: str, *, started_at: float | None = None,
                 extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.node, self.url, self.extra = node, url, extra
        self.started_at = time.time() if started_at is None else started_at
        self._cards: tuple[float, list[Event]] | None = None
        self._status: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _agent_cards(self) -> list[Event]:
        from colony.market.profiles import card_facts  # the market and payments sit beside federation's use
        from colony.payments.prices import sales_of

        keyring, db, settings = self.node.keyring, self.node.db, self.node.settings
        me = keyring.node()
        default = next((i.name for i in keyring.all() if i.role == "agent"), "colony")
        cards = []
        for agent in keyring.all():
            if agent.role != "agent":
                continue
            selling, hire = sales_of(db, settings, agent.name, default)
            active, facts = card_facts(db, agent.name)
            card = agent_card(agent, me, self.url, x402_support=selling, hire_path=hire, active=active,
                              extension=facts)
            cards.append(card_event(agent, card))
        return cards

    def _node_status(self) -> dict[str, Any]:
        from colony.ledger.store import open_ledger_store
        from colony.tasks.autonomy import open_store
        from colony.tasks.machine import TERMINAL_STATES

        counts = open_store(self.node).counts()
        return {
            "health": "ok",
            "members": len(_store.list_members(self.node.db, "trusted")),
            "open_tasks": sum(n for state, n in counts.items() if state not in TERMINAL_STATES),
            "ledger_root": open_ledger_store(self.node.db, self.node.settings).root(),
            "pid": os.getpid(),
        }

    def _cached(self) -> tuple[list[Event], dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            if self._cards is None or now - self._cards[0] > CACHE_S:
                self._cards = (now, self._agent_cards())
            if self._status is None or now - self._status[0] > CACHE_S:
                self._status = (now, self._node_status())
            return self._cards[1], self._status[1]

    def refresh(self) -> None:
        """Drop the cached cards and status (an agent was added, a member joined)."""
        with self._lock:
            self._cards = self._status = None

    def build(self) -> Event:
        """A freshly signed announcement."""
        cards, status = self._cached()
        if self.extra is not None:
            status = {**status, **self.extra()}
        db, me = self.node.db, self.node.keyring.node().public_hex
        role = role_view(db)
        seen: float | None = None
        if role.queen == me:
            seen = 0.0
        elif role.queen is not None:
            queen = _store.get_member(db, role.queen)
            if queen is not None and queen["status"] == "trusted" and queen["last_seen"] is not None:
                seen = round(max(0.0, time.time() - float(queen["last_seen"])), 3)
        content = Announcement(
            url=self.url, name=(self.node.settings.home.name.lstrip(".") or "colony")[:64], version=__version__,
            started_at=self.started_at, agents=cards, role=role, queen_seen_s=seen, status=status,
        )
        body = json.dumps(content.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        return self.node.keyring.node().sign(ANNOUNCE_KIND, body, [["alt", "Colony node announcement"]])

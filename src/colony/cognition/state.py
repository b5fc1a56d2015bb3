"""Persistence: every module's state as one JSON row, so a restarted node resumes where it was.

The substrate saves at the end of each turn (not per tool call: a turn is the unit a crash can
lose, and one transaction per turn keeps the per-call overhead low). A module whose stored
state no longer fits its code starts fresh instead of failing the node.
"""

from __future__ import annotations

from collections.abc import Iterable

from colony.cognition import _store
from colony.cognition.protocols import Module
from colony.errors import ColonyError
from colony.observability.logs import get_logger
from colony.store import Database

__all__ = ["restore", "save"]


def save(db: Database, modules: Iterable[Module]) -> None:
    _store.save_state(db, {m.name: m.dump() for m in modules if m.enabled})


def restore(db: Database, modules: Iterable[Module]) -> list[str]:
    """Load each enabled module's saved state; returns the names restored."""
    try:
        states = _store.load_state(db)
    except ColonyError as exc:
        get_logger("colony.cognition").warning("cognition_state_unreadable", error=str(exc))
        return []
    restored = []
    for m in modules:
        if not m.enabled or m.name not in states:
            continue
        try:
            m.load(states[m.name])
        except (KeyError, TypeError, ValueError) as exc:
            get_logger("colony.cognition").warning("cognition_state_reset", module=m.name, error=str(exc))
            continue
        restored.append(m.name)
    return restored

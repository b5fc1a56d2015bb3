"""Cognitive cartridges: sandboxed replacements for one step of a substrate module.

A cognitive cartridge is deployed with ``kind="cognitive"`` and the name of the interface it
implements. The one interface so far is ``memory.rerank``: the ranking step of the substrate's
associative recall (module ``memory_graph``). `install` wraps the node's module in
`CartridgeRecall`, which still fetches the candidates itself (a cartridge has no access to
memory) and lets the cartridge decide their order. Whatever the cartridge does wrong — fails,
times out, returns ids it was not given — the module falls back to its own order for that call,
and the failure counts against the cartridge's version, so the rollback rule sees it.

The adapter matches the substrate's ``AssociativeMemory`` protocol structurally; this package does
not import the cognition package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from colony.cartridges import _store
from colony.cartridges.service import CartridgeRequest, Cartridges
from colony.errors import CartridgeError

__all__ = ["INTERFACES", "CartridgeRecall", "RerankOut", "install", "install_all"]

#: Interface name → the substrate attribute (module) it replaces a step of.
INTERFACES = {"memory.rerank": "graph"}


class _Recall(Protocol):
    name: str
    enabled: bool

    def recall(self, query: str) -> list[tuple[int, str, float]]: ...
    def dump(self) -> dict[str, Any]: ...
    def load(self, state: Mapping[str, Any]) -> None: ...
    def status(self) -> dict[str, Any]: ...


class RerankOut(BaseModel):
    """What a ``memory.rerank`` cartridge must answer: every given id, once, in its order."""

    order: list[int]


class CartridgeRecall:
    """The ``memory_graph`` module with its ranking delegated to a cognitive cartridge."""

    name = "memory_graph"
    enabled = True

    def __init__(self, inner: _Recall, cartridges: Cartridges, slug: str) -> None:
        self.inner, self.cartridges, self.slug = inner, cartridges, slug
        self.reranked = 0
        self.fallbacks = 0
        self.last_error: str | None = None

    def recall(self, query: str) -> list[tuple[int, str, float]]:
        hits = self.inner.recall(query)
        if len(hits) < 2:
            return hits
        body = json.dumps({"query": query, "items": [{"id": i, "text": t, "score": s} for i, t, s in hits]})
        try:
            outcome = self.cartridges.call(self.slug, CartridgeRequest(method="POST", path="/", body=body))
        except CartridgeError as exc:
            return self._fallback(hits, str(exc))
        if not outcome.ok:
            return self._fallback(hits, f"{outcome.stop}: {outcome.response.body[:200]}")
        try:
            order = RerankOut.model_validate_json(outcome.response.body).order
        except ValidationError as exc:
            order, problem = [], f"the answer is not {{'order': [ids]}}: {exc.errors()[0]['msg']}"
        else:
            problem = f"the cartridge returned ids {order[:20]}, not a permutation of the candidates"
        if sorted(order) != sorted(i for i, _, _ in hits):
            # the call itself succeeded, so count the broken answer against the version explicitly
            self.cartridges.report_error(self.slug, outcome.version, f"memory.rerank: {problem}")
            return self._fallback(hits, problem)
        self.reranked += 1
        by_id = {h[0]: h for h in hits}
        return [by_id[i] for i in order]

    def _fallback(self, hits: list[tuple[int, str, float]], why: str) -> list[tuple[int, str, float]]:
        self.fallbacks += 1
        self.last_error = why[:300]
        return hits

    def dump(self) -> dict[str, Any]:
        return self.inner.dump()

    def load(self, state: Mapping[str, Any]) -> None:
        self.inner.load(state)

    def status(self) -> dict[str, Any]:
        return {**self.inner.status(), "cartridge": self.slug, "reranked": self.reranked,
                "fallbacks": self.fallbacks, "cartridge_error": self.last_error}


def install(substrate: Any, cartridges: Cartridges, slug: str) -> CartridgeRecall:
    """Put cognitive cartridge ``slug`` behind its interface in ``substrate`` (a `Substrate`)."""
    row = _store.get_cartridge(cartridges.db, slug)
    if row is None:
        raise CartridgeError(f"No cartridge {slug!r}.", status=404, slug=slug)
    if row["kind"] != "cognitive" or row["interface"] not in INTERFACES:
        raise CartridgeError(
            f"{slug} is a {row['kind']} cartridge with interface {row['interface']!r}; a cognitive cartridge "
            f"must implement one of: {', '.join(INTERFACES)}.", status=422, slug=slug)
    attribute = INTERFACES[row["interface"]]
    current = getattr(substrate, attribute)
    inner = current.inner if isinstance(current, CartridgeRecall) else current  # re-install replaces, never stacks
    adapter = CartridgeRecall(inner, cartridges, slug)
    setattr(substrate, attribute, adapter)
    return adapter


def install_all(substrate: Any, cartridges: Cartridges) -> list[str]:
    """Install every deployed cognitive cartridge into ``substrate``; return their slugs.

    Meant to run once when a node with cognition enabled starts (one cartridge per interface: the
    most recently deployed wins).
    """
    installed: dict[str, str] = {}
    for row in sorted(cartridges.all(), key=lambda r: r["updated_at"]):
        if row["kind"] == "cognitive" and row["interface"] in INTERFACES and row["active_version"] is not None:
            install(substrate, cartridges, row["slug"])
            installed[row["interface"]] = row["slug"]
    return list(installed.values())

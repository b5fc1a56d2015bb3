"""Agent cards: each agent's public description, in the shape of an ERC-8004 registration file.

The fields ERC-8004 defines (``type``, ``name``, ``description``, ``image``, ``services``,
``x402Support``, ``active``, ``registrations``, ``supportedTrust``) keep their names and meaning,
so an on-chain bridge can publish the same file later. Colony's own facts go under one extension
key, ``colony``: the agent's Schnorr public key (hex and npub), its EVM payment address with the
binding proof (`colony.identity.evm`), its skills, and the node that hosts it.

A card on its own is a claim anyone could make. `card_event` therefore also delivers it as a
NIP-01 event signed by the agent's own key (a replaceable kind: a newer card replaces an older
one), and `verify_card_event` checks what a peer must: the signature over the recomputed id, the
kind, that the card names the key that signed it, and that the EVM address's binding proof
recovers that address.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from colony import __version__
from colony.errors import IdentityError
from colony.identity.events import KINDS, Event, verify_event
from colony.identity.evm import verify_binding
from colony.identity.keys import npub
from colony.identity.store import Identity

__all__ = ["CARD_KIND", "DEFAULT_BASE_URL", "REGISTRATION_TYPE", "agent_card", "card_event", "verify_card_event"]

REGISTRATION_TYPE = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1"
#: Where a card points when no request tells us the node's address (the CLI) and COLONY_PUBLIC_URL is
#: unset: `colony up`'s default bind.
DEFAULT_BASE_URL = "http://127.0.0.1:8420"
CARD_KIND = KINDS["agent_card"]
#: What `agent_card` itself writes under ``colony`` (an ``extension`` never overrides these).
_OWN_FACTS = frozenset({"version", "pubkey", "npub", "evmAddress", "evmBindingProof", "skills", "node"})


def agent_card(agent: Identity, node: Identity, base_url: str, *, x402_support: bool = False,
               hire_path: str | None = None, active: bool = True,
               extension: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The registration file of ``agent``, hosted by ``node``, reachable at ``base_url``.

    ``registrations`` stays empty until the agent is registered on a chain; ``supportedTrust``
    lists nothing until Colony has a reputation mechanism to offer. ``x402_support`` says the
    agent is paid over x402 for something on this node; ``hire_path`` (when its prompts are for
    sale) adds an ``x402`` service pointing at the paid endpoint. ``extension`` adds facts of
    capabilities above this one under ``colony`` (the market's model tier and cost model); it
    cannot replace the keys and proofs this function writes.
    """
    base = base_url.rstrip("/")
    hire = [{"name": "x402", "endpoint": f"{base}{hire_path}", "version": "2"}] if hire_path else []
    return {
        "type": REGISTRATION_TYPE,
        "name": agent.name,
        "description": agent.description or f"A Colony agent ({agent.name}).",
        "image": f"{base}/static/favicon.svg",
        "services": [
            {"name": "web", "endpoint": f"{base}/"},
            {"name": "colony-api", "endpoint": f"{base}/api/v1", "version": __version__},
            {"name": "agent-card", "endpoint": f"{base}/api/v1/identity/agents/{agent.name}/card"},
            *hire,
        ],
        "x402Support": x402_support,
        "active": active,
        "registrations": [],
        "supportedTrust": [],
        "colony": {
            "version": 1,
            "pubkey": agent.public_hex,
            "npub": agent.npub,
            "evmAddress": agent.evm_address,
            "evmBindingProof": agent.evm_proof,
            "skills": list(agent.skills),
            **{k: v for k, v in (extension or {}).items() if k not in _OWN_FACTS},
            "node": {"pubkey": node.public_hex, "npub": node.npub},
        },
    }


def card_event(agent: Identity, card: dict[str, Any], *, created_at: int | None = None) -> Event:
    """The card as a NIP-01 event signed by the agent's own key (unlocks it on first use)."""
    content = json.dumps(card, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    tags = [["alt", f"Colony agent card of {agent.name} (ERC-8004 registration file)"]]
    return agent.sign(CARD_KIND, content, tags, created_at)


def verify_card_event(event: Event | dict[str, Any]) -> dict[str, Any]:
    """The card inside a signed card event; `IdentityError` (reason ``invalid``) when it does not verify."""
    def bad(why: str) -> IdentityError:
        return IdentityError(f"The agent card does not verify: {why}.", reason="invalid")

    try:
        ev = event if isinstance(event, Event) else Event.model_validate(event)
    except ValueError as exc:
        raise bad("it is not a NIP-01 event") from exc
    if ev.kind != CARD_KIND:
        raise bad(f"kind {ev.kind} is not the agent card kind {CARD_KIND}")
    if not verify_event(ev):
        raise bad("the id does not match the fields or the signature does not verify")
    try:
        card: dict[str, Any] = json.loads(ev.content)
    except ValueError as exc:
        raise bad("the content is not JSON") from exc
    ext = card.get("colony") if isinstance(card, dict) else None
    if not isinstance(ext, dict) or card.get("type") != REGISTRATION_TYPE:
        raise bad("the content is not a Colony agent card")
    if ext.get("pubkey") != ev.pubkey or ext.get("npub") != npub(ev.pubkey):
        raise bad("the card names another key than the one that signed it")
    address, proof = ext.get("evmAddress"), ext.get("evmBindingProof")
    if not (isinstance(address, str) and isinstance(proof, str) and verify_binding(address, ev.pubkey, proof)):
        raise bad("the EVM address's binding proof does not recover that address for this key")
    return card

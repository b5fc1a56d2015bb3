"""Identity (P): secp256k1 keys, signed NIP-01 events, NIP-98 HTTP auth, encrypted keystores,
EVM payment accounts and agent cards.

Each node and each agent it hosts has its own Schnorr identity (the x-only public key is its id)
and, for agents, an EVM account for the x402 ``exact`` rail. Keys are stored encrypted
(Web3 Secret Storage v3: scrypt + AES-128-CTR) under a passphrase kept outside the data
directory. May import: `colony.errors`, `colony.store`, `colony.config`. Nothing here imports
ledger, payments, market or surfaces.
"""

from __future__ import annotations

from colony.identity.events import KINDS, Event, canonical, event_id, sign_event, verify_event
from colony.identity.keys import SchnorrKey, decode_npub, npub, schnorr_verify

__all__ = [
    "KINDS",
    "Event",
    "SchnorrKey",
    "canonical",
    "decode_npub",
    "event_id",
    "npub",
    "schnorr_verify",
    "sign_event",
    "verify_event",
]

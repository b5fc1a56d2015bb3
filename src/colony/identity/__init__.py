"""Identity (P): secp256k1 keys, signed NIP-01 events, NIP-98 HTTP auth, encrypted keystores,
EVM payment accounts and agent cards.

Each node and each agent it hosts has its own Schnorr identity (the x-only public key is its id)
and, for agents, an EVM account for the x402 ``exact`` rail. Keys are stored encrypted
(Web3 Secret Storage v3: scrypt + AES-128-CTR) under a passphrase kept outside the data
directory. May import: `colony.errors`, `colony.store`, `colony.config`. Nothing here imports
ledger, payments, market or surfaces.

Modules: `keys` (BIP-340, NIP-19) · `events` (NIP-01) · `store` (identities, the `Keyring`, the
API other capabilities use) · `keystore` (encrypted keyfiles, unlocked once per process) ·
`passphrase` (where the passphrase comes from) · `evm` (payment accounts and their binding) ·
`nip98` (HTTP auth) · `cards` (agent cards) · `_store` (the SQL). `eth_account` and `eth_keyfile`
are imported only when a key is created or unlocked (they take a second to import).
"""

from __future__ import annotations

from colony.identity.cards import CARD_KIND, REGISTRATION_TYPE, agent_card, card_event, verify_card_event
from colony.identity.events import KINDS, Event, canonical, event_id, sign_event, verify_event
from colony.identity.keys import SchnorrKey, decode_npub, npub, schnorr_verify
from colony.identity.nip98 import auth_header, verify_auth
from colony.identity.store import (
    DEFAULT_AGENT,
    NODE_NAME,
    Identity,
    Keyring,
    KeyringSetup,
    agent_identity,
    create_agent,
    find_identity,
    list_identities,
    node_identity,
)

__all__ = [
    "CARD_KIND",
    "DEFAULT_AGENT",
    "KINDS",
    "NODE_NAME",
    "REGISTRATION_TYPE",
    "Event",
    "Identity",
    "Keyring",
    "KeyringSetup",
    "SchnorrKey",
    "agent_card",
    "agent_identity",
    "auth_header",
    "canonical",
    "card_event",
    "create_agent",
    "decode_npub",
    "event_id",
    "find_identity",
    "list_identities",
    "node_identity",
    "npub",
    "schnorr_verify",
    "sign_event",
    "verify_auth",
    "verify_card_event",
    "verify_event",
]

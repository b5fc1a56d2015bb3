"""Tables of the identity capability (migration 8): identities, the NIP-98 replay cache, peers.

The schema lives in the store layer because migrations are the store's (`colony.store.migrations`
imports it, and the store imports no capability); the functions over these tables are
`colony.identity._store`.

Invariants the database holds, not the caller:

- a keyfile is Web3 Secret Storage v3 with scrypt and AES-128-CTR — a row with a plaintext key,
  or any other construction, is refused by a CHECK;
- at most one identity has the role ``node``;
- a public key and an EVM address, once written, never change (a trigger refuses the UPDATE):
  other nodes know the identity by them.
"""

from __future__ import annotations

__all__ = ["IDENTITY_SCHEMA"]

IDENTITY_SCHEMA = """
CREATE TABLE identities (
    name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 32 AND name NOT GLOB '*[^a-z0-9_-]*'),
    role TEXT NOT NULL CHECK (role IN ('node','agent')),
    public_hex TEXT NOT NULL UNIQUE CHECK (length(public_hex) = 64 AND public_hex NOT GLOB '*[^0-9a-f]*'),
    evm_address TEXT NOT NULL UNIQUE CHECK (length(evm_address) = 42 AND evm_address GLOB '0x*'),
    schnorr_keyfile TEXT NOT NULL CHECK (
        json_valid(schnorr_keyfile)
        AND json_extract(schnorr_keyfile, '$.version') IS 3
        AND json_extract(schnorr_keyfile, '$.crypto.kdf') IS 'scrypt'
        AND json_extract(schnorr_keyfile, '$.crypto.cipher') IS 'aes-128-ctr'),
    evm_keyfile TEXT NOT NULL CHECK (
        json_valid(evm_keyfile)
        AND json_extract(evm_keyfile, '$.version') IS 3
        AND json_extract(evm_keyfile, '$.crypto.kdf') IS 'scrypt'
        AND json_extract(evm_keyfile, '$.crypto.cipher') IS 'aes-128-ctr'),
    -- EIP-191 signature by the EVM account of the text binding it to public_hex (colony.identity.evm)
    evm_proof TEXT NOT NULL CHECK (length(evm_proof) = 132),
    description TEXT NOT NULL DEFAULT '',
    skills TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(skills) AND json_type(skills) IS 'array'),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
) WITHOUT ROWID;
CREATE UNIQUE INDEX identities_one_node ON identities(role) WHERE role = 'node';
CREATE TRIGGER identities_keys_fixed BEFORE UPDATE OF public_hex, evm_address ON identities
WHEN NEW.public_hex != OLD.public_hex OR NEW.evm_address != OLD.evm_address
BEGIN
    SELECT RAISE(ABORT, 'an identity keeps its public key and EVM address for life');
END;

CREATE TABLE nip98_seen (
    event_id TEXT PRIMARY KEY,
    pubkey TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX nip98_seen_expiry ON nip98_seen(expires_at);

CREATE TABLE identity_peers (
    public_hex TEXT PRIMARY KEY CHECK (length(public_hex) = 64),
    name TEXT NOT NULL,
    card TEXT NOT NULL CHECK (json_valid(card)),
    event TEXT NOT NULL CHECK (json_valid(event)),
    card_created_at INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
) WITHOUT ROWID;
"""

"""secp256k1 identities: BIP-340 Schnorr keys through libsecp256k1 (`coincurve`), NIP-19 names.

An identity is a 32-byte secret; its public name is the x-only public key in lowercase hex (what
Nostr calls ``pubkey``), shown as ``npub1…`` for people. No curve arithmetic is written here:
signing and verification are libsecp256k1's, which implements BIP-340 exactly (the official
vectors are in the test suite).

Signing domains are kept apart by construction: a Schnorr key signs only 32-byte digests of
NIP-01 events (`colony.identity.events`), and an agent's EVM account (`colony.identity.evm`) is a
different secret, so no nonce or signature is ever shared between schemes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import bech32
from coincurve import PrivateKey, PublicKeyXOnly
from coincurve._libsecp256k1 import lib

__all__ = ["SchnorrKey", "decode_npub", "npub", "schnorr_verify"]


@dataclass(frozen=True)
class SchnorrKey:
    """A secret key that signs with BIP-340. ``repr`` never shows the secret."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ValueError("a secp256k1 secret key is 32 bytes")
        PrivateKey(self.secret)  # refuses 0 and values >= the curve order

    def __repr__(self) -> str:
        return f"SchnorrKey(public={self.public_hex})"

    @classmethod
    def generate(cls) -> SchnorrKey:
        while True:
            candidate = secrets.token_bytes(32)
            try:
                return cls(candidate)
            except ValueError:  # astronomically rare: zero or past the order
                continue

    @property
    def public_hex(self) -> str:
        """The x-only public key, lowercase hex: the identity's id."""
        return PrivateKey(self.secret).public_key_xonly.format().hex()

    @property
    def npub(self) -> str:
        return npub(self.public_hex)

    def sign(self, message: bytes, *, aux: bytes | None = None) -> bytes:
        """A 64-byte BIP-340 signature of ``message`` (a 32-byte digest) with fresh auxiliary randomness."""
        return PrivateKey(self.secret).sign_schnorr(message, secrets.token_bytes(32) if aux is None else aux)


def schnorr_verify(public_hex: str, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid BIP-340 signature of ``message`` by ``public_hex``.

    Messages of any length are accepted, as BIP-340 defines them (libsecp256k1's own verifier;
    coincurve's wrapper takes 32-byte messages only). Any malformed input (a key that is not on the
    curve, a signature of the wrong length) is a plain False: verification never raises on what a
    peer sent.
    """
    try:
        key = PublicKeyXOnly(bytes.fromhex(public_hex))
    except (ValueError, TypeError):
        return False
    if len(signature) != 64:
        return False
    return bool(lib.secp256k1_schnorrsig_verify(key.context.ctx, signature, message, len(message), key.public_key))


def npub(public_hex: str) -> str:
    """NIP-19 display form of a public key."""
    data = bech32.convertbits(bytes.fromhex(public_hex), 8, 5)
    assert data is not None
    return str(bech32.bech32_encode("npub", data))


def decode_npub(text: str) -> str:
    """The hex public key of an ``npub1…`` (or hex passed through); ValueError when it is neither."""
    text = text.strip()
    if len(text) == 64:
        bytes.fromhex(text)
        return text.lower()
    hrp, data = bech32.bech32_decode(text)
    if hrp != "npub" or data is None:
        raise ValueError(f"{text!r} is neither a 64-character hex public key nor an npub")
    raw = bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) != 32:
        raise ValueError(f"{text!r} does not hold a 32-byte key")
    return bytes(raw).hex()

"""Signing and verifying many events fast, through libsecp256k1 (coincurve's binding).

Why not `SchnorrKey.sign` and `schnorr_verify` one by one: they rebuild the key objects on every
call (an elliptic-curve multiplication each), which doubles the cost of a ledger transfer and of
a full verification. Here the node's keypair is built once, public keys are parsed once per
verification run, and large batches are split across threads — cffi releases the GIL during a
libsecp256k1 call, so two cores verify two signatures at once. Nothing cryptographic is written
here: every signature is made and checked by libsecp256k1's BIP-340 functions.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from coincurve import PrivateKey, PublicKeyXOnly
from coincurve._libsecp256k1 import ffi, lib

from colony.identity.events import KINDS, Event, event_id
from colony.identity.keys import SchnorrKey
from colony.ledger.records import Entry
from colony.ledger.wire import entry_event_id

__all__ = ["PARALLEL_FROM", "Signer", "in_chunks", "is_public_key", "parse_keys", "verify_entries", "verify_signatures"]

#: Batches at least this large are verified on several threads.
PARALLEL_FROM = 2_000


class Signer:
    """A node key ready to sign many events: the keypair is computed once."""

    def __init__(self, key: SchnorrKey) -> None:
        private = PrivateKey(key.secret)
        self._ctx = private.context.ctx
        self._keypair = ffi.new("secp256k1_keypair *")
        if not lib.secp256k1_keypair_create(self._ctx, self._keypair, key.secret):
            raise ValueError("invalid secret key")
        self._xonly = private.public_key_xonly.public_key
        self.public_hex = private.public_key_xonly.format().hex()

    def __repr__(self) -> str:
        return f"Signer(public={self.public_hex})"

    def sign_id(self, eid: str) -> str:
        """A BIP-340 signature of the 32-byte event id, checked before it is returned.

        The check costs one verification; it guarantees that a signature that would not verify
        (a hardware fault, a bad build) is never written into an append-only journal.
        """
        message = bytes.fromhex(eid)
        sig = ffi.new("unsigned char[64]")
        if not lib.secp256k1_schnorrsig_sign32(self._ctx, sig, message, self._keypair, secrets.token_bytes(32)):
            raise ValueError("signing failed")
        raw = bytes(ffi.buffer(sig, 64))
        if not lib.secp256k1_schnorrsig_verify(self._ctx, raw, message, 32, self._xonly):
            raise ValueError("a fresh signature did not verify; refusing to write it")
        return raw.hex()

    def event(self, kind: int, content: str, created_at: int) -> Event:
        """A NIP-01 event (no tags) by this key."""
        eid = event_id(self.public_hex, created_at, kind, [], content)
        return Event(id=eid, pubkey=self.public_hex, created_at=created_at, kind=kind, tags=[], content=content,
                     sig=self.sign_id(eid))


#: libsecp256k1's context (coincurve's global one); verification only reads it, so threads share it.
_CTX = PublicKeyXOnly.from_secret(b"\x01" * 32).context.ctx
T = TypeVar("T")
R = TypeVar("R")


def is_public_key(public_hex: str) -> bool:
    """True when ``public_hex`` is an x-only secp256k1 public key (a point on the curve)."""
    return bool(parse_keys([public_hex]))


def parse_keys(pubs: Iterable[str]) -> dict[str, Any]:
    """Parsed x-only public keys by hex; keys that do not parse are left out (their signatures fail)."""
    keys: dict[str, Any] = {}
    for pub in set(pubs):
        try:
            keys[pub] = PublicKeyXOnly(bytes.fromhex(pub)).public_key
        except (ValueError, TypeError):
            continue
    return keys


def _verify(keys: dict[str, Any], pub: str, eid: str, sig: str) -> bool:
    key = keys.get(pub)
    if key is None or len(sig) != 128:
        return False
    try:
        return bool(lib.secp256k1_schnorrsig_verify(_CTX, bytes.fromhex(sig), bytes.fromhex(eid), 32, key))
    except ValueError:  # not hex
        return False


def in_chunks(work: Callable[[Sequence[T]], list[R]], items: Sequence[T], threads: int | None = None) -> list[R]:
    """``work`` over contiguous chunks of ``items`` on several threads when there are many; results in order.

    Threads help because the expensive part, libsecp256k1's verification, runs without the GIL.
    """
    if len(items) < PARALLEL_FROM:
        return work(items)
    workers = threads if threads is not None else min(4, os.cpu_count() or 1)
    if workers <= 1:
        return work(items)
    size = -(-len(items) // (workers * 4))  # a few chunks per thread evens out uneven chunks
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledger-verify") as pool:
        return [r for part in pool.map(work, chunks) for r in part]


def verify_signatures(items: Sequence[tuple[str, str, str]], *, threads: int | None = None) -> list[bool]:
    """For each ``(pubkey hex, event id hex, signature hex)``: does the signature verify over the id?

    A malformed key or signature is False, never an exception (the input is what a peer sent).
    """
    keys = parse_keys(pub for pub, _, _ in items)
    return in_chunks(lambda chunk: [_verify(keys, *item) for item in chunk], items, threads)


#: `verify_entries` codes.
OK, BAD_HASH, BAD_SIGNATURE = 0, 1, 2


def verify_entries(entries: Sequence[Entry], *, threads: int | None = None) -> list[int]:
    """For each entry: `OK`, `BAD_HASH` (its id is not the hash of its fields) or `BAD_SIGNATURE`."""
    keys = parse_keys(e.signer for e in entries)
    kind = KINDS["ledger_entry"]

    def work(chunk: Sequence[Entry]) -> list[int]:
        out = []
        for e in chunk:
            eid = entry_event_id(e.body, e.signer, e.created_at, kind)
            out.append(BAD_HASH if eid != e.id else OK if _verify(keys, e.signer, eid, e.sig) else BAD_SIGNATURE)
        return out

    return in_chunks(work, entries, threads)

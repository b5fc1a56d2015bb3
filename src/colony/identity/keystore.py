"""Keys at rest: Web3 Secret Storage v3 keyfiles (scrypt + AES-128-CTR), unlocked once per process.

One construction for every secret Colony keeps — an agent's Schnorr key and its EVM account
alike — and it is the Ethereum keystore's, through `eth_keyfile`: scrypt stretches the passphrase,
AES-128-CTR encrypts the 32-byte secret, a keccak MAC tells a wrong passphrase from a right one.
Our code chooses the parameters and keeps the plaintext out of every file and column.

Cost: scrypt with the standard parameters (n=2**18, r=8, p=1: 256 MB and ~1.5 s here) is slow on
purpose — that is what makes guessing a passphrase from a stolen ``colony.db`` expensive. So a
keyfile is decrypted at most once per process per passphrase: the secret is kept in this
module's memory (never on disk) keyed by an HMAC of the keyfile under the passphrase, so the same
keyfile asked for with another passphrase is decrypted — and refused — afresh.

Tests set ``COLONY_INSECURE_TEST_KDF=true`` (`Settings.insecure_test_kdf`), which creates new
keyfiles with n=2**10; nothing lowers the parameters otherwise, and every use of the weak setting
is logged as a warning (once per process). Decryption always follows the parameters written in the keyfile.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from typing import Any

from colony.errors import IdentityError, KeysLockedError
from colony.identity.passphrase import ENV_FILE, ENV_VALUE, Passphrase

__all__ = ["STANDARD_SCRYPT_N", "TEST_SCRYPT_N", "decryptions", "forget", "remember", "seal", "unseal"]

log = logging.getLogger("colony.identity")

#: geth's "standard" scrypt cost, and eth_keyfile's default.
STANDARD_SCRYPT_N = 2**18
#: Only with ``COLONY_INSECURE_TEST_KDF``: fast enough for a test suite, far too weak for a node.
TEST_SCRYPT_N = 2**10

_unlocked: dict[bytes, bytes] = {}
_cache_lock = threading.Lock()
_unlock_lock = threading.Lock()  # one scrypt at a time: two threads asking for one key derive it once
_stats = {"decryptions": 0, "warned_weak": 0}


def decryptions() -> int:
    """How many keyfiles this process has decrypted with scrypt (cache misses) so far."""
    return _stats["decryptions"]


def forget() -> None:
    """Drop every unlocked secret from this process's memory; the next use decrypts again."""
    with _cache_lock:
        _unlocked.clear()


def _cache_key(keyfile: str, passphrase: Passphrase) -> bytes:
    return hmac.new(passphrase.secret, keyfile.encode("utf-8"), hashlib.sha256).digest()


def seal(secret: bytes, passphrase: Passphrase, *, weak_kdf: bool = False, keep_address: bool = True) -> str:
    """The keyfile JSON (text) of a 32-byte secret, encrypted under ``passphrase``.

    ``keep_address=False`` drops the keyfile's ``address`` field: for a Schnorr secret that field
    would be the EVM address of a key that must never act as an EVM account.
    """
    from eth_keyfile.keyfile import create_keyfile_json  # deferred: ~1 s of imports most commands never need

    if weak_kdf and not _stats["warned_weak"]:
        _stats["warned_weak"] = 1
        log.warning("COLONY_INSECURE_TEST_KDF is set: a key is being encrypted with test-strength scrypt "
                    "(n=%d). Never set it on a real node.", TEST_SCRYPT_N)
    data: dict[str, Any] = create_keyfile_json(
        secret, passphrase.secret, kdf="scrypt", iterations=TEST_SCRYPT_N if weak_kdf else STANDARD_SCRYPT_N
    )
    if not keep_address:
        data.pop("address", None)
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    remember(text, passphrase, secret)
    return text


def remember(keyfile: str, passphrase: Passphrase, secret: bytes) -> None:
    """Keep an unlocked secret in memory (the keys just created need no scrypt to be used)."""
    with _cache_lock:
        _unlocked[_cache_key(keyfile, passphrase)] = bytes(secret)


def unseal(keyfile: str, passphrase: Passphrase, *, what: str = "a key") -> bytes:
    """The secret in ``keyfile``; scrypt runs only the first time in this process.

    A wrong passphrase is `KeysLockedError` saying where it came from and how to set the right
    one; a keyfile that is not one is `IdentityError` (the database was edited or damaged).
    """
    from eth_keyfile.keyfile import decode_keyfile_json

    key = _cache_key(keyfile, passphrase)
    with _cache_lock:
        hit = _unlocked.get(key)
    if hit is not None:
        return hit
    with _unlock_lock:
        with _cache_lock:
            hit = _unlocked.get(key)
        if hit is not None:
            return hit
        try:
            data = json.loads(keyfile)
            _stats["decryptions"] += 1
            secret = bytes(decode_keyfile_json(data, passphrase.secret))
        except ValueError as exc:
            if "MAC mismatch" not in str(exc):
                raise IdentityError(f"The stored keyfile of {what} is damaged ({exc}); restore colony.db from a "
                                    "backup (colony restore PATH).") from exc
            raise KeysLockedError(
                f"The key passphrase from {passphrase.source} does not decrypt {what}: this node's keys were "
                f"encrypted with another passphrase. Set {ENV_VALUE}, or {ENV_FILE} to the file holding the "
                "passphrase this node was created with (see README, 'Identity and wallet').",
                looked_in=[passphrase.source],
            ) from exc
        except (KeyError, TypeError) as exc:
            raise IdentityError(f"The stored keyfile of {what} is not a Web3 Secret Storage keyfile ({exc!r}); "
                                "restore colony.db from a backup (colony restore PATH).") from exc
        with _cache_lock:
            _unlocked[key] = secret
        return secret

"""NIP-98 HTTP auth: a request signed by a Nostr key, for node-to-node calls.

The client sends ``Authorization: Nostr <base64 of a kind-27235 event>`` whose tags name the
absolute URL (``u``), the method (``method``) and, for a body, its sha256 (``payload``). The
server (`verify_auth`) trusts no field it can recompute. In order:

1. the header parses (standard base64 of a NIP-01 event, at most `MAX_HEADER_CHARS`);
2. the kind is 27235;
3. the id is recomputed from the fields and the BIP-340 signature verifies over it;
4. ``created_at`` is within ±`DEFAULT_WINDOW_S` of the server's clock;
5. ``u`` is exactly the URL the server was asked for, ``method`` exactly the method;
6. with a body, ``payload`` is present and equals its sha256 (a ``payload`` tag is always checked);
7. the event id was never used before — claimed last, so only a request that passed every other
   check can use an id up.

Any failure is `Nip98Error` (its ``reason`` names the check) and the caller does nothing.

Replays: step 7 needs a store of used ids that outlives the window. The server keeps it in
SQLite (`colony.identity._store.claim_event_id`, table ``nip98_seen``), not in memory, because
an in-memory cache forgets on restart: an event captured a second before a restart could be
replayed for the rest of its window, and two processes on one database (``colony up`` and a
worker) would each accept it once. Each id is kept until its ``created_at`` + window has passed,
after which step 4 refuses it anyway, so the table holds at most a window's worth of ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from collections.abc import Callable

from pydantic import ValidationError

from colony.errors import Nip98Error
from colony.identity._store import claim_event_id
from colony.identity.events import KINDS, Event, sign_event, verify_event
from colony.identity.keys import SchnorrKey
from colony.store import Database

__all__ = ["AUTH_KIND", "DEFAULT_WINDOW_S", "MAX_HEADER_CHARS", "ReplayGuard", "auth_header", "sqlite_replay_guard",
           "verify_auth"]

AUTH_KIND = KINDS["http_auth"]
DEFAULT_WINDOW_S = 60
#: A NIP-98 event is a few hundred bytes; anything far larger is refused before decoding.
MAX_HEADER_CHARS = 8192

#: ``claim(event_id, pubkey, expires_at) -> bool``: record the id, False if it was already used.
ReplayGuard = Callable[[str, str, int], bool]


def auth_header(key: SchnorrKey, url: str, method: str, body: bytes | None = None, *,
                created_at: int | None = None) -> str:
    """The ``Authorization`` header value for one request (a fresh event: use it once).

    NIP-98 ids are unique per (second, URL, method, body) only: two identical requests in one
    second (an x402 settle retried at once after a lost answer, a heartbeat sent twice) would carry
    the same event and the receiver's replay cache would rightly refuse the second. A random
    ``nonce`` tag makes each call's event its own; verifiers ignore tags they do not check.
    """
    tags = [["u", url], ["method", method.upper()], ["nonce", secrets.token_hex(8)]]
    if body:
        tags.append(["payload", hashlib.sha256(body).hexdigest()])
    event = sign_event(key, AUTH_KIND, "", tags, created_at)
    return "Nostr " + base64.b64encode(event.model_dump_json().encode()).decode()


def _parse(header: str | None) -> Event:
    if not header:
        raise Nip98Error("NIP-98 authentication required: send 'Authorization: Nostr <base64 event>'.", reason="missing")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "nostr" or not value.strip():
        raise Nip98Error("The Authorization header is not 'Nostr <base64 event>'.", reason="missing")
    if len(value) > MAX_HEADER_CHARS:
        raise Nip98Error(f"The NIP-98 event is over {MAX_HEADER_CHARS} characters.", reason="malformed")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        return Event.model_validate(json.loads(raw))
    except (binascii.Error, ValueError, ValidationError) as exc:
        raise Nip98Error("The NIP-98 header is not base64 of a NIP-01 event.", reason="malformed") from exc


def verify_auth(header: str | None, *, url: str, method: str, body: bytes = b"", replay: ReplayGuard | None = None,
                now: float | None = None, window_s: int = DEFAULT_WINDOW_S) -> Event:
    """The verified auth event of a request; `Nip98Error` when any check fails (see the module docstring).

    ``url`` must be the absolute URL as the server was reached (scheme, host, port, path, query).
    Without ``replay`` the caller takes on replay protection itself.
    """
    event = _parse(header)
    if event.kind != AUTH_KIND:
        raise Nip98Error(f"A NIP-98 event has kind {AUTH_KIND}, not {event.kind}.", reason="kind")
    if not verify_event(event):  # recomputes the id from the fields, then checks the signature over it
        raise Nip98Error("The NIP-98 event's id does not match its fields or its signature does not verify.",
                         reason="signature")
    clock = time.time() if now is None else now
    if abs(clock - event.created_at) > window_s:
        raise Nip98Error(f"The NIP-98 event's created_at is more than {window_s} s from the server's clock; "
                         "sign a fresh event (and check the clock).", reason="stale")
    if event.tag("u") != url:
        raise Nip98Error(f"The NIP-98 event's 'u' tag is not this request's URL ({url}).", reason="url")
    if (event.tag("method") or "") != method.upper():
        raise Nip98Error(f"The NIP-98 event's 'method' tag is not {method.upper()}.", reason="method")
    payload = event.tag("payload")
    if (body or payload is not None) and payload != hashlib.sha256(body).hexdigest():
        raise Nip98Error("The NIP-98 event's 'payload' tag is missing or is not the sha256 of the body.",
                         reason="payload")
    if replay is not None and not replay(event.id, event.pubkey, event.created_at + window_s + 1):
        raise Nip98Error("This NIP-98 event was used before; sign a fresh event for every request.",
                         reason="replayed")
    return event


def sqlite_replay_guard(db: Database, *, clock: Callable[[], float] = time.time) -> ReplayGuard:
    """The node's replay guard: used ids in the ``nip98_seen`` table (see the module docstring)."""

    def claim(event_id: str, pubkey: str, expires_at: int) -> bool:
        return claim_event_id(db, event_id, pubkey, expires_at, int(clock()))

    return claim

"""Authentication: one bearer token per node, and server-side login sessions for the web UI.

The token is generated on first start and kept in ``$COLONY_HOME/token`` (mode 0600); `colony
token` prints it. API clients send ``Authorization: Bearer <token>``. The web UI logs in with the
token once and gets a cookie (HttpOnly, SameSite=Strict) holding a random session id — never the
token, nor anything derived from it. The node's database keeps only an HMAC of the id, keyed by
the node token, with its expiry: logging out deletes the row, so a copied cookie stops working,
and a new node token ends every login at once.

CSRF: a SameSite=Strict cookie is not sent on cross-site requests, and every cookie-authenticated
unsafe request must also carry ``X-CSRF-Token`` — a header no cross-site form can set, and which a
cross-origin script cannot send without a CORS preflight we never grant.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from fastapi import Request

from colony.server._store import add_web_session, delete_web_session, purge_web_sessions, web_session_alive
from colony.server.errors import APIError
from colony.store import Database

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "SESSION_TTL_S",
    "csrf_token",
    "end_web_session",
    "load_or_create_token",
    "page_auth",
    "read_token",
    "require_auth",
    "start_web_session",
    "token_matches",
]

COOKIE_NAME = "colony_session"
CSRF_HEADER = "x-csrf-token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: A login lasts two weeks; logging out, or a new node token, ends it sooner.
SESSION_TTL_S = 14 * 24 * 3600


def token_path(home: Path) -> Path:
    return home / "token"


def read_token(home: Path) -> str | None:
    path = token_path(home)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


def load_or_create_token(home: Path) -> tuple[str, bool]:
    """The node's token, creating it (atomically, mode 0600) if missing. Returns (token, created)."""
    existing = read_token(home)
    if existing:
        return existing, False
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path = token_path(home)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        again = read_token(home)
        if again:
            return again, False
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token, True


def _mac(token: str, purpose: bytes) -> str:
    return hmac.new(token.encode(), purpose, hashlib.sha256).hexdigest()


def _node_token(request: Request) -> str:
    token: str = request.app.state.token
    return token


def _db(request: Request) -> Database:
    db: Database = request.app.state.node.db
    return db


def _session_key(token: str, session_id: str) -> str:
    """What the table stores for a session id: keyed by the node token, so a new token ends every login."""
    return _mac(token, b"colony web session v2\0" + session_id.encode())


def start_web_session(request: Request) -> str:
    """Record a new login and return its cookie value (a random id, stored only as a keyed hash)."""
    session_id = secrets.token_urlsafe(32)
    now = time.time()
    db = _db(request)
    purge_web_sessions(db, now)
    add_web_session(db, _session_key(_node_token(request), session_id), now, now + SESSION_TTL_S)
    return session_id


def end_web_session(request: Request) -> None:
    """Delete the request's login, so its cookie stops working even where a copy of it survives."""
    value = request.cookies.get(COOKIE_NAME)
    if value:
        delete_web_session(_db(request), _session_key(_node_token(request), value))


def csrf_token(request: Request) -> str:
    """The CSRF token of the request's login: derived from its session id, so it dies with it.

    Empty without a session cookie (bearer clients need none: a browser cannot forge that header).
    """
    value = request.cookies.get(COOKIE_NAME)
    return _mac(_node_token(request), b"colony csrf v2\0" + value.encode()) if value else ""


def token_matches(request: Request, candidate: str) -> bool:
    return hmac.compare_digest(candidate.encode(), _node_token(request).encode())


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _cookie_ok(request: Request) -> bool:
    cached = getattr(request.state, "web_session_ok", None)
    if cached is not None:
        return bool(cached)
    value = request.cookies.get(COOKIE_NAME) or ""
    ok = 0 < len(value) <= 256 and web_session_alive(_db(request), _session_key(_node_token(request), value), time.time())
    request.state.web_session_ok = ok
    return ok


def page_auth(request: Request) -> bool:
    """True when a page request carries a valid login cookie (or bearer token)."""
    bearer = _bearer(request)
    return (bearer is not None and token_matches(request, bearer)) or _cookie_ok(request)


async def require_auth(request: Request) -> None:
    """FastAPI dependency for every endpoint except health and readiness."""
    bearer = _bearer(request)
    if bearer is not None:
        if token_matches(request, bearer):
            return
        raise APIError(401, "unauthorized", "The bearer token is wrong. `colony token` prints the right one.")
    if _cookie_ok(request):
        if request.method in _UNSAFE:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent.encode(), csrf_token(request).encode()):
                raise APIError(403, "csrf_failed", "Missing or wrong X-CSRF-Token header for a cookie-authenticated request.")
        return
    raise APIError(
        401, "unauthorized",
        "Authentication required: send 'Authorization: Bearer <token>' (print it with `colony token`) or log in at /login.",
    )

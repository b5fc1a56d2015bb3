"""Authentication: one bearer token per node, and a cookie for the web UI.

The token is generated on first start and kept in ``$COLONY_HOME/token`` (mode 0600); `colony
token` prints it. API clients send ``Authorization: Bearer <token>``. The web UI logs in with the
token once and gets a cookie holding an HMAC of it (HttpOnly, SameSite=Strict), never the token.

CSRF: a SameSite=Strict cookie is not sent on cross-site requests, and every cookie-authenticated
unsafe request must also carry ``X-CSRF-Token`` — a header no cross-site form can set, and which a
cross-origin script cannot send without a CORS preflight we never grant.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from fastapi import Request

from colony.server.errors import APIError

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "csrf_token",
    "load_or_create_token",
    "login_cookie_value",
    "page_auth",
    "read_token",
    "require_auth",
    "token_matches",
]

COOKIE_NAME = "colony_session"
CSRF_HEADER = "x-csrf-token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


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


def login_cookie_value(token: str) -> str:
    return _mac(token, b"colony web session v1")


def _node_token(request: Request) -> str:
    token: str = request.app.state.token
    return token


def csrf_token(request: Request) -> str:
    return _mac(_node_token(request), b"colony csrf v1")


def token_matches(request: Request, candidate: str) -> bool:
    return hmac.compare_digest(candidate.encode(), _node_token(request).encode())


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _cookie_ok(request: Request) -> bool:
    value = request.cookies.get(COOKIE_NAME)
    if not value:
        return False
    return hmac.compare_digest(value.encode(), login_cookie_value(_node_token(request)).encode())


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
            if not hmac.compare_digest(sent.encode(), csrf_token(request).encode()):
                raise APIError(403, "csrf_failed", "Missing or wrong X-CSRF-Token header for a cookie-authenticated request.")
        return
    raise APIError(
        401, "unauthorized",
        "Authentication required: send 'Authorization: Bearer <token>' (print it with `colony token`) or log in at /login.",
    )

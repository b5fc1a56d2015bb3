"""Talking to another node: ``/federation/v1/*`` over HTTP, each POST NIP-98 signed by this node's key.

`PeerClient` is the only place federation speaks HTTP. Whatever a peer answers is checked before
it is used: a hello must be a valid signed announcement, and when the caller knows which key it
expects (``expect``), it must be that key's. A peer that does not answer, or answers something
that is not Colony's, is `PeerUnreachable`; a peer that refuses is `Refused` with its status and
its JSON body's ``code``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from colony.federation.errors import FederationError, PeerUnreachable, Refused
from colony.federation.messages import RoleView, parse_announcement
from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.identity.nip98 import auth_header

__all__ = ["PREFIX", "Delivery", "PeerClient", "nip98_header"]

PREFIX = "/federation/v1"


@dataclass(frozen=True)
class Delivery:
    """How a peer answered one message: ``accepted``, ``duplicate`` (it had it), or ``reorder``
    with the number it expects next."""

    outcome: str
    expected: int | None = None


class PeerClient:
    """NIP-98 signed requests to peers, on one connection pool (close it, or use ``async with``)."""

    def __init__(self, key: SchnorrKey, *, timeout_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.key = key
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport, follow_redirects=False)

    async def __aenter__(self) -> PeerClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @staticmethod
    def url(base: str, route: str) -> str:
        return base.rstrip("/") + PREFIX + route

    async def _send(self, method: str, url: str, body: bytes | None = None) -> httpx.Response:
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
            headers["authorization"] = nip98_header(self.key, url, method, body)
        try:
            return await self._http.request(method, url, content=body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError) as exc:
            raise PeerUnreachable(f"No answer from {url}: {exc or type(exc).__name__}.") from exc

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise PeerUnreachable(f"{response.request.url} answered {response.status_code} without JSON: "
                                  "is it a Colony node?") from exc
        if not isinstance(data, dict):
            raise PeerUnreachable(f"{response.request.url} answered JSON that is not an object.")
        return data

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        data = self._json(response)
        if response.status_code >= 400:
            raise Refused(response.status_code, str(data.get("code") or "refused"),
                          str(data.get("message") or f"{response.request.url} answered {response.status_code}."),
                          **{k: v for k, v in data.items() if k not in ("code", "message")})
        return data

    @staticmethod
    def _announcement(data: dict[str, Any], expect: str | None, where: str) -> Event:
        try:
            event = Event.model_validate(data)
            parse_announcement(event)
        except (ValueError, FederationError) as exc:
            raise FederationError(f"{where} did not answer a valid signed announcement: {exc}",
                                  reason="bad_signature") from exc
        if expect is not None and event.pubkey != expect:
            raise FederationError(f"{where} is node {event.pubkey[:16]}…, not the expected {expect[:16]}….",
                                  reason="bad_signature")
        return event

    async def hello(self, base: str, *, expect: str | None = None) -> Event:
        """The node's signed announcement at ``base`` (verified; optionally pinned to a key)."""
        url = self.url(base, "/hello")
        response = await self._send("GET", url)
        return self._announcement(self._check(response), expect, url)

    async def join(self, base: str, announcement: Event, invite: str | None, *, expect: str | None = None,
                   introduction: Event | None = None) -> Event:
        """Ask the node at ``base`` to accept us (``introduction``: the message of one of its members
        introducing it to us, as evidence); returns its announcement."""
        url = self.url(base, "/join")
        fields: dict[str, Any] = {"announcement": announcement.model_dump(), "invite": invite}
        if introduction is not None:
            fields["introduction"] = introduction.model_dump()
        body = _dumps(fields)
        data = self._check(await self._send("POST", url, body))
        return self._announcement(data.get("announcement") or {}, expect, url)

    async def announce(self, base: str, announcement: Event) -> RoleView | None:
        """Our heartbeat: the current announcement; returns the role the member follows (None if unreadable)."""
        data = self._check(await self._send("POST", self.url(base, "/announce"), _dumps(announcement.model_dump())))
        try:
            return RoleView.model_validate(data.get("role"))
        except ValueError:
            return None

    async def deliver(self, base: str, event: Event) -> Delivery:
        """One message from the outbox; a ``reorder`` refusal is returned (the sender rewinds), not raised."""
        response = await self._send("POST", self.url(base, "/inbox"), _dumps(event.model_dump()))
        data = self._json(response)
        if response.status_code == 409 and data.get("code") == "reorder" and isinstance(data.get("expected"), int):
            return Delivery("reorder", int(data["expected"]))
        data = self._check(response)
        return Delivery("duplicate" if data.get("duplicate") else "accepted")


def nip98_header(key: SchnorrKey, url: str, method: str, body: bytes | None = None) -> str:
    """A NIP-98 ``Authorization`` value for one node-to-node request (each call a new event)."""
    return auth_header(key, url, method, body)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

"""Response headers every answer of the node carries, set in one place rather than per route.

- ``X-Content-Type-Options: nosniff`` on everything: a browser must never guess that a JSON
  error (or a cartridge's text) is HTML or script.
- ``Cache-Control: no-store`` on the API, the OpenAPI document and the metrics: they carry the
  node's state and, with a token, private data that no cache (shared or the browser's) should keep.

A route that sets either header itself keeps its own value (static files are cacheable).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["NO_STORE_PREFIXES", "SecurityHeaders"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths whose answers are never stored by a cache.
NO_STORE_PREFIXES = ("/api/", "/openapi.json", "/metrics")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = str(scope.get("path", "")).startswith(NO_STORE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in present:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if no_store and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

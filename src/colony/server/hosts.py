"""The Host check: the node answers only to the names it is reached by, never to any ``Host:``.

Why: a page on another site can point its own domain at 127.0.0.1 (DNS rebinding). The browser
then treats the node as that site's origin — same-origin reads included — and only the
``Host`` header still says which name was asked for. So every request whose Host is not one of
the node's names is refused with a JSON 421 before any route runs.

The names: the loopback names (``127.0.0.1``, ``localhost``, ``[::1]``) with the bound port, the
bound address itself, and ``server_allowed_hosts`` (for ``--allow-remote``: the names clients use
to reach the node). An entry without a port allows any port; the ones `allowed_hosts` builds
for a server carry the port it listens on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

__all__ = ["LOOPBACK_NAMES", "HostCheck", "allowed_hosts", "host_entry", "split_host"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The names a browser on this machine uses for a loopback node.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def host_entry(name: str, port: int | None = None) -> str:
    """``name`` (an address or host name) as it appears in a Host header: lowercase, IPv6 in brackets."""
    name = name.strip().lower().rstrip(".")
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        if ipaddress.ip_address(bare).version == 6:
            name = f"[{bare}]"
    except ValueError:
        pass
    return f"{name}:{port}" if port is not None else name


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header as (name, port); None when it is not a well-formed host[:port]."""
    value = value.strip().lower()
    if not value or any(c.isspace() or c in "/\\@?#" for c in value):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text_or_empty = value.partition(":")
        port_text = port_text_or_empty if sep else None
        if ":" in port_text_or_empty:
            return None
    if port_text is None:
        return name.rstrip("."), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return name.rstrip("."), int(port_text)


def allowed_hosts(bind: str, port: int, extra: Iterable[str] = ()) -> list[str]:
    """The Host values a server bound to ``bind``:``port`` answers to.

    The loopback names and the bound address, each with the port (and bare on port 80, where a
    browser leaves the port out), plus ``extra`` names with the same port unless they name one.
    A wildcard bind (``0.0.0.0``, ``::``) adds no name of its own: clients' names go in ``extra``.
    """
    names = [*LOOPBACK_NAMES]
    if bind not in ("0.0.0.0", "::", ""):
        names.append(bind)
    out: list[str] = []
    for name in names:
        out.append(host_entry(name, port))
        if port == 80:
            out.append(host_entry(name))
    for entry in extra:
        parsed = split_host(host_entry(entry))
        if parsed is None:
            continue
        name, own_port = parsed
        out.append(host_entry(name, own_port if own_port is not None else port))
        if own_port is None and port == 80:
            out.append(host_entry(name))
    return list(dict.fromkeys(out))


class HostCheck:
    """Refuse requests whose ``Host`` is not an allowed name with a JSON 421 (Misdirected Request).

    ``hosts`` entries are ``name`` (any port) or ``name:port``; see `allowed_hosts`.
    """

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.any_port: set[str] = set()
        self.exact: set[tuple[str, int]] = set()
        for entry in hosts:
            parsed = split_host(host_entry(entry))
            if parsed is None:
                raise ValueError(f"not a host name or host:port: {entry!r}")
            name, port = parsed
            if port is None:
                self.any_port.add(name)
            else:
                self.exact.add((name, port))

    def allows(self, header: str) -> bool:
        parsed = split_host(header)
        if parsed is None:
            return False
        name, port = parsed
        if name in self.any_port:
            return True
        # No port in the header means the scheme's default (a browser omits :80).
        return (name, port if port is not None else 80) in self.exact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        hosts = [v for k, v in scope.get("headers", []) if k == b"host"]
        if len(hosts) == 1 and self.allows(hosts[0].decode("latin-1")):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (
            b'{"code":"unknown_host","message":"This node does not answer to that Host name. '
            b'Open it by the address it serves on (e.g. http://127.0.0.1:8420), or add the name to '
            b'COLONY_SERVER_ALLOWED_HOSTS."}'
        )
        await send({"type": "http.response.start", "status": 421, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"),
        ]})
        await send({"type": "http.response.body", "body": body})

"""`colony up`: build the node, its app and a uvicorn server on loopback, and run until a signal.

uvicorn handles SIGINT/SIGTERM: it stops accepting, lets responses finish, then runs the app's
lifespan shutdown, which cancels in-flight turns (each records itself as cancelled) and closes
the database — so a stop never leaves half-written rows.
"""

from __future__ import annotations

import ipaddress
import socket

import uvicorn

from colony.config import Settings
from colony.errors import ConfigError
from colony.node import Node
from colony.observability import configure_observability
from colony.server.app import create_app
from colony.server.auth import load_or_create_token
from colony.server.hosts import allowed_hosts, split_host
from colony.server.turns import ApprovalBroker

__all__ = ["DEFAULT_PORT", "build_server", "is_loopback"]

DEFAULT_PORT = 8420


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_server(
    settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, allow_remote: bool = False
) -> tuple[uvicorn.Server, str, bool]:
    """Return (server, token, token_was_created). Refuses a non-loopback bind without ``allow_remote``.

    The app answers only to the loopback names and ``host`` on ``port``, plus the names in
    ``settings.server_allowed_hosts`` (how clients reach a node bound with ``--allow-remote``).
    """
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"Refusing to bind {host}: Colony serves on loopback only unless you pass --allow-remote "
            "(every endpoint but health then requires the node token, so keep it secret)."
        )
    bad = [name for name in settings.server_allowed_hosts if split_host(name) is None]
    if bad:
        raise ConfigError(f"COLONY_SERVER_ALLOWED_HOSTS has {bad[0]!r}, which is not a host name or host:port.")
    configure_observability(settings)
    token, created = load_or_create_token(settings.home)
    broker = ApprovalBroker()
    node = Node(settings, approver=broker)
    app = create_app(node, broker, token=token,
                     allowed_hosts=allowed_hosts(host, port, settings.server_allowed_hosts))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    app.state.listen_url = f"http://{shown}:{port}"  # federation's URL for peers, unless COLONY_PUBLIC_URL says
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
        timeout_graceful_shutdown=10, server_header=False,
    )
    return uvicorn.Server(config), token, created


def free_port(host: str) -> int:
    """A port the OS says is free now (for ``--port 0``, so the URL can be printed)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether the server could bind ``port`` now: with SO_REUSEADDR, as uvicorn binds, so the
    TIME_WAIT connections a killed node leaves behind for a minute do not block its restart,
    while a socket still listening there does."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True

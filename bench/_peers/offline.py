"""Keep the peer benchmark off the network.

The figures must come from this machine alone, and two of the engines have ways to reach out:
Chroma ships product telemetry (anonymous by default, on by default) and both it and the
sentence-embedding stacks know how to download models from a hub. Every engine here gets its
vectors from Colony's static embedder, so no model is ever needed; this module turns the
telemetry and hub switches off and, as a second line, makes any connection from Python to a
non-loopback address fail loudly instead of silently leaving the machine. (Native code in the
engines does not go through Python's sockets; the benchmark was also run in a network namespace
with no interface but loopback, see docs/benchmarks.md.)
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

__all__ = ["NetworkDisabled", "forbid_network"]

#: Read by the libraries when they are first imported, so set before any engine import.
_ENV = {
    "ANONYMIZED_TELEMETRY": "False",  # Chroma's product telemetry
    "HF_HUB_OFFLINE": "1",  # no model downloads from the Hugging Face hub
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "LANCEDB_LOG": "error",  # lance logs a deprecation warning on every query otherwise
}


class NetworkDisabled(ConnectionRefusedError):
    """A library tried to connect to a non-loopback address during the benchmark."""


def _allowed(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX paths stay on the machine
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def forbid_network() -> None:
    """Set the offline switches and refuse connections to anything but loopback (idempotent)."""
    for key, value in _ENV.items():
        os.environ.setdefault(key, value)
    if getattr(socket.socket.connect, "_colony_offline", False):
        return
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if not _allowed(address):
            raise NetworkDisabled(f"bench_memory_peers runs offline: refused a connection to {address!r}")
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if not _allowed(address):
            raise NetworkDisabled(f"bench_memory_peers runs offline: refused a connection to {address!r}")
        return connect_ex(self, address)

    guarded_connect._colony_offline = True  # type: ignore[attr-defined]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign, assignment]

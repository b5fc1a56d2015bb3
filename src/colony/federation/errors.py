"""Federation's errors, a branch of `colony.errors.ColonyError`::

    FederationError            anything federation refuses or cannot do (``reason`` is a stable code)
    ├── PeerUnreachable        a node did not answer, or answered something that is not Colony's
    └── Refused                a request from another node was refused; ``status`` is the HTTP
                               answer, ``incident`` the kind recorded (None when nothing was)

They carry data and never log; the server maps `Refused` onto its JSON errors, the CLI onto
exit codes.
"""

from __future__ import annotations

from typing import Any

from colony.errors import ColonyError

__all__ = ["FederationError", "PeerUnreachable", "Refused"]


class FederationError(ColonyError):
    code = "federation_error"

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        self.reason = reason
        super().__init__(message)


class PeerUnreachable(FederationError):
    code = "peer_unreachable"

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="unreachable")


class Refused(FederationError):
    code = "refused"

    def __init__(self, status: int, reason: str, message: str, *, incident: str | None = None,
                 **extra: Any) -> None:
        self.status, self.incident, self.extra = status, incident, extra
        super().__init__(message, reason=reason)

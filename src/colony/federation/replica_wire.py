"""What a ledger source answers, byte for byte: the replication protocol's messages and errors.

One set of pydantic models is the wire format of both the in-process sources and the HTTP routes
(`colony.server.api.federation_ledger`), so a replica pulling over HTTP and one reading another
node's store get the same values, and the same byte counts. Every model refuses unknown fields and
bounds its lists: an answer is untrusted input until `colony.federation.replica_verify` has
recomputed every id and signature in it.

Errors (a branch of `colony.errors.ColonyError`)::

    ReplicationError
    ├── SourceError          the source could not be asked or answered badly (status, code)
    └── ProofRejectedError   an equivocation proof that does not convict anyone
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from colony.errors import ColonyError
from colony.identity.events import Event

__all__ = [
    "MAX_PAGE",
    "PREFIX_PATTERN",
    "ChildrenAnswer",
    "EntryPage",
    "ProofRejectedError",
    "ReplicationError",
    "ReputationItem",
    "ReputationPage",
    "RootInfo",
    "SourceError",
]

#: The most entries (or reputation events) one answer carries; the routes refuse a larger ``limit``.
MAX_PAGE = 1000
#: A node of the state tree: 0 to `colony.ledger.merkle.DEPTH` (4) lowercase hex digits.
PREFIX_PATTERN = r"^[0-9a-f]{0,4}$"
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ReplicationError(ColonyError):
    code = "replication_error"


class SourceError(ReplicationError):
    """A source that could not be reached or answered with an error or a malformed body."""

    code = "source_error"

    def __init__(self, message: str, *, status: int | None = None, reason: str = "unavailable") -> None:
        self.status, self.reason = status, reason
        super().__init__(message)


class ProofRejectedError(ReplicationError):
    code = "invalid_proof"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RootInfo(_Wire):
    """The source's state root (the Merkle root over its account heads) and how many entries it holds."""

    root: Hex64
    entries: int = Field(ge=0)


class ChildrenAnswer(_Wire):
    """The children of one node of the state tree: hex digit → subtree hash, or account → leaf at a bucket."""

    prefix: str = Field(pattern=PREFIX_PATTERN)
    children: dict[str, Hex64] = Field(max_length=4096)


class EntryPage(_Wire):
    """Signed ledger entries (kind 7101), oldest first, and the authorisations (7100) and treasury
    orders (7102) they cite — the lines of `colony.ledger.feed.export_lines`, a page at a time."""

    entries: list[Event] = Field(max_length=MAX_PAGE)
    cited: list[Event] = Field(max_length=2 * MAX_PAGE)
    #: True when the source holds more entries after the last one here.
    more: bool


class ReputationItem(_Wire):
    """One market event (kind 7204 verification or 7205 feedback) at its position on the source."""

    cursor: int = Field(ge=1)
    event: Event


class ReputationPage(_Wire):
    events: list[ReputationItem] = Field(max_length=MAX_PAGE)
    more: bool

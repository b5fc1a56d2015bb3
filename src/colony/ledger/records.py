"""Plain values the ledger hands out: journal entries, transfer results, accounts, holds, reports.

`Entry` is a slotted dataclass, not a pydantic model, because verification builds hundreds of
thousands of them; the results the surfaces serialise are pydantic models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from colony.identity.events import KINDS, Event
from colony.ledger.machine import HoldState
from colony.ledger.wire import (
    EntryBody,
    MintOrder,
    TransferAuth,
    parse_entry_content,
    parse_mint_content,
    parse_transfer_content,
)

__all__ = [
    "AccountView",
    "Entry",
    "HoldView",
    "MintResult",
    "Problem",
    "SignedMint",
    "SignedTransfer",
    "TransferResult",
    "VerifyReport",
]


class Entry(NamedTuple):
    """A signed journal entry: its body plus the event fields (signer = the home node)."""

    body: EntryBody
    signer: str
    created_at: int
    id: str
    sig: str

    def event(self) -> Event:
        return Event(id=self.id, pubkey=self.signer, created_at=self.created_at, kind=KINDS["ledger_entry"],
                     tags=[], content=self.body.content(), sig=self.sig)

    @classmethod
    def from_event(cls, event: Event) -> Entry:
        """The entry an event carries (ValueError when it is not a well-formed ledger entry).

        Only the shape is checked here; `colony.ledger.verify` recomputes the id and the signature.
        """
        if event.kind != KINDS["ledger_entry"]:
            raise ValueError(f"event {event.id} is of kind {event.kind}, not a ledger entry")
        if event.tags:
            raise ValueError(f"ledger entry {event.id} has tags; entries carry none")
        return cls(body=parse_entry_content(event.content), signer=event.pubkey, created_at=event.created_at,
                   id=event.id, sig=event.sig)

    def as_dict(self) -> dict[str, Any]:
        b = self.body
        return {"id": self.id, "account": b.account, "seq": b.seq, "prev": b.prev, "kind": b.kind,
                "amount": b.amount, "balance": b.balance, "counterparty": b.counterparty, "ref": b.ref,
                "nonce": b.nonce, "signer": self.signer, "created_at": self.created_at, "sig": self.sig}


@dataclass(frozen=True, slots=True)
class SignedTransfer:
    """A payer's authorisation with its event fields (the payer is the event's pubkey)."""

    auth: TransferAuth
    created_at: int
    id: str
    sig: str

    def event(self) -> Event:
        return Event(id=self.id, pubkey=self.auth.payer, created_at=self.created_at, kind=KINDS["transfer"],
                     tags=[], content=self.auth.content(), sig=self.sig)

    @classmethod
    def from_event(cls, event: Event) -> SignedTransfer:
        """Shape only (ValueError); the signer must be the payer. Signatures are checked by the caller."""
        if event.kind != KINDS["transfer"]:
            raise ValueError(f"event {event.id} is of kind {event.kind}, not a transfer authorisation")
        if event.tags:
            raise ValueError("a transfer authorisation carries no tags; put everything in its content")
        auth = parse_transfer_content(event.content)
        if event.pubkey != auth.payer:
            raise ValueError("the authorisation is not signed by its payer (pubkey must equal from)")
        return cls(auth=auth, created_at=event.created_at, id=event.id, sig=event.sig)


@dataclass(frozen=True, slots=True)
class SignedMint:
    """A treasury order with its event fields (signed by the node)."""

    order: MintOrder
    signer: str
    created_at: int
    id: str
    sig: str

    def event(self) -> Event:
        return Event(id=self.id, pubkey=self.signer, created_at=self.created_at, kind=KINDS["treasury"],
                     tags=[], content=self.order.content(), sig=self.sig)

    @classmethod
    def from_event(cls, event: Event) -> SignedMint:
        if event.kind != KINDS["treasury"]:
            raise ValueError(f"event {event.id} is of kind {event.kind}, not a treasury order")
        if event.tags:
            raise ValueError("a treasury order carries no tags")
        return cls(order=parse_mint_content(event.content), signer=event.pubkey, created_at=event.created_at,
                   id=event.id, sig=event.sig)


class TransferResult(BaseModel):
    """What applying one authorisation did. A retry of the same nonce gets this same value back."""

    model_config = ConfigDict(frozen=True)

    transfer_id: str
    op: Literal["transfer", "hold"]
    payer: str
    payee: str | None
    nonce: str
    amount: int
    memo: str = ""
    status: Literal["applied", "refused"]
    reason: str | None = None
    #: Ids of the entries written (payer's first), empty when refused.
    entries: list[str] = []
    #: The payer's available balance just after (or at the refusal).
    payer_balance: int = 0
    #: True when this is the recorded result of an earlier submission of the same nonce.
    replayed: bool = False


class MintResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    treasury_id: str
    account: str
    amount: int
    reason: str
    entry: str
    balance: int
    supply: int


class AccountView(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: str
    home: str
    seq: int
    head: str
    balance: int
    held: int


class HoldView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    payer: str
    payee: str | None
    amount: int
    state: HoldState
    captured_to: str | None = None


class Problem(BaseModel):
    """One thing `verify` found wrong, located at an entry (seq 0: the account as a whole)."""

    model_config = ConfigDict(frozen=True)

    account: str
    seq: int
    entry_id: str | None
    code: str
    message: str


class VerifyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    entries: int
    accounts: int
    transfers: int
    mints: int
    supply: int
    signatures: int
    seconds: float  # not money: how long the verification took
    #: True when some counterparty's chain is not in the feed (an export of some accounts): the
    #: pairing of those entries and the supply could not be checked.
    partial: bool = False
    #: Every problem, the first (the one to look at) first.
    problems: list[Problem] = []

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

"""The credit ledger (E, P): integer micro-credits moved only by signed authorisations, kept as
one signed hash chain per account by the account's home node.

Why not a CRDT map: two replicas that concurrently debit 30 and 50 from 100 converge to 50 with
last-writer-wins, and any peer may overwrite another's entry; spending needs one writer per
account. Here each account has a home node, the only signer of its chain; every entry (debit,
credit, hold, capture, release, mint) is a NIP-01 event whose id is its hash and the next
entry's ``prev``. A transfer is authorised by the payer's BIP-340 signature over (from, to,
amount, nonce, validity window, memo); its nonce is the idempotency key. The invariants
(balance ≥ 0, contiguous linked chains, a nonce used once, append-only rows) are enforced by
the database itself — SQLite under ``BEGIN IMMEDIATE``, or PostgreSQL with row locks when
``COLONY_DATABASE_URL`` is set (`open_ledger_store` picks); `verify_feed` recomputes everything
from the signed events; a Merkle root over account heads lets replicas compare in one hash.

Modules: `amounts` (parsing at the edge) · `wire` (what is signed) · `records` · `machine`
(escrow holds) · `store` (the `LedgerStore` protocol, SQLite, `open_ledger_store`) · `_writes`
and `_reads` (the SQL, shared by both engines) · `pg_store` (PostgreSQL) · `service`
(`Ledger`, the policy) · `verify` · `feed` (export / import) · `merkle` · `proofs`
(equivocation). May import: `colony.errors`, `colony.store`, `colony.identity` (keys and
events), `colony.observability`. Surfaces (CLI, server) import this; nothing here imports them.
"""

from __future__ import annotations

from colony.ledger.amounts import MAX_AMOUNT, MICRO, format_amount, parse_amount
from colony.ledger.errors import (
    HoldNotFoundError,
    IllegalHoldTransitionError,
    InvalidAuthorisationError,
    LedgerError,
    TransferRefusedError,
    UnknownAccountError,
)
from colony.ledger.feed import export_lines, read_all, read_lines, read_store
from colony.ledger.merkle import TreeDiff, diff
from colony.ledger.proofs import EquivocationProof, find_equivocations, verify_equivocation
from colony.ledger.records import (
    AccountView,
    Entry,
    HoldView,
    MintResult,
    Problem,
    TransferResult,
    VerifyReport,
)
from colony.ledger.service import Ledger, account_id, sign_transfer
from colony.ledger.store import LedgerStore, SqliteLedgerStore, open_ledger_store
from colony.ledger.verify import verify_feed

__all__ = [
    "MAX_AMOUNT",
    "MICRO",
    "AccountView",
    "Entry",
    "EquivocationProof",
    "HoldNotFoundError",
    "HoldView",
    "IllegalHoldTransitionError",
    "InvalidAuthorisationError",
    "Ledger",
    "LedgerError",
    "LedgerStore",
    "MintResult",
    "Problem",
    "SqliteLedgerStore",
    "TransferRefusedError",
    "TransferResult",
    "TreeDiff",
    "UnknownAccountError",
    "VerifyReport",
    "account_id",
    "diff",
    "export_lines",
    "find_equivocations",
    "format_amount",
    "open_ledger_store",
    "parse_amount",
    "read_all",
    "read_lines",
    "read_store",
    "sign_transfer",
    "verify_equivocation",
    "verify_feed",
]

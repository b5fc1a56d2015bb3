"""The payments journal and the EVM nonce store (tables of migration 10), on either engine.

`PaymentJournal` holds the statements, written once for both engines (``?`` placeholders; the
PostgreSQL journal, `colony.payments.pg_journal`, rewrites them); an engine only runs them.
`open_journal` picks the engine as the ledger does: PostgreSQL when ``COLONY_DATABASE_URL`` is
set, else the node's SQLite file.

Writes are single statements (one transaction each). A claim is ``INSERT … ON CONFLICT DO
NOTHING RETURNING``: it either creates the row or finds it there, so two processes — or two
nodes on one PostgreSQL — racing for one nonce get exactly one winner.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from colony.observability.metrics import observe_x402_payment
from colony.store import Database

if TYPE_CHECKING:
    from colony.config import Settings

__all__ = ["PaymentJournal", "PaymentRecord", "SqlitePaymentJournal", "open_journal"]

Direction = Literal["in", "out"]
Status = Literal["settled", "failed", "refused", "denied"]
#: Longest resource / reason text kept (a URL can be long; the journal is not a log of bodies).
MAX_TEXT = 512


class PaymentRecord(BaseModel):
    id: int = 0
    at: float = 0.0  # a timestamp: not money
    direction: Direction
    agent: str | None = None
    scheme: str
    network: str
    asset: str
    amount: str
    payer: str | None = None
    pay_to: str
    resource: str
    status: Status
    reason: str | None = None
    tx: str | None = None


class PaymentJournal(ABC):
    """The journal's statements over one engine, which supplies `_query`."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one statement (``?`` placeholders) as its own transaction; its rows as dicts."""

    def record(self, rec: PaymentRecord) -> int:
        """Append one payment (made or received, settled or not); returns its id."""
        observe_x402_payment(rec.direction, rec.scheme, rec.status)
        rows = self._query(
            "INSERT INTO x402_payments(at, direction, agent, scheme, network, asset, amount, payer, pay_to, resource,"
            " status, reason, tx) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (rec.at or time.time(), rec.direction, rec.agent, rec.scheme[:64], rec.network[:128], rec.asset[:128],
             rec.amount, rec.payer, rec.pay_to[:128], rec.resource[:MAX_TEXT], rec.status,
             None if rec.reason is None else rec.reason[:MAX_TEXT], rec.tx))
        return int(rows[0]["id"])

    def payments(self, *, agent: str | None = None, direction: Direction | None = None, limit: int = 50,
                 before_id: int | None = None) -> list[PaymentRecord]:
        """Newest first."""
        where: list[str] = []
        params: list[Any] = []
        if agent is not None:
            where.append("agent = ?")
            params.append(agent)
        if direction is not None:
            where.append("direction = ?")
            params.append(direction)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = "SELECT * FROM x402_payments" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._query(sql + " ORDER BY id DESC LIMIT ?", (*params, max(1, min(limit, 500))))
        return [PaymentRecord.model_validate(dict(r)) for r in rows]

    def spent_since(self, payers: Sequence[str], network: str, asset: str, since: float) -> int:  # since: a timestamp, not money
        """Atomic units paid out (settled) on (network, asset) since ``since`` by any of ``payers``.

        ``payers`` are one agent's paying identities (its key for credits, its EVM address): they
        are global, where its name is only the node's — nodes sharing one PostgreSQL each have a
        ``colony``, and one's payments must not spend the other's daily limit.
        """
        wanted = sorted({p.lower() for p in payers})
        if not wanted:
            return 0
        marks = ", ".join("?" for _ in wanted)
        rows = self._query("SELECT amount FROM x402_payments WHERE direction = 'out' AND status = 'settled' AND "
                           f"network = ? AND lower(asset) = lower(?) AND at >= ? AND lower(payer) IN ({marks})",
                           (network, asset, since, *wanted))
        return sum(int(r["amount"]) for r in rows)

    def claim_nonce(self, network: str, asset: str, payer: str, nonce: str) -> bool:
        """Claim an authorisation's nonce for good; False if it was claimed before (by anyone)."""
        return bool(self._query(
            "INSERT INTO x402_nonces(network, asset, payer, nonce, claimed_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT (network, asset, payer, nonce) DO NOTHING RETURNING nonce",
            (network, asset.lower(), payer.lower(), nonce.lower(), time.time())))

    def nonce_claimed(self, network: str, asset: str, payer: str, nonce: str) -> bool:
        return bool(self._query("SELECT 1 AS x FROM x402_nonces WHERE network = ? AND asset = ? AND payer = ? AND "
                                "nonce = ?", (network, asset.lower(), payer.lower(), nonce.lower())))


class SqlitePaymentJournal(PaymentJournal):
    """The journal in the node's SQLite file."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.db.query(sql, params)


def open_journal(db: Database, settings: Settings) -> PaymentJournal:
    """The node's journal: on PostgreSQL when ``settings.database_url`` is set, else in ``db``."""
    if settings.database_url is None:
        return SqlitePaymentJournal(db)
    from colony.payments.pg_journal import PgPaymentJournal  # psycopg is imported only when a URL is set
    from colony.store.pg.shared import require_pg

    return PgPaymentJournal(require_pg(settings))


def as_dicts(records: list[PaymentRecord]) -> list[dict[str, Any]]:
    return [r.model_dump() for r in records]

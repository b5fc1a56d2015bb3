"""The payments journal and the EVM nonce store (tables of migration 10); the only SQL here.

Writes are single statements (one transaction each); a claim is an INSERT that either creates the
row or hits the primary key, so two processes racing for one nonce get exactly one winner.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import apsw
from pydantic import BaseModel

from colony.observability.metrics import observe_x402_payment
from colony.store import Database

__all__ = ["PaymentRecord", "claim_nonce", "list_payments", "nonce_claimed", "record_payment", "spent_since"]

Direction = Literal["in", "out"]
Status = Literal["settled", "failed", "refused", "denied"]
#: Longest resource / reason text kept (a URL can be long; the journal is not a log of bodies).
MAX_TEXT = 512


class PaymentRecord(BaseModel):
    id: int = 0
    at: float = 0.0
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


def record_payment(db: Database, rec: PaymentRecord) -> int:
    """Append one payment (made or received, settled or not); returns its id."""
    observe_x402_payment(rec.direction, rec.scheme, rec.status)
    return db.execute(
        "INSERT INTO x402_payments(at, direction, agent, scheme, network, asset, amount, payer, pay_to, resource,"
        " status, reason, tx) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (rec.at or time.time(), rec.direction, rec.agent, rec.scheme[:64], rec.network[:128], rec.asset[:128],
         rec.amount, rec.payer, rec.pay_to[:128], rec.resource[:MAX_TEXT], rec.status,
         None if rec.reason is None else rec.reason[:MAX_TEXT], rec.tx))


def list_payments(db: Database, *, agent: str | None = None, direction: Direction | None = None,
                  limit: int = 50, before_id: int | None = None) -> list[PaymentRecord]:
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
    rows = db.query(sql + " ORDER BY id DESC LIMIT ?", (*params, max(1, min(limit, 500))))
    return [PaymentRecord.model_validate(dict(r)) for r in rows]


def spent_since(db: Database, agent: str, network: str, asset: str, since: float) -> int:
    """Atomic units ``agent`` paid out (settled) on (network, asset) since ``since``."""
    rows = db.tuples("SELECT amount FROM x402_payments WHERE agent = ? AND direction = 'out' AND status = 'settled'"
                     " AND network = ? AND lower(asset) = lower(?) AND at >= ?", (agent, network, asset, since))
    return sum(int(r[0]) for r in rows)


def claim_nonce(db: Database, network: str, asset: str, payer: str, nonce: str) -> bool:
    """Claim an authorisation's nonce for good; False if it was claimed before (by anyone)."""
    try:
        db.execute("INSERT INTO x402_nonces(network, asset, payer, nonce, claimed_at) VALUES (?,?,?,?,?)",
                   (network, asset.lower(), payer.lower(), nonce.lower(), time.time()))
    except Exception as exc:  # the store wraps apsw's constraint error; look for it underneath
        if _is_constraint(exc):
            return False
        raise
    return True


def nonce_claimed(db: Database, network: str, asset: str, payer: str, nonce: str) -> bool:
    return db.one("SELECT 1 AS x FROM x402_nonces WHERE network = ? AND asset = ? AND payer = ? AND nonce = ?",
                  (network, asset.lower(), payer.lower(), nonce.lower())) is not None


def _is_constraint(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, apsw.ConstraintError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def as_dicts(records: list[PaymentRecord]) -> list[dict[str, Any]]:
    return [r.model_dump() for r in records]

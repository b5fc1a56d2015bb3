"""The payments journal and the EVM nonce claims on PostgreSQL (migration 10 there).

The statements are `colony.payments.journal.PaymentJournal`'s, rewritten to psycopg's
placeholders; each runs as its own transaction on the node's shared pool. The nonce claim's
``ON CONFLICT DO NOTHING`` makes one winner among every node of the colony that settles on this
database, not only among one node's processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from colony.payments.journal import PaymentJournal
from colony.store.paramstyle import format_style
from colony.store.pg import PgDatabase

__all__ = ["PgPaymentJournal"]


class PgPaymentJournal(PaymentJournal):
    """The journal on a PostgreSQL pool."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.db.query(format_style(sql), params)

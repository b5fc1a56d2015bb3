"""One SQL text for both engines: SQLite's ``?`` placeholders rewritten to psycopg's ``%s``.

Why: the stores that run on SQLite and on PostgreSQL (the ledger, the payments journal) share
their statements, so a query cannot say one thing on one engine and another on the other. They
are written in SQLite's style and rewritten here for psycopg — ``?`` becomes ``%s`` and a literal
``%`` is doubled — once per distinct text (cached). The rule for such SQL: no ``?`` inside a
string literal (none of the shared statements has one).

Outside `colony.store.pg` on purpose: importing it must not import psycopg.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["format_style"]


@lru_cache(maxsize=1024)
def format_style(sql: str) -> str:
    """``sql`` with ``?`` placeholders in psycopg's ``%s`` style."""
    return sql.replace("%", "%%").replace("?", "%s")

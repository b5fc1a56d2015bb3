"""One PostgreSQL pool per process and URL, shared by every store that lives there.

Why shared: the task queue, the ledger, memory and the session records of one node all live in
the database of ``COLONY_DATABASE_URL``; each opening its own pool would multiply the server's
connections by the number of stores, and each would run the migrations again. Call sites that
have only `Settings` (the CLI, the keyring, the market's helpers) get the same pool as `Node.pg`.

Why keyed by the process id too: a psycopg pool's sockets cannot cross ``fork``; a child process
(the autonomy worker pool, multiprocessing tests) opens its own pool on first use instead of
writing into its parent's connections.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import TYPE_CHECKING

from colony.errors import ConfigError

if TYPE_CHECKING:
    from colony.config import Settings
    from colony.store.pg._db import PgDatabase

__all__ = ["close_for", "close_shared", "is_open", "pg_for", "require_pg"]

_pools: dict[tuple[int, str], PgDatabase] = {}
_lock = threading.Lock()


def pg_for(settings: Settings) -> PgDatabase | None:
    """The migrated pool of ``settings.database_url``, opened on first use; None without a URL.

    Raises `StoreError` (with what to fix) when the server cannot be reached or its schema is newer.
    """
    if settings.database_url is None:
        return None
    url = settings.database_url.get_secret_value()
    key = (os.getpid(), url)
    with _lock:  # two first callers at once must not open two pools
        db = _pools.get(key)
        if db is None:
            from colony.store.pg import open_pg  # psycopg is an optional extra

            db = open_pg(url)
            _pools[key] = db
        return db


def require_pg(settings: Settings) -> PgDatabase:
    """`pg_for`, for callers that cannot work without PostgreSQL: `ConfigError` when no URL is set."""
    db = pg_for(settings)
    if db is None:
        raise ConfigError("This node has no PostgreSQL: set COLONY_DATABASE_URL=postgresql://user:pass@host/db.")
    return db


def is_open(settings: Settings) -> bool:
    """Whether this process holds an open pool for ``settings.database_url``."""
    if settings.database_url is None:
        return False
    with _lock:
        return (os.getpid(), settings.database_url.get_secret_value()) in _pools


def close_for(settings: Settings) -> None:
    """Close this process's pool for ``settings.database_url``, if it has one (a node shutting down)."""
    if settings.database_url is None:
        return
    with _lock:
        db = _pools.pop((os.getpid(), settings.database_url.get_secret_value()), None)
    if db is not None:
        db.close()


def close_shared() -> None:
    """Close this process's pools (at exit, and in tests that stop a server)."""
    with _lock:
        mine = [k for k in _pools if k[0] == os.getpid()]
        for key in mine:
            _pools.pop(key).close()


atexit.register(close_shared)

"""The data directory (``COLONY_HOME``) on disk: created owner-only, kept owner-only, checked for
the traces of an earlier node.

Why owner-only: the directory holds everything the agent was told and did — ``colony.db`` and
its ``-wal``/``-shm`` files (conversations, memories, the audit log), the node token, backups.
Anyone else who can read them reads all of that and, with the token, drives the node. So the
directory is 0700 and every file Colony keeps there 0600: created that way, and tightened (with
a warning in the log, once) where an older Colony, a copy or a restore left them readable by
others.

Why look for traces: an existing but empty (0-byte) ``colony.db`` is indistinguishable from a new
node to SQLite, so it would silently start afresh. When the directory also holds a token, a cache
or backups, a node *had* data there; the database was lost or truncated, and a person must hear
about it before the new empty one replaces it in their mind.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from colony.errors import DataDirectoryError

__all__ = [
    "BACKUP_DIR",
    "BACKUP_JOURNAL",
    "DIR_MODE",
    "FILE_MODE",
    "SIDE_FILES",
    "earlier_node_traces",
    "empty_database_traces",
    "prepare_home",
    "private_dir",
    "tighten",
    "warn_if_empty",
]

log = logging.getLogger("colony.store")

DIR_MODE = 0o700
FILE_MODE = 0o600
#: SQLite's companions of a database file: write-ahead log, its index, a rollback journal.
SIDE_FILES = ("-wal", "-shm", "-journal")
#: Where backups made without an explicit path (and every API backup) go, under COLONY_HOME.
BACKUP_DIR = "backups"
#: One JSON line per backup made; `colony backup --list`, the API and the health page read it.
BACKUP_JOURNAL = "backups.jsonl"
#: Files and folders only a node that has run (and kept data) leaves in its data directory.
_TRACES = ("token", "cache", "bench", BACKUP_DIR, BACKUP_JOURNAL)
#: Other files in COLONY_HOME that hold secrets or data and are kept 0600.
_SECRET_FILES = ("token", BACKUP_JOURNAL, "colony.db", "colony.db.lock",
                 *(f"colony.db{suffix}" for suffix in SIDE_FILES))


def _problem(home: Path, exc: OSError) -> DataDirectoryError:
    """Say what is wrong with ``home`` in words that tell the person what to change."""
    if isinstance(exc, FileExistsError) or (home.exists() and not home.is_dir()):
        why = "it exists but is a file, not a directory"
    elif isinstance(exc, NotADirectoryError):
        why = "a part of that path is a file, not a directory"
    elif isinstance(exc, PermissionError):
        why = "permission denied: this user may not create or write it (check the parent folder's owner and mode)"
    elif exc.errno == errno.EROFS:
        why = "it is on a read-only file system"
    elif exc.errno == errno.ENOSPC:
        why = "the disk is full"
    else:
        why = exc.strerror or str(exc)
    return DataDirectoryError(
        str(home),
        f"Cannot use {home} as the data directory (COLONY_HOME): {why}. "
        "Set COLONY_HOME to a folder this user can write, e.g. COLONY_HOME=~/.colony.",
    )


def tighten(path: Path, *, what: str = "") -> bool:
    """Take group and other permissions off ``path`` if it has any; True if it changed.

    Only files this user owns are changed (chmod of someone else's file fails anyway); a loose
    file owned by another user is reported instead. Symlinks are followed: a COLONY_HOME that
    points elsewhere is still the node's data.
    """
    try:
        st = path.stat()
    except OSError:
        return False
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return False
    label = what or ("directory" if stat.S_ISDIR(st.st_mode) else "file")
    if st.st_uid != os.geteuid():
        log.warning("%s %s is readable by other users (mode %04o) and owned by uid %d, so Colony cannot "
                    "tighten it: run chmod go-rwx %s", label, path, mode, st.st_uid, path)
        return False
    try:
        os.chmod(path, mode & ~0o077)
    except OSError as exc:
        log.warning("%s %s is readable by other users (mode %04o) and could not be tightened: %s",
                    label, path, mode, exc)
        return False
    log.warning("tightened the permissions of %s %s from %04o to %04o: it holds the node's private data",
                label, path, mode, mode & ~0o077)
    return True


def private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if missing and tighten it if not; errors say how to fix them."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise _problem(path, exc) from exc
    if not path.is_dir():  # a dangling symlink or a special file: mkdir(exist_ok) accepted it
        raise _problem(path, FileExistsError(errno.EEXIST, "not a directory"))
    tighten(path)
    return path


def prepare_home(home: Path) -> Path:
    """Make ``home`` ready for a node: created owner-only, its secret files tightened.

    Every surface that opens the node (CLI commands, the server, ACP, MCP) goes through this —
    directly or through the database — so a COLONY_HOME that cannot be used gives the same one
    clear `DataDirectoryError` everywhere.
    """
    private_dir(home)
    for name in _SECRET_FILES:
        tighten(home / name)
    backups = home / BACKUP_DIR
    if backups.is_dir():
        tighten(backups)
        for entry in backups.iterdir():
            if entry.is_file():
                tighten(entry, what="backup")
    for entry in home.glob("colony.db.before-restore-*"):
        tighten(entry, what="earlier database")
    return home


def earlier_node_traces(home: Path) -> list[str]:
    """What in ``home`` shows that a node ran and kept data here (token, cache/, backups, …)."""
    found = [name + ("/" if (home / name).is_dir() else "") for name in _TRACES if (home / name).exists()]
    found += sorted(p.name for p in home.glob("colony.db.before-restore-*"))
    return found


def empty_database_traces(db_path: Path) -> list[str]:
    """The traces of an earlier node next to a database file that exists but is empty (0 bytes).

    Empty means SQLite would start a new database in it. A write-ahead log with content is not
    empty (SQLite recovers from it), and neither is a file that does not exist (a new node).
    Returns [] when nothing is wrong.
    """
    try:
        if db_path.stat().st_size != 0:
            return []
    except OSError:
        return []
    try:
        if Path(f"{db_path}-wal").stat().st_size > 0:
            return []
    except OSError:
        pass
    return earlier_node_traces(db_path.parent)


def warn_if_empty(db_path: Path) -> list[str]:
    """Log, loudly, that ``db_path`` is empty although a node kept data beside it; return the traces."""
    traces = empty_database_traces(db_path)
    if traces:
        log.warning(
            "The database %s is EMPTY (0 bytes), but this data directory holds data of an earlier node (%s): "
            "the database was lost or truncated. Colony is starting a NEW, empty database there. If that is "
            "not what you want, stop the node and restore a backup: colony restore PATH (`colony backup --list` "
            "shows them; the new database is kept aside).",
            db_path, ", ".join(traces),
        )
    return traces

"""Who has a node's database open: every open `Database` holds a shared lock, a restore an exclusive one.

Why a lock of our own: SQLite's locks live only as long as a transaction, so an idle node (a
`colony up` waiting for requests) holds none, and a restore that swapped the file under it would
leave the node writing into the old, unlinked inode — every later write lost. The lock is an
``flock`` on a separate file, ``colony.db.lock``: flock is held for as long as the descriptor is
open (for the whole life of the `Database`), it is released by the kernel when a process dies,
and it never touches SQLite's own POSIX locks on ``colony.db`` (closing any other descriptor of
that file would silently drop them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from colony.errors import DatabaseBusyError, DataDirectoryError

__all__ = ["DatabaseLock", "lock_holders", "lock_path"]

_POLL_S = 0.05


def lock_path(db_path: Path | str) -> Path:
    return Path(f"{db_path}.lock")


def lock_holders(path: Path) -> list[int]:
    """Process ids holding an flock on ``path``, from ``/proc/locks`` (Linux; [] elsewhere)."""
    try:
        inode = path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids: set[int] = set()
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  READ  1234 08:01:5678 0 EOF"; waiters are shown as "1: -> FLOCK …".
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5].rsplit(":", 1)[-1] == str(inode) and fields[4].isdigit():
            pids.add(int(fields[4]))
    return sorted(pids)


class DatabaseLock:
    """An flock on ``<database>.lock``: shared for users of the database, exclusive for a restore."""

    def __init__(self, db_path: Path | str) -> None:
        self.db_path = Path(db_path)
        self.path = lock_path(db_path)
        self._fd: int | None = None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DataDirectoryError(
                str(self.path.parent),
                f"Cannot create the lock file {self.path}: {exc.strerror or exc}. "
                "Set COLONY_HOME to a folder this user can write.",
            ) from exc

    def acquire_shared(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` while a restore holds the database, then refuse."""
        fd = self._open()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DatabaseBusyError(
                        str(self.db_path),
                        f"The database {self.db_path} is being replaced by `colony restore` "
                        f"(process {', '.join(map(str, lock_holders(self.path))) or 'unknown'}). "
                        "Wait for it to finish, then try again.",
                        lock_holders(self.path),
                    ) from None
                time.sleep(_POLL_S)
        self._fd = fd

    def acquire_exclusive(self) -> None:
        """Take the database for a restore, or refuse at once if anything has it open."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holders = lock_holders(self.path)
            who = f" (process {', '.join(map(str, holders))})" if holders else ""
            raise DatabaseBusyError(
                str(self.db_path),
                f"The database {self.db_path} is open in a running node{who}: colony up, chat, "
                "autonomy, acp or mcp serve. Stop it, then run colony restore again.",
                holders,
            ) from None
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

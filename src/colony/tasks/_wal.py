"""Checkpoints of the task queue's SQLite WAL, moved off the claim path (see `_WalKeeper`).

Split from `colony.tasks.store`: the store asks `keeper_for(db)` for its file's keeper and hands
each write transaction's checkpoint decision to it; everything about when and how the log is
copied back and restarted lives here.
"""

from __future__ import annotations

import os
import threading
import weakref

import apsw

from colony.errors import StoreError
from colony.store import Database

__all__ = ["CHECKPOINT_FRAMES", "RESTART_FRAMES", "RESTART_WAIT_S", "keeper_for"]

#: New WAL frames (pages) since the last checkpoint that wake the checkpointer thread: SQLite's
#: own autocheckpoint threshold, about 4 MB of 4 KiB pages.
CHECKPOINT_FRAMES = 1000
#: From this length on (16 MB) the log is made to start over (`_WalKeeper.restart_log`); from twice
#: it, forcibly. Measured, the ``-wal`` file stays within about twice this.
RESTART_FRAMES = 4 * CHECKPOINT_FRAMES
#: How long a RESTART checkpoint (`_WalKeeper.restart_log`, past twice `RESTART_FRAMES`) may wait
#: for the writer lock and for readers of older snapshots; writers queue behind it meanwhile.
RESTART_WAIT_S = 0.1
#: How often an idle checkpointer looks at the log: a burst's tail is copied in the quiet after it.
_IDLE_S = 1.0


class _WalKeeper:
    """Checkpoints one database's WAL off the queue's commits, and keeps the log from growing.

    Why: with SQLite's autocheckpoint, the commit that takes the log past 1,000 frames copies them
    into the database file and syncs both files before that worker's call returns — every ~80
    tasks a claim or a completion paid milliseconds, the queue's latency tail. The task store's
    connections carry this keeper's WAL hook instead (`on_commit`, which replaces SQLite's
    autocheckpoint on that connection): past `CHECKPOINT_FRAMES` new frames it wakes a thread,
    whose PASSIVE checkpoint copies them while the workers go on (it blocks no reader or writer).

    Why the log cannot grow without bound: SQLite starts the log over only when a transaction
    begins after the log was copied to its very end — which a checkpoint running beside a stream
    of commits never reaches, new frames arrive while it copies. (Measured: with 8 worker
    processes SQLite's own autocheckpoint let the ``-wal`` file reach 160–260 MB in 20,000 tasks.)
    Nor can a checkpoint wait for a quiet moment: SQLite's locks are not queued, and a RESTART
    checkpoint polling for the writer lock lost it for as long as workers kept committing. So once
    the log is `RESTART_FRAMES` long, the next queue transaction of this process first runs
    `restart_log`: an empty write transaction — holding the writer lock, so nobody appends —
    around a PASSIVE checkpoint of the few frames the thread has not copied yet. The log is then
    copied to its end, and whichever writer comes next starts it over. Every writer waits for
    that short copy (2–4 ms measured), once every few hundred tasks. A reader of an older
    snapshot can still spoil the restart; from twice `RESTART_FRAMES` on, a RESTART checkpoint
    (which waits for such readers) is forced, with this process's queue transactions held back.

    One keeper per database file and process (`keeper_for`), shared by every `Database` object on
    that file: its restarts must hold back all of this process's writers to the file. Its
    checkpoints go through one connection of its own (`_ckpt`, guarded by a lock: the thread and
    `restart_log` share it), which the thread closes once every `Database` it served is closed.
    It holds those weakly; the hooked connections (and the running thread) keep it alive.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._dbs: weakref.WeakSet[Database] = weakref.WeakSet()
        self.pid = os.getpid()
        self.soft, self.restart = CHECKPOINT_FRAMES, RESTART_FRAMES
        #: Frames of the log already copied into the database file, as of the last checkpoint.
        self.copied = 0
        #: The log's length in frames after the latest commit a hooked connection made.
        self.frames = 0
        #: Whether the latest commit found the log long enough for `restart_log` (see ``gate_at``).
        self.restart_due = False
        #: The log length at which `restart_log` is next due: `RESTART_FRAMES` after the log started
        #: over, and half `CHECKPOINT_FRAMES` further after each attempt that did not restart it
        #: (other writers, or other processes' keepers, may restart it meanwhile; they race less).
        self.gate_at = RESTART_FRAMES
        self.hooked: weakref.WeakSet[apsw.Connection] = weakref.WeakSet()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ckpt: apsw.Connection | None = None
        self._ckpt_lock = threading.Lock()
        #: Cleared while `restart_log` runs a RESTART checkpoint: this process's queue transactions
        #: wait for it instead of racing it for the writer lock (SQLite's locks are not queued).
        self.open = threading.Event()
        self.open.set()

    def hook(self, db: Database, conn: apsw.Connection) -> None:
        """Take over checkpointing for ``conn``, a connection of ``db`` (idempotent)."""
        if conn not in self.hooked:
            conn.set_wal_hook(self.on_commit)
            self.hooked.add(conn)
            self._dbs.add(db)

    def on_commit(self, _conn: apsw.Connection, _name: str, frames: int) -> int:
        """SQLite's WAL hook: runs after each commit of a hooked connection; only counts and signals.

        It never raises: an exception here would surface as a failed COMMIT for a transaction
        that did commit.
        """
        try:
            if frames < self.frames:  # the log has started over (here, or in another process)
                self.copied, self.gate_at = 0, self.restart
            self.frames = frames
            self.restart_due = frames >= self.gate_at
            if frames - self.copied >= self.soft:
                self._ensure_thread()
                self._wake.set()
        except Exception:  # starting the thread failed: the next commit tries again
            pass
        return apsw.SQLITE_OK

    def restart_log(self, db: Database) -> None:
        """Copy the log to its end so that the next writer starts it over.

        The usual way costs writers least: an empty write transaction (holding the writer lock,
        so nobody appends) around a PASSIVE checkpoint of the few frames the thread has not
        copied. Another connection reading an older snapshot can still keep the next writer from
        starting the log over; so from twice `RESTART_FRAMES` on, a RESTART checkpoint is run
        instead, which also waits (up to `RESTART_WAIT_S`) for those readers — and this process's
        other queue transactions wait for it (`open`) rather than race it for the writer lock.
        While the thread is checkpointing, this is skipped and tried at the next transaction,
        except past twice `RESTART_FRAMES`, where it waits for the thread.
        """
        if self.frames < 2 * self.restart:
            if not self._ckpt_lock.acquire(blocking=False):
                return
            try:
                with db.tx():  # BEGIN IMMEDIATE: no writer can append while the tail is copied
                    log, copied = self._connection().wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
                self._copied_up_to(log, copied)
            except (apsw.Error, StoreError):
                pass  # busy (another process is checkpointing): the next transaction tries again
            finally:
                self._release()
            return
        self.open.clear()  # this process's other queue transactions wait: the lock is ours to take
        try:
            if not self._ckpt_lock.acquire(timeout=1.0):  # the thread's checkpoint, then ours
                return
            try:
                ckpt = self._connection()
                ckpt.set_busy_timeout(int(RESTART_WAIT_S * 1000))
                self._copied_up_to(*ckpt.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_RESTART))
            except apsw.Error:
                pass  # busy (a long reader, another process): the next transaction tries again
            finally:
                self._release()
        finally:
            self.open.set()

    def _copied_up_to(self, log: int, copied: int) -> None:
        self.copied = copied
        self.restart_due = False  # until the log grows further (``gate_at``) or starts over
        self.gate_at = log + self.soft // 2

    def _release(self) -> None:
        """Release ``_ckpt_lock``; close the connection first if no thread will use it again."""
        try:
            if self._ckpt is not None and (self._thread is None or not self._thread.is_alive()):
                self._ckpt.close()
                self._ckpt = None
        finally:
            self._ckpt_lock.release()

    def _connection(self) -> apsw.Connection:
        """The keeper's own connection (call with ``_ckpt_lock`` held): checkpoints need no more."""
        if self._ckpt is None:
            conn = apsw.Connection(self.path)
            conn.execute("PRAGMA journal_mode").fetchall()  # a first read: it has seen the WAL (else -1, -1)
            self._ckpt = conn
        return self._ckpt

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="colony-wal-checkpoint", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            while self._step(self._wake.wait(_IDLE_S)):
                pass
        finally:
            with self._ckpt_lock:
                if self._ckpt is not None:
                    self._ckpt.close()
                    self._ckpt = None

    def _step(self, woken: bool) -> bool:
        """One wake (or idle tick) of the thread; False once no `Database` it served is open."""
        self._wake.clear()
        if all(db.closed for db in list(self._dbs)):
            return False
        if not woken and self.frames <= self.copied:
            return True  # idle, and nothing this process wrote is left uncopied
        with self._ckpt_lock:
            try:
                self.copied = self._connection().wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)[1]
            except apsw.BusyError:
                pass  # another process's keeper is checkpointing
            except apsw.Error:
                pass  # an I/O error: SQLite told the writer too; try again at the next wake
        return True


_KEEPERS: weakref.WeakValueDictionary[str, _WalKeeper] = weakref.WeakValueDictionary()
_KEEPERS_LOCK = threading.Lock()


def _reset_after_fork() -> None:
    """A forked child starts with no checkpointer thread and a free lock (`keeper_for` checks the pid)."""
    global _KEEPERS_LOCK
    _KEEPERS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def keeper_for(db: Database) -> _WalKeeper:
    """The keeper of ``db``'s file in this process (a forked child gets its own)."""
    keeper = _KEEPERS.get(db.path)
    if keeper is None or keeper.pid != os.getpid():
        with _KEEPERS_LOCK:
            keeper = _KEEPERS.get(db.path)
            if keeper is None or keeper.pid != os.getpid():
                keeper = _KEEPERS[db.path] = _WalKeeper(db.path)
    return keeper



"""Backups and restores of the node database, safe while the node keeps writing.

Backup: SQLite's online backup API (apsw ``Connection.backup``) copies the pages of one *read
snapshot*: the source connection opens a read transaction first and keeps it for every step, so
writers (other processes, other threads) carry on in the write-ahead log and the copy is the
database as of one instant — never a torn mix, and never restarted by their writes. The copy goes
to a temporary file (0600) beside the target, is switched to a standalone rollback-journal file,
checked with ``PRAGMA quick_check``, synced, and only then linked into place: a target either
does not exist or is a complete, checked backup. Each backup is recorded as one line in
``$COLONY_HOME/backups.jsonl`` (the API, `colony backup --list` and the health page read it).

Restore: the file is copied (the same API) to a temporary file beside ``colony.db`` and refused
unless it is a sound Colony database of a schema this Colony knows — its ``schema_migrations``
rows must be this code's migrations, contiguous from 1, agreeing with ``user_version``. It is
refused while any process has the database open (every `Database` holds a shared lock; see
`colony.store._lock`). The current database is folded into one file (its WAL checkpointed) and
kept as ``colony.db.before-restore-<time>``, then the new file is renamed over ``colony.db``: at
every instant ``colony.db`` is either the old database or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import apsw
from pydantic import BaseModel, Field, computed_field

from colony.errors import BackupError, DatabaseBusyError
from colony.store._lock import DatabaseLock
from colony.store.home import BACKUP_DIR, BACKUP_JOURNAL, FILE_MODE, SIDE_FILES, prepare_home, private_dir
from colony.store.migrations import MIGRATIONS, latest_version

__all__ = [
    "BackupInfo",
    "Progress",
    "RestoreReport",
    "backup_dir",
    "create_backup",
    "default_backup_path",
    "excluded_by",
    "excluded_note",
    "last_backup",
    "list_backups",
    "restore_backup",
    "validate_colony_database",
]

#: ``progress(pages_done, pages_total)`` after each step of a copy.
Progress = Callable[[int, int], None]

#: Pages per backup step (1,024 × 4 KiB = 4 MiB): small enough for a smooth progress bar.
STEP_PAGES = 1024
#: How long a backup waits for a restore in progress, and a restore for the old database's writers.
WAIT_S = 10.0
#: What `BackupInfo.excludes` names when the node's shared data is in PostgreSQL.
POSTGRESQL = "postgresql"
#: The tables whose row counts a backup and a restore report (what a person checks after one).
COUNTED_TABLES = ("sessions", "messages", "tasks", "task_events", "memories", "tool_calls", "llm_calls")


class BackupInfo(BaseModel):
    """One backup: where, when, how big, of which schema, and what it holds."""

    path: str
    size_bytes: int
    created_at: str
    schema_version: int
    pages: int
    duration_ms: float
    counts: dict[str, int]
    excludes: list[str] = Field(default_factory=list, description=(
        "What the node keeps that this file does not hold: \"postgresql\" when the node's shared data "
        "(memory, tasks, ledger, market) lives in PostgreSQL — back that up on its server (pg_dump)."))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def present(self) -> bool:
        """Whether the file is still where the backup put it (it may have been moved or deleted)."""
        return Path(self.path).is_file()


class RestoreReport(BaseModel):
    """What a restore put in place, and where the database it replaced was kept."""

    source: str
    database: str
    schema_version: int
    counts: dict[str, int]
    kept_aside: str | None
    duration_ms: float


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def backup_dir(home: Path) -> Path:
    """``$COLONY_HOME/backups``: the default place for backups, and the only one the API writes to."""
    return home / BACKUP_DIR


def _dated_name(folder: Path, now: datetime | None = None) -> Path:
    """``folder/colony-<UTC time>.db``, with ``-2``, ``-3``… when a backup of the same second exists."""
    stem = f"colony-{_stamp(now or _now())}"
    path, n = folder / f"{stem}.db", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.db"
    return path


def default_backup_path(home: Path, now: datetime | None = None) -> Path:
    return _dated_name(backup_dir(home), now)


def _counts(conn: apsw.Connection) -> dict[str, int]:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in COUNTED_TABLES if t in tables}


def _quick_check(conn: apsw.Connection) -> list[str]:
    """The problems ``PRAGMA quick_check`` finds ([] when sound); a damaged page raises instead."""
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    return [] if rows == ["ok"] else rows


def validate_colony_database(conn: apsw.Connection, label: str) -> int:
    """Refuse a database that is not a sound Colony database of a known schema; return its version.

    Why the migrations table and not just ``user_version``: any SQLite file may set a user
    version, but only Colony's migrations write Colony's migration names, numbered from 1.
    """
    try:
        problems = _quick_check(conn)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    except (apsw.CorruptError, apsw.NotADBError) as exc:
        raise BackupError(f"{label} is not a usable SQLite database ({exc}).", reason="invalid") from exc
    if problems:
        raise BackupError(f"{label} is damaged: the integrity check says {'; '.join(problems[:3])}.",
                          reason="invalid")
    if "schema_migrations" not in tables:
        raise BackupError(f"{label} is a SQLite database but not a Colony database (it has no schema_migrations "
                          "table). Pick a file written by `colony backup`.", reason="invalid")
    rows = [(int(v), str(n)) for v, n in conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")]
    user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])  # type: ignore[index]
    known = {m.version: m.name for m in MIGRATIONS}
    newest = latest_version()
    versions = [v for v, _ in rows]
    if not rows:
        raise BackupError(f"{label} records no migrations: it is not a Colony database.", reason="invalid")
    if max(versions) > newest or user_version > newest:
        raise BackupError(
            f"{label} has schema version {max(max(versions), user_version)}, but this Colony knows only up to "
            f"{newest}: it was written by a newer Colony. Upgrade Colony (pip install -U colony) first.",
            reason="invalid",
        )
    for version, name in rows:
        if known.get(version) != name:
            raise BackupError(
                f"{label} records migration {version} as {name!r}, which is not this Colony's migration "
                f"{version} ({known.get(version)!r}): it is not a database of this Colony.", reason="invalid")
    if versions != list(range(1, max(versions) + 1)) or user_version != max(versions):
        raise BackupError(
            f"{label} has inconsistent migration records (versions {versions}, user_version {user_version}).",
            reason="invalid")
    return user_version


def _copy(source: apsw.Connection, target: Path, progress: Progress | None) -> int:
    """Copy ``source`` (already inside a read transaction) into the new file ``target``; return pages.

    The destination becomes a standalone file (rollback journal, not WAL): a backup must not
    need a ``-wal`` file next to it to be complete.
    """
    dest = apsw.Connection(str(target))
    try:
        with dest.backup("main", source, "main") as step:
            while not step.done:
                step.step(STEP_PAGES)
                if progress is not None:
                    progress(step.page_count - step.remaining, step.page_count)
            pages = step.page_count
        dest.execute("PRAGMA journal_mode=DELETE")
    finally:
        dest.close()
    return pages


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_temp(folder: Path, name: str) -> Path:
    """An empty, owner-only file to copy into (SQLite gives its journal the same mode)."""
    tmp = folder / f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    return tmp


def _remove(path: Path) -> None:
    for suffix in ("", *SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _resolve_target(target: Path, home: Path, db_path: Path, overwrite: bool) -> Path:
    target = target.expanduser().absolute()
    if target.is_dir():
        target = _dated_name(target)
    if target.parent == backup_dir(home).absolute():
        private_dir(target.parent)
    if not target.parent.is_dir():
        raise BackupError(f"The folder {target.parent} does not exist; create it or pick another path.",
                          reason="invalid")
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise BackupError(f"{target} already exists; pick a new name or pass --force to replace it.",
                              reason="exists")
        if not target.is_file():
            raise BackupError(f"{target} exists and is not a regular file; pick another path.", reason="invalid")
    live = {Path(f"{db_path}{s}").absolute() for s in ("", *SIDE_FILES, ".lock")}
    if target in live or (target.exists() and db_path.exists() and target.samefile(db_path)):
        raise BackupError(f"{target} is the node's own database; back up to another file.", reason="invalid")
    return target


def create_backup(
    db_path: Path, target: Path, *, overwrite: bool = False, progress: Progress | None = None,
    excludes: Sequence[str] = (),
) -> BackupInfo:
    """Back up the database at ``db_path`` to ``target`` (a file, or a folder to put one in).

    ``excludes`` names what the node keeps elsewhere (`excluded_by`), recorded with the backup so
    nobody mistakes the file for all of the node's data.

    Consistent while other processes write (one read snapshot); written owner-only and atomically
    (a temporary file renamed into place); recorded in ``backups.jsonl`` next to the database.
    Raises `BackupError` (reason ``missing``, ``exists``, ``invalid`` or ``failed``) or
    `DatabaseBusyError` while a restore replaces the database.
    """
    db_path = db_path.absolute()
    home = prepare_home(db_path.parent)  # the same clear error as every command when it is unusable
    if not db_path.is_file() or db_path.stat().st_size == 0:
        raise BackupError(f"There is no database at {db_path} to back up; check COLONY_HOME.", reason="missing")
    target = _resolve_target(target, home, db_path, overwrite)
    started = time.perf_counter()
    created = _now()
    with DatabaseLock(db_path) as lock:
        lock.acquire_shared(WAIT_S)
        tmp = _new_temp(target.parent, target.name)
        try:
            source = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READWRITE)
            try:
                source.set_busy_timeout(int(WAIT_S * 1000))
                source.execute("BEGIN")  # one read snapshot for every step: writers go on in the WAL
                schema = int(source.execute("PRAGMA user_version").fetchone()[0])  # type: ignore[index]
                source.execute("SELECT COUNT(*) FROM sqlite_schema").fetchall()
                pages = _copy(source, tmp, progress)
                source.execute("COMMIT")
            finally:
                source.close()
            check = apsw.Connection(str(tmp), flags=apsw.SQLITE_OPEN_READONLY)
            try:
                problems = _quick_check(check)
                counts = _counts(check)
            finally:
                check.close()
            if problems:
                raise BackupError(
                    f"The node's database {db_path} is damaged ({'; '.join(problems[:3])}), so no backup was "
                    "kept. Run colony doctor; restore an earlier backup with colony restore PATH.")
            _fsync(tmp)
            _place(tmp, target, overwrite)
        except (apsw.Error, OSError) as exc:
            detail = f"Cannot back up {db_path} to {target}: {exc}."
            if isinstance(exc, apsw.CorruptError | apsw.NotADBError):
                detail += " The node's database is damaged: run colony doctor."
            raise BackupError(detail) from exc
        finally:
            _remove(tmp)
    info = BackupInfo(
        path=str(target), size_bytes=target.stat().st_size, created_at=created.isoformat(timespec="seconds"),
        schema_version=schema, pages=pages, duration_ms=round((time.perf_counter() - started) * 1000, 1),
        counts=counts, excludes=list(excludes),
    )
    _record(home, info)
    return info


def excluded_by(database_url: object | None) -> list[str]:
    """What a backup of the node's SQLite file leaves out: the PostgreSQL database, when there is one."""
    return [POSTGRESQL] if database_url else []


def excluded_note(info: BackupInfo) -> str | None:
    """One sentence for a person when the backup does not hold everything, else None."""
    if POSTGRESQL not in info.excludes:
        return None
    return ("This node keeps its memory, tasks, ledger and market in PostgreSQL: the backup holds only its "
            "node-local SQLite file. Back PostgreSQL up on its server (pg_dump).")


def _place(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the finished copy to ``target``: never over an existing file unless asked, never half-written."""
    if overwrite:
        os.replace(tmp, target)
    else:
        try:
            os.link(tmp, target)  # fails if the name was taken meanwhile: no silent overwrite
        except FileExistsError:
            raise BackupError(f"{target} already exists; pick a new name or pass --force to replace it.",
                              reason="exists") from None
        except OSError:  # a file system without hard links: check, then rename (a narrow race)
            if target.exists():
                raise BackupError(f"{target} already exists; pick a new name.", reason="exists") from None
            os.replace(tmp, target)
    _fsync(target.parent)


def _record(home: Path, info: BackupInfo) -> None:
    """Append the backup to the journal (one short line; O_APPEND keeps concurrent lines whole)."""
    line = (info.model_dump_json(exclude={"present"}) + "\n").encode()
    fd = os.open(home / BACKUP_JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def list_backups(home: Path, limit: int = 20) -> list[BackupInfo]:
    """Recorded backups, newest first. A line that cannot be read (a torn write) is skipped."""
    try:
        lines = (home / BACKUP_JOURNAL).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found: list[BackupInfo] = []
    for line in reversed(lines):
        try:
            found.append(BackupInfo.model_validate(json.loads(line)))
        except ValueError:
            continue
        if len(found) >= limit:
            break
    return found


def last_backup(home: Path) -> BackupInfo | None:
    found = list_backups(home, limit=1)
    return found[0] if found else None


def _fold_into_one_file(db_path: Path) -> bool:
    """Checkpoint the current database and leave it without a WAL; False if it is too damaged to.

    Switching out of WAL needs the database to itself: if any connection still has it open
    (an older Colony without the lock, another SQLite program), SQLite says busy and we refuse.
    """
    try:
        conn = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READWRITE)
    except apsw.Error:
        return False
    try:
        conn.set_busy_timeout(int(WAIT_S * 1000))
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
        return mode is not None and str(mode[0]).lower() == "delete"
    except apsw.BusyError as exc:
        raise DatabaseBusyError(
            str(db_path), f"The database {db_path} is in use by another program ({exc}). Stop every process "
            "that uses it (colony up, chat, autonomy, acp, mcp serve), then run colony restore again.") from exc
    except apsw.Error:
        return False
    finally:
        conn.close()


def _keep_aside(db_path: Path, now: datetime) -> Path | None:
    """Keep the current database (and, if it could not be folded, its WAL) under a dated name."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return None  # nothing to keep: an empty file holds no data
    aside = db_path.with_name(f"{db_path.name}.before-restore-{_stamp(now)}")
    n = 1
    while any(Path(f"{aside}{s}").exists() for s in ("", *SIDE_FILES)):
        n += 1
        aside = db_path.with_name(f"{db_path.name}.before-restore-{_stamp(now)}-{n}")
    os.link(db_path, aside)  # colony.db keeps existing (still the old data) until the swap
    for suffix in SIDE_FILES:  # a WAL left next to the new file would be replayed into it: move it along
        side = Path(f"{db_path}{suffix}")
        if side.exists():
            os.replace(side, f"{aside}{suffix}")
    return aside


def restore_backup(source: Path, db_path: Path, *, progress: Progress | None = None) -> RestoreReport:
    """Replace the database at ``db_path`` with the Colony database in ``source``.

    Refuses (`BackupError`, reason ``missing`` or ``invalid``) a file that is not a sound Colony
    database of a known schema, and (`DatabaseBusyError`) while any process has ``db_path``
    open. The replaced database is kept as ``<db>.before-restore-<time>`` and named in the report.
    An older schema is upgraded the next time a node opens the database.
    """
    source = source.expanduser().absolute()
    db_path = db_path.absolute()
    if not source.is_file():
        raise BackupError(f"There is no file {source} to restore; check the path (colony backup --list "
                          "shows the backups made here).", reason="missing")
    if db_path.exists() and source.samefile(db_path):
        raise BackupError(f"{source} is the node's current database; restore from a backup file.",
                          reason="invalid")
    started = time.perf_counter()
    prepare_home(db_path.parent)
    with DatabaseLock(db_path) as lock:
        lock.acquire_exclusive()
        tmp = _new_temp(db_path.parent, db_path.name + ".restore")
        try:
            try:
                src = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
            except apsw.Error as exc:
                raise BackupError(f"Cannot open {source}: {exc}.", reason="invalid") from exc
            try:
                src.set_busy_timeout(int(WAIT_S * 1000))
                src.execute("BEGIN")
                src.execute("SELECT COUNT(*) FROM sqlite_schema").fetchall()
                _copy(src, tmp, progress)
                src.execute("COMMIT")
            except (apsw.CorruptError, apsw.NotADBError) as exc:
                raise BackupError(f"{source} is not a usable SQLite database ({exc}).", reason="invalid") from exc
            finally:
                src.close()
            check = apsw.Connection(str(tmp), flags=apsw.SQLITE_OPEN_READONLY)
            try:
                schema = validate_colony_database(check, str(source))
                counts = _counts(check)
            finally:
                check.close()
            _fsync(tmp)
            if db_path.exists() and db_path.stat().st_size > 0:
                _fold_into_one_file(db_path)
            aside = _keep_aside(db_path, _now())
            os.replace(tmp, db_path)
            _fsync(db_path.parent)
        except apsw.Error as exc:
            raise BackupError(f"Cannot restore {source}: {exc}.") from exc
        except OSError as exc:
            raise BackupError(f"Cannot restore {source} into {db_path}: {exc}.") from exc
        finally:
            _remove(tmp)
    return RestoreReport(
        source=str(source), database=str(db_path), schema_version=schema, counts=counts,
        kept_aside=str(aside) if aside else None, duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )

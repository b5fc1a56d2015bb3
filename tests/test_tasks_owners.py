"""`colony.tasks.owners.gone`: a lease owner is dead only when it names a process of this host that the
process table no longer has — never this process, a live one, another host's, or a malformed name;
and a real worker killed mid-lease has its task taken back at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from colony.config import Settings
from colony.store import open_database
from colony.tasks import SqliteTaskStore, TaskSpec
from colony.tasks.autonomy import dead_workers, worker_name
from colony.tasks.owners import gone


def test_only_a_finished_process_of_this_host_is_gone() -> None:
    host = socket.gethostname()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait(timeout=30)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert gone(f"market@{host}:{finished.pid}") and gone(f"{host}:{finished.pid}")
        assert not gone(f"market@{host}:{running.pid}")  # alive
        assert not gone(f"market@{host}:{os.getpid()}") and not gone(worker_name())  # this very process
        assert not gone(f"market@another-{host}:{finished.pid}")  # another machine's: not ours to judge
        for odd in ("", "worker", f"{host}:", f"{host}:0", f"{host}:-5", f"{host}:99999999999", "a@b@c",
                    f"{host}:12x", f"{host} :{finished.pid}"):
            assert not gone(odd), odd
    finally:
        running.kill()
        running.wait(timeout=30)


def test_the_setting_turns_it_off() -> None:
    assert dead_workers(Settings()) is gone
    assert dead_workers(Settings(task_reap_dead_local_workers=False)) is None


_HOLDER = """
import sys, time
from colony.store import open_database
from colony.tasks import SqliteTaskStore
from colony.tasks.autonomy import worker_name
store = SqliteTaskStore(open_database(sys.argv[1]))
lease = store.claim(worker_name(), 60)
assert lease is not None
print(lease.task_id, flush=True)
time.sleep(120)
"""


def test_a_killed_workers_lease_is_taken_back_without_waiting_out_its_ttl(tmp_path: Path) -> None:
    """A real process claims a task under its own worker name with a 60 s lease and is SIGKILLed: the
    reaper with `gone` takes the task back at once; the plain reaper would have waited the minute."""
    path = tmp_path / "tasks.db"
    store = SqliteTaskStore(open_database(path))
    task = store.post(TaskSpec(goal="resume me", max_attempts=3))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == task.id
        assert store.reap(gone) == []  # alive: its lease stands
        holder.kill()
        holder.wait(timeout=30)
        assert store.reap() == []  # the lease has most of its minute left
        assert store.reap(gone) == [(task.id, "retry_wait")]
        back = store.get(task.id)
        assert back.lease_owner is None and back.attempts == 1
    finally:
        holder.kill()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
        store.db.close()

"""Whether a lease's owner is a process on this machine that no longer exists.

A worker names itself ``[role@]host:pid`` (`colony.tasks.autonomy.worker_name`,
`colony.market.worker.worker_name`). When a node is killed and started again, its old worker's
leases would otherwise stand until their TTL ran out (a minute by default): the restarted node
would sit idle beside the tasks it was running. A process that is gone cannot heartbeat, so its
leases may be reaped at once (`TaskStore.reap(gone=...)`), with the same backoff and attempt count
as an expired lease.

Only this host's processes are judged, by the operating system's process table. A pid that was
reused by another process counts as alive (the lease waits for its TTL: the safe direction). Two
machines sharing one PostgreSQL queue under the same host name would judge each other's pids, so
the setting ``COLONY_TASK_REAP_DEAD_LOCAL_WORKERS`` turns this off for such set-ups.
"""

from __future__ import annotations

import os
import re
import socket

from colony.store.sessions import pid_alive

__all__ = ["gone"]

_OWNER = re.compile(r"(?:^|@)(?P<host>[^@:\s]+):(?P<pid>[0-9]{1,10})$")


def gone(owner: str, *, host: str | None = None) -> bool:
    """True when ``owner`` names a process on this host, not this one, that does not exist."""
    found = _OWNER.search(owner)
    if found is None or found["host"] != (host or socket.gethostname()):
        return False
    pid = int(found["pid"])
    if not 0 < pid < 2**31 or pid == os.getpid():
        return False  # no pid at all, or this very process
    return not pid_alive(pid)

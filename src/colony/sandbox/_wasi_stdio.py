"""A WASI run's stdin, stdout and stderr as pipes that one host thread serves.

Guest output never touches the disk: wasmtime opens ``/dev/fd/N`` of a pipe whose read end a
thread drains into memory, keeping the first ``max_output_bytes`` and counting up to
``max_file_bytes``, after which it closes its end so the guest's next write fails with EPIPE.
stdin is fed from memory and closed, so a guest that never reads it cannot hang anything.
"""

from __future__ import annotations

import os
import select
import threading

import wasmtime

from colony.sandbox._result import clip

__all__ = ["Stdio"]

_CHUNK = 64 << 10
_IO_POLL_MS = 50
#: Where wasmtime opens the guest's end of each pipe; opening it gives wasmtime its own descriptor.
_FD_DIR = "/dev/fd" if os.path.isdir("/dev/fd") else "/proc/self/fd"


class _Sink:
    """One output stream of a run: the host's (non-blocking) read end of a pipe, and what came out."""

    def __init__(self, name: str, fd: int, keep: int, cap: int) -> None:
        self.name, self.fd, self.keep, self.cap = name, fd, keep, cap
        self.kept = bytearray()
        #: Bytes read from the guest; reading stops at ``cap + 1``.
        self.total = 0
        #: The guest wrote more than ``cap``: the read end was closed on it.
        self.over = False
        self.open = True

    def pump(self, rounds: int | None) -> None:
        """Read what is there without blocking (at most ``rounds`` chunks); close at EOF or past the cap."""
        while self.open and (rounds is None or rounds > 0):
            rounds = None if rounds is None else rounds - 1
            try:
                chunk = os.read(self.fd, min(_CHUNK, self.cap + 1 - self.total))
            except BlockingIOError:
                return
            if not chunk:
                self.close()
                return
            self.total += len(chunk)
            room = self.keep - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            if self.total > self.cap:
                self.over = True
                self.close()  # the guest's next write fails with EPIPE

    def close(self) -> None:
        if self.open:
            self.open = False
            os.close(self.fd)

    def text(self) -> tuple[str, bool]:
        """The kept output, clipped and marked when anything was dropped (or refused, past the cap)."""
        limit = min(self.keep, self.cap) if self.over else self.keep
        return clip(bytes(self.kept[:limit]), limit, self.total)


class Stdio:
    """A run's stdin, stdout and stderr as pipes served by one thread: nothing reaches the disk.

    wasmtime opens ``/dev/fd/N`` of each guest end (its own descriptor, closed with the store), and
    the host's copy is closed at once. stdin is written as far as the pipe takes it at once; the
    thread writes the rest as the guest reads and then closes it, so the guest sees EOF and a
    guest that never reads holds nothing up. The same thread drains stdout and stderr into memory.
    `finish` (after the store is closed) makes the thread read what is left, close every host
    descriptor and end: a run leaves no thread or descriptor behind.
    """

    def __init__(self, stdin: bytes, *, keep: int, cap: int) -> None:
        self._pending = memoryview(stdin)
        self._guest: list[int] = []  # guest ends, until wasmtime has opened its own
        self._stdin: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        fds: list[int] = []
        try:
            for _ in range(4):
                fds.extend(os.pipe())
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        stdin_r, stdin_w, out_r, out_w, err_r, err_w, wake_r, wake_w = fds
        #: `finish` writes here so the thread stops at once instead of at its next poll timeout.
        self._wake_r, self._wake_w = wake_r, wake_w
        self._guest = [stdin_r, out_w, err_w]
        self._stdin = stdin_w
        self.stdout, self.stderr = _Sink("stdout", out_r, keep, cap), _Sink("stderr", err_r, keep, cap)
        for fd in (stdin_w, out_r, err_r):
            os.set_blocking(fd, False)
        self._feed()

    def attach(self, wasi: wasmtime.WasiConfig) -> None:
        """Give the guest ends to ``wasi`` (wasmtime opens them now) and close the host's copies."""
        stdin_r, out_w, err_w = self._guest
        wasi.stdin_file = f"{_FD_DIR}/{stdin_r}"
        wasi.stdout_file = f"{_FD_DIR}/{out_w}"
        wasi.stderr_file = f"{_FD_DIR}/{err_w}"
        self._close_guest_ends()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="colony-wasi-stdio", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """After the run (its store closed): collect what is left in the pipes and close everything."""
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join()
        else:
            self._final_pass()
        self._close_guest_ends()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _close_guest_ends(self) -> None:
        while self._guest:
            os.close(self._guest.pop())

    def _feed(self) -> None:
        """Write as much pending stdin as the pipe takes now; close it when all is written."""
        if self._stdin is None:
            return
        try:
            while self._pending:
                self._pending = self._pending[os.write(self._stdin, self._pending[:_CHUNK]):]
        except BlockingIOError:
            return
        except OSError:  # the guest's end is gone (EPIPE): nobody will read the rest
            self._pending = memoryview(b"")
        os.close(self._stdin)
        self._stdin = None

    def _serve(self) -> None:
        sinks = (self.stdout, self.stderr)
        while not self._stop.is_set():
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            if self._stdin is not None:
                poller.register(self._stdin, select.POLLOUT)
            for sink in sinks:
                if sink.open:
                    poller.register(sink.fd, select.POLLIN)
            ready = {fd for fd, _ in poller.poll(_IO_POLL_MS)}
            if self._stdin is not None and self._stdin in ready:
                self._feed()
            for sink in sinks:
                if sink.open and sink.fd in ready:
                    sink.pump(rounds=4)  # then look at the other pipes again
        self._final_pass()

    def _final_pass(self) -> None:
        # The store is closed, so every writer is gone: what is left is in the pipes and reading it
        # cannot block. stdin that was never read is dropped.
        for sink in (self.stdout, self.stderr):
            sink.pump(rounds=None)
            sink.close()
        if self._stdin is not None:
            os.close(self._stdin)
            self._stdin = None

"""Run a real Colony node server in a background thread, for end-to-end tests and demos.

    with NodeServer(Settings()) as node:
        httpx.get(f"{node.base_url}/api/v1/health")

It is the same app `colony up` serves (uvicorn on 127.0.0.1, a free port), with the lifespan run,
so tests exercise the real server, streaming and shutdown included.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from colony.config import Settings
from colony.server.run import build_server, free_port

__all__ = ["NodeServer"]


class NodeServer:
    def __init__(self, settings: Settings, *, startup_timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.port = free_port("127.0.0.1")
        self.server: uvicorn.Server
        self.server, self.token, _ = build_server(settings, "127.0.0.1", self.port)
        self._thread = threading.Thread(target=self.server.run, name="colony-node-server", daemon=True)
        self._timeout = startup_timeout_s

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self) -> NodeServer:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the node server did not start on {self.base_url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> NodeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

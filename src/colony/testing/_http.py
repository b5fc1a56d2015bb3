"""The HTTP plumbing of the scripted server: a threaded stdlib server and its request handler.

The server tracks its live connections so `ScriptedModelServer.stop` can drop them (idle
keep-alives, hung or delayed replies) instead of waiting on them. The handler routes the few
endpoints the protocol needs and writes replies with `colony.testing._wire`; streams use chunked
transfer encoding so a truncated reply is a real mid-body disconnect for the client.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from colony.testing import _wire
from colony.testing._strict import RequestRejected, validate_chat_request

if TYPE_CHECKING:
    from colony.testing.scripted_server import Reply, ScriptedModelServer

__all__ = ["ScriptedHTTPServer"]


class ScriptedHTTPServer(ThreadingHTTPServer):
    """Tracks live connections so `stop` can drop them instead of waiting on idle keep-alives."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: ScriptedModelServer) -> None:
        self.owner = owner
        self._live: dict[socket.socket, threading.Thread] = {}
        self._live_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._live_lock:
            self._live[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._live_lock:
            self._live.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            self.owner._record_error(f"handler failed: {type(exc).__name__}: {exc}")

    def abort_connections(self) -> list[threading.Thread]:
        with self._live_lock:
            live = list(self._live.items())
        for sock, _ in live:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)
        return [thread for _, thread in live]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: ScriptedHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: test output should not fill with access logs."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send_json(200, {"status": "ok"})
        elif path == "/v1/models":
            self._send_json(200, _wire.models_list(self.server.owner.model_name))
        else:
            self._send_json(404, _wire.error_body(404, f"no route GET {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?", 1)[0].rstrip("/") != "/v1/chat/completions":
            self._send_json(404, _wire.error_body(404, f"no route POST {self.path}"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send_json(400, _wire.error_body(400, "the request body must be a JSON object"))
            return
        owner = self.server.owner
        if owner.strict:
            try:
                validate_chat_request(body)
            except RequestRejected as exc:
                owner._reject(body, exc.message)
                error = _wire.error_body(400, exc.message)
                error["error"]["param"] = exc.param
                self._send_json(400, error)
                return
        number, reply = owner._next_reply(body)
        if reply.kind == "hang" or (reply.delay_s and owner._stopping.wait(reply.delay_s)):
            owner._stopping.wait()
            self.close_connection = True
            return
        self._answer(reply, body, number)

    def _answer(self, reply: Reply, body: dict[str, Any], number: int) -> None:
        owner = self.server.owner
        stream = bool(body.get("stream"))
        if reply.kind == "error":
            headers = {} if reply.retry_after is None else {"Retry-After": f"{reply.retry_after:g}"}
            self._send_json(reply.status, _wire.error_body(reply.status, reply.message), headers)
        elif reply.kind == "invalid_json" and not stream:
            self._send_raw(200, "application/json", b'{"id": "chatcmpl-broken", "choices": [')
        elif reply.kind == "truncated_stream" and not stream:
            full = json.dumps(_wire.completion(reply, body, owner.model_name, number)).encode()
            self._send_raw(200, "application/json", full[: len(full) // 2], declared_length=len(full))
            self.close_connection = True
        elif not stream:
            self._send_json(200, _wire.completion(reply, body, owner.model_name, number))
        else:
            self._stream(reply, body, number)

    def _stream(self, reply: Reply, body: dict[str, Any], number: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if reply.kind == "invalid_json":
            events: list[str] = ["this is not JSON {"]
        else:
            events = [json.dumps(c) for c in _wire.chunks(reply, body, self.server.owner.model_name, number)]
        for event in events:
            self._write_chunk(f"data: {event}\n\n".encode())
        if reply.kind == "truncated_stream":
            self.close_connection = True
            if reply.clean_eof:
                self.wfile.write(b"0\r\n\r\n")
            return
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, "application/json", json.dumps(payload).encode(), headers=headers)

    def _send_raw(
        self,
        status: int,
        content_type: str,
        data: bytes,
        *,
        declared_length: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data) if declared_length is None else declared_length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

"""Newline-delimited JSON-RPC over stdio that answers malformed input the way JSON-RPC says.

The SDK's stdio transport logs and skips a line that is not JSON; an editor waiting on that
line would never hear back. This transport plugs into the SDK's `Connection` (it implements
``acp._transport.Transport``: ``send``/``receive``/``close``) and answers instead:

- a line that is not JSON → ``-32700 Parse error`` with ``id: null``;
- JSON that is not a request, notification or response object (an array, a number, a
  missing ``jsonrpc: "2.0"``, a non-string method, an id that is not a string or number)
  → ``-32600 Invalid Request``, echoing the id when it is usable.

Everything well-formed goes to the SDK, which answers unknown methods (-32601) and
parameters that fail its schema (-32602), and drops responses whose id it never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

__all__ = ["JsonRpcLineTransport", "check_message"]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


def _usable_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def check_message(message: Any) -> tuple[int, str, Any] | None:
    """None when ``message`` is a well-formed JSON-RPC 2.0 object, else (code, reason, id to echo)."""
    if not isinstance(message, dict):
        return INVALID_REQUEST, "a JSON-RPC message must be a JSON object (batches are not supported)", None
    msg_id = message.get("id")
    echo = msg_id if _usable_id(msg_id) else None
    if message.get("jsonrpc") != "2.0":
        return INVALID_REQUEST, 'the "jsonrpc" member must be exactly "2.0"', echo
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            return INVALID_REQUEST, '"method" must be a non-empty string', echo
        if "id" in message and not _usable_id(msg_id):
            return INVALID_REQUEST, '"id" must be a string or an integer', None
        if "params" in message and not isinstance(message["params"], dict | list):
            return INVALID_REQUEST, '"params" must be an object or an array', echo
        return None
    if "id" in message and ("result" in message or "error" in message):
        return None  # a response; the SDK matches it to a request it sent, or drops it
    return INVALID_REQUEST, 'a message needs a "method" (request) or an "id" with "result"/"error" (response)', echo


def _error(code: int, message: str, reason: str, msg_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message, "data": {"reason": reason}}}


class JsonRpcLineTransport:
    """One JSON object per line in each direction, over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self._closed = False

    async def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        async with self._lock:
            if self._closed:
                raise ConnectionError("the ACP connection is closed")
            self._writer.write(data)
            await self._writer.drain()

    async def _read_line(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            try:
                chunks.append(await self._reader.readuntil(b"\n"))
                return b"".join(chunks)
            except asyncio.LimitOverrunError as exc:  # a long line: take what is buffered, keep reading
                chunks.append(await self._reader.readexactly(exc.consumed))
            except asyncio.IncompleteReadError as exc:  # EOF (with or without a last unterminated line)
                chunks.append(exc.partial)
                return b"".join(chunks)

    async def receive(self) -> dict[str, Any] | None:
        while True:
            line = await self._read_line()
            if not line:
                return None
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                await self.send(_error(PARSE_ERROR, "Parse error", "the line is not valid JSON", None))
                continue
            problem = check_message(message)
            if problem is None:
                return dict(message)
            code, reason, msg_id = problem
            await self.send(_error(code, "Invalid Request", reason, msg_id))

    async def close(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(Exception):
                self._writer.close()

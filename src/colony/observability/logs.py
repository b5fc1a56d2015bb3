"""Structured logs: one JSON object per line, with the request id, and no secrets.

Everything goes through the standard `logging` module with a single structlog
`ProcessorFormatter` on the root logger, so Colony's own structlog loggers and foreign stdlib
loggers (uvicorn, httpx…) come out in the same shape::

    {"timestamp": "2025-01-01T12:00:00.000000Z", "level": "info", "logger": "colony.access",
     "event": "http_request", "request_id": "5f0c…", "method": "GET", "route": "/api/v1/health",
     "status": 200, "duration_ms": 1.9}

The last processor before rendering runs the whole event through `colony.tools.redact`
(secret-named keys masked whole, secret-shaped substrings masked anywhere), so a token that
slips into a message, a field or a traceback never reaches the stream.

The request id lives in a `ContextVar` (set by the HTTP middleware, or by `request_id_scope`
around any unit of work) and is added to every line logged while it is set. structlog is
imported on first use, not at import time: it costs ~40 ms that a CLI start-up should not pay.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import IO, TYPE_CHECKING, Any, cast

from colony.observability._redact import redact_value

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger
    from structlog.typing import Processor

__all__ = [
    "bind_request_id",
    "configure_logging",
    "current_request_id",
    "get_logger",
    "new_request_id",
    "request_id_scope",
    "reset_logging",
    "reset_request_id",
]

_request_id: ContextVar[str | None] = ContextVar("colony_request_id", default=None)
#: uvicorn's loggers carry their own handlers; they are routed through ours instead.
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.asgi", "uvicorn.access")
#: One line per outbound HTTP call at INFO is noise; model calls have their own metrics and rows.
_QUIET = ("httpx", "httpcore", "openai", "uvicorn.access")
_JSON_TYPES = (str, int, float, bool, type(None), dict, list, tuple)
_FIRST = ("timestamp", "level", "logger", "event", "request_id")


class _State:
    handler: logging.Handler | None = None
    structlog_ready = False


_state = _State()


# -- request id -----------------------------------------------------------------------------


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(request_id: str) -> Token[str | None]:
    """Tag every line logged in this context with ``request_id``; undo with `reset_request_id`."""
    return _request_id.set(request_id)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


@contextmanager
def request_id_scope(request_id: str | None = None) -> Iterator[str]:
    """Bind a request id (a new one when None) for the block and yield it."""
    rid = request_id or new_request_id()
    token = _request_id.set(rid)
    try:
        yield rid
    finally:
        _request_id.reset(token)


# -- processors -----------------------------------------------------------------------------


def _add_request_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    rid = _request_id.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # Other objects would reach the renderer as their repr, unredacted: render them here first.
    # structlog's bookkeeping keys (``_record``…) are left for the formatter to remove.
    # ``_vetted=True`` marks an event whose every value comes from a fixed vocabulary (the
    # access line): nothing in it can be a secret, so it skips the pass.
    if event.pop("_vetted", False) is True and all(
            k.startswith("_") or isinstance(v, str | int | float | bool | None) for k, v in event.items()):
        return event
    plain = {
        k: v if k.startswith("_") or isinstance(v, _JSON_TYPES) else repr(v) for k, v in event.items()
    }
    return cast(MutableMapping[str, Any], redact_value(plain))


def _leading_keys(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Put the keys a person scans first at the front of the line."""
    event.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
    head = {k: event.pop(k) for k in _FIRST if k in event}
    return {**head, **event}


def _shared_processors() -> list[Processor]:
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
        _redact,
    ]


def _ensure_structlog() -> None:
    """Point structlog at stdlib logging (once), so nothing ever prints to stdout by default."""
    if _state.structlog_ready:
        return
    import structlog

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    _state.structlog_ready = True


def configure_logging(level: str | int = "INFO", json: bool = True, stream: IO[str] | None = None) -> None:
    """Send all logging to ``stream`` (default: the current stderr) as JSON lines or plain text.

    Safe to call again: the handler installed last time is replaced, other handlers on the
    root logger (pytest's, for one) are left alone. Run uvicorn with ``log_config=None`` so it
    does not install its own handlers over these; its access log is silenced because the
    HTTP middleware writes one line per request (without query strings or headers), and so are
    httpx's and openai's per-request INFO lines.
    """
    import structlog

    _ensure_structlog()
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _leading_keys, renderer],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _state.handler is not None:
        root.removeHandler(_state.handler)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    _state.handler = handler
    for name in _UVICORN:
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(logging.NOTSET)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def reset_logging() -> None:
    """Remove the handler `configure_logging` installed (tests; a CLI going back to quiet)."""
    if _state.handler is not None:
        logging.getLogger().removeHandler(_state.handler)
        _state.handler = None


def get_logger(name: str | None = None) -> BoundLogger:
    """A structlog logger named ``name`` that writes through the configured handler."""
    import structlog

    _ensure_structlog()
    return structlog.stdlib.get_logger(name)

"""Observability for a Colony node (capability O): Prometheus metrics, JSON logs, OpenTelemetry traces.

A base layer like `colony.config`: the agent loop, the tool middleware and the server call into
it; it imports none of them (state it reports on — breakers, memory size — is handed over as
callbacks). `metrics` and `tracing` are cheap on the hot path and when switched off; `logs`
imports structlog only when logging is configured or a logger is asked for.

May import `colony.config` and, lazily, the pure redaction helpers of `colony.tools.redact`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colony.observability.logs import (
    bind_request_id,
    configure_logging,
    current_request_id,
    get_logger,
    new_request_id,
    request_id_scope,
    reset_logging,
    reset_request_id,
)
from colony.observability.metrics import (
    observe_approval,
    observe_http_request,
    observe_model_request,
    observe_tool_call,
    observe_turn,
    register_circuit_source,
    render_latest,
    reset_metrics,
    set_memory_items_source,
    sse_stream_closed,
    sse_stream_opened,
)
from colony.observability.tracing import (
    activate,
    configure_tracing,
    end_span,
    mark_failed,
    record_error,
    reset_tracing,
    span,
    start_span,
    tracing_enabled,
)

if TYPE_CHECKING:
    from colony.config import Settings

__all__ = [
    "activate",
    "bind_request_id",
    "configure_logging",
    "configure_observability",
    "configure_tracing",
    "current_request_id",
    "end_span",
    "get_logger",
    "mark_failed",
    "new_request_id",
    "observe_approval",
    "observe_http_request",
    "observe_model_request",
    "observe_tool_call",
    "observe_turn",
    "record_error",
    "register_circuit_source",
    "render_latest",
    "request_id_scope",
    "reset_logging",
    "reset_metrics",
    "reset_request_id",
    "reset_tracing",
    "set_memory_items_source",
    "span",
    "sse_stream_closed",
    "sse_stream_opened",
    "start_span",
    "tracing_enabled",
]


def configure_observability(settings: Settings, *, service_name: str = "colony") -> None:
    """Logging and tracing from settings (``log_level``, ``log_json``, ``otlp_endpoint``)."""
    configure_logging(settings.log_level, json=settings.log_json)
    configure_tracing(settings.otlp_endpoint, service_name=service_name)

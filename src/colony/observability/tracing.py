"""OpenTelemetry traces: a span per HTTP request, per turn, per model request and per tool call.

Tracing is off unless an OTLP endpoint is configured, and then it must cost almost nothing:
`span` returns one shared no-op context manager yielding OpenTelemetry's non-recording
``INVALID_SPAN``, so the hot path pays a function call and an attribute check. Only
`configure_tracing` imports the SDK (and the exporter only when an endpoint is given).

The provider is kept in this module, never installed as OpenTelemetry's global provider: the
global one can be set only once per process, and tests (or several apps in one process) need
to configure, reset and configure again.

Async generators and context: ``span(..., current=True)`` attaches the span to the current
context, which is right for a coroutine or a synchronous block. An async generator that yields
inside a span must use ``current=False`` and pass ``parent=`` explicitly — a context attached
across a ``yield`` leaks into the consumer and is detached from whichever context closes the
generator. `activate` attaches a span briefly, e.g. while creating a task that should inherit it.

May import only the standard library and opentelemetry.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

from colony.observability._redact import redact_text

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "Span",
    "activate",
    "configure_tracing",
    "end_span",
    "mark_failed",
    "record_error",
    "reset_tracing",
    "span",
    "start_span",
    "tracing_enabled",
]


class _Holder:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None


_holder = _Holder()


class _NoopScope:
    """The shared context manager `span` returns while tracing is off."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


_NOOP = _NoopScope()


class _SpanScope:
    """Starts a span on enter, records how the block ended and ends the span on exit."""

    __slots__ = ("_attributes", "_current", "_name", "_parent", "_span", "_token", "_tracer")

    def __init__(
        self, tracer: trace.Tracer, name: str, parent: Span | None, current: bool,
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        self._tracer, self._name, self._parent, self._current = tracer, name, parent, current
        self._attributes = attributes
        self._span: Span = INVALID_SPAN
        self._token: Token[Context] | None = None

    def __enter__(self) -> Span:
        ctx = trace.set_span_in_context(self._parent) if self._parent is not None else None
        self._span = self._tracer.start_span(self._name, context=ctx, attributes=self._attributes)
        if self._current:
            self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is not None:
                record_error(self._span, exc)
            self._span.end()
        finally:
            if self._token is not None:
                otel_context.detach(self._token)
                self._token = None


def record_error(target: Span, exc: BaseException) -> None:
    """Mark ``target`` as failed by ``exc`` (redacted); cancellation is noted, not an error."""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        target.set_attribute("colony.cancelled", True)
        return
    message = redact_text(str(exc))
    target.add_event(
        "exception",
        {
            "exception.type": type(exc).__name__,
            "exception.message": message,
            "exception.stacktrace": redact_text("".join(traceback.format_exception(exc))),
        },
    )
    target.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"[:500]))


def _clean(
    attributes: Mapping[str, AttributeValue | None] | None, more: Mapping[str, AttributeValue | None]
) -> dict[str, AttributeValue]:
    merged = {**(attributes or {}), **more}
    return {k: v for k, v in merged.items() if v is not None}


def mark_failed(target: Span, description: str) -> None:
    """Set an error status on ``target`` for a failure that was handled, not raised."""
    target.set_status(Status(StatusCode.ERROR, description))


def tracing_enabled() -> bool:
    return _holder.tracer is not None


def span(
    name: str,
    attributes: Mapping[str, AttributeValue | None] | None = None,
    /,
    *,
    parent: Span | None = None,
    current: bool = True,
    **more: AttributeValue | None,
) -> AbstractContextManager[Span]:
    """A context manager around one span; a shared no-op when tracing is off.

    Args:
        name: the span name (``colony.turn``, ``colony.tool_call``…).
        parent: the parent span; default is the span current in this context.
        current: attach the span to the context for the block, so spans started inside become
            its children. Use False in async generators that yield inside the block.
        attributes: span attributes with dotted names (``{"gen_ai.request.model": …}``);
            keyword arguments add more. None values are dropped.
    """
    tracer = _holder.tracer
    if tracer is None:
        return _NOOP
    return _SpanScope(tracer, name, parent if parent is not None and parent.is_recording() else None,
                      current, _clean(attributes, more))


def start_span(
    name: str,
    attributes: Mapping[str, AttributeValue | None] | None = None,
    /,
    *,
    parent: Span | None = None,
    **more: AttributeValue | None,
) -> Span:
    """Start a span without attaching it to the context; finish it with `end_span`.

    For spans that outlive a ``yield`` (a turn inside the `run_turn` async generator).
    """
    tracer = _holder.tracer
    if tracer is None:
        return INVALID_SPAN
    ctx = trace.set_span_in_context(parent) if parent is not None and parent.is_recording() else None
    return tracer.start_span(name, context=ctx, attributes=_clean(attributes, more))


def end_span(target: Span, exc: BaseException | None = None) -> None:
    if exc is not None:
        record_error(target, exc)
    target.end()


@contextmanager
def activate(target: Span) -> Iterator[None]:
    """Make ``target`` the current span for a short synchronous block (e.g. creating a task)."""
    if not target.is_recording():
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(target))
    try:
        yield
    finally:
        otel_context.detach(token)


def _traces_url(endpoint: str) -> str:
    """Accept a collector's base URL (``http://127.0.0.1:4318``) as well as the full traces URL."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def configure_tracing(
    endpoint: str | None, service_name: str = "colony", exporter: SpanExporter | None = None
) -> None:
    """Start tracing to ``endpoint`` (OTLP over HTTP, batched) or to ``exporter`` (synchronously).

    With neither, tracing is off (the no-op path). Calling it again replaces the previous
    provider after flushing and shutting it down.
    """
    reset_tracing()
    if exporter is None and not endpoint:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": service_name})
    if exporter is not None:
        # Tests read spans right after the block ends: export synchronously, no exit hook.
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert endpoint is not None
        provider = TracerProvider(resource=resource)  # flushes the batch at interpreter exit
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(endpoint))))
    _holder.provider = provider
    _holder.tracer = provider.get_tracer("colony")


def reset_tracing() -> None:
    """Flush and shut down the current provider, if any, and go back to the no-op path."""
    provider, _holder.provider, _holder.tracer = _holder.provider, None, None
    if provider is not None:
        provider.shutdown()

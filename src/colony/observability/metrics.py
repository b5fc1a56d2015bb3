"""Prometheus metrics for one Colony node, in a registry of its own.

Why a private `CollectorRegistry` rather than prometheus_client's global one: the global
registry refuses a second family of the same name, so two apps (or two test cases) building
metrics in one process would collide, and it mixes in process collectors nobody asked for.
The registry is built lazily on the first observation (importing prometheus_client costs
~15 ms, which `colony --help` should not pay) and `reset_metrics` swaps in a fresh one.

Core code calls the small ``observe_*`` functions; they cost about a microsecond. State that
lives elsewhere — circuit breakers, the size of memory — is read at scrape time through
registered callbacks, so `/metrics` is always current and nothing on the hot path has to
remember to update a gauge. Label values are bounded on purpose: HTTP routes are templates,
unknown methods collapse to ``OTHER``, and tool names a model invented are counted as
``unknown``.

May import only the standard library and prometheus_client; core modules import this one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.metrics_core import Metric

__all__ = [
    "CIRCUIT_STATE_VALUES",
    "CircuitScope",
    "CircuitSource",
    "MemorySource",
    "observe_approval",
    "observe_http_request",
    "observe_ledger_transfer",
    "observe_ledger_verify",
    "observe_market_auction",
    "observe_market_bid",
    "observe_market_escrow",
    "observe_market_slash",
    "observe_model_request",
    "observe_tool_call",
    "observe_turn",
    "observe_x402_payment",
    "register_circuit_source",
    "registry",
    "render_latest",
    "reset_metrics",
    "set_memory_items_source",
    "sse_stream_closed",
    "sse_stream_opened",
]

CircuitScope = Literal["model", "tool"]
#: Returns ``{name: state}`` with state one of ``closed``, ``half_open``, ``open``.
CircuitSource = Callable[[], Mapping[str, str]]
MemorySource = Callable[[], int]

CIRCUIT_STATE_VALUES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_LABEL = 80
# Turns and model calls are seconds to minutes, not the web-request default range.
_TURN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

_log = logging.getLogger("colony.observability")


class _Sources:
    """Callbacks read at scrape time; they outlive `reset_metrics` (they belong to the node)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.circuits: dict[int, tuple[CircuitScope, CircuitSource]] = {}
        self.next_id = 0
        self.memory: MemorySource | None = None


_sources = _Sources()


class _ScrapeTimeCollector:
    """Builds the callback gauges (circuit state, memory items) on every scrape."""

    def describe(self) -> list[Metric]:
        return list(self._families(read=False))

    def collect(self) -> list[Metric]:
        return list(self._families(read=True))

    def _families(self, *, read: bool) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        circuit = GaugeMetricFamily(
            "colony_circuit_state",
            "Circuit breaker state per model provider or tool: 0 closed, 1 half-open, 2 open.",
            labels=["scope", "name"],
        )
        memory = GaugeMetricFamily(
            "colony_memory_items", "Items in the node's long-term memory (0 until memory is enabled)."
        )
        if read:
            worst: dict[tuple[str, str], int] = {}
            with _sources.lock:
                circuits = list(_sources.circuits.values())
                memory_source = _sources.memory
            for scope, source in circuits:
                try:
                    states = dict(source())
                except Exception:  # a broken source must not break the whole scrape
                    _log.warning("circuit state source for %s failed", scope, exc_info=True)
                    continue
                for name, state in states.items():
                    key = (scope, name)
                    # Two nodes in one process may share a tool name: report the worst state.
                    worst[key] = max(worst.get(key, 0), CIRCUIT_STATE_VALUES.get(state, 2))
            for labels, value in sorted(worst.items()):
                circuit.add_metric(list(labels), value)
            try:
                memory.add_metric([], float(memory_source()) if memory_source is not None else 0.0)
            except Exception:
                _log.warning("memory item source failed", exc_info=True)
        yield circuit
        yield memory


class _Metrics:
    """The families of one registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        # ``*_created`` timestamp series double the output and no dashboard of ours reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        self.registry: CollectorRegistry = CollectorRegistry()
        r = self.registry
        self.http_requests: Counter = Counter(
            "colony_http_requests", "HTTP requests by route template, method and status.",
            ["route", "method", "status"], registry=r,
        )
        self.http_seconds: Histogram = Histogram(
            "colony_http_request_seconds", "HTTP request duration by route template (streams: until closed).",
            ["route"], registry=r,
        )
        self.turns: Counter = Counter("colony_turns", "Agent turns by final status.", ["status"], registry=r)
        self.turn_seconds: Histogram = Histogram(
            "colony_turn_seconds", "Agent turn duration, model time included.", buckets=_TURN_BUCKETS, registry=r
        )
        self.model_seconds: Histogram = Histogram(
            "colony_model_request_seconds", "Model request duration (retries and fallbacks included).",
            ["provider", "model"], buckets=_MODEL_BUCKETS, registry=r,
        )
        self.model_tokens: Counter = Counter(
            "colony_model_tokens", "Model tokens by provider, model and kind (prompt or completion).",
            ["provider", "model", "kind"], registry=r,
        )
        self.tool_calls: Counter = Counter(
            "colony_tool_calls", "Tool calls by tool and outcome.", ["tool", "outcome"], registry=r
        )
        self.approvals: Counter = Counter(
            "colony_approvals", "Approval requests by decision.", ["decision"], registry=r
        )
        self.ledger_transfers: Counter = Counter(
            "colony_ledger_transfers", "Ledger transfers and holds by outcome (applied, replayed, refused, "
            "invalid) and reason code.", ["outcome", "reason"], registry=r,
        )
        self.ledger_verify_failures: Counter = Counter(
            "colony_ledger_verify_failures", "Ledger verifications that found a problem.", registry=r,
        )
        self.ledger_verifications: Counter = Counter(
            "colony_ledger_verifications", "Ledger verifications run (failed ones included).", registry=r,
        )
        self.x402_payments: Counter = Counter(
            "colony_x402_payments", "x402 payments received (in) and made (out) by scheme and status (settled, "
            "failed, refused, denied).", ["direction", "scheme", "status"], registry=r,
        )
        self.market_auctions: Counter = Counter(
            "colony_market_auctions", "Market auctions by event: posted, awarded, void (no valid bid or unfunded), "
            "paid, refunded, cancelled.", ["event"], registry=r,
        )
        self.market_bids: Counter = Counter(
            "colony_market_bids", "Sealed bids by phase: commit, reveal, forfeited (never revealed).", ["phase"],
            registry=r,
        )
        self.market_escrow: Counter = Counter(
            "colony_market_escrow_micro_credits", "Micro-credits of market escrow: held at award, captured to the "
            "winner, refunded to the poster.", ["outcome"], registry=r,
        )
        self.market_slashes: Counter = Counter(
            "colony_market_slashes", "Stake slashes after a failed verification.", registry=r,
        )
        self.market_slashed: Counter = Counter(
            "colony_market_slashed_micro_credits", "Micro-credits of stake slashed after failed verifications.",
            registry=r,
        )
        self.sse_streams: Gauge = Gauge(
            "colony_sse_streams_active", "Server-sent event streams open right now.", registry=r
        )
        r.register(_ScrapeTimeCollector())


_state: list[_Metrics] = []
_build_lock = threading.Lock()


def _m() -> _Metrics:
    if _state:
        return _state[0]
    with _build_lock:
        if not _state:
            _state.append(_Metrics())
    return _state[0]


def _label(value: str) -> str:
    return value[:_MAX_LABEL] if value else "unknown"


def registry() -> CollectorRegistry:
    """The node's registry (for tests and for capabilities that add their own collectors)."""
    return _m().registry


def reset_metrics() -> None:
    """Start over with a fresh, empty registry. Registered callbacks are kept."""
    with _build_lock:
        _state.clear()
        _state.append(_Metrics())


def render_latest() -> tuple[bytes, str]:
    """The Prometheus text exposition of every family and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(_m().registry), CONTENT_TYPE_LATEST


# -- observations (hot path: keep them one call deep) ----------------------------------------


def observe_tool_call(tool: str, outcome: str) -> None:
    """Count one finished tool call. A tool the registry doesn't know is counted as ``unknown``."""
    name = "unknown" if outcome == "unknown_tool" else _label(tool)
    _m().tool_calls.labels(name, outcome).inc()


def observe_approval(decision: str) -> None:
    """Count one approval decision: approved, denied, expired or cancelled."""
    _m().approvals.labels(decision).inc()


def observe_turn(status: str, seconds: float) -> None:
    m = _m()
    m.turns.labels(status).inc()
    m.turn_seconds.observe(seconds)


def observe_model_request(
    provider: str, model: str, seconds: float, *, prompt_tokens: int = 0, completion_tokens: int = 0
) -> None:
    m = _m()
    provider, model = _label(provider), _label(model)
    m.model_seconds.labels(provider, model).observe(seconds)
    if prompt_tokens:
        m.model_tokens.labels(provider, model, "prompt").inc(prompt_tokens)
    if completion_tokens:
        m.model_tokens.labels(provider, model, "completion").inc(completion_tokens)


def observe_http_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one HTTP request. ``route`` must be a template (``/api/v1/turns/{turn_id}``)."""
    m = _m()
    method = method.upper()
    m.http_requests.labels(route, method if method in _HTTP_METHODS else "OTHER", str(status)).inc()
    m.http_seconds.labels(route).observe(seconds)


#: Reason codes a ledger outcome may carry as a label; anything else is counted as ``other``.
_LEDGER_REASONS = frozenset({
    "", "insufficient_funds", "remote_account", "invalid_payload", "invalid_signature", "self_payment",
    "payment_to_node", "invalid_account", "invalid_window", "nonce_already_used", "authorization_expired",
    "authorization_not_yet_valid",
})


def observe_ledger_transfer(outcome: str, reason: str) -> None:
    """Count one transfer or hold: ``applied``, ``replayed`` (a retried nonce), ``refused``, ``invalid``."""
    _m().ledger_transfers.labels(outcome, reason if reason in _LEDGER_REASONS else "other").inc()


def observe_x402_payment(direction: str, scheme: str, status: str) -> None:
    """Count one journalled payment; unknown schemes share one label so a peer cannot grow the series."""
    _m().x402_payments.labels(direction, scheme if scheme in ("credits", "exact") else "other", status).inc()


def observe_market_auction(event: str) -> None:
    """Count an auction event: posted, awarded, void, paid, refunded or cancelled."""
    _m().market_auctions.labels(event).inc()


def observe_market_bid(phase: str, count: int = 1) -> None:
    """Count sealed bids: committed, revealed or forfeited."""
    if count:
        _m().market_bids.labels(phase).inc(count)


def observe_market_escrow(outcome: str, amount: int) -> None:
    """Add ``amount`` micro-credits of escrow held, captured or refunded."""
    _m().market_escrow.labels(outcome).inc(amount)


def observe_market_slash(amount: int) -> None:
    m = _m()
    m.market_slashes.inc()
    m.market_slashed.inc(amount)


def observe_ledger_verify(ok: bool) -> None:
    m = _m()
    m.ledger_verifications.inc()
    if not ok:
        m.ledger_verify_failures.inc()


def sse_stream_opened() -> None:
    _m().sse_streams.inc()


def sse_stream_closed() -> None:
    _m().sse_streams.dec()


# -- scrape-time sources --------------------------------------------------------------------


def register_circuit_source(scope: CircuitScope, source: CircuitSource) -> Callable[[], None]:
    """Report breaker states from ``source`` on every scrape; returns the function that stops it.

    ``source`` returns ``{name: "closed" | "half_open" | "open"}``. It runs on the scraping
    thread, so it must be cheap and must not block on the event loop.
    """
    with _sources.lock:
        key = _sources.next_id
        _sources.next_id += 1
        _sources.circuits[key] = (scope, source)

    def unregister() -> None:
        with _sources.lock:
            _sources.circuits.pop(key, None)

    return unregister


def set_memory_items_source(source: MemorySource | None) -> None:
    """Let the memory capability report its item count (None reports 0 again)."""
    with _sources.lock:
        _sources.memory = source

"""A list of providers tried in priority order, presented to the agent as one `Model`.

For each provider the cascade checks its circuit breaker and its rate limits (requests per
minute and per day), then tries it: transient failures (connection refused, timeouts, 429, 5xx,
cut streams) are retried with exponential backoff and jitter, honouring a server's Retry-After;
anything else moves straight on to the next provider. The breaker counts one failure per
exhausted provider attempt, not per retry, so ``failures=3`` means "three turns in a row found
it broken". When every provider fails, `ModelUnavailableError` lists why each one did.

A stream can only fall over to another provider until its first visible text has been yielded:
after that the caller has shown words to a person, and a second model would start a different
answer, so the error is raised instead.

Every attempt, good or bad, is reported to an optional ``on_call`` hook as a `CallRecord` (the
agent loop stores them with token counts); `ProviderCascade.health` is what ``colony doctor``
and the health API show. Clock and sleep are injectable so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import copy
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from colony.breaker import BreakerState, CircuitBreaker
from colony.config import ProviderConfig
from colony.errors import ConfigError, ModelError, ModelResponseError, ModelUnavailableError
from colony.llm.messages import (
    Message,
    ModelResponse,
    ModelSettings,
    ResponseDone,
    StreamEvent,
    TextDelta,
    ToolDefinition,
)
from colony.llm.model import Model
from colony.ratelimit import SlidingWindow

__all__ = ["CallRecord", "OnCall", "ProviderCascade", "ProviderHealth"]

_MINUTE, _DAY = 60.0, 86_400.0
#: A window that never refuses, so requests are counted for health even without a limit.
_UNLIMITED = sys.maxsize


class CallRecord(BaseModel):
    """One attempt against one provider, as handed to the ``on_call`` hook."""

    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float
    outcome: Literal["ok", "error"]
    error: str | None = None
    streamed: bool = False


OnCall = Callable[[CallRecord], None]


class ProviderHealth(BaseModel):
    """What ``colony doctor`` and the health API show about one provider."""

    name: str
    base_url: str
    model: str
    circuit: BreakerState
    requests_last_minute: int
    requests_last_day: int
    requests_per_minute: int | None
    requests_per_day: int | None
    last_error: str | None = None
    last_latency_ms: float | None = None


@dataclass
class _Provider:
    config: ProviderConfig
    model: Model
    breaker: CircuitBreaker
    minute: SlidingWindow
    day: SlidingWindow
    last_error: str | None = None
    last_latency_ms: float | None = None

    @property
    def label(self) -> str:
        return f"{self.config.name}:{self.config.model}"


class ProviderCascade:
    """A `Model` that tries its providers in order, with retries, breakers and rate limits.

    Args:
        models: ``(config, model)`` pairs in priority order; the config gives the limits.
        failures: consecutive failed provider attempts that open a provider's breaker.
        cooldown_s: how long an open breaker refuses before letting one probe through.
        base_delay_s: the first retry's backoff; it doubles on each retry.
        max_delay_s: the longest single wait. A Retry-After above it skips the provider instead.
        on_call: called after every attempt with a `CallRecord`.
        clock: for breakers and rate windows. sleep: for backoff. rng: for jitter.
    """

    def __init__(
        self,
        models: Sequence[tuple[ProviderConfig, Model]],
        *,
        failures: int = 3,
        cooldown_s: float = 30.0,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        on_call: OnCall | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not models:
            raise ConfigError("A ProviderCascade needs at least one provider.")
        self._providers = [
            _Provider(
                config=config,
                model=model,
                breaker=CircuitBreaker(failures, cooldown_s, clock),
                minute=SlidingWindow(config.requests_per_minute or _UNLIMITED, _MINUTE, clock),
                day=SlidingWindow(config.requests_per_day or _UNLIMITED, _DAY, clock),
            )
            for config, model in models
        ]
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.on_call = on_call
        self._sleep = sleep
        self._rng = rng or random.Random()
        #: False for a view made by `only`: the clients belong to the cascade it was taken from.
        self._owns_clients = True

    @property
    def name(self) -> str:
        return self._providers[0].label

    @property
    def configs(self) -> list[ProviderConfig]:
        return [p.config for p in self._providers]

    @property
    def models(self) -> list[Model]:
        return [p.model for p in self._providers]

    def only(self, provider: str) -> ProviderCascade:
        """This cascade narrowed to the provider named ``provider`` (an agent's model tier).

        A view, not a copy: it shares that provider's client, breaker and rate windows with the
        full cascade, so node-wide limits, health and per-day counts hold whichever agent calls,
        and retries and backoff are the same code. It never falls over to another provider: an
        agent priced for one tier must not silently run on a dearer or weaker one.

        Raises:
            ConfigError: no provider of that name; the message lists the ones there are.
        """
        chosen = [p for p in self._providers if p.config.name == provider]
        if not chosen:
            names = ", ".join(repr(p.config.name) for p in self._providers)
            raise ConfigError(
                f"No model provider named {provider!r} in this node's cascade (it has {names}). Set the agent's "
                "model tier to one of these or 'default' (colony agents edit NAME --tier default), or configure "
                "that provider in COLONY_PROVIDERS."
            )
        view = copy.copy(self)
        view._providers = chosen[:1]
        view._owns_clients = False
        return view

    async def aclose(self) -> None:
        """Close every provider's HTTP client (models without ``aclose`` are skipped).

        A view made by `only` closes nothing: its clients are the full cascade's.
        """
        if not self._owns_clients:
            return
        for p in self._providers:
            close = getattr(p.model, "aclose", None)
            if close is not None:
                await close()

    def seed_usage(self, provider: str, ages_s: Sequence[float]) -> None:
        """Count earlier requests to ``provider`` (ages in seconds) against its rate windows.

        The node reads them from `llm_calls` at start-up so per-day limits survive restarts.
        """
        for p in self._providers:
            if p.config.name == provider:
                p.minute.record_past(ages_s)
                p.day.record_past(ages_s)

    def health(self) -> list[ProviderHealth]:
        return [
            ProviderHealth(
                name=p.config.name,
                base_url=p.config.base_url,
                model=p.config.model,
                circuit=p.breaker.snapshot(),
                requests_last_minute=p.minute.used(),
                requests_last_day=p.day.used(),
                requests_per_minute=p.config.requests_per_minute,
                requests_per_day=p.config.requests_per_day,
                last_error=p.last_error,
                last_latency_ms=p.last_latency_ms,
            )
            for p in self._providers
        ]

    async def request(
        self,
        messages: Sequence[Message],
        settings: ModelSettings,
        tools: Sequence[ToolDefinition],
    ) -> ModelResponse:
        reasons: dict[str, str] = {}
        for p in self._providers:
            refusal = self._admit(p)
            if refusal:
                reasons[p.label] = refusal
                continue
            try:
                outcome = await self._call(p, messages, settings, tools)
            except BaseException:
                self._release_probe(p)
                raise
            if isinstance(outcome, ModelResponse):
                return outcome
            reasons[p.label] = outcome
        raise self._unavailable(reasons)

    async def _call(
        self,
        p: _Provider,
        messages: Sequence[Message],
        settings: ModelSettings,
        tools: Sequence[ToolDefinition],
    ) -> ModelResponse | str:
        """One provider with its retries: its answer, or why it gave up."""
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                response = await p.model.request(messages, settings, tools)
            except ModelError as exc:
                self._record(p, started, error=exc)
                reason = await self._backoff(p, exc, attempt)
                if reason is not None:
                    return reason
                attempt += 1
            else:
                self._record(p, started, response=response)
                return response

    async def request_stream(
        self,
        messages: Sequence[Message],
        settings: ModelSettings,
        tools: Sequence[ToolDefinition],
    ) -> AsyncIterator[StreamEvent]:
        reasons: dict[str, str] = {}
        for p in self._providers:
            refusal = self._admit(p)
            if refusal:
                reasons[p.label] = refusal
                continue
            attempt = 0
            try:
                while True:
                    started, shown, done = time.perf_counter(), False, None
                    try:
                        async with _closing(p.model.request_stream(messages, settings, tools)) as events:
                            async for event in events:
                                if isinstance(event, ResponseDone):
                                    done = event.response
                                elif isinstance(event, TextDelta) and event.text:
                                    shown = True
                                yield event
                    except ModelError as exc:
                        self._record(p, started, error=exc, streamed=True)
                        if shown:  # words already reached the caller: no silent switch of model
                            p.breaker.record_failure()
                            raise
                        reason = await self._backoff(p, exc, attempt)
                        if reason is not None:
                            reasons[p.label] = reason
                            break
                        attempt += 1
                    except GeneratorExit:  # the caller stopped reading; fine once it had the answer
                        if done is not None:
                            self._record(p, started, response=done, streamed=True)
                        raise
                    else:
                        self._record(p, started, response=done, streamed=True)
                        return
            except BaseException as exc:
                if not isinstance(exc, ModelError):  # a ModelError here already settled the breaker
                    self._release_probe(p)
                raise
        raise self._unavailable(reasons)

    # -- bookkeeping -------------------------------------------------------------------------

    def _admit(self, p: _Provider) -> str | None:
        """Why ``p`` may not be tried now, or None after taking its breaker slot and one request."""
        limits = (
            (p.minute, p.config.requests_per_minute, "minute"),
            (p.day, p.config.requests_per_day, "day"),
        )
        for window, limit, unit in limits:
            wait = window.retry_after()
            if wait > 0:
                return (
                    f"skipped: its limit of {limit} requests per {unit} is used up; a request frees up "
                    f"in {wait:.0f}s (raise requests_per_{unit} for this provider if the service allows)."
                )
        if not p.breaker.allow():
            snap = p.breaker.snapshot()
            return (
                f"skipped: circuit open after {snap.consecutive_failures} failed attempts "
                f"(last error: {p.last_error}); it will be tried again in {snap.retry_in_s:.0f}s."
            )
        self._acquire(p)
        return None

    async def _backoff(self, p: _Provider, exc: ModelError, attempt: int) -> str | None:
        """Wait before retrying ``p`` and return None, or settle its breaker and say why we gave up."""
        transient = isinstance(exc, ModelResponseError) and exc.transient
        retry_after = exc.retry_after if isinstance(exc, ModelResponseError) else None
        if not transient:
            reason = str(exc)
        elif retry_after is not None and retry_after > self.max_delay_s:
            reason = f"{exc} (that is longer than the {self.max_delay_s:g}s we wait, so we moved on)"
        elif attempt >= p.config.max_retries:
            reason = f"{exc} (gave up after {attempt + 1} tries)"
        elif not self._acquire(p):
            reason = f"{exc} (and its own rate limit was reached before a retry)"
        else:
            await self._sleep(self._delay(attempt, retry_after))
            return None
        p.breaker.record_failure()
        return reason

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0**attempt)
        # "Equal jitter": at least half the backoff, so many agents retrying at once spread out
        # without any of them hammering the server immediately.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _acquire(self, p: _Provider) -> bool:
        """Count one request against both windows, or neither when either is full."""
        if p.minute.retry_after() > 0 or p.day.retry_after() > 0:
            return False
        return p.minute.try_acquire() and p.day.try_acquire()

    def _release_probe(self, p: _Provider) -> None:
        """A cancelled half-open probe must still settle the breaker, or it stays stuck."""
        if p.breaker.state == "half_open":
            p.breaker.record_failure()

    def _record(
        self,
        p: _Provider,
        started: float,
        *,
        response: ModelResponse | None = None,
        error: ModelError | None = None,
        streamed: bool = False,
    ) -> None:
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        p.last_latency_ms = latency_ms
        if error is None:
            p.breaker.record_success()
            p.last_error = None
        else:
            p.last_error = str(error)
        if self.on_call is None:
            return
        usage = response.usage if response is not None else None
        self.on_call(
            CallRecord(
                provider=p.config.name,
                model=(response.model_name if response and response.model_name else p.config.model),
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                latency_ms=latency_ms,
                outcome="ok" if error is None else "error",
                error=None if error is None else str(error),
                streamed=streamed,
            )
        )

    def _unavailable(self, reasons: dict[str, str]) -> ModelUnavailableError:
        lines = "\n".join(f"  - {label}: {why}" for label, why in reasons.items())
        return ModelUnavailableError(
            f"No model provider could answer:\n{lines}\nFix the first provider's problem above, or "
            f"add a fallback provider (COLONY_PROVIDERS) so another one can answer.",
            reasons,
        )


@asynccontextmanager
async def _closing(events: AsyncIterator[StreamEvent]) -> AsyncIterator[AsyncIterator[StreamEvent]]:
    """Close a model's stream however we leave it (the protocol promises only an iterator)."""
    try:
        yield events
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()

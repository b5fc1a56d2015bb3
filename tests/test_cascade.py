"""ProviderCascade over real OpenAIChatModels and scripted servers: retries, fall-over, breakers, limits.

The clock and the backoff sleep are injected, so breaker cooldowns and rate windows are crossed by
moving a number, and backoff delays are recorded instead of waited.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from colony.config import ProviderConfig
from colony.errors import ConfigError, ModelResponseError, ModelUnavailableError
from colony.llm.cascade import CallRecord, ProviderCascade
from colony.llm.messages import (
    Message,
    ModelResponse,
    ModelSettings,
    ResponseDone,
    StreamEvent,
    TextDelta,
    UserMessage,
)
from colony.llm.model import Model
from colony.llm.openai_model import OpenAIChatModel
from colony.testing import Reply, ScriptedModelServer

HI: list[Message] = [UserMessage(content="hi")]
NO_SETTINGS = ModelSettings()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """Builds cascades over scripted servers and remembers what to close and what happened."""

    def __init__(self) -> None:
        self.servers: list[ScriptedModelServer] = []
        self.cascades: list[ProviderCascade] = []
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        self.calls: list[CallRecord] = []

    def serve(self, script: Any) -> str:
        server = ScriptedModelServer(script).start()
        self.servers.append(server)
        return server.base_url

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def cascade(self, *providers: tuple[str, str] | ProviderConfig, **options: Any) -> ProviderCascade:
        """Providers as ``(name, base_url)`` (no retries by default) or full configs."""
        configs = [
            p
            if isinstance(p, ProviderConfig)
            else ProviderConfig(name=p[0], base_url=p[1], model="m", max_retries=0)
            for p in providers
        ]
        models: list[tuple[ProviderConfig, Model]] = [(c, OpenAIChatModel(c)) for c in configs]
        options = {"failures": 3, "cooldown_s": 30.0, "base_delay_s": 0.5, **options}
        cascade = ProviderCascade(
            models,
            clock=self.clock,
            sleep=self.sleep,
            on_call=self.calls.append,
            rng=random.Random(7),
            **options,
        )
        self.cascades.append(cascade)
        return cascade

    def outcomes(self) -> list[tuple[str, str]]:
        return [(c.provider, c.outcome) for c in self.calls]


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    for cascade in harness.cascades:
        await cascade.aclose()
    for server in harness.servers:
        server.stop()
    assert [s.errors for s in harness.servers] == [[] for _ in harness.servers]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def config(name: str, base_url: str, **fields: Any) -> ProviderConfig:
    return ProviderConfig(**{"name": name, "base_url": base_url, "model": "m", "max_retries": 0, **fields})


async def text_of(cascade: ProviderCascade) -> str:
    return (await cascade.request(HI, NO_SETTINGS, [])).message.content


async def stream_of(cascade: ProviderCascade) -> tuple[list[StreamEvent], ModelResponse]:
    events = [event async for event in cascade.request_stream(HI, NO_SETTINGS, [])]
    done = events[-1]
    assert isinstance(done, ResponseDone)
    return events, done.response


# -- retries ----------------------------------------------------------------------------------


async def test_a_500_is_retried_with_backoff_and_usage_is_reported(h: Harness) -> None:
    url = h.serve([Reply.error(500, "boom"), Reply.text("ok", usage=(11, 2))])
    cascade = h.cascade(config("a", url, max_retries=2))

    response = await cascade.request(HI, NO_SETTINGS, [])

    assert response.message.content == "ok"
    assert len(h.sleeps) == 1
    assert 0.25 <= h.sleeps[0] <= 0.5  # base 0.5 with equal jitter
    assert [(c.outcome, c.prompt_tokens, c.completion_tokens) for c in h.calls] == [
        ("error", 0, 0),
        ("ok", 11, 2),
    ]
    assert h.calls[0].error is not None
    assert "boom" in h.calls[0].error
    assert all(c.provider == "a" and c.model in ("m", "scripted") and c.latency_ms >= 0 for c in h.calls)
    assert cascade.health()[0].circuit.state == "closed"
    assert cascade.health()[0].last_error is None


async def test_backoff_doubles_each_retry_within_the_jitter_band(h: Harness) -> None:
    url = h.serve([Reply.error(502), Reply.error(502), Reply.error(502), Reply.text("ok")])
    cascade = h.cascade(config("a", url, max_retries=3), base_delay_s=1.0, max_delay_s=3.0)
    assert await text_of(cascade) == "ok"
    ceilings = [1.0, 2.0, 3.0]  # the third is capped by max_delay_s
    assert len(h.sleeps) == 3
    assert all(c / 2 <= s <= c for s, c in zip(h.sleeps, ceilings, strict=True))


async def test_429_retry_after_is_honoured(h: Harness) -> None:
    url = h.serve([Reply.error(429, "slow down", retry_after=3), Reply.text("ok")])
    cascade = h.cascade(config("a", url, max_retries=1))
    assert await text_of(cascade) == "ok"
    assert h.sleeps == [3.0]


async def test_a_retry_after_longer_than_the_cap_moves_on_without_waiting(h: Harness) -> None:
    first = h.serve([Reply.error(429, "daily quota", retry_after=3600)])
    second = h.serve([Reply.text("from b")])
    cascade = h.cascade(config("a", first, max_retries=2), ("b", second), max_delay_s=30.0)
    assert await text_of(cascade) == "from b"
    assert h.sleeps == []
    assert h.outcomes() == [("a", "error"), ("b", "ok")]


async def test_401_is_not_retried_and_falls_over_to_the_next_provider(h: Harness) -> None:
    first_server = ScriptedModelServer([Reply.error(401, "bad key")]).start()
    h.servers.append(first_server)
    second = h.serve([Reply.text("from b")])
    cascade = h.cascade(config("a", first_server.base_url, max_retries=3), ("b", second))
    assert await text_of(cascade) == "from b"
    assert len(first_server.requests) == 1
    assert h.sleeps == []
    assert "COLONY_MODEL_API_KEY" in (cascade.health()[0].last_error or "")


async def test_connection_refused_is_retried_then_falls_over(h: Harness) -> None:
    second = h.serve([Reply.text("from b")])
    cascade = h.cascade(config("a", closed_port_url(), max_retries=2), ("b", second))
    assert await text_of(cascade) == "from b"
    assert len(h.sleeps) == 2
    assert h.outcomes() == [("a", "error"), ("a", "error"), ("a", "error"), ("b", "ok")]


async def test_a_hung_provider_times_out_and_falls_over(h: Harness) -> None:
    first = h.serve([Reply.hang()])
    second = h.serve([Reply.text("from b")])
    cascade = h.cascade(config("a", first, timeout_s=0.1), ("b", second))
    assert await text_of(cascade) == "from b"
    assert "did not answer in time" in (h.calls[0].error or "")


# -- breaker ----------------------------------------------------------------------------------


async def test_breaker_opens_after_n_failed_attempts_and_half_opens_after_cooldown(h: Harness) -> None:
    flaky = ScriptedModelServer([Reply.error(500), Reply.error(500), Reply.text("a is back")]).start()
    h.servers.append(flaky)
    backup = h.serve([Reply.text("from b")] * 3)
    cascade = h.cascade(("a", flaky.base_url), ("b", backup), failures=2, cooldown_s=30.0)

    assert await text_of(cascade) == "from b"
    assert cascade.health()[0].circuit.state == "closed"
    assert await text_of(cascade) == "from b"
    assert cascade.health()[0].circuit.state == "open"

    assert await text_of(cascade) == "from b"  # a is skipped without a request
    assert len(flaky.requests) == 2
    assert h.outcomes()[-1] == ("b", "ok")
    assert h.outcomes().count(("a", "error")) == 2

    h.clock.now += 30.0
    assert cascade.health()[0].circuit.state == "half_open"
    assert await text_of(cascade) == "a is back"  # the probe succeeds and closes the breaker
    assert cascade.health()[0].circuit.state == "closed"
    assert cascade.health()[0].circuit.consecutive_failures == 0


async def test_retries_count_as_one_breaker_failure(h: Harness) -> None:
    url = h.serve([Reply.error(500)] * 3 + [Reply.text("ok")])
    cascade = h.cascade(config("a", url, max_retries=2), failures=2)
    with pytest.raises(ModelUnavailableError):
        await text_of(cascade)
    assert cascade.health()[0].circuit.consecutive_failures == 1
    assert cascade.health()[0].circuit.state == "closed"


async def test_a_failed_half_open_probe_reopens_the_breaker(h: Harness) -> None:
    url = closed_port_url()
    cascade = h.cascade(config("a", url), failures=1, cooldown_s=10.0)
    with pytest.raises(ModelUnavailableError):
        await text_of(cascade)
    assert cascade.health()[0].circuit.state == "open"
    with pytest.raises(ModelUnavailableError, match="circuit open"):
        await text_of(cascade)
    assert len(h.calls) == 1  # the second call never reached the provider

    h.clock.now += 10.0
    with pytest.raises(ModelUnavailableError, match="No model endpoint reachable"):
        await text_of(cascade)
    assert cascade.health()[0].circuit.state == "open"
    assert cascade.health()[0].circuit.retry_in_s == 10.0


# -- rate limits ------------------------------------------------------------------------------


async def test_a_per_minute_limit_skips_the_provider_until_the_window_moves(h: Harness) -> None:
    limited = ScriptedModelServer([Reply.text("from a")], on_exhausted="repeat_last").start()
    h.servers.append(limited)
    backup = h.serve([Reply.text("from b")])
    cascade = h.cascade(config("a", limited.base_url, requests_per_minute=2), ("b", backup))

    assert [await text_of(cascade) for _ in range(3)] == ["from a", "from a", "from b"]
    health = cascade.health()[0]
    assert (health.requests_last_minute, health.requests_last_day, health.requests_per_minute) == (2, 2, 2)

    h.clock.now += 61.0
    assert await text_of(cascade) == "from a"
    assert len(limited.requests) == 3


async def test_a_per_day_limit_is_reported_when_everything_is_exhausted(h: Harness) -> None:
    url = h.serve([Reply.text("once")])
    cascade = h.cascade(config("a", url, requests_per_day=1))
    assert await text_of(cascade) == "once"
    with pytest.raises(ModelUnavailableError, match="limit of 1 requests per day is used up"):
        await text_of(cascade)


async def test_retries_count_against_the_rate_limit(h: Harness) -> None:
    url = h.serve([Reply.error(500), Reply.error(500), Reply.text("never")])
    cascade = h.cascade(config("a", url, max_retries=5, requests_per_minute=2))
    with pytest.raises(ModelUnavailableError, match="rate limit was reached before a retry"):
        await text_of(cascade)
    assert len(h.sleeps) == 1


# -- all down ---------------------------------------------------------------------------------


async def test_all_down_lists_every_provider_and_how_to_fix_it(h: Harness) -> None:
    refused = closed_port_url()
    bad_key = h.serve([Reply.error(401, "invalid api key")])
    missing = h.serve([Reply.error(404, "model 'm' not found")])
    cascade = h.cascade(("local", refused), ("hosted", bad_key), ("other", missing))

    with pytest.raises(ModelUnavailableError) as caught:
        await text_of(cascade)

    error = caught.value
    assert list(error.reasons) == ["local:m", "hosted:m", "other:m"]
    assert f"No model endpoint reachable at {refused}" in error.reasons["local:m"]
    assert "COLONY_MODEL_API_KEY" in error.reasons["hosted:m"]
    assert "model name may be wrong" in error.reasons["other:m"]
    message = str(error)
    assert all(label in message for label in error.reasons)
    assert "COLONY_PROVIDERS" in message


# -- streaming --------------------------------------------------------------------------------


async def test_stream_falls_over_before_the_first_delta(h: Harness) -> None:
    first = h.serve([Reply.error(500)])
    second = h.serve([Reply.text("streamed from b", stream_chunk_size=4, usage=(3, 4))])
    cascade = h.cascade(("a", first), ("b", second))

    events, response = await stream_of(cascade)

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "streamed from b"
    assert response.provider == "b"
    assert [(c.provider, c.outcome, c.streamed) for c in h.calls] == [("a", "error", True), ("b", "ok", True)]
    assert (h.calls[-1].prompt_tokens, h.calls[-1].completion_tokens) == (3, 4)


async def test_stream_retries_a_truncated_stream_that_showed_nothing(h: Harness) -> None:
    url = h.serve([Reply.truncated_stream(""), Reply.text("second try")])
    cascade = h.cascade(config("a", url, max_retries=1))
    _, response = await stream_of(cascade)
    assert response.message.content == "second try"
    assert len(h.sleeps) == 1


async def test_stream_failure_after_visible_text_is_raised_not_switched(h: Harness) -> None:
    broken = h.serve([Reply.truncated_stream("half an answer")])
    backup = ScriptedModelServer([Reply.text("from b")]).start()
    h.servers.append(backup)
    cascade = h.cascade(config("a", broken, max_retries=3), ("b", backup.base_url), failures=1)

    seen: list[str] = []

    async def read() -> None:
        async for event in cascade.request_stream(HI, NO_SETTINGS, []):
            if isinstance(event, TextDelta):
                seen.append(event.text)

    with pytest.raises(ModelResponseError) as caught:
        await read()
    assert "".join(seen) == "half an answer"
    assert caught.value.transient is True
    assert backup.requests == []
    assert h.sleeps == []
    assert cascade.health()[0].circuit.state == "open"


async def test_stream_closed_early_by_the_caller_settles_cleanly(h: Harness) -> None:
    url = h.serve([Reply.text("one two three four", stream_chunk_size=4), Reply.text("again")])
    cascade = h.cascade(("a", url))
    stream = cascade.request_stream(HI, NO_SETTINGS, [])
    assert isinstance(stream, AsyncGenerator)
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    await stream.aclose()
    assert await text_of(cascade) == "again"
    assert cascade.health()[0].circuit.state == "closed"


# -- surface ----------------------------------------------------------------------------------


async def test_name_health_and_model_protocol(h: Harness) -> None:
    url = h.serve([Reply.text("ok")])
    cascade = h.cascade(config("ollama", url, requests_per_minute=10), ("backup", closed_port_url()))
    assert isinstance(cascade, Model)
    assert cascade.name == "ollama:m"
    await text_of(cascade)
    first, second = cascade.health()
    assert (first.name, first.base_url, first.model) == ("ollama", url, "m")
    assert (first.requests_last_minute, first.requests_per_minute, first.requests_per_day) == (1, 10, None)
    assert first.last_latency_ms is not None
    assert first.last_latency_ms > 0
    assert (second.requests_last_minute, second.last_latency_ms, second.circuit.state) == (0, None, "closed")


def test_an_empty_cascade_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        ProviderCascade([])

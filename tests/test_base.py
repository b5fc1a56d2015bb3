"""Configuration, the public API, redaction, the circuit breaker and the rate window."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import colony
from colony.breaker import CircuitBreaker
from colony.config import Settings
from colony.ratelimit import SlidingWindow
from colony.tools.redact import REDACTED, redact, redact_text


def test_settings_from_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(
        "COLONY_PROVIDERS",
        json.dumps(
            [{"name": "local", "base_url": "http://127.0.0.1:11434/v1", "model": "q", "requests_per_day": 5}]
        ),
    )
    monkeypatch.setenv("COLONY_TOOL_POLICY", json.dumps({"write_file": "allow"}))
    (tmp_path / ".env").write_text("COLONY_CONTEXT_TOKENS=4096\nCOLONY_MODEL_API_KEY=sk-secretsecretsecret\n")
    s = Settings()
    assert s.providers[0].requests_per_day == 5
    assert s.tier_for("write_file") == "allow" and s.tier_for("patch_file") == "ask"
    assert s.context_tokens == 4096
    assert "secretsecret" not in repr(s)  # keys are SecretStr
    assert s.db_path == s.home / "colony.db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COLONY_CONTEXT_TOKENS", "big"),
        ("COLONY_TOOL_POLICY", '{"x": "sometimes"}'),
        ("COLONY_PROVIDERS", "[{"),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises((ValidationError, ValueError)):
        Settings()


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_HOME", "~/somewhere")
    assert "~" not in str(Settings().home)


@pytest.mark.parametrize(
    "module", ["colony", "colony.agent", "colony.llm", "colony.store", "colony.testing", "colony.errors"]
)
def test_public_api_names_exist(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__all__, module
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{module}.{name}"
    assert colony.__version__


def test_every_error_has_a_code_and_derives_from_the_root() -> None:
    from colony import errors

    codes = set()
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.ColonyError)
        codes.add(cls.code)
    assert len(codes) == len(errors.__all__)  # codes are distinct and stable


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "AKIAABCDEFGHIJKLMNOP",
        "xoxb-123456789012-abcdefghij",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijklmnop",
        "0x" + "ab" * 32,
        "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----",
    ],
)
def test_secret_shapes_are_masked_in_text(secret: str) -> None:
    masked = redact_text(f"before {secret} after")
    assert secret not in masked and REDACTED in masked and masked.startswith("before")


def test_redaction_by_key_name_and_assignment() -> None:
    value = {
        "apiKey": "plain-but-secret",
        "password": "hunter2",
        "nested": [{"access_token": "t0k3n-value"}],
        "max_tokens": 100,
        "author": "Ada",
        "cmd": "export DB_PASSWORD=supersecret && run",
        "header": "Authorization: Bearer abcdefghijklmnop",
    }
    out = redact(value)
    assert out["apiKey"] == out["password"] == REDACTED
    assert out["nested"][0]["access_token"] == REDACTED
    assert out["max_tokens"] == 100 and out["author"] == "Ada"
    assert "supersecret" not in out["cmd"] and "abcdefghijklmnop" not in out["header"]
    assert value["password"] == "hunter2"  # the input is not modified


def test_breaker_half_open_allows_one_probe_and_reopens_on_failure() -> None:
    now = [0.0]
    b = CircuitBreaker(failures=2, cooldown_s=10, clock=lambda: now[0])
    b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    assert b.snapshot().retry_in_s == 10
    now[0] = 10.0
    assert b.state == "half_open"
    assert b.allow() and not b.allow()  # one probe at a time
    b.record_failure()
    assert b.state == "open"
    now[0] = 20.0
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.snapshot().consecutive_failures == 0


def test_sliding_window_is_exact_and_remembers_the_past() -> None:
    now = [100.0]
    w = SlidingWindow(3, 10, clock=lambda: now[0])
    assert [w.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert w.retry_after() == 10
    now[0] = 109.9
    assert not w.try_acquire()
    now[0] = 110.0
    assert w.try_acquire() and w.used() == 1
    restarted = SlidingWindow(2, 86_400, clock=lambda: now[0])
    restarted.record_past([60.0, 3600.0, 90_000.0])  # the last is older than the window
    assert restarted.used() == 2 and not restarted.try_acquire()


def _redact_without_gate(text: str) -> str:
    from colony import redaction

    for pattern in redaction._PATTERNS:
        text = pattern.sub(redaction.REDACTED, text)
    for pattern in redaction._LABELLED:
        text = pattern.sub(lambda m: m.group(1) + redaction.REDACTED, text)
    return text


_SECRETISH = st.sampled_from([
    "sk-", "sk-proj-", "ghp_", "github_pat_", "xoxb-", "AKIA", "ASIA", "AIza", "eyJ", "0x", "nsec1", "Bearer ",
    "bearer ", "API_KEY=", "apikey: ", "password=", "Secret: ", "TOKEN=", "private_key=", "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----", ".", "=", " ", "\n",
])


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.one_of(_SECRETISH, st.text(alphabet="abcdefABCDEF0123456789_-", min_size=1, max_size=40),
                                st.text(max_size=10)), max_size=8))
def test_the_redaction_gate_never_changes_the_result(parts: list[str]) -> None:
    """The one-pass gate only skips work: with or without it, the masked text is the same."""
    from colony.redaction import redact_text

    text = "".join(parts)
    assert redact_text(text) == _redact_without_gate(text)

"""Provider discovery: explicit config, the single-provider shorthand, and probing local servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from colony.config import ProviderConfig, Settings
from colony.errors import ConfigError
from colony.llm.cascade import CallRecord, ProviderCascade
from colony.llm.detect import Candidate, build_model, discover_providers
from colony.llm.messages import ModelSettings, UserMessage
from colony.testing import Reply, ScriptedModelServer


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[ScriptedModelServer] = []

    def start(script: Any = (), **kwargs: Any) -> ScriptedModelServer:
        server = ScriptedModelServer(list(script), **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def settings(tmp_path: Path, **fields: Any) -> Settings:
    """Settings independent of the environment: every model field is given explicitly."""
    base: dict[str, Any] = {
        "_env_file": None,
        "home": tmp_path,
        "providers": [],
        "model_base_url": None,
        "model_api_key": None,
        "model_name": None,
        "autodetect_local_models": True,
        "model_timeout_s": 5.0,
        "model_max_retries": 1,
    }
    return Settings(**{**base, **fields})


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


NOBODY = [Candidate("ollama", closed_port_url()), Candidate("vllm", closed_port_url())]


async def test_answering_candidates_become_providers_in_candidate_order(serve: Any, tmp_path: Path) -> None:
    vllm = serve(model_name="Qwen/Qwen3-4B")
    ollama = serve(model_name="qwen3:4b")
    candidates = [
        Candidate("ollama", ollama.base_url),
        Candidate("llamacpp", closed_port_url()),
        Candidate("vllm", vllm.base_url),
    ]

    found = await discover_providers(settings(tmp_path), candidates=candidates)

    assert [(p.name, p.base_url, p.model) for p in found] == [
        ("ollama", ollama.base_url, "qwen3:4b"),
        ("vllm", vllm.base_url, "Qwen/Qwen3-4B"),
    ]
    assert all((p.timeout_s, p.max_retries) == (5.0, 1) for p in found)


async def test_probes_run_concurrently_with_a_short_timeout(serve: Any, tmp_path: Path) -> None:
    # Servers that accept connections but never answer /models: each probe must give up quickly,
    # and together they take one timeout, not four.
    silent = []
    for _ in range(4):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        silent.append(sock)
    try:
        candidates = [
            Candidate(f"s{i}", f"http://127.0.0.1:{s.getsockname()[1]}/v1") for i, s in enumerate(silent)
        ]
        started = time.monotonic()
        found = await discover_providers(settings(tmp_path), candidates=candidates, probe_timeout_s=0.3)
        elapsed = time.monotonic() - started
    finally:
        for sock in silent:
            sock.close()
    assert found == []
    assert elapsed < 1.0  # one after the other would take 1.2 s


async def test_nothing_found_is_a_config_error_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        await build_model(settings(tmp_path), candidates=NOBODY)
    assert str(caught.value) == (
        "No model endpoint configured or found on 127.0.0.1:11434/8080/8000. Start Ollama (ollama serve) "
        "or set COLONY_MODEL_BASE_URL and COLONY_MODEL_NAME."
    )


async def test_autodetect_off_probes_nothing(serve: Any, tmp_path: Path) -> None:
    running = serve()
    off = settings(tmp_path, autodetect_local_models=False)
    assert await discover_providers(off, candidates=[Candidate("ollama", running.base_url)]) == []
    with pytest.raises(ConfigError, match="COLONY_AUTODETECT_LOCAL_MODELS"):
        await build_model(off, candidates=[Candidate("ollama", running.base_url)])


async def test_explicit_providers_win_without_probing(serve: Any, tmp_path: Path) -> None:
    running = serve()
    explicit = [
        ProviderConfig(name="hosted", base_url="https://api.example.invalid/v1", model="big"),
        ProviderConfig(name="local", base_url="http://127.0.0.1:1/v1", model="small"),
    ]
    found = await discover_providers(
        settings(tmp_path, providers=explicit, model_base_url=running.base_url),
        candidates=[Candidate("ollama", running.base_url)],
    )
    assert found == explicit


async def test_shorthand_with_a_model_name_needs_no_network(tmp_path: Path) -> None:
    url = closed_port_url()
    found = await discover_providers(
        settings(tmp_path, model_base_url=url, model_name="llama3.2", model_api_key=SecretStr("sk-1"))
    )
    assert len(found) == 1
    assert (found[0].base_url, found[0].model, found[0].name) == (url, "llama3.2", "127.0.0.1")
    assert found[0].api_key == SecretStr("sk-1")


async def test_shorthand_on_a_known_port_is_named_after_the_server(tmp_path: Path) -> None:
    found = await discover_providers(
        settings(tmp_path, model_base_url="http://127.0.0.1:11434/v1", model_name="qwen3:4b")
    )
    assert found[0].name == "ollama"


async def test_shorthand_without_a_model_name_asks_the_endpoint(serve: Any, tmp_path: Path) -> None:
    running = serve(model_name="phi4-mini")
    found = await discover_providers(settings(tmp_path, model_base_url=running.base_url))
    assert [p.model for p in found] == ["phi4-mini"]


async def test_shorthand_without_a_model_name_on_a_dead_endpoint_is_a_config_error(tmp_path: Path) -> None:
    url = closed_port_url()
    with pytest.raises(ConfigError, match="COLONY_MODEL_NAME") as caught:
        await discover_providers(settings(tmp_path, model_base_url=url))
    assert url in str(caught.value)


async def test_build_model_returns_a_working_cascade(serve: Any, tmp_path: Path) -> None:
    running = serve([Reply.text("hello from the cascade", usage=(5, 4))], model_name="qwen3:4b")
    calls: list[CallRecord] = []
    model = await build_model(
        settings(tmp_path, model_circuit_failures=5),
        on_call=calls.append,
        candidates=[Candidate("ollama", running.base_url)],
    )
    try:
        assert isinstance(model, ProviderCascade)
        assert model.name == "ollama:qwen3:4b"
        response = await model.request([UserMessage(content="hi")], ModelSettings(), [])
    finally:
        await model.aclose()
    assert response.message.content == "hello from the cascade"
    assert [(c.provider, c.model, c.prompt_tokens, c.completion_tokens, c.outcome) for c in calls] == [
        ("ollama", "qwen3:4b", 5, 4, "ok")
    ]


def test_the_llm_package_exports_its_main_names() -> None:
    import colony.llm

    expected = {
        "Model", "ModelResponse", "messages", "OpenAIChatModel", "ProviderCascade", "build_model",
        "discover_providers", "strip_thinking", "recover_tool_calls", "CallRecord", "ProviderHealth",
    }  # fmt: skip
    assert expected <= set(colony.llm.__all__)
    assert all(hasattr(colony.llm, name) for name in colony.llm.__all__)

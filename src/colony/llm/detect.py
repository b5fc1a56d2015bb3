"""Which model endpoints to use: configured ones, or local servers found by asking them.

The order of precedence is what a user would expect: an explicit provider list
(``COLONY_PROVIDERS``) wins; else the single-provider shorthand (``COLONY_MODEL_BASE_URL`` with
``COLONY_MODEL_NAME``, the name asked of the endpoint when missing); else, unless turned off
(``COLONY_AUTODETECT_LOCAL_MODELS=false``), the usual local servers are probed concurrently on
127.0.0.1 — Ollama, the llama.cpp server, vLLM — with a short ``GET /models`` each, and every one
that answers becomes a provider with the first model it serves. Probing costs at most ~0.3 s
when nothing runs, so ``colony chat`` works with zero configuration on a machine with Ollama.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx
from pydantic import SecretStr

from colony.config import ProviderConfig, Settings
from colony.errors import ConfigError
from colony.llm.cascade import OnCall, ProviderCascade
from colony.llm.model import Model

__all__ = [
    "DEFAULT_CANDIDATES",
    "Candidate",
    "build_model",
    "discover_providers",
    "fetch_model_names",
    "provider_names",
]

PROBE_TIMEOUT_S = 0.3


@dataclass(frozen=True)
class Candidate:
    """A local server worth probing: a provider name and its OpenAI-compatible base URL."""

    name: str
    base_url: str


DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("ollama", "http://127.0.0.1:11434/v1"),
    Candidate("llamacpp", "http://127.0.0.1:8080/v1"),
    Candidate("vllm", "http://127.0.0.1:8000/v1"),
)

_NOTHING_FOUND = (
    "No model endpoint configured or found on 127.0.0.1:11434/8080/8000. Start Ollama (ollama serve) "
    "or set COLONY_MODEL_BASE_URL and COLONY_MODEL_NAME."
)


async def fetch_model_names(
    base_url: str, *, api_key: SecretStr | None = None, timeout_s: float = PROBE_TIMEOUT_S
) -> list[str]:
    """The model ids served at ``base_url`` (``GET /models``), in the server's order.

    Raises:
        httpx.HTTPError: the endpoint did not answer, or answered with an error status.
        ValueError: the answer is not an OpenAI-style model list.
    """
    headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
    # trust_env=False: a proxy set for the internet must not swallow loopback probes.
    async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
        response = await client.get(f"{base_url.rstrip('/')}/models", headers=headers)
        response.raise_for_status()
        body = response.json()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"{base_url}/models did not return an OpenAI-style model list")
    return [str(item["id"]) for item in data if isinstance(item, dict) and item.get("id")]


def provider_names(settings: Settings) -> list[str]:
    """The names the cascade's providers can have, known without probing anything.

    The configured list's names, else the shorthand endpoint's, else (with auto-detection on) the
    local servers that may answer. An agent's model tier names one of these, so a tier can be
    checked when the agent is configured, not only when its first turn runs.
    """
    if settings.providers:
        return list(dict.fromkeys(p.name for p in settings.providers))
    if settings.model_base_url:
        return [_name_for(settings.model_base_url)]
    return [c.name for c in DEFAULT_CANDIDATES] if settings.autodetect_local_models else []


async def discover_providers(
    settings: Settings,
    *,
    candidates: Sequence[Candidate] = DEFAULT_CANDIDATES,
    probe_timeout_s: float = PROBE_TIMEOUT_S,
) -> list[ProviderConfig]:
    """The providers to use, in priority order (see the module docstring). May be empty.

    Raises:
        ConfigError: the shorthand names an endpoint without a model and the endpoint cannot
            say which models it serves.
    """
    if settings.providers:
        return list(settings.providers)
    if settings.model_base_url:
        return [await _shorthand(settings, settings.model_base_url)]
    if not settings.autodetect_local_models:
        return []
    found = await asyncio.gather(*(_probe(c, settings, probe_timeout_s) for c in candidates))
    return [provider for provider in found if provider is not None]


async def build_model(
    settings: Settings,
    on_call: OnCall | None = None,
    *,
    candidates: Sequence[Candidate] = DEFAULT_CANDIDATES,
) -> ProviderCascade:
    """The production model: a cascade over every discovered provider.

    Raises:
        ConfigError: nothing is configured and no local server answered.
    """
    providers = await discover_providers(settings, candidates=candidates)
    if not providers:
        if settings.autodetect_local_models:
            raise ConfigError(_NOTHING_FOUND)
        raise ConfigError(
            "No model endpoint configured and local auto-detection is off "
            "(COLONY_AUTODETECT_LOCAL_MODELS=false). Set COLONY_MODEL_BASE_URL and COLONY_MODEL_NAME, "
            "or COLONY_PROVIDERS."
        )
    from colony.llm.openai_model import OpenAIChatModel  # deferred: the openai client takes ~0.4 s to import

    models: list[tuple[ProviderConfig, Model]] = [(p, OpenAIChatModel(p)) for p in providers]
    return ProviderCascade(
        models,
        failures=settings.model_circuit_failures,
        cooldown_s=settings.model_circuit_cooldown_s,
        base_delay_s=settings.retry_base_delay_s,
        on_call=on_call,
    )


async def _shorthand(settings: Settings, base_url: str) -> ProviderConfig:
    model = settings.model_name
    if not model:
        try:
            names = await fetch_model_names(
                base_url, api_key=settings.model_api_key, timeout_s=min(settings.model_timeout_s, 10.0)
            )
        except (httpx.HTTPError, ValueError) as exc:
            raise ConfigError(
                f"COLONY_MODEL_NAME is not set and {base_url}/models could not list the served models "
                f"({exc or type(exc).__name__}). Set COLONY_MODEL_NAME, or check that the server runs."
            ) from exc
        if not names:
            raise ConfigError(f"{base_url} serves no models yet. Load or pull one, or set COLONY_MODEL_NAME.")
        model = names[0]
    return ProviderConfig(
        name=_name_for(base_url),
        base_url=base_url,
        model=model,
        api_key=settings.model_api_key,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
    )


async def _probe(candidate: Candidate, settings: Settings, timeout_s: float) -> ProviderConfig | None:
    try:
        names = await fetch_model_names(candidate.base_url, timeout_s=timeout_s)
    except (httpx.HTTPError, ValueError):
        return None  # nothing there, or not an OpenAI-compatible server: not a candidate
    if not names:
        return None
    return ProviderConfig(
        name=candidate.name,
        base_url=candidate.base_url,
        model=names[0],
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
    )


def _name_for(base_url: str) -> str:
    """A readable provider name: the known local server on that port, else the host."""
    for candidate in DEFAULT_CANDIDATES:
        if base_url.rstrip("/") == candidate.base_url:
            return candidate.name
    return urlparse(base_url).hostname or "model"

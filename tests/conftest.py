"""Suite-wide fixtures: every test gets its own data directory and workspace, no .env from the
developer's checkout, and no probing of real local model servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from colony.config import Settings
from colony.testing import ScriptedModelServer


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("COLONY_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.setenv("COLONY_HOME", str(home))
    monkeypatch.setenv("COLONY_WORKSPACE", str(workspace))
    # Never reach for a real Ollama / llama.cpp / vLLM that might run on this machine.
    monkeypatch.setenv("COLONY_AUTODETECT_LOCAL_MODELS", "false")
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings()


@pytest.fixture
def workspace(settings: Settings) -> Path:
    return settings.workspace


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    """A scripted model server on loopback that the node's settings point at; tests set its
    script with ``model.set_script([...])``."""
    server = ScriptedModelServer([], on_exhausted="error")
    server.start()
    monkeypatch.setenv("COLONY_MODEL_BASE_URL", server.base_url)
    monkeypatch.setenv("COLONY_MODEL_NAME", "scripted")
    monkeypatch.setenv("COLONY_RETRY_BASE_DELAY_S", "0.01")
    yield server
    server.stop()

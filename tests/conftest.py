"""Suite-wide fixtures: every test gets its own data directory and workspace, no .env from the
developer's checkout, and no probing of real local model servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from colony.config import Settings


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

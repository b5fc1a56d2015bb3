"""Fixtures the federation's process tests share (the helpers themselves are in `fed_helpers`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fed_helpers import Script

from colony.testing import ScriptedModelServer


@pytest.fixture
def script() -> Iterator[tuple[Script, ScriptedModelServer]]:
    """The scripted model every node of a market colony uses, and its script (ada's queued replies)."""
    plan = Script()
    with ScriptedModelServer(plan) as server:
        yield plan, server

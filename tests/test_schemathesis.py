"""Property-based API testing: schemathesis generates requests from the OpenAPI document of a
real node server (scripted model behind it); no generated input may produce a 5xx.

The operations are driven directly with hypothesis (`APIOperation.as_strategy`) rather than
through schemathesis' pytest plugin, whose fixture loader does not work with this pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from colony.config import Settings
from colony.testing import NodeServer, Reply, ScriptedModelServer

EXAMPLES_PER_OPERATION = 12


@pytest.fixture
def live_node(monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeServer]:
    with ScriptedModelServer([Reply.text("a short answer")], on_exhausted="repeat_last") as model:
        monkeypatch.setenv("COLONY_MODEL_BASE_URL", model.base_url)
        monkeypatch.setenv("COLONY_MODEL_NAME", "scripted")
        with NodeServer(Settings()) as node:
            yield node


def _operations(node: NodeServer) -> list[Any]:
    doc = httpx.get(f"{node.base_url}/openapi.json", headers=node.auth).json()
    return [result.ok() for result in schemathesis.openapi.from_dict(doc).get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_input_causes_a_server_error(live_node: NodeServer, mode: GenerationMode) -> None:
    operations = _operations(live_node)
    assert len(operations) >= 10  # the whole API is covered, not an empty document
    seen: dict[str, set[int]] = {}
    def make_check(operation: Any) -> Any:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call(base_url=live_node.base_url, headers=live_node.auth, timeout=60)
            seen.setdefault(operation.label, set()).add(response.status_code)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
            )
            if response.status_code >= 400:
                body = response.json()
                assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), body

        return check

    for operation in operations:
        check = make_check(operation)
        try:
            check()
        except Unsatisfiable:
            # Negative mode on an operation with no inputs at all (GET /health): nothing to break.
            assert mode is GenerationMode.NEGATIVE
            seen.setdefault(operation.label, set())
    assert len(seen) == len(operations)
    exercised = sum(1 for codes in seen.values() if codes)
    assert exercised == len(operations) if mode is GenerationMode.POSITIVE else exercised >= 5


def test_openapi_requires_the_token(live_node: NodeServer) -> None:
    assert httpx.get(f"{live_node.base_url}/openapi.json").status_code == 401
    assert httpx.get(f"{live_node.base_url}/docs").status_code == 404  # no CDN-backed docs page

"""The OpenAPI document is the API's contract: schemathesis checks a real node against it.

A node server (the scripted model behind it) is driven by schemathesis' own engine — the one
``schemathesis run`` uses — with every check on (server errors, undocumented status codes and
content types, response schemas, schema-valid data refused, schema-invalid data accepted,
undeclared methods and their ``Allow`` header, ignored auth, use after free …) through all of its
phases: coverage, fuzzing and the stateful phase, which chains operations (post a task, then
cancel, retry and approve it). The run is seeded, and the examples per operation are bounded so
it takes well under a minute on a 2-core CI machine.

The schemathesis CLI reads the same document: ``schemathesis run <node>/openapi.json --checks all
-H "Authorization: Bearer $(colony token)"``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.run import PhaseName

from colony.config import Settings
from colony.testing import NodeServer, Reply, ScriptedModelServer

#: Generated cases per operation and phase; with the coverage phase's own cases, ~2,000 requests.
EXAMPLES_PER_OPERATION = 15
SEED = 12_2025


@pytest.fixture
def live_node(monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeServer]:
    with ScriptedModelServer([Reply.text("a short answer")], on_exhausted="repeat_last") as model:
        monkeypatch.setenv("COLONY_MODEL_BASE_URL", model.base_url)
        monkeypatch.setenv("COLONY_MODEL_NAME", "scripted")
        with NodeServer(Settings()) as node:
            yield node


def _describe(failure: Failure, curl: str) -> str:
    return f"{failure.code} {failure.operation}: {failure.title}\n    {failure.message.strip()[:600]}\n    {curl[:600]}"


def test_the_api_keeps_its_openapi_contract_under_every_check(live_node: NodeServer) -> None:
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "database": "none"},
        "request-timeout": 30,
    })
    config.projects.override.checks.update(included_check_names=["all"])
    schema = schemathesis.openapi.from_url(
        f"{live_node.base_url}/openapi.json", config=config, headers=live_node.auth
    )
    schema.config.headers = {**(schema.config.headers or {}), **live_node.auth}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 28  # the whole API, not an empty document

    finished: dict[PhaseName, Status] = {}
    errors: list[str] = []
    failures: set[str] = set()
    cases = 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.PhaseFinished):
            finished[event.phase.name] = event.status
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(str(getattr(event, "value", None) or getattr(event, "exception", event)))
        elif isinstance(event, events.ScenarioFinished):
            cases += len(event.recorder.cases)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failures.add(_describe(check.failure_info.failure, check.failure_info.code_sample))
    assert not errors, errors
    assert not failures, f"{len(failures)} contract failures:\n" + "\n".join(sorted(failures))
    for phase in (PhaseName.COVERAGE, PhaseName.FUZZING, PhaseName.STATEFUL_TESTING):
        assert finished.get(phase) == Status.SUCCESS, (phase, finished)
    assert cases >= 20 * len(operations), cases  # every operation was really exercised


def test_openapi_requires_the_token(live_node: NodeServer) -> None:
    assert httpx.get(f"{live_node.base_url}/openapi.json").status_code == 401
    assert httpx.get(f"{live_node.base_url}/docs").status_code == 404  # no CDN-backed docs page

"""The partitioned benchmark's messages (kinds 7350-7354) and their formats.

Each is the content of a signed, numbered federation message (`colony.federation.outbox`), so the
sender is always the key that signed it; the formats carry no signer of their own.

- **7350 request** — a node asks the queen it follows to run the benchmark across the colony;
- **7351 assignment** — the coordinating node gives a node some problems of a run (by id: every
  node loads the same problem set, and recomputes everything else about a problem itself);
- **7352 report** — a node's verdicts on problems of a run it was given, usually one at a time;
- **7353 merged** — the coordinator's merged run, sent to the requester and every node that took
  part (who then drop what they have not started, and keep a copy of the run);
- **7354 state** — the coordinator's copy of the run for every participant: the request's terms, who
  was given which problem and which verdicts it took (all of them when it plans or adopts the run,
  what changed after that), under its term, proved by its own signed queen claim of that term.

The assignment and the merged run carry the coordinator's term as well: a participant that knows a
higher term for the run ignores them (`colony.federation.partition_copy`).
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from colony.federation.errors import FederationError
from colony.identity.events import Event

__all__ = [
    "ASSIGN_KIND",
    "MAX_GIVEN",
    "MAX_PROBLEMS",
    "MERGED_KIND",
    "PARTITION_KINDS",
    "REPORT_KIND",
    "REQUEST_KIND",
    "STATE_CHUNK",
    "STATE_KIND",
    "Assignment",
    "Given",
    "Merged",
    "MergedProblem",
    "Mode",
    "Outcome",
    "ProblemReport",
    "Report",
    "RunRequest",
    "RunState",
    "Suite",
    "Taken",
    "parse",
]

REQUEST_KIND = 7350
ASSIGN_KIND = 7351
REPORT_KIND = 7352
MERGED_KIND = 7353
STATE_KIND = 7354
PARTITION_KINDS = (REQUEST_KIND, ASSIGN_KIND, REPORT_KIND, MERGED_KIND, STATE_KIND)
#: HumanEval and Colony's own together are 224; a run never holds more than this many problems.
MAX_PROBLEMS = 1000
#: A problem moves at most once to each live node, so a run has at most a few assignments per problem.
MAX_GIVEN = 8 * MAX_PROBLEMS
#: Verdicts per state message: a whole run's details would pass the inbox's body limit in one.
STATE_CHUNK = 100
#: A coordinator's queen term (0: one that needed none — a node alone, or one from before terms).
Term = Annotated[int, Field(ge=0, le=2**53)]

_HEX64 = r"^[0-9a-f]{64}$"
RunId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
ProblemId = Annotated[str, Field(min_length=1, max_length=200)]
Suite = Literal["colony", "humaneval", "all"]
Mode = Literal["agent", "canonical"]
Outcome = Literal["pass", "fail", "tamper", "error"]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: RunId
    suite: Suite
    mode: Mode = "agent"
    limit: int | None = Field(default=None, ge=1, le=MAX_PROBLEMS)
    problem_timeout_s: float = Field(gt=0, le=86_400)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: RunId
    suite: Suite
    mode: Mode
    problems: list[ProblemId] = Field(min_length=1, max_length=MAX_PROBLEMS)
    term: Term = 0


class ProblemReport(BaseModel):
    """One verdict. The tier is not sent: the coordinator reads it from its own copy of the problem."""

    model_config = ConfigDict(extra="forbid")

    problem_id: ProblemId
    outcome: Outcome
    detail: str = Field(default="", max_length=1000)
    tokens: int = Field(default=0, ge=0, lt=2**53)
    wall_ms: float = Field(default=0.0, ge=0)
    solution_sha256: str | None = Field(default=None, pattern=_HEX64)


class Report(BaseModel):
    """Verdicts for the run's coordinator. ``again``: verdicts sent before, sent again to a coordinator
    that adopted the run (it may not know every problem the old one gave, so an unknown one is dropped
    there, not held against the sender)."""

    model_config = ConfigDict(extra="forbid")

    run: RunId
    results: list[ProblemReport] = Field(min_length=1, max_length=MAX_PROBLEMS)
    again: bool = False


class Given(BaseModel):
    """One assignment in a state message: ``problem_id`` given to ``node`` as its ``attempt``-th holder."""

    model_config = ConfigDict(extra="forbid")

    problem_id: ProblemId
    node: str = Field(pattern=_HEX64)
    attempt: int = Field(ge=1, le=MAX_GIVEN)


class Taken(ProblemReport):
    """One verdict the coordinator took, and from whom (the tier is read from the recipient's own copy)."""

    node: str = Field(pattern=_HEX64)


class RunState(BaseModel):
    """The coordinator's copy of a run for a participant (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    run: RunId
    requester: str = Field(pattern=_HEX64)
    suite: Suite
    mode: Mode
    limit: int | None = Field(default=None, ge=1, le=MAX_PROBLEMS)
    problem_timeout_s: float = Field(gt=0, le=86_400)
    problems: int = Field(ge=0, le=MAX_PROBLEMS)
    term: int = Field(ge=1, le=2**53)
    claim: Event
    given: list[Given] = Field(default_factory=list, max_length=MAX_GIVEN)
    taken: list[Taken] = Field(default_factory=list, max_length=STATE_CHUNK)


class MergedProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    problem_id: ProblemId
    node: str = Field(pattern=_HEX64)
    outcome: Outcome


class Merged(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: RunId
    suite: Suite
    mode: Mode
    requester: str = Field(pattern=_HEX64)
    problems: list[MergedProblem] = Field(max_length=MAX_PROBLEMS)
    reassigned: int = Field(default=0, ge=0)
    refused: int = Field(default=0, ge=0)
    wall_s: float = Field(default=0.0, ge=0)
    term: Term = 0
    claim: Event | None = None


M = TypeVar("M", bound=BaseModel)


def parse(event: Event, kind: int, model: type[M]) -> M:
    """The content of a message of ``kind``; `FederationError` (``invalid``) when it is not one."""
    if event.kind != kind:
        raise FederationError(f"Expected a message of kind {kind}, not {event.kind}.", reason="invalid")
    try:
        return model.model_validate_json(event.content)
    except ValidationError as exc:
        raise FederationError(f"Not a valid {model.__name__}: {exc.errors()[0]['msg']}.", reason="invalid") from exc

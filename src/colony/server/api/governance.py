"""Stake and governance over HTTP, under ``/api/v1/market``.

    GET  /api/v1/market/stakes                        every agent's stake (staked, locked, free)
    GET  /api/v1/market/stakes/{name}                 one agent's
    POST /api/v1/market/stakes/{name}/deposit         stake from the agent's wallet (a hold it signs)
    POST /api/v1/market/stakes/{name}/withdraw        back to its wallet (not what backs open bids)
    GET  /api/v1/market/proposals                     newest first, ``?status=`` to filter
    POST /api/v1/market/proposals                     propose an action, signed as ``by`` (201)
    GET  /api/v1/market/proposals/{id}                one, with its votes, tally, veto and execution
    POST /api/v1/market/proposals/{id}/votes          vote, signed as ``voter`` (201)
    POST /api/v1/market/proposals/{id}/veto           the node owner's veto
    POST /api/v1/market/executions                    execute every proposal whose timelock has ended

The operator's, like the rest of /api/v1 (bearer token, or the UI's cookie and CSRF header): the
node signs as the agent or owner the body names, with keys it holds. Amounts are integer
micro-credits. A request its schema allows but the node refuses is answered 403 (a value out of
a parameter's bounds, no stake to propose), 404 (no such agent or proposal) or 409 (not now: the
window closed, already voted, not enough funds or free stake) — never 422, which is kept for
bodies that do not match the schema.

The router's lifespan runs the node's governance sweep (`colony.market.gov_service.start_ticker`)
while the app serves, so due proposals execute without anyone calling ``…/executions``. Routes are
plain ``def``: signing unlocks keys (scrypt), in the thread pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from colony.identity import Keyring
from colony.identity.store import NAME_PATTERN
from colony.ledger.amounts import MAX_AMOUNT
from colony.market.events import MarketEventError
from colony.market.gov_service import (
    ExecutionView,
    ProposalView,
    execute_due,
    get_proposal,
    list_proposals,
    propose,
    start_ticker,
    veto,
    vote,
)
from colony.market.governance import Action, Choice, GovernanceError, Status, json_integer
from colony.market.stakes import StakeError, StakeView, deposit, stake_view, withdraw
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import NOT_BLANK, APIError, ErrorOut

__all__ = ["router"]


@asynccontextmanager
async def _sweeping(app: FastAPI) -> AsyncIterator[None]:
    """Execute due proposals in the background while the node serves."""
    stop = start_ticker(app.state.node)
    try:
        yield
    finally:
        await stop()


router = APIRouter(prefix="/api/v1/market", tags=["governance"], dependencies=[Depends(require_auth)],
                   lifespan=_sweeping)

AgentName = Annotated[str, Path(pattern=NAME_PATTERN, description="The agent's name, e.g. scout.")]
ProposalId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="The proposal's id (its event id).")]
Signer = Annotated[str, Field(pattern=NAME_PATTERN, description="'node' (the owner) or a hosted agent's name.")]


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


_STAKE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _err("No such agent."),
    409: _err("Not now: the wallet's available balance is too small (`insufficient_funds`), more is asked than is "
              "staked (`insufficient_stake`), the stake backs open bids (`locked`), or the key was used for "
              "another amount (`ref_reused`)."),
}
_PROPOSE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: _err("Refused: the proposer is neither the owner nor an agent with the stake proposing needs "
              "(`not_allowed`), or the action is out of bounds (`invalid`)."),
    404: _err("The proposer or an agent the action names does not exist on this node."),
}
_VOTE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: _err("Refused (`invalid`)."),
    404: _err("No such proposal or voter."),
    409: _err("Not now: voting has closed or the proposal was vetoed (`closed`), or this voter has voted "
              "(`duplicate`)."),
}
_VETO_ERRORS: dict[int | str, dict[str, Any]] = {
    403: _err("Refused: the reason is blank once trimmed (`invalid`)."),
    404: _err("No such proposal."),
    409: _err("Nothing left to stop: the proposal was executed, rejected or expired (`closed`)."),
}


class AmountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT, description="Micro-credits."),
                      BeforeValidator(json_integer)]
    key: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$",
                            description="Idempotency key: the same key moves the stake once.")


class ProposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Signer = "node"
    action: Action


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voter: Signer
    choice: Choice


class VetoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK)


class StakesOut(BaseModel):
    stakes: list[StakeView]


class ProposalsOut(BaseModel):
    proposals: list[ProposalView]


class ExecutionsOut(BaseModel):
    executions: list[ExecutionView]


def _keyring(request: Request) -> Keyring:
    return node(request).keyring


def _refuse(exc: GovernanceError | StakeError | MarketEventError) -> NoReturn:
    if isinstance(exc, MarketEventError):
        raise APIError(403, "invalid", str(exc)) from exc
    status = {"not_found": 404, "unknown": 404, "not_allowed": 403, "invalid": 403}.get(exc.reason, 409)
    raise APIError(status, exc.reason, str(exc)) from exc


# -- stake ----------------------------------------------------------------------------------------


@router.get("/stakes", response_model=StakesOut, summary="Every agent's stake")
def stakes(request: Request) -> StakesOut:
    keyring = _keyring(request)
    return StakesOut(stakes=[stake_view(keyring, i.name) for i in keyring.all() if i.role == "agent"])


@router.get("/stakes/{name}", response_model=StakeView, responses={404: _STAKE_ERRORS[404]},
            summary="One agent's stake")
def stake(request: Request, name: AgentName) -> StakeView:
    try:
        return stake_view(_keyring(request), name)
    except StakeError as exc:
        _refuse(exc)


@router.post("/stakes/{name}/deposit", response_model=StakeView, responses=_STAKE_ERRORS,
             summary="Stake micro-credits from the agent's wallet (a hold signed by its key)")
def stake_deposit(request: Request, name: AgentName, body: AmountIn) -> StakeView:
    try:
        return deposit(_keyring(request), name, body.amount, key=body.key, actor="api")
    except StakeError as exc:
        _refuse(exc)


@router.post("/stakes/{name}/withdraw", response_model=StakeView, responses=_STAKE_ERRORS,
             summary="Return stake that backs no open bid to the agent's wallet")
def stake_withdraw(request: Request, name: AgentName, body: AmountIn) -> StakeView:
    try:
        return withdraw(_keyring(request), name, body.amount, key=body.key, actor="api")
    except StakeError as exc:
        _refuse(exc)


# -- proposals ------------------------------------------------------------------------------------


@router.get("/proposals", response_model=ProposalsOut, summary="Proposals, newest first")
def proposals(request: Request,
              status: Annotated[Status | None, Query(description="Only those in this state now.")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> ProposalsOut:
    return ProposalsOut(proposals=list_proposals(_keyring(request), status_is=status, limit=limit))


@router.post("/proposals", response_model=ProposalView, status_code=201, responses=_PROPOSE_ERRORS,
             summary="Propose an action; voting opens at once")
def create(request: Request, body: ProposalIn) -> ProposalView:
    try:
        return propose(_keyring(request), body.action, by=body.by, actor="api")
    except (GovernanceError, MarketEventError) as exc:
        _refuse(exc)


@router.post("/executions", response_model=ExecutionsOut,
             summary="Execute every proposal whose timelock has ended (the node also does this by itself)")
def execute(request: Request) -> ExecutionsOut:
    return ExecutionsOut(executions=execute_due(_keyring(request), actor="api"))


@router.get("/proposals/{proposal_id}", response_model=ProposalView, responses={404: _VETO_ERRORS[404]},
            summary="One proposal: terms, votes, tally, status, veto and execution")
def proposal(request: Request, proposal_id: ProposalId) -> ProposalView:
    try:
        return get_proposal(_keyring(request), proposal_id)
    except GovernanceError as exc:
        _refuse(exc)


@router.post("/proposals/{proposal_id}/votes", response_model=ProposalView, status_code=201,
             responses=_VOTE_ERRORS, summary="Vote yes, no or abstain, weighted by the voter's snapshot stake")
def cast(request: Request, proposal_id: ProposalId, body: VoteIn) -> ProposalView:
    try:
        return vote(_keyring(request), proposal_id, body.voter, body.choice, actor="api")
    except (GovernanceError, MarketEventError) as exc:
        _refuse(exc)


@router.post("/proposals/{proposal_id}/veto", response_model=ProposalView, responses=_VETO_ERRORS,
             summary="The node owner's veto: the proposal never executes")
def stop(request: Request, proposal_id: ProposalId, body: VetoIn) -> ProposalView:
    try:
        return veto(_keyring(request), proposal_id, reason=body.reason, actor="api")
    except GovernanceError as exc:
        _refuse(exc)

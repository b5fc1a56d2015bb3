"""The marketplace over HTTP, under ``/api/v1/market``: auctions and reputation.

    GET  /api/v1/market/auctions                  auctions, newest first, with countdowns (``?state=``)
    POST /api/v1/market/auctions                  put a task up for auction (201): a posted task or a new goal
    GET  /api/v1/market/auctions/{id}             one auction: terms, bids (after the reveal deadline), verdict,
                                                  and its signed events (reveals too, after the deadline)
    GET  /api/v1/market/auctions/{id}/recheck     winner and price recomputed from the signed events alone
    POST /api/v1/market/auctions/{id}/award       award now, if the reveal deadline has passed (idempotent)
    POST /api/v1/market/auctions/{id}/verdict     a person's pass or fail, for ``approval`` auctions
    GET  /api/v1/market/reputation                every agent's reputation, stake, wins and earnings

The operator's, like the rest of /api/v1 (bearer token, or the UI's cookie and CSRF header): the
node signs as the poster the body names, with a key it holds. Amounts are integer micro-credits.
``{id}`` is the auction's id or a prefix of it (at least 6 hex characters). A request that
matches the schema but asks for something impossible is answered 403 ``invalid`` (a verification
method without what it needs, a task and a goal at once), 404 (no such auction, task or agent) or
409 (not now: the poster cannot cover the reserve, the task is not posted, the auction is not in
the state the step needs, an ambiguous id prefix) — never 422, kept for bodies outside the schema.

When ``COLONY_MARKET_ENABLED`` is set, the router's lifespan runs the market worker in-process
(`colony.market.worker.start_in_process`) while the app serves. Routes are plain ``def``: signing
unlocks keys (scrypt) and a verdict may run the sandbox, in the thread pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import BaseModel

from colony.market.events import MarketError
from colony.market.queries import auction_detail, auctions, reputation_table
from colony.market.service import AuctionError, Market
from colony.market.views import (
    AuctionDetail,
    AuctionRequest,
    AuctionState,
    AuctionView,
    RecheckView,
    ReputationRow,
    VerdictRequest,
)
from colony.market.worker import start_in_process
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, ErrorOut

__all__ = ["router"]


@asynccontextmanager
async def _worker(app: FastAPI) -> AsyncIterator[None]:
    """The market worker (bids, awards, winners' tasks, verification) while the node serves, if enabled."""
    stop: Callable[[], Awaitable[None]] | None = None
    if app.state.node.settings.market_enabled:
        stop = start_in_process(app.state.node)
    try:
        yield
    finally:
        if stop is not None:
            await stop()


router = APIRouter(prefix="/api/v1/market", tags=["market"], dependencies=[Depends(require_auth)],
                   lifespan=_worker)

AuctionId = Annotated[str, Path(pattern=r"^[0-9a-f]{6,64}$",
                                description="The auction's id (64 hex) or a prefix of at least 6 characters.")]


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


_NOT_FOUND = _err("No such auction (or the poster, validator or task the body names does not exist).")
_POST_ERRORS: dict[int | str, dict[str, Any]] = {
    403: _err("Refused (`invalid`): both or neither of task_id and goal, skills with a task_id, a verification "
              "method without what it needs (tests and entry_point, problem, validator) or with fields it does not "
              "use, an unknown benchmark problem, a validator that is the poster, a goal too long to announce."),
    404: _NOT_FOUND,
    409: _err("Not now: the poster cannot cover the reserve (`unfunded`), or the task is not posted (`conflict`)."),
}
_ID_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _NOT_FOUND, 409: _err("The id prefix names several auctions (`ambiguous`): give more of it.")}
_STEP_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _NOT_FOUND,
    409: _err("Not now: the reveal deadline has not passed (`not_ready`), the work is not done yet (`not_ready`), "
              "the auction is not verified by a person or not awaiting a verdict (`conflict`), or the id prefix is "
              "ambiguous (`ambiguous`)."),
}


class AuctionsOut(BaseModel):
    auctions: list[AuctionView]


class ReputationOut(BaseModel):
    reputation: list[ReputationRow]


def _market(request: Request) -> Market:
    return Market(node(request))


def _refuse(exc: MarketError) -> NoReturn:
    if isinstance(exc, AuctionError):
        status = {"not_found": 404, "invalid": 403}.get(exc.reason, 409)
        raise APIError(status, exc.reason, str(exc)) from exc
    raise APIError(403, "invalid", str(exc)) from exc


@router.get("/auctions", response_model=AuctionsOut, summary="Auctions, newest first, with countdowns")
def list_auctions(request: Request, state: Annotated[list[AuctionState] | None, Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AuctionsOut:
    return AuctionsOut(auctions=auctions(_market(request), states=state, limit=limit))


@router.post("/auctions", response_model=AuctionDetail, status_code=201, responses=_POST_ERRORS,
             summary="Put a task up for auction: the poster signs the announcement; agents bid")
def post_auction(request: Request, body: AuctionRequest) -> AuctionDetail:
    market = _market(request)
    try:
        return auction_detail(market, market.post(body))
    except MarketError as exc:
        _refuse(exc)


@router.get("/auctions/{auction_id}", response_model=AuctionDetail, responses=_ID_ERRORS,
            summary="One auction: terms, bids after the reveal deadline, verdict, signed events")
def get_auction(request: Request, auction_id: AuctionId) -> AuctionDetail:
    market = _market(request)
    try:
        return auction_detail(market, market.resolve(auction_id))
    except MarketError as exc:
        _refuse(exc)


@router.get("/auctions/{auction_id}/recheck", response_model=RecheckView, responses=_ID_ERRORS,
            summary="Recompute the winner and price from the signed events alone")
def recheck_auction(request: Request, auction_id: AuctionId) -> RecheckView:
    market = _market(request)
    try:
        return market.recheck(market.resolve(auction_id))
    except MarketError as exc:
        _refuse(exc)


@router.post("/auctions/{auction_id}/award", response_model=AuctionDetail, responses=_STEP_ERRORS,
             summary="Award the auction now (after its reveal deadline; the worker does it by itself)")
def award_auction(request: Request, auction_id: AuctionId) -> AuctionDetail:
    market = _market(request)
    try:
        found = market.resolve(auction_id)
        market.award(found)
        return auction_detail(market, found)
    except MarketError as exc:
        _refuse(exc)


@router.post("/auctions/{auction_id}/verdict", response_model=AuctionDetail, responses=_STEP_ERRORS,
             summary="A person's verdict on an approval auction's result: pay, or refund and slash")
def verdict(request: Request, auction_id: AuctionId, body: VerdictRequest) -> AuctionDetail:
    market = _market(request)
    try:
        found = market.resolve(auction_id)
        market.decide(found, body.passed, actor="api", reason=body.reason)
        return auction_detail(market, found)
    except MarketError as exc:
        _refuse(exc)


@router.get("/reputation", response_model=ReputationOut, summary="Reputation, stake, wins and earnings per agent")
def reputation(request: Request) -> ReputationOut:
    return ReputationOut(reputation=reputation_table(_market(request)))

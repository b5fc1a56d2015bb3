"""The wallet and the ledger over HTTP (bearer token): balances, history, transfers, holds, the
state root, verification and signed exports.

A transfer is accepted in two forms:

- ``{"authorisation": <NIP-01 event>}`` — signed by the payer, wherever its key lives (another
  process, another machine, a browser extension): the node verifies it completely and applies it;
- ``{"from": "<one of this node's agents>", "to": …, "amount": …}`` — the node signs with that
  agent's key from the identity store. Only the node's own agents can be paid from this way.

Status codes follow what a client should do next: 201 applied; 200 a retried nonce (the first
result, ``replayed: true``); 403 the authorisation does not authorise the payment (signature,
signer, window, self-payment — fix the request); 409 the ledger's state refuses it (insufficient
funds, a nonce already used for another payment, a hold already closed — the nonce is spent);
404 an unknown agent or hold; 422 a body that does not match the schema. Errors are
``{"code", "message"}`` with the ledger's stable codes (``insufficient_funds``…).

Routes are plain ``def``: signing, verifying and SQLite run in the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from colony.errors import IdentityError
from colony.identity import Event, Keyring, npub
from colony.ledger import (
    MAX_AMOUNT,
    HoldNotFoundError,
    IllegalHoldTransitionError,
    InvalidAuthorisationError,
    Ledger,
    LedgerError,
    LedgerStore,
    TransferRefusedError,
    TransferResult,
    account_id,
    export_lines,
    open_ledger_store,
    parse_amount,
)
from colony.ledger.feed import read_all
from colony.ledger.verify import verify_feed
from colony.ledger.wire import DELTA, MAX_MEMO
from colony.observability.metrics import observe_ledger_verify
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, ErrorOut, errors

__all__ = ["AgentHoldIn", "AgentTransferIn", "HoldIn", "SignedIn", "TransferIn", "router"]

router = APIRouter(tags=["wallet"], dependencies=[Depends(require_auth)])
HEX64 = r"^[0-9a-f]{64}$"
Who = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$",
                          description="An agent's name, an npub or a 64-hex public key.")]
HoldId = Annotated[str, Path(pattern=HEX64, description="The hold's id (its authorisation's event id).")]
_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The signed authorisation does not authorise this payment (signature, "
                                            "signer, window, self-payment), or a cookie request lacks its CSRF header."},
    409: {"model": ErrorOut, "description": "The ledger refuses it as things stand: insufficient funds, a nonce "
                                            "already used for another payment, a hold already closed."},
}


class SignedIn(BaseModel):
    """A payment authorised by its payer: the signed event, nothing else (it carries every field)."""

    model_config = ConfigDict(extra="forbid")

    authorisation: Event = Field(description="A kind-7100 event signed by the payer.")


_AMOUNT = r"^(\d{1,16}(\.\d{1,6})?|\d{1,16}u)$"


class AgentHoldIn(BaseModel):
    """A payment by one of this node's agents, which the node signs with that agent's key."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    payer: str = Field(alias="from", min_length=1, max_length=100,
                       description="One of this node's agents (name, npub or hex).")
    to: str | None = Field(default=None, min_length=1, max_length=100,
                           description="Payee: name, npub or hex (a hold may leave it to the capture).")
    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT)] | Annotated[str, Field(pattern=_AMOUNT)] = Field(
        description="Micro-credits (an integer), or credits as text: '1.5', or micro-credits as '1500000u'.")
    memo: str = Field(default="", max_length=MAX_MEMO)
    nonce: str | None = Field(default=None, pattern=HEX64, description="Reuse to retry the same payment safely.")


class AgentTransferIn(AgentHoldIn):
    to: str = Field(min_length=1, max_length=100, description="Payee: name, npub or hex.")


TransferIn = SignedIn | AgentTransferIn
HoldIn = SignedIn | AgentHoldIn


class CaptureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(default=None, min_length=1, max_length=100,
                           description="The payee (default: the one the hold names).")


def _keyring(request: Request) -> Keyring:
    return node(request).keyring


def _store(request: Request) -> LedgerStore:
    n = node(request)
    return open_ledger_store(n.db, n.settings)


def _ledger(request: Request) -> Ledger:
    """One `Ledger` per app (its signer holds the node's keypair, computed once)."""
    ledger: Ledger | None = getattr(request.app.state, "ledger", None)
    if ledger is None:
        ledger = Ledger(_store(request), _keyring(request).node().schnorr_key)
        request.app.state.ledger = ledger
    return ledger


def _names(request: Request) -> dict[str, str]:
    return {i.public_hex: i.name for i in _keyring(request).all()}


def _account(request: Request, who: str) -> str:
    for pub, name in _names(request).items():
        if name == who:
            return pub
    try:
        return account_id(who)
    except InvalidAuthorisationError as exc:
        raise APIError(404, "unknown_account", f"{who!r} is not an agent of this node, an npub or a public key.") from exc


def _refusal(exc: LedgerError) -> APIError:
    if isinstance(exc, TransferRefusedError):
        return APIError(409, exc.code, str(exc), result=exc.result.model_dump())
    if isinstance(exc, InvalidAuthorisationError):
        return APIError(409 if exc.code == "nonce_already_used" else 403, exc.code, str(exc))
    if isinstance(exc, HoldNotFoundError):
        return APIError(404, exc.code, str(exc))
    if isinstance(exc, IllegalHoldTransitionError):
        return APIError(409, exc.code, str(exc))
    return APIError(409, exc.code, str(exc))


def _apply(request: Request, body: SignedIn | AgentHoldIn, response: Response,
           op: Literal["transfer", "hold"]) -> dict[str, Any]:
    ledger = _ledger(request)
    try:
        if isinstance(body, SignedIn):
            result = ledger.hold(body.authorisation) if op == "hold" else ledger.transfer(body.authorisation)
        else:
            try:
                micro = parse_amount(body.amount)
            except ValueError as exc:
                raise APIError(403, "invalid_amount", str(exc)) from exc
            payer = _account(request, body.payer)
            name = _names(request).get(payer)
            if name is None or name == _keyring(request).node().name:
                raise APIError(403, "not_a_local_agent", "The node signs only for its own agents; send an "
                               "'authorisation' signed by the payer instead.")
            payee = _account(request, body.to) if body.to is not None else None
            result = ledger.pay(_keyring(request).schnorr_key(name), payee, micro, memo=body.memo,
                                nonce=body.nonce, op=op)
    except LedgerError as exc:
        raise _refusal(exc) from exc
    except IdentityError as exc:
        raise APIError(404, "unknown_account", str(exc)) from exc
    response.status_code = 200 if result.replayed else 201
    return _result(result)


def _result(result: TransferResult) -> dict[str, Any]:
    return {"transfer": result.model_dump()}


def _view(request: Request, account: str) -> dict[str, Any]:
    view = _ledger_view(request, account)
    return {"agent": _names(request).get(account), "npub": npub(account), **view}


def _ledger_view(request: Request, account: str) -> dict[str, Any]:
    found = _store(request).account(account)
    return {"account": account, "balance": found.balance if found else 0, "held": found.held if found else 0,
            "seq": found.seq if found else 0}


@router.get("/api/v1/wallet/balances", summary="Every agent of this node: available and held micro-credits")
def balances(request: Request) -> dict[str, Any]:
    agents = [i for i in _keyring(request).all() if i.role == "agent"]
    return {"agents": [_view(request, i.public_hex) for i in agents]}


@router.get("/api/v1/wallet/accounts/{who}", responses=errors(404), summary="One account's balance")
def account(request: Request, who: Who) -> dict[str, Any]:
    return _view(request, _account(request, who))


@router.get("/api/v1/wallet/accounts/{who}/history", responses=errors(404),
            summary="An account's entries, newest first, with the memo of each payment")
def history(request: Request, who: Who,
            limit: Annotated[int, Query(ge=1, le=1000, description="How many entries.")] = 50,
            before_seq: Annotated[int | None, Query(ge=1, le=2**53, description="Older than this seq.")] = None,
            ) -> dict[str, Any]:
    acc = _account(request, who)
    store = _store(request)
    entries = store.entries(acc, limit=limit, before_seq=before_seq)
    memos, names = store.memos(entries), _names(request)
    return {"account": acc, "entries": [
        {**e.as_dict(), "change": DELTA[e.body.kind] * e.body.amount, "memo": memos.get(e.id, ""),
         "counterparty_name": names.get(e.body.counterparty or "")} for e in entries]}


@router.post("/api/v1/wallet/transfers", status_code=201, responses={**_REFUSED, **errors(404)},
             summary="Pay: a payer-signed authorisation, or one of this node's agents (signed here)")
def transfer(request: Request, body: TransferIn, response: Response) -> dict[str, Any]:
    return _apply(request, body, response, "transfer")


@router.post("/api/v1/wallet/holds", status_code=201, responses={**_REFUSED, **errors(404)},
             summary="Put credits in escrow: a hold, later captured to a payee or released")
def hold(request: Request, body: HoldIn, response: Response) -> dict[str, Any]:
    return _apply(request, body, response, "hold")


@router.get("/api/v1/wallet/holds/{hold_id}", responses=errors(404), summary="A hold and its state")
def show_hold(request: Request, hold_id: HoldId) -> dict[str, Any]:
    try:
        return {"hold": _store(request).hold(hold_id).model_dump()}
    except HoldNotFoundError as exc:
        raise _refusal(exc) from exc


@router.post("/api/v1/wallet/holds/{hold_id}/capture", responses={**_REFUSED, **errors(404)},
             summary="Send a held amount to its payee (held → captured)")
def capture(request: Request, hold_id: HoldId, body: CaptureIn | None = None) -> dict[str, Any]:
    payee = _account(request, body.to) if body is not None and body.to is not None else None
    try:
        return {"hold": _ledger(request).capture(hold_id, payee).model_dump()}
    except LedgerError as exc:
        raise _refusal(exc) from exc


@router.post("/api/v1/wallet/holds/{hold_id}/release", responses={**_REFUSED, **errors(404)},
             summary="Give a held amount back to its payer (held → released)")
def release(request: Request, hold_id: HoldId) -> dict[str, Any]:
    try:
        return {"hold": _ledger(request).release(hold_id).model_dump()}
    except LedgerError as exc:
        raise _refusal(exc) from exc


@router.get("/api/v1/ledger/root", summary="The state root over every account's head, and the supply")
def root(request: Request) -> dict[str, Any]:
    store = _store(request)
    return {"root": store.root(), "accounts": len(store.accounts()), "entries": store.entry_count(),
            "supply": store.supply()}


@router.get("/api/v1/ledger/tree", summary="Child hashes of one prefix of the state tree (replica comparison)")
def tree(request: Request, prefix: Annotated[str, Query(pattern=r"^[0-9a-f]{0,4}$",
                                                        description="0-4 hex digits; empty for the root.")] = ""
         ) -> dict[str, Any]:
    return {"prefix": prefix, "children": _store(request).tree_children(prefix)}


@router.get("/api/v1/ledger/verify", summary="Recompute every chain, signature, balance and the supply")
def verify(request: Request) -> dict[str, Any]:
    store = _store(request)
    report = verify_feed(*read_all(store))
    observe_ledger_verify(report.ok)
    return report.model_dump(mode="json")


@router.get("/api/v1/ledger/export", responses={**errors(404), 200: {"content": {"application/x-ndjson": {}},
                                                                    "description": "JSON lines of signed events."}},
            response_class=Response, summary="Signed events (JSON lines): one account's chain, or all")
def export(request: Request, account_: Annotated[str | None, Query(
        alias="account", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$",
        description="Only this account's chain (name, npub or hex).")] = None) -> Response:
    chosen = _account(request, account_) if account_ is not None else None
    body = "".join(line + "\n" for line in export_lines(_store(request), chosen))
    return Response(body, media_type="application/x-ndjson")

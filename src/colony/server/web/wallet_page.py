"""The web UI's Wallet page: every agent's balance, one agent's history, its balance over time.

Same conventions as the other pages (`colony.server.web.pages`): server-rendered, login cookie
required, strict CSP. The chart is inline SVG drawn here from the journal (a step line of the
balance after each entry) — no script and no style attribute, so the page's policy stays
``script-src 'self'; style-src 'self'``. Everything shown comes from the ledger's read functions;
the page holds no logic of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from colony.identity import npub
from colony.ledger import Entry, account_id, format_amount, open_ledger_store
from colony.ledger.errors import InvalidAuthorisationError
from colony.ledger.wire import DELTA
from colony.payments.journal import PaymentRecord, open_journal
from colony.payments.paying import describe_amount
from colony.server.api._deps import node as node_of
from colony.server.auth import page_auth
from colony.server.web.pages import _not_found, _render, _to_login, templates
from colony.server.web.tasks_pages import unixtime

templates.env.filters.setdefault("unixtime", unixtime)
templates.env.filters["credits"] = format_amount

__all__ = ["CHART_ENTRIES", "Chart", "balance_chart", "payment_row", "wallet_router"]

wallet_router = APIRouter(include_in_schema=False)

#: Entries drawn in the chart and listed in the history table.
CHART_ENTRIES = 200
HISTORY_ROWS = 50
#: Newest x402 payments listed (received and made, refusals and failures included).
PAYMENT_ROWS = 50
_W, _H, _PAD = 640.0, 180.0, 8.0


@dataclass
class Chart:
    """An SVG step line: ``points`` for a polyline in a ``0 0 640 180`` view box, and its labels."""

    points: str
    low: int
    high: int
    first: str
    last: str
    count: int


def balance_chart(entries: list[Entry]) -> Chart | None:
    """The balance after each entry (oldest first) as a step line; None with fewer than two entries."""
    if len(entries) < 2:
        return None
    balances = [e.body.balance for e in entries]
    low, high = min(balances), max(balances)
    span = (high - low) or 1
    step = (_W - 2 * _PAD) / (len(entries) - 1)

    def y(value: int) -> float:
        return _H - _PAD - (value - low) / span * (_H - 2 * _PAD)

    points: list[str] = []
    for i, value in enumerate(balances):
        x = _PAD + i * step
        if points:  # hold the previous balance until this entry: a step, not a slope
            points.append(f"{x:.1f},{y(balances[i - 1]):.1f}")
        points.append(f"{x:.1f},{y(value):.1f}")
    stamp = "%Y-%m-%d %H:%M"
    return Chart(points=" ".join(points), low=low, high=high, count=len(entries),
                 first=datetime.fromtimestamp(entries[0].created_at, UTC).strftime(stamp),
                 last=datetime.fromtimestamp(entries[-1].created_at, UTC).strftime(stamp))


@wallet_router.get("/wallet")
def wallet(request: Request,
           agent: Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_-]+$")] = None) -> Response:
    if not page_auth(request):
        return _to_login(request)
    n = node_of(request)
    store = open_ledger_store(n.db, n.settings)
    identities = n.keyring.all()
    names = {i.public_hex: i.name for i in identities}
    agents = [i for i in identities if i.role == "agent"]
    rows = []
    for ident in agents:
        view = store.account(ident.public_hex)
        rows.append({"name": ident.name, "npub": ident.npub, "balance": view.balance if view else 0,
                     "held": view.held if view else 0, "seq": view.seq if view else 0})
    chosen = agent or (agents[0].name if agents else None)
    selected: dict[str, Any] | None = None
    if chosen is not None:
        account = next((pub for pub, name in names.items() if name == chosen), None)
        if account is None:
            try:
                account = account_id(chosen)
            except InvalidAuthorisationError:
                return _not_found(request, f"No agent or account {chosen!r}.")
        recent = store.entries(account, limit=CHART_ENTRIES)
        memos = store.memos(recent[:HISTORY_ROWS])
        history = [{"seq": e.body.seq, "at": e.created_at, "kind": e.body.kind,
                    "change": DELTA[e.body.kind] * e.body.amount, "balance": e.body.balance,
                    "with": names.get(e.body.counterparty or "") or (npub(e.body.counterparty)[:18] + "…"
                                                                    if e.body.counterparty else ""),
                    "memo": memos.get(e.id, ""), "id": e.id} for e in recent[:HISTORY_ROWS]]
        view = store.account(account)
        selected = {"name": names.get(account, chosen), "npub": npub(account), "history": history,
                    "balance": view.balance if view else 0, "held": view.held if view else 0,
                    "chart": balance_chart(list(reversed(recent)))}
    labels = {**names, **{i.evm_address.lower(): i.name for i in identities}}
    return _render(request, "wallet.html", {
        "active": "wallet", "title": "Wallet", "rows": rows, "selected": selected,
        "root": store.root(), "supply": store.supply(), "entries": store.entry_count(),
        "payments": [payment_row(p, labels) for p in open_journal(n.db, n.settings).payments(limit=PAYMENT_ROWS)],
    })


def payment_row(rec: PaymentRecord, labels: dict[str, str]) -> dict[str, Any]:
    """One journal row as the Payments table shows it: the other party by name when it is ours."""
    other = rec.pay_to if rec.direction == "out" else (rec.payer or "")
    return {"id": rec.id, "at": rec.at, "direction": rec.direction, "agent": rec.agent or "", "scheme": rec.scheme,
            "amount": describe_amount(rec.network, rec.asset, rec.amount) if rec.scheme else "",
            "counterparty": labels.get(other.lower()) or (other[:18] + "…" if len(other) > 18 else other),
            "counterparty_full": other, "resource": rec.resource, "status": rec.status, "reason": rec.reason or "",
            "tx": rec.tx or ""}

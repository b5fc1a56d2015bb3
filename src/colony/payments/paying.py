"""The paying side: an agent requests a URL and, when the server answers 402, pays under its spend policy.

Everything x402 is the official SDK's, so any standard v2 server can be paid, not only a Colony
node: the SDK's `x402AsyncTransport` sends the request, decodes ``PAYMENT-REQUIRED``, has the
`x402Client` select a requirement and sign it, and retries with ``PAYMENT-SIGNATURE``. The
client pays with the agent's own keys — the ``credits`` scheme with its Schnorr key, and the
SDK's EVM ``exact`` scheme with its EVM account for the EVM networks its policy names (and the
node's rail) — and this module governs it through the SDK's own seams:

- spend controls: only the policy's assets, each capped at its per-payment maximum;
- a requirement policy (`x402Client.register_policy`): offers `colony.payments.policy.check`
  refuses are dropped before the SDK selects one, so a payable option among several is found;
  allowed offers come before those that need a person;
- the before-payment-creation hook: the selected requirement is checked once more and, above its
  approval threshold, a person is asked (``approve``). A refusal or anything but "approved"
  aborts *before* the scheme signs, so a refused payment is never signed.

Every outcome that involves a payment requirement is appended to the payments journal
(``direction "out"``): settled (``tx`` = the ``PAYMENT-RESPONSE`` transaction), refused (by the
policy), denied (by a person, a timeout, or nobody to ask) and failed (the server or its
facilitator did not settle: a 402 after paying, an error status, a broken connection). The
per-day maximum counts the journal's settled payments of the last 24 hours, so one lock per agent
(in process) serialises check-then-pay: two concurrent payments cannot both fit one budget.

The URL must pass `http_get`'s host rule (``Settings.http_allowed_hosts``, no user info, http(s)
only); redirects are never followed and proxies from the environment are ignored, so the host
the policy approved is the host that is paid.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field
from x402 import x402Client
from x402.client import SpendControlAsset
from x402.http import x402HTTPClient
from x402.http.clients.httpx import x402AsyncTransport
from x402.http.constants import PAYMENT_RESPONSE_HEADER, X_PAYMENT_RESPONSE_HEADER
from x402.schemas import (
    AbortResult,
    NoMatchingRequirementsError,
    PaymentAbortedError,
    PaymentCreatedContext,
    PaymentCreationContext,
    PaymentPayload,
    PaymentRequired,
    PaymentRequiredContext,
    PaymentRequirements,
    SettleResponse,
)

from colony.config import Settings
from colony.errors import ColonyError, IdentityError, ToolError
from colony.identity import Identity, Keyring
from colony.ledger.amounts import format_amount
from colony.payments import journal
from colony.payments.credits import CREDITS_NETWORK, CREDITS_SCHEME, CreditsClientScheme
from colony.payments.policy import DAY_S, SpendPolicy, Verdict, check, resolve
from colony.store import Database
from colony.tools.builtin.http import check_url

__all__ = ["Approve", "Outcome", "PayError", "PayResult", "describe_amount", "pay_request", "policy_for"]

Outcome = Literal["paid", "not_required", "refused", "denied", "failed"]
#: Asks a person whether a payment above its approval threshold may go ahead: (reason, the payment's
#: facts) → "approved", or what happened instead ("denied", "expired"). Anything else denies.
Approve = Callable[[str, dict[str, Any]], Awaitable[str]]
METHODS = ("GET", "POST")
DEFAULT_MAX_BODY = 100_000
USER_AGENT = "colony/0.1 (pay)"


class PayError(ColonyError):
    """A pay request that could not be made at all; nothing was paid and nothing was signed.

    ``reason``: ``invalid_request`` (method, URL), ``host_not_allowed`` (not in
    ``http_allowed_hosts``, or user info in the URL), ``unknown_agent``, ``unreachable`` (the server
    did not answer the first request).
    """

    code = "pay_error"

    def __init__(self, message: str, *,
                 reason: Literal["invalid_request", "host_not_allowed", "unknown_agent", "unreachable"]) -> None:
        self.reason = reason
        super().__init__(message)


class PayResult(BaseModel):
    """What a pay request came to: the outcome, the server's answer, and the journal row (if any)."""

    outcome: Outcome
    agent: str
    method: str
    url: str
    #: The server's final HTTP status (402 when no payment was sent after its 402); None if none came.
    status: int | None = None
    content_type: str | None = None
    #: The body as text, cut at the caller's limit (binary bodies are described, not shown).
    body: str = ""
    truncated: bool = False
    reason: str | None = None
    payment: journal.PaymentRecord | None = None
    #: The amount in words (``0.25 credits``, ``10000 atomic units of 0x…``), for people and models.
    amount_text: str | None = Field(default=None)

    @property
    def paid(self) -> bool:
        return self.outcome == "paid"


def describe_amount(network: str, asset: str, amount: str) -> str:
    """``0.25 credits`` for credits, ``10000 atomic units of <asset> on <network>`` otherwise."""
    if network == CREDITS_NETWORK and amount.isdigit():
        return f"{format_amount(int(amount))} credits"
    return f"{amount} atomic units of {asset} on {network}"


def policy_for(settings: Settings, agent: str) -> SpendPolicy:
    """The agent's spend policy as configured (unresolved): its own, or the default."""
    return settings.spend_policies.get(agent) or settings.default_spend_policy


# -- one request ------------------------------------------------------------------------------------


@dataclass
class _Attempt:
    """What the SDK's hooks saw of one request's payment, for the journal and the result."""

    required: PaymentRequired | None = None
    selected: PaymentRequirements | None = None
    verdict: Verdict | None = None
    #: The person's answer, when one was asked.
    decision: str | None = None
    signed: PaymentPayload | None = None


_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Lock]] = (
    weakref.WeakKeyDictionary())


def _agent_lock(db: Database, agent: str) -> asyncio.Lock:
    """One lock per (database, agent) on this event loop: check-then-pay is serialised per agent."""
    locks = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault((db.path, agent), asyncio.Lock())


def _check_request(settings: Settings, method: str, url: str) -> httpx.URL:
    if method not in METHODS:
        raise PayError(f"Only {' and '.join(METHODS)} requests can be paid for, not {method!r}.",
                       reason="invalid_request")
    try:
        return check_url(url, settings.http_allowed_hosts)
    except ToolError as exc:
        reason: Literal["invalid_request", "host_not_allowed"] = (
            "host_not_allowed" if exc.code == "denied" else "invalid_request")
        raise PayError(str(exc), reason=reason) from exc


def _identities(keyring: Keyring, agent: str) -> tuple[Identity, str]:
    """The paying agent's identity and this node's ledger key (a thread: keys may need unlocking)."""
    try:
        ident = keyring.agent(agent)
    except IdentityError as exc:
        raise PayError(f"{str(exc).rstrip('.')}. Only this node's agents can pay.", reason="unknown_agent") from exc
    return ident, keyring.node().public_hex


async def pay_request(*, db: Database, keyring: Keyring, settings: Settings, agent: str, url: str,
                      method: str = "GET", body: str | None = None, max_amount: int | None = None,
                      approve: Approve, max_body: int = DEFAULT_MAX_BODY) -> PayResult:
    """Request ``url`` as ``agent``; pay a 402 within the agent's spend policy; journal the outcome.

    ``max_amount`` caps this request's payment (atomic units of whichever asset is chosen);
    ``approve`` is asked when the policy wants a person. Raises `PayError` when the request could
    not be made at all (nothing signed, nothing journaled); every other outcome is a `PayResult`.
    """
    method = method.upper()
    target = _check_request(settings, method, url)
    if max_amount is not None and (isinstance(max_amount, bool) or not isinstance(max_amount, int)
                                   or max_amount <= 0):
        raise PayError(f"max_amount must be a positive integer of atomic units, not {max_amount!r}.",
                       reason="invalid_request")
    ident, node_ledger = await asyncio.to_thread(_identities, keyring, agent)
    policy = resolve(policy_for(settings, agent), node_ledger)
    async with _agent_lock(db, agent):
        return await _Payer(db, settings, ident, policy, target, method, body, max_amount, approve, max_body).run()


class _Payer:
    """One pay request: the SDK client with Colony's policy in its seams, then the journal."""

    def __init__(self, db: Database, settings: Settings, ident: Identity, policy: SpendPolicy, url: httpx.URL,
                 method: str, body: str | None, cap: int | None, approve: Approve, max_body: int) -> None:
        self.settings, self.ident, self.policy = settings, ident, policy
        self.journal = journal.open_journal(db, settings)
        self.url, self.method, self.body, self.cap, self.approve, self.max_body = (
            url, method, body, cap, approve, max_body)
        self.attempt = _Attempt()
        #: network → the schemes this client registered for it (to explain what it cannot pay).
        self.schemes: dict[str, set[str]] = {}

    # -- the SDK client ----------------------------------------------------------------------------
    async def _client(self) -> x402Client:
        client = x402Client()
        client.register(CREDITS_NETWORK, CreditsClientScheme(await asyncio.to_thread(lambda: self.ident.schnorr_key)))
        self.schemes[CREDITS_NETWORK] = {CREDITS_SCHEME}
        evm = {a.network for a in self.policy.assets if a.network.startswith("eip155:")}
        if self.settings.x402_evm_chain_id is not None and self.settings.x402_evm_token is not None:
            evm.add(f"eip155:{self.settings.x402_evm_chain_id}")
        if evm:
            from colony.payments.evm.chain import client_scheme

            account = await asyncio.to_thread(lambda: self.ident.evm_account)
            scheme = client_scheme(bytes(account.key))
            for network in sorted(evm):
                client.register(network, scheme)
                self.schemes.setdefault(network, set()).add(scheme.scheme)
        allowed: list[SpendControlAsset] = [
            {"network": a.network, "asset": a.asset, "max_amount_per_payment": str(a.max_per_payment)}
            for a in self.policy.assets]
        client.set_spend_controls({"allowed_assets": allowed})
        client.register_policy(self._filter)
        client.on_before_payment_creation(self._before)
        client.on_after_payment_creation(self._after)
        return client

    def _verdict(self, requirement: PaymentRequirements) -> Verdict:
        since = time.time() - DAY_S
        spent = self.journal.spent_since((self.ident.public_hex, self.ident.evm_address), str(requirement.network),
                                         requirement.asset, since)
        return check(self.policy, requirement, spent, host=self.url.host, port=self.url.port or _default_port(self.url),
                     cap=self.cap)

    def _filter(self, version: int, offers: list[Any]) -> list[Any]:
        """The SDK's requirement policy: drop what the spend policy refuses; allowed before asked."""
        allowed: list[Any] = []
        asked: list[Any] = []
        for offer in offers:
            if not isinstance(offer, PaymentRequirements):
                continue  # x402 v1: this client registers v2 schemes only
            decision = self._verdict(offer).decision
            if decision != "refuse":
                (allowed if decision == "allow" else asked).append(offer)
        return allowed + asked

    async def _required(self, ctx: PaymentRequiredContext) -> None:
        if isinstance(ctx.payment_required, PaymentRequired):
            self.attempt.required = ctx.payment_required

    async def _before(self, ctx: PaymentCreationContext) -> AbortResult | None:
        """The last gate before signing: re-check the selected requirement, ask a person when due."""
        offer = ctx.selected_requirements
        if not isinstance(offer, PaymentRequirements):
            return AbortResult(reason="x402 v1 requirements are not paid by this client")
        self.attempt.selected = offer
        verdict = self.attempt.verdict = self._verdict(offer)
        if verdict.decision == "refuse":
            return AbortResult(reason=verdict.reason)
        if verdict.decision == "ask":
            amount = describe_amount(str(offer.network), offer.asset, offer.amount)
            reason = (f"Agent {self.ident.name} wants to pay {amount} to {offer.pay_to} for {self.method} "
                      f"{self.url}: {verdict.reason}.")
            facts = {"agent": self.ident.name, "url": str(self.url), "method": self.method, "scheme": offer.scheme,
                     "network": str(offer.network), "asset": offer.asset, "amount": offer.amount,
                     "amount_text": amount, "pay_to": offer.pay_to,
                     "threshold": verdict.limit.ask_above if verdict.limit else None}
            try:
                decision = await self.approve(reason, facts)
            except Exception:  # a broken approver never approves
                decision = "denied"
            self.attempt.decision = decision if decision in ("approved", "denied", "expired") else "denied"
            if self.attempt.decision != "approved":
                return AbortResult(reason=f"not approved ({self.attempt.decision})")
        return None

    async def _after(self, ctx: PaymentCreatedContext) -> None:
        if isinstance(ctx.payment_payload, PaymentPayload):
            self.attempt.signed = ctx.payment_payload

    # -- the request -------------------------------------------------------------------------------
    async def run(self) -> PayResult:
        client = await self._client()
        http = x402HTTPClient(client)
        http.on_payment_required(self._required)
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
        content: bytes | None = None
        if self.body is not None:
            content = self.body.encode("utf-8")
            headers["Content-Type"] = "application/json" if _is_json(self.body) else "text/plain; charset=utf-8"
        timeout = httpx.Timeout(self.settings.tool_timeout_s)
        transport = x402AsyncTransport(http, transport=httpx.AsyncHTTPTransport())
        try:
            async with (httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                                          timeout=timeout, headers=headers) as session,
                        session.stream(self.method, self.url, content=content) as response):
                lost: str | None = None
                try:
                    data, cut = await _read(response, self.max_body)
                except httpx.HTTPError as exc:  # the answer (and any settlement) is in; its body broke off
                    data, cut, lost = b"", False, f"the body could not be read: {_detail(exc)}"
                return await self._answered(http, response, data, cut, lost)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self._cancelled))
            raise
        except Exception as exc:  # the SDK wraps everything in its PaymentError; look underneath
            return await asyncio.to_thread(self._raised, exc)

    def _cancelled(self) -> None:
        a = self.attempt
        if a.signed is not None:
            self._journal(a.signed.accepted, "failed", "cancelled after the payment was signed and sent; the server "
                                                       "may still settle it")
        elif a.selected is not None and a.verdict is not None and a.verdict.decision == "ask":
            self._journal(a.selected, "denied", "cancelled while waiting for approval")

    def _raised(self, exc: Exception) -> PayResult:
        a = self.attempt
        cause = _find(exc, (PaymentAbortedError, NoMatchingRequirementsError))
        if isinstance(cause, PaymentAbortedError) and a.selected is not None:
            if a.decision is not None and a.decision != "approved":
                assert a.verdict is not None
                reason = f"not approved ({a.decision}): {a.verdict.reason}"
                return self._result("denied", 402, self._journal(a.selected, "denied", reason), reason)
            reason = a.verdict.reason if a.verdict is not None else cause.reason
            return self._result("refused", 402, self._journal(a.selected, "refused", reason), reason)
        if isinstance(cause, NoMatchingRequirementsError):
            if a.required is None:  # the 402 was x402 v1 (requirements in the body)
                reason = "the server speaks x402 v1 (X-PAYMENT); this client pays x402 v2 servers only"
                return self._result("refused", 402, self._journal(None, "refused", reason), reason)
            offer, reason = self._explain(str(cause))
            return self._result("refused", 402, self._journal(offer, "refused", reason), reason)
        detail = _detail(exc)
        if a.signed is not None:
            reason = f"the paid request failed: {detail}"
            return self._result("failed", None, self._journal(a.signed.accepted, "failed", reason), reason)
        if a.required is None and _find(exc, (ValueError,)) is not None and _find(exc, (httpx.HTTPError,)) is None:
            reason = "the server answered 402 without a valid PAYMENT-REQUIRED header (not an x402 v2 server?)"
            return self._result("failed", 402, self._journal(None, "failed", reason), reason)
        if a.required is None:
            raise PayError(f"Could not reach {self.url}: {detail}", reason="unreachable") from exc
        offer = a.selected or (a.required.accepts[0] if a.required.accepts else None)
        reason = f"the payment could not be made: {detail}"
        return self._result("failed", 402, self._journal(offer, "failed", reason), reason)

    def _explain(self, sdk_message: str) -> tuple[PaymentRequirements | None, str]:
        """Why no offer of the 402 could be paid, offer by offer, in the policy's words."""
        assert self.attempt.required is not None
        offers = self.attempt.required.accepts
        parts: list[str] = []
        first: PaymentRequirements | None = None
        for offer in offers:
            label = f"{offer.scheme} {describe_amount(str(offer.network), offer.asset, offer.amount)}"
            if offer.scheme not in self.schemes.get(str(offer.network), set()):
                parts.append(f"{label}: this agent cannot pay scheme {offer.scheme!r} on {offer.network} (its spend "
                             "policy names no asset there)")
                continue
            verdict = self._verdict(offer)
            first = first or offer
            parts.append(f"{label}: {verdict.reason if verdict.decision == 'refuse' else sdk_message}")
        return first or (offers[0] if offers else None), "no offered payment is allowed — " + "; ".join(parts)

    async def _answered(self, http: x402HTTPClient, response: httpx.Response, data: bytes, cut: bool,
                        lost: str | None) -> PayResult:
        """The outcome from the final answer's status and PAYMENT-RESPONSE; ``lost``: why the body is missing."""
        a = self.attempt
        status = response.status_code
        if a.signed is None:  # no payment was needed (or the server answered before asking)
            return self._result("not_required", status, None, lost, response, data, cut)
        settle: SettleResponse | None = None
        try:
            if response.headers.get(PAYMENT_RESPONSE_HEADER) or response.headers.get(X_PAYMENT_RESPONSE_HEADER):
                settle = http.get_payment_settle_response(response.headers.get)
        except Exception as exc:  # a malformed PAYMENT-RESPONSE: the payment's fate is unknown
            reason = f"the server's PAYMENT-RESPONSE could not be read ({type(exc).__name__}); status {status}"
            record = await asyncio.to_thread(self._journal, a.signed.accepted, "failed", reason)
            return self._result("failed", status, record, reason, response, data, cut)
        ok = 200 <= status < 300
        if (settle is not None and settle.success) or (settle is None and ok):
            tx = settle.transaction if settle is not None and settle.transaction else None
            notes = [n for n in (None if settle is not None else "the server sent no PAYMENT-RESPONSE; counted as paid",
                                 lost) if n]
            note = "; ".join(notes) or None
            record = await asyncio.to_thread(self._journal, a.signed.accepted, "settled", note, tx,
                                             settle.payer if settle is not None else None)
            return self._result("paid", status, record, note, response, data, cut)
        reason = self._failure_reason(http, response, settle)
        record = await asyncio.to_thread(self._journal, a.signed.accepted, "failed", reason)
        return self._result("failed", status, record, reason, response, data, cut)

    def _failure_reason(self, http: x402HTTPClient, response: httpx.Response, settle: SettleResponse | None) -> str:
        status = response.status_code
        if settle is not None:
            detail = settle.error_reason or settle.error_message or "no reason given"
            return f"the server did not settle the payment ({status}): {detail}"
        if status == 402:
            try:
                again = http.get_payment_required_response(response.headers.get)
            except Exception:  # no usable header: say what is known
                again = None
            detail = getattr(again, "error", None) or "no reason given"
            return f"the server refused the payment (402 again): {detail}"
        return f"the server answered {status} to the paid request, so it did not settle the payment"

    # -- journal and result ------------------------------------------------------------------------
    def _journal(self, offer: PaymentRequirements | None, status: journal.Status, reason: str | None,
                 tx: str | None = None, payer: str | None = None) -> journal.PaymentRecord:
        if offer is None:
            scheme = network = asset = pay_to = ""
            amount = "0"
        else:
            scheme, network, asset, pay_to = offer.scheme, str(offer.network), offer.asset, offer.pay_to
            amount = offer.amount if offer.amount.isascii() and offer.amount.isdigit() else "0"
            if amount == "0" and offer.amount != "0":
                reason = f"{reason} (amount asked: {offer.amount[:40]!r})"
        rec = journal.PaymentRecord(
            at=time.time(), direction="out", agent=self.ident.name, scheme=scheme, network=network, asset=asset,
            amount=amount, payer=payer or self._payer(scheme), pay_to=pay_to, resource=str(self.url), status=status,
            reason=reason, tx=tx)
        rec.id = self.journal.record(rec)
        return rec

    def _payer(self, scheme: str) -> str | None:
        if scheme == CREDITS_SCHEME:
            return self.ident.public_hex
        if scheme == "exact":
            return self.ident.evm_address
        return None

    def _result(self, outcome: Outcome, status: int | None, record: journal.PaymentRecord | None,
                reason: str | None, response: httpx.Response | None = None, data: bytes = b"",
                cut: bool = False) -> PayResult:
        text, content_type = "", None
        if response is not None:
            content_type = response.headers.get("content-type")
            text = _text(data, content_type, response.charset_encoding)
        amount = describe_amount(record.network, record.asset, record.amount) if record and record.scheme else None
        return PayResult(outcome=outcome, agent=self.ident.name, method=self.method, url=str(self.url), status=status,
                         content_type=content_type, body=text, truncated=cut, reason=reason, payment=record,
                         amount_text=amount)


# -- helpers ------------------------------------------------------------------------------------------

_BINARY = ("image/", "audio/", "video/", "font/", "application/octet-stream", "application/zip", "application/pdf",
           "application/gzip")


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


async def _read(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
    return bytes(body), False


def _text(data: bytes, content_type: str | None, charset: str | None) -> str:
    if (content_type or "").lower().startswith(_BINARY) or b"\x00" in data[:1024]:
        return f"(binary body of {len(data)} bytes, not shown)"
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def _find(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _detail(exc: BaseException) -> str:
    """The innermost cause, named: what actually went wrong under the SDK's wrapper."""
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    return f"{type(inner).__name__}: {inner}"[:300]

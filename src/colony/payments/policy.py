"""Spend policies: which x402 payments an agent may make alone, which need a person, which never.

Governance is deterministic code, never a prompt: a policy is data (`SpendPolicy`, read from
``Settings.spend_policies`` / ``default_spend_policy``) and `check` is a plain function of the
policy, one payment requirement, and what the agent already spent today. The paying side
(`colony.payments.paying`) runs it inside the SDK's requirement selection and again just before
a payment would be signed, so a refused payment is never signed.

A payment is allowed only when all of these hold:

- its asset — the pair (network, asset) — has an `AssetLimit` in the policy (credits of one
  ledger and a token on one chain are different assets, as two tokens are);
- its payee is allowed: the URL's host matches one of ``hosts``, or the requirement's ``payTo``
  is one of ``pay_to`` (either is a trust statement — "this server may name whom I pay" or "this
  recipient may be paid from anywhere" — so either suffices);
- its amount is an integer of atomic units, at most the asset's ``max_per_payment`` and any cap
  the caller gave, and with the last 24 hours' settled payments at most ``max_per_day``.

Then it needs a person when its amount is above the asset's ``ask_above``. Amounts are integers
from end to end: a float in a policy is refused when the policy is read, a non-integer amount in
a requirement is refused by `check`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

__all__ = [
    "DAY_S",
    "NODE_LEDGER",
    "AssetLimit",
    "Decision",
    "Requirement",
    "SpendPolicy",
    "Verdict",
    "check",
    "host_allowed",
    "resolve",
]

#: In `AssetLimit.asset`: this node's own credits (the ledger's key is only known at run time).
NODE_LEDGER = "@node"
#: The window ``max_per_day`` counts over: the last 24 hours, not the calendar day.
DAY_S = 86_400.0
CREDITS_NETWORK = "x402:colony"  # the same constant as `colony.payments.credits`, without importing the SDK

Decision = Literal["allow", "ask", "refuse"]
_CAIP2 = r"^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$"
_HOST = re.compile(r"^(\*\.)?([a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])(:\d{1,5})?$")
_PAYEE = re.compile(r"^([0-9a-f]{64}|0x[0-9a-f]{40})$")
_ATOMIC = re.compile(r"^[0-9]{1,78}$")
Atomic = Annotated[StrictInt, Field(gt=0)]


class AssetLimit(BaseModel):
    """What one agent may spend of one asset, in that asset's atomic units (micro-credits, token units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: CAIP-2 network: ``x402:colony`` for credits, ``eip155:<chain id>`` for a token.
    network: str = Field(pattern=_CAIP2)
    #: The asset id as x402 requirements name it: a ledger's public key (credits; `NODE_LEDGER` for
    #: this node's) or a token contract address. Compared without regard to case.
    asset: str = Field(min_length=1, max_length=128, pattern=r"^(@node|[0-9A-Za-z]{1,128})$")
    max_per_payment: Atomic
    max_per_day: Atomic
    #: Payments above this amount ask a person first; 0 asks for every payment; None never asks.
    ask_above: Annotated[StrictInt, Field(ge=0)] | None = None

    @field_validator("asset", mode="after")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value if value == NODE_LEDGER else value.lower()


def _default_assets() -> list[AssetLimit]:
    return [AssetLimit(network=CREDITS_NETWORK, asset=NODE_LEDGER, max_per_payment=1_000_000,
                       max_per_day=10_000_000, ask_above=250_000)]


class SpendPolicy(BaseModel):
    """One agent's spend policy. The default pays nobody: it names no host and no payee.

    Its default assets are this node's own credits only: at most 1 credit a payment and 10 a day,
    asking a person above 0.25 credits. So ``{"hosts": ["api.example.org"]}`` alone lets an agent
    pay that host small amounts of local credits, and nothing else.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Hosts the agent may pay: ``api.example.org``, ``*.example.org`` (its subdomains, not itself),
    #: optionally with ``:port`` (then only that port). IPv6 in brackets: ``[::1]:8420``.
    hosts: list[str] = Field(default_factory=list, max_length=256)
    #: Payees the agent may pay wherever they ask: 64-hex public keys (credits) or 0x EVM addresses.
    pay_to: list[str] = Field(default_factory=list, max_length=256)
    assets: list[AssetLimit] = Field(default_factory=_default_assets, max_length=64)

    @field_validator("hosts", mode="after")
    @classmethod
    def _hosts(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip().lower().rstrip(".") for v in values]
        for value in cleaned:
            if not _HOST.fullmatch(value):
                raise ValueError(f"{value!r} is not a host pattern: give a host name or address ('api.example.org', "
                                 "'127.0.0.1:8420', '*.example.org'), without scheme or path")
        return cleaned

    @field_validator("pay_to", mode="after")
    @classmethod
    def _payees(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip().lower() for v in values]
        for value in cleaned:
            if not _PAYEE.fullmatch(value):
                raise ValueError(f"{value!r} is not a payee: give a 64-hex public key or a 0x-prefixed 40-hex "
                                 "EVM address")
        return cleaned

    @model_validator(mode="after")
    def _distinct_assets(self) -> SpendPolicy:
        seen: set[tuple[str, str]] = set()
        for limit in self.assets:
            key = (limit.network, limit.asset)
            if key in seen:
                raise ValueError(f"the asset {limit.asset} on {limit.network} is listed twice; keep one limit per asset")
            seen.add(key)
        return self

    def limit_for(self, network: str, asset: str) -> AssetLimit | None:
        """The limit of (network, asset), or None when the policy does not allow that asset."""
        wanted = asset.lower()
        return next((a for a in self.assets if a.network == network and a.asset == wanted), None)


class Requirement(Protocol):
    """The fields of an x402 ``PaymentRequirements`` that `check` reads (the SDK's model has them)."""

    @property
    def scheme(self) -> str: ...

    @property
    def network(self) -> str: ...

    @property
    def asset(self) -> str: ...

    @property
    def amount(self) -> str: ...

    @property
    def pay_to(self) -> str: ...


@dataclass(frozen=True)
class Verdict:
    """What the policy says about one payment, and why, in words a person and a model can act on."""

    decision: Decision
    reason: str
    #: The payment's amount in atomic units, when it is one.
    amount: int | None = None
    limit: AssetLimit | None = None


def resolve(policy: SpendPolicy, node_ledger: str) -> SpendPolicy:
    """``policy`` with `NODE_LEDGER` replaced by this node's ledger key (64 hex)."""
    if not re.fullmatch(r"[0-9a-f]{64}", node_ledger):
        raise ValueError(f"a ledger key is 64 lowercase hex characters, not {node_ledger!r}")
    if not any(a.asset == NODE_LEDGER for a in policy.assets):
        return policy
    assets = [a.model_copy(update={"asset": node_ledger}) if a.asset == NODE_LEDGER else a for a in policy.assets]
    return SpendPolicy(hosts=policy.hosts, pay_to=policy.pay_to, assets=assets)


def _split(pattern: str) -> tuple[str, int | None]:
    """A validated host pattern as (host, port or None)."""
    if pattern.startswith("["):
        inner, _, rest = pattern[1:].partition("]")
        return inner, int(rest[1:]) if rest.startswith(":") else None
    base, sep, port = pattern.partition(":")
    return base, int(port) if sep else None


def host_allowed(policy: SpendPolicy, host: str, port: int | None) -> bool:
    """Whether ``host`` (as the URL names it) and ``port`` (the effective one) match a pattern of the policy."""
    name = host.strip().strip("[]").rstrip(".").lower()
    for pattern in policy.hosts:
        base, want_port = _split(pattern)
        if want_port is not None and want_port != port:
            continue
        if base.startswith("*."):
            if name.endswith(base[1:]) and name != base[2:]:
                return True
        elif name == base:
            return True
    return False


def check(policy: SpendPolicy, requirement: Requirement, spent_today: int, *, host: str, port: int | None = None,
          cap: int | None = None) -> Verdict:
    """Allow, ask or refuse one payment of ``requirement`` to the server at ``host``/``port``.

    ``spent_today`` is what the agent paid in this asset over the last `DAY_S` seconds (settled
    payments, from the journal); ``cap`` is an optional maximum the caller set for this request.
    `policy` must be resolved (`resolve`) so `NODE_LEDGER` names a real ledger.
    """
    for name, value in (("spent_today", spent_today), ("cap", cap)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise TypeError(f"{name} must be a non-negative integer of atomic units, not {value!r}")
    amount_text = str(requirement.amount)
    if not _ATOMIC.fullmatch(amount_text):
        return Verdict("refuse", f"the amount {amount_text!r} is not an integer of atomic units; only integer "
                                 "amounts are paid")
    amount = int(amount_text)
    what = f"{amount} atomic units of {requirement.asset} on {requirement.network}"
    if amount == 0:
        return Verdict("refuse", "the requirement asks for a zero amount, which x402 does not allow", amount)
    limit = policy.limit_for(str(requirement.network), requirement.asset)
    if limit is None:
        allowed = ", ".join(f"{a.asset} on {a.network}" for a in policy.assets) or "none"
        return Verdict("refuse", f"the asset {requirement.asset} on {requirement.network} is not in this agent's spend "
                                 f"policy (allowed assets: {allowed})", amount)
    pay_to = requirement.pay_to.lower()
    if not host_allowed(policy, host, port) and pay_to not in policy.pay_to:
        return Verdict("refuse", f"the payee is not allowed: neither the host {host!r} nor the payTo {pay_to} is in "
                                 "this agent's spend policy (hosts, pay_to)", amount, limit)
    if cap is not None and amount > cap:
        return Verdict("refuse", f"{what} is above the cap of {cap} given for this request", amount, limit)
    if amount > limit.max_per_payment:
        return Verdict("refuse", f"{what} is above the maximum of {limit.max_per_payment} per payment", amount, limit)
    if spent_today + amount > limit.max_per_day:
        return Verdict("refuse", f"{what} would bring the last 24 hours' spending to {spent_today + amount}, above the "
                                 f"maximum of {limit.max_per_day} a day (already spent: {spent_today})", amount, limit)
    if limit.ask_above is not None and amount > limit.ask_above:
        return Verdict("ask", f"{what} is above the approval threshold of {limit.ask_above}", amount, limit)
    return Verdict("allow", f"{what} is within this agent's spend policy", amount, limit)

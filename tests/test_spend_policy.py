"""Spend policies: the model refuses what could only be misread, and `check` allows, asks or refuses
each payment for the reason it gives — asset, payee, caps, the day's budget, the approval threshold."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from colony.config import Settings
from colony.payments.policy import NODE_LEDGER, AssetLimit, SpendPolicy, check, host_allowed, resolve

LEDGER = "ab" * 32
PAYEE = "cd" * 32
TOKEN = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"


@dataclass(frozen=True)
class Req:
    """The fields of an x402 requirement that a policy reads."""

    amount: str
    asset: str = LEDGER
    network: str = "x402:colony"
    pay_to: str = PAYEE
    scheme: str = "credits"


def policy(**limit: int | None) -> SpendPolicy:
    values: dict[str, int | None] = {"max_per_payment": 1000, "max_per_day": 2500, "ask_above": 400, **limit}
    return SpendPolicy(hosts=["api.example.org"], assets=[AssetLimit(network="x402:colony", asset=LEDGER, **values)])


def test_allow_ask_and_refuse_each_say_why() -> None:
    p = policy()
    allowed = check(p, Req("400"), 0, host="api.example.org")
    assert (allowed.decision, allowed.amount) == ("allow", 400)
    asked = check(p, Req("401"), 0, host="api.example.org")
    assert asked.decision == "ask" and "above the approval threshold of 400" in asked.reason
    over = check(p, Req("1001"), 0, host="api.example.org")
    assert over.decision == "refuse" and "above the maximum of 1000 per payment" in over.reason
    # The day's budget counts what was spent already: 2000 + 600 > 2500, while 2000 + 500 fits.
    day = check(p, Req("600"), 2000, host="api.example.org")
    assert day.decision == "refuse" and "2600, above the maximum of 2500 a day (already spent: 2000)" in day.reason
    assert check(p, Req("500"), 2000, host="api.example.org").decision == "ask"
    capped = check(p, Req("300"), 0, host="api.example.org", cap=299)
    assert capped.decision == "refuse" and "above the cap of 299 given for this request" in capped.reason
    # No threshold: never asks; a threshold of 0 asks for every payment.
    assert check(policy(ask_above=None), Req("1000"), 0, host="api.example.org").decision == "allow"
    assert check(policy(ask_above=0), Req("1"), 0, host="api.example.org").decision == "ask"


def test_unknown_assets_and_payees_are_refused() -> None:
    p = policy()
    other_ledger = check(p, Req("10", asset="ef" * 32), 0, host="api.example.org")
    assert other_ledger.decision == "refuse" and f"the asset {'ef' * 32} on x402:colony is not in" in other_ledger.reason
    same_asset_other_chain = check(p, Req("10", network="eip155:1"), 0, host="api.example.org")
    assert same_asset_other_chain.decision == "refuse"
    stranger = check(p, Req("10"), 0, host="evil.example.net")
    assert stranger.decision == "refuse" and "neither the host 'evil.example.net' nor the payTo" in stranger.reason
    # A payee named in pay_to may be paid from any host; case does not matter.
    trusted = SpendPolicy(pay_to=[PAYEE.upper()], assets=p.assets)
    assert check(trusted, Req("10"), 0, host="evil.example.net").decision == "allow"
    assert check(trusted, Req("10", pay_to="ee" * 32), 0, host="evil.example.net").decision == "refuse"
    # The default policy names nobody: even its own asset is refused.
    default = resolve(SpendPolicy(), LEDGER)
    assert check(default, Req("10"), 0, host="127.0.0.1").decision == "refuse"


def test_amounts_are_integers_of_atomic_units_only() -> None:
    p = policy()
    for bad in ("0.5", "1e3", "-5", " 10", "", "١٠"):
        verdict = check(p, Req(bad), 0, host="api.example.org")
        assert verdict.decision == "refuse" and "not an integer of atomic units" in verdict.reason, bad
    zero = check(p, Req("0"), 0, host="api.example.org")
    assert zero.decision == "refuse" and "zero amount" in zero.reason
    for spent in (1.5, -1, True, "3"):
        with pytest.raises(TypeError, match="spent_today"):
            check(p, Req("10"), spent, host="api.example.org")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cap"):
        check(p, Req("10"), 0, host="api.example.org", cap=2.0)  # type: ignore[arg-type]
    # A token with 18 decimals needs amounts past 64 bits; they stay exact.
    huge = SpendPolicy(hosts=["api.example.org"], assets=[AssetLimit(
        network="eip155:8453", asset=TOKEN, max_per_payment=10**24, max_per_day=10**25)])
    assert check(huge, Req(str(10**24), asset=TOKEN, network="eip155:8453"), 0, host="api.example.org").decision == "allow"
    assert check(huge, Req(str(10**24 + 1), asset=TOKEN, network="eip155:8453"), 0,
                 host="api.example.org").decision == "refuse"


def test_the_model_refuses_floats_strings_and_incoherent_limits() -> None:
    base = {"network": "x402:colony", "asset": LEDGER, "max_per_payment": 10, "max_per_day": 100}
    for field, bad in (("max_per_payment", 1.0), ("max_per_payment", "10"), ("max_per_day", 2.5), ("ask_above", 0.5),
                       ("max_per_payment", 0), ("ask_above", -1), ("network", "colony"), ("asset", "a b")):
        with pytest.raises(ValidationError):
            AssetLimit.model_validate({**base, field: bad})
    with pytest.raises(ValidationError, match="listed twice"):
        SpendPolicy(assets=[AssetLimit.model_validate(base), AssetLimit.model_validate({**base, "asset": LEDGER.upper()})])
    for host in ("https://api.example.org", "api.example.org/path", "user@host", "*", "a b"):
        with pytest.raises(ValidationError, match="not a host pattern"):
            SpendPolicy(hosts=[host])
    for payee in ("npub1xyz", "0x1234", "ab" * 31):
        with pytest.raises(ValidationError, match="not a payee"):
            SpendPolicy(pay_to=[payee])
    with pytest.raises(ValidationError):
        SpendPolicy.model_validate({"hosts": [], "budget": 5})  # an unknown key is a typo, not ignored


def test_host_patterns_with_wildcards_and_ports() -> None:
    p = SpendPolicy(hosts=["*.example.org", "127.0.0.1:8402", "[::1]", "Shop.Example.NET."])
    assert host_allowed(p, "a.example.org", 443) and host_allowed(p, "deep.a.example.org", 80)
    assert not host_allowed(p, "example.org", 443)  # the wildcard is for subdomains only
    assert not host_allowed(p, "badexample.org", 443)
    assert host_allowed(p, "127.0.0.1", 8402) and not host_allowed(p, "127.0.0.1", 8403)
    assert host_allowed(p, "::1", 9) and host_allowed(p, "[::1]", 9)
    assert host_allowed(p, "shop.example.net", 443)


def test_resolve_puts_the_node_ledger_in_and_settings_read_policies_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    default = Settings().default_spend_policy
    assert (default.hosts, default.pay_to) == ([], [])
    [credits] = default.assets
    assert (credits.asset, credits.max_per_payment, credits.max_per_day, credits.ask_above) == (
        NODE_LEDGER, 1_000_000, 10_000_000, 250_000)
    resolved = resolve(default, LEDGER)
    assert resolved.assets[0].asset == LEDGER and default.assets[0].asset == NODE_LEDGER
    with pytest.raises(ValueError, match="64 lowercase hex"):
        resolve(default, "node")

    monkeypatch.setenv("COLONY_SPEND_POLICIES", json.dumps({"scout": {"hosts": ["127.0.0.1"], "assets": [
        {"network": "x402:colony", "asset": "@node", "max_per_payment": 5, "max_per_day": 50}]}}))
    monkeypatch.setenv("COLONY_DEFAULT_SPEND_POLICY", json.dumps({"hosts": ["api.example.org"]}))
    settings = Settings()
    assert settings.spend_policies["scout"].assets[0].max_per_payment == 5
    assert settings.default_spend_policy.hosts == ["api.example.org"]
    assert settings.default_spend_policy.assets[0].max_per_day == 10_000_000  # partial JSON keeps the safe caps
    monkeypatch.setenv("COLONY_SPEND_POLICIES", json.dumps({"scout": {"assets": [
        {"network": "x402:colony", "asset": "@node", "max_per_payment": 0.5, "max_per_day": 50}]}}))
    with pytest.raises(ValidationError, match="max_per_payment"):
        Settings()

"""Agent profiles in the store: create (identity and profile together), list, edit, deactivate,
validation at the boundary, what the database refuses on its own, concurrent creates, and cost
estimates checked against numbers worked out by hand."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import apsw
import pytest
from pydantic import SecretStr, ValidationError

from colony.config import ProviderConfig, Settings
from colony.identity import Keyring
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.market.cost import CostModel, estimate
from colony.market.profiles import (
    MAX_PERSONA_CHARS,
    AgentPatch,
    AgentProfileError,
    AgentSpec,
    CostPatch,
    activate_agent,
    card_facts,
    create_agent,
    deactivate_agent,
    edit_agent,
    get_agent,
    list_agents,
    model_tiers,
    profile_for_turn,
    resolve_tier,
)
from colony.store import open_database
from colony.store.migrations import latest_version


def _providers(*names: str) -> list[ProviderConfig]:
    return [ProviderConfig(name=n, base_url=f"http://127.0.0.1:{9 + i}/v1", model="m", api_key=SecretStr("k"))
            for i, n in enumerate(names)]


@pytest.fixture
def keyring(settings: Settings) -> Iterator[Keyring]:
    settings = settings.model_copy(update={"providers": _providers("local", "hosted")})
    db = open_database(settings.db_path)
    ring = Keyring(db, settings)
    ring.ensure(announce=False)
    yield ring
    db.close()


def spec(name: str = "scout", **kw: Any) -> AgentSpec:
    return AgentSpec(name=name, persona=kw.pop("persona", "You find things."), **kw)


def profile_rows(keyring: Keyring) -> list[dict[str, Any]]:
    return keyring.db.query("SELECT name, persona, tier, price_input_per_1k, price_output_per_1k, "
                            "price_per_tool_call, price_per_tool, overhead, active FROM agent_profiles ORDER BY name")


# -- create, list, show ----------------------------------------------------------------------------------


def test_migration_12_adds_the_profiles_table(keyring: Keyring) -> None:
    assert latest_version() >= 12
    recorded = keyring.db.one("SELECT name FROM schema_migrations WHERE version = 12")
    assert recorded is not None and recorded["name"].startswith("agents:")
    columns = [r["name"] for r in keyring.db.query("PRAGMA table_info(agent_profiles)")]
    assert columns == ["name", "persona", "tier", "price_input_per_1k", "price_output_per_1k", "price_per_tool_call",
                       "price_per_tool", "overhead", "active", "created_at", "updated_at"]


def test_creating_an_agent_writes_its_identity_and_its_profile(keyring: Keyring) -> None:
    made = create_agent(keyring, spec(tier="hosted", skills=["search", " search ", "summarise"],
                                      description="Finds files.",
                                      cost=CostModel(input_per_1k=20, output_per_1k=60, per_tool_call=500,
                                                     per_tool={"web_fetch": 2000}, overhead=1000)))
    ident = keyring.agent("scout")
    assert (made.public_hex, made.npub, made.evm_address) == (ident.public_hex, ident.npub, ident.evm_address)
    assert ident.role == "agent" and ident.skills == ("search", "summarise") and ident.description == "Finds files."
    assert made.skills == ["search", "summarise"] and made.configured and made.active
    assert (made.balance, made.held) == (0, 0)
    assert profile_rows(keyring) == [{
        "name": "scout", "persona": "You find things.", "tier": "hosted", "price_input_per_1k": 20,
        "price_output_per_1k": 60, "price_per_tool_call": 500, "price_per_tool": '{"web_fetch": 2000}',
        "overhead": 1000, "active": 1}]
    # The keys are real and sealed like every identity's: the agent signs with its own key.
    assert ident.sign(1, "hello").pubkey == made.public_hex


def test_the_list_has_every_agent_with_its_balance_and_the_default_agent_unconfigured(keyring: Keyring) -> None:
    create_agent(keyring, spec("scout"))
    create_agent(keyring, spec("writer", tier="local"))
    ledger = Ledger(SqliteLedgerStore(keyring.db), keyring.node().schnorr_key)
    ledger.mint(keyring.agent("writer").public_hex, 3 * MICRO, "seed")
    found = {a.name: a for a in list_agents(keyring)}
    assert list(found) == ["colony", "scout", "writer"]  # the node's own identity is not an agent
    assert found["writer"].balance == 3 * MICRO and found["scout"].balance == 0
    colony = found["colony"]
    assert not colony.configured and colony.active and colony.tier == "default"
    assert colony.persona == keyring.settings.persona and colony.cost == CostModel()
    assert get_agent(keyring, "writer") == found["writer"]
    with pytest.raises(AgentProfileError) as info:
        get_agent(keyring, "node")
    assert info.value.reason == "unknown" and "colony agents list" in str(info.value)


def test_a_taken_name_is_refused_and_nothing_is_half_written(keyring: Keyring) -> None:
    create_agent(keyring, spec("scout"))
    for name in ("scout", "node", "colony"):
        with pytest.raises(AgentProfileError) as info:
            create_agent(keyring, spec(name, persona="Another."))
        assert info.value.reason == "exists" and f"colony agents edit {name}" in str(info.value)
    assert [r["persona"] for r in profile_rows(keyring)] == ["You find things."]


def test_an_unknown_tier_names_the_valid_ones_and_creates_nothing(keyring: Keyring) -> None:
    with pytest.raises(AgentProfileError) as info:
        create_agent(keyring, spec(tier="gpt-9"))
    message = str(info.value)
    assert info.value.reason == "unknown_tier" and info.value.tiers == ["default", "local", "hosted"]
    assert "'gpt-9'" in message and "'default'" in message and "0 or 'local'" in message and "1 or 'hosted'" in message
    assert [i.name for i in keyring.all()] == ["node", "colony"] and profile_rows(keyring) == []


def test_a_tier_by_index_is_stored_as_the_providers_name(keyring: Keyring, settings: Settings) -> None:
    assert create_agent(keyring, spec(tier="1")).tier == "hosted"
    assert resolve_tier("0", keyring.settings) == "local"
    with pytest.raises(AgentProfileError):
        resolve_tier("2", keyring.settings)
    with pytest.raises(AgentProfileError):
        resolve_tier("٠", keyring.settings)  # a non-ASCII digit is not an index
    # With no provider configured, 'default' is the only tier, and the error says how to get more.
    assert model_tiers(settings) == ["default"]
    with pytest.raises(AgentProfileError) as info:
        resolve_tier("local", settings)
    assert "COLONY_PROVIDERS" in str(info.value)


def test_if_the_profile_cannot_be_written_the_identity_is_not_kept(keyring: Keyring) -> None:
    keyring.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON agent_profiles BEGIN SELECT RAISE(ABORT, 'no'); END")
    with pytest.raises(apsw.ConstraintError):
        create_agent(keyring, spec("scout"))
    assert [i.name for i in keyring.all()] == ["node", "colony"]


# -- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "where"), [
    ({"name": "Scout"}, "name"),
    ({"name": "scout;drop table agent_profiles"}, "name"),
    ({"name": "ß"}, "name"),
    ({"name": "x" * 33}, "name"),
    ({"persona": ""}, "persona"),
    ({"persona": " \n\t"}, "persona"),
    ({"persona": "p" * (MAX_PERSONA_CHARS + 1)}, "persona"),
    ({"tier": ""}, "tier"),
    ({"cost": {"input_per_1k": -1}}, "cost.input_per_1k"),
    ({"cost": {"overhead": 1.5}}, "cost.overhead"),
    ({"cost": {"overhead": "5"}}, "cost.overhead"),
    ({"cost": {"overhead": True}}, "cost.overhead"),
    ({"cost": {"overhead": 2**53}}, "cost.overhead"),
    ({"cost": {"per_tool": {"web fetch": 1}}}, "cost.per_tool.web fetch.[key]"),
    ({"cost": {"per_tool": {"web_fetch": -2}}}, "cost.per_tool.web_fetch"),
    ({"cost": {"per_call": 1}}, "cost.per_call"),
    ({"skills": ["x" * 65]}, "skills.0"),
    ({"skills": ["  "]}, "skills.0"),
    ({"skills": [f"s{i}" for i in range(33)]}, "skills"),
    ({"description": "d" * 1001}, "description"),
    ({"wallet": 5}, "wallet"),
])
def test_values_out_of_bounds_are_refused_at_the_boundary(fields: dict[str, Any], where: str) -> None:
    body = {"name": "scout", "persona": "You find things.", **fields}
    with pytest.raises(ValidationError) as info:
        AgentSpec.model_validate(body)
    assert where in {".".join(map(str, e["loc"])) for e in info.value.errors()}


def test_the_database_refuses_what_the_models_would_have(keyring: Keyring) -> None:
    def insert(**over: Any) -> None:
        row = {"name": "colony", "persona": "p", "tier": "default", "i": 0, "o": 0, "t": 0, "pt": "{}", "oh": 0,
               "a": 1, **over}
        keyring.db.connection().execute(
            "INSERT INTO agent_profiles(name, persona, tier, price_input_per_1k, price_output_per_1k, "
            "price_per_tool_call, price_per_tool, overhead, active) VALUES (:name, :persona, :tier, "
            ":i, :o, :t, :pt, :oh, :a)", row)

    for bad in ({"name": "ghost"}, {"persona": ""}, {"i": -1}, {"oh": 1.5}, {"t": "five"}, {"pt": "[1]"}, {"a": 2}):
        with pytest.raises(apsw.ConstraintError):
            insert(**bad)
    insert()
    with pytest.raises(apsw.ConstraintError, match="deactivated, never deleted"):
        keyring.db.connection().execute("DELETE FROM agent_profiles WHERE name = 'colony'")


# -- edit, deactivate ------------------------------------------------------------------------------------


def test_edit_changes_only_what_the_patch_names(keyring: Keyring) -> None:
    create_agent(keyring, spec(skills=["search"], cost=CostModel(input_per_1k=10, per_tool={"read_file": 1})))
    before = get_agent(keyring, "scout")
    after = edit_agent(keyring, "scout", AgentPatch(tier="local", cost=CostPatch(overhead=7, output_per_1k=3),
                                                    description="Now with a line."))
    assert after.tier == "local" and after.persona == before.persona and after.skills == ["search"]
    assert after.cost == CostModel(input_per_1k=10, output_per_1k=3, per_tool={"read_file": 1}, overhead=7)
    assert after.description == "Now with a line." and after.created_at == before.created_at
    assert after.updated_at is not None and before.updated_at is not None and after.updated_at >= before.updated_at
    again = edit_agent(keyring, "scout", AgentPatch(persona="Ünïcødé persona 🐜", skills=[],
                                                    cost=CostPatch(per_tool={})))
    assert again.persona == "Ünïcødé persona 🐜" and again.skills == [] and again.cost.per_tool == {}
    with pytest.raises(AgentProfileError) as info:
        edit_agent(keyring, "scout", AgentPatch(tier="nope"))
    assert info.value.reason == "unknown_tier" and get_agent(keyring, "scout").tier == "local"
    with pytest.raises(AgentProfileError) as unknown:
        edit_agent(keyring, "ghost", AgentPatch(persona="x"))
    assert unknown.value.reason == "unknown"


def test_editing_an_agent_without_a_profile_gives_it_one(keyring: Keyring) -> None:
    edited = edit_agent(keyring, "colony", AgentPatch(persona="The node's own agent, configured."))
    assert edited.configured and edited.tier == "default" and edited.persona == "The node's own agent, configured."
    assert profile_for_turn(keyring, "colony").persona == "The node's own agent, configured."


def test_deactivating_keeps_identity_wallet_and_profile_and_can_be_undone(keyring: Keyring) -> None:
    create_agent(keyring, spec(tier="hosted"))
    ledger = Ledger(SqliteLedgerStore(keyring.db), keyring.node().schnorr_key)
    ledger.mint(keyring.agent("scout").public_hex, 2 * MICRO, "seed")
    gone = deactivate_agent(keyring, "scout")
    assert not gone.active and gone.balance == 2 * MICRO and gone.tier == "hosted"
    assert deactivate_agent(keyring, "scout") == gone  # idempotent
    assert keyring.agent("scout").public_hex == gone.public_hex
    assert card_facts(keyring.db, "scout")[0] is False
    refusals: list[Callable[[], object]] = [lambda: profile_for_turn(keyring, "scout"),
                                            lambda: edit_agent(keyring, "scout", AgentPatch(persona="x"))]
    for refused in refusals:
        with pytest.raises(AgentProfileError) as info:
            refused()
        assert info.value.reason == "inactive" and "--activate" in str(info.value)
    back = activate_agent(keyring, "scout")
    assert back.active and back.model_dump(exclude={"active", "updated_at"}) == gone.model_dump(
        exclude={"active", "updated_at"})
    assert profile_for_turn(keyring, "scout").tier == "hosted"


def test_the_card_facts_carry_tier_and_cost_model_only_when_configured(keyring: Keyring) -> None:
    assert card_facts(keyring.db, "colony") == (True, {})
    create_agent(keyring, spec(tier="local", cost=CostModel(input_per_1k=1, output_per_1k=2, per_tool_call=3,
                                                            per_tool={"web_fetch": 4}, overhead=5)))
    assert card_facts(keyring.db, "scout") == (True, {"modelTier": "local", "costModel": {
        "unit": "micro-credit", "inputPer1k": 1, "outputPer1k": 2, "perToolCall": 3, "perTool": {"web_fetch": 4},
        "overhead": 5}})


# -- concurrency ------------------------------------------------------------------------------------------


def test_two_creates_of_the_same_name_at_once_one_wins_the_other_is_told(keyring: Keyring) -> None:
    barrier = threading.Barrier(2)
    results: list[str] = []
    errors: list[AgentProfileError] = []

    def create(persona: str) -> None:
        barrier.wait()
        try:
            results.append(create_agent(keyring, spec("twin", persona=persona)).persona)
        except AgentProfileError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(p,)) for p in ("First.", "Second.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 1 and len(errors) == 1
    assert errors[0].reason == "exists" and "'twin' already exists" in str(errors[0])
    rows = profile_rows(keyring)
    assert [(r["name"], r["persona"]) for r in rows] == [("twin", results[0])]
    assert [i.name for i in keyring.all()].count("twin") == 1


# -- cost estimates ---------------------------------------------------------------------------------------


def test_estimates_match_the_hand_computed_values() -> None:
    cost = CostModel(input_per_1k=20, output_per_1k=60, per_tool_call=500, per_tool={"web_fetch": 2000},
                     overhead=1000)
    # 12,000 in × 20/1K = 240; 3,000 out × 60/1K = 180; 4 calls × 500 = 2,000; 2 web_fetch × 2,000 = 4,000;
    # 1 read_file (not priced by name) × 500 = 500; overhead 1,000 → 240 + 180 + 6,500 + 1,000 = 7,920.
    result = estimate(cost, input_tokens=12_000, output_tokens=3_000, tool_calls=4,
                      tools={"web_fetch": 2, "read_file": 1})
    assert result.model_dump() == {"input": 240, "output": 180, "tools": 6_500, "overhead": 1_000, "total": 7_920}


def test_token_lines_round_up_each_to_a_whole_micro_credit() -> None:
    cost = CostModel(input_per_1k=999, output_per_1k=1)
    # 1 × 999 / 1000 = 0.999 → 1; 1,001 × 1 / 1000 = 1.001 → 2 (up, never down: no bid below cost).
    assert estimate(cost, input_tokens=1, output_tokens=1_001).model_dump() == {
        "input": 1, "output": 2, "tools": 0, "overhead": 0, "total": 3}
    # Exact thousands are not rounded; nothing at all costs nothing (no overhead set).
    assert estimate(cost, input_tokens=3_000, output_tokens=0).total == 2_997
    assert estimate(CostModel(), input_tokens=10**9, output_tokens=10**9, tool_calls=10**6).total == 0


def test_large_estimates_are_exact_integers() -> None:
    top = 2**53 - 1
    cost = CostModel(input_per_1k=top, overhead=top)
    # 10**9 tokens × (2**53 - 1) / 1000 is exact in Python integers (a float would lose the last digits).
    assert estimate(cost, input_tokens=10**9, output_tokens=0).total == (10**9 * top) // 1000 + top


@pytest.mark.parametrize("bad", [{"input_tokens": -1}, {"tool_calls": -3}, {"output_tokens": 1.5},
                                 {"tools": {"web_fetch": -1}}, {"input_tokens": True}])
def test_estimates_refuse_counts_that_are_not_whole_and_non_negative(bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"input_tokens": 1, "output_tokens": 1, **bad}
    with pytest.raises(ValueError, match="whole number"):
        estimate(CostModel(), **args)


def test_cost_model_json_round_trips_as_integers() -> None:
    cost = CostModel(input_per_1k=1, per_tool={"mcp__files__read": 3})
    assert json.loads(cost.model_dump_json()) == {"input_per_1k": 1, "output_per_1k": 0, "per_tool_call": 0,
                                                  "per_tool": {"mcp__files__read": 3}, "overhead": 0}
    assert cost.tool_price("mcp__files__read") == 3 and cost.tool_price("other") == 0

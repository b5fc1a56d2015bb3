"""Agent profiles: what makes one of the node's agents a worker — persona, model tier, cost model.

An agent *is* its identity (`colony.identity`: name, Schnorr key, EVM account, skills, a line of
description). Its profile (table ``agent_profiles``, migration 12) adds the persona its turns
start from, its model tier — which provider of the node's cascade it runs on: ``default`` for the
whole cascade in order, else one provider's name (`colony.llm.detect.provider_names`) — and the
cost model it bids from (`colony.market.cost`). Creating an agent writes its identity and its
profile in one transaction: both exist or neither. An agent made without one (the default
``colony``, or ``colony identity add``) runs with the node's settings until it is edited, which
gives it a profile.

Removing an agent deactivates it; nothing is deleted. Its public key is its ledger account (any
credits stay there, and the chain of signed entries names it), peers know it from its signed
card, and auctions, payments and reputation refer to it. Deleting the identity would orphan
those records and free the name for a new key — which would look, to anyone reading the history,
like the same agent. A deactivated agent takes no turns by name and no paid prompts, its card
says ``active: false``, and it can be reactivated with everything it had.

Public API::

    model_tiers(settings) -> ["default", "ollama", …]
    create_agent(keyring, AgentSpec(name="scout", persona="…", tier="fast")) -> AgentRecord
    get_agent(keyring, "scout") / list_agents(keyring) -> AgentRecord / list[AgentRecord]
    edit_agent(keyring, "scout", AgentPatch(persona="…", cost=CostPatch(overhead=500))) -> AgentRecord
    deactivate_agent(keyring, "scout") / activate_agent(keyring, "scout") -> AgentRecord
    profile_for_turn(keyring, "scout") -> AgentProfile     # what `Node.agent(name=…)` runs with
    card_facts(db, "scout") -> (active, {"modelTier": …, "costModel": …})

Where profiles live: in the node's SQLite file, also when ``COLONY_DATABASE_URL`` moves the market
to PostgreSQL. A profile belongs to one of the node's own keys, by that key's local name (the
keyring stays in the file: a secret key never leaves it), and its tier names a provider of this
node's cascade — node configuration, like the x402 prices. What the agents do in the market
(bids, stake, ratings) is shared on PostgreSQL by public key; the bidders find the node's agents
here (`list_agents`), with their balances from wherever the ledger is.

May import `colony.identity`, `colony.ledger`, `colony.llm.detect`, `colony.store`, `colony.config`,
`colony.errors` and the market's own modules; never a surface. Unlike the mechanism modules it has
state: the ``agent_profiles`` table, through `colony.market._agents_store` (the only SQL).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from colony.config import Settings
from colony.errors import IdentityError
from colony.identity import Identity, Keyring
from colony.identity.store import MAX_DESCRIPTION_CHARS, MAX_SKILL_CHARS, MAX_SKILLS, NAME_PATTERN
from colony.ledger import LedgerStore, open_ledger_store
from colony.llm.detect import provider_names
from colony.market import _agents_store as _store
from colony.market.cost import CostModel, Price, ToolPrices
from colony.market.events import MarketError
from colony.store import Database, Row

__all__ = [
    "DEFAULT_TIER",
    "MAX_PERSONA_CHARS",
    "AgentPatch",
    "AgentProfile",
    "AgentProfileError",
    "AgentRecord",
    "AgentSpec",
    "CostPatch",
    "activate_agent",
    "card_facts",
    "create_agent",
    "deactivate_agent",
    "edit_agent",
    "get_agent",
    "list_agents",
    "model_tiers",
    "profile_for_turn",
    "resolve_tier",
]

#: The tier that runs on the whole cascade, in order, with fallback.
DEFAULT_TIER = "default"
#: A persona is a system prompt's opening; 8,000 characters (~2,000 tokens) leave the default
#: 8,192-token context room for tools, memory and the conversation.
MAX_PERSONA_CHARS = 8000
MAX_TIER_CHARS = 64
_NOT_BLANK = r"\S"

Persona = Annotated[str, Field(min_length=1, max_length=MAX_PERSONA_CHARS, pattern=_NOT_BLANK,
                               description="The agent's system prompt opening: who it is and how it works.")]
Tier = Annotated[str, Field(min_length=1, max_length=MAX_TIER_CHARS,
                            description="'default' (the whole cascade), a provider's name, or its index (0, 1 …).")]
Skill = Annotated[str, Field(min_length=1, max_length=MAX_SKILL_CHARS, pattern=_NOT_BLANK)]
Reason = Literal["invalid", "exists", "unknown", "inactive", "unknown_tier"]


class AgentProfileError(MarketError):
    """An agent cannot be created, found, edited or run as asked; the message says what to do.

    A branch of the market's `MarketError` (`colony.market.events` draws the tree).
    """

    code = "agent_profile_error"

    def __init__(self, message: str, *, reason: Reason, name: str | None = None,
                 tiers: list[str] | None = None) -> None:
        #: ``invalid`` (a value out of bounds), ``exists`` (the name is taken), ``unknown`` (no such
        #: agent), ``inactive`` (deactivated), ``unknown_tier`` (``tiers`` lists the valid ones).
        self.reason, self.name, self.tiers = reason, name, list(tiers or [])
        super().__init__(message)


class AgentSpec(BaseModel):
    """A new agent: its identity's name, skills and description, and its profile."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="1-32 lowercase letters, digits, '-' or '_'.")
    persona: Persona
    tier: Tier = DEFAULT_TIER
    cost: CostModel = Field(default_factory=CostModel)
    skills: list[Skill] = Field(default_factory=list, max_length=MAX_SKILLS)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)


class CostPatch(BaseModel):
    """Prices to change; an absent or null one stays. ``per_tool``, when given, replaces the whole map."""

    model_config = ConfigDict(extra="forbid")

    input_per_1k: Price | None = None
    output_per_1k: Price | None = None
    per_tool_call: Price | None = None
    per_tool: ToolPrices | None = None
    overhead: Price | None = None


class AgentPatch(BaseModel):
    """What to change about an agent; an absent or null field stays as it is."""

    model_config = ConfigDict(extra="forbid")

    persona: Persona | None = None
    tier: Tier | None = None
    cost: CostPatch | None = None
    skills: list[Skill] | None = Field(default=None, max_length=MAX_SKILLS)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)


class AgentProfile(BaseModel):
    """What a turn run as this agent uses. ``configured`` is False for an agent without a stored
    profile: then the persona is the node's (``COLONY_PERSONA``), the tier ``default``, and the
    cost model all zero."""

    model_config = ConfigDict(frozen=True)

    name: str
    persona: str
    tier: str
    cost: CostModel
    active: bool
    configured: bool
    created_at: str | None = None
    updated_at: str | None = None


class AgentRecord(AgentProfile):
    """An agent as the surfaces show it: profile, public identity, and wallet (micro-credits)."""

    public_hex: str
    npub: str
    evm_address: str
    description: str
    skills: list[str]
    balance: int = Field(description="Available micro-credits on the ledger.")
    held: int = Field(description="Micro-credits held in escrow.")


# -- tiers ------------------------------------------------------------------------------------


def model_tiers(settings: Settings) -> list[str]:
    """The tiers an agent may have on this node: ``default``, then each provider's name."""
    return [DEFAULT_TIER, *(n for n in provider_names(settings) if n != DEFAULT_TIER)]


def resolve_tier(tier: str, settings: Settings, name: str | None = None) -> str:
    """``default``, a provider's name, or a provider's index (``0`` is the first) → the tier stored.

    An index is stored as the provider's name, so reordering the providers later does not move
    the agent to another one. Raises `AgentProfileError` (``unknown_tier``) listing the tiers.
    """
    providers = provider_names(settings)
    if tier == DEFAULT_TIER or tier in providers:
        return tier
    if tier.isascii() and tier.isdigit() and int(tier) < len(providers):
        return providers[int(tier)]
    listed = ", ".join([f"'{DEFAULT_TIER}' (the whole cascade)",
                        *(f"{i} or {p!r}" for i, p in enumerate(providers))])
    hint = "" if providers else " No provider is configured: set COLONY_PROVIDERS to give agents tiers."
    raise AgentProfileError(f"Unknown model tier {tier!r}. This node's tiers are: {listed}.{hint}",
                            reason="unknown_tier", name=name, tiers=model_tiers(settings))


# -- reading ----------------------------------------------------------------------------------


def _cost(row: Row) -> CostModel:
    return CostModel(input_per_1k=row["price_input_per_1k"], output_per_1k=row["price_output_per_1k"],
                     per_tool_call=row["price_per_tool_call"], per_tool=row["price_per_tool"],
                     overhead=row["overhead"])


def _profile(name: str, row: Row | None, settings: Settings) -> AgentProfile:
    if row is None:
        return AgentProfile(name=name, persona=settings.persona, tier=DEFAULT_TIER, cost=CostModel(), active=True,
                            configured=False)
    return AgentProfile(name=name, persona=row["persona"], tier=row["tier"], cost=_cost(row), active=row["active"],
                        configured=True, created_at=row["created_at"], updated_at=row["updated_at"])


def _record(ident: Identity, profile: AgentProfile, ledger: LedgerStore) -> AgentRecord:
    account = ledger.account(ident.public_hex)
    return AgentRecord(**profile.model_dump(), public_hex=ident.public_hex, npub=ident.npub,
                       evm_address=ident.evm_address, description=ident.description, skills=list(ident.skills),
                       balance=account.balance if account else 0, held=account.held if account else 0)


def _identity(keyring: Keyring, name: str) -> Identity:
    try:
        return keyring.agent(name)
    except IdentityError as exc:
        raise AgentProfileError(f"No agent named {name!r} on this node; list them with: colony agents list",
                                reason="unknown", name=name) from exc


def get_agent(keyring: Keyring, name: str) -> AgentRecord:
    """One agent, configured or not, with its balance; `AgentProfileError` (``unknown``) if none."""
    ident = _identity(keyring, name)
    profile = _profile(name, _store.get_profile(keyring.db, name), keyring.settings)
    return _record(ident, profile, open_ledger_store(keyring.db, keyring.settings))


def list_agents(keyring: Keyring) -> list[AgentRecord]:
    """Every agent of the node (deactivated ones too), in the order they were created."""
    profiles = _store.list_profiles(keyring.db)
    ledger = open_ledger_store(keyring.db, keyring.settings)
    return [_record(i, _profile(i.name, profiles.get(i.name), keyring.settings), ledger)
            for i in keyring.all() if i.role == "agent"]


def profile_for_turn(keyring: Keyring, name: str) -> AgentProfile:
    """The profile a turn run as ``name`` uses; `AgentProfileError` if unknown or deactivated."""
    _identity(keyring, name)
    profile = _profile(name, _store.get_profile(keyring.db, name), keyring.settings)
    if not profile.active:
        raise AgentProfileError(f"Agent {name!r} is deactivated and takes no turns; reactivate it with: "
                                f"colony agents edit {name} --activate", reason="inactive", name=name)
    return profile


def card_facts(db: Database, name: str) -> tuple[bool, dict[str, Any]]:
    """(active, what its card adds under ``colony``): the tier and the cost model, when configured.

    An agent without a profile advertises no cost model: all-zero prices would read as "free".
    """
    row = _store.get_profile(db, name)
    if row is None:
        return True, {}
    cost = _cost(row)
    return bool(row["active"]), {
        "modelTier": row["tier"],
        "costModel": {"unit": "micro-credit", "inputPer1k": cost.input_per_1k, "outputPer1k": cost.output_per_1k,
                      "perToolCall": cost.per_tool_call, "perTool": dict(cost.per_tool), "overhead": cost.overhead},
    }


# -- writing ----------------------------------------------------------------------------------


def _values(profile: AgentProfile) -> dict[str, Any]:
    c = profile.cost
    return {"name": profile.name, "persona": profile.persona, "tier": profile.tier, "active": profile.active,
            "price_input_per_1k": c.input_per_1k, "price_output_per_1k": c.output_per_1k,
            "price_per_tool_call": c.per_tool_call, "price_per_tool": dict(c.per_tool), "overhead": c.overhead}


def _save(db: Database, profile: AgentProfile, configured: bool) -> None:
    values = _values(profile)
    if not (_store.update_profile(db, values) if configured else _store.insert_profile(db, values)):
        raise AgentProfileError(f"Agent {profile.name!r} changed while it was being saved; try again.",
                                reason="exists", name=profile.name)


def create_agent(keyring: Keyring, spec: AgentSpec) -> AgentRecord:
    """A new agent: its identity (keys, EVM account) and its profile, in one transaction.

    Raises `AgentProfileError`: ``exists`` when the name is taken (two creating the same name at
    once: one wins, the other gets this), ``unknown_tier``, ``invalid``.
    """
    tier = resolve_tier(spec.tier, keyring.settings, spec.name)
    profile = AgentProfile(name=spec.name, persona=spec.persona, tier=tier, cost=spec.cost, active=True,
                           configured=True)
    try:
        keyring.create_agent(spec.name, skills=spec.skills, description=spec.description,
                             then=lambda: _save(keyring.db, profile, configured=False))
    except IdentityError as exc:
        if exc.reason == "exists":
            raise AgentProfileError(
                f"An agent or identity named {spec.name!r} already exists on this node; choose another name, or "
                f"change that agent with: colony agents edit {spec.name}", reason="exists", name=spec.name) from exc
        raise AgentProfileError(str(exc), reason="invalid", name=spec.name) from exc
    return get_agent(keyring, spec.name)


def edit_agent(keyring: Keyring, name: str, patch: AgentPatch) -> AgentRecord:
    """Change an active agent's profile, skills or description (an agent without a profile gets one).

    The read and the write are one transaction, so two edits of different fields both land.
    Raises `AgentProfileError`: ``unknown``, ``inactive`` (reactivate first), ``unknown_tier``.
    """
    _identity(keyring, name)
    tier = None if patch.tier is None else resolve_tier(patch.tier, keyring.settings, name)
    with keyring.db.tx():
        row = _store.get_profile(keyring.db, name)
        current = _profile(name, row, keyring.settings)
        if not current.active:
            raise AgentProfileError(f"Agent {name!r} is deactivated; reactivate it before editing it: "
                                    f"colony agents edit {name} --activate", reason="inactive", name=name)
        cost = current.cost if patch.cost is None else CostModel.model_validate(
            {**current.cost.model_dump(), **patch.cost.model_dump(exclude_none=True)})
        changed = current.model_copy(update={"persona": patch.persona or current.persona,
                                             "tier": tier or current.tier, "cost": cost})
        _save(keyring.db, changed, configured=row is not None)
        if patch.skills is not None or patch.description is not None:
            try:
                keyring.update_agent(name, skills=patch.skills, description=patch.description)
            except IdentityError as exc:
                raise AgentProfileError(str(exc), reason="invalid", name=name) from exc
    return get_agent(keyring, name)


def _set_active(keyring: Keyring, name: str, active: bool) -> AgentRecord:
    _identity(keyring, name)
    with keyring.db.tx():
        row = _store.get_profile(keyring.db, name)
        current = _profile(name, row, keyring.settings)
        if current.active != active:  # activating an agent without a profile: nothing to store
            _save(keyring.db, current.model_copy(update={"active": active}), configured=row is not None)
    return get_agent(keyring, name)


def deactivate_agent(keyring: Keyring, name: str) -> AgentRecord:
    """Take an agent out of service, keeping its identity, wallet and history (see the module
    docstring for why nothing is deleted). Deactivating a deactivated agent changes nothing."""
    return _set_active(keyring, name, False)


def activate_agent(keyring: Keyring, name: str) -> AgentRecord:
    """Put a deactivated agent back in service, with the profile it had."""
    return _set_active(keyring, name, True)

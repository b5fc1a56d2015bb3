"""A node: the services one `colony` process runs, wired together in one place.

Surfaces (CLI, server, ACP) build a `Node` from `Settings` and ask it for an `Agent`; nothing
else constructs the database, the tool executor or the model cascade.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from typing import TYPE_CHECKING

from colony.agent.loop import Agent, RunDeps, current_turn
from colony.cognition import Substrate, build_substrate
from colony.config import Settings
from colony.llm.cascade import CallRecord, ProviderCascade
from colony.llm.detect import build_model
from colony.llm.model import Model
from colony.memory import Memory, open_memory
from colony.store import Database, open_database
from colony.store.audit import LlmCallRecord
from colony.store.backup import BackupInfo, last_backup
from colony.store.engine import open_engine
from colony.store.home import prepare_home
from colony.store.records import RecordStore, open_records
from colony.tools.approval import Approver, deny_all
from colony.tools.builtin import builtin_registry
from colony.tools.middleware import ToolExecutor
from colony.tools.registry import ToolRegistry
from colony.tools.workspace import Workspace

if TYPE_CHECKING:
    from colony.cartridges import Cartridges
    from colony.identity import Keyring
    from colony.store.pg import PgDatabase

__all__ = ["Node"]


class Node:
    """Database, workspace, tools and (lazily) the model cascade of one node."""

    def __init__(
        self, settings: Settings, *, approver: Approver = deny_all, registry: ToolRegistry | None = None
    ) -> None:
        self.settings = settings
        # Owner-only, and one clear DataDirectoryError (exit 4) when COLONY_HOME cannot be used.
        prepare_home(settings.home)
        self.db: Database = open_database(settings.db_path)
        #: Sessions, turns, messages and the audit: in ``db``, or on PostgreSQL when a URL is set.
        self.records: RecordStore = open_records(self.db, settings)
        self.workspace = Workspace(settings.workspace)
        self.registry = registry if registry is not None else builtin_registry()
        from colony.market.gov_views import agent_tool_tier  # governance sits above the tools

        # An agent's own tool tiers, set by executed governance proposals, read at every call from
        # governance's tables: in ``db``, or on PostgreSQL with the records when a URL is set.
        self.executor = ToolExecutor(self.registry, settings, self.records, approver=approver,
                                     agent_tiers=functools.partial(agent_tool_tier, open_engine(self.db, settings),
                                                                   self.db))
        self._model: ProviderCascade | None = None
        self._memory: Memory | None = None
        self._memory_lock = threading.Lock()
        self._cognition: Substrate | None = None
        if settings.cognition_enabled:  # the node owns the substrate; the executor reports every call to it
            self._cognition = build_substrate(self.db, settings, memory=lambda: self.memory)
            self.executor.observers.append(self._cognition)
            # Deployed cognitive cartridges take their place behind the substrate's interfaces.
            from colony.cartridges.cognitive import install_all

            install_all(self._cognition, self.cartridges)

    @property
    def deps(self) -> RunDeps:
        return RunDeps(records=self.records, executor=self.executor, workspace=self.workspace, settings=self.settings)

    @property
    def cascade(self) -> ProviderCascade | None:
        """The model cascade if it has been built (health reads this; it never probes)."""
        return self._model

    async def model(self) -> ProviderCascade:
        """The provider cascade, built on first use (it may probe local endpoints)."""
        if self._model is None:
            model = await build_model(self.settings, on_call=self._record_failed_attempt)
            for health in model.health():
                model.seed_usage(health.name, self.records.recent_call_ages(health.name))
            self._model = model
        return self._model

    @property
    def memory(self) -> Memory:
        """The node's memory, opened on first use (it loads the embedding model once)."""
        with self._memory_lock:  # two first requests at once must not load the model twice
            if self._memory is None:
                self._memory = open_memory(self.db, self.settings)
            return self._memory

    @property
    def cognition(self) -> Substrate | None:
        """The cognitive substrate, or None when ``cognition_enabled`` is off."""
        return self._cognition

    @functools.cached_property
    def cartridges(self) -> Cartridges:
        """The node's cartridges (sandboxed programs served at /c/{slug}); built on first use."""
        from colony.cartridges import Cartridges

        return Cartridges(self.db, self.settings)

    @property
    def pg(self) -> PgDatabase:
        """The PostgreSQL pool of ``COLONY_DATABASE_URL``, connected and migrated on first use.

        The process-wide pool of `colony.store.pg.shared`: the stores that live on PostgreSQL
        share it with call sites that have only `Settings`. Raises `ConfigError` when no URL is
        set and `StoreError` when the server cannot be used.
        """
        from colony.store.pg.shared import require_pg  # psycopg is imported only when a URL is set

        return require_pg(self.settings)

    @functools.cached_property
    def keyring(self) -> Keyring:
        """The node's and its agents' identities (`colony.identity`): created on first use, keys unlocked
        on demand. `colony up` calls ``keyring.ensure()`` at start, so a missing passphrase stops it there."""
        from colony.identity import Keyring

        return Keyring(self.db, self.settings)

    def last_backup(self) -> BackupInfo | None:
        """The newest backup recorded for this node (the health page shows it; None if never)."""
        return last_backup(self.settings.home)

    async def agent(self, model: Model | None = None, *, name: str | None = None) -> Agent:
        """The agent a turn runs as.

        Without ``name``: the node's default agent as the settings describe it (``COLONY_PERSONA``,
        the whole cascade). With ``name``: that agent of the node as its profile describes it
        (`colony.market.profiles`): its persona, and its model tier — the cascade narrowed to one
        provider (`ProviderCascade.only`), or the whole cascade for ``default``. An explicit
        ``model`` (tests, demos) replaces the cascade either way.

        Raises:
            AgentProfileError: no agent of that name, or it is deactivated.
            ConfigError: its tier names a provider this node's cascade does not have.
        """
        # Opening the memory loads the embedding model (~0.4 s the first time): in a worker thread,
        # so the first turn does not stall every other coroutine of the node (heartbeats, streams).
        memory = self._memory if self._memory is not None else await asyncio.to_thread(lambda: self.memory)
        if name is None:
            return Agent.from_settings(
                model if model is not None else await self.model(), self.settings, memory=memory,
                cognition=self._cognition,
            )
        from colony.market.profiles import DEFAULT_TIER, profile_for_turn  # the market sits above the loop

        profile = profile_for_turn(self.keyring, name)
        if model is None:
            cascade = await self.model()
            model = cascade if profile.tier == DEFAULT_TIER else cascade.only(profile.tier)
        agent = Agent.from_settings(model, self.settings, memory=memory, cognition=self._cognition)
        return dataclasses.replace(agent, name=name, persona=profile.persona)

    def _record_failed_attempt(self, rec: CallRecord) -> None:
        # Successful calls are recorded by the loop with their tokens; failed attempts only
        # exist here, and they matter for rate limits per day and for health.
        if rec.outcome == "ok":
            return
        turn = current_turn.get()
        self.records.record_llm_call(LlmCallRecord(
            session_id=turn[0] if turn else None, turn_id=turn[1] if turn else None,
            provider=rec.provider, model=rec.model, prompt_tokens=0, completion_tokens=0,
            latency_ms=rec.latency_ms, outcome="error", error=rec.error,
        ))

    async def aclose(self) -> None:
        if self._model is not None:
            await self._model.aclose()
            self._model = None
        if self.settings.database_url is not None:
            from colony.store.pg.shared import close_for

            close_for(self.settings)
        self.db.close()

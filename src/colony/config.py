"""Configuration: `COLONY_*` environment variables and an optional `.env`, read once into `Settings`.

Secrets (API keys) are `SecretStr` so they never show up in a repr, a log line or the database.
One data directory, ``COLONY_HOME`` (default ``~/.colony``), holds the node's database and files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from colony.payments.policy import SpendPolicy

__all__ = ["ApprovalTier", "McpServerConfig", "ProviderConfig", "Settings", "load_settings"]

ApprovalTier = Literal["allow", "ask", "auto"]

#: Tools that change the world ask a person first; reads are allowed; commands are approved
#: automatically only when they match the low-risk rule (see `tools.approval`).
DEFAULT_TOOL_POLICY: dict[str, ApprovalTier] = {
    "read_file": "allow",
    "list_dir": "allow",
    "search_files": "allow",
    "http_get": "allow",
    "write_file": "ask",
    "patch_file": "ask",
    "run_command": "auto",
    "memory_recall": "allow",
    "memory_store": "allow",
    "task_status": "allow",  # MCP: reading a task; task_create asks (the fallback tier)
    "cartridge_list": "allow",
    "cartridge_test": "allow",  # a sandboxed dry run; deploy and rollback ask (the fallback tier)
    "pay": "allow",  # governed by the agent's spend policy, which asks a person above its thresholds
}


class ProviderConfig(BaseModel):
    """One OpenAI-compatible endpoint in the provider cascade (tried in list order)."""

    name: str
    base_url: str
    model: str
    api_key: SecretStr | None = None
    requests_per_minute: int | None = Field(default=None, ge=1)
    requests_per_day: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)


class McpServerConfig(BaseModel):
    """An external MCP server whose tools the node offers its agents (editor/ecosystem, A5).

    Either ``command`` (a stdio server the node starts) or ``url`` (streamable HTTP). Its tools
    are registered as ``mcp__<name>__<tool>`` and governed like built-in tools (tier: ``ask``
    unless ``tool_policy`` says otherwise).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    timeout_s: float = Field(default=30.0, gt=0, description="per tool call")
    connect_timeout_s: float = Field(default=15.0, gt=0)


class PeerLedger(BaseModel):
    """Another node's ledger: its node key (the credits' asset) and where its facilitator answers."""

    model_config = ConfigDict(extra="forbid")

    ledger: str = Field(pattern=r"^[0-9a-f]{64}$")
    url: str = Field(pattern=r"^https?://[^/\s?#]+(/[^\s?#]*)?$")


class PriceConfig(BaseModel):
    """A priced route: an SDK route pattern (``[METHOD ]/path``, ``*`` wildcards) and what it costs."""

    model_config = ConfigDict(extra="forbid")

    route: str = Field(min_length=2, max_length=200, pattern=r"^((GET|POST|PUT|PATCH|DELETE) )?/[A-Za-z0-9._~/*:-]*$")
    #: Credits, as text ("0.05", "50000u"); parsed to integer micro-credits, never a float.
    credits: str | None = Field(default=None, max_length=32)
    #: Atomic units of the EVM rail's token (USDC: 10000 = $0.01).
    evm_amount: int | None = Field(default=None, gt=0)
    #: The agent that is paid (default: the node's default agent).
    pay_to: str | None = Field(default=None, max_length=64)
    description: str = Field(default="", max_length=200)


class Settings(BaseSettings):
    """Every knob of a node. Environment: ``COLONY_<FIELD>``; nested JSON for lists and dicts."""

    model_config = SettingsConfigDict(
        env_prefix="COLONY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".colony")
    workspace: Path = Field(default_factory=Path.cwd)
    #: Unset: everything lives in $COLONY_HOME/colony.db (SQLite, the embedded default). A
    #: ``postgresql://user:pass@host:port/db`` URL puts the node's task queue on that PostgreSQL
    #: server (psycopg 3, ``pip install 'colony[postgres]'``), so many nodes can share one queue.
    #: A secret: the URL usually carries the password.
    database_url: SecretStr | None = None

    # --- model (A1) -------------------------------------------------------------------------
    model_base_url: str | None = None
    model_api_key: SecretStr | None = None
    model_name: str | None = None
    providers: list[ProviderConfig] = Field(default_factory=list)
    autodetect_local_models: bool = True
    model_timeout_s: float = Field(default=120.0, gt=0)
    model_max_retries: int = Field(default=2, ge=0, le=10)
    retry_base_delay_s: float = Field(default=0.5, ge=0)
    model_circuit_failures: int = Field(default=3, ge=1)
    model_circuit_cooldown_s: float = Field(default=30.0, ge=0)
    temperature: float | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)

    # --- agent loop (A2) --------------------------------------------------------------------
    max_tool_calls_per_turn: int = Field(default=12, ge=0)
    max_model_requests_per_turn: int = Field(default=16, ge=1)
    context_tokens: int = Field(default=8192, ge=512)
    #: Put the perception summary into the system prompt (it always goes to the audit record).
    #: Switchable because its effect on answer quality depends on the model; measure with evals.
    perception_in_context: bool = True
    persona: str = "You are Colony, a careful local agent. Use tools to act; do not describe a tool call, make it."

    # --- memory (M) ---------------------------------------------------------------------------
    #: "static": the model2vec distillation of MiniLM (fast, NumPy only); "minilm": the full
    #: sentence-transformers model (slower, needs torch); "none": no semantic channel.
    memory_embedder: Literal["static", "minilm", "none"] = "static"
    memory_freshness_per_day: float = Field(default=0.01, ge=0, description="fusion age decay rate")
    memory_decay_per_day: float = Field(default=0.01, ge=0, description="confidence decay of unverified memories")
    memory_decay_floor: float = Field(default=0.05, ge=0, le=1)
    memory_context_chars: int = Field(default=4000, ge=0)
    memory_context_items: int = Field(default=6, ge=0, le=50)
    memory_record_episodes: bool = True

    # --- tools and governance (A4) ----------------------------------------------------------
    tool_policy: dict[str, ApprovalTier] = Field(default_factory=dict)
    tool_timeout_s: float = Field(default=30.0, gt=0)
    tool_circuit_failures: int = Field(default=3, ge=1)
    tool_circuit_cooldown_s: float = Field(default=60.0, ge=0)
    tool_max_in_flight: int = Field(default=4, ge=1)
    tool_rate_limit: int = Field(default=60, ge=1, description="calls per tool per window")
    tool_rate_window_s: float = Field(default=60.0, gt=0)
    approval_timeout_s: float = Field(default=120.0, gt=0)
    tool_output_limit: int = Field(default=16_000, ge=256, description="characters kept from a tool result")
    max_tool_argument_bytes: int = Field(default=1_000_000, ge=1024)
    command_allowlist: list[str] = Field(
        default_factory=lambda: [
            "ls", "cat", "head", "tail", "wc", "grep", "find", "echo", "pwd", "git", "python", "python3",
            "pytest", "sort", "uniq", "diff", "date", "true", "false", "sleep", "stat", "du", "tr", "cut",
        ]
    )
    command_blocklist: list[str] = Field(
        default_factory=lambda: [
            "sudo", "su", "rm -rf /", "mkfs", "dd", "shutdown", "reboot", "curl", "wget", "nc", "ssh",
            "scp", "chmod 777", "git push --force", "git push -f", ":(){",
        ]
    )
    auto_approve_commands: list[str] = Field(
        default_factory=lambda: ["ls", "cat", "head", "tail", "wc", "grep", "pwd", "echo", "git status",
                                 "git diff", "git log", "date", "stat", "du", "true"]
    )
    http_allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost", "::1"])

    # --- cognition (C) and evals (B) -----------------------------------------------------------
    #: The nine-module cognitive substrate in the loop. Off by default: whether it helps depends
    #: on the model, so measure it with `colony eval ab` before turning it on.
    cognition_enabled: bool = False
    #: Modules switched off for ablation (names as in `colony cognition status`), e.g. ["lessons"].
    cognition_disabled_modules: list[str] = Field(default_factory=list)
    cognition_surprise_ema_alpha: float = Field(default=0.3, gt=0, le=1)
    cognition_broadcast_threshold: float = Field(default=0.4, ge=0, le=1)
    cognition_blackboard_max_entries: int = Field(default=30, ge=1, le=500)
    cognition_blackboard_max_age_turns: int = Field(default=8, ge=1)
    cognition_hrr_dim: int = Field(default=1024, ge=64, le=8192)
    #: Energy budget per turn: below 10% of either left, the agent is told to finish briefly.
    cognition_energy_tokens: int = Field(default=120_000, ge=1000)
    cognition_energy_tool_calls: int = Field(default=24, ge=1)
    cognition_speculative_min_calls: int = Field(default=3, ge=2)
    cognition_speculative_surprise_delta_max: float = Field(default=0.25, gt=0, le=1)
    cognition_speculative_max_failure_share: float = Field(default=0.5, gt=0, le=1)
    #: Property-level failures a new eval run may add over the baseline before it is a regression.
    eval_regression_tolerance: int = Field(default=2, ge=0)

    # --- editor and tool-ecosystem protocols: ACP and MCP (A5) --------------------------------
    #: External MCP servers, e.g. COLONY_MCP_SERVERS='[{"name":"files","command":"npx","args":[...]}]'.
    mcp_servers: list[McpServerConfig] = Field(default_factory=list)

    # --- durable tasks and autonomy (T) ---------------------------------------------------------
    #: `colony up` also runs the autonomy loop (claim and work queued tasks) in-process.
    autonomy_enabled: bool = False
    autonomy_interval_s: float = Field(default=5.0, gt=0, description="idle wait between queue checks")
    task_lease_ttl_s: float = Field(default=60.0, gt=0, description="a worker's lease; renewed every third")
    task_reap_dead_local_workers: bool = Field(
        default=True, description="take back at once the leases of this host's worker processes that no longer exist "
                                  "(a restarted node resumes its tasks without waiting out the lease); turn off when "
                                  "machines that share one PostgreSQL queue also share a host name")
    task_backoff_base_s: float = Field(default=2.0, ge=0)
    task_backoff_max_s: float = Field(default=300.0, ge=0)
    #: Checkpoints of finished tasks are kept whole (replayable) this long, then summarized.
    task_checkpoint_retention_days: float = Field(default=7.0, ge=0)
    #: How often the autonomy loop runs memory curation; 0 turns it off.
    memory_curate_interval_s: float = Field(default=3600.0, ge=0)

    # --- the marketplace (E) --------------------------------------------------------------------
    #: `colony up` also runs the market worker in-process: the node's agents bid on open auctions,
    #: awards are made at the reveal deadline, winners run their tasks, results are verified and paid.
    market_enabled: bool = False
    market_interval_s: float = Field(default=2.0, gt=0, le=3600, description="between market worker passes")
    #: Default phase lengths of a new auction (seconds; a poster may choose others).
    market_commit_s: int = Field(default=60, ge=1, le=86_400)
    market_reveal_s: int = Field(default=30, ge=1, le=86_400)
    #: Default bond per sealed bid, in micro-credits: forfeited to the treasury when a bid is never revealed.
    market_bond: int = Field(default=100_000, ge=0, le=2**53 - 1)
    #: Mint the early-contributor bonus on verified work (`colony.market.contribution`; RuVector's
    #: curve: 10× at genesis, 1× after millions of CPU-hours). Off: minting grows the credit supply.
    market_contribution: bool = False
    #: Announce this node's auctions to the colony's trusted members and take part in theirs
    #: (`colony.federation.remote_market`): their agents bid here, ours there, winners run at home.
    market_federated: bool = True
    #: A member's winner must deliver its result this long after the award, or the poster gives the award up and re-auctions.
    market_result_timeout_s: int = Field(default=3600, ge=1, le=30 * 86_400)
    #: A member releases its bids in a remote auction whose award has not come this long after the reveal deadline.
    market_award_grace_s: int = Field(default=300, ge=1, le=30 * 86_400)

    # --- federation (F) -------------------------------------------------------------------------
    #: `colony up` runs the federation loop (`colony.federation.loop`): announcements to the trusted
    #: nodes, the per-peer outbox, the queen rule. Off: the node neither sends nor follows a queen.
    federation_enabled: bool = True
    #: Seconds between announcements to each peer; a node silent for 3× this is not live.
    federation_heartbeat_s: float = Field(default=5.0, ge=0.1, le=600)
    #: Every this many heartbeats the loop pulls each live member's ledger and reputation into this
    #: node's replica (`colony.federation.replicate`): 30 s at the default heartbeat.
    federation_sync_every: int = Field(default=6, ge=1, le=10_000)
    #: Every this many heartbeats a federated-averaging step runs (`colony.federation.learn_task`):
    #: members send their predictor's update to the queen, the queen closes the round when it can.
    federation_learn_every: int = Field(default=12, ge=1, le=10_000)
    #: Trust a node that a member this node trusts directly (added, spawned, invited) introduces
    #: (`colony.federation.introduce`), so a colony becomes a mesh: spawned siblings reach each other.
    #: Never transitively, never a removed or convicted key. Off: introductions are refused and logged.
    federation_accept_introductions: bool = True

    # --- the node server (A5, O) -------------------------------------------------------------
    #: Host names (or host:port) clients use to reach `colony up --allow-remote`, e.g.
    #: COLONY_SERVER_ALLOWED_HOSTS='["colony.lan", "192.168.1.20"]'. The loopback names and the bound
    #: address are always allowed; any other Host header is refused (DNS rebinding protection).
    server_allowed_hosts: list[str] = Field(default_factory=list)

    # --- identity (P) -------------------------------------------------------------------------
    #: The passphrase that encrypts the node's and agents' keys (Web3 Secret Storage keyfiles in
    #: colony.db). Unset: read from ``key_passphrase_file``; neither: a generated one is kept in
    #: $XDG_CONFIG_HOME/colony/keys/, outside COLONY_HOME, so a copy of the data holds no usable key.
    key_passphrase: SecretStr | None = None
    key_passphrase_file: Path | None = None
    #: The URL peers reach this node at (e.g. https://colony.example.org behind a proxy): agent
    #: cards list it and NIP-98 requests must sign it. Unset: the address each request came to.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/\s?#]+(/[^\s?#]*)?$")
    #: TESTS ONLY: new keys get scrypt n=2**10 instead of 2**18 — fast and weak. Logged as a
    #: warning whenever it is used; never set it on a real node.
    insecure_test_kdf: bool = False

    # --- payments over x402 (P): the charging side ----------------------------------------------
    #: Priced routes from configuration (``colony price set`` and ``colony cartridge deploy --price``
    #: add more at run time), e.g. COLONY_X402_ROUTES='[{"route": "/c/weather/*", "credits": "0.05"}]'.
    x402_routes: list[PriceConfig] = Field(default_factory=list)
    #: HMAC-SHA256 key that other nodes sign their /x402/verify and /x402/settle bodies with
    #: (header ``X-Colony-Signature: sha256=<hex>``). Unset: only NIP-98 from known peers is accepted.
    x402_facilitator_secret: SecretStr | None = None
    #: Other nodes whose credits this node accepts, settled on their ledgers through their
    #: facilitators (NIP-98 signed by this node's key; they list this node the same way), e.g.
    #: COLONY_X402_PEER_LEDGERS='[{"ledger": "<64-hex node key>", "url": "http://127.0.0.1:8701"}]'.
    x402_peer_ledgers: list[PeerLedger] = Field(default_factory=list)
    #: How long a payment authorisation may stay open (x402 ``maxTimeoutSeconds``).
    x402_max_timeout_s: int = Field(default=300, ge=10, le=300)
    #: The EVM rail (x402 ``exact``, EIP-3009): a JSON-RPC URL, the chain id, the token contract and
    #: its EIP-712 domain name/version (USDC on Base Sepolia: chain 84532, "USDC", "2"). All four or none.
    x402_evm_rpc_url: str | None = Field(default=None, pattern=r"^(https?|wss?)://\S+$")
    x402_evm_chain_id: int | None = Field(default=None, ge=1)
    x402_evm_token: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    x402_evm_token_name: str | None = None
    x402_evm_token_version: str | None = None
    x402_evm_token_decimals: int = Field(default=6, ge=0, le=36)

    # --- observability (O) ------------------------------------------------------------------
    log_level: str = "INFO"
    #: One JSON object per line (for collectors); False gives plain text for a terminal.
    log_json: bool = True
    #: OTLP/HTTP collector, e.g. http://127.0.0.1:4318; unset means tracing is off (no cost).
    otlp_endpoint: str | None = None

    # --- sandbox, cartridges and the coding benchmark (S, B) ------------------------------------
    #: Where agent-written Python runs: "wasm" (CPython for WASI), "process" (bubblewrap) or "auto".
    sandbox_python_tier: Literal["auto", "wasm", "process"] = "auto"
    #: Serialized WASM modules (python.wasm takes seconds to compile); default $COLONY_HOME/cache/wasm.
    sandbox_cache_dir: Path | None = None
    cartridge_timeout_s: float = Field(default=2.0, gt=0, le=300)
    cartridge_fuel: int = Field(default=20_000_000_000, ge=1_000_000)
    cartridge_memory_mb: int = Field(default=128, ge=2, le=4096)
    cartridge_max_response_bytes: int = Field(default=1_000_000, ge=1024)
    cartridge_max_kv_bytes: int = Field(default=1_000_000, ge=1024, description="KV bytes per cartridge")
    #: Serve /c/{slug} without the node token (a public web app); off by default.
    cartridges_public: bool = False
    #: Automatic rollback: after this many calls, a version failing at this rate or more is replaced
    #: by the version before it.
    cartridge_rollback_min_calls: int = Field(default=10, ge=1)
    cartridge_rollback_error_rate: float = Field(default=0.5, gt=0, le=1)
    #: ... and a version whose fitness is this much below its predecessor's is rolled back too.
    cartridge_rollback_fitness_drop: float = Field(default=0.1, ge=0)

    # Paying side (P): spend policies
    #: What each agent may pay for over x402 (the ``pay`` tool, ``colony pay``, POST /api/v1/payments/pay),
    #: keyed by agent name, e.g. COLONY_SPEND_POLICIES='{"colony": {"hosts": ["api.example.org"], "assets":
    #: [{"network": "x402:colony", "asset": "@node", "max_per_payment": 500000, "max_per_day": 5000000,
    #: "ask_above": 100000}]}}' (amounts: integers of atomic units). See `colony.payments.policy`.
    spend_policies: dict[str, SpendPolicy] = Field(default_factory=dict)
    #: The policy of agents not in ``spend_policies``. By default nobody may be paid (no hosts, no payees);
    #: its assets: this node's credits, at most 1 credit a payment and 10 a day, asking above 0.25.
    default_spend_policy: SpendPolicy = Field(default_factory=SpendPolicy)

    @field_validator("home", "workspace", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        # SQLite needs no URL (it is the default); anything else is a typo we refuse at start-up.
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("COLONY_DATABASE_URL must be a postgresql://user:password@host:port/db URL "
                             "(unset it to keep the node's SQLite database)")
        return value

    @property
    def db_path(self) -> Path:
        return self.home / "colony.db"

    def tier_for(self, tool: str) -> ApprovalTier:
        """The approval tier of a tool: explicit config, then the default, then ask (fail closed)."""
        return self.tool_policy.get(tool) or DEFAULT_TOOL_POLICY.get(tool) or "ask"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and `.env`, with keyword overrides (used by the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]

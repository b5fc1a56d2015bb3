"""Configuration: `COLONY_*` environment variables and an optional `.env`, read once into `Settings`.

Secrets (API keys) are `SecretStr` so they never show up in a repr, a log line or the database.
One data directory, ``COLONY_HOME`` (default ``~/.colony``), holds the node's database and files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ApprovalTier", "ProviderConfig", "Settings", "load_settings"]

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


class Settings(BaseSettings):
    """Every knob of a node. Environment: ``COLONY_<FIELD>``; nested JSON for lists and dicts."""

    model_config = SettingsConfigDict(
        env_prefix="COLONY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".colony")
    workspace: Path = Field(default_factory=Path.cwd)

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

    # --- observability (O) ------------------------------------------------------------------
    log_level: str = "INFO"
    #: One JSON object per line (for collectors); False gives plain text for a terminal.
    log_json: bool = True
    #: OTLP/HTTP collector, e.g. http://127.0.0.1:4318; unset means tracing is off (no cost).
    otlp_endpoint: str | None = None

    @field_validator("home", "workspace", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def db_path(self) -> Path:
        return self.home / "colony.db"

    def tier_for(self, tool: str) -> ApprovalTier:
        """The approval tier of a tool: explicit config, then the default, then ask (fail closed)."""
        return self.tool_policy.get(tool) or DEFAULT_TOOL_POLICY.get(tool) or "ask"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and `.env`, with keyword overrides (used by the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]

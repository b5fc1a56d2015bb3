"""Colony's exception tree. Every error Colony raises on purpose derives from `ColonyError`.

Exceptions carry data (status, tool name, provider) and a message that says how to fix the
problem; they never log. Library errors are mapped at the boundary with ``raise ... from exc``.

    ColonyError
    ├── ConfigError                 bad or missing configuration
    │   └── KeysLockedError         the key passphrase is missing or does not decrypt the node's keys
    ├── StoreError                  the database
    │   ├── SchemaTooNewError       database written by a newer Colony
    │   ├── DataDirectoryError      COLONY_HOME cannot be created or used
    │   ├── DatabaseBusyError       a restore and a running node both want the database
    │   └── BackupError             a backup cannot be written, or a file cannot be restored
    ├── ModelError                  talking to a model
    │   ├── ModelUnavailableError   every provider failed, rate-limited or open-circuited
    │   ├── ModelResponseError      a provider answered with something unusable
    │   └── ModelNotSupportedError  an optional feature the model cannot do
    ├── ToolError                   a tool call that did not produce a result
    │   ├── UnknownToolError
    │   ├── ToolArgumentsError      arguments failed schema validation
    │   ├── ToolDeniedError         approval denied, timed out, or policy refused
    │   ├── ToolUnavailableError    circuit open or rate limited
    │   ├── ToolTimeoutError
    │   ├── WorkspaceError          path outside the workspace root
    │   └── PostconditionError      a write tool's re-read disagrees with what it wrote
    ├── TurnCancelledError          a running turn was cancelled
    ├── TaskError                   the durable task engine
    │   ├── TaskNotFoundError
    │   ├── IllegalTransitionError  a state change the transition table forbids
    │   ├── LeaseLostError          the caller's lease expired or was taken over
    │   ├── DependencyCycleError    a dependency that would make tasks wait on each other
    │   └── TaskBudgetExceededError a task spent its token or tool-call budget
    ├── IdentityError               identities: an unknown or taken name, a card that does not verify
    │   └── Nip98Error              a NIP-98 Authorization header was refused (``reason`` names the check)
    ├── LedgerError                 the credit ledger: refused payments, bad authorisations, holds
    │                               (its branch is drawn in `colony.ledger.errors`)
    ├── MarketError                 the marketplace: events that do not verify, closed auctions,
    │                               agent profiles (defined in `colony.market.events`)
    └── SandboxError                sandboxed code (WASM and process tiers)
        ├── SandboxUnavailableError a sandbox tier cannot run on this machine
        └── CartridgeError          a cartridge cannot be found, compiled, deployed or called
"""

from __future__ import annotations

__all__ = [
    "BackupError",
    "CartridgeError",
    "ColonyError",
    "ConfigError",
    "DataDirectoryError",
    "DatabaseBusyError",
    "DependencyCycleError",
    "IdentityError",
    "IllegalTransitionError",
    "KeysLockedError",
    "LeaseLostError",
    "ModelError",
    "ModelNotSupportedError",
    "ModelResponseError",
    "ModelUnavailableError",
    "Nip98Error",
    "PostconditionError",
    "SandboxError",
    "SandboxUnavailableError",
    "SchemaTooNewError",
    "StoreError",
    "TaskBudgetExceededError",
    "TaskError",
    "TaskNotFoundError",
    "ToolArgumentsError",
    "ToolDeniedError",
    "ToolError",
    "ToolTimeoutError",
    "ToolUnavailableError",
    "TurnCancelledError",
    "UnknownToolError",
    "WorkspaceError",
]


class ColonyError(Exception):
    """Root of every error Colony raises deliberately."""

    #: A short, stable, machine-readable code (used by the API and CLI exit codes).
    code: str = "colony_error"


class ConfigError(ColonyError):
    code = "config_error"


class KeysLockedError(ConfigError):
    """The node's keys exist (encrypted) but no passphrase was found, or it does not decrypt them.

    A configuration error (exit 3, HTTP 503): the fix is to supply the passphrase the node was
    created with. Colony never falls back to a plaintext key or a new identity.
    """

    code = "keys_locked"

    def __init__(self, message: str, *, looked_in: list[str] | None = None) -> None:
        #: Where the passphrase was looked for, in order (variable names and file paths, never values).
        self.looked_in = list(looked_in or [])
        super().__init__(message)


class StoreError(ColonyError):
    code = "store_error"


class SchemaTooNewError(StoreError):
    code = "schema_too_new"

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.path, self.found, self.supported = path, found, supported
        super().__init__(
            f"The database {path} has schema version {found}, but this Colony only knows up to "
            f"version {supported}. It was written by a newer Colony: upgrade Colony "
            f"(pip install -U colony) or point COLONY_HOME at another data directory."
        )


class DataDirectoryError(StoreError):
    """``COLONY_HOME`` (or the folder of a database) cannot be created or is not a directory."""

    code = "data_directory_error"

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


class DatabaseBusyError(StoreError):
    """A restore needs the database to itself, but a node has it open (or the other way round)."""

    code = "database_busy"

    def __init__(self, path: str, message: str, holders: list[int] | None = None) -> None:
        #: Process ids that hold the database open, when the operating system says (Linux).
        self.path, self.holders = path, list(holders or [])
        super().__init__(message)


class BackupError(StoreError):
    """A backup cannot be written, or a file offered to restore is not a usable Colony database."""

    code = "backup_error"

    def __init__(self, message: str, *, reason: str = "failed") -> None:
        #: ``exists`` (target taken), ``invalid`` (not a Colony database of a known schema),
        #: ``missing`` (nothing to back up or restore), ``failed`` (I/O or SQLite).
        self.reason = reason
        super().__init__(message)


class ModelError(ColonyError):
    code = "model_error"


class ModelUnavailableError(ModelError):
    code = "model_unavailable"

    def __init__(self, message: str, reasons: dict[str, str] | None = None) -> None:
        self.reasons = dict(reasons or {})
        super().__init__(message)


class ModelResponseError(ModelError):
    code = "model_bad_response"

    def __init__(
        self,
        message: str,
        provider: str = "",
        status: int | None = None,
        *,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        #: ``transient`` errors (connection refused, timeouts, 429, 5xx, truncated streams) are
        #: worth a retry with backoff; the others (401, 400, 404) are not.
        self.provider, self.status, self.transient = provider, status, transient
        #: Seconds the server asked us to wait (a 429's ``Retry-After``), when it said.
        self.retry_after = retry_after
        super().__init__(message)


class ModelNotSupportedError(ModelError):
    code = "model_not_supported"


class ToolError(ColonyError):
    code = "tool_error"

    def __init__(self, tool: str, message: str) -> None:
        self.tool = tool
        super().__init__(message)


class UnknownToolError(ToolError):
    code = "unknown_tool"


class ToolArgumentsError(ToolError):
    code = "invalid_arguments"

    def __init__(self, tool: str, message: str, errors: list[dict[str, object]] | None = None) -> None:
        self.errors = list(errors or [])
        super().__init__(tool, message)


class ToolDeniedError(ToolError):
    code = "denied"


class ToolUnavailableError(ToolError):
    code = "unavailable"


class ToolTimeoutError(ToolError):
    code = "timeout"


class WorkspaceError(ToolError):
    code = "outside_workspace"


class PostconditionError(ToolError):
    code = "postcondition_failed"


class TurnCancelledError(ColonyError):
    code = "cancelled"


class TaskError(ColonyError):
    code = "task_error"


class TaskNotFoundError(TaskError):
    code = "task_not_found"

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"No task {task_id}. List tasks with: colony tasks list")


class IllegalTransitionError(TaskError):
    code = "illegal_transition"

    def __init__(self, task_id: str, from_state: str, to_state: str, allowed: list[str]) -> None:
        self.task_id, self.from_state, self.to_state, self.allowed = task_id, from_state, to_state, allowed
        options = ", ".join(allowed) or "nothing (it is final)"
        super().__init__(
            f"Task {task_id} cannot go from {from_state} to {to_state}; from {from_state} it may go to {options}."
        )


class LeaseLostError(TaskError):
    code = "lease_lost"

    def __init__(self, task_id: str, reason: str) -> None:
        self.task_id, self.reason = task_id, reason
        super().__init__(
            f"The lease on task {task_id} is no longer held ({reason}); another worker may own it now. "
            "Stop working on it: its result would be refused."
        )


class DependencyCycleError(TaskError):
    code = "dependency_cycle"

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"Refused: these dependencies would form a cycle: {' → '.join(cycle)}.")


class TaskBudgetExceededError(TaskError):
    code = "budget_exhausted"


class IdentityError(ColonyError):
    """An identity cannot be found or created, or a signed card does not verify."""

    code = "identity_error"

    def __init__(self, message: str, *, reason: str = "invalid", name: str | None = None) -> None:
        #: ``unknown`` (no identity of that name), ``exists`` (the name is taken), ``invalid``
        #: (a bad name or a card that does not verify), ``forbidden`` (a card introduced by another key).
        self.reason, self.name = reason, name
        super().__init__(message)


class Nip98Error(IdentityError):
    """A NIP-98 ``Authorization: Nostr …`` header was refused; the request must do nothing."""

    code = "nip98_refused"

    def __init__(self, message: str, *, reason: str) -> None:
        #: Which check failed: ``missing``, ``malformed``, ``kind``, ``signature``, ``stale``,
        #: ``url``, ``method``, ``payload`` or ``replayed``.
        super().__init__(message, reason=reason)


class SandboxError(ColonyError):
    code = "sandbox_error"


class SandboxUnavailableError(SandboxError):
    code = "sandbox_unavailable"


class CartridgeError(SandboxError):
    code = "cartridge_error"

    def __init__(self, message: str, *, status: int = 400, slug: str | None = None) -> None:
        #: The HTTP status a surface should answer with (404 unknown, 409 conflict, 422 invalid, 502 failed).
        self.status, self.slug = status, slug
        super().__init__(message)

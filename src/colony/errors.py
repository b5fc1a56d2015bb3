"""Colony's exception tree. Every error Colony raises on purpose derives from `ColonyError`.

Exceptions carry data (status, tool name, provider) and a message that says how to fix the
problem; they never log. Library errors are mapped at the boundary with ``raise ... from exc``.

    ColonyError
    ├── ConfigError                 bad or missing configuration
    ├── StoreError                  the database
    │   └── SchemaTooNewError       database written by a newer Colony
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
    └── TurnCancelledError          a running turn was cancelled
"""

from __future__ import annotations

__all__ = [
    "ColonyError",
    "ConfigError",
    "ModelError",
    "ModelNotSupportedError",
    "ModelResponseError",
    "ModelUnavailableError",
    "PostconditionError",
    "SchemaTooNewError",
    "StoreError",
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

"""An agent's cost model, and what a task would cost it — integer micro-credits throughout.

A cost model has five prices, each a whole number of micro-credits (1 credit = 1,000,000):

- ``input_per_1k``: per 1,000 input (prompt) tokens;
- ``output_per_1k``: per 1,000 output (completion) tokens;
- ``per_tool_call``: per tool call, unless ``per_tool`` names the tool;
- ``per_tool``: prices of particular tools (a web fetch may cost more than reading a file);
- ``overhead``: a fixed amount per task (setting up, reporting, the risk of a retry).

The estimate of a task with *i* input tokens, *o* output tokens and calls *c_t* of each tool *t*::

    ceil(i × input_per_1k / 1000) + ceil(o × output_per_1k / 1000) + Σ_t c_t × price(t) + overhead

where price(t) is ``per_tool[t]`` if set, else ``per_tool_call``. Each token line is rounded up,
on its own, to a whole micro-credit: an agent bids from this number, and rounding down would let
it bid below its own cost (a thousand one-token tasks at 999 per 1K would each cost 0); rounding
each line keeps a breakdown's parts summing exactly to its total. The arithmetic is on Python
integers (exact at any size); no float ever touches an amount.

May import `colony.ledger.amounts` (the bound on one amount) and pydantic; nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from colony.ledger.amounts import MAX_AMOUNT

__all__ = ["MAX_TOOL_PRICES", "TOOL_NAME_PATTERN", "CostEstimate", "CostModel", "Price", "ToolName", "ToolPrices",
           "estimate"]

#: Tools a cost model may price one by one.
MAX_TOOL_PRICES = 64
#: What a tool name looks like (built-in ``read_file``, MCP ``mcp__server__tool``, ``web.fetch``).
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"



def _whole_number(value: Any) -> Any:
    """JSON's integers: ``5`` and ``5.0`` (the same number in JSON), never ``true``, ``"5"`` nor ``5.5``."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number of micro-credits, not true or false")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number of micro-credits")
        return int(value)
    return value


#: A price in micro-credits: a whole number from 0 to the ledger's largest amount. ``1.5``, ``"5"``
#: and ``true`` are refused, not coerced — a price is never a fraction or a string. (The bounds come
#: before the validator: that order keeps them in the JSON schema.)
Price = Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT), BeforeValidator(_whole_number)]
ToolName = Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]
#: Prices by tool name. The schema says ``additionalProperties: false`` as well as the key pattern:
#: without it a JSON-schema reader (a client generator, schemathesis) would take any other key,
#: with any value, for valid.
ToolPrices = Annotated[dict[ToolName, Price], Field(max_length=MAX_TOOL_PRICES,
                                                    json_schema_extra={"additionalProperties": False})]


class CostModel(BaseModel):
    """What an agent charges for its work, in micro-credits (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_1k: Price = Field(default=0, description="Micro-credits per 1,000 input tokens.")
    output_per_1k: Price = Field(default=0, description="Micro-credits per 1,000 output tokens.")
    per_tool_call: Price = Field(default=0, description="Micro-credits per tool call of a tool not in per_tool.")
    per_tool: ToolPrices = Field(default_factory=dict, description="Micro-credits per call of these tools, by name.")
    overhead: Price = Field(default=0, description="Micro-credits per task, whatever it uses.")

    def tool_price(self, tool: str) -> int:
        return self.per_tool.get(tool, self.per_tool_call)


class CostEstimate(BaseModel):
    """An estimate and its parts (micro-credits); ``total`` is their exact sum."""

    model_config = ConfigDict(frozen=True)

    input: int
    output: int
    tools: int
    overhead: int
    total: int


def _per_1k(tokens: int, price: int) -> int:
    """``ceil(tokens × price / 1000)`` on integers: ``-(-a // b)`` is ceiling division."""
    return -(-tokens * price // 1000)


def _count(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number ≥ 0, got {value!r}")
    return value


def estimate(cost: CostModel, *, input_tokens: int, output_tokens: int, tool_calls: int = 0,
             tools: Mapping[str, int] | None = None) -> CostEstimate:
    """What a task would cost an agent with ``cost``.

    Args:
        input_tokens: expected prompt tokens over the whole task (every request's, summed).
        output_tokens: expected completion tokens.
        tool_calls: expected calls of tools not known in advance (priced ``per_tool_call``).
        tools: expected calls by tool name (each priced ``per_tool[name]``, else ``per_tool_call``).

    Raises:
        ValueError: a count that is negative or not a whole number.
    """
    named = {name: _count(n, f"calls of {name!r}") for name, n in (tools or {}).items()}
    tool_cost = _count(tool_calls, "tool_calls") * cost.per_tool_call + sum(
        n * cost.tool_price(name) for name, n in named.items())
    parts = {
        "input": _per_1k(_count(input_tokens, "input_tokens"), cost.input_per_1k),
        "output": _per_1k(_count(output_tokens, "output_tokens"), cost.output_per_1k),
        "tools": tool_cost,
        "overhead": cost.overhead,
    }
    return CostEstimate(**parts, total=sum(parts.values()))

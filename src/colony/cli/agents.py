"""`colony agents`: the agents this node hosts — persona, skills, model tier, cost model, wallet.

An agent is an identity of its own (keys, EVM account: `colony identity`) with a profile
(`colony.market.profiles`). ``add`` makes both at once; ``remove`` deactivates, keeping the
identity, the credits and the history. Prices are whole micro-credits (1 credit = 1,000,000).

Exit codes: 0 ok · 1 refused (the name is taken, the agent is deactivated) · 2 bad arguments (an
unknown agent or tier, a value out of bounds) · 3 keys locked (passphrase missing or wrong) · 4 database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, fail, load, out, print_json, reporting
from colony.cli.identity import announce
from colony.config import Settings
from colony.identity import Keyring
from colony.ledger import format_amount
from colony.market.cost import CostModel, estimate
from colony.market.profiles import (
    AgentPatch,
    AgentProfileError,
    AgentRecord,
    AgentSpec,
    CostPatch,
    activate_agent,
    create_agent,
    deactivate_agent,
    edit_agent,
    get_agent,
    list_agents,
    model_tiers,
)
from colony.store import open_database

__all__ = ["agents_app"]

agents_app = typer.Typer(
    name="agents",
    help=(
        "The agents this node hosts: each with its own keys and wallet, a persona, skills, a model tier (which "
        "provider of the cascade it runs on) and a cost model in micro-credits.\n\n"
        "Exit codes: 0 ok · 1 refused · 2 bad arguments · 3 keys locked · 4 database."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

NameArg = Annotated[str, typer.Argument(metavar="NAME",
                                        help="The agent's name (1-32 lowercase letters, digits, - or _).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print as JSON (prices and balances in micro-credits).")]
PersonaOpt = Annotated[str | None, typer.Option("--persona", help="Who the agent is: its system prompt's opening.")]
PersonaFileOpt = Annotated[Path | None, typer.Option("--persona-file", help="Read the persona from this UTF-8 file.",
                                                     exists=True, dir_okay=False)]
TierOpt = Annotated[str | None, typer.Option("--tier", help="'default' (the whole cascade) or a provider's name or "
                                                            "index; `colony agents list` shows them.")]
SkillOpt = Annotated[list[str] | None, typer.Option("--skill", help="Something the agent is good at (repeat).")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="One line about the agent, on its card.")]
PriceIn = Annotated[int | None, typer.Option("--price-in", min=0, help="Micro-credits per 1,000 input tokens.")]
PriceOut = Annotated[int | None, typer.Option("--price-out", min=0, help="Micro-credits per 1,000 output tokens.")]
PriceTool = Annotated[int | None, typer.Option("--price-tool", min=0, help="Micro-credits per tool call.")]
PriceFor = Annotated[list[str] | None, typer.Option("--price-for", metavar="TOOL=N",
                                                    help="Micro-credits per call of one tool (repeat).")]
OverheadOpt = Annotated[int | None, typer.Option("--overhead", min=0, help="Micro-credits per task, fixed.")]


@contextmanager
def _keyring(settings: Settings) -> Iterator[Keyring]:
    """The node's identities (created or unlocked as `colony identity` does), errors as exit codes."""
    with reporting():
        db = open_database(settings.db_path)
        try:
            keyring = Keyring(db, settings)
            announce(keyring.ensure(announce=False))
            try:
                yield keyring
            except AgentProfileError as exc:
                code = ExitCode.FAILED if exc.reason in ("exists", "inactive") else ExitCode.USAGE
                fail(str(exc), code)
        finally:
            db.close()


def _invalid(exc: ValidationError) -> NoReturn:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
    fail(f"invalid agent: {problems}", ExitCode.USAGE)


def _persona(text: str | None, path: Path | None) -> str | None:
    if text is not None and path is not None:
        fail("give the persona once: --persona or --persona-file", ExitCode.USAGE)
    if path is None:
        return text
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the persona from {path}: {exc}", ExitCode.USAGE)


def _pairs(items: list[str] | None, option: str) -> dict[str, int] | None:
    """``["read_file=5", …]`` → ``{"read_file": 5}``; exit 2 on anything else."""
    if items is None:
        return None
    found: dict[str, int] = {}
    for item in items:
        tool, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            fail(f"{option} {item!r}: write TOOL=N with N a whole number of micro-credits, e.g. read_file=5",
                 ExitCode.USAGE)
        found[tool.strip()] = int(value)
    return found


def _cost_text(agent: AgentRecord) -> str:
    """A cost model on one line: token prices, tool prices, overhead (micro-credits)."""
    if not agent.configured:
        return "— (no profile)"
    c = agent.cost
    tools = f"{c.per_tool_call}/call" + (f" ({', '.join(f'{k} {v}' for k, v in sorted(c.per_tool.items()))})"
                                         if c.per_tool else "")
    return f"{c.input_per_1k}/{c.output_per_1k} per 1K in/out · {tools} · +{c.overhead}"


def _short(npub: str) -> str:
    return f"{npub[:12]}…{npub[-6:]}"


def _json(agent: AgentRecord) -> dict[str, Any]:
    return agent.model_dump(mode="json")


def _print_one(agent: AgentRecord, verb: str | None = None) -> None:
    if verb:
        out.print(f"{verb} agent [bold]{escape(agent.name)}[/]", highlight=False)
    table = Table(show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    rows = [("name", agent.name), ("active", "yes" if agent.active else "no (deactivated)"),
            ("npub", agent.npub), ("EVM address", agent.evm_address), ("skills", ", ".join(agent.skills) or "—"),
            ("description", agent.description or "—"), ("model tier", agent.tier),
            ("cost (µcredits)", _cost_text(agent)),
            ("wallet", f"{format_amount(agent.balance)} credits ({format_amount(agent.held)} held)"),
            ("persona", agent.persona if agent.configured else f"{agent.persona} (the node's, COLONY_PERSONA)")]
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)


@agents_app.command("add")
def add(
    name: NameArg,
    persona: PersonaOpt = None,
    persona_file: PersonaFileOpt = None,
    tier: TierOpt = None,
    skill: SkillOpt = None,
    description: DescriptionOpt = None,
    price_in: PriceIn = None,
    price_out: PriceOut = None,
    price_tool: PriceTool = None,
    price_for: PriceFor = None,
    overhead: OverheadOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an agent: a new identity (Schnorr key, EVM account) and its profile, together.

    Examples:

        colony agents add scout --persona "You find things in the workspace." --skill search

        colony agents add reviewer --persona-file reviewer.md --tier 1 --price-in 20 --price-out 60

        colony agents add fetcher --persona "You fetch pages." --price-tool 500 --price-for web_fetch=2000 --json
    """
    settings = load()
    text = _persona(persona, persona_file)
    if text is None:
        fail("an agent needs a persona: --persona TEXT or --persona-file PATH", ExitCode.USAGE)
    try:
        cost = CostModel.model_validate({k: v for k, v in {
            "input_per_1k": price_in, "output_per_1k": price_out, "per_tool_call": price_tool,
            "per_tool": _pairs(price_for, "--price-for"), "overhead": overhead}.items() if v is not None})
        spec = AgentSpec(name=name, persona=text, tier=tier or "default", cost=cost, skills=skill or [],
                         description=description or "")
    except ValidationError as exc:
        _invalid(exc)
    with _keyring(settings) as keyring:
        made = create_agent(keyring, spec)
    if as_json:
        print_json(_json(made))
        return
    _print_one(made, "added")


@agents_app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List the node's agents: key, skills, model tier, cost model, balance, whether active.

    Examples:

        colony agents list

        colony agents list --json
    """
    settings = load()
    with _keyring(settings) as keyring:
        found = list_agents(keyring)
    if as_json:
        print_json({"agents": [_json(a) for a in found], "tiers": model_tiers(settings)})
        return
    table = Table(title="agents")
    for column in ("name", "key", "skills", "tier", "cost (µcredits)", "balance", "active"):
        table.add_column(column, justify="right" if column == "balance" else "left", overflow="fold")
    for a in found:
        table.add_row(escape(a.name), _short(a.npub), escape(", ".join(a.skills)), escape(a.tier),
                      escape(_cost_text(a)), format_amount(a.balance), "yes" if a.active else "[dim]no[/]")
    out.print(table)
    out.print(f"[dim]model tiers on this node: {escape(', '.join(model_tiers(settings)))}[/]", highlight=False)


@agents_app.command()
def show(name: NameArg, as_json: JsonOpt = False) -> None:
    """Show one agent: identity, profile (persona included), wallet.

    Examples:

        colony agents show scout

        colony agents show scout --json
    """
    with _keyring(load()) as keyring:
        agent = get_agent(keyring, name)
    if as_json:
        print_json(_json(agent))
        return
    _print_one(agent)


@agents_app.command()
def edit(
    name: NameArg,
    persona: PersonaOpt = None,
    persona_file: PersonaFileOpt = None,
    tier: TierOpt = None,
    skill: Annotated[list[str] | None, typer.Option("--skill", help="Replace the skills with these (repeat).")] = None,
    description: DescriptionOpt = None,
    price_in: PriceIn = None,
    price_out: PriceOut = None,
    price_tool: PriceTool = None,
    price_for: Annotated[list[str] | None, typer.Option(
        "--price-for", metavar="TOOL=N", help="Replace the per-tool prices with these (repeat).")] = None,
    overhead: OverheadOpt = None,
    activate: Annotated[bool, typer.Option("--activate", help="Reactivate a deactivated agent first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Change an agent; what is not given stays. An agent without a profile (colony) gets one.

    Examples:

        colony agents edit scout --tier default --price-out 80

        colony agents edit colony --persona-file persona.md

        colony agents edit scout --activate
    """
    settings = load()
    text = _persona(persona, persona_file)
    prices = {"input_per_1k": price_in, "output_per_1k": price_out, "per_tool_call": price_tool,
              "per_tool": _pairs(price_for, "--price-for"), "overhead": overhead}
    try:
        cost = CostPatch.model_validate(prices) if any(v is not None for v in prices.values()) else None
        patch = AgentPatch(persona=text, tier=tier, skills=skill, description=description, cost=cost)
    except ValidationError as exc:
        _invalid(exc)
    with _keyring(settings) as keyring:
        if activate:
            activate_agent(keyring, name)
        changed = edit_agent(keyring, name, patch)
    if as_json:
        print_json(_json(changed))
        return
    _print_one(changed, "changed")


@agents_app.command()
def remove(name: NameArg, as_json: JsonOpt = False) -> None:
    """Deactivate an agent: it takes no more turns or paid work, its card says inactive.

    Its identity, credits and history stay (other records name its key); reactivate it with
    ``colony agents edit NAME --activate``.

    Examples:

        colony agents remove scout
    """
    with _keyring(load()) as keyring:
        gone = deactivate_agent(keyring, name)
    if as_json:
        print_json(_json(gone))
        return
    out.print(f"deactivated agent [bold]{escape(gone.name)}[/] (identity, wallet and history kept; "
              f"reactivate with: colony agents edit {escape(gone.name)} --activate)", highlight=False)


@agents_app.command("estimate")
def estimate_(
    name: NameArg,
    input_tokens: Annotated[int, typer.Option("--input-tokens", min=0, help="Expected input tokens.")] = 0,
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=0, help="Expected output tokens.")] = 0,
    tool_calls: Annotated[int, typer.Option("--tool-calls", min=0, help="Expected calls of any tool.")] = 0,
    tool: Annotated[list[str] | None, typer.Option("--tool", metavar="TOOL=N",
                                                   help="Expected calls of one tool (repeat).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What a task would cost this agent, from its cost model (micro-credits, rounded up).

    Examples:

        colony agents estimate scout --input-tokens 12000 --output-tokens 3000 --tool-calls 4

        colony agents estimate scout --input-tokens 5000 --tool web_fetch=2 --json
    """
    calls = _pairs(tool, "--tool")
    with _keyring(load()) as keyring:
        agent = get_agent(keyring, name)
    result = estimate(agent.cost, input_tokens=input_tokens, output_tokens=output_tokens, tool_calls=tool_calls,
                      tools=calls)
    if as_json:
        print_json({"agent": agent.name, **result.model_dump()})
        return
    out.print(f"[bold]{escape(agent.name)}[/]: {result.total} µcredits ({format_amount(result.total)} credits) = "
              f"input {result.input} + output {result.output} + tools {result.tools} + overhead {result.overhead}",
              highlight=False)

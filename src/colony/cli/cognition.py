"""`colony cognition`: what the node's cognitive substrate currently believes, module by module.

Reads the persisted state from the node database exactly as a starting node would, so what it
shows is what the next turn starts from. ``--json`` prints the same snapshot the web UI uses.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from colony.cli._common import load, out, print_json, reporting
from colony.cognition import MODULES, build_substrate
from colony.memory import open_memory
from colony.store import open_database

__all__ = ["cognition_app"]

cognition_app = typer.Typer(
    name="cognition",
    help=(
        "The cognitive substrate: surprise, beliefs, blackboard, neuromodulators, regime, memory graph, "
        "lessons, integration (phi), holographic workspace, cognitive sphere and step predictor.\n\n"
        "Turn it on with COLONY_COGNITION_ENABLED=true; switch single modules off with "
        'COLONY_COGNITION_DISABLED_MODULES=\'["lessons"]\'.'
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _summary(name: str, data: dict[str, Any]) -> str:
    if not data.get("enabled"):
        return "[dim]off[/]"
    keys = {
        "surprise": ("surprisal_ema", "predictions", "high_surprise_share"),
        "beliefs": (),
        "blackboard": ("entries", "posted", "evicted", "threshold"),
        "neuromod": ("dopamine", "noradrenaline", "serotonin"),
        "precision": ("regime", "model_tier", "max_tool_calls", "budget_critical"),
        "memory_graph": ("connected", "recalls", "hits"),
        "lessons": ("stored", "applied"),
        "phi": ("phi_proxy", "coupling_score", "cross_read_utilization", "healthy"),
        "holographic": ("items", "capacity", "queries"),
        "sphere": ("theta", "phi", "exploration"),
        "predictor": ("samples", "accuracy", "baseline_accuracy", "trained"),
    }[name]
    if name == "beliefs":
        task = data["task"]
        return (f"trajectory {task['trajectory_confidence']:.2f} · freshness {task['model_freshness']:.2f} · "
                f"{len(data['tools'])} tools")
    return " · ".join(f"{k} {data.get(k)}" for k in keys)


@cognition_app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print the full snapshot as JSON.")] = False) -> None:
    """Show every module's state (as stored after the last turn).

    Examples:

        colony cognition status

        colony cognition status --json
    """
    settings = load()
    with reporting():
        db = open_database(settings.db_path)
        try:
            snapshot = build_substrate(db, settings, memory=lambda: open_memory(db, settings)).status()
        finally:
            db.close()
    if as_json:
        print_json(snapshot)
        return
    state = "[green]on[/]" if snapshot["enabled"] else "[yellow]off[/] (COLONY_COGNITION_ENABLED=true turns it on)"
    out.print(f"substrate: {state} · regime [bold]{snapshot['regime']}[/] · surprisal EMA {snapshot['surprisal_ema']}")
    table = Table(title="modules")
    table.add_column("module")
    table.add_column("state")
    for name in MODULES:
        table.add_row(name, _summary(name, snapshot["modules"][name]))
    out.print(table)
    top = snapshot["modules"]["blackboard"].get("top", [])
    if top:
        board = Table(title="blackboard (most salient)")
        for col in ("id", "source", "salience", "content"):
            board.add_column(col)
        for e in top:
            board.add_row(str(e["id"]), e["source"], f"{e['salience']:.2f}", escape(e["content"][:120]))
        out.print(board)
    if snapshot["last_batch"]:
        b = snapshot["last_batch"]
        out.print(f"last speculative batch: {b['resolution']} ({escape(b['reason'])})")

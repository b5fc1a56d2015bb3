"""`colony spawn` makes real member nodes — own home, keys, passphrase file and port — whether or not
the parent is running, `colony peers list|status` show them on both sides, and the parent introduces
the children to each other."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

from fed_helpers import COLONY, NodeProc, wait_for


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COLONY, *args], env=env, capture_output=True, text=True, timeout=120)


def child_env(kid: dict[str, Any]) -> dict[str, str]:
    """The child's own environment, as its node.env records it."""
    lines = Path(kid["home"], "node.env").read_text().splitlines()
    return {**os.environ, **dict(line.split("=", 1) for line in lines), "COLONY_FEDERATION_HEARTBEAT_S": "0.5"}


def test_spawned_nodes_join_their_parent_running_or_not_and_both_sides_list_each_other(tmp_path: Path) -> None:
    parent = NodeProc("parent", tmp_path)
    parent.env["COLONY_PUBLIC_URL"] = parent.url  # where its children find it, even before it first runs
    kids: list[dict[str, Any]] = []
    try:
        # The parent is not running: the child spends its invite in the parent's database.
        r = cli(parent.env, "spawn", "early", "--json")
        assert r.returncode == 0, r.stderr
        kids.append(json.loads(r.stdout))
        assert kids[0]["joined_live"] is False
        parent.start()
        parent.wait_ready()
        # The parent is running: the child joins at its /federation/v1/join with the invite.
        r = cli(parent.env, "spawn", "late", "--json")
        assert r.returncode == 0, r.stderr
        kids.append(json.loads(r.stdout))
        assert kids[1]["joined_live"] is True

        keys = {parent.pubkey, *(k["pubkey"] for k in kids)}
        assert len(keys) == 3  # three identities
        for kid in kids:
            home = Path(kid["home"])
            assert home == (parent.home / "nodes" / kid["name"]).resolve()
            env = child_env(kid)
            assert env["COLONY_PUBLIC_URL"] == kid["url"] and kid["url"] != parent.url
            secret = Path(env["COLONY_KEY_PASSPHRASE_FILE"])
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and home not in secret.parents
            assert secret.read_text().strip() not in Path(home, "node.env").read_text()
            assert int(Path(home, "colony.pid").read_text()) == kid["pid"]

        def parent_sees_both() -> bool:
            peers = {p["pubkey"]: p for p in parent.peers()["peers"]}
            return all(k["pubkey"] in peers and peers[k["pubkey"]]["live"] and peers[k["pubkey"]]["added_by"] == "spawn"
                       for k in kids)

        wait_for("the parent to list both children live", parent_sees_both, timeout=30)
        # Each child lists its parent (spawn) and, introduced by the parent, its sibling: a mesh, not a star.
        for kid, sibling in ((kids[0], kids[1]), (kids[1], kids[0])):
            def sees_family(kid: dict[str, Any] = kid, sibling: dict[str, Any] = sibling) -> bool:
                listed = cli(child_env(kid), "peers", "list", "--json")
                assert listed.returncode == 0, listed.stderr
                peers = sorted(json.loads(listed.stdout)["peers"], key=lambda p: p["pubkey"] != parent.pubkey)
                return [(p["pubkey"], p["status"], p["added_by"], p["introduced_by"], p["live"]) for p in peers] == [
                    (parent.pubkey, "trusted", "spawn", None, True),
                    (sibling["pubkey"], "trusted", "introduced", parent.pubkey, True)]

            wait_for(f"{kid['name']} to list its parent and its sibling live", sees_family, timeout=60, every=0.5)

        # One queen for the three.
        def one_queen() -> str | None:
            views = [parent.peers()] + [json.loads(cli(child_env(k), "peers", "status", "--json").stdout) for k in kids]
            queens = {v["queen"] for v in views}
            return queens.pop() if len(queens) == 1 and None not in queens else None

        assert wait_for("all three to follow one queen", one_queen, timeout=30, every=0.5) in keys
        assert parent.peers()["term"] <= 2  # settled, not escalating
        shown = cli(parent.env, "peers", "status")
        assert shown.returncode == 0 and "2 live, 0 dead" in shown.stdout
        taken = cli(parent.env, "spawn", "late")
        assert taken.returncode == 1 and "already holds a node" in taken.stderr
    finally:
        parent.stop()
        for kid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(kid["pid"], signal.SIGKILL)

"""SQL over the work-across-nodes tables (migration 21, `colony.store.remote_market_schema`, and 22,
`colony.store.remote_faults_schema`); nothing else here.

Functions take any `colony.store.engine.Sql` (the node's `Database`): inside a market step on
the node's file they join its transaction, so a bid's bond, its stake lock and its row commit
together. Events are stored as their JSON; rows come back as plain dicts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from colony.identity.events import Event
from colony.store import Row
from colony.store.engine import Sql

__all__ = [
    "award_row",
    "bid_rows",
    "bidder",
    "end_award",
    "get_end",
    "get_remote",
    "given_up_for",
    "insert_award",
    "insert_bid",
    "insert_remote",
    "live_awards",
    "mark_sent",
    "move_remote",
    "plate",
    "record_bidder",
    "record_end",
    "record_stale",
    "refuse_award",
    "remote_rows",
    "sent",
    "set_remote",
    "stale_results",
    "update_bid",
]

_REMOTE = ("id, origin, origin_url, poster, announcement, commit_deadline, reveal_deadline, state, winner, price, "
           "escrow_hold, task_id, result_sent_at, paid_tx, received_at, updated_at")
_BID = ("auction, bidder, bidder_name, amount, cost, chance_ppm, bond_hold, stake_ref, commit_event, commit_sent_at, "
        "reveal_event, reveal_sent_at, refused, bond")
#: Columns `set_remote` and `update_bid` may set: callers pass names, only these become SQL.
_REMOTE_SET = frozenset({"winner", "price", "escrow_hold", "task_id", "result_sent_at", "paid_tx"})
_BID_SET = frozenset({"commit_sent_at", "reveal_event", "reveal_sent_at", "refused", "bond"})


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _assignments(fields: dict[str, Any], allowed: frozenset[str]) -> str:
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not a column this update sets: {', '.join(sorted(unknown))}")
    return ", ".join(f"{k} = ?" for k in fields)


# -- a member's side: auctions other nodes announced, and this node's bids in them ----------------
def insert_remote(db: Sql, values: dict[str, Any]) -> bool:
    """Keep an announced auction; False when it was kept already (a notice delivered again)."""
    now = time.time()
    with db.tx():
        if db.one("SELECT 1 AS x FROM federation_remote_auctions WHERE id = ?", (values["id"],)):
            return False
        db.execute(f"INSERT INTO federation_remote_auctions({_REMOTE}) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, 'open', NULL, NULL, NULL, NULL, NULL, NULL, ?, ?)",
                   (values["id"], values["origin"], values["origin_url"], values["poster"], values["announcement"],
                    values["commit_deadline"], values["reveal_deadline"], now, now))
        return True


def get_remote(db: Sql, auction: str) -> Row | None:
    return db.one(f"SELECT {_REMOTE} FROM federation_remote_auctions WHERE id = ?", (auction,))


def remote_rows(db: Sql, states: Iterable[str]) -> list[Row]:
    wanted = sorted(set(states))
    return db.query(f"SELECT {_REMOTE} FROM federation_remote_auctions WHERE state IN ({_marks(wanted)}) "
                    "ORDER BY commit_deadline, id", wanted)


def move_remote(db: Sql, auction: str, from_state: str, to_state: str, **fields: Any) -> bool:
    """Move a remote auction from ``from_state`` only; False when it was not there."""
    cols = {**fields, "state": to_state, "updated_at": time.time()}
    sets = _assignments(cols, _REMOTE_SET | {"state", "updated_at"})
    moved = db.query(f"UPDATE federation_remote_auctions SET {sets} WHERE id = ? AND state = ? RETURNING id",
                     (*cols.values(), auction, from_state))
    return bool(moved)


def set_remote(db: Sql, auction: str, **fields: Any) -> None:
    cols = {**fields, "updated_at": time.time()}
    db.execute(f"UPDATE federation_remote_auctions SET {_assignments(cols, _REMOTE_SET | {'updated_at'})} "
               "WHERE id = ?", (*cols.values(), auction))


def insert_bid(db: Sql, values: dict[str, Any]) -> None:
    db.execute(
        "INSERT INTO federation_remote_bids(auction, bidder, bidder_name, amount, cost, chance_ppm, bond_hold, "
        "stake_ref, commit_event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (values["auction"], values["bidder"], values["bidder_name"], values["amount"], values["cost"],
         values["chance_ppm"], values["bond_hold"], values["stake_ref"], values["commit_event"].model_dump_json()))


def plate(db: Sql, account: str) -> int:
    """``account``'s won work in other nodes' auctions whose result has not been sent (`colony.market.backlog`)."""
    return int(db.scalar("SELECT count(*) FROM federation_remote_auctions WHERE winner = ? AND state = 'won' "
                         "AND result_sent_at IS NULL", (account,)) or 0)


def bid_rows(db: Sql, auction: str | None = None) -> list[Row]:
    """This node's bids (in one remote auction, or all), with their events parsed."""
    where, params = ("WHERE auction = ?", (auction,)) if auction else ("", ())
    rows = db.query(f"SELECT {_BID} FROM federation_remote_bids {where} ORDER BY auction, bidder", params)
    return [{**r, "commit_event": Event.model_validate_json(r["commit_event"]),
             "reveal_event": Event.model_validate_json(r["reveal_event"]) if r["reveal_event"] else None}
            for r in rows]


def update_bid(db: Sql, auction: str, bidder: str, **fields: Any) -> None:
    values = {k: (v.model_dump_json() if isinstance(v, Event) else v) for k, v in fields.items()}
    db.execute(f"UPDATE federation_remote_bids SET {_assignments(values, _BID_SET)} WHERE auction = ? AND bidder = ?",
               (*values.values(), auction, bidder))


# -- the poster's side: who bid from where, and what it told its members -------------------------
def record_bidder(db: Sql, auction: str, bidder: str, name: str, node: str) -> None:
    db.execute("INSERT INTO federation_market_bidders(auction, bidder, bidder_name, node, at) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT(auction, bidder) DO NOTHING", (auction, bidder, name, node, time.time()))


def bidder(db: Sql, auction: str, account: str) -> Row | None:
    """The member node ``account`` bid from in ``auction`` (and its name there), or None."""
    return db.one("SELECT auction, bidder, bidder_name, node, at FROM federation_market_bidders "
                  "WHERE auction = ? AND bidder = ?", (auction, account))


def mark_sent(db: Sql, auction: str, what: str) -> bool:
    """Record that the notice ``what`` about ``auction`` went out; False when it had already."""
    found = db.query("INSERT INTO federation_market_sent(auction, what, at) VALUES (?, ?, ?) "
                     "ON CONFLICT(auction, what) DO NOTHING RETURNING auction", (auction, what, time.time()))
    return bool(found)


def sent(db: Sql, what: str) -> set[str]:
    """The auctions the notice ``what`` went out for."""
    return {r["auction"] for r in db.query("SELECT auction FROM federation_market_sent WHERE what = ?", (what,))}


# -- faults (migration 22): the poster's awards to members, given up once; a member's ends ----------
_AWARD = "auction, winner, node, result_deadline, ended, ended_at, detail, reauction"


def insert_award(db: Sql, auction: str, winner: str, node: str, result_deadline: int) -> None:
    """Record an award to a member's agent and its result deadline (once; a retry keeps the first)."""
    db.execute("INSERT INTO federation_market_awards(auction, winner, node, result_deadline) VALUES (?, ?, ?, ?) "
               "ON CONFLICT(auction) DO NOTHING", (auction, winner, node, result_deadline))


def award_row(db: Sql, auction: str) -> Row | None:
    return db.one(f"SELECT {_AWARD} FROM federation_market_awards WHERE auction = ?", (auction,))


def live_awards(db: Sql) -> list[Row]:
    """Awards to members' agents not given up, soonest deadline first."""
    return db.query(f"SELECT {_AWARD} FROM federation_market_awards WHERE ended IS NULL "
                    "ORDER BY result_deadline, auction")


def end_award(db: Sql, auction: str, ended: str, detail: str, reauction: str | None = None) -> bool:
    """Mark an award given up (once); False when it was given up before."""
    done = db.query("UPDATE federation_market_awards SET ended = ?, ended_at = ?, detail = ?, reauction = ? "
                    "WHERE auction = ? AND ended IS NULL RETURNING auction",
                    (ended, time.time(), detail[:500], reauction, auction))
    return bool(done)


def given_up_for(db: Sql, reauction: str) -> Row | None:
    """The award given up whose task ``reauction`` auctions again, or None."""
    return db.one(f"SELECT {_AWARD} FROM federation_market_awards WHERE reauction = ?", (reauction,))


def record_stale(db: Sql, values: dict[str, Any]) -> bool:
    """Keep a refused result as evidence; False when this result event was refused before."""
    done = db.query("INSERT INTO federation_market_stale_results(event, auction, sender, winner, status, reason, at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event) DO NOTHING RETURNING event",
                    (values["event"], values["auction"], values["sender"], values["winner"], values["status"],
                     values["reason"][:500], time.time()))
    return bool(done)


def stale_results(db: Sql) -> list[Row]:
    return db.query("SELECT event, auction, sender, winner, status, reason, at FROM federation_market_stale_results "
                    "ORDER BY at, event")


def record_end(db: Sql, auction: str, cause: str, detail: str) -> bool:
    """Record why a remote auction ended without its normal outcome (once); False when it was recorded."""
    done = db.query("INSERT INTO federation_remote_ends(auction, cause, at, detail) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(auction) DO NOTHING RETURNING auction", (auction, cause, time.time(), detail[:500]))
    return bool(done)


def get_end(db: Sql, auction: str) -> Row | None:
    return db.one("SELECT auction, cause, at, detail, award_refused_at FROM federation_remote_ends WHERE auction = ?",
                  (auction,))


def refuse_award(db: Sql, auction: str) -> bool:
    """Note that an award arrived after the auction lapsed here; False when one was refused before."""
    done = db.query("UPDATE federation_remote_ends SET award_refused_at = ? WHERE auction = ? "
                    "AND award_refused_at IS NULL RETURNING auction", (time.time(), auction))
    return bool(done)

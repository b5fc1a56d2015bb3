"""The early-contributor bonus: verified work paid more while the network is young (RuVector §5.2).

With ``COLONY_MARKET_CONTRIBUTION`` on, a winner whose result passes verification also receives a
bonus minted by the node's treasury: the price times (multiplier − 1), where the multiplier is
`colony.market.stake.contribution_multiplier` at the network's verified compute so far — the
CPU-hours (wall time from ``executing`` to ``completed``) of every task of an auction paid before
this one. At genesis the multiplier is 10× and it decays to 1× over millions of CPU-hours, as the
seed's curve says. The bonus is a treasury order like any mint: signed by the node, audited,
counted in the supply, and keyed by the auction (one bonus per auction, ever).

Off by default: minting is the operator's decision — it grows the supply of credits its agents
trade in — and a node that joins an existing economy should not inflate it on its own.
"""

from __future__ import annotations

from colony.ledger.service import Ledger
from colony.market.stake import PPM, MarketParams, contribution_ppm
from colony.store.engine import Sql

__all__ = ["bonus", "network_compute_hours", "pay_bonus"]


def network_compute_hours(db: Sql) -> float:
    """CPU-hours of verified market work so far: each paid auction's task, executing → completed.

    Read inside the settling step: the market's tables and the task events are in one database.
    """
    row = db.one(
        """SELECT coalesce(sum(CASE WHEN done.at > started.at THEN done.at - started.at ELSE 0.0 END), 0.0)
                  AS seconds
             FROM market_verifications v
             JOIN market_auctions a ON a.id = v.auction
             JOIN (SELECT task_id, min(at) AS at FROM task_events WHERE to_state = 'executing' GROUP BY task_id)
                  started ON started.task_id = a.task_id
             JOIN (SELECT task_id, max(at) AS at FROM task_events WHERE to_state = 'completed' GROUP BY task_id)
                  done ON done.task_id = a.task_id
            WHERE v.passed = 1""")
    return float(row["seconds"]) / 3600.0 if row is not None else 0.0


def bonus(price: int, compute_hours: float, params: MarketParams) -> int:
    """The bonus on ``price`` at ``compute_hours``: price × (multiplier − 1), rounded down."""
    return max(0, price * (contribution_ppm(compute_hours, params) - PPM) // PPM)


def pay_bonus(db: Sql, ledger: Ledger, *, auction: str, winner: str, price: int,
              params: MarketParams, nonce: str) -> int:
    """Mint the winner's bonus for ``auction`` (call before its verification row is written);
    ``nonce``: the treasury order's, fixed by the auction, so a retry is the same mint."""
    hours = network_compute_hours(db)
    amount = bonus(price, hours, params)
    if amount:
        ppm = contribution_ppm(hours, params)
        ledger.mint(winner, amount, f"early-contributor bonus ×{ppm / PPM:.2f} for auction {auction[:16]}",
                    actor="market", nonce=nonce)
    return amount

"""Market simulation: sealed-bid reverse Vickrey against first-price and random assignment.

Run with ``.venv/bin/python bench/bench_market.py [--seeds 10] [--tasks 2000] [--agents 50]
[--sign-every 20] [--quick] [--markdown docs/_market_bench.md]``.

The world (one per seed, the same for the three rules): 50 agents over six skills, each with two
skills, a hidden true cost and a success probability per skill, and 2,000 tasks from five posters
with a skill, a reserve (the most the poster pays) and a bond per commitment. Every task is
auctioned through `colony.market.auction`: real commitments (sha256 of the fixed-width bid),
refusals, ranking, price and forfeits all come from `settle_bids`. Every ``--sign-every``-th
task goes the whole way with signed NIP-01 events: announcement, commits, reveals, `settle`
(which verifies each signature and then calls `settle_bids`), the poster's signed award, and
`recheck` from the events alone, which must agree. The other tasks skip the signatures only
(signing ~30 events a task would make a default run take tens of minutes); the decision is the
same function.

After each award the winner's result passes verification with its true success probability:
pass → the price is paid; fail → refund, and `settle_verification` slashes the stake behind the
task. The poster rates the winner (100 or 0) and the winner rates the poster after a payment; the
ratings go through `ReputationBook` (backed by the settled payment, weighted by the rater's
reputation). A key bids only while its reputation is at least ``min_reputation`` and its stake
covers `required_stake` of its bid.

Populations (for 50 agents): 30 honest (bid the break-even price given their success chance: the
price at which winning is worth nothing, counting the slash a failure costs), 3 over-bidders
(×1.25), 3 under-bidders (×0.8), 1 shill placed by poster 0 (bids low in poster 0's auctions; the
market knows it is poster 0's, so its bids are refused), a ring of 4 sharing their skills (the
member with the lowest cost bids, the others cover at the reserve), 3 sybil slots of one operator
that deliver junk and come back under a fresh key once excluded, 3 non-revealers (commit, then
reveal half the time) and 3 junk deliverers (cut corners at half the cost, believe they pass 90 %
of the time and bid on that belief, really pass 5 %).

Money: stake is the agent's own. Each owner has a purse (20 credits per agent slot); work is paid
from it, payments go into it, a slash is taken from the stake, and the stake is refilled from the
purse as far as it goes. An owner with an empty purse cannot fund work and stops bidding. The
sybil operator's three slots share one purse, and a fresh key's stake comes out of it.

Efficiency is the optimum over eligible agents (skill, reputation, stake) divided by the
winners' cost, where an agent's cost for a task is its true cost over its success chance (the
expected cost of one verified result). Intervals are 95 % t-intervals over seeds.

Truthfulness: for a sample of honest agents and a sample of their Vickrey auctions, the agent's
bid is replaced by its break-even bid shaded by −30 … +30 % with every other bid fixed, the
auction settled again by `settle_bids`, and the change in expected utility recorded. Under
Vickrey it must not be positive beyond noise; under first price (same check from the same
break-even bid) shading up pays, which shows the check can see a gain when there is one.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import machine
from colony.identity.keys import SchnorrKey
from colony.ledger.amounts import MICRO
from colony.market.auction import (
    Commitment,
    Opening,
    Outcome,
    announcement_event,
    award_event,
    bid_digest,
    co_bidding,
    commit_event,
    recheck,
    reveal_event,
    settle,
    settle_bids,
)
from colony.market.events import Announcement, Rule
from colony.market.reputation import Feedback, ReputationBook
from colony.market.stake import BP, MarketParams, required_stake, settle_verification, slash_failed

RULES: tuple[Rule, ...] = ("vickrey", "first_price", "random")
SKILLS = ("code", "review", "data", "write", "math", "search")
POSTERS = 5
#: Strategic populations (kind, count); honest agents fill the rest of ``--agents``.
STRATEGIC = (("over", 3), ("under", 3), ("shill", 1), ("ring", 4), ("sybil", 3), ("silent", 3), ("junk", 3))
CHEATERS = ("junk", "sybil")
DEVIATIONS = (-30, -20, -10, -5, 5, 10, 20, 30)
PARAMS = MarketParams()
#: Each agent slot's starting purse (micro-credits).
PURSE = 20 * MICRO
ANNOUNCE_GAP, COMMIT_S, REVEAL_S = 100, 40, 80


# -- the world -----------------------------------------------------------------------------------
@dataclass
class Agent:
    """One bidding slot: its hidden costs and skill, and what happens to it during a run."""

    index: int
    kind: str
    key: SchnorrKey
    pub: str
    cost: dict[str, int]
    success: dict[str, float]
    belief: dict[str, float]  # the success chance it bids on (its true one, unless it is deluded)
    stake_level: int
    owner: str
    stake: int = 0
    utility: int = 0
    wins: int = 0
    fails: int = 0
    forfeited: int = 0
    first_slash: int | None = None
    excluded_at: int | None = None
    wins_before_exclusion: int = 0
    retired: list[tuple[int | None, int | None, int]] = field(default_factory=list)  # sybil keys replaced


@dataclass(frozen=True)
class Task:
    """A job: its skill, size and reserve, and each agent's private cost factor for it."""

    index: int
    skill: str
    poster: int
    reserve: int
    size: float
    noise: tuple[float, ...]  # per agent index: costs are private and vary from task to task

    def cost(self, a: Agent) -> int:
        """``a``'s true cost of this task (micro-credits)."""
        return int(a.cost[self.skill] * self.size * self.noise[a.index])


@dataclass(frozen=True)
class World:
    seed: int
    agents: tuple[Agent, ...]
    tasks: tuple[Task, ...]
    posters: tuple[SchnorrKey, ...]


def _key(seed: int, label: str) -> SchnorrKey:
    """Deterministic keys, so a seed reproduces a run exactly (the tie-breaker depends on keys)."""
    return SchnorrKey(hashlib.sha256(f"bench-market/{seed}/{label}".encode()).digest())


def make_world(seed: int, n_tasks: int, n_agents: int) -> World:
    rng = random.Random(seed)
    difficulty = {s: rng.uniform(2.0, 9.0) for s in SKILLS}  # credits
    kinds = [k for k, n in STRATEGIC for _ in range(n)]
    kinds = ["honest"] * max(5, n_agents - len(kinds)) + kinds
    ring_skills = rng.sample(SKILLS, 2)
    agents = []
    for i, kind in enumerate(kinds):
        skills = ring_skills if kind == "ring" else rng.sample(SKILLS, 2)
        cost = {s: int(difficulty[s] * rng.uniform(0.6, 1.6) * MICRO) for s in skills}
        success = {s: rng.uniform(0.8, 0.99) for s in skills}
        belief = dict(success)
        if kind in ("junk", "sybil"):  # corners cut: half the cost, rarely passes, thinks it is fine
            cost = {s: c // 2 for s, c in cost.items()}
            success, belief = dict.fromkeys(skills, 0.05), dict.fromkeys(skills, 0.9)
        if kind == "shill":
            cost, success, belief = {s: 10**12 for s in SKILLS}, dict.fromkeys(SKILLS, 0.0), dict.fromkeys(SKILLS, 0.0)
        key = _key(seed, f"agent{i}")
        owner = "operator" if kind == "sybil" else "poster0" if kind == "shill" else f"agent{i}"
        level = int(rng.uniform(3, 12) * MICRO)
        agents.append(Agent(i, kind, key, key.public_hex, cost, success, belief, level, owner, stake=level))
    tasks = []
    for t in range(n_tasks):
        skill, size = rng.choice(SKILLS), rng.uniform(0.5, 2.0)
        reserve = int(difficulty[skill] * size * rng.uniform(1.5, 3.0) * MICRO)
        noise = tuple(rng.uniform(0.8, 1.2) for _ in agents)
        tasks.append(Task(t, skill, rng.randrange(POSTERS), reserve, size, noise))
    posters = tuple(_key(seed, f"poster{p}") for p in range(POSTERS))
    return World(seed, tuple(agents), tuple(tasks), posters)


def fresh(world: World) -> list[Agent]:
    """Agents as at the start of a run (each rule starts from the same world)."""
    return [Agent(a.index, a.kind, a.key, a.pub, dict(a.cost), dict(a.success), dict(a.belief), a.stake_level,
                  a.owner, stake=a.stake_level) for a in world.agents]


# -- what agents bid -----------------------------------------------------------------------------
def slash_at(price: int) -> int:
    return slash_failed(required_stake(price, PARAMS), PARAMS)


def expected_utility(price: int, cost: int, p: float) -> float:
    """What winning at ``price`` is worth before the result is verified (micro-credits)."""
    return p * price - cost - (1 - p) * slash_at(price)


def break_even(cost: int, p: float) -> int:
    """The price at which winning is worth nothing: the truthful bid under Vickrey."""
    if p <= 0:
        return 10**12
    k = PARAMS.slash_failed_bp / BP * PARAMS.stake_bp / BP
    price = cost / p
    if price > PARAMS.stake_free_bid:
        price = (cost - (1 - p) * k * PARAMS.stake_free_bid) / (p - (1 - p) * k)
    return math.ceil(price)


def base_bid(rule: Rule, value: int, reserve: int, rivals: int) -> int:
    """Truthful under Vickrey and random; under first price, the textbook shading towards the
    reserve for ``rivals`` competitors with independent uniform costs: v + (R − v)/n."""
    if rule != "first_price" or value >= reserve:
        return value
    return value + (reserve - value) // max(2, rivals)


# -- one run -------------------------------------------------------------------------------------
@dataclass
class AuctionRecord:
    """What the truthfulness check needs to replay one auction with one bid changed."""

    announcement: Announcement
    commitments: list[Commitment]
    openings: list[Opening]
    now: int
    owners: dict[str, str]


@dataclass
class RunResult:
    rule: str
    efficiency: float
    efficiency_fair: float
    cheat_wins: float
    assigned: float
    completed: float
    spend_per_task: float
    utility: dict[str, float]
    forfeited: float
    shill_refused: int
    shill_bids: int
    cheater_exclusion: list[int]
    cheater_first_slash: list[int]
    cheater_wins: list[int]
    sybil_keys: int
    ring_flagged: int
    other_flagged: int
    signed: int
    rechecked: int
    samples: dict[int, list[tuple[AuctionRecord, int, int, float]]]


class Run:
    """One rule over one world; reputation, stake and utilities evolve task by task."""

    def __init__(self, world: World, rule: Rule, sign_every: int, sample: set[int]) -> None:
        self.world, self.rule, self.sign_every, self.sample = world, rule, sign_every, sample
        self.agents = fresh(world)
        self.rng = random.Random(world.seed * 7919 + RULES.index(rule))
        self.settled: dict[str, tuple[str, str]] = {}
        self.book = ReputationBook(is_settled=self._is_settled)
        self.owners = {a.pub: a.owner for a in self.agents}
        self.purse: dict[str, int] = {}
        for a in self.agents:
            self.purse[a.owner] = self.purse.get(a.owner, 0) + PURSE
        self.owners.update({k.public_hex: f"poster{p}" for p, k in enumerate(world.posters)})
        self.outcomes: list[Outcome] = []
        self.samples: dict[int, list[tuple[AuctionRecord, int, int, float]]] = {i: [] for i in sample}
        self.opt = self.actual = self.opt_fair = self.actual_fair = 0.0
        self.cheat_wins = 0
        self.assigned = self.completed = self.spend = self.shill_bids = self.shill_refused = 0
        self.signed = self.rechecked = self.sybil_keys = 0

    def _is_settled(self, ref: str, rater: str, ratee: str) -> bool:
        pair = self.settled.get(ref)
        return pair is not None and {rater, ratee} == set(pair)

    def eligible(self, a: Agent, skill: str, bid: int) -> bool:
        """May ``a`` bid ``bid``: the skill, the reputation, the stake, and funds to do the work."""
        standing = self.book.expectation(a.pub)
        return (skill in a.cost and standing >= PARAMS.min_reputation
                and a.stake >= required_stake(bid, PARAMS, reputation=standing) and self.purse[a.owner] > 0)

    def bids_for(self, task: Task) -> list[tuple[Agent, int, bool]]:
        """(agent, amount, reveals) for everyone who bids on ``task``."""
        pool = [a for a in self.agents if task.skill in a.cost and a.kind != "shill"]
        rivals = sum(1 for a in pool if self.eligible(a, task.skill, 0))
        out: list[tuple[Agent, int, bool]] = []
        ring = [a for a in pool if a.kind == "ring" and self.eligible(a, task.skill, 0)]
        leader = min(ring, key=lambda a: break_even(task.cost(a), a.belief[task.skill]), default=None)
        for a in pool:
            value = break_even(task.cost(a), a.belief[task.skill])
            if a.kind == "ring" and a is not leader:
                amount = task.reserve  # a cover bid
            else:
                n = rivals - (len(ring) - 1 if a is leader else 0)
                amount = base_bid(self.rule, value, task.reserve, n)
                amount = {"over": amount * 5 // 4, "under": amount * 4 // 5}.get(a.kind, amount)
            if a.kind in ("honest", "ring", "silent", "junk", "sybil") and amount > task.reserve:
                continue  # knows it cannot win at a loss-free price
            if self.eligible(a, task.skill, amount):
                out.append((a, amount, a.kind != "silent" or self.rng.random() < 0.5))
        if task.poster == 0:
            shill = next((a for a in self.agents if a.kind == "shill"), None)
            if shill is not None:
                out.append((shill, max(1, task.reserve // 3), True))
                self.shill_bids += 1
        return out

    def auction(self, task: Task) -> tuple[Outcome, AuctionRecord]:
        t0 = 10_000 + ANNOUNCE_GAP * task.index
        poster = self.world.posters[task.poster]
        ann = Announcement(poster=poster.public_hex, goal=f"task {task.index}", skills=(task.skill,),
                           reserve=task.reserve, commit_deadline=t0 + COMMIT_S, reveal_deadline=t0 + REVEAL_S,
                           bond=max(MICRO // 10, task.reserve // 100), verification="tests", rule=self.rule,
                           nonce=hashlib.sha256(f"{self.world.seed}/{self.rule}/{task.index}".encode()).hexdigest())
        aid, now = ann.auction_id, t0 + REVEAL_S + 1
        commitments, openings, plan = [], [], []
        for a, amount, reveals in self.bids_for(task):
            salt = self.rng.randbytes(32).hex()
            c_at, r_at = t0 + 1 + self.rng.randrange(COMMIT_S - 1), t0 + COMMIT_S + 1 + self.rng.randrange(REVEAL_S - COMMIT_S - 1)
            plan.append((a, amount, salt, c_at, r_at if reveals else None))
            cid = f"{task.index}/{a.index}/c"
            commitments.append(Commitment(cid, a.pub, aid, bid_digest(aid, a.pub, amount, salt), c_at))
            if reveals:
                openings.append(Opening(f"{task.index}/{a.index}/r", a.pub, aid, amount, salt, r_at))
        record = AuctionRecord(ann, commitments, openings, now, self.owners)
        if self.sign_every and task.index % self.sign_every == 0:
            return self.signed_auction(ann, poster, plan, now), record
        return settle_bids(ann, commitments, openings, now=now, owners=self.owners), record

    def signed_auction(self, ann: Announcement, poster: SchnorrKey,
                       plan: list[tuple[Agent, int, str, int, int | None]], now: int) -> Outcome:
        """The same auction through signed events, settled by `settle` and audited by `recheck`."""
        events = [announcement_event(poster, ann, created_at=ann.commit_deadline - COMMIT_S)]
        for a, amount, salt, c_at, r_at in plan:
            events.append(commit_event(a.key, ann, amount, salt, created_at=c_at))
            if r_at is not None:
                events.append(reveal_event(a.key, ann, amount, salt, created_at=r_at))
        outcome = settle(ann, events[1:], now=now, owners=self.owners)
        events.append(award_event(poster, ann, outcome, created_at=now))
        self.signed += 1
        audit = recheck(events, owners=self.owners)
        self.rechecked += audit.ok and audit.outcome is not None and audit.outcome.winner == outcome.winner
        return outcome

    def optimum(self, task: Task) -> float | None:
        costs = [task.cost(a) / a.success[task.skill] for a in self.agents
                 if a.kind != "shill" and task.skill in a.cost
                 and self.eligible(a, task.skill, break_even(task.cost(a), a.success[task.skill]))]
        return min(costs, default=None)

    def step(self, task: Task) -> None:
        best = self.optimum(task)
        outcome, record = self.auction(task)
        self.outcomes.append(outcome)
        by_pub = {a.pub: a for a in self.agents}
        for f in outcome.forfeits:
            by_pub[f.bidder].utility -= f.bond
            by_pub[f.bidder].forfeited += f.bond
            self.purse[by_pub[f.bidder].owner] -= f.bond
        self.shill_refused += any(r.reason == "poster_bid" for r in outcome.refused)
        for i in self.sample:
            a = self.agents[i]
            if any(c.bidder == a.pub for c in record.commitments) and task.skill in a.cost:
                self.samples[i].append((record, i, task.cost(a), a.success[task.skill]))
        if outcome.winner is None or outcome.price is None:
            return
        winner, price = by_pub[outcome.winner], outcome.price
        self.assigned += 1
        cost, p = task.cost(winner), winner.success[task.skill]
        if best is not None:
            self.opt += best
            self.actual += cost / p if p > 0 else 1e12
            if winner.kind in CHEATERS:
                self.cheat_wins += 1
            else:
                self.opt_fair += best
                self.actual_fair += cost / p
        poster = self.world.posters[task.poster].public_hex
        ref = f"{self.rule}/{task.index}"
        self.settled[ref] = (poster, winner.pub)
        passed = self.rng.random() < p
        result = settle_verification(price, passed, PARAMS)
        slashed = min(winner.stake, result.slashed)
        winner.wins += 1
        winner.utility += result.to_worker - cost - slashed
        self.purse[winner.owner] += result.to_worker - cost
        winner.stake -= slashed
        self.restake(winner, winner.stake_level - winner.stake)
        if passed:
            self.completed += 1
            self.spend += price
            self.book.add(Feedback(ref + "/w", winner.pub, poster, ref, 100, task.index))
        else:
            winner.fails += 1
            if slashed and winner.first_slash is None:
                winner.first_slash = task.index
        self.book.add(Feedback(ref + "/p", poster, winner.pub, ref, 100 if passed else 0, task.index))
        if winner.excluded_at is None and self.book.expectation(winner.pub) < PARAMS.min_reputation:
            winner.excluded_at = task.index
            winner.wins_before_exclusion = winner.wins
            if winner.kind == "sybil":
                self.whitewash(winner)

    def restake(self, a: Agent, amount: int) -> None:
        """Move up to ``amount`` from the owner's purse into ``a``'s stake, as far as the purse goes."""
        moved = max(0, min(amount, self.purse[a.owner]))
        self.purse[a.owner] -= moved
        a.stake += moved

    def whitewash(self, a: Agent) -> None:
        """The sybil operator abandons an excluded key (unbonding its stake) and bids on under a
        fresh one at the prior 0.5, staked from the operator's purse."""
        a.retired.append((a.excluded_at, a.first_slash, a.wins_before_exclusion))
        self.purse[a.owner] += a.stake
        a.stake = 0
        self.restake(a, a.stake_level)
        self.sybil_keys += 1
        a.key = _key(self.world.seed, f"sybil{a.index}/{self.sybil_keys}/{self.rule}")
        a.pub = a.key.public_hex
        self.owners[a.pub] = a.owner
        a.excluded_at = a.first_slash = None
        a.wins = a.wins_before_exclusion = 0

    def result(self) -> RunResult:
        n = len(self.world.tasks)
        by_kind: dict[str, list[int]] = {}
        for a in self.agents:
            by_kind.setdefault(a.kind, []).append(a.utility)
        cheaters = [(a.excluded_at, a.first_slash, a.wins_before_exclusion) for a in self.agents if a.kind == "junk"]
        cheaters += [r for a in self.agents if a.kind == "sybil" for r in a.retired]
        ring = {a.pub for a in self.agents if a.kind == "ring"}
        flagged = co_bidding([o for o in self.outcomes], tolerance_bp=100, min_together=10, min_close_bp=3000)
        ring_flagged = sum(1 for p in flagged if p.first in ring and p.second in ring)
        return RunResult(
            rule=self.rule, efficiency=self.opt / self.actual if self.actual else 0.0,
            efficiency_fair=self.opt_fair / self.actual_fair if self.actual_fair else 0.0,
            cheat_wins=self.cheat_wins / n,
            assigned=self.assigned / n, completed=self.completed / n,
            spend_per_task=self.spend / max(1, self.completed) / MICRO,
            utility={k: statistics.fmean(v) / MICRO for k, v in by_kind.items()},
            forfeited=sum(a.forfeited for a in self.agents if a.kind == "silent") / MICRO,
            shill_refused=self.shill_refused, shill_bids=self.shill_bids,
            cheater_exclusion=[c[0] for c in cheaters if c[0] is not None],
            cheater_first_slash=[c[1] for c in cheaters if c[1] is not None],
            cheater_wins=[c[2] for c in cheaters if c[0] is not None],
            sybil_keys=self.sybil_keys, ring_flagged=ring_flagged, other_flagged=len(flagged) - ring_flagged,
            signed=self.signed, rechecked=self.rechecked, samples=self.samples)


def run(world: World, rule: Rule, *, sign_every: int = 0, sample: Sequence[int] = ()) -> RunResult:
    sim = Run(world, rule, sign_every, set(sample))
    for task in world.tasks:
        sim.step(task)
    return sim.result()


# -- truthfulness --------------------------------------------------------------------------------
def deviation_gain(record: AuctionRecord, bidder: str, cost: int, p: float, percent: int) -> float:
    """Change in ``bidder``'s expected utility (micro-credits) when its break-even bid is shaded by
    ``percent`` with every other bid fixed; both versions settled by `settle_bids`."""
    truthful = break_even(cost, p)

    def utility(amount: int) -> float:
        ann = record.announcement
        mine = [c for c in record.commitments if c.bidder == bidder]
        if not mine or amount < 1:
            return 0.0
        salt = "ab" * 32
        commit = Commitment(mine[0].event_id, bidder, ann.auction_id,
                            bid_digest(ann.auction_id, bidder, amount, salt), mine[0].at)
        opening = Opening(mine[0].event_id + "/dev", bidder, ann.auction_id, amount, salt, record.now - 2)
        commitments = [c for c in record.commitments if c.bidder != bidder] + [commit]
        openings = [o for o in record.openings if o.bidder != bidder] + [opening]
        out = settle_bids(ann, commitments, openings, now=record.now, owners=record.owners)
        if out.winner != bidder or out.price is None:
            return 0.0
        return expected_utility(out.price, cost, p)

    return utility(truthful * (100 + percent) // 100) - utility(truthful)


def truthfulness(result: RunResult, world: World, per_agent: int, rng: random.Random) -> dict[int, list[float]]:
    """Mean gain per sampled auction, per deviation, one value per sampled agent (credits)."""
    gains: dict[int, list[float]] = {d: [] for d in DEVIATIONS}
    for i, auctions in result.samples.items():
        if not auctions:
            continue
        chosen = rng.sample(auctions, min(per_agent, len(auctions)))
        pub = world.agents[i].pub
        for d in DEVIATIONS:
            total = sum(deviation_gain(rec, pub, cost, p, d) for rec, _, cost, p in chosen)
            gains[d].append(total / len(chosen) / MICRO)
    return gains


NOTES = [
    "How to read it:",
    "- Efficiency counts an agent's cost of a task as its true cost over its success chance (the expected cost "
    "of one verified result), so a junk deliverer's win (half the cost, 5 % success) counts ten times its cost. The first row includes "
    "those wins; the second isolates how well each rule picks among competent agents.",
    "- Utilities are over the whole run, in credits; random assignment pays the reserve, which is why every "
    "population earns more there and posters pay far more per task.",
    "- Cheater rows count junk deliverers and every sybil key: the task number (of the run) at which the key's "
    "reputation first fell below `min_reputation`, the first task that slashed its stake (wins under the "
    "5-credit stake-free size slash nothing), and its wins until excluded. Early in a run the posters are "
    "newcomers too and their ratings weigh 0.5, so a cheater excluded early takes one or two more failures.",
    "- The sybil operator's purse runs dry after a few fresh keys: each key costs failed work and slashed stake.",
    "- Truthfulness intervals are over (agent, seed) pairs; each value is the agent's mean change over its "
    "sampled auctions. Under Vickrey no shading gains (every mean is ≤ 0); under first price shading up "
    "from the break-even bid gains, which shows the check detects a profitable deviation when one exists.",
]


# -- statistics and report -----------------------------------------------------------------------
def interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (0 with one value); NaNs (no observation) are left out."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))


def fmt(values: Sequence[float], digits: int = 2, scale: float = 1.0, suffix: str = "") -> str:
    mean, half = interval([v * scale for v in values])
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f} ± {half:.{digits}f}{suffix}"


def median_or_nan(values: Sequence[int]) -> float:
    return float(statistics.median(values)) if values else math.nan


def build_rows(results: dict[str, list[RunResult]]) -> list[tuple[str, list[str]]]:
    """The main table: one row per metric, one cell per rule."""

    def col(cell: Callable[[list[RunResult]], str]) -> list[str]:
        return [cell(results[r]) for r in RULES]

    def per(kind: str) -> Callable[[list[RunResult]], str]:
        return lambda rs: fmt([r.utility.get(kind, math.nan) for r in rs])

    return [
        ("allocation efficiency (optimum / winners' cost per verified result)",
         col(lambda rs: fmt([r.efficiency for r in rs], 1, 100, " %"))),
        ("— the same over tasks not won by a cheater", col(lambda rs: fmt([r.efficiency_fair for r in rs], 1, 100, " %"))),
        ("tasks won by cheaters (junk + sybil keys)", col(lambda rs: fmt([r.cheat_wins for r in rs], 1, 100, " %"))),
        ("tasks assigned", col(lambda rs: fmt([r.assigned for r in rs], 1, 100, " %"))),
        ("tasks verified and paid", col(lambda rs: fmt([r.completed for r in rs], 1, 100, " %"))),
        ("poster spend per paid task (credits)", col(lambda rs: fmt([r.spend_per_task for r in rs]))),
        ("honest agent utility over the run (credits)", col(per("honest"))),
        ("over-bidder utility", col(per("over"))),
        ("under-bidder utility", col(per("under"))),
        ("ring member utility", col(per("ring"))),
        ("non-revealer utility", col(per("silent"))),
        ("junk deliverer utility", col(per("junk"))),
        ("sybil slot utility (all its keys)", col(per("sybil"))),
        ("bonds forfeited by non-revealers (credits)", col(lambda rs: fmt([r.forfeited for r in rs]))),
        ("shill bids refused / placed", col(lambda rs: f"{sum(r.shill_refused for r in rs)} / {sum(r.shill_bids for r in rs)}")),
        ("cheater keys: task # when reputation < min (median)", col(lambda rs: fmt([median_or_nan(r.cheater_exclusion) for r in rs], 0))),
        ("cheater keys: task # of first slash (median)", col(lambda rs: fmt([median_or_nan(r.cheater_first_slash) for r in rs], 0))),
        ("cheater keys: tasks won before exclusion (median)", col(lambda rs: fmt([median_or_nan(r.cheater_wins) for r in rs], 1))),
        ("cheater keys excluded (junk + sybil keys)", col(lambda rs: fmt([float(len(r.cheater_exclusion)) for r in rs], 1))),
        ("fresh sybil keys used", col(lambda rs: fmt([float(r.sybil_keys) for r in rs], 1))),
        ("co-bidding audit: ring pairs flagged (of 6) / other pairs", col(lambda rs: f"{fmt([float(r.ring_flagged) for r in rs], 1)} / {fmt([float(r.other_flagged) for r in rs], 1)}")),
        ("signed auctions re-checked from events", col(lambda rs: f"{sum(r.rechecked for r in rs)} / {sum(r.signed for r in rs)}")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--sign-every", type=int, default=20, help="every Nth task with signed events (0: none)")
    parser.add_argument("--truth-agents", type=int, default=6, help="honest agents sampled for the truthfulness check")
    parser.add_argument("--truth-auctions", type=int, default=150, help="auctions sampled per agent")
    parser.add_argument("--quick", action="store_true", help="3 seeds × 500 tasks")
    parser.add_argument("--markdown", type=Path, help="also write the tables and the command to this file")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.tasks, args.truth_auctions = 3, 500, 60
    started = time.perf_counter()
    results: dict[str, list[RunResult]] = {r: [] for r in RULES}
    truth: dict[str, dict[int, list[float]]] = {r: {d: [] for d in DEVIATIONS} for r in ("vickrey", "first_price")}
    with Progress(transient=True) as progress:
        bar = progress.add_task("seeds × rules", total=args.seeds * len(RULES))
        for seed in range(args.seeds):
            world = make_world(seed, args.tasks, args.agents)
            sample = [a.index for a in world.agents if a.kind == "honest"][:args.truth_agents]
            for rule in RULES:
                result = run(world, rule, sign_every=args.sign_every, sample=sample if rule != "random" else ())
                results[rule].append(result)
                if rule in truth:
                    for d, gains in truthfulness(result, world, args.truth_auctions, random.Random(seed)).items():
                        truth[rule][d].extend(gains)
                result.samples.clear()  # the auction records are large; the gains are kept
                progress.advance(bar)
    elapsed = time.perf_counter() - started
    command = " ".join(["`.venv/bin/python bench/bench_market.py", *sys.argv[1:]]).strip() + "`"
    report(results, truth, args, elapsed, command)


def report(results: dict[str, list[RunResult]], truth: dict[str, dict[int, list[float]]], args: argparse.Namespace,
           elapsed: float, command: str) -> None:
    console = Console()
    signed = f"every {args.sign_every}th auction signed" if args.sign_every else "no auction signed"
    header = f"{args.seeds} seeds × {args.tasks} tasks × {args.agents} agents, {signed}; {elapsed:.0f} s on {machine()}"
    main_table = Table(title=f"Market simulation (95 % t-intervals over seeds)\n{header}")
    main_table.add_column("metric")
    for rule in ("reverse Vickrey", "first-price sealed", "random (reserve)"):
        main_table.add_column(rule, justify="right")
    rows = build_rows(results)
    for name, cells in rows:
        main_table.add_row(name, *cells)
    console.print(main_table)
    truth_table = Table(title="Truthfulness: expected utility change per auction when the break-even bid is shaded "
                              "(credits; others' bids fixed)")
    truth_table.add_column("deviation")
    truth_table.add_column("reverse Vickrey", justify="right")
    truth_table.add_column("first price", justify="right")
    truth_rows = [(f"{d:+d} %", fmt(truth["vickrey"][d], 4), fmt(truth["first_price"][d], 4)) for d in DEVIATIONS]
    for row in truth_rows:
        truth_table.add_row(*row)
    console.print(truth_table)
    n_truth = len(truth["vickrey"][DEVIATIONS[0]])
    console.print(f"truthfulness samples: {n_truth} agent-seeds × ≤{args.truth_auctions} auctions each")
    if args.markdown:
        lines = ["## Market simulation (issue 15) — " + command, "",
                 f"{header}. Each cell: mean ± half-width of the 95 % t-interval over seeds.", "",
                 "| metric | reverse Vickrey | first-price sealed | random (reserve) |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
        lines += ["", f"Truthfulness ({n_truth} honest agent-seeds, ≤{args.truth_auctions} of each one's auctions; "
                  "expected-utility change per auction in credits when the break-even bid is shaded, every "
                  "other bid fixed):", "", "| deviation | reverse Vickrey | first price |", "|---|---:|---:|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in truth_rows]
        lines += ["", *NOTES]
        args.markdown.write_text("\n".join(lines) + "\n")
        console.print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()

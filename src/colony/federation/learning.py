"""Shared learning: federated averaging of the step-success predictor, as signed events.

A round works like this. Every node starts round ``r`` from the queen's canonical parameters of
round ``r`` (round 0 is the shared initialisation, `StepPredictor`'s fixed seed), learns online from
its own tool calls, and sends an **update** (kind 7310, signed by its node key): the flat parameter
vector, the architecture name (`colony.cognition.predictor.ARCH`), the round it started from and
the number of samples it has learned since. The queen checks each update as it arrives
(`open_update`), and when it closes the round publishes the **canonical** copy of round ``r + 1``
(kind 7311): the sample-weighted mean of the updates (`fedavg`), who contributed and with what
weight. Every node checks the canonical (`open_canonical`: the queen's key, the architecture,
finite values) and anyone holding the updates can recompute it (`recheck`). A node then adopts it
(`apply_canonical`) by blending it with its own parameters in proportion to the data each
represents, or by replacing its parameters outright.

What travels and what stays: only the learned parameters (w1, b1, w2, b2). The predictor's
per-tool failure histories, call counts and session flags are *inputs* describing this node's
tools right now, not learned state; averaging them would mix other nodes' recent failures into
this node's features, and they would reveal which tools it calls. The predictor is trained by
plain SGD, so there are no optimiser accumulators to reconcile; if it grows momentum or Adam
moments they must be reset to zero on adoption (moments of the old point do not describe the new
one) rather than averaged.

Defences against a lying or broken peer (each refusal names a ``reason``):

- the architecture must be exactly this node's `ARCH` and the vector exactly `N_PARAMS` long
  (``wrong_shape``); every value finite (``non_finite``) and within ±`MAX_ABS_PARAM`
  (``out_of_range``: honest weights stay far inside it, a scaled-up vector does not);
- ``samples`` is a whole number in [1, `MAX_SAMPLES`] (``bad_samples``): an update from no data
  carries nothing, and a million tool calls in one round is not a node, it is a claim;
- the update must start from the round being closed (``stale_round``); one update per node per
  round (the pool is a mapping keyed by the signer's public key);
- no node's weight in the mean exceeds `MAX_SHARE` of the total, whatever it claims: shares are
  proportional to samples and then capped by water-filling (`capped_weights`), the excess spread
  over the others in proportion to their samples. With k contributors the cap is
  ``max(MAX_SHARE, 1 / k)``, so a lone contributor still has weight 1 (there is nobody to spread to);
- the cap bounds a liar's *weight*, not how far it pulls: half the weight on a vector at the edge of
  the range would still drag the mean halfway there. So with three or more contributors each vector
  is first clipped toward the coordinate-wise median (centered clipping, `clip_to_median`): one
  farther from the median than `CLIP_FACTOR` times the contributors' median distance is moved along
  its line to that distance. Honest nodes that disagree as much as the middle one are untouched; a
  vector far from the rest pulls the mean no farther than an honest one could.

On the wire: `sign_learning` makes a stand-alone event; between nodes the transport sends the
same content as a message (`colony.federation.messages.message_event(key, receiver, seq,
LEARNING_KINDS[...], body.content())`), whose routing tags `open_update` / `open_canonical`
accept and ignore (the inbox checks them); any other tag is refused.

Errors (a branch of `colony.federation.errors.FederationError`)::

    LearningError   an update or canonical refused, or a round that cannot close (``reason``)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from colony.cognition.predictor import ARCH, N_PARAMS, StepPredictor
from colony.federation.errors import FederationError
from colony.identity.events import Event, event_id, verify_event
from colony.identity.keys import SchnorrKey

__all__ = [
    "CLIP_FACTOR",
    "LEARNING_KINDS",
    "MAX_ABS_PARAM",
    "MAX_SAMPLES",
    "MAX_SHARE",
    "ROUTING_TAGS",
    "AdoptMode",
    "CanonicalBody",
    "Contributor",
    "LearningError",
    "UpdateBody",
    "apply_canonical",
    "capped_weights",
    "check_params",
    "clip_to_median",
    "fedavg",
    "make_update",
    "open_canonical",
    "open_update",
    "recheck",
    "sign_learning",
]

LEARNING_KINDS: dict[str, int] = {
    "update": 7310,     # a node's parameters after a round of local learning, with its sample count
    "canonical": 7311,  # the queen's sample-weighted average: the round every node adopts next
}
#: Tags the transport adds to a node-to-node message (`colony.federation.messages.message_event`):
#: the receiver and the sender's sequence number. They route; they say nothing about the weights.
ROUTING_TAGS = frozenset({"p", "seq"})
MAX_SAMPLES = 1_000_000
MAX_SHARE = 0.5
#: How far from the median (in the contributors' median distance from it) a vector may stay unclipped.
CLIP_FACTOR = 2.0
MAX_ABS_PARAM = 50.0

Arr = npt.NDArray[np.float64]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Round = Annotated[int, Field(ge=0, lt=2**53)]
AdoptMode = Literal["replace", "blend"]


class LearningError(FederationError):
    """An update or canonical refused as sent, or a round that cannot close; ``reason`` is stable."""

    code = "learning_error"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


def _canonical_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class _Body(BaseModel):
    """Strict, closed and immutable: a field cannot carry a second meaning."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    KIND: ClassVar[str]

    v: Literal[1] = 1
    arch: str = Field(max_length=64)
    round: Round
    params: tuple[float, ...] = Field(max_length=4 * N_PARAMS)

    def content(self) -> str:
        return _canonical_json(self.model_dump(mode="json"))

    def vector(self) -> Arr:
        return np.asarray(self.params, dtype=float)


class UpdateBody(_Body):
    """A node's parameters after learning ``samples`` calls, starting from canonical ``round``."""

    KIND: ClassVar[str] = "update"

    samples: int


class Contributor(BaseModel):
    """One node's part in a canonical: what it claimed and the weight the queen gave it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    node: Hex64
    samples: int = Field(ge=1, le=MAX_SAMPLES)
    weight: float = Field(ge=0.0, le=1.0)


class CanonicalBody(_Body):
    """The queen's average for ``round`` (built from updates that started at ``round - 1``)."""

    KIND: ClassVar[str] = "canonical"

    samples: int = Field(ge=0)
    contributors: tuple[Contributor, ...] = Field(max_length=10_000)


B = TypeVar("B", bound=_Body)


def check_params(arch: str, params: Arr | tuple[float, ...]) -> None:
    """Refuse a parameter vector this node cannot use (wrong layout, non-finite, absurd)."""
    if arch != ARCH:
        raise LearningError("wrong_shape", f"weights for {arch!r}; this node runs {ARCH!r}")
    v = np.asarray(params, dtype=float)
    if v.shape != (N_PARAMS,):
        raise LearningError("wrong_shape", f"{v.size} parameters; {ARCH} has {N_PARAMS}")
    if not np.all(np.isfinite(v)):
        raise LearningError("non_finite", "the parameters contain NaN or infinity")
    if float(np.max(np.abs(v))) > MAX_ABS_PARAM:
        raise LearningError("out_of_range", f"a parameter exceeds ±{MAX_ABS_PARAM}")


def _check_update(body: UpdateBody, base_round: int | None) -> None:
    check_params(body.arch, body.params)
    if not 1 <= body.samples <= MAX_SAMPLES:
        raise LearningError("bad_samples", f"samples={body.samples} is outside [1, {MAX_SAMPLES}]")
    if base_round is not None and body.round != base_round:
        raise LearningError("stale_round", f"the update starts from round {body.round}; the open round "
                                           f"starts from {base_round}: adopt the newest canonical first")


def make_update(predictor: StepPredictor) -> UpdateBody:
    """This node's update: its parameters and the samples learned since its canonical round.

    Raises LearningError (``bad_samples``) when it has learned nothing since: it has nothing to add.
    """
    body = UpdateBody(arch=ARCH, round=predictor.canonical_round, params=tuple(predictor.parameters().tolist()),
                      samples=predictor.samples_since_round)
    _check_update(body, None)
    return body


def sign_learning(key: SchnorrKey, body: UpdateBody | CanonicalBody, *, created_at: int) -> Event:
    """``body`` as a signed event of its kind by ``key`` (the node key; the queen's for a canonical)."""
    check_params(body.arch, body.params)
    kind = LEARNING_KINDS[body.KIND]
    content = body.content()
    pubkey = key.public_hex
    eid = event_id(pubkey, created_at, kind, [], content)
    return Event(id=eid, pubkey=pubkey, created_at=created_at, kind=kind, tags=[], content=content,
                 sig=key.sign(bytes.fromhex(eid)).hex())


def _open(event: Event, body_type: type[B]) -> B:
    if not verify_event(event):
        raise LearningError("bad_signature", f"event {event.id[:12]}… does not verify (id or signature)")
    if event.kind != LEARNING_KINDS[body_type.KIND]:
        raise LearningError("wrong_kind", f"event {event.id[:12]}… is kind {event.kind}, not a {body_type.KIND}")
    if any(not tag or tag[0] not in ROUTING_TAGS for tag in event.tags):
        raise LearningError("malformed", "learning events carry only routing tags (p, seq); "
                                         "everything they say is in the content")
    try:
        body = body_type.model_validate_json(event.content)
    except ValidationError as exc:
        raise LearningError("malformed", f"not a valid {body_type.KIND}: {exc.errors()[0]['msg']}") from exc
    if body.content() != event.content:
        raise LearningError("malformed", f"the {body_type.KIND} content is not in canonical form")
    return body


def open_update(event: Event, *, base_round: int) -> UpdateBody:
    """The verified update in ``event`` for the round that started at ``base_round``."""
    body = _open(event, UpdateBody)
    _check_update(body, base_round)
    return body


def open_canonical(event: Event, *, queens: frozenset[str]) -> CanonicalBody:
    """The verified canonical in ``event``, signed by one of ``queens`` (public keys, hex)."""
    body = _open(event, CanonicalBody)
    if event.pubkey not in queens:
        raise LearningError("not_queen", f"canonical signed by {event.pubkey[:12]}…, who is not the queen")
    check_params(body.arch, body.params)
    if body.round < 1 or not body.contributors:
        raise LearningError("malformed", "a canonical needs a round of at least 1 and a contributor")
    if body.samples != sum(c.samples for c in body.contributors):
        raise LearningError("malformed", "the canonical's sample total is not the sum of its contributors'")
    nodes = [c.node for c in body.contributors]
    if nodes != sorted(set(nodes)):
        raise LearningError("malformed", "contributors must be distinct and in key order")
    if [c.weight for c in body.contributors] != capped_weights([c.samples for c in body.contributors]):
        raise LearningError("malformed", "the contributors' weights are not the capped shares of their samples")
    return body


def capped_weights(samples: list[int], cap: float = MAX_SHARE) -> list[float]:
    """Shares proportional to ``samples``, none above ``max(cap, 1/k)``; they sum to 1.

    Water-filling: fix every share that would exceed the cap at the cap, spread what is left over
    the rest in proportion to their samples, repeat until nothing exceeds it (at most k passes).
    """
    if not samples or any(s <= 0 for s in samples):
        raise LearningError("bad_samples", "weights need at least one contributor, each with samples >= 1")
    k = len(samples)
    limit = max(cap, 1.0 / k)
    shares = [0.0] * k
    free = list(range(k))
    left = 1.0
    while free:
        total = float(sum(samples[i] for i in free))
        over = [i for i in free if left * samples[i] / total > limit + 1e-12]
        if not over:
            for i in free:
                shares[i] = left * samples[i] / total
            break
        for i in over:
            shares[i] = limit
        left -= limit * len(over)
        free = [i for i in free if i not in over]
    return shares


def clip_to_median(vectors: Arr, factor: float = CLIP_FACTOR) -> Arr:
    """Each row moved toward the coordinate-wise median to at most ``factor`` × the rows' median
    distance from it (module docstring); fewer than three rows have no meaningful median and pass."""
    if len(vectors) < 3:
        return vectors
    center = np.median(vectors, axis=0)
    offsets = vectors - center
    dist = np.linalg.norm(offsets, axis=1)
    radius = factor * float(np.median(dist))
    scale = np.ones_like(dist)
    far = dist > radius
    scale[far] = radius / dist[far]
    out: Arr = center + offsets * scale[:, None]
    return out


def fedavg(updates: Mapping[str, UpdateBody], *, base_round: int) -> CanonicalBody:
    """The canonical of round ``base_round + 1``: the capped sample-weighted mean of ``updates``,
    each clipped toward the median first (`clip_to_median`).

    ``updates`` maps each signer's public key to its opened update. Everything is re-checked here
    (a pool built some other way gets the same refusals) and contributors are taken in key order,
    so anyone with the same updates computes the same floats (`recheck`).
    """
    if not updates:
        raise LearningError("no_updates", f"round {base_round + 1} has no updates to average")
    nodes = sorted(updates)
    for node in nodes:
        try:
            _check_update(updates[node], base_round)
        except LearningError as exc:
            raise LearningError(exc.reason, f"update from {node[:12]}…: {exc}") from exc
    counts = [updates[n].samples for n in nodes]
    weights = capped_weights(counts)
    stacked = clip_to_median(np.stack([updates[n].vector() for n in nodes]))
    mean = np.asarray(weights, dtype=float) @ stacked
    return CanonicalBody(arch=ARCH, round=base_round + 1, params=tuple(mean.tolist()), samples=sum(counts),
                         contributors=tuple(Contributor(node=n, samples=c, weight=w)
                                            for n, c, w in zip(nodes, counts, weights, strict=True)))


def recheck(canonical: CanonicalBody, updates: Mapping[str, UpdateBody]) -> bool:
    """True when ``canonical`` is exactly what `fedavg` makes of ``updates`` (same nodes, same floats)."""
    try:
        again = fedavg(updates, base_round=canonical.round - 1)
    except LearningError:
        return False
    return again == canonical


def apply_canonical(predictor: StepPredictor, canonical: CanonicalBody, *, mode: AdoptMode = "blend",
                    local_weight: float | None = None) -> float:
    """Adopt ``canonical``; returns the weight kept on the node's own parameters (0 for replace).

    ``replace`` takes the colony's parameters as they are. ``blend`` (the default) keeps a share
    ``a`` of the node's own: ``a * own + (1 - a) * canonical``, by default ``a = n / N`` with ``n`` what
    the node learned this round and ``N`` the canonical's sample total -- its own share of the
    colony's data, which the share cap may have cut in the mean. A node with little data keeps
    almost nothing (so it gets what ``replace`` gives it); one that supplied most of the data keeps
    most of its own fit. Measured by `bench/bench_fedavg.py` (16 seeds, 4 nodes): the small node
    gains the same under both (+5.8 accuracy points at node noise 0.5); at noise 1.5 ``replace``
    costs the big nodes 10-20 mnats of log-loss and ``blend`` about half that. The predictor's
    histories stay as they are and its sample count restarts at the canonical's round either way.
    """
    check_params(canonical.arch, canonical.params)
    if canonical.round <= predictor.canonical_round:
        raise LearningError("stale_round", f"canonical round {canonical.round} is not newer than this node's "
                                           f"round {predictor.canonical_round}: a replay or an old copy")
    target = canonical.vector()
    kept = 0.0
    if mode == "blend":
        n = predictor.samples_since_round
        kept = min(1.0, n / canonical.samples) if local_weight is None else local_weight
        if not (math.isfinite(kept) and 0.0 <= kept <= 1.0):
            raise LearningError("bad_weight", f"local weight {kept} is outside [0, 1]")
        target = kept * predictor.parameters() + (1.0 - kept) * target
    predictor.set_parameters(target, canonical_round=canonical.round)
    return kept

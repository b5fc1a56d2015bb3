"""Federated averaging of the step predictor: wire format, refusals, the mean, the cap, adoption."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from colony.cognition.predictor import ARCH, N_PARAMS, StepPredictor
from colony.federation.errors import FederationError
from colony.federation.learning import (
    CLIP_FACTOR,
    LEARNING_KINDS,
    MAX_ABS_PARAM,
    MAX_SAMPLES,
    MAX_SHARE,
    CanonicalBody,
    LearningError,
    UpdateBody,
    apply_canonical,
    capped_weights,
    check_params,
    clip_to_median,
    fedavg,
    make_update,
    open_canonical,
    open_update,
    recheck,
    sign_learning,
)
from colony.federation.messages import message_event
from colony.identity.events import Event, sign_event
from colony.identity.keys import SchnorrKey

AT = 1_700_000_000


def _trained(calls: int, seed: int = 1) -> StepPredictor:
    rng = np.random.default_rng(seed)
    p = StepPredictor()
    for i in range(calls):
        tool = ("read_file", "http_get", "run_command")[i % 3]
        ok = bool(rng.random() < (0.9, 0.3, 0.6)[i % 3])
        p.learn(p.features(tool, arg_bytes=40), ok, tool)
    return p


def _body(samples: int, fill: float, round: int = 0) -> UpdateBody:
    return UpdateBody(arch=ARCH, round=round, params=(fill,) * N_PARAMS, samples=samples)


def _raw(key: SchnorrKey, content: dict[str, object] | str, kind: int = LEARNING_KINDS["update"]) -> Event:
    """An event signed exactly as a hostile peer would: any content, a valid signature."""
    text = content if isinstance(content, str) else json.dumps(content, separators=(",", ":"), sort_keys=True)
    return sign_event(key, kind, text, created_at=AT)


def _update_dict(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"v": 1, "arch": ARCH, "round": 0, "samples": 10, "params": [0.1] * N_PARAMS}
    base.update(changes)
    return base


# -- the predictor's side ------------------------------------------------------------------------
def test_parameters_round_trip_and_federation_position_survives_dump() -> None:
    p = _trained(60)
    vector = p.parameters()
    assert vector.shape == (N_PARAMS,)
    fresh = StepPredictor(seed=99)
    fresh.set_parameters(vector, canonical_round=3)
    x = p.features("http_get", arg_bytes=40)  # the histories stay local: compare on the same inputs
    assert fresh.predict(x) == p.predict(x)
    assert fresh.canonical_round == 3 and fresh.samples_since_round == 0
    fresh.learn(x, True, "http_get")
    again = StepPredictor()
    again.load(fresh.dump())
    assert (again.canonical_round, again.samples_since_round) == (3, 1)
    vector[0] = 1e9  # parameters() is a copy: changing it changes nothing
    assert p.w1[0, 0] != 1e9
    for bad in (np.zeros(N_PARAMS - 1), np.full(N_PARAMS, np.nan)):
        with pytest.raises(ValueError, match="finite parameters"):
            fresh.set_parameters(bad)


# -- updates on the wire ---------------------------------------------------------------------------
def test_update_signed_and_opened_is_the_node_parameters() -> None:
    key = SchnorrKey.generate()
    p = _trained(50)
    event = sign_learning(key, make_update(p), created_at=AT)
    assert event.kind == 7310 and event.pubkey == key.public_hex
    body = open_update(event, base_round=0)
    assert body.samples == 50 and body.round == 0 and body.arch == ARCH
    assert np.array_equal(body.vector(), p.parameters())  # floats survive JSON exactly


def test_a_node_that_learned_nothing_has_no_update() -> None:
    with pytest.raises(LearningError) as err:
        make_update(StepPredictor())
    assert err.value.reason == "bad_samples"


@pytest.mark.parametrize(("content", "reason"), [
    (_update_dict(params=[0.1] * (N_PARAMS - 1)), "wrong_shape"),
    (_update_dict(params=[0.1] * (N_PARAMS + 1)), "wrong_shape"),
    (_update_dict(arch="step-predictor/1/22x32"), "wrong_shape"),
    (_update_dict(params=[0.1] * (N_PARAMS - 1) + [MAX_ABS_PARAM * 2]), "out_of_range"),
    (_update_dict(samples=0), "bad_samples"),
    (_update_dict(samples=-5), "bad_samples"),
    (_update_dict(samples=MAX_SAMPLES + 1), "bad_samples"),
    (_update_dict(round=2), "stale_round"),
    (_update_dict(v=2), "malformed"),
    (_update_dict(extra="x"), "malformed"),
    (_update_dict(samples="10"), "malformed"),
    (_update_dict(samples=10.5), "malformed"),
])
def test_hostile_updates_are_refused(content: dict[str, object], reason: str) -> None:
    with pytest.raises(LearningError) as err:
        open_update(_raw(SchnorrKey.generate(), content), base_round=1 if reason == "stale_round" else 0)
    assert err.value.reason == reason


def test_non_finite_values_are_refused_even_when_signed() -> None:
    key = SchnorrKey.generate()
    for token in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(_update_dict(), separators=(",", ":"), sort_keys=True).replace("0.1]", token + "]", 1)
        with pytest.raises(LearningError) as err:
            open_update(_raw(key, text), base_round=0)
        assert err.value.reason == "non_finite"
    with pytest.raises(LearningError):  # and we never sign one ourselves
        sign_learning(key, UpdateBody(arch=ARCH, round=0, params=(math.nan,) * N_PARAMS, samples=1), created_at=AT)


def test_forged_replayed_as_other_kind_tagged_or_reformatted_updates_are_refused() -> None:
    key = SchnorrKey.generate()
    good = sign_learning(key, _body(10, 0.1), created_at=AT)
    forged = good.model_copy(update={"content": good.content.replace('"samples":10', '"samples":99')})
    as_canonical = _raw(key, good.content, kind=LEARNING_KINDS["canonical"])
    tagged = sign_event(key, 7310, good.content, tags=[["round", "0"]], created_at=AT)
    routed = message_event(key, SchnorrKey.generate().public_hex, 1, LEARNING_KINDS["update"], good.content)
    assert open_update(routed, base_round=0) == open_update(good, base_round=0)  # the transport's tags are fine
    spaced = _raw(key, json.dumps(_update_dict(params=[0.1] * N_PARAMS)))  # not the canonical form
    cases = [(forged, "bad_signature"), (as_canonical, "wrong_kind"), (tagged, "malformed"), (spaced, "malformed")]
    for event, reason in cases:
        with pytest.raises(LearningError) as err:
            open_update(event, base_round=0)
        assert err.value.reason == reason


# -- the mean and the cap --------------------------------------------------------------------------
def _node(i: int) -> str:
    return f"{i:064x}"


def test_fedavg_is_the_sample_weighted_mean() -> None:
    pool = {_node(1): _body(100, 1.0), _node(2): _body(100, 2.0), _node(3): _body(200, 4.0)}
    canonical = fedavg(pool, base_round=0)
    assert canonical.round == 1 and canonical.samples == 400
    assert np.allclose(canonical.vector(), (100 * 1 + 100 * 2 + 200 * 4) / 400)
    assert [(c.node, c.samples, c.weight) for c in canonical.contributors] == [
        (_node(1), 100, 0.25), (_node(2), 100, 0.25), (_node(3), 200, 0.5)]


def test_one_liar_cannot_own_the_average() -> None:
    """Its claimed samples buy it at most half the weight, and its vector is clipped to the honest
    ones' spread: three honest nodes that agree keep the mean exactly where they are (it used to be
    dragged halfway to the liar's edge of the range, -24.5)."""
    honest = {_node(i): _body(500, 1.0) for i in range(1, 4)}
    liar = {_node(9): _body(MAX_SAMPLES, -MAX_ABS_PARAM)}
    canonical = fedavg(honest | liar, base_round=0)
    weights = {c.node: c.weight for c in canonical.contributors}
    assert weights[_node(9)] == pytest.approx(MAX_SHARE)
    assert all(weights[_node(i)] == pytest.approx(MAX_SHARE / 3) for i in range(1, 4))
    assert np.allclose(canonical.vector(), 1.0)


def test_a_liar_pulls_no_farther_than_the_honest_spread() -> None:
    """Honest nodes that disagree (0.8, 1.0, 1.2 in every coordinate) and a liar at +50 with half the
    weight. Per coordinate the median of the four is 1.1; the distances from it are 0.3, 0.1, 0.1
    (× √N) and the liar's, whose median is 0.2·√N; so the liar is moved to 1.1 + 2·0.2 = 1.5 and the
    others stay. The mean: 1/6·(0.8 + 1.0 + 1.2) + 1/2·1.5 = 1.25, where it used to be 25.5."""
    honest = {_node(1): _body(500, 0.8), _node(2): _body(500, 1.0), _node(3): _body(500, 1.2)}
    liar = {_node(9): _body(MAX_SAMPLES, MAX_ABS_PARAM)}
    mean = fedavg(honest | liar, base_round=0).vector()
    assert np.allclose(mean, 1.25)
    alone = fedavg(honest, base_round=0).vector()  # honest nodes within the spread are not clipped
    assert np.allclose(alone, 1.0)


@given(hs.lists(hs.floats(min_value=-MAX_ABS_PARAM, max_value=MAX_ABS_PARAM), min_size=3, max_size=9))
def test_clipping_never_moves_a_row_away_from_the_median_nor_past_it(values: list[float]) -> None:
    rows = np.array([[v, -v] for v in values])
    clipped = clip_to_median(rows)
    center = np.median(rows, axis=0)
    before = np.linalg.norm(rows - center, axis=1)
    after = np.linalg.norm(clipped - center, axis=1)
    assert np.all(after <= before + 1e-9)
    assert np.all(after <= CLIP_FACTOR * np.median(before) + 1e-9)
    assert np.all(np.sum((rows - center) * (clipped - center), axis=1) >= -1e-9)  # same side of the median


@given(hs.lists(hs.integers(min_value=1, max_value=MAX_SAMPLES), min_size=1, max_size=12))
def test_capped_weights_sum_to_one_respect_the_cap_and_keep_the_order(samples: list[int]) -> None:
    shares = capped_weights(samples)
    limit = max(MAX_SHARE, 1 / len(samples))
    assert math.isclose(sum(shares), 1.0, abs_tol=1e-9)
    assert max(shares) <= limit + 1e-9
    for a, b in zip(samples, shares, strict=True):
        for c, d in zip(samples, shares, strict=True):
            if a <= c:
                assert b <= d + 1e-12  # more data never means less weight


def test_capped_weights_refuse_hostile_counts() -> None:
    for bad in ([], [0], [5, -1]):
        with pytest.raises(LearningError):
            capped_weights(bad)
    assert capped_weights([7]) == [1.0]  # a lone contributor: nobody to spread the excess to


def test_fedavg_refuses_what_open_update_refuses() -> None:
    with pytest.raises(LearningError) as err:
        fedavg({}, base_round=0)
    assert err.value.reason == "no_updates"
    cases = [
        (_body(10, math.nan), "non_finite"),
        (_body(10, 0.1, round=1), "stale_round"),
        (_body(0, 0.1), "bad_samples"),
        (UpdateBody(arch=ARCH, round=0, params=(0.1,) * 3, samples=10), "wrong_shape"),
    ]
    for bad, reason in cases:
        with pytest.raises(LearningError) as err:
            fedavg({_node(1): _body(10, 0.1), _node(2): bad}, base_round=0)
        assert err.value.reason == reason and _node(2)[:12] in str(err.value)


# -- the canonical ---------------------------------------------------------------------------------
def _published() -> tuple[SchnorrKey, dict[str, UpdateBody], Event]:
    queen = SchnorrKey.generate()
    pool = {_node(1): make_update(_trained(80, 1)), _node(2): make_update(_trained(40, 2))}
    return queen, pool, sign_learning(queen, fedavg(pool, base_round=0), created_at=AT)


def test_canonical_from_the_queen_opens_and_rechecks() -> None:
    queen, pool, event = _published()
    canonical = open_canonical(event, queens=frozenset({queen.public_hex}))
    assert event.kind == 7311 and canonical.round == 1 and canonical.samples == 120
    assert recheck(canonical, pool)
    tweaked = canonical.model_copy(update={"params": (canonical.params[0] + 1e-12, *canonical.params[1:])})
    assert not recheck(tweaked, pool)
    assert not recheck(canonical, {_node(1): pool[_node(1)]})  # a contributor left out
    swapped = {_node(1): pool[_node(1)], _node(3): pool[_node(2)]}  # credited to someone else
    assert not recheck(canonical, swapped)


def test_canonical_refused_from_anyone_but_the_queen_or_when_inconsistent() -> None:
    queen, _, event = _published()
    with pytest.raises(LearningError) as err:
        open_canonical(event, queens=frozenset({SchnorrKey.generate().public_hex}))
    assert err.value.reason == "not_queen"
    body = json.loads(event.content)
    cases = [
        {**body, "samples": body["samples"] + 1},
        {**body, "contributors": []},
        {**body, "round": 0},
        {**body, "contributors": body["contributors"][::-1]},
        {**body, "contributors": [body["contributors"][0]] * 2, "samples": 2 * body["contributors"][0]["samples"]},
        {**body, "contributors": [{**c, "weight": w} for c, w in zip(body["contributors"], (0.3, 0.7), strict=True)]},
    ]
    for content in cases:
        with pytest.raises(LearningError) as err:
            open_canonical(_raw(queen, content, kind=7311), queens=frozenset({queen.public_hex}))
        assert err.value.reason == "malformed"


# -- adoption --------------------------------------------------------------------------------------
def _canonical(round: int, fill: float, samples: int) -> CanonicalBody:
    return fedavg({_node(1): _body(samples, fill, round=round - 1)}, base_round=round - 1)


def test_replace_takes_the_canonical_and_restarts_the_count() -> None:
    p = _trained(30)
    kept = apply_canonical(p, _canonical(1, 0.2, 1000), mode="replace")
    assert kept == 0.0 and np.allclose(p.parameters(), 0.2)
    assert p.canonical_round == 1 and p.samples_since_round == 0 and p.seen == 30


def test_blend_keeps_the_node_share_of_the_colony_data() -> None:
    p = _trained(250)
    own = p.parameters()
    kept = apply_canonical(p, _canonical(1, 0.2, 1000))
    assert kept == pytest.approx(0.25)
    assert np.allclose(p.parameters(), 0.25 * own + 0.75 * 0.2)
    q = _trained(250)
    assert apply_canonical(q, _canonical(1, 0.2, 1000), mode="blend", local_weight=0.0) == 0.0
    assert np.allclose(q.parameters(), 0.2)


def test_adoption_refuses_replays_bad_weights_and_bad_params() -> None:
    p = _trained(30)
    apply_canonical(p, _canonical(2, 0.2, 100))
    before = p.parameters()
    for stale in (_canonical(2, 0.3, 100), _canonical(1, 0.3, 100)):
        with pytest.raises(LearningError) as err:
            apply_canonical(p, stale)
        assert err.value.reason == "stale_round"
    for weight in (math.nan, -0.1, 1.5):
        with pytest.raises(LearningError) as err:
            apply_canonical(p, _canonical(3, 0.3, 100), local_weight=weight)
        assert err.value.reason == "bad_weight"
    nan = CanonicalBody(arch=ARCH, round=9, params=(math.nan,) * N_PARAMS, samples=1, contributors=())
    with pytest.raises(LearningError):
        apply_canonical(p, nan)
    assert np.array_equal(p.parameters(), before) and p.canonical_round == 2  # nothing changed


def test_learning_errors_are_federation_errors() -> None:
    assert issubclass(LearningError, FederationError)
    assert LearningError("stale_round", "x").reason == "stale_round"


def test_check_params_names_the_problem() -> None:
    with pytest.raises(LearningError, match="this node runs"):
        check_params("other", (0.0,) * N_PARAMS)
    with pytest.raises(LearningError, match="parameters; "):
        check_params(ARCH, ())

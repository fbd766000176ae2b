"""Property tests of the DataDrivenOptimizer's invariants over random spaces and evidence.

Whatever the space (within HyperParams' hard bounds) and the evidence (regime, prior trials,
incumbent, deployed model and its loss curves), narrowing
1. never leaves the hard bounds,
2. never narrows below the minimum width (and never widens by narrowing),
3. keeps the incumbent wherever the space held it,
4. is idempotent: narrowing its own result changes nothing and fires nothing.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.families import BUILTIN
from pipelines.narrowing.base import Evidence
from pipelines.narrowing.diagnostics import TrainingDiagnostics
from pipelines.narrowing.limits import hard_bounds, min_width, uses_ratio
from pipelines.narrowing.optimizer import DataDrivenOptimizer
from pipelines.narrowing.rules import DEFAULT_RULES
from pipelines.narrowing.rules.deployed_architecture import DeployedArchitectureStaysFixed
from pipelines.narrowing.rules.edge_widening import BestOnEdgeWidensRange
from pipelines.param_specs import Categorical, FloatRange, IntRange, contains

# no example database: a failure prints its (shrunk) example, and the repository stays clean
PROPERTY = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
NARROWING_ONLY = [
    r for r in DEFAULT_RULES if not isinstance(r, BestOnEdgeWidensRange | DeployedArchitectureStaysFixed)
]
INT_PARAMS = ("hidden_size", "num_layers", "seq_len", "epochs", "batch_size")

# --- strategies -------------------------------------------------------------------------------


def _float_value(param: str) -> st.SearchStrategy[float]:
    if param == "lr":
        return st.floats(-7, -0.01).map(lambda e: 10.0**e)
    low, high = hard_bounds(param)
    return st.floats(low, high)


def _int_value(param: str) -> st.SearchStrategy[int]:
    low, high = hard_bounds(param)
    return st.integers(int(low), int(min(high, 600)))


VALUES = {
    "lr": _float_value("lr"),
    "dropout": _float_value("dropout"),
    "entry_threshold": _float_value("entry_threshold"),
    **{p: _int_value(p) for p in INT_PARAMS},
    "long_short": st.booleans(),
    "model_family": st.sampled_from(sorted(BUILTIN)),
}


@st.composite
def float_spec(draw, param: str):
    kind = draw(st.sampled_from(["uniform", "loguniform"]) if param == "lr" else st.just("uniform"))
    a, b = draw(VALUES[param]), draw(VALUES[param])
    if a == b:
        b = min(a * 1.5 + 1e-3, hard_bounds(param)[1])
    low, high = min(a, b), max(a, b)
    if low >= high:
        low = high / 2
    return FloatRange(type=kind, low=low, high=high)


@st.composite
def int_spec(draw, param: str):
    if draw(st.booleans()):
        choices = draw(st.lists(VALUES[param], min_size=1, max_size=5, unique=True))
        return Categorical(type="categorical", choices=tuple(sorted(choices)))
    a, b = draw(VALUES[param]), draw(VALUES[param])
    low, high = min(a, b), max(a, b)
    if low == high:
        low, high = (low - 1, high) if low > hard_bounds(param)[0] else (low, high + 1)
    step = draw(st.integers(1, max(1, min(10, high - low))))
    return IntRange(type="int", low=low, high=high, step=step)


@st.composite
def spaces(draw):
    space = {}
    for param in ("lr", "dropout", "entry_threshold"):
        if draw(st.booleans()):
            space[param] = draw(float_spec(param))
    for param in INT_PARAMS:
        if draw(st.booleans()):
            space[param] = draw(int_spec(param))
    if draw(st.booleans()):
        space["long_short"] = Categorical(
            type="categorical", choices=tuple(draw(st.sampled_from([(False,), (True,), (False, True)])))
        )
    if draw(st.booleans()):
        space["model_family"] = Categorical(type="categorical", choices=tuple(BUILTIN))
    return space


def params(keys=tuple(VALUES)):
    return st.fixed_dictionaries({}, optional={k: VALUES[k] for k in keys})


@st.composite
def point_of(draw, space):
    """Values inside ``space`` for some of its parameters (so the incumbent is often kept)."""
    out = {}
    for param, spec in space.items():
        if not draw(st.booleans()):
            continue
        if isinstance(spec, Categorical):
            out[param] = draw(st.sampled_from(spec.choices))
        elif isinstance(spec, IntRange):
            out[param] = spec.low + spec.step * draw(st.integers(0, (spec.high - spec.low) // spec.step))
        else:
            out[param] = draw(st.floats(spec.low, spec.high))
    return out


@st.composite
def diagnostics(draw):
    """Loss curves around a level near 1.0 (predicting zero), flat, noisy, rising or falling."""
    n = draw(st.integers(0, 8))
    lr = draw(VALUES["lr"])
    level = draw(st.floats(0.3, 1.5))
    drift = draw(st.floats(-0.1, 0.1))
    history = [
        {
            "epoch": i + 1,
            "train_loss": level * (1 + drift * i) * draw(st.floats(0.97, 1.03)),
            "val_loss": draw(st.one_of(st.none(), st.floats(0.8, 1.6).map(lambda r: level * r))),
            "lr": lr,
        }
        for i in range(n)
    ]
    metrics = {
        "history": history,
        "best_val_loss": draw(st.one_of(st.none(), st.floats(0.9, 1.6).map(lambda r: level * r))),
        "best_epoch": draw(st.integers(0, max(n, 1))),
        "stopped_early": draw(st.booleans()),
    }
    return TrainingDiagnostics.from_metrics(
        metrics, trained_how=draw(st.sampled_from([None, "scratch", "finetune"]))
    )


@st.composite
def evidence_for(draw, space):
    incumbent = draw(st.one_of(st.none(), point_of(space), params()))
    deployed = draw(st.one_of(st.none(), st.just(incumbent), st.fixed_dictionaries(VALUES)))
    return Evidence(
        n_bars=draw(st.integers(0, 10_000)),
        recent_volatility=draw(st.floats(0, 0.1)),
        long_volatility=draw(st.floats(0, 0.1)),
        recent_bars=draw(st.integers(0, 300)),
        trend_tstat=draw(st.one_of(st.none(), st.floats(-6, 6))),
        recent_drift=draw(st.one_of(st.none(), st.floats(-0.01, 0.01))),
        autocorrelation=draw(st.one_of(st.none(), st.floats(-0.99, 0.99))),
        prior_top_trials=draw(st.lists(params(("lr", "dropout")), max_size=6)),
        prior_best_params=draw(st.one_of(st.none(), point_of(space), params())),
        incumbent=incumbent,
        deployed_params=deployed,
        pin_architecture=draw(st.booleans()),
        training=draw(st.one_of(st.none(), diagnostics())),
    )


@st.composite
def cases(draw):
    space = draw(spaces())
    return space, draw(evidence_for(space))


# --- helpers ----------------------------------------------------------------------------------


def numeric(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def width(param, spec) -> float:
    if uses_ratio(param, spec):
        return math.log(spec.high) - math.log(spec.low)
    return spec.high - spec.low


def grid_points(spec: IntRange) -> int:
    return (spec.high - spec.low) // spec.step + 1


def pinned(result) -> set[str]:
    return {f.param for f in result.firings if f.rule == DeployedArchitectureStaysFixed().name}


# --- the invariants (one check each; drawn together, since drawing a case costs more than checking it)


def check_hard_bounds(result):
    for param, spec in result.after.items():
        low, high = hard_bounds(param)
        if isinstance(spec, Categorical):
            assert all(low <= c <= high for c in spec.choices if numeric(c)), (param, spec)
        else:
            assert low <= spec.low < spec.high <= high, (param, spec)


def check_min_width(space, result):
    for param, after in result.after.items():
        before = space[param]
        if param in pinned(result):
            continue
        if isinstance(before, FloatRange):
            assert isinstance(after, FloatRange)
            floor = min(min_width(param, before), width(param, before))
            assert width(param, after) >= floor * (1 - 1e-9), (param, before, after)
        elif isinstance(before, IntRange):
            assert isinstance(after, IntRange), (param, before, after)
            assert grid_points(after) >= min(2, grid_points(before)), (param, before, after)
        else:
            assert isinstance(after, Categorical) and len(after.choices) >= 1


def check_incumbent(space, evidence, result):
    for param, value in (evidence.incumbent or {}).items():
        if param in space and contains(space[param], value):
            assert contains(result.after[param], value), (param, value, space[param], result.after[param])


def check_idempotent(optimizer, evidence, result):
    again = optimizer.narrow(result.after, evidence)
    assert again.after == result.after
    assert again.firings == [], [(f.rule, f.param, f.before, f.after) for f in again.firings]


RULE_ORDERS = st.one_of(
    st.just(list(DEFAULT_RULES)),
    st.permutations(DEFAULT_RULES),
    st.lists(st.sampled_from(DEFAULT_RULES), max_size=len(DEFAULT_RULES), unique_by=lambda r: r.name),
)


@PROPERTY
@given(cases(), RULE_ORDERS)
def test_invariants_hold_for_any_space_evidence_and_rule_order(case, rules):
    """Hard bounds, minimum width, incumbent inside, idempotence: in the default order or any other."""
    space, evidence = case
    optimizer = DataDrivenOptimizer(rules)
    result = optimizer.narrow(space, evidence)
    check_hard_bounds(result)
    check_min_width(space, result)
    check_incumbent(space, evidence, result)
    check_idempotent(optimizer, evidence, result)


@PROPERTY
@given(cases())
def test_narrowing_never_widens(case):
    """Without pins and edge widening, every range ends inside the one it started as."""
    space, evidence = case
    result = DataDrivenOptimizer(NARROWING_ONLY).narrow(space, evidence)
    for param, after in result.after.items():
        before = space[param]
        if isinstance(before, Categorical):
            assert set(after.choices) <= set(before.choices), (param, before, after)
        elif isinstance(after, Categorical):
            raise AssertionError(f"{param}: a range became a categorical without a pin: {after}")
        else:
            assert before.low <= after.low < after.high <= before.high, (param, before, after)
            if isinstance(before, FloatRange) and width(param, before) <= min_width(param, before):
                assert after == before, "a range already narrower than the minimum was narrowed"

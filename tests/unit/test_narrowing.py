"""pipelines.narrowing: the optimizer's limits and each rule's trigger."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from pipelines.narrowing.base import Evidence, pin, with_bounds
from pipelines.narrowing.optimizer import DataDrivenOptimizer, data_evidence, hard_bounds
from pipelines.narrowing.rules import DEFAULT_RULES
from pipelines.narrowing.rules.deployed_architecture import DeployedArchitectureStaysFixed
from pipelines.narrowing.rules.edge_widening import BestOnEdgeWidensRange
from pipelines.narrowing.rules.prior_trials import PriorTopTrialsTightenLearningRate
from pipelines.narrowing.rules.short_history import ShortHistoryCapsModelSize
from pipelines.narrowing.rules.volatility import VolatilityRegimeShiftsSequenceLength
from pipelines.param_specs import Categorical, FloatRange, IntRange

SPACE = {
    "lr": FloatRange(type="loguniform", low=1e-5, high=1e-2),
    "dropout": FloatRange(type="uniform", low=0.0, high=0.5),
    "hidden_size": Categorical(type="categorical", choices=(8, 16, 32, 64)),
    "num_layers": IntRange(type="int", low=1, high=4),
    "seq_len": IntRange(type="int", low=10, high=70, step=5),
    "entry_threshold": FloatRange(type="uniform", low=0.0, high=0.5),
}


def neutral(**overrides) -> Evidence:
    """Evidence that should make no rule fire: long history, steady volatility, no priors."""
    return Evidence(**({"n_bars": 5000, "recent_volatility": 0.01, "long_volatility": 0.01} | overrides))


@dataclass(frozen=True)
class Propose:
    """A test rule that proposes fixed specs, to probe the optimizer's limits."""

    proposals: dict = field(default_factory=dict)
    name: str = "test_rule"

    def propose(self, space, evidence):
        return [(p, spec, "test", {}) for p, spec in self.proposals.items() if p in space]


def narrow(space, evidence, *rules, **kwargs):
    return DataDrivenOptimizer(rules=list(rules), **kwargs).narrow(space, evidence)


def in_hard_bounds(param, spec) -> bool:
    low, high = hard_bounds(param)
    if isinstance(spec, Categorical):
        return all(low <= c <= high for c in spec.choices)
    return low <= spec.low < spec.high <= high


def contains_value(spec, value) -> bool:
    if isinstance(spec, Categorical):
        return value in spec.choices
    return spec.low <= value <= spec.high


# --- the optimizer's limits -------------------------------------------------------------------


def test_hard_bounds_come_from_hyperparams():
    assert hard_bounds("num_layers") == (1.0, 8.0)
    low, high = hard_bounds("dropout")
    assert low == 0.0 and high < 1.0
    low, high = hard_bounds("lr")  # lr > 0 is an open bound: the floor is strictly positive
    assert 0.0 < low < 1e-300 and high < 1.0


def test_default_rules_with_neutral_evidence_change_nothing():
    result = DataDrivenOptimizer().narrow(SPACE, neutral())
    assert result.firings == []
    assert result.after == SPACE


@pytest.mark.parametrize(
    ("param", "proposed"),
    [
        ("num_layers", IntRange(type="int", low=0, high=20)),
        ("dropout", FloatRange(type="uniform", low=-0.5, high=1.5)),
        ("lr", FloatRange(type="loguniform", low=1e-9, high=5.0)),
        ("entry_threshold", FloatRange(type="uniform", low=-1.0, high=9.0)),
    ],
)
def test_wild_proposals_are_clamped_to_hard_bounds(param, proposed):
    result = narrow(SPACE, neutral(), Propose({param: proposed}))
    assert in_hard_bounds(param, result.after[param]), result.after[param]


@pytest.mark.parametrize(
    ("param", "proposed"),
    [
        # a tiny range at the bottom edge: widening it to the minimum width must not cross 0
        ("dropout", FloatRange.model_construct(type="uniform", low=0.0, high=1e-4)),
        ("entry_threshold", FloatRange.model_construct(type="uniform", low=0.0, high=0.0)),
        ("lr", FloatRange.model_construct(type="uniform", low=1e-5, high=1.2e-5)),
    ],
)
def test_min_width_widening_stays_within_hard_bounds(param, proposed):
    space = dict(SPACE, lr=FloatRange(type="uniform", low=1e-5, high=1e-2))
    result = narrow(space, neutral(), Propose({param: proposed}))
    after = result.after[param]
    assert in_hard_bounds(param, after), f"{param} widened outside its hard bounds: {after}"


def test_uniform_lr_near_its_floor_never_goes_negative():
    # Top prior trials clustered at the bottom of a uniform lr range: a realistic input.
    space = dict(SPACE, lr=FloatRange(type="uniform", low=1e-5, high=1e-2))
    trials = [{"lr": 1.0e-5}, {"lr": 1.1e-5}, {"lr": 1.2e-5}]
    result = narrow(space, neutral(prior_top_trials=trials), PriorTopTrialsTightenLearningRate())
    assert result.after["lr"].low > 0, f"lr range {result.after['lr']} admits lr <= 0"


@pytest.mark.parametrize(
    ("param", "proposed", "incumbent"),
    [
        ("lr", FloatRange(type="loguniform", low=1e-3, high=2e-3), 1e-4),
        ("lr", FloatRange(type="loguniform", low=1e-5, high=2e-5), 5e-3),
        ("dropout", FloatRange(type="uniform", low=0.3, high=0.4), 0.05),
        ("num_layers", IntRange.model_construct(type="int", low=1, high=1, step=1), 3),
        ("seq_len", IntRange(type="int", low=10, high=20, step=5), 60),
        ("hidden_size", Categorical(type="categorical", choices=(8,)), 64),
    ],
)
def test_the_incumbent_stays_inside(param, proposed, incumbent):
    result = narrow(SPACE, neutral(incumbent={param: incumbent}), Propose({param: proposed}))
    assert contains_value(result.after[param], incumbent), result.after[param]


@pytest.mark.parametrize(
    ("param", "original", "proposed", "measure", "minimum"),
    [  # scales (loguniform, or a positive hard floor like lr's) keep high/low >= 3; others a fixed span
        ("lr", FloatRange(type="loguniform", low=1e-5, high=1e-2), (1e-3, 1.0001e-3), math.log, math.log(3)),
        ("lr", FloatRange(type="uniform", low=1e-5, high=1e-2), (1e-3, 1.0001e-3), math.log, math.log(3)),
        ("dropout", FloatRange(type="uniform", low=0.0, high=0.5), (0.2, 0.21), float, 0.1),
        ("entry_threshold", FloatRange(type="uniform", low=0.0, high=2.0), (1.0, 1.0), float, 0.1),
    ],
)
def test_floats_keep_the_minimum_width(param, original, proposed, measure, minimum):
    space = dict(SPACE, **{param: original})
    proposal = FloatRange.model_construct(type=original.type, low=proposed[0], high=proposed[1])
    after = narrow(space, neutral(), Propose({param: proposal})).after[param]
    assert measure(after.high) - measure(after.low) == pytest.approx(minimum)
    assert after.low <= proposed[0] <= proposed[1] <= after.high  # widened around the proposal
    assert original.low <= after.low and after.high <= original.high  # and inside the range


def test_a_range_already_narrower_than_the_minimum_is_left_alone():
    space = dict(SPACE, dropout=FloatRange(type="uniform", low=0.2, high=0.25))
    result = narrow(space, neutral(), Propose({"dropout": FloatRange(type="uniform", low=0.2, high=0.21)}))
    assert result.after["dropout"] == space["dropout"] and result.firings == []


def test_a_target_missing_the_range_keeps_the_nearest_end():
    space = dict(SPACE, dropout=FloatRange(type="uniform", low=0.2, high=0.5))
    result = narrow(space, neutral(), Propose({"dropout": FloatRange(type="uniform", low=0.0, high=0.1)}))
    after = result.after["dropout"]
    assert (after.low, after.high) == pytest.approx((0.2, 0.3))


@pytest.mark.parametrize(
    ("families", "floor"),
    [(("mamba",), 0.0), (("transformer", "mamba"), 0.5), ((), 0.5)],  # (): every built-in family
)
def test_a_family_hyperparameter_takes_the_bounds_of_the_families_the_search_may_choose(families, floor):
    """mamba's d_ff_ratio may be 0 (no feed-forward); a Transformer's is at least 0.5."""
    assert hard_bounds("d_ff_ratio", families)[0] == floor
    evidence = neutral(model_families=families)
    ranged = {"d_ff_ratio": FloatRange(type="uniform", low=0.0, high=2.0)}
    toward_zero = FloatRange(type="uniform", low=0.0, high=0.2)
    after = narrow(ranged, evidence, Propose({"d_ff_ratio": toward_zero})).after["d_ff_ratio"]
    assert after.low == floor
    listed = {"d_ff_ratio": Categorical(type="categorical", choices=(0.0, 1.0, 2.0))}
    pinned = narrow(listed, evidence, Propose({"d_ff_ratio": pin(0.0)})).after["d_ff_ratio"]
    assert pinned.choices == ((0.0,) if floor == 0.0 else (0.0, 1.0, 2.0))  # a pin out of bounds: ignored


@pytest.mark.parametrize(
    ("proposed", "expected"),
    [
        (IntRange.model_construct(type="int", low=1, high=1, step=1), (1, 2)),  # one value: keep two
        (IntRange.model_construct(type="int", low=7, high=9, step=1), (3, 4)),  # beyond the top: nearest pair
    ],
)
def test_ints_keep_two_grid_values(proposed, expected):
    after = narrow(SPACE, neutral(), Propose({"num_layers": proposed})).after["num_layers"]
    assert isinstance(after, IntRange) and (after.low, after.high) == expected


def test_seq_len_narrowed_to_one_grid_point_keeps_its_neighbour():
    proposed = IntRange.model_construct(type="int", low=33, high=36, step=1)  # only 35 is on the grid
    after = narrow(SPACE, neutral(), Propose({"seq_len": proposed})).after["seq_len"]
    assert (after.low, after.high, after.step) == (30, 35, 5)  # the grid pair around the centre, 34.5


def test_a_categorical_keeps_the_choice_nearest_the_target():
    after = narrow(SPACE, neutral(), ShortHistoryCapsModelSize()).after  # neutral: 5000 bars, no cap
    assert after["hidden_size"] == SPACE["hidden_size"]
    after = narrow(SPACE, neutral(n_bars=100), ShortHistoryCapsModelSize()).after  # ~2 units at most
    assert after["hidden_size"].choices == (8,)


def test_int_narrowing_stays_on_the_step_grid():
    proposed = IntRange(type="int", low=12, high=48, step=5)
    result = narrow(SPACE, neutral(), Propose({"seq_len": proposed}))
    after = result.after["seq_len"]
    assert (after.low - 10) % 5 == 0 and (after.high - 10) % 5 == 0
    assert after.low >= 12 and after.high <= 48


def test_firings_record_before_after_and_rationale():
    result = narrow(SPACE, neutral(), Propose({"dropout": FloatRange(type="uniform", low=0.1, high=0.2)}))
    (firing,) = result.firings
    assert firing.rule == "test_rule" and firing.param == "dropout"
    assert firing.before == {"type": "uniform", "low": 0.0, "high": 0.5}
    assert firing.after == {"type": "uniform", "low": 0.1, "high": 0.2}
    assert result.before == SPACE  # the input is not modified
    assert result.to_dict()["firings"][0]["rationale"] == "test"


# --- each rule: fires on its evidence, and only then --------------------------------------------


def test_short_history_caps_model_size():
    result = narrow(SPACE, neutral(n_bars=800), ShortHistoryCapsModelSize())
    assert result.after["hidden_size"].choices == (8, 16)  # 800 // 50 = 16 units at most
    assert result.after["num_layers"] == IntRange(type="int", low=1, high=2)  # 1 layer + the minimum width
    assert {f.param for f in result.firings} == {"hidden_size", "num_layers"}
    assert all("800 bars" in f.rationale or "(800)" in f.rationale for f in result.firings)


def test_short_history_silent_on_long_history():
    assert narrow(SPACE, neutral(n_bars=5000), ShortHistoryCapsModelSize()).firings == []


@pytest.mark.parametrize(("recent", "expected"), [(0.02, (10, 30)), (0.005, (25, 70))])
def test_volatility_regime_shifts_sequence_length(recent, expected):
    """Absolute targets in bars of the 63-bar window: <= 63 // 2 when volatile, >= 63 // 3 when calm."""
    result = narrow(SPACE, neutral(recent_volatility=recent), VolatilityRegimeShiftsSequenceLength())
    after = result.after["seq_len"]
    assert (after.low, after.high) == expected
    (firing,) = result.firings
    assert firing.evidence["ratio"] == pytest.approx(recent / 0.01)


@pytest.mark.parametrize(("recent", "long"), [(0.012, 0.01), (0.008, 0.01), (0.01, 0.0)])
def test_volatility_rule_silent_in_a_steady_regime(recent, long):
    evidence = neutral(recent_volatility=recent, long_volatility=long)
    assert narrow(SPACE, evidence, VolatilityRegimeShiftsSequenceLength()).firings == []


def test_prior_top_trials_tighten_learning_rate():
    trials = [{"lr": 1e-4}, {"lr": 1.5e-4}, {"lr": 2e-4}]
    result = narrow(SPACE, neutral(prior_top_trials=trials), PriorTopTrialsTightenLearningRate())
    after = result.after["lr"]
    half = 2.5 * np.log([1e-4, 1.5e-4, 2e-4]).std(ddof=1)  # 2.5 standard deviations of log(lr)
    assert after.low == pytest.approx(1.5e-4 * np.exp(-half)) and after.high == pytest.approx(
        1.5e-4 * np.exp(half)
    )
    assert len(result.firings) == 1


@pytest.mark.parametrize(
    "trials",
    [
        [{"lr": 1e-4}, {"lr": 2e-4}],  # too few trials
        [{"lr": 1e-5}, {"lr": 1e-3}, {"lr": 1e-2}],  # they span the whole range
        [{"dropout": 0.1}, {"dropout": 0.2}, {"dropout": 0.3}],  # no lr in them
    ],
)
def test_prior_top_trials_silent_without_evidence(trials):
    evidence = neutral(prior_top_trials=trials)
    assert narrow(SPACE, evidence, PriorTopTrialsTightenLearningRate()).firings == []


@pytest.mark.parametrize(
    ("param", "best", "expected"),
    [
        ("dropout", 0.5, (0.0, 0.75)),
        ("entry_threshold", 0.5, (0.0, 0.75)),
        ("num_layers", 4, (1, 6)),
        ("seq_len", 10, (5, 70)),
    ],
)
def test_best_on_edge_widens_range(param, best, expected):
    space = dict(SPACE, dropout=FloatRange(type="uniform", low=0.0, high=0.5))
    evidence = neutral(prior_best_params={param: best}, prior_top_trials=[{param: best}] * 3)
    result = narrow(space, evidence, BestOnEdgeWidensRange())
    after = result.after[param]
    assert (after.low, after.high) == pytest.approx(expected)
    assert [f.param for f in result.firings] == [param]


@pytest.mark.parametrize(
    "top",
    [
        [{"dropout": 0.5}] * 2,  # too few top trials to back one best
        [{"dropout": 0.5}, {"dropout": 0.1}, {"dropout": 0.3}],  # their median sits mid-range
    ],
)
def test_a_lone_best_on_the_edge_widens_nothing(top):
    space = dict(SPACE, dropout=FloatRange(type="uniform", low=0.0, high=0.5))
    evidence = neutral(prior_best_params={"dropout": 0.5}, prior_top_trials=top)
    assert narrow(space, evidence, BestOnEdgeWidensRange()).firings == []


def test_best_in_the_middle_changes_nothing():
    best = {"dropout": 0.25, "num_layers": 2, "seq_len": 40, "lr": 3e-4}
    assert narrow(SPACE, neutral(prior_best_params=best), BestOnEdgeWidensRange()).firings == []


DEPLOYED = {"hidden_size": 32, "num_layers": 2, "seq_len": 30, "lr": 1e-3, "dropout": 0.1}


def test_deployed_architecture_pinned_when_asked():
    evidence = neutral(deployed_params=DEPLOYED, pin_architecture=True, incumbent=DEPLOYED)
    result = narrow(SPACE, evidence, DeployedArchitectureStaysFixed())
    for param in ("hidden_size", "num_layers", "seq_len"):
        assert result.after[param] == Categorical(type="categorical", choices=(DEPLOYED[param],))
    for param in ("lr", "dropout", "entry_threshold"):
        assert result.after[param] == SPACE[param]
    assert {f.param for f in result.firings} == {"hidden_size", "num_layers", "seq_len"}


@pytest.mark.parametrize(
    "evidence",
    [
        neutral(deployed_params=DEPLOYED, pin_architecture=False),
        neutral(deployed_params=None, pin_architecture=True),
    ],
)
def test_deployed_architecture_free_otherwise(evidence):
    assert narrow(SPACE, evidence, DeployedArchitectureStaysFixed()).firings == []


def test_pinned_architecture_survives_the_later_rules():
    evidence = neutral(
        n_bars=600,
        recent_volatility=0.03,
        deployed_params=DEPLOYED,
        pin_architecture=True,
        incumbent=DEPLOYED,
        prior_best_params={"seq_len": 70, "num_layers": 4},
    )
    result = DataDrivenOptimizer(DEFAULT_RULES).narrow(SPACE, evidence)
    for param in ("hidden_size", "num_layers", "seq_len"):
        assert result.after[param] == Categorical(type="categorical", choices=(DEPLOYED[param],))


def test_data_evidence_measures_volatility(make_bars):
    calm = make_bars(400, seed=1, vol=0.01)
    wild_tail = make_bars(100, seed=2, vol=0.04, start="2021-07-01")
    wild_tail[["open", "high", "low", "close"]] *= calm["close"].iloc[-1] / 100.0
    import pandas as pd

    bars = pd.concat([calm, wild_tail], ignore_index=True)
    numbers = data_evidence(bars)
    assert numbers["n_bars"] == 500
    assert numbers["recent_volatility"] > 2 * numbers["long_volatility"] * 0.9
    assert Evidence(**numbers).volatility_ratio > 1.3
    returns = np.diff(np.log(bars["close"].to_numpy()))
    assert numbers["long_volatility"] == pytest.approx(np.std(returns))


def test_with_bounds_keeps_the_type():
    assert isinstance(with_bounds(SPACE["num_layers"], 1.0, 3.0).low, int)
    assert isinstance(with_bounds(SPACE["dropout"], 0, 1).low, float)

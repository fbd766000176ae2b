"""pipelines.narrowing: regime and training-diagnostics rules, pins and widening, registry, data evidence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from pipelines.narrowing.base import Evidence, at_most
from pipelines.narrowing.diagnostics import TrainingDiagnostics
from pipelines.narrowing.optimizer import DataDrivenOptimizer, data_evidence
from pipelines.narrowing.rules import DEFAULT_RULES, OPTIONAL_RULES, RULES, rules_by_name
from pipelines.narrowing.rules.autocorrelation import AutocorrelationShortensSequenceLength
from pipelines.narrowing.rules.deployed_architecture import DeployedArchitectureStaysFixed
from pipelines.narrowing.rules.edge_widening import BestOnEdgeWidensRange
from pipelines.narrowing.rules.high_loss import HighLossAddsCapacity
from pipelines.narrowing.rules.loss_stagnation import LossStagnationShiftsLearningRate
from pipelines.narrowing.rules.overfitting import OverfittingGapAddsRegularization
from pipelines.narrowing.rules.prior_ranges import PriorTopTrialsTightenRanges
from pipelines.narrowing.rules.trend import StrongTrendPicksTradeSide
from pipelines.narrowing.rules.weak_signal import WeakSignalRaisesEntryThreshold
from pipelines.param_specs import Categorical, FloatRange, IntRange

SPACE = {
    "lr": FloatRange(type="loguniform", low=1e-5, high=1e-2),
    "dropout": FloatRange(type="uniform", low=0.0, high=0.5),
    "hidden_size": Categorical(type="categorical", choices=(8, 16, 32, 64)),
    "num_layers": IntRange(type="int", low=1, high=4),
    "seq_len": IntRange(type="int", low=10, high=70, step=5),
    "entry_threshold": FloatRange(type="uniform", low=0.0, high=0.5),
    "long_short": Categorical(type="categorical", choices=(False, True)),
}
DEPLOYED = {"lr": 1e-3, "hidden_size": 32, "num_layers": 2, "dropout": 0.2, "seq_len": 30}


def neutral(**overrides) -> Evidence:
    base = {"n_bars": 5000, "recent_volatility": 0.01, "long_volatility": 0.01, "recent_bars": 100}
    return Evidence(**(base | overrides))


def narrow(evidence, *rules, space=SPACE):
    return DataDrivenOptimizer(rules=list(rules)).narrow(space, evidence)


def training(train, val=None, how=None, **metrics) -> TrainingDiagnostics:
    """Diagnostics from loss curves, as the model registry stores them."""
    val = val if val is not None else [None] * len(train)
    history = [
        {"epoch": i + 1, "train_loss": t, "val_loss": v, "lr": 1e-3}
        for i, (t, v) in enumerate(zip(train, val, strict=True))
    ]
    diagnostics = TrainingDiagnostics.from_metrics({"history": history, **metrics}, trained_how=how)
    assert diagnostics is not None
    return diagnostics


@dataclass(frozen=True)
class Propose:
    """A test rule proposing fixed targets (or specs)."""

    proposals: dict = field(default_factory=dict)
    name: str = "test_rule"

    def propose(self, space, evidence):
        return [(p, target, "test", {}) for p, target in self.proposals.items() if p in space]


def bounds(spec):
    return (spec.low, spec.high)


# --- data regime ------------------------------------------------------------------------------


def test_strong_autocorrelation_shortens_sequences():
    result = narrow(neutral(autocorrelation=0.35), AutocorrelationShortensSequenceLength())
    assert bounds(result.after["seq_len"]) == (10, 20)
    (firing,) = result.firings
    assert firing.evidence["threshold"] == pytest.approx(0.2)  # 2 / sqrt(100)
    assert "+0.35" in firing.rationale and "0.20" in firing.rationale


@pytest.mark.parametrize("rho", [0.15, -0.19, None])
def test_autocorrelation_within_noise_changes_nothing(rho):
    assert narrow(neutral(autocorrelation=rho), AutocorrelationShortensSequenceLength()).firings == []


def test_negative_autocorrelation_is_short_memory_too():
    result = narrow(neutral(autocorrelation=-0.4), AutocorrelationShortensSequenceLength())
    assert bounds(result.after["seq_len"]) == (10, 20)


def test_no_trend_and_no_autocorrelation_raise_the_entry_threshold():
    result = narrow(neutral(trend_tstat=0.3, autocorrelation=0.02), WeakSignalRaisesEntryThreshold())
    assert bounds(result.after["entry_threshold"]) == pytest.approx((0.1, 0.5))
    (firing,) = result.firings
    assert "t=+0.30" in firing.rationale and "+0.02" in firing.rationale


@pytest.mark.parametrize(
    ("t", "rho"),
    [(1.5, 0.02), (0.3, 0.12), (None, 0.0), (0.0, None)],  # a trend, autocorrelation, or not measured
)
def test_weak_signal_rule_silent_when_there_is_signal(t, rho):
    evidence = neutral(trend_tstat=t, autocorrelation=rho)
    assert narrow(evidence, WeakSignalRaisesEntryThreshold()).firings == []


def test_weak_signal_keeps_the_production_threshold():
    evidence = neutral(trend_tstat=0.0, autocorrelation=0.0, incumbent={"entry_threshold": 0.0})
    assert narrow(evidence, WeakSignalRaisesEntryThreshold()).firings == []


@pytest.mark.parametrize(("t", "sides"), [(2.5, (False,)), (-3.0, (True,))])
def test_strong_trend_picks_the_trade_side(t, sides):
    result = narrow(neutral(trend_tstat=t, recent_drift=0.002), StrongTrendPicksTradeSide())
    assert result.after["long_short"].choices == sides
    assert f"{t:+.2f}" in result.firings[0].rationale


@pytest.mark.parametrize("t", [1.9, -1.2, None])
def test_no_strong_trend_keeps_both_sides(t):
    assert narrow(neutral(trend_tstat=t), StrongTrendPicksTradeSide()).firings == []


def test_trend_rule_keeps_the_production_side():
    evidence = neutral(trend_tstat=3.0, incumbent={"long_short": True})
    assert narrow(evidence, StrongTrendPicksTradeSide()).after["long_short"] == SPACE["long_short"]


# --- the deployed model's training diagnostics -----------------------------------------------


def test_diagnostics_from_registry_metrics():
    metrics = {
        "best_val_loss": 0.9,
        "best_epoch": 2,
        "stopped_early": True,
        "history": [
            {"epoch": 1, "train_loss": 1.0, "val_loss": 0.95, "lr": 1e-3},
            {"epoch": 2, "train_loss": 0.8, "val_loss": None, "lr": 1e-3},
        ],
    }
    diagnostics = TrainingDiagnostics.from_metrics(metrics, trained_how="scratch")
    assert diagnostics is not None
    assert diagnostics.train_losses == [1.0, 0.8] and diagnostics.val_losses == [0.95]
    assert (diagnostics.best_val, diagnostics.min_train, diagnostics.lr) == (0.9, 0.8, 1e-3)
    assert diagnostics.best_epoch == 2 and diagnostics.stopped_early
    assert TrainingDiagnostics.from_metrics({}) is None and TrainingDiagnostics.from_metrics(None) is None
    no_summary = TrainingDiagnostics.from_metrics({"history": metrics["history"]})
    assert no_summary is not None and no_summary.best_val == 0.95  # from the history


def test_overfitting_gap_regularizes_and_shrinks():
    diagnostics = training([1.0, 0.7, 0.5, 0.4], [1.0, 1.02, 1.1, 1.2], best_val_loss=1.0, best_epoch=1)
    evidence = neutral(training=diagnostics, deployed_params=DEPLOYED, incumbent=DEPLOYED)
    result = narrow(evidence, OverfittingGapAddsRegularization())
    assert bounds(result.after["dropout"]) == pytest.approx((0.2, 0.5))
    assert result.after["hidden_size"].choices == (8, 16, 32)
    assert bounds(result.after["num_layers"]) == (1, 2)
    firing = next(f for f in result.firings if f.param == "hidden_size")
    assert firing.evidence["gap"] == pytest.approx(2.5) and "2.50x" in firing.rationale


@pytest.mark.parametrize(
    "evidence",
    [
        neutral(training=training([1.0, 0.95], [1.05, 1.08]), deployed_params=DEPLOYED),  # gap 1.14
        neutral(training=None, deployed_params=DEPLOYED),
        neutral(training=training([1.0, 0.4], [1.0, 1.2])),  # overfit, but no deployed values to bound
    ],
)
def test_overfitting_rule_silent_otherwise(evidence):
    assert narrow(evidence, OverfittingGapAddsRegularization()).firings == []


def test_high_loss_without_a_gap_adds_capacity():
    diagnostics = training([1.05, 1.02, 1.01], [1.03, 1.03, 1.04], best_val_loss=1.03)
    evidence = neutral(training=diagnostics, deployed_params=DEPLOYED)
    result = narrow(evidence, HighLossAddsCapacity())
    assert result.after["hidden_size"].choices == (32, 64)
    assert bounds(result.after["num_layers"]) == (2, 4)
    assert bounds(result.after["dropout"]) == pytest.approx((0.0, 0.2))
    assert all("1.03" in f.rationale and "predicting zero" in f.rationale for f in result.firings)


@pytest.mark.parametrize(
    "diagnostics",
    [
        training([0.9, 0.85], [0.95, 0.93]),  # val < 1.0: it learned something
        training([0.9, 0.6], [1.1, 1.2]),  # val >= 1.0 but a clear gap: the overfitting rule's case
        training([], []),
    ],
)
def test_high_loss_rule_silent_otherwise(diagnostics):
    evidence = neutral(training=diagnostics, deployed_params=DEPLOYED)
    assert narrow(evidence, HighLossAddsCapacity()).firings == []


def test_flat_losses_raise_the_learning_rate_floor():
    diagnostics = training([1.0, 0.998, 0.997], [1.01, 1.012, 1.015], best_epoch=1, stopped_early=True)
    evidence = neutral(training=diagnostics, deployed_params=DEPLOYED)
    result = narrow(evidence, LossStagnationShiftsLearningRate())
    assert bounds(result.after["lr"]) == pytest.approx((1e-3, 1e-2))
    assert "steps too small" in result.firings[0].rationale


@pytest.mark.parametrize(
    "train",
    [
        [1.0, 1.05, 1.1],  # rising
        [1.0, 0.9, 1.0, 0.85, 0.97],  # oscillating (with validation stalled)
    ],
)
def test_rising_or_oscillating_loss_lowers_the_learning_rate_ceiling(train):
    diagnostics = training(train, [1.0] * len(train), best_epoch=1, stopped_early=True)
    evidence = neutral(training=diagnostics, deployed_params=DEPLOYED)
    result = narrow(evidence, LossStagnationShiftsLearningRate())
    assert bounds(result.after["lr"]) == pytest.approx((1e-5, 1e-3))
    assert "steps too big" in result.firings[0].rationale


@pytest.mark.parametrize(
    "diagnostics",
    [
        training([1.0, 0.9, 0.85], [1.0, 0.95, 0.93], best_epoch=3),  # learning normally
        training([1.0, 0.999], [1.0, 1.0], best_epoch=1, stopped_early=True, how="finetune"),
        training([1.0], [1.0], best_epoch=1, stopped_early=True),  # one epoch says nothing
    ],
)
def test_loss_stagnation_rule_silent_otherwise(diagnostics):
    evidence = neutral(training=diagnostics, deployed_params=DEPLOYED)
    assert narrow(evidence, LossStagnationShiftsLearningRate()).firings == []


# --- the optimizer: pins, widening, idempotence ---------------------------------------------


def test_a_pin_may_leave_the_range_and_no_later_rule_moves_it():
    deployed = dict(DEPLOYED, hidden_size=128, seq_len=90)  # outside the configured ranges
    evidence = neutral(n_bars=600, deployed_params=deployed, pin_architecture=True, autocorrelation=0.5)
    result = DataDrivenOptimizer().narrow(SPACE, evidence)
    assert result.after["hidden_size"].choices == (128,)
    assert result.after["seq_len"].choices == (90,)
    pinned = {"hidden_size", "num_layers", "seq_len"}
    assert {f.rule for f in result.firings if f.param in pinned} == {"deployed_architecture_stays_fixed"}


def test_a_pin_keeps_the_incumbent_too():
    evidence = neutral(deployed_params=DEPLOYED, pin_architecture=True, incumbent={"hidden_size": 64})
    result = narrow(evidence, DeployedArchitectureStaysFixed())
    assert result.after["hidden_size"].choices == (32, 64)


def test_widening_never_undoes_a_narrowing_target_even_from_a_later_rule():
    cap = Propose({"dropout": FloatRange(type="uniform", low=0.0, high=0.3)}, name="cap")
    evidence = neutral(prior_best_params={"dropout": 0.29}, prior_top_trials=[{"dropout": 0.29}] * 3)
    assert narrow(evidence, BestOnEdgeWidensRange()).after["dropout"].high > 0.3  # it would widen
    result = narrow(evidence, BestOnEdgeWidensRange(), cap)
    assert bounds(result.after["dropout"]) == pytest.approx((0.0, 0.3))
    assert [f.rule for f in result.firings] == ["cap"]


def test_edge_widening_is_idempotent():
    best = {"dropout": 0.5, "lr": 1e-2, "seq_len": 70}
    evidence = neutral(prior_best_params=best, prior_top_trials=[best] * 3)
    once = narrow(evidence, BestOnEdgeWidensRange())
    twice = narrow(evidence, BestOnEdgeWidensRange(), space=once.after)
    assert bounds(once.after["dropout"]) == pytest.approx((0.0, 0.75))
    assert once.after["lr"].high == pytest.approx(1e-2 * 1e3**0.5)  # half the decades past the best
    assert twice.firings == [] and twice.after == once.after


def test_volatility_rule_is_idempotent():
    evidence = neutral(recent_volatility=0.03)
    once = narrow(evidence, *DEFAULT_RULES)
    assert once.firings
    assert narrow(evidence, *DEFAULT_RULES, space=once.after).firings == []


def test_everything_at_once_is_idempotent_and_explained():
    diagnostics = training([1.0, 0.6, 0.45], [1.0, 1.05, 1.1], best_val_loss=1.0, best_epoch=1)
    evidence = neutral(
        n_bars=900,
        recent_volatility=0.02,
        trend_tstat=2.4,
        recent_drift=0.003,
        autocorrelation=0.3,
        prior_top_trials=[{"lr": 2e-4}, {"lr": 3e-4}, {"lr": 5e-4}],
        prior_best_params={"lr": 3e-4, "dropout": 0.49},
        incumbent=DEPLOYED,
        deployed_params=DEPLOYED,
        training=diagnostics,
    )
    once = DataDrivenOptimizer().narrow(SPACE, evidence)
    assert {f.rule for f in once.firings} >= {
        "short_history_caps_model_size",
        "volatility_regime_shifts_sequence_length",
        "strong_trend_picks_trade_side",
        "overfitting_gap_adds_regularization",
        "prior_top_trials_tighten_learning_rate",
    }
    assert all(f.rationale and isinstance(f.evidence, dict) for f in once.firings)
    json.dumps(once.to_dict())  # firings go to narrowing.json and the DB as they are
    twice = DataDrivenOptimizer().narrow(once.after, evidence)
    assert twice.after == once.after and twice.firings == []


def test_rules_may_propose_absolute_targets_or_specs():
    target = narrow(neutral(), Propose({"lr": at_most(1e-3)}))
    spec = narrow(neutral(), Propose({"lr": FloatRange(type="loguniform", low=1e-9, high=1e-3)}))
    assert bounds(target.after["lr"]) == bounds(spec.after["lr"]) == (1e-5, 1e-3)


def test_evidence_to_dict_is_json_ready():
    evidence = neutral(training=training([1.0, 0.9], [1.0, 0.95]), prior_best_params={"lr": 1e-3})
    data = json.loads(json.dumps(evidence.to_dict()))
    assert data["training"]["history"][1]["train_loss"] == 0.9 and data["autocorrelation"] is None


# --- registry ---------------------------------------------------------------------------------


def test_registry_names_every_default_rule_in_order_then_the_optional_ones():
    assert list(RULES) == [rule.name for rule in (*DEFAULT_RULES, *OPTIONAL_RULES)]
    assert len(set(RULES)) == len(DEFAULT_RULES) + len(OPTIONAL_RULES)


def test_the_autocorrelation_rule_runs_only_when_named():
    evidence = neutral(autocorrelation=0.35)
    assert "seq_len" not in {f.param for f in DataDrivenOptimizer().narrow(SPACE, evidence).firings}
    named = DataDrivenOptimizer(rules_by_name(["autocorrelation_shortens_sequence_length"]))
    assert bounds(named.narrow(SPACE, evidence).after["seq_len"]) == (10, 20)


def test_rules_by_name_keeps_the_given_order():
    names = ["best_on_edge_widens_range", "short_history_caps_model_size"]
    assert [rule.name for rule in rules_by_name(names)] == names
    assert rules_by_name([]) == []


def test_rules_by_name_names_unknown_rules_and_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown narrowing rule.*volatility, nope") as info:
        rules_by_name(["short_history_caps_model_size", "volatility", "nope"])
    assert all(name in str(info.value) for name in RULES)


@pytest.mark.parametrize("names", [["short_history_caps_model_size"] * 2, "short_history_caps_model_size"])
def test_rules_by_name_refuses_repeats_and_bare_strings(names):
    with pytest.raises(ValueError, match="short_history_caps_model_size"):
        rules_by_name(names)


# --- the data evidence ------------------------------------------------------------------------


def closes(returns) -> pd.DataFrame:
    return pd.DataFrame({"close": 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))})


def test_data_evidence_measures_trend_and_autocorrelation():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, 400)
    ar = np.zeros(400)
    for i in range(1, 400):
        ar[i] = 0.6 * ar[i - 1] + noise[i]
    numbers = data_evidence(closes(ar), recent_bars=200)
    assert numbers["recent_bars"] == 200
    assert numbers["autocorrelation"] == pytest.approx(0.6, abs=0.12)
    trending = data_evidence(closes(noise + 0.01), recent_bars=63)
    assert trending["trend_tstat"] > 5 and trending["recent_drift"] == pytest.approx(0.01, abs=0.003)
    assert Evidence(**trending).trend_tstat == trending["trend_tstat"]  # the keys are Evidence fields


def test_data_evidence_leaves_what_it_cannot_measure_unset():
    numbers = data_evidence(pd.DataFrame({"close": [100.0] * 10}))
    assert numbers["trend_tstat"] is None and numbers["autocorrelation"] is None
    assert data_evidence(pd.DataFrame({"close": [100.0]}))["recent_drift"] is None


# --- prior studies: where the top trials cluster ---------------------------------------------


def top_trials(n: int, dropout=(0.1, 0.2), seq_len=(20, 30), hidden_size=16) -> list[dict]:
    return [
        {
            "lr": 1e-3,
            "dropout": float(np.linspace(*dropout, n)[i]),
            "seq_len": int(np.linspace(*seq_len, n)[i]),
            "hidden_size": hidden_size,
        }
        for i in range(n)
    ]


def around_median(values, spreads=2.5):
    values = np.asarray(values, dtype=float)
    half = spreads * values.std(ddof=1)
    return np.median(values) - half, np.median(values) + half


def test_prior_top_trials_tighten_every_numeric_range_around_their_cluster():
    rule = PriorTopTrialsTightenRanges()
    trials = top_trials(6)
    result = narrow(neutral(prior_top_trials=trials), rule)
    dropout, seq_len = result.after["dropout"], result.after["seq_len"]
    assert bounds(dropout) == pytest.approx(around_median([t["dropout"] for t in trials]))
    assert bounds(seq_len) == (20, 30)  # the step-5 grid points inside 25 +- 9.4 bars
    assert result.after["hidden_size"] == SPACE["hidden_size"]  # categoricals are left alone
    assert result.after["lr"] == SPACE["lr"]  # the learning rate has its own rule
    fired = {f.param: f for f in result.firings}
    assert set(fired) == {"dropout", "seq_len"}
    assert fired["seq_len"].evidence == {"n_top_trials": 6, "top_median": 25, "top_spread": 3.742}
    again = DataDrivenOptimizer(rules=[rule]).narrow(result.after, neutral(prior_top_trials=trials))
    assert again.after == result.after and again.firings == []


def test_a_stray_top_trial_does_not_stretch_the_range_to_reach_it():
    """A min-max envelope would grow past 0.45 for one straggler; the cluster's spread does not."""
    trials = top_trials(9, dropout=(0.10, 0.12)) + [dict(top_trials(1)[0], dropout=0.45)]
    dropout = narrow(neutral(prior_top_trials=trials), PriorTopTrialsTightenRanges()).after["dropout"]
    assert dropout.low < 0.11 < dropout.high < 0.45


def test_an_int_range_keeps_a_step_each_side_when_the_top_trials_agree():
    result = narrow(neutral(prior_top_trials=top_trials(6, seq_len=(40, 40))), PriorTopTrialsTightenRanges())
    assert bounds(result.after["seq_len"]) == (35, 45)


def test_prior_ranges_need_enough_top_trials():
    result = narrow(neutral(prior_top_trials=top_trials(4)), PriorTopTrialsTightenRanges())
    assert result.firings == []


def test_prior_ranges_keep_the_incumbent():
    evidence = neutral(prior_top_trials=top_trials(6), incumbent={"dropout": 0.45, "seq_len": 60})
    result = narrow(evidence, PriorTopTrialsTightenRanges())
    assert result.after["dropout"].low == pytest.approx(around_median(np.linspace(0.1, 0.2, 6))[0])
    assert result.after["dropout"].high == 0.45
    assert result.after["seq_len"].low == 20 and result.after["seq_len"].high == 60

"""models.adaptive_training: each rule fires on the evidence it names (and not without it),
acts on the run in progress, and its firing is logged and kept in the history."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from models.adaptive_training import (
    ExpertImbalanceRaisesBalanceWeight,
    TrainingControl,
    adaptive_rules,
)
from models.adaptive_training.generalization_gap import WideningGapAddsRegularization
from models.adaptive_training.loss_stagnation import LossStagnationLowersLearningRate
from models.families import architecture_spec
from models.families.moe import ExpertFeedForward
from models.networks import ArchitectureSpec, build_network
from models.training_options import TrainingOptions
from pipelines.config import ConfigError
from pipelines.config_files import parse_config
from pipelines.reporting.figures import loss_curve
from pipelines.training.trainer import fit

SEQ, FEATS = 6, 3


def _control(history, lr=0.01, decay=0.0, network=None):
    network = network or build_network(ArchitectureSpec("lstm", FEATS, 4, 1, 0.0, SEQ))
    options = TrainingOptions(weight_decay=decay)
    optimizer = options.make_optimizer(network.parameters(), lr)
    return TrainingControl(network, optimizer, options.make_schedule(optimizer, 10), history=history)


def _rows(train, val=None):
    val = val or [None] * len(train)
    return [
        {"epoch": i + 1, "train_loss": t, "val_loss": v}
        for i, (t, v) in enumerate(zip(train, val, strict=True))
    ]


def test_stagnating_loss_halves_the_rate_once_per_patience_window():
    rule = LossStagnationLowersLearningRate(patience=2)
    improving = _control(_rows([1.0, 0.8, 0.6, 0.4]))
    assert rule.act(improving) is None and improving.schedule.lr == 0.01
    stuck = _control(_rows([1.0, 0.5, 0.5, 0.5]))
    fired = rule.act(stuck)
    assert fired is not None and fired.epoch == 4 and stuck.schedule.lr == pytest.approx(0.005)
    assert fired.evidence["best_before"] == 0.5
    stuck.adaptations.append(fired)
    stuck.history.append({"epoch": 5, "train_loss": 0.5, "val_loss": None})
    assert rule.act(stuck) is None  # cooling down: fired one epoch ago


def test_a_widening_gap_raises_weight_decay_then_stops():
    rule = WideningGapAddsRegularization(patience=2)
    steady = _control(_rows([1.0, 0.9, 0.8], [1.3, 1.17, 1.04]))
    assert rule.act(steady) is None
    widening = _control(_rows([1.0, 0.8, 0.6], [1.3, 1.3, 1.3]))
    fired = rule.act(widening)
    assert fired is not None and widening.weight_decay == pytest.approx(1e-4) and not widening.stop
    capped = _control(_rows([1.0, 0.8, 0.6], [1.3, 1.3, 1.3]), decay=1e-2)
    fired = rule.act(capped)
    assert fired is not None and capped.stop and fired.action.startswith("stop")


def test_collapsed_routing_doubles_the_balance_weight():
    network = build_network(
        architecture_spec(
            "moe_transformer",
            {"hidden_size": 8, "num_layers": 1, "dropout": 0.0, "seq_len": SEQ, "n_experts": 4},
            FEATS,
        )
    )
    layer = next(m for m in network.modules() if isinstance(m, ExpertFeedForward))
    control = _control(_rows([1.0]), network=network)
    layer.routed.copy_(torch.tensor([25.0, 25.0, 25.0, 25.0]))
    assert ExpertImbalanceRaisesBalanceWeight().act(control) is None
    layer.routed.add_(torch.tensor([97.0, 1.0, 1.0, 1.0]))
    fired = ExpertImbalanceRaisesBalanceWeight().act(control)
    assert fired is not None and layer.balance_weight == pytest.approx(0.02)
    assert fired.evidence["busiest_over_even"] == pytest.approx(3.88)
    layer.routed.add_(torch.tensor([25.0, 25.0, 25.0, 25.0]))  # the next epoch routes evenly
    assert ExpertImbalanceRaisesBalanceWeight().act(control) is None  # judged on its own routing


def test_firings_are_logged_kept_in_the_history_and_drawn_in_the_report(caplog):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, SEQ, FEATS)).astype(np.float32)
    y = rng.normal(size=64)  # noise: the loss stalls
    network = build_network(ArchitectureSpec("lstm", FEATS, 4, 1, 0.0, SEQ))
    with caplog.at_level(logging.INFO, logger="pipelines.training.trainer"):
        result = fit(
            network,
            x,
            y,
            lr=1e-4,
            epochs=6,
            batch_size=32,
            seed=0,
            rules=[LossStagnationLowersLearningRate(patience=2, min_improvement=0.5)],
        )
    assert result.adaptations and result.adaptations[0]["rule"] == "loss_stagnation_lowers_lr"
    epoch = result.adaptations[0]["epoch"]
    assert "loss_stagnation_lowers_lr" in result.history[epoch - 1]["adaptation"]
    assert result.history[epoch]["lr"] == pytest.approx(5e-5)  # the next epoch ran at the new rate
    assert "adaptive, epoch" in caplog.text
    assert "loss_stagnation_lowers_lr" in loss_curve(result.history)


def test_rules_are_named_in_the_config_and_unknown_names_refused():
    assert [
        r.name
        for r in adaptive_rules(
            parse_config({"adaptive_rules": ["loss_stagnation_lowers_lr"]}).adaptive_rules
        )
    ] == ["loss_stagnation_lowers_lr"]
    with pytest.raises(ConfigError, match="unknown adaptive rule"):
        parse_config({"adaptive_rules": ["shrink_everything"]})


def test_a_stalled_multi_horizon_loss_halves_the_far_horizons_weights_only():
    from models.adaptive_training.horizon_weights import StalledLossShiftsWeightToNextBar

    rule = StalledLossShiftsWeightToNextBar(patience=2)
    one_horizon = _control(_rows([1.0] * 4, [1.0] * 4))
    assert rule.act(one_horizon) is None  # nothing to shift
    control = _control(_rows([1.0] * 4, [1.0, 0.8, 0.9, 0.85]))
    control.loss_weights = torch.tensor([1.0, 0.5, 0.25])
    fired = rule.act(control)
    assert fired is not None and control.loss_weights.tolist() == [1.0, 0.25, 0.125]
    improving = _control(_rows([1.0] * 4, [1.0, 0.8, 0.6, 0.4]))
    improving.loss_weights = torch.tensor([1.0, 0.5])
    assert rule.act(improving) is None


def test_shifted_horizon_weights_change_training_but_not_the_validation_yardstick():
    from models.adaptive_training.horizon_weights import StalledLossShiftsWeightToNextBar

    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, SEQ, FEATS)).astype(np.float32)
    y, y_val = rng.normal(size=(64, 3)), rng.normal(size=(32, 3))  # noise: validation stalls
    weights = (1.0, 0.5, 0.5)
    network = build_network(ArchitectureSpec("lstm", FEATS, 4, 1, 0.0, SEQ, n_outputs=3))
    rule = StalledLossShiftsWeightToNextBar(patience=1, min_improvement=0.5)
    result = fit(
        network,
        x,
        y,
        lr=1e-3,
        epochs=4,
        batch_size=32,
        seed=0,
        x_val=x[:32],
        y_val=y_val,
        horizon_weights=weights,
        rules=[rule],
    )
    assert (
        result.adaptations
        and "horizon weights [1.0, 0.5, 0.5] -> [1.0, 0.25, 0.25]" in result.adaptations[0]["action"]
    )
    assert weights == (1.0, 0.5, 0.5)  # the config's tuple is untouched

"""models.training_options through the trainer: every optimizer learns, the schedules move the
learning rate as documented, and the defaults are the trainer of before (Adam, constant rate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.networks import ArchitectureSpec, build_network
from models.training_options import TrainingOptions
from pipelines.config import ConfigError, HyperParams
from pipelines.config_files import parse_config
from pipelines.training.trainer import evaluate_loss, fit, train_new

SEQ, FEATS = 6, 3


pytestmark = pytest.mark.usefixtures("single_thread_torch")


def _data(n: int = 128, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SEQ, FEATS)).astype(np.float32)
    return x, (x[:, -1, 0] - 0.5 * x[:, -1, 1]).astype(np.float64)


def _network():
    torch.manual_seed(0)
    return build_network(ArchitectureSpec("lstm", FEATS, 8, 1, 0.0, SEQ))


@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "RMSprop", "SGD"])
def test_every_optimizer_learns(optimizer):
    x, y = _data()
    network = _network()
    before = evaluate_loss(network, x, y)
    lr = 0.05 if optimizer == "SGD" else 0.01
    options = TrainingOptions(optimizer=optimizer, weight_decay=1e-4)
    fit(network, x, y, lr=lr, epochs=4, batch_size=32, seed=0, options=options)
    assert evaluate_loss(network, x, y) < 0.7 * before


def test_default_options_train_exactly_as_adam_at_a_constant_rate():
    x, y = _data()
    a, b = _network(), _network()
    ra = fit(a, x, y, lr=0.01, epochs=2, batch_size=32, seed=0)
    rb = fit(b, x, y, lr=0.01, epochs=2, batch_size=32, seed=0, options=TrainingOptions.from_values({}))
    assert ra.history == rb.history and [row["lr"] for row in ra.history] == [0.01, 0.01]
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])


def test_plateau_lowers_the_rate_when_validation_stalls():
    x, y = _data()
    x_val, y_val = _data(32, seed=1)
    y_val = np.random.default_rng(5).normal(size=32)  # noise: validation cannot improve for long
    options = TrainingOptions.from_values({"scheduler_patience": 1, "scheduler_factor": 0.5})
    assert options.lr_schedule == "plateau"  # implied by naming its parameters
    result = fit(
        _network(), x, y, lr=0.01, epochs=8, batch_size=32, seed=0, x_val=x_val, y_val=y_val, options=options
    )
    rates = [row["lr"] for row in result.history]
    assert rates[0] == 0.01 and min(rates) <= 0.005
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:], strict=False))


def test_cosine_warms_up_then_decays_to_its_floor():
    x, y = _data(64)
    options = TrainingOptions(lr_schedule="cosine", warmup_epochs=2, min_lr_ratio=0.1)
    result = fit(_network(), x, y, lr=0.01, epochs=7, batch_size=32, seed=0, options=options)
    rates = [row["lr"] for row in result.history]
    assert rates[0] < rates[1] < rates[2] == pytest.approx(0.01)
    assert rates[2:] == sorted(rates[2:], reverse=True) and rates[-1] == pytest.approx(0.001)


def test_gradient_clipping_off_and_on_give_different_models():
    x, y = _data()
    y = y * 100  # large gradients, so a clip of 0.01 binds
    a, b = _network(), _network()
    fit(a, x, y, lr=0.01, epochs=1, batch_size=32, seed=0, options=TrainingOptions(grad_clip=0.0))
    fit(b, x, y, lr=0.01, epochs=1, batch_size=32, seed=0, options=TrainingOptions(grad_clip=0.01))
    assert not torch.equal(a.head.weight, b.head.weight)


def test_the_users_lstm_space_is_accepted_and_each_trial_trains_with_its_options():
    config = parse_config(
        {
            "search_space": {
                "optimizer": {"type": "categorical", "choices": ["Adam", "AdamW", "RMSprop"]},
                "scheduler_patience": {"type": "int", "low": 3, "high": 10},
                "scheduler_factor": {"type": "uniform", "low": 0.3, "high": 0.7},
            }
        }
    )
    assert set(config.search_space) == {"optimizer", "scheduler_patience", "scheduler_factor"}
    params = HyperParams(hidden_size=4, seq_len=SEQ, epochs=2, batch_size=32, optimizer="RMSprop")
    assert params.model_dump()["optimizer"] == "RMSprop"
    x, y = _data(64)
    assert len(train_new(params, x, y, seed=0).history) == 2


def test_bad_training_values_are_refused_with_their_name():
    with pytest.raises(ConfigError, match="optimizer: 'Adagrad' is not one of"):
        parse_config({"optimizer": "Adagrad"})
    with pytest.raises(ConfigError, match=r"search_space\.scheduler_factor: 1.5 is out of range"):
        parse_config({"search_space": {"scheduler_factor": {"type": "uniform", "low": 0.3, "high": 1.5}}})
    with pytest.raises(ValueError, match="optimiser: not a hyperparameter of model family 'lstm'"):
        HyperParams(optimiser="Adam")
    with pytest.raises(ValueError, match="lr_schedule: 'step' is not one of"):
        TrainingOptions.from_values({"lr_schedule": "step"})


def test_narrowing_reads_the_declared_bounds_of_training_and_family_hyperparameters():
    from pipelines.narrowing.limits import hard_bounds

    assert hard_bounds("scheduler_factor") == (0.01, 0.99)
    assert hard_bounds("n_experts") == (2, 64)
    assert hard_bounds("hidden_size") == (2, 1024)  # a common field: HyperParams' own limits

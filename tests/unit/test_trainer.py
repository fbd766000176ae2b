"""pipelines.training.trainer: seeded determinism, early stopping, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.families import BUILTIN
from models.networks import ArchitectureSpec, build_network
from pipelines.config import HyperParams
from pipelines.training.trainer import evaluate_loss, fit, predict, train_new

# every registered family trained by gradient, with backbone layers (the linear one is closed-form)
NEURAL_FAMILIES = [name for name, family in BUILTIN.items() if not family.seed_free]

SEQ, FEATS = 8, 3


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SEQ, FEATS)).astype(np.float32)
    # a learnable target: a fixed linear read-out of the last bar
    y = (x[:, -1, 0] - 0.5 * x[:, -1, 1]).astype(np.float64)
    return x, y


def _network(seed: int = 0):
    torch.manual_seed(seed)
    spec = ArchitectureSpec(
        family="lstm", n_features=FEATS, hidden_size=8, num_layers=1, dropout=0.0, seq_len=SEQ
    )
    return build_network(spec)


pytestmark = pytest.mark.usefixtures("single_thread_torch")


PARAMS = HyperParams(lr=1e-2, hidden_size=8, num_layers=1, seq_len=SEQ, epochs=3, batch_size=32)


def test_seeded_training_is_deterministic_on_cpu():
    x, y = _data(192, seed=0)
    x_val, y_val = _data(64, seed=1)
    runs = [train_new(PARAMS, x, y, seed=7, x_val=x_val, y_val=y_val) for _ in range(2)]
    assert runs[0].history == runs[1].history
    for key, value in runs[0].network.state_dict().items():
        assert torch.equal(value, runs[1].network.state_dict()[key])
    np.testing.assert_array_equal(predict(runs[0].network, x_val), predict(runs[1].network, x_val))


def test_a_different_seed_gives_a_different_model():
    x, y = _data(192, seed=0)
    a = train_new(PARAMS, x, y, seed=1)
    b = train_new(PARAMS, x, y, seed=2)
    assert not np.array_equal(predict(a.network, x[:16]), predict(b.network, x[:16]))


def test_early_stopping_when_val_loss_cannot_improve():
    x, y = _data(128, seed=0)
    x_val, y_val = _data(32, seed=1)
    # lr=0: weights never move, so the validation loss never improves after epoch 1
    result = fit(
        _network(), x, y, lr=0.0, epochs=50, batch_size=32, seed=0, x_val=x_val, y_val=y_val, patience=3
    )
    assert result.stopped_early
    assert len(result.history) == 1 + 3
    assert result.best_epoch == 1


def test_no_early_stop_without_patience_or_val():
    x, y = _data(64, seed=0)
    result = fit(_network(), x, y, lr=0.0, epochs=4, batch_size=32, seed=0)
    assert not result.stopped_early and len(result.history) == 4
    assert result.best_val_loss is None


def test_best_epoch_weights_are_restored():
    x, y = _data(128, seed=0)
    x_val = np.random.default_rng(5).normal(size=(64, SEQ, FEATS)).astype(np.float32)
    y_val = np.random.default_rng(6).normal(size=64)  # unrelated noise: val loss wanders
    result = fit(
        _network(), x, y, lr=3e-2, epochs=12, batch_size=16, seed=0, x_val=x_val, y_val=y_val, patience=2
    )
    assert evaluate_loss(result.network, x_val, y_val) == pytest.approx(result.best_val_loss, rel=1e-6)
    assert result.history[result.best_epoch - 1]["val_loss"] == result.best_val_loss


def test_train_loss_decreases_on_a_learnable_target():
    x, y = _data(512, seed=0)
    before = evaluate_loss(_network(), x, y)
    result = fit(_network(), x, y, lr=1e-2, epochs=15, batch_size=32, seed=0)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert evaluate_loss(result.network, x, y) < 0.25 * before


@pytest.mark.parametrize("family", NEURAL_FAMILIES)
@pytest.mark.parametrize("n_frozen", [1, 2])
def test_frozen_backbone_layers_are_unchanged_by_fine_tuning(family, n_frozen):
    torch.manual_seed(0)
    spec = ArchitectureSpec(
        family=family, n_features=FEATS, hidden_size=8, num_layers=3, dropout=0.0, seq_len=SEQ
    )
    network = build_network(spec)
    layers = network.backbone_layers()
    assert len(layers) == 3
    before = {id(p): p.detach().clone() for layer in layers for p in layer}
    head_before = network.head.weight.detach().clone()
    x, y = _data(256, seed=1)
    fit(network, x, y, lr=1e-2, epochs=2, batch_size=32, seed=0, frozen_layers=n_frozen)
    for i, layer in enumerate(layers):
        same = [torch.equal(before[id(p)], p) for p in layer]
        if i < n_frozen:
            assert all(same), f"frozen layer {i} changed"
        else:
            assert not any(same), f"trainable layer {i} did not learn"
    assert not torch.equal(head_before, network.head.weight)
    assert all(p.requires_grad for p in network.parameters())  # unfrozen afterwards


def test_every_parameter_but_the_head_belongs_to_one_backbone_layer():
    for family in NEURAL_FAMILIES:
        spec = ArchitectureSpec(
            family=family, n_features=FEATS, hidden_size=8, num_layers=2, dropout=0.0, seq_len=SEQ
        )
        network = build_network(spec)
        grouped = [id(p) for layer in network.backbone_layers() for p in layer]
        head = {id(p) for p in network.head.parameters()}
        assert len(grouped) == len(set(grouped))
        assert set(grouped) | head == {id(p) for p in network.parameters()}


def test_the_linear_baseline_is_ridge_in_closed_form_and_needs_no_seed():
    from pipelines.training.ridge import fit_ridge
    from pipelines.training.trainer import fit_linear

    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, SEQ, FEATS))
    truth = rng.normal(size=FEATS)
    y = x[:, -1, :] @ truth * 0.1 + 0.5 + rng.normal(scale=0.05, size=600)  # the newest bar explains y
    spec = ArchitectureSpec(
        family="linear", n_features=FEATS, hidden_size=8, num_layers=1, dropout=0.0, seq_len=SEQ
    )
    runs = [fit(build_network(spec), x, y, lr=1e-3, epochs=5, batch_size=32, seed=s) for s in (0, 1)]
    first, second = (predict(r.network, x) for r in runs)
    assert np.array_equal(first, second)  # no seed, no epochs: nothing to be lucky with
    ridge = fit_ridge(x[:, -1, :], y)
    assert ridge.coef[:, 0] == pytest.approx(truth * 0.1, abs=0.01)
    assert ridge.intercept[0] == pytest.approx(0.5, abs=0.01)
    assert runs[0].history[0]["ridge_penalty"] == ridge.penalty
    noise = rng.normal(size=600)  # nothing to explain: GCV shrinks hard
    assert np.abs(fit_ridge(x[:, -1, :], noise).coef).max() < np.abs(ridge.coef).max()
    val = fit_linear(build_network(spec), x[:500], y[:500], x[500:], y[500:])
    assert val.history[0]["val_loss"] < 0.01

"""Seed ensembles (models.ensemble): the grouped LSTM is nn.LSTM, batched members train exactly
as separate trainings would, and the ensemble is what predicts, is saved and is fine-tuned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models.checkpoint import load_checkpoint, save_checkpoint
from models.ensemble import (
    FUSED_FROM_BATCH,
    FUSED_FROM_HIDDEN,
    GroupedLSTMEnsemble,
    ModuleListEnsemble,
    SeedEnsemble,
    live_forward,
    member_seeds,
)
from models.families import BUILTIN, architecture_spec
from models.families.grouped_mamba import GroupedMambaEnsemble
from models.families.grouped_transformer import GroupedMoETransformerEnsemble, GroupedTransformerEnsemble
from models.networks import ArchitectureSpec, LSTMRegressor, build_network
from pipelines.config import HyperParams
from pipelines.training.trainer import architecture, fit, member_next_bar, predict, train_new

# every registered family a seed ensemble applies to (a seed-free family gives copies)
ENSEMBLE_FAMILIES = [name for name, family in BUILTIN.items() if not family.seed_free]
# families whose members run as one grouped network; the rest as a list of members
GROUPED: dict[str, type[SeedEnsemble]] = {
    "lstm": GroupedLSTMEnsemble,
    "mamba": GroupedMambaEnsemble,
    "transformer": GroupedTransformerEnsemble,
    "moe_transformer": GroupedMoETransformerEnsemble,
}

SEQ, FEATS = 6, 3


pytestmark = pytest.mark.usefixtures("single_thread_torch")


def _spec(
    members: int, layers: int = 2, outputs: int = 1, family: str = "lstm", hidden: int = 8
) -> ArchitectureSpec:
    return ArchitectureSpec(family, FEATS, hidden, layers, 0.0, SEQ, n_outputs=outputs, members=members)


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SEQ, FEATS)).astype(np.float32)
    return x, (x[:, -1, 0] - 0.5 * x[:, -2, 1]).astype(np.float64)


@pytest.mark.parametrize("trains_fused", [False, True], ids=["grouped-recurrence", "torch-lstm-per-member"])
def test_a_grouped_member_computes_what_nn_lstm_computes(trains_fused):
    """Same weights, same outputs: the grouped recurrence is the LSTM's (gates i, f, g, o), and
    so is the per-member path through ``torch.lstm`` that wider members take."""
    grouped = GroupedLSTMEnsemble(_spec(1), seeds=[3])
    grouped.trains_fused = trains_fused  # a fresh module is in training mode
    reference = LSTMRegressor(_spec(1))
    hidden = 8
    to_torch = torch.cat([torch.arange(2 * hidden), torch.arange(3, 4) * hidden + torch.arange(hidden)])
    to_torch = torch.cat([to_torch, 2 * hidden + torch.arange(hidden)])  # (i, f, o, g) -> (i, f, g, o)
    with torch.no_grad():
        for layer in range(2):
            getattr(reference.lstm, f"weight_ih_l{layer}").copy_(grouped.w_ih[layer][0].T[to_torch])
            getattr(reference.lstm, f"weight_hh_l{layer}").copy_(grouped.w_hh[layer][0].T[to_torch])
            getattr(reference.lstm, f"bias_ih_l{layer}").copy_(grouped.bias[layer][0, 0][to_torch])
            getattr(reference.lstm, f"bias_hh_l{layer}").zero_()
        reference.head.weight.copy_(grouped.head_w[0].T)
        reference.head.bias.copy_(grouped.head_b[0, 0])
    x = torch.randn(5, SEQ, FEATS)
    torch.testing.assert_close(grouped.member_outputs(x)[0], reference(x), rtol=1e-5, atol=1e-6)


def test_wide_lstm_members_train_through_the_fused_kernel_and_infer_grouped(monkeypatch):
    """From ``FUSED_FROM_HIDDEN`` up the members train through ``torch.lstm`` one by one; the two
    paths are one computation: outputs and every parameter's gradient agree in float64 (dropout
    between layers off: it draws different masks). Predictions stay grouped for a few windows
    (one live window is faster so) and take the kernel from ``FUSED_FROM_BATCH`` windows."""
    narrow = GroupedLSTMEnsemble(
        ArchitectureSpec("lstm", FEATS, FUSED_FROM_HIDDEN // 2, 2, 0.0, SEQ, members=3)
    )
    wide = GroupedLSTMEnsemble(ArchitectureSpec("lstm", FEATS, FUSED_FROM_HIDDEN, 2, 0.0, SEQ, members=3))
    assert (narrow.trains_fused, wide.trains_fused) == (False, True)
    wide = wide.double()
    x = torch.randn(7, SEQ, FEATS, dtype=torch.float64)
    results = []
    for fused in (False, True):
        wide.trains_fused = fused
        out = wide.member_outputs(x)
        results.append((out, torch.autograd.grad(out.square().sum(), list(wide.parameters()))))
    (grouped_out, grouped_grads), (fused_out, fused_grads) = results
    torch.testing.assert_close(fused_out, grouped_out, rtol=0, atol=1e-12)
    for fused_grad, grouped_grad in zip(fused_grads, grouped_grads, strict=True):
        torch.testing.assert_close(fused_grad, grouped_grad, rtol=0, atol=1e-12)

    def no_kernel(*args, **kwargs):
        raise AssertionError("inference went through torch.lstm")

    monkeypatch.setattr(torch, "lstm", no_kernel)
    with torch.no_grad():
        torch.testing.assert_close(wide.eval().member_outputs(x), fused_out, rtol=0, atol=1e-12)
    with pytest.raises(AssertionError, match="torch.lstm"):
        wide.train().member_outputs(x)
    many = torch.randn(FUSED_FROM_BATCH, SEQ, FEATS, dtype=torch.float64)
    with torch.no_grad(), pytest.raises(AssertionError, match="torch.lstm"):
        narrow.double().eval().member_outputs(many)


def test_members_start_from_their_own_seeds_and_the_ensemble_trades_their_mean():
    ensemble = build_network(_spec(3), member_seeds(10, 3))
    assert isinstance(ensemble, SeedEnsemble)
    again = build_network(_spec(3), member_seeds(10, 3))
    for a, b in zip(ensemble.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)  # the same seeds give the same members (common random numbers)
    w = ensemble.w_ih[0]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    x, _ = _data(20, 0)
    members = member_next_bar(ensemble, x)
    assert members.shape == (3, 20)
    np.testing.assert_allclose(predict(ensemble, x), members.mean(axis=0), rtol=0, atol=1e-12)
    assert members.std(axis=0).min() > 0  # the members disagree: they are not copies


@pytest.mark.parametrize(
    "family, hidden", [(family, 8) for family in ENSEMBLE_FAMILIES] + [("lstm", FUSED_FROM_HIDDEN)]
)
def test_batched_members_train_exactly_as_separate_trainings(family, hidden):
    """Members share nothing but the batched computation: member m of an ensemble trained with
    seed s equals a one-member ensemble of seed s + m trained alone (clipping per member too).
    Without a validation set: with one, the ensemble keeps the epoch where the ensemble was best,
    which need not be each member's own best (measured: MoE member 0 alone peaks at epoch 2)."""
    x, y = _data(160, 0)
    x_val, _ = _data(40, 1)
    # at 0.05, float32 training of the attention families is chaotic over these steps: the
    # grouped kernels' rounding (even a grouped ensemble of 2 against one of 1) grows to 1e-4
    # (measured; 1e-6 at 0.02); float64 training is compared exactly below
    lr = 0.02 if family in ("transformer", "moe_transformer") else 0.05
    kwargs = dict(lr=lr, epochs=3, batch_size=32)
    both = GROUPED.get(family, ModuleListEnsemble)(_spec(2, family=family, hidden=hidden), seeds=[5, 6])
    fit(both, x, y, seed=5, **kwargs)
    # alone: the family's own network (the grouped LSTM initializes its members its own way)
    alone_cls = GroupedLSTMEnsemble if family == "lstm" else ModuleListEnsemble
    for m, seed in enumerate((5, 6)):
        alone = alone_cls(_spec(1, family=family, hidden=hidden), seeds=[seed])
        fit(alone, x, y, seed=seed, **kwargs)
        np.testing.assert_allclose(
            member_next_bar(both, x_val)[m], member_next_bar(alone, x_val)[0], rtol=1e-4, atol=1e-5
        )


def test_an_ensemble_learns_and_is_saved_loaded_and_finetuned_with_frozen_layers(tmp_path):
    x, y = _data(400, 0)
    params = HyperParams(lr=1e-2, hidden_size=8, num_layers=2, seq_len=SEQ, epochs=15, batch_size=32)
    trained = train_new(params, x[:300], y[:300], seed=1, members=4, x_val=x[300:], y_val=y[300:], patience=3)
    network = trained.network
    assert isinstance(network, SeedEnsemble) and network.members == 4
    baseline = float(np.mean(y[300:] ** 2))
    assert np.mean((predict(network, x[300:]) - y[300:]) ** 2) < 0.5 * baseline
    spec = architecture(params, FEATS, 1, members=4)
    save_checkpoint(tmp_path, network, spec, {})
    loaded = load_checkpoint(tmp_path).network
    np.testing.assert_array_equal(predict(loaded, x[:50]), predict(network, x[:50]))
    first_layer = [p.detach().clone() for p in loaded.backbone_layers()[0]]  # type: ignore[operator]
    upper = loaded.backbone_layers()[1][0].detach().clone()  # type: ignore[operator]
    fit(loaded, x[300:], y[300:], lr=1e-2, epochs=2, batch_size=32, seed=2, frozen_layers=1)
    for before, after in zip(first_layer, loaded.backbone_layers()[0], strict=True):  # type: ignore[operator]
        assert torch.equal(before, after)
    assert not torch.equal(upper, loaded.backbone_layers()[1][0])  # type: ignore[operator]
    assert all(p.requires_grad for p in loaded.parameters())


def test_a_seed_free_family_is_never_an_ensemble():
    params = HyperParams(model_family="linear", seq_len=SEQ)
    assert architecture(params, FEATS, 1, members=8).members == 1
    with pytest.raises(ValueError, match="seed-free"):
        build_network(_spec(2, family="linear"))


def test_member_count_is_part_of_the_architecture():
    assert _spec(4).shape_differences(_spec(1)) == ["members"]
    single = build_network(_spec(1))
    assert isinstance(single, nn.Module) and not isinstance(single, SeedEnsemble)


def test_rank_reliability_tells_config_signal_from_seed_noise():
    """Scores that are the configuration's rank reliably; scores that are the seed's do not."""
    import optuna

    from pipelines.search.objective import HALF_VALUES, SEED_VALUES
    from pipelines.search.reliability import rank_reliability

    rng = np.random.default_rng(0)

    def trials(config_spread: float) -> list:
        out = []
        for number in range(30):
            seeds = config_spread * rng.normal() + rng.normal(size=4)
            trial = optuna.trial.create_trial(value=float(seeds.mean()))
            trial.set_user_attr(SEED_VALUES, seeds.tolist())
            trial.set_user_attr(HALF_VALUES, [seeds[:2].mean(), seeds[2:].mean()])
            trial.number = number
            out.append(trial)
        return out

    signal, noise = rank_reliability(trials(3.0)), rank_reliability(trials(0.0))
    assert signal is not None and noise is not None
    assert signal["split_half_spearman"] > 0.8 and signal["icc_1_seed"] > 0.7
    assert abs(noise["split_half_spearman"]) < 0.4 and noise["icc_1_seed"] < 0.2
    assert rank_reliability(trials(3.0)[:3]) is None  # too few configurations to rank


def test_a_trial_scores_its_ensemble_and_records_each_seed_and_each_half():
    import optuna

    from pipelines.config_files import parse_config
    from pipelines.data import synthetic
    from pipelines.search.objective import HALF_VALUES, SEED_VALUES, make_objective
    from pipelines.search.strategy import StrategyGrid
    from pipelines.windowing import PreparedData

    config = parse_config(
        {
            "window_bars": 700,
            "n_folds": 1,
            "val_bars": 120,
            "seeds_per_trial": 4,
            "early_stopping_patience": 1,
            "epochs": 12,
            "lr": 0.3,  # too high to keep improving: the inner validation stops it early
            "hidden_size": 4,
            "seq_len": 5,
            "search_space": {"entry_threshold": {"type": "uniform", "low": 0.0, "high": 0.5}},
        }
    )
    data = PreparedData.from_bars(synthetic.random_walk(900, seed=3).bars, config.window_bars)
    grid = StrategyGrid.from_space(config.search_space, config.hyperparams, 3)
    trial = optuna.trial.FixedTrial({})
    value = make_objective(data, config, {}, "sharpe", grid)(trial)
    seeds, halves = trial.user_attrs[SEED_VALUES], trial.user_attrs[HALF_VALUES]
    assert len(seeds) == 4 and len(halves) == 2
    assert len(set(seeds)) > 1  # each seed scored on its own predictions
    assert np.isfinite(value)
    # a random walk has nothing to learn: the inner validation stops training before the budget
    # (patience 1: the first epoch that does not improve on it)
    assert trial.user_attrs["epochs_trained"][0] < 12


@pytest.mark.parametrize("family", [f for f in ENSEMBLE_FAMILIES if f != "lstm"])
def test_the_live_forward_of_a_list_ensemble_is_the_member_loops(family):
    """Batched (vmap over stacked members) or the loop, whichever is faster: the same numbers.
    Every builtin family now builds a grouped ensemble; families brought by import path still
    build list ensembles, so a builtin one's list ensemble stands in for them here."""
    torch.manual_seed(0)
    network = ModuleListEnsemble(_spec(4, family=family), member_seeds(0, 4)).double().eval()
    x = torch.randn(5, SEQ, FEATS, dtype=torch.float64)
    forward = live_forward(network, x[:1])
    with torch.inference_mode():
        assert (forward(x) - network(x)).abs().max().item() <= 1e-12


def test_a_family_vmap_cannot_batch_keeps_the_member_loop():
    class Unbatchable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, -1, 0] * float(self.scale)  # .item() on a batched tensor: vmap refuses

    network = ModuleListEnsemble.__new__(ModuleListEnsemble)
    nn.Module.__init__(network)
    network.members, network.nets = 2, nn.ModuleList([Unbatchable(), Unbatchable()])
    assert live_forward(network, torch.zeros(1, SEQ, FEATS, dtype=torch.float64)) is network
    assert live_forward(nn.Linear(2, 1), torch.zeros(1, 2)) is not None


@pytest.mark.parametrize(
    "options",
    [
        {"bidirectional": False, "d_ff_ratio": 0.0, "patch_len": 1},
        {"bidirectional": True, "d_ff_ratio": 0.0, "patch_len": 1},
        {"bidirectional": False, "d_ff_ratio": 1.5, "patch_len": 3, "stride_ratio": 0.5},
        {"bidirectional": True, "d_ff_ratio": 1.0, "patch_len": 2, "stride_ratio": 1.0},
    ],
)
def test_grouped_mamba_members_are_the_mamba_regressors_of_their_seeds(options, tmp_path):
    """Same seeds, same members: the grouped ensemble computes what the list of
    ``MambaRegressor``s computes (float64, shared or per-member windows, 1 or 2 outputs), a list
    ensemble's checkpoint loads into it, and its backbone layers are the regressors' layers."""
    values = {"hidden_size": 8, "num_layers": 2, "dropout": 0.1, "seq_len": SEQ + 1, "d_state": 4, **options}
    for outputs in (1, 2):
        spec = architecture_spec("mamba", values, FEATS, outputs, members=3)
        grouped = build_network(spec, [7, 8, 9])
        assert isinstance(grouped, GroupedMambaEnsemble)
        listed = ModuleListEnsemble(spec, [7, 8, 9])
        shared = torch.randn(5, SEQ + 1, FEATS, dtype=torch.float64)
        per_member = torch.randn(3, 5, SEQ + 1, FEATS, dtype=torch.float64)
        with torch.inference_mode():
            for x in (shared, per_member):
                out = grouped.double().eval().member_outputs(x)
                assert (out - listed.double().eval().member_outputs(x)).abs().max().item() <= 1e-12
        save_checkpoint(tmp_path / str(outputs), listed, spec, {})
        loaded = load_checkpoint(tmp_path / str(outputs)).network
        assert isinstance(loaded, GroupedMambaEnsemble)
        for name, param in loaded.state_dict().items():
            assert torch.equal(param, grouped.state_dict()[name].float()), name
    names = {id(p): n for n, p in grouped.named_parameters()}
    member = listed.nets[0]
    member_names = {id(p): n for n, p in member.named_parameters()}
    assert [[names[id(p)] for p in layer] for layer in grouped.backbone_layers()] == [
        [member_names[id(p)] for p in layer]
        for layer in member.backbone_layers()  # type: ignore[operator]
    ]


def test_a_grouped_mamba_trains_with_dropout_and_a_frozen_first_layer():
    x, y = _data(96, 0)
    values = {
        "hidden_size": 8,
        "num_layers": 2,
        "dropout": 0.2,
        "seq_len": SEQ,
        "bidirectional": True,
        "d_ff_ratio": 1.0,
    }
    network = build_network(architecture_spec("mamba", values, FEATS, 1, members=2))
    first = [p.detach().clone() for p in network.backbone_layers()[0]]  # type: ignore[operator]
    second = [p.detach().clone() for p in network.backbone_layers()[1]]  # type: ignore[operator]
    network.train()
    x_t = torch.as_tensor(x[:4])
    assert not torch.equal(network(x_t), network(x_t))  # dropout applies in training
    fit(network, x, y, lr=1e-2, epochs=2, batch_size=32, seed=0, frozen_layers=1, family="mamba")
    assert all(torch.equal(a, b) for a, b in zip(first, network.backbone_layers()[0], strict=True))  # type: ignore[operator]
    # (not all: the last block's backward scan sees the newest token alone, so its A has no gradient)
    assert any(not torch.equal(a, b) for a, b in zip(second, network.backbone_layers()[1], strict=True))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("family", "options"),
    [
        ("transformer", {}),
        ("transformer", {"nhead": 4, "d_ff_ratio": 1.5}),
        ("transformer", {"nhead": 1, "d_ff_ratio": 0.5}),
        ("moe_transformer", {}),
        ("moe_transformer", {"nhead": 4, "n_experts": 3, "top_k": 2, "d_ff_ratio": 1.5}),
        ("moe_transformer", {"nhead": 1, "n_experts": 5, "top_k": 5}),
    ],
)
def test_grouped_transformers_are_the_list_ensembles_of_their_seeds(family, options, tmp_path):
    """Same seeds, same members: the grouped ensemble computes what the list of single networks
    computes (float64, shared or per-member windows, 1 or 3 outputs), a list ensemble's
    checkpoint loads into it, and its backbone layers are the single network's layers."""
    values = {"hidden_size": 8, "num_layers": 2, "dropout": 0.1, "seq_len": SEQ + 1, **options}
    for outputs in (1, 3):
        spec = architecture_spec(family, values, FEATS, outputs, members=3)
        grouped = build_network(spec, [7, 8, 9])
        assert isinstance(grouped, GROUPED[family])
        listed = ModuleListEnsemble(spec, [7, 8, 9])
        shared = torch.randn(5, SEQ + 1, FEATS, dtype=torch.float64)
        per_member = torch.randn(3, 5, SEQ + 1, FEATS, dtype=torch.float64)
        with torch.inference_mode():
            for x in (shared, per_member, shared[:, 2:]):  # a shorter window: the first positions
                out = grouped.double().eval().member_outputs(x)
                assert (out - listed.double().eval().member_outputs(x)).abs().max().item() <= 1e-12
        save_checkpoint(tmp_path / str(outputs), listed, spec, {})
        loaded = load_checkpoint(tmp_path / str(outputs)).network
        assert isinstance(loaded, GROUPED[family])
        for name, param in loaded.state_dict().items():
            assert torch.equal(param, grouped.state_dict()[name].float()), name
    names = {id(p): n for n, p in grouped.named_parameters()}
    member = listed.nets[0]
    member_names = {id(p): n for n, p in member.named_parameters()}
    assert [[names[id(p)] for p in layer] for layer in grouped.backbone_layers()] == [  # type: ignore[operator]
        [member_names[id(p)] for p in layer]
        for layer in member.backbone_layers()  # type: ignore[operator]
    ]


def test_a_grouped_moe_counts_routing_and_its_training_loss_as_its_members_do():
    """Expert usage, the balance and z losses (what training adds) and the imbalance rule's
    per-member view equal the list ensemble's of the same seeds."""
    from models.adaptive_training.base import TrainingControl
    from models.adaptive_training.expert_imbalance import ExpertImbalanceRaisesBalanceWeight
    from models.families import get_family
    from models.families.moe import ExpertRouting

    values = {"hidden_size": 8, "num_layers": 2, "dropout": 0.0, "seq_len": SEQ, "n_experts": 3, "top_k": 2}
    spec = architecture_spec("moe_transformer", values, FEATS, members=3)
    grouped, listed = build_network(spec, [1, 2, 3]).double(), ModuleListEnsemble(spec, [1, 2, 3]).double()
    family = get_family("moe_transformer")
    x = torch.randn(3, 16, SEQ, FEATS, dtype=torch.float64)
    losses = []
    for network in (grouped, listed):
        network.train()
        network.member_outputs(x)
        aux = family.extra_loss(network)
        assert aux is not None and aux.requires_grad
        losses.append(aux.item())
    assert abs(losses[0] - losses[1]) <= 1e-12
    grouped_layers = [m for m in grouped.modules() if isinstance(m, ExpertRouting)]
    listed_layers = [m for m in listed.modules() if isinstance(m, ExpertRouting)]
    for depth, layer in enumerate(grouped_layers):  # list order: member by member
        assert torch.equal(layer.member_counts(), torch.stack([m.routed for m in listed_layers[depth::2]]))
    # the report: per layer, members summed (the last layer routes the newest token alone)
    usage = family.report(grouped)["expert_usage"]
    assert len(usage) == 2 and all(abs(sum(u) - 1) < 1e-3 for u in usage)
    assert grouped_layers[1].routed.sum().item() == 3 * 16 * 1 * 2
    # one collapsed member is seen, though the members' summed usage is even
    for layer in grouped_layers:
        layer.reset_usage()
    control = TrainingControl(grouped, torch.optim.SGD(grouped.parameters(), lr=0.1), None)  # type: ignore[arg-type]
    rule = ExpertImbalanceRaisesBalanceWeight()
    assert rule.act(control) is None  # nothing routed yet
    grouped_layers[0].routed.copy_(torch.tensor([[97.0, 2.0, 1.0], [2.0, 97.0, 1.0], [1.0, 1.0, 98.0]]))
    grouped_layers[1].routed.fill_(10.0)
    assert family.report(grouped)["expert_usage"][0] == pytest.approx([1 / 3] * 3, abs=1e-3)
    fired = rule.act(control)
    assert fired is not None and all(layer.balance_weight == pytest.approx(0.02) for layer in grouped_layers)


@pytest.mark.parametrize("family", ["transformer", "moe_transformer"])
def test_grouped_transformers_train_as_their_single_networks_in_float64(family):
    """Twelve Adam steps (balance and z losses included): every grouped weight stays the stack of
    the list ensemble members' weights, to rounding."""
    from models.families import get_family

    values = {"hidden_size": 8, "num_layers": 2, "dropout": 0.0, "seq_len": SEQ, "n_experts": 3, "top_k": 2}
    if family == "transformer":
        values = {k: v for k, v in values.items() if k not in ("n_experts", "top_k")}
    spec = architecture_spec(family, values, FEATS, members=2)
    grouped, listed = build_network(spec, [5, 6]).double(), ModuleListEnsemble(spec, [5, 6]).double()
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(2, 16, SEQ, FEATS, generator=gen).double(), torch.randn(2, 16, generator=gen))
        for _ in range(12)
    ]
    for network in (grouped, listed):
        network.train()
        optimizer = torch.optim.Adam(network.parameters(), lr=0.05)
        for x, y in batches:
            optimizer.zero_grad()
            loss = ((network.member_outputs(x) - y.double()) ** 2).mean(1).sum()
            extra = get_family(family).extra_loss(network)
            (loss if extra is None else loss + extra).backward()
            optimizer.step()
    members = dict(listed.named_parameters())
    for name, param in grouped.named_parameters():
        stacked = torch.stack([members[f"nets.{m}.{name}"] for m in range(2)])
        assert (param - stacked).abs().max().item() <= 1e-9, name


@pytest.mark.parametrize("family", ["transformer", "moe_transformer"])
def test_a_grouped_transformer_trains_with_dropout_and_a_frozen_first_layer(family):
    x, y = _data(96, 0)
    values = {"hidden_size": 8, "num_layers": 2, "dropout": 0.2, "seq_len": SEQ}
    network = build_network(architecture_spec(family, values, FEATS, 1, members=2))
    first = [p.detach().clone() for p in network.backbone_layers()[0]]  # type: ignore[operator]
    second = [p.detach().clone() for p in network.backbone_layers()[1]]  # type: ignore[operator]
    network.train()
    x_t = torch.as_tensor(x[:4])
    assert not torch.equal(network(x_t), network(x_t))  # dropout applies in training
    fit(network, x, y, lr=1e-2, epochs=2, batch_size=32, seed=0, frozen_layers=1, family=family)
    assert all(torch.equal(a, b) for a, b in zip(first, network.backbone_layers()[0], strict=True))  # type: ignore[operator]
    assert any(not torch.equal(a, b) for a, b in zip(second, network.backbone_layers()[1], strict=True))  # type: ignore[operator]
    assert all(p.requires_grad for p in network.parameters())

"""models.families: every family builds, predicts, ensembles, freezes and refuses unknown
hyperparameters the same way, and a window's prediction does not depend on its batch (the
train/serve parity the live predictor is held to)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.ensemble import SeedEnsemble, member_seeds
from models.families import (
    BUILTIN,
    UnknownFamilyError,
    UnknownHyperparameterError,
    architecture_spec,
    get_family,
)
from models.families.moe import ExpertFeedForward
from models.networks import ArchitectureSpec, build_network
from pipelines.config import ConfigError, ModelFamily
from pipelines.training.trainer import fit, inference_network

SEQ, FEATS = 8, 3
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# tiny, but every option that changes the computation is on
OPTIONS: dict[str, dict] = {
    "lstm": {},
    "linear": {},
    "transformer": {"nhead": 2, "d_ff_ratio": 1.5},
    "moe_transformer": {"nhead": 2, "n_experts": 3, "top_k": 2},
    "mamba": {"d_state": 4, "bidirectional": True, "patch_len": 3, "stride_ratio": 0.5, "d_ff_ratio": 1.0},
}
SEEDED = [f for f in OPTIONS if not get_family(f).seed_free]


pytestmark = pytest.mark.usefixtures("single_thread_torch")


def _spec(family: str, members: int = 1, outputs: int = 1, **extra) -> ArchitectureSpec:
    values = {"hidden_size": 8, "num_layers": 2, "dropout": 0.0, "seq_len": SEQ, **OPTIONS[family], **extra}
    return architecture_spec(family, values, FEATS, outputs, members)


def _x(n: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, SEQ, FEATS, generator=torch.Generator().manual_seed(seed))


def test_the_config_literal_offers_exactly_the_builtin_families():
    from typing import get_args

    assert set(get_args(ModelFamily)) == set(BUILTIN) == set(OPTIONS)


@pytest.mark.parametrize("family", OPTIONS)
@pytest.mark.parametrize("outputs", [1, 3])
def test_forward_shapes(family, outputs):
    out = build_network(_spec(family, outputs=outputs))(_x())
    assert out.shape == ((5,) if outputs == 1 else (5, outputs))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("family", SEEDED)
def test_same_seed_same_network_and_a_seed_ensemble_has_k_distinct_members(family):
    torch.manual_seed(3)
    a = build_network(_spec(family))
    torch.manual_seed(3)
    b = build_network(_spec(family))
    torch.testing.assert_close(a(_x()), b(_x()), rtol=0, atol=0)
    ensemble = build_network(_spec(family, members=3), member_seeds(10, 3))
    assert isinstance(ensemble, SeedEnsemble) and ensemble.members == 3
    members = ensemble.member_outputs(_x())
    assert members.shape == (3, 5)
    assert not torch.allclose(members[0], members[1])
    torch.testing.assert_close(ensemble(_x()), members.mean(0))
    again = build_network(_spec(family, members=3), member_seeds(10, 3))
    torch.testing.assert_close(again.member_outputs(_x()), members, rtol=0, atol=0)


@pytest.mark.parametrize("family", OPTIONS)
def test_one_window_predicts_what_it_predicts_inside_a_batch(family):
    """Parity: float64 inference of a window alone equals the same window among 63 others."""
    torch.manual_seed(0)
    network = inference_network(build_network(_spec(family, members=2 if family in SEEDED else 1)))
    batch = _x(64, seed=1).double()
    with torch.inference_mode():
        together = network(batch)
        alone = torch.cat([network(batch[i : i + 1]) for i in (0, 17, 63)])
    assert (together[[0, 17, 63]] - alone).abs().max().item() <= 1e-12


@pytest.mark.parametrize(
    ("family", "extra"),
    [("moe_transformer", {}), ("mamba", {}), ("mamba", {"bidirectional": False, "d_ff_ratio": 0.0})],
)
def test_the_last_layer_computes_only_the_newest_token_and_changes_nothing(family, extra):
    """The head reads the newest token alone; the last layer computing only it (a backward scan
    that sees only that token, a single attention query) gives the full pass's output."""
    torch.manual_seed(0)
    network = inference_network(build_network(_spec(family, **extra)))
    layers = network.layers if family == "moe_transformer" else network.blocks
    h = torch.randn(4, SEQ, 8, dtype=torch.float64)
    with torch.inference_mode():
        full, newest = layers[-1](h)[:, -1:], layers[-1](h, newest_only=True)
    assert newest.shape == (4, 1, 8)
    assert (full - newest).abs().max().item() <= 1e-12


@pytest.mark.parametrize("family", [f for f in SEEDED])
def test_frozen_backbone_layer_keeps_its_weights_and_the_rest_learns(family):
    torch.manual_seed(0)
    network = build_network(_spec(family))
    backbone = get_family(family).backbone_layers(network)
    assert len(backbone) == 2  # two layers, input side first
    names = get_family(family).backbone_names(network)
    assert all(not n.startswith("head") for layer in names for n in layer)
    before = {n: p.detach().clone() for n, p in network.named_parameters()}
    x = _x(64).numpy()
    fit(
        network,
        x,
        x[:, -1, 0].astype(np.float64),
        lr=1e-2,
        epochs=2,
        batch_size=32,
        seed=0,
        frozen_layers=1,
        family=family,
    )
    after = dict(network.named_parameters())
    frozen = set(names[0])
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in names[1])
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert all(p.requires_grad for p in network.parameters())  # trainable again afterwards


def test_the_names_users_give_common_fields_work_when_the_family_is_searched_too():
    from pipelines.config_files import parse_config

    searched = {"model_family": {"type": "categorical", "choices": ["transformer", "mamba"]}}
    space = {
        "d_model": {"type": "categorical", "choices": [16, 32]},
        "n_layers": {"type": "int", "low": 1, "high": 2},
    }
    config = parse_config({"search_space": {**searched, **space}})
    assert {"hidden_size", "num_layers"} <= set(config.search_space)
    assert config.model_families() == ("transformer", "mamba")
    with pytest.raises(
        ConfigError, match="n_expert: not a hyperparameter of model family 'transformer' or 'mamba'"
    ):
        parse_config({"search_space": {**searched, "n_expert": {"type": "categorical", "choices": [2]}}})


def test_a_family_option_fixed_while_the_family_is_searched_reaches_only_the_families_that_take_it():
    from pipelines.config_files import parse_config
    from pipelines.search.space import resolve

    searched = {"model_family": {"type": "categorical", "choices": ["transformer", "mamba"]}}
    base = parse_config({"bidirectional": True, "search_space": searched}).hyperparams
    assert resolve(base, {"model_family": "mamba"}).model_extra == {"bidirectional": True}
    assert resolve(base, {"model_family": "transformer"}).model_extra == {}
    with pytest.raises(ConfigError, match=r"bidirectional: mamba; nhead: transformer\): no one family"):
        parse_config({"bidirectional": True, "nhead": 2, "search_space": searched})


@pytest.mark.parametrize("family", ["mamba", "moe_transformer", "transformer", "lstm", "linear"])
def test_an_unknown_hyperparameter_names_the_familys_own(family):
    spec = ArchitectureSpec(family, FEATS, 8, 1, 0.0, SEQ, options={"n_expert": 4})
    message = f"n_expert: not a hyperparameter of model family '{family}'"
    with pytest.raises(UnknownHyperparameterError, match=message) as err:
        build_network(spec)
    for name in get_family(family).schema:
        assert name.name in str(err.value)


def test_unknown_family_lists_the_builtin_ones_and_bad_import_paths_say_why():
    with pytest.raises(UnknownFamilyError, match="known: lstm, transformer"):
        get_family("gru")
    with pytest.raises(UnknownFamilyError, match="cannot be imported"):
        get_family("no_such_module:Family")
    with pytest.raises(UnknownFamilyError, match="not a models.families.ModelFamily"):
        get_family("torch.nn:Linear")


def test_a_family_brought_by_import_path_builds_trains_and_checkpoints(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    name = "my_family:GRUFamily"
    spec = architecture_spec(
        name,
        {"hidden_size": 6, "num_layers": 2, "dropout": 0.0, "seq_len": SEQ, "bidirectional": True},
        FEATS,
        members=2,
    )
    network = build_network(spec, member_seeds(0, 2))
    assert network(_x()).shape == (5,)
    save_checkpoint(tmp_path, network, spec, {})
    loaded = load_checkpoint(tmp_path)
    assert loaded.spec == spec and loaded.spec.options == {"bidirectional": True}
    torch.testing.assert_close(loaded.network(_x()), network(_x()))
    changed = architecture_spec(name, {**spec.to_dict(), "bidirectional": False}, FEATS, members=2)
    assert get_family(name).shape_differences(spec, changed) == ["bidirectional"]
    sys.modules.pop("my_family", None)


def test_option_free_specs_keep_the_checkpoint_metadata_of_before():
    """Checkpoints written before families had options load unchanged, and new option-free
    specs write the same metadata (no ``options`` key)."""
    old = {
        "family": "transformer",
        "n_features": 3,
        "hidden_size": 8,
        "num_layers": 1,
        "dropout": 0.0,
        "seq_len": SEQ,
        "n_outputs": 1,
        "members": 1,
    }
    assert ArchitectureSpec(**old).to_dict() == old
    torch.manual_seed(0)
    layer = build_network(ArchitectureSpec(**old)).encoder.layers[0]
    assert layer.self_attn.num_heads == 2 and layer.linear1.out_features == 16


def test_size_presets_set_width_depth_heads_and_feed_forward():
    sizes = {}
    for preset in ("small", "large", "huge"):
        spec = architecture_spec(
            "transformer",
            {"hidden_size": 8, "num_layers": 1, "dropout": 0.0, "seq_len": 30, "preset": preset},
            11,
        )
        sizes[preset] = sum(p.numel() for p in build_network(spec).parameters())
    # the counts docs/model_families.md states (11 features, 30 bars)
    assert sizes == {"small": 18465, "large": 152705, "huge": 798593}


def test_moe_routes_each_token_to_top_k_experts_and_balances_while_training():
    torch.manual_seed(0)
    network = build_network(_spec("moe_transformer"))
    layers = [m for m in network.modules() if isinstance(m, ExpertFeedForward)]
    network.train()
    network(_x(16))
    aux = get_family("moe_transformer").extra_loss(network)
    assert aux is not None and aux.item() > 0 and aux.requires_grad
    usage = get_family("moe_transformer").report(network)["expert_usage"]
    assert len(usage) == 2 and all(abs(sum(u) - 1) < 1e-3 for u in usage)
    assert layers[0].routed.sum().item() == 16 * SEQ * 2  # every token to exactly top_k=2 experts
    network.eval()
    network(_x(4))
    assert get_family("moe_transformer").extra_loss(network) is None  # no loss terms at inference
    assert "routed" not in network.state_dict()  # usage counts are not weights


def test_moe_balance_loss_is_minimal_for_uniform_routing():
    layer = ExpertFeedForward(4, n_experts=2, top_k=1, width=4, balance_weight=1.0, z_weight=0.0)
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[0, 0], layer.router.weight[1, 0] = 5.0, -5.0
    tokens = torch.zeros(1, 4, 4)
    tokens[0, :2, 0], tokens[0, 2:, 0] = 1.0, -1.0  # half the tokens to each expert
    layer(tokens)
    balanced = layer.auxiliary_loss.item()
    tokens[0, :, 0] = 1.0  # all to expert 0
    layer(tokens)
    assert balanced < layer.auxiliary_loss.item()
    assert abs(layer.usage()[0] - 0.75) < 1e-6  # 2 + 4 of 8 routed tokens


def test_mamba_scan_matches_its_closed_form():
    """The loop h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t equals Σ_s exp(A Σ_{r>s} Δ_r) Δ_s B_s x_s."""
    from models.families.mamba import SelectiveScan

    torch.manual_seed(0)
    scan = SelectiveScan(d_model=4, d_state=3, d_conv=2, expand=2).double()
    u = torch.randn(2, 6, 4, dtype=torch.float64)
    x, z = scan.in_proj(u).chunk(2, dim=-1)
    x = torch.nn.functional.silu(scan.conv(x.transpose(1, 2))[..., :6].transpose(1, 2))
    dt, b, c = scan.x_proj(x).split([scan.dt_rank, 3, 3], dim=-1)
    dt = torch.nn.functional.softplus(scan.dt_proj(dt))
    a = -torch.exp(scan.A_log)
    ys = []
    for t in range(6):
        h = sum(
            torch.exp(dt[:, s + 1 : t + 1].sum(1).unsqueeze(-1) * a)
            * (dt[:, s] * x[:, s]).unsqueeze(-1)
            * b[:, s].unsqueeze(1)
            for s in range(t + 1)
        )
        ys.append(torch.einsum("bin,bn->bi", h, c[:, t]))
    y = torch.stack(ys, 1) + x * scan.D
    expected = scan.out_proj(y * torch.nn.functional.silu(z))
    torch.testing.assert_close(scan(u), expected, rtol=1e-10, atol=1e-12)


def test_mamba_patches_always_hold_the_newest_bar_and_causal_scans_ignore_the_future():
    torch.manual_seed(0)
    network = build_network(_spec("mamba", patch_len=3, stride_ratio=0.7, bidirectional=False)).eval()
    x = _x(2)
    patches = network.patches(x)
    assert torch.equal(patches[:, -1].view(2, FEATS, 3)[..., -1], x[:, -1])  # last patch ends at the last bar
    moved = x.clone()
    moved[:, -1] += 1.0
    assert not torch.allclose(network(x), network(moved))


@pytest.mark.parametrize("family", OPTIONS)
def test_live_inference_of_one_window_is_fast(family):
    """A sanity bound, far above the 5 ms goal, that catches an accidental quadratic path."""
    values = {"hidden_size": 32, "num_layers": 2, "dropout": 0.0, "seq_len": 30, **OPTIONS[family]}
    torch.manual_seed(0)
    network = inference_network(build_network(architecture_spec(family, values, 11)))
    window = torch.randn(1, 30, 11, dtype=torch.float64)
    with torch.inference_mode():
        network(window)
        start = time.perf_counter()
        for _ in range(10):
            network(window)
    assert (time.perf_counter() - start) / 10 < 0.05


def test_a_trial_whose_values_build_no_network_is_pruned_not_fatal(make_bars):
    """nhead 3 does not divide d_model 32: the search prunes that trial and says why."""
    import optuna

    from pipelines.config_files import parse_config
    from pipelines.search.objective import PreparedData, make_objective
    from pipelines.search.strategy import StrategyGrid, split_space

    config = parse_config(
        {
            "model_family": "transformer",
            "d_model": 32,
            "epochs": 1,
            "n_folds": 1,
            "val_bars": 40,
            "search_space": {"nhead": {"type": "categorical", "choices": [2, 3]}},
        }
    )
    data = PreparedData.from_bars(make_bars(300, seed=3), 300)
    space, _ = split_space(config.search_space)
    grid = StrategyGrid.from_space(config.search_space, config.hyperparams, 1)
    objective = make_objective(data, config, space, "sharpe", grid)
    with pytest.raises(optuna.TrialPruned, match="not a multiple of nhead 3"):
        objective(optuna.trial.FixedTrial({"nhead": 3}))

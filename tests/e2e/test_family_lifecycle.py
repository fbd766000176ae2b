"""Every new family through the chain in one process: search, a first model, then a daily
fine-tune of it with its first backbone layer frozen, weights-only checkpoints, champion vs
challenger and the parity gate; adaptive rules act during the fine-tune."""

from __future__ import annotations

import pytest
import yaml
from e2e_support import seed_a_champion

from models.checkpoint import load_checkpoint
from pipelines.artifacts import load_json
from pipelines.context import RunContext
from pipelines.settings import load_settings
from pipelines.steps import run_all
from pipelines.store.repository import Repository

FAMILIES = {
    "moe_transformer": {"n_experts": 3, "top_k": 2, "nhead": 2},
    "mamba": {"bidirectional": True, "patch_len": 2, "stride_ratio": 0.5, "d_state": 4},
}


@pytest.mark.parametrize(("family", "store"), [("moe_transformer", "sqlite"), ("mamba", "postgresql")])
def test_search_first_model_then_a_frozen_backbone_fine_tune(
    family, store, request, tmp_path, monkeypatch, make_bars
):
    if store == "postgresql":  # our tables and the Optuna studies
        monkeypatch.setenv("RETUNE_DB_URL", request.getfixturevalue("postgres_url"))
    data = tmp_path / "data"
    data.mkdir()
    make_bars(600, seed=21, start="2019-01-01").to_csv(data / "bars.csv", index=False)
    monkeypatch.setenv("RETUNE_DATA_DIR", str(data))
    config = {
        "model_key": "fam",
        "model_family": family,
        **FAMILIES[family],
        "hidden_size": 8,
        "num_layers": 2,
        "seq_len": 8,
        "epochs": 2,
        "window_bars": 300,
        "n_folds": 1,
        "val_bars": 50,
        "finetune_bars": 120,
        "finetune_epochs": 3,
        "freeze_backbone_layers": 1,
        "holdout_bars": 40,
        "holdout_folds": 2,
        "race_seeds": 0,
        "promotion_policy": "off",
        "baseline_family": None,
        "adaptive_rules": ["loss_stagnation_lowers_lr", "expert_imbalance_raises_balance_weight"],
        "search_space": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))

    def run(name: str, as_of: str) -> RunContext:
        # run ids of their own: the PostgreSQL store (and its Optuna studies, named by run id) is
        # shared by every test of the session, and test_champion's "first" must not be resumed here
        params = {"data": "csv:bars.csv", "n_trials": 1, "as_of": as_of}
        ctx = RunContext.create("daily", f"{family}-{name}", params, config_path=path)
        run_all(ctx)
        return ctx

    first = run("first", "2021-03-01")
    repo = Repository(load_settings().db_url)
    seed_a_champion(repo, "fam", first)
    second = run("second", "2021-03-15")
    model = repo.get_model_version("fam", 2)
    assert model is not None and model.family == family
    assert (
        model.trained_how == "finetune" and model.parent_version == 1 and model.metrics["frozen_layers"] == 1
    )
    assert "adaptations" in model.metrics
    if family == "moe_transformer":
        usage = model.metrics["family_report"]["expert_usage"]
        assert len(usage) == 2 and all(abs(sum(layer) - 1) < 1e-3 for layer in usage)
        assert "Expert usage per MoE layer" in (second.report_dir / "report.html").read_text()
    checkpoint = load_checkpoint(
        __import__("pathlib").Path(model.checkpoint_path), model.sha256, model.feature_fingerprint
    )
    assert checkpoint.spec.family == family and checkpoint.spec.options == {**FAMILIES[family]}
    evaluation = load_json(second.run_dir / "evaluation.json")
    assert evaluation["champion"]["model_version"] == 1 and evaluation["challenger"]["model_version"] == 2
    assert evaluation["parity"]["passed"] and evaluation["parity"]["max_prediction_diff"] <= 1e-9
    repo.close()

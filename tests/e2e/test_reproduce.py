"""`retune reproduce RUN_ID`: a small demo-like run's winner, re-run from its manifest, matches
bit for bit on CPU; changed bars are caught by the data hash."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from pipelines.cli import main
from pipelines.context import RunContext
from pipelines.runfolder import RunManifest, SearchRecord
from pipelines.settings import load_settings
from pipelines.steps import run_all

CONFIG = {
    "model_key": "reproduce",
    "hidden_size": 8,
    "seq_len": 10,
    "epochs": 2,
    "window_bars": 400,
    "n_folds": 2,
    "val_bars": 60,
    "holdout_bars": 60,
    "seeds_per_trial": 2,
    "race_seeds": 0,
    "promotion_policy": "auto",
    "search_space": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
}


def test_reproduce_matches_the_winner_and_catches_changed_bars(tmp_path, capsys):
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    params = {"data": "sample:sp500", "as_of": "2018-12-31", "n_trials": 3}
    ctx = RunContext.create("daily", "demo-like", params, config_path=path)
    run_all(ctx)
    manifest = ctx.folder.read(RunManifest)
    search = ctx.folder.read(SearchRecord)
    assert manifest.winner.number == search.best_trial and manifest.winner.value == search.best_value
    assert manifest.data["sha256"] and manifest.environment["libraries"]["torch"]
    assert manifest.seeds["member_seeds"] == [ctx.config.seed, ctx.config.seed + 1]
    promoted = [v for v in load_settings_versions() if v.source_run == ctx.run_id]
    for version in promoted:  # a promoted (or proposed) version carries the manifest
        assert version.metrics["manifest"]["winner"]["value"] == manifest.winner.value

    capsys.readouterr()
    assert main(["reproduce", ctx.run_id]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matches"] is True and result["data_matches"] is True
    assert result["value"] == manifest.winner.value and result["fold_returns_match"] is True

    bars = pd.read_parquet(ctx.folder.bars)
    bars.loc[len(bars) - 1, "close"] *= 1.01
    bars.to_parquet(ctx.folder.bars)
    assert main(["reproduce", ctx.run_id]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["matches"] is False and result["data_matches"] is False


def load_settings_versions():
    from pipelines.store.repository import Repository

    repo = Repository(load_settings().db_url)
    try:
        return repo.list_config_versions("reproduce")
    finally:
        repo.close()

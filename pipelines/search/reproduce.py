"""``retune reproduce RUN_ID``: run a finished run's winning trial again from its manifest and
say whether it matches — the same value and the same per-bar fold returns, bit for bit on CPU.

The bars come from the run folder (or, if it was cleaned, from the recorded source up to the
recorded cutoff) and must have the recorded content hash; features, folds, seeds and the
objective are recomputed by today's code, so a match says today's code and libraries re-derive
the run, and a mismatch lists what differs from the manifest (code, libraries, data).
"""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
from pydantic import TypeAdapter

from pipelines.config import PipelineConfig
from pipelines.data.sources import load_bars
from pipelines.features.core import compute_features, next_return
from pipelines.param_specs import ParamSpec
from pipelines.runfolder import RunFolder, RunManifest
from pipelines.search.manifest import code_version, data_hash, environment, returns_hash
from pipelines.search.objective import make_objective
from pipelines.search.strategy import StrategyGrid, split_space
from pipelines.settings import Settings
from pipelines.terms import TrialAttr
from pipelines.trading.objectives import OBJECTIVES
from pipelines.windowing import search_window


def reproduce(settings: Settings, run_id: str) -> dict[str, Any]:
    """Re-run the winner of ``run_id``; ``matches`` is True when value and returns are identical."""
    folder = RunFolder(settings.runs_dir / run_id)
    manifest = folder.read(RunManifest)
    bars = _bars(folder, manifest, settings)
    data_matches = data_hash(bars) == manifest.data["sha256"]
    result: dict[str, Any] = {
        "run_id": run_id,
        "data_matches": data_matches,
        "recorded": {"trial": manifest.winner.number, "value": manifest.winner.value},
        "differences": _differences(manifest),
    }
    if not data_matches:
        return {**result, "matches": False, "why": "the bars differ from the recorded data (sha256)"}
    trial = rerun_winner(manifest, bars)
    value = float(trial.value)  # type: ignore[arg-type]
    returns_match = (
        returns_hash(trial.user_attrs.get(TrialAttr.FOLD_RETURNS)) == manifest.winner.fold_returns_sha256
    )
    matches = value == manifest.winner.value and returns_match
    return {**result, "matches": matches, "value": value, "fold_returns_match": returns_match}


def rerun_winner(manifest: RunManifest, bars: pd.DataFrame) -> optuna.trial.FrozenTrial:
    """The winning trial, run once more through the search's own objective (in memory)."""
    config = PipelineConfig.model_validate(manifest.config)
    adapter: TypeAdapter[ParamSpec] = TypeAdapter(ParamSpec)
    space = {name: adapter.validate_python(spec) for name, spec in manifest.search_space.items()}
    model_space, _ = split_space(space)
    grid = StrategyGrid.from_space(space, config.hyperparams, config.strategy_grid_points, manifest.incumbent)
    data = search_window(bars, compute_features(bars), next_return(bars), config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = OBJECTIVES[manifest.params["objective"]].direction
    study = optuna.create_study(direction=direction, pruner=optuna.pruners.NopPruner())
    study.enqueue_trial(manifest.winner.params, user_attrs=manifest.winner.user_attrs)
    study.optimize(make_objective(data, config, model_space, manifest.params["objective"], grid), n_trials=1)
    return study.trials[0]


def _bars(folder: RunFolder, manifest: RunManifest, settings: Settings) -> pd.DataFrame:
    if folder.bars.is_file():
        return pd.read_parquet(folder.bars)
    until = pd.Timestamp(manifest.data["until"]).tz_convert(None)
    return load_bars(manifest.data["source"], until, db_url=settings.db_url)


def _differences(manifest: RunManifest) -> dict[str, Any]:
    """What differs between the run's code and libraries and today's."""
    now_code, now_env = code_version(), environment()
    out: dict[str, Any] = {}
    for key in ("package_version", "git_commit"):
        if manifest.code.get(key) != now_code.get(key):
            out[key] = {"run": manifest.code.get(key), "now": now_code.get(key)}
    if manifest.environment.get("python") != now_env["python"]:
        out["python"] = {"run": manifest.environment.get("python"), "now": now_env["python"]}
    libraries = manifest.environment.get("libraries", {})
    for name, version in now_env["libraries"].items():
        if libraries.get(name) != version:
            out[name] = {"run": libraries.get(name), "now": version}
    return out

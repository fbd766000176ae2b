"""Select the likely best, not the luckiest: race the top configurations on fresh seeds.

A trial's score is one training seed's: on real data most of the spread between trials is seed
noise, so the study's best is mostly its luckiest draw. As SMAC's intensification does, the top
few configurations by score are re-trained on the same fresh seeds (common random numbers, so
they meet on equal terms) and scored again on the same folds with the strategy variant they
chose; the winner is the best *mean over seeds*. A family without seed noise (the linear
baseline) keeps its score without re-training. The report shows the raw best, the selected one
and why they differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import optuna

from models.families import get_family
from pipelines.config import HyperParams, PipelineConfig
from pipelines.search.objective import evaluate_fold
from pipelines.search.space import resolve
from pipelines.search.strategy import StrategyGrid
from pipelines.search.study import fresh_complete_trials
from pipelines.terms import TrialAttr
from pipelines.windowing import PreparedData, config_folds


@dataclass(frozen=True)
class RaceEntry:
    trial: int
    family: str
    seeds: list[int]
    values: list[float]  # one per seed, the trial's own first

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))


@dataclass(frozen=True)
class RaceResult:
    raw_best: int
    selected: int
    entries: list[RaceEntry]

    def to_dict(self) -> dict[str, Any]:
        return {
            "raw_best": self.raw_best,
            "selected": self.selected,
            "entries": [{**asdict(e), "mean": e.mean} for e in self.entries],
            "why": self.why,
        }

    @property
    def retrainings(self) -> int:
        """Backtests the race added (each a one-variant backtest on every fold)."""
        return sum(len(e.values) - 1 for e in self.entries if not get_family(e.family).seed_free)

    @property
    def why(self) -> str:
        if len(self.entries) < 2:
            return "one configuration completed: nothing to race"
        means = {e.trial: e.mean for e in self.entries}
        seeds = len(self.entries[0].seeds)
        if self.selected == self.raw_best:
            return (
                f"trial {self.selected} has the best raw score and the best mean over {seeds} seeds "
                f"({means[self.selected]:.3f})"
            )
        return (
            f"trial {self.raw_best} scored best on its own seed, but over {seeds} seeds trial "
            f"{self.selected} averages {means[self.selected]:.3f} against {means[self.raw_best]:.3f}"
        )


def race(
    study: optuna.Study, data: PreparedData, config: PipelineConfig, top_k: int, extra_seeds: int
) -> RaceResult | None:
    """Re-score the ``top_k`` complete trials of this run on ``extra_seeds`` fresh seeds."""
    complete = fresh_complete_trials(study)
    complete.sort(key=lambda t: t.value if t.value is not None else float("-inf"), reverse=True)
    if not complete:
        return None
    seeds = [config.seed + 1000 * (i + 1) for i in range(extra_seeds)]  # the same for every contender
    entries = [
        _race_one(t, data, config, seeds, study.user_attrs.get(TrialAttr.OBJECTIVE, "sharpe"))
        for t in complete[:top_k]
    ]
    selected = max(entries, key=lambda e: e.mean).trial
    return RaceResult(raw_best=complete[0].number, selected=selected, entries=entries)


def _race_one(
    trial: optuna.trial.FrozenTrial,
    data: PreparedData,
    config: PipelineConfig,
    seeds: list[int],
    objective: str,
) -> RaceEntry:
    family = str(trial.user_attrs.get(TrialAttr.MODEL_FAMILY, config.hyperparams.model_family))
    own = float(trial.value)  # type: ignore[arg-type]
    if get_family(family).seed_free:
        return RaceEntry(trial.number, family, [config.seed, *seeds], [own] * (len(seeds) + 1))
    strategy = trial.user_attrs.get(TrialAttr.STRATEGY) or {}
    params = resolve(config.hyperparams, {**trial.params, **strategy, "model_family": family})
    values = [own, *(fresh_seed_score(data, config, params, seed, objective) for seed in seeds)]
    return RaceEntry(trial.number, family, [config.seed, *seeds], values)


def fresh_seed_score(
    data: PreparedData, config: PipelineConfig, params: HyperParams, seed: int, objective: str
) -> float:
    """A configuration's score retrained from ``seed`` (its members seed, seed+1, ...): the mean
    over the walk-forward folds of its own strategy variant's objective (no best-of-variants)."""
    grid = StrategyGrid((params.entry_threshold,), (params.long_short,))
    reseeded = config.model_copy(update={"seed": seed})
    folds = config_folds(len(data.bars), config)
    scores = [evaluate_fold(data, fold, params, reseeded, objective, grid).values[0] for fold in folds]
    return float(np.mean(scores))

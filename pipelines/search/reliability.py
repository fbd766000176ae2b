"""How far a study's ranking of configurations can be trusted: seed noise against config signal.

Every trial with ``seeds_per_trial`` > 1 records each seed's own score and the scores of two
disjoint halves of its seeds (``pipelines.search.objective``). Over the study's trials:

* the **split-half rank correlation**: Spearman of the configurations' scores under one half of
  the seeds against the other half; Spearman–Brown steps it up to the full ensemble
  (2ρ / (1 + ρ)), the reliability of the scores the study ranked;
* the **intraclass correlation** of single-seed scores (one-way, ICC(1)): the share of a
  single seed's score variance that is the configuration's; and of the k-seed mean.

Near 0, the study's best is its luckiest draw; near 1, its ranking is the configurations'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from scipy import stats

from pipelines.search.objective import HALF_VALUES, SEED_VALUES

MIN_TRIALS = 5  # fewer configurations say nothing about a ranking


def intraclass_correlation(scores: np.ndarray) -> float:
    """One-way ICC(1) of a configurations x seeds score matrix: between-configuration variance
    over the total, one seed's view (near 0: a score is training noise, not the configuration)."""
    k = scores.shape[1]
    within = float(scores.var(axis=1, ddof=1).mean())
    between = float(scores.mean(axis=1).var(ddof=1)) - within / k
    return between / (between + within) if between + within > 0 else 0.0


def spearman_brown(reliability: float, factor: float) -> float:
    """The reliability of a mean over ``factor`` times as many seeds."""
    return factor * reliability / (1 + (factor - 1) * reliability)


def rank_reliability(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any] | None:
    """The study's ranking reliability from its trials' per-seed and half-ensemble scores; None
    when too few trials recorded them (one seed per trial, or a tiny study)."""
    scored = [t for t in trials if t.user_attrs.get(HALF_VALUES) and t.user_attrs.get(SEED_VALUES)]
    widths = {len(t.user_attrs[SEED_VALUES]) for t in scored}
    if len(scored) < MIN_TRIALS or len(widths) != 1:
        return None
    seeds = np.array([t.user_attrs[SEED_VALUES] for t in scored], dtype=float)
    halves = np.array([t.user_attrs[HALF_VALUES] for t in scored], dtype=float)
    rho = float(stats.spearmanr(halves[:, 0], halves[:, 1]).statistic)
    if not np.isfinite(rho):  # constant scores: no ranking at all
        rho = 0.0
    icc = intraclass_correlation(seeds)
    k = seeds.shape[1]
    return {
        "trials": len(scored),
        "seeds_per_trial": k,
        "split_half_spearman": round(rho, 3),
        "ensemble_reliability": round(spearman_brown(rho, 2), 3) if rho > -1 else rho,
        "icc_1_seed": round(icc, 3),
        "icc_ensemble": round(spearman_brown(icc, k), 3) if icc > -1 / (k - 1) else round(icc, 3),
    }

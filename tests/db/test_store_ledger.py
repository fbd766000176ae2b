"""The selection ledger on both store backends: one row per search, a retry replaces its own."""

from __future__ import annotations

import numpy as np
import optuna

from pipelines.search.selection import selection_statistics

BARS = 252


def study_with(returns: list[np.ndarray]) -> optuna.Study:
    """A real in-memory study of finished trials carrying the attributes the objective records."""
    study = optuna.create_study(direction="maximize")
    dist = optuna.distributions.FloatDistribution(0.0, 1.0)
    for i, r in enumerate(returns):
        attrs = {"n_variants": 6, "fold_returns": [r[:126].tolist(), r[126:].tolist()]}
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": i / 10},
                distributions={"x": dist},
                value=float(r.mean() / r.std()),
                user_attrs=attrs,
            )
        )
    return study


def test_a_retried_finalize_replaces_its_share_instead_of_adding_it(repo):
    rng = np.random.default_rng(2)
    bench = np.zeros(BARS)
    study = study_with([rng.normal(0.0, 0.01, BARS) for _ in range(4)])
    best = max(study.trials, key=lambda t: t.value)
    for _attempt in range(2):  # an Airflow retry of search_finalize
        population = repo.selection_population("k", "lstm", exclude_run="r1")
        stats = selection_statistics(study, best, bench, "flat", population, "lstm", pbo_splits=4)
        repo.record_selection("k", "r1", **stats["share"])
    rows = repo.selection_population("k", "lstm", exclude_run="other")
    assert len(rows) == 1 and rows[0].n_backtests == 4 * 6 and rows[0].sr0 == stats["share"]["sr0"]
    assert repo.selection_population("k", "transformer", exclude_run="other") == []
    assert repo.selection_population("other", "lstm", exclude_run="x") == []

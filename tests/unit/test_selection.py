"""The Deflated Sharpe Ratio against the whole trial population: reruns cannot wear it down."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from pipelines.search.selection import selection_statistics
from pipelines.search.stats import expected_max_sharpe
from pipelines.store.migrate import upgrade
from pipelines.store.repository import Repository

BARS = 252


def study_with(trial_returns: list[np.ndarray], n_variants: int = 6) -> optuna.Study:
    """A real Optuna study holding finished trials with the attributes the objective records."""
    study = optuna.create_study(direction="maximize")
    dist = optuna.distributions.FloatDistribution(0.0, 1.0)
    for i, returns in enumerate(trial_returns):
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": i / (len(trial_returns) + 1)},
                distributions={"x": dist},
                value=float(returns.mean() / returns.std()),
                user_attrs={
                    "n_variants": n_variants,
                    "n_effective_variants": 2.0,
                    "fold_returns": [returns[:126].tolist(), returns[126:].tolist()],
                },
            )
        )
    return study


@pytest.fixture
def repo(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    repository = Repository(url)
    yield repository
    repository.close()


def test_reruns_of_unchanged_data_never_raise_the_winners_dsr(repo):
    """The measured failure: reruns concentrate the search around the winner (narrowing,
    carry-over), the spread of trial Sharpes collapses, and with it the expected best of N; the
    DSR of the same winner then climbed run after run until the gate promoted noise."""
    rng = np.random.default_rng(11)
    bench = np.r_[0.0, rng.normal(0.0, 0.01, 125), 0.0, rng.normal(0.0, 0.01, 125)]
    winner = rng.normal(0.0008, 0.01, BARS)  # the same best backtest every run
    dsrs, floors, populations, n_effective = [], [], [], []
    for rerun in range(10):
        if rerun == 0:  # a broad first search: unrelated configurations
            others = [rng.normal(0.0, 0.01, BARS) for _ in range(19)]
        else:  # narrowed reruns: near-copies of the winner
            others = [0.98 * winner + rng.normal(0.0, 0.0005, BARS) for _ in range(19)]
        study = study_with([winner, *others])
        best = study.trials[0]
        population = repo.selection_population("k", "lstm", exclude_run=f"r{rerun}")
        stats = selection_statistics(study, best, bench, "buy_and_hold", population, "lstm", pbo_splits=4)
        repo.record_selection("k", f"r{rerun}", **stats["share"])
        dsrs.append(stats["dsr"]["dsr"])
        floors.append(stats["dsr"]["sr0"])
        populations.append(stats["sr0_population"])
        n_effective.append(stats["n_effective_ever"])
    assert all(later <= earlier + 1e-12 for earlier, later in zip(dsrs, dsrs[1:], strict=False)), dsrs
    assert all(later >= earlier for earlier, later in zip(floors, floors[1:], strict=False)), floors
    assert all(later > earlier for earlier, later in zip(n_effective, n_effective[1:], strict=False))
    # the bar is the expected best of ever more skill-less bets: it rises with N, however tight
    # the reruns' own trials are (the ratchet came from taking their spread as the variance)
    assert all(later > earlier for earlier, later in zip(populations, populations[1:], strict=False))


def test_the_bar_is_what_skill_less_trials_would_show_not_the_trials_spread():
    """Trials of very different real skill spread far more than luck alone; the bar SR0 is the
    expected best of N skill-less trials, whose Sharpes over T bars vary by 1/T."""
    rng = np.random.default_rng(3)
    skills = np.linspace(-0.003, 0.003, 20)  # per-bar means: real differences between configs
    study = study_with([rng.normal(mu, 0.01, BARS) for mu in skills])
    best = max(study.trials, key=lambda t: t.value or 0.0)
    stats = selection_statistics(study, best, np.zeros(BARS), "flat", [], "lstm", pbo_splits=4)
    assert stats["sharpe_variance_null"] == pytest.approx(1.0 / BARS)
    assert stats["sharpe_variance_across_trials"] > 3.0 / BARS  # skill, not luck
    assert stats["dsr"]["sr0"] == pytest.approx(expected_max_sharpe(stats["n_effective_ever"], 1.0 / BARS))
    # on skill-less trials the spread is about the null variance: the two agree where they should
    noise = study_with([rng.normal(0.0, 0.01, BARS) for _ in range(40)])
    spread = selection_statistics(noise, noise.trials[0], np.zeros(BARS), "flat", [], "lstm", pbo_splits=4)
    assert 0.6 < spread["sharpe_variance_across_trials"] * BARS < 1.5


def test_pruned_trials_count_and_enter_the_variance_on_the_full_walk_forwards_footing():
    rng = np.random.default_rng(5)
    bench = np.zeros(BARS)
    study = study_with([rng.normal(0.0005, 0.01, BARS) for _ in range(3)], n_variants=4)
    stopped_early = rng.normal(-0.004, 0.01, BARS // 2)  # the worse trial a pruner ends after fold 0
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for x, folds in ((0.9, [stopped_early.tolist()]), (0.8, [])):  # the second died before a fold
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x},
                distributions=dist,
                state=optuna.trial.TrialState.PRUNED,
                user_attrs={"n_variants": 4, "fold_returns": folds},
            )
        )
    best = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value or 0.0)
    stats = selection_statistics(study, best, bench, "flat", [], "lstm", pbo_splits=4)
    assert stats["n_backtests_this_run"] == 5 * 4  # the pruned trials were tried too
    assert 1.0 <= stats["n_effective_this_run"] <= 20
    share = stats["share"]
    assert share["n_sharpes"] == 4  # three complete, one pruned with a fold's returns
    complete = [float(r.mean() / r.std(ddof=1)) for r in _complete_returns(study)]
    partial = float(stopped_early.mean() / stopped_early.std(ddof=1)) * np.sqrt(0.5)
    assert share["sharpe_sum"] == pytest.approx(sum(complete) + partial)
    # left out, the survivors of the pruner would make the search look tighter than it was
    assert stats["sharpe_variance_across_trials"] > float(np.var(complete, ddof=1))
    assert pd.notna(stats["dsr"]["dsr"])


def _complete_returns(study: optuna.Study) -> list[np.ndarray]:
    return [
        np.concatenate([np.asarray(f) for f in t.user_attrs["fold_returns"]])
        for t in study.trials
        if t.state.name == "COMPLETE"
    ]

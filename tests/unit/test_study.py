"""pipelines.search.study + objective: a real Optuna study on SQLite.

Tests of the objective itself train tiny torch models and backtest with vectorbt (``run_study``);
tests of the study's bookkeeping score trials with a deterministic formula (``quick_study``), so
they run in milliseconds.
"""

from __future__ import annotations

import zlib

import numpy as np
import optuna
import pytest

from pipelines.config import ConfigError
from pipelines.config_files import parse_config
from pipelines.param_specs import Categorical, FloatRange, IntRange
from pipelines.search.objective import evaluate_fold
from pipelines.search.samplers import BLOCKS_PER_FOLD, PairedBlocksPruner, make_pruner, make_sampler
from pipelines.search.space import resolve, suggest
from pipelines.search.strategy import StrategyGrid
from pipelines.search.study import SearchSettings, best_fresh_trial, fresh_trials, study_name
from pipelines.search.worker import refine, run_study
from pipelines.terms import TrialAttr
from pipelines.trading.objectives import PENALTY
from pipelines.windowing import PreparedData, config_folds

SPACE = {
    "lr": FloatRange(type="loguniform", low=1e-3, high=3e-2),
    "hidden_size": Categorical(type="categorical", choices=(4, 8)),
    "seq_len": IntRange(type="int", low=4, high=12, step=4),
    "entry_threshold": FloatRange(type="uniform", low=0.0, high=0.4),
    "long_short": Categorical(type="categorical", choices=(False, True)),
}


def tiny_config(**overrides):
    """Study bookkeeping is under test here: no baseline trial and no race unless a test asks."""
    raw = {"epochs": 1, "batch_size": 64, "window_bars": 360, "n_folds": 2, "val_bars": 60}
    return parse_config(
        raw | {"strategy_grid_points": 3, "baseline_family": None, "race_seeds": 0} | overrides
    )


@pytest.fixture(scope="module")
def data(make_bars):
    return PreparedData.from_bars(make_bars(420, seed=5), window_bars=360)


@pytest.fixture
def storage(tmp_path):
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def settings(n: int) -> SearchSettings:
    return SearchSettings(n_trials=n, timeout_minutes=5)


def formula_objective(data, config, space, objective, grid):
    """Stands in for the walk-forward objective: the same params always score the same, and the
    trial carries the attributes outputs and narrowing read back; nothing is trained."""

    def run_trial(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        family = trial.user_attrs.get(TrialAttr.TRAIN_FAMILY, config.hyperparams.model_family)
        rng = np.random.default_rng(zlib.crc32(repr(sorted(params.items())).encode()))
        returns = rng.normal(0.0, 0.01, (config.n_folds, config.val_bars)).round(8)
        trial.set_user_attr(TrialAttr.MODEL_FAMILY, family)
        trial.set_user_attr(TrialAttr.N_VARIANTS, grid.size)
        trial.set_user_attr(TrialAttr.STRATEGY, grid.variant(int(rng.integers(grid.size))))
        trial.set_user_attr(TrialAttr.FOLD_RETURNS, returns.tolist())
        return float(rng.normal())

    return run_trial


def quick_study(*args, **kwargs) -> optuna.Study:
    """``run_study`` on the formula objective: for tests of budget, resume, seeding and stages."""
    return run_study(*args, objective_factory=formula_objective, **kwargs)


def test_trial_value_is_the_best_variants_mean_and_returns_are_kept(data, storage):
    config = tiny_config(pruner="none")
    study = run_study("t1", data, config, SPACE, settings(2), storage)
    trial = best_fresh_trial(study)
    assert trial is not None
    params = resolve(config.hyperparams, trial.params)
    grid = StrategyGrid.from_space(SPACE, config.hyperparams, 3)
    outcomes = [evaluate_fold(data, f, params, config, "sharpe", grid) for f in config_folds(360, config)]
    per_variant = np.mean([o.values for o in outcomes], axis=0)
    assert grid.size == 6
    assert trial.value == pytest.approx(per_variant.max(), rel=1e-9)
    assert trial.user_attrs["strategy"] == grid.variant(int(np.argmax(per_variant)))
    assert trial.user_attrs["n_variants"] == 6
    returns = trial.user_attrs["fold_returns"]
    assert [len(r) for r in returns] == [60, 60]
    chosen = int(np.argmax(per_variant))
    np.testing.assert_allclose(returns[1], np.round(outcomes[1].returns[:, chosen], 8))


def test_incumbent_is_trial_zero_and_a_retry_resumes(data, storage):
    config = tiny_config()
    incumbent = {"lr": 0.01, "hidden_size": 8, "seq_len": 8, "entry_threshold": 0.1, "long_short": False}
    study = quick_study("t2", data, config, SPACE, settings(3), storage, incumbent=incumbent)
    first = study.trials[0]
    assert first.user_attrs.get("incumbent") is True
    assert first.params == {"lr": 0.01, "hidden_size": 8, "seq_len": 8}  # strategy params are not searched
    again = quick_study("t2", data, config, SPACE, settings(3), storage, incumbent=incumbent)
    assert again.study_name == study_name("t2")
    assert len(again.trials) == 3  # the finished budget is not run twice
    more = quick_study("t2", data, config, SPACE, settings(4), storage, incumbent=incumbent)
    assert len(more.trials) == 4
    assert sum(1 for t in more.trials if t.user_attrs.get("incumbent")) == 1


def test_a_new_run_carries_over_only_trials_inside_the_new_bounds(data, storage):
    config = tiny_config()
    old = quick_study("old", data, config, SPACE, settings(5), storage)
    narrowed = dict(SPACE, lr=FloatRange(type="loguniform", low=1e-3, high=8e-3))
    fits = [
        t
        for t in old.trials
        if t.state == optuna.trial.TrialState.COMPLETE and 1e-3 <= t.params["lr"] <= 8e-3
    ]
    new = quick_study("new", data, config, narrowed, settings(2), storage, previous_study=study_name("old"))
    carried = [t for t in new.trials if "carried_over_from" in t.user_attrs]
    assert len(carried) == len(fits)
    assert sorted(t.value for t in carried) == sorted(t.value for t in fits)
    assert all(t.params["lr"] <= 8e-3 for t in carried)
    assert len(fresh_trials(new)) == 2  # carried-over trials do not eat the budget
    assert new.user_attrs["n_carried_over"] == len(fits)
    best = best_fresh_trial(new)
    assert best is not None and "carried_over_from" not in best.user_attrs


def test_two_stage_search_runs_a_fine_stage_inside_the_coarse_best(data, storage):
    config = tiny_config(two_stage=True)
    study = quick_study("t3", data, config, SPACE, settings(6), storage)
    stages = [t.user_attrs["stage"] for t in study.trials]
    assert stages.count("coarse") == 3 and stages.count("fine") == 3
    coarse_best = max(
        (t for t in study.trials if t.user_attrs["stage"] == "coarse" and t.value is not None),
        key=lambda t: t.value,
    )
    box = refine({k: SPACE[k] for k in ("lr", "hidden_size", "seq_len")}, coarse_best.params)
    for trial in study.trials:
        if trial.user_attrs["stage"] == "fine":
            assert box["lr"].low <= trial.params["lr"] <= box["lr"].high


def test_refine_shrinks_numeric_ranges_around_the_best_and_keeps_categoricals():
    box = refine(SPACE, {"lr": 3e-2, "hidden_size": 4, "seq_len": 4, "entry_threshold": 0.2})
    assert box["lr"].high == pytest.approx(3e-2) and box["lr"].low > 1e-3  # slid inside at the edge
    assert np.log(box["lr"].high / box["lr"].low) == pytest.approx(0.25 * np.log(30), rel=1e-9)
    assert box["hidden_size"] == SPACE["hidden_size"]
    assert box["seq_len"].low == 4 and box["seq_len"].high in (4, 8)
    assert box["entry_threshold"].high - box["entry_threshold"].low == pytest.approx(0.1)


def test_samplers_and_pruners_by_name():
    numeric = {k: v for k, v in SPACE.items() if k in ("lr", "seq_len")}
    assert isinstance(make_sampler("bayesian", SPACE, 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("bayesian", SPACE, 0, "gp"), optuna.samplers.GPSampler)
    assert isinstance(make_sampler("bayesian", numeric, 0, "cmaes"), optuna.samplers.CmaEsSampler)
    assert isinstance(make_sampler("random", SPACE, 0), optuna.samplers.RandomSampler)
    with pytest.raises(ConfigError, match="cmaes .* hidden_size"):
        make_sampler("bayesian", SPACE, 0, "cmaes")
    assert isinstance(make_pruner("median", 3), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband", 3), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("wilcoxon", 3), PairedBlocksPruner)
    assert isinstance(make_pruner("none", 3), optuna.pruners.NopPruner)


def test_cmaes_search_runs_on_a_numeric_space(data, storage):
    numeric = {k: v for k, v in SPACE.items() if k in ("lr", "seq_len", "entry_threshold")}
    study = quick_study("t4", data, tiny_config(sampler="cmaes"), numeric, settings(3), storage)
    assert sum(1 for t in study.trials if t.state.is_finished()) == 3


def test_wilcoxon_pruner_gets_what_each_time_block_adds_to_the_fold(data, storage):
    config = tiny_config(pruner="wilcoxon", n_folds=3, val_bars=40)
    study = run_study("t5", data, config, SPACE, settings(3), storage)
    for trial in study.trials:
        folds = trial.user_attrs["fold_metrics"]
        assert sorted(trial.intermediate_values) == list(range(len(folds) * BLOCKS_PER_FOLD))
        last = len(folds) - 1
        blocks = [trial.intermediate_values[last * BLOCKS_PER_FOLD + b] for b in range(BLOCKS_PER_FOLD)]
        if folds[last]["value"] == PENALTY["sharpe"]:  # a penalized fold reports its penalty
            assert blocks == [PENALTY["sharpe"]] * BLOCKS_PER_FOLD
        else:  # equal-sized blocks' contributions average to the fold's Sharpe
            assert np.mean(blocks) == pytest.approx(folds[last]["sharpe"], rel=0.05)


def test_paired_pruner_pairs_with_this_runs_best_not_a_carried_over_trial():
    study = optuna.create_study(direction="maximize", pruner=PairedBlocksPruner(n_startup_trials=2))
    # an earlier run's best, carried over to guide sampling: scored on other bars, no blocks
    study.add_trial(
        optuna.trial.create_trial(value=9.0, user_attrs={TrialAttr.CARRIED_OVER_FROM: "retune-earlier"})
    )
    for value in (1.0, 0.5):  # this run's trials
        study.add_trial(
            optuna.trial.create_trial(
                value=value, intermediate_values={b: value + 0.01 * b for b in range(BLOCKS_PER_FOLD)}
            )
        )
    worse = study.ask()
    for block in range(BLOCKS_PER_FOLD):
        worse.report(-1.0 - 0.01 * block, block)
    assert worse.should_prune()  # six blocks all worse than this run's best: p = 1/64
    no_better = study.ask()
    for block in range(BLOCKS_PER_FOLD):
        no_better.report(1.0 + 0.01 * block + (0.5 if block % 2 else -0.5), block)
    assert not no_better.should_prune()


def test_paired_pruner_waits_for_enough_complete_trials_for_the_dsr():
    study = optuna.create_study(direction="maximize", pruner=PairedBlocksPruner(n_startup_trials=3))
    for value in (1.0, 0.9):
        study.add_trial(
            optuna.trial.create_trial(
                value=value, intermediate_values=dict.fromkeys(range(BLOCKS_PER_FOLD), value)
            )
        )
    worse = study.ask()
    for block in range(BLOCKS_PER_FOLD):
        worse.report(-1.0 - 0.01 * block, block)
    assert not worse.should_prune()  # two complete trials: the DSR needs a spread first
    study.add_trial(
        optuna.trial.create_trial(value=0.8, intermediate_values=dict.fromkeys(range(BLOCKS_PER_FOLD), 0.8))
    )
    assert worse.should_prune()


def test_search_outputs_are_usable_and_honest(data, storage, tmp_path):
    from pipelines.config_files import load_config
    from pipelines.search.outputs import write_search_outputs
    from pipelines.search.selection import PopulationShare, trial_returns

    config = tiny_config(pbo_splits=4)
    study = run_study("t6", data, config, SPACE, settings(4), storage)
    earlier = PopulationShare("lstm", 100, 10.0, 10, 0.05, 0.002, sr0=0.01)  # one earlier search
    summary = write_search_outputs(study, data, config, tmp_path, "sharpe", population=[earlier])
    best = best_fresh_trial(study)
    assert best is not None and summary["best_trial"] == best.number

    # best_config.json trains exactly the chosen configuration: nothing left to search
    chosen = load_config(tmp_path / "best_config.json")
    assert chosen.search_space == {}
    assert chosen.hyperparams.model_dump() == summary["best_params"]
    assert summary["best_params"]["entry_threshold"] == best.user_attrs["strategy"]["entry_threshold"]
    assert chosen.n_folds == config.n_folds and chosen.fees == config.fees

    stats = summary["statistics"]
    assert stats["n_backtests_ever"] == 100 + 4 * 6  # prior + 4 trials x 6 strategy variants
    assert 1.0 <= stats["n_effective_this_run"] <= 4 * 6  # correlated bets count less than raw ones
    assert stats["dsr"]["n_trials"] == pytest.approx(10.0 + stats["n_effective_this_run"])
    assert stats["dsr"]["sr0"] >= 0.01  # never below the bar the earlier search set
    assert stats["share"]["n_backtests"] == 24 and stats["share"]["sr0"] == stats["dsr"]["sr0"]
    assert stats["benchmark"]["benchmark"] == "buy_and_hold" and stats["benchmark"]["n_bars"] == 120
    assert stats["dsr"]["n_obs"] == len(trial_returns(best)) == 120
    assert 0.0 <= stats["dsr"]["dsr"] <= 1.0
    assert stats["pbo"] is not None and stats["pbo"]["n_strategies"] >= 2
    assert summary["audit"]["trials"] == 4 and summary["audit"]["carried_over"] == 0
    assert set(summary["plots"]) >= {"optimization_history", "parallel_coordinate"}
    assert all((tmp_path / "plots" / name).is_file() for name in summary["plots"].values())
    assert (tmp_path / "plots" / "plotly.min.js").is_file()
    trials_csv = (tmp_path / "trials.csv").read_text()
    assert "fold_returns" not in trials_csv and "user_attrs_strategy" in trials_csv


def test_degenerate_trials_are_counted(data, storage):
    from pipelines.search.selection import degenerate_audit

    # thresholds far above any prediction: no variant ever trades
    config = tiny_config(pruner="none")
    never = dict(SPACE, entry_threshold=FloatRange(type="uniform", low=4.0, high=5.0))
    study = run_study("t7", data, config, never, settings(2), storage)
    audit = degenerate_audit(study)
    assert audit["trials"] == 2 and audit["no_trades"] == 2
    assert all(t.value == -10.0 for t in study.trials)


def test_history_reads_earlier_runs_of_the_model_key(data, storage):
    """The narrowing evidence: top trials of earlier studies of the key, with their chosen strategy."""
    import pandas as pd

    from pipelines.narrowing.history import prior_trials
    from pipelines.store.migrate import upgrade
    from pipelines.store.repository import Repository

    upgrade(storage)
    repo = Repository(storage)
    config = tiny_config()
    run_fields = {"dag_id": "daily", "model_key": "k", "as_of": pd.Timestamp(2021, 1, 1), "data_source": "x"}
    for i, run_id in enumerate(["r1", "r2"]):
        repo.start_run(run_id, **run_fields, params={})
        previous = study_name("r1") if run_id == "r2" else None
        quick_study(run_id, data, config, SPACE, settings(4), storage, previous_study=previous)
        repo.update_run(
            run_id, study_name=study_name(run_id), state="success", started_at=pd.Timestamp(2021, 1, 1 + i)
        )
    repo.start_run("r3", **run_fields, params={})

    top, best = prior_trials(repo, storage, "k", "r3", quantile=0.5)
    own_complete = [
        sum(
            t.state == optuna.trial.TrialState.COMPLETE and "carried_over_from" not in t.user_attrs
            for t in optuna.load_study(study_name=study_name(r), storage=storage).trials
        )
        for r in ("r1", "r2")
    ]
    assert len(top) == sum(max(n // 2, 1) for n in own_complete)  # the top half of each study's own
    assert all({"lr", "hidden_size", "seq_len", "entry_threshold", "long_short"} <= set(t) for t in top)
    r2 = optuna.load_study(study_name=study_name("r2"), storage=storage)
    r2_best = best_fresh_trial(r2)
    assert best == {**r2_best.params, **r2_best.user_attrs["strategy"]}  # the latest run's best
    repo.close()


def test_top_quantile_ranks_only_complete_trials_the_study_ran_itself():
    """A pruned trial's value is a partial mean over fewer folds and a carried-over one was scored
    on older data: neither may rank as evidence, however high its value."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from pipelines.narrowing.history import top_quantile

    study = optuna.create_study(direction="maximize")
    dist = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}

    def add(lr, value, state=TrialState.COMPLETE, **attrs):
        study.add_trial(
            create_trial(params={"lr": lr}, distributions=dist, value=value, state=state, user_attrs=attrs)
        )

    assert top_quantile(study) == []
    add(1e-2, 9.0, TrialState.PRUNED)
    add(2e-2, 8.0, carried_over_from="older")
    for i, value in enumerate([0.5, 2.0, 1.0, 1.5]):
        add(1e-3 * (i + 1), value, strategy={"entry_threshold": 0.1 * i})
    assert top_quantile(study, 0.5) == [
        {"lr": 2e-3, "entry_threshold": 0.1},
        {"lr": 4e-3, "entry_threshold": pytest.approx(0.3)},
    ]
    assert top_quantile(study, 0.1) == [{"lr": 2e-3, "entry_threshold": 0.1}]  # at least the best


def test_carry_over_takes_only_the_previous_runs_own_trials_of_the_same_objective(data, storage):
    config = tiny_config()
    quick_study("c1", data, config, SPACE, settings(3), storage)
    second = quick_study("c2", data, config, SPACE, settings(2), storage, previous_study=study_name("c1"))
    third = quick_study("c3", data, config, SPACE, settings(2), storage, previous_study=study_name("c2"))
    # c2 carried c1's 3 trials; c3 carries c2's own 2, not c1's again
    assert second.user_attrs["n_carried_over"] == 3
    assert third.user_attrs["n_carried_over"] == 2
    assert {
        t.user_attrs["carried_over_from"] for t in third.trials if "carried_over_from" in t.user_attrs
    } == {study_name("c2")}
    returns = SearchSettings(n_trials=1, timeout_minutes=5, objective="return")
    other = quick_study("c4", data, config, SPACE, returns, storage, previous_study=study_name("c3"))
    assert "n_carried_over" not in other.user_attrs  # sharpe values do not mix with returns


def test_grid_mode_does_not_spend_a_trial_on_the_incumbent(data, storage):
    grid_space = {"seq_len": IntRange(type="int", low=4, high=16, step=4)}
    incumbent = {"seq_len": 16}
    study = quick_study(
        "g1", data, tiny_config(), grid_space, SearchSettings(4, 5, mode="grid"), storage, incumbent
    )
    assert sorted(t.params["seq_len"] for t in study.trials) == [4, 8, 12, 16]  # every grid point once


def test_a_single_trial_gives_no_deflated_sharpe(data, storage):
    from pipelines.search.objective import fold_benchmark_returns
    from pipelines.search.selection import selection_statistics

    study = quick_study("one", data, tiny_config(), SPACE, settings(1), storage)
    bench = fold_benchmark_returns(data, tiny_config())
    stats = selection_statistics(
        study, best_fresh_trial(study), bench, "buy_and_hold", [], "lstm", pbo_splits=4
    )
    assert stats["dsr"] is None and stats["pbo"] is None  # nothing to deflate against: the gate fails


def test_prepare_seeds_once_even_when_a_retry_finds_it_half_done(data, storage):
    from pipelines.search.seeding import PREPARED, prepare_study

    config = tiny_config()
    quick_study("prev", data, config, SPACE, settings(3), storage)
    incumbent = {"lr": 0.01, "hidden_size": 8, "seq_len": 8, "entry_threshold": 0.1, "long_short": False}
    args = ("next", config, SPACE, settings(3), storage, incumbent, study_name("prev"))
    first = prepare_study(*args)
    seeded = [(t.number, t.state, t.params) for t in first.trials]
    assert len(seeded) == 3 + 1  # three carried over, production queued
    first.set_user_attr(PREPARED, False)  # as if the first attempt died before marking it
    again = prepare_study(*args)
    assert [(t.number, t.state, t.params) for t in again.trials] == seeded
    assert again.user_attrs["n_carried_over"] == 3 and again.user_attrs[PREPARED] is True


def test_parallel_workers_need_postgresql(data, storage, caplog, tmp_path):
    import json

    from pipelines.context import RunContext
    from pipelines.search.seeding import prepare_study
    from pipelines.search.worker import run_worker
    from pipelines.steps import search_prepare

    prepare_study("solo", tiny_config(), SPACE, settings(2), storage)
    with pytest.raises(ConfigError, match="PostgreSQL"):
        run_worker("solo", data, tiny_config(), SPACE, settings(2), storage, worker=1)

    from pipelines.store.migrate import upgrade
    from pipelines.store.repository import Repository

    ctx = RunContext.create("daily", "sqlite-workers", {"workers": 4})
    upgrade(ctx.settings.db_url)
    repo = Repository(ctx.settings.db_url)
    run = {"dag_id": "daily", "model_key": ctx.model_key, "as_of": ctx.as_of, "data_source": "x"}
    repo.start_run(ctx.run_id, **run, params={})
    repo.close()
    ctx.run_dir.mkdir(parents=True)
    after = {k: v.model_dump(mode="json") for k, v in SPACE.items()}
    (ctx.run_dir / "narrowing.json").write_text(json.dumps({"after": after}))
    with caplog.at_level("WARNING"):
        result = search_prepare(ctx)
    assert result["workers"] == [0]  # the DAG maps one worker
    assert "4 workers asked for, running 1" in caplog.text and "PostgreSQL" in caplog.text


def test_finalize_refuses_a_study_with_a_running_trial(storage):
    from pipelines.search.heartbeats import make_storage
    from pipelines.search.run import check_trials as _check_trials

    study = optuna.create_study(storage=make_storage(storage), study_name="busy", direction="maximize")
    study.tell(study.ask(), 1.0)
    _check_trials(study)  # finished trials only: fine
    study.ask()  # a worker is running this one (and it is not stale yet)
    with pytest.raises(RuntimeError, match=r"RUNNING trials \[1\]"):
        _check_trials(study)


def test_every_search_runs_the_linear_baseline_which_may_win_but_teaches_no_ranges(data, storage):
    from pipelines.narrowing.history import top_quantile
    from pipelines.search.outputs import chosen_params
    from pipelines.terms import TrialAttr

    config = tiny_config(baseline_family="linear", pruner="none")
    study = run_study("b1", data, config, SPACE, settings(3), storage)
    baseline = [t for t in study.trials if t.user_attrs.get("baseline")]
    assert len(baseline) == 1 and baseline[0].user_attrs["model_family"] == "linear"
    assert baseline[0].state == optuna.trial.TrialState.COMPLETE  # scored like any trial
    assert chosen_params(config, baseline[0])["model_family"] == "linear"  # what a win deploys
    others = [t for t in study.trials if not t.user_attrs.get("baseline")]
    assert {t.user_attrs["model_family"] for t in others} == {"lstm"}
    assert len(top_quantile(study, 1.0)) == len(others)  # its score says nothing of LSTM ranges
    carried = run_study("b3", data, config, SPACE, settings(1), storage, previous_study=study_name("b1"))
    assert not any(
        TrialAttr.TRAIN_FAMILY in t.user_attrs and "carried_over_from" in t.user_attrs for t in carried.trials
    )


def test_the_race_reruns_the_top_configs_on_common_fresh_seeds_and_selects_by_their_mean(
    data, storage, tmp_path
):
    from pipelines.search.outputs import write_search_outputs
    from pipelines.search.racing import race

    config = tiny_config(pruner="none", race_top_k=3, race_seeds=2)
    study = run_study("race", data, config, SPACE, settings(4), storage)
    result = race(study, data, config, top_k=3, extra_seeds=2)
    assert result is not None and len(result.entries) == 3
    ranked = sorted((t for t in study.trials if t.value is not None), key=lambda t: t.value, reverse=True)
    assert [e.trial for e in result.entries] == [t.number for t in ranked[:3]]
    assert result.raw_best == ranked[0].number
    assert all(e.seeds == result.entries[0].seeds and len(e.values) == 3 for e in result.entries)
    assert [e.values[0] for e in result.entries] == [t.value for t in ranked[:3]]  # own seed first
    assert any(e.values[1] != e.values[0] for e in result.entries)  # a fresh seed trains another model
    assert result.selected == max(result.entries, key=lambda e: e.mean).trial
    assert result.retrainings == 3 * 2
    summary = write_search_outputs(study, data, config, tmp_path, "sharpe")
    assert summary["best_trial"] == result.selected and summary["race"]["why"]
    assert summary["statistics"]["n_backtests_this_run"] == 4 * 6 + 6  # the race's backtests count


def test_a_pruned_trial_is_logged_with_its_folds_mean_not_its_last_time_block():
    from pipelines.search.worker import _shown_value

    pruned = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED,
        intermediate_values={0: 0.5, 5: 7.25},  # the last block's value is what Optuna keeps
        user_attrs={"fold_metrics": [{"value": 1.5}]},
    )
    assert _shown_value(pruned) == "after 1 fold(s) value=1.5000"
    assert _shown_value(optuna.trial.create_trial(value=2.0)) == "value=2.0"


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_a_trial_is_never_pruned_after_its_last_fold(data, storage, monkeypatch):
    """Nothing is left to save then: pruning would only throw a complete candidate away."""
    import pipelines.search.seeding as seeding
    import pipelines.search.worker as worker

    for module in (seeding, worker):
        monkeypatch.setattr(module, "make_pruner", lambda name, n_folds: _AlwaysPrune())
    one_fold = run_study("t-last", data, tiny_config(n_folds=1), SPACE, settings(2), storage)
    assert [t.state for t in one_fold.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    two_folds = run_study("t-first", data, tiny_config(n_folds=2), SPACE, settings(2), storage)
    assert [len(t.user_attrs["fold_metrics"]) for t in two_folds.trials] == [1, 1]  # pruned after fold 0
    assert {t.state for t in two_folds.trials} == {optuna.trial.TrialState.PRUNED}


def test_trials_csv_scores_a_pruned_trial_over_the_folds_it_ran():
    from pipelines.search.outputs import trial_table

    study = optuna.create_study(direction="maximize")
    folds = [{"value": 0.4, "sharpe": 0.4}, {"value": 1.6, "sharpe": 1.6}]
    # what Optuna keeps as a pruned trial's value: the last block reported to the pruner
    pruned = optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED,
        value=3.5,
        intermediate_values={10: 0.2, 11: 3.5},
        user_attrs={"fold_metrics": folds},
    )
    complete = optuna.trial.create_trial(
        value=1.2, user_attrs={"fold_metrics": [{"value": v} for v in (0.3, 2.0, 1.3)]}
    )
    study.add_trials([pruned, complete])
    table = trial_table(study)
    assert table["value"].tolist() == pytest.approx([1.0, 1.2])
    assert table["folds_run"].tolist() == [2, 3]
    assert not any(c.endswith("fold_metrics") for c in table)


def test_a_cautious_model_is_read_in_units_of_its_own_spread():
    """Ridge's forecasts of a weak edge span a few hundredths of the target's spread: read raw,
    a threshold of 0.1 left it no trade on a planted volatility regime. Read in units of its own
    spread over the fold's training windows, it trades at every threshold of the grid."""
    from pipelines.data.synthetic import vol_regime

    data = PreparedData.from_bars(vol_regime(1300, seed=113, calm_drift=0.002, storm_drift=-0.002).bars, 1300)
    config = tiny_config(window_bars=1300, val_bars=252, n_folds=2, model_family="linear")
    params = resolve(config.hyperparams, {})
    grid = StrategyGrid((0.1, 0.3, 0.5), (False, True))
    for fold in config_folds(1300, config):
        outcome = evaluate_fold(data, fold, params, config, "sharpe", grid)
        assert outcome.penalties == [None] * grid.size, outcome.penalties
        assert (outcome.positions.to_numpy() != 0).mean(axis=0).min() > 0.05

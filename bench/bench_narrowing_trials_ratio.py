"""Does narrowing pay? Trials TPE needs on the narrowed space to match 100 trials on the full one.

For each seed: a prior study (the previous period) runs on a slightly different objective; its
top-quantile trials and best are the evidence the DataDrivenOptimizer narrows from. Then two
TPE studies with the same seed run 100 trials each, one on the configured space and one on the
narrowed space; the value is (first trial of the narrowed study reaching the unnarrowed
study's final best) / 100, or 1.0 when it never does. A third study, unnarrowed with another
seed (the twin), is scored the same way: what a narrowing that changes nothing would get. Three
objectives:

* synthetic: a smooth function of the hyperparameters with a known optimum that moves a little
  between the prior period and now (details: how often that optimum lies inside the narrowed box);
* planted: the default daily config's own objective (8-seed ensembles trained as it trains them,
  the 3 x 252 walk-forward, vectorbt, fees) on an AR(1) phi = 0.25 series, a learnable edge on
  which configurations really differ. Its budget is the daily search's: the prior study is the
  previous run (20 trials on the series a quarter earlier), and the value is the trials the
  narrowed study needs to reach the best of 40 unnarrowed ones, over the 39 it searched (each
  study's 40th is the baseline family's queued reference, left out of every arm). A fourth arm,
  the rerun, searches what production gives a daily rerun: the deployed shape pinned to the
  previous run's best, the previous study's trials carried over and that best queued first;
* S&P 500 (details only): the old small walk-forward objective (2-epoch LSTMs, one seed) on arch's
  S&P 500 bars; the prior study sees data up to 2016, the compared studies data up to 2018. How much
  the hyperparameters matter there at all is measured too: the share of the score's variance that
  is between configurations rather than between training seeds of one configuration. There is
  little to narrow towards (that share is about 0.04), so it stays a record, not the goal.

``RETUNE_BENCH_SEEDS`` (6) planted series from ``RETUNE_BENCH_FIRST_SEED`` (0),
``RETUNE_BENCH_SYNTHETIC_SEEDS`` (40), ``RETUNE_BENCH_SP500_SEEDS`` (8; 0 skips the S&P 500).
Each narrowing that cut a range is scored by the unnarrowed studies' trials (``cuts``): the mean,
median and best of those it would cut against those it keeps, to tell which rule misleads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import optuna
import pandas as pd
from bench_planted_promotions import MATCHED_STRENGTHS, UNSEEN, planted
from chain import env_int
from search_fixtures import median, random_points, small_config, sqlite_url

from pipelines.config import PipelineConfig
from pipelines.config_files import default_config, parse_config
from pipelines.narrowing.base import Evidence
from pipelines.narrowing.history import top_quantile
from pipelines.narrowing.optimizer import DataDrivenOptimizer, data_evidence
from pipelines.narrowing.rules.deployed_architecture import shape_params
from pipelines.param_specs import Categorical, FloatRange, IntRange, ParamSpec, contains
from pipelines.search.objective import make_objective
from pipelines.search.reliability import intraclass_correlation
from pipelines.search.space import suggest
from pipelines.search.strategy import StrategyGrid, split_space
from pipelines.search.study import SearchSettings, best_fresh_trial, fresh_trials, study_name
from pipelines.search.worker import run_study
from pipelines.terms import TrialAttr
from pipelines.windowing import PreparedData

NAME = "narrowing_trials_ratio"
SEEDS = tuple(range(8))  # real objective
SYNTHETIC_SEEDS = tuple(range(40))  # cheap, and a 10-seed median swings by +-0.2
TRIALS = 100
PRIOR_TRIALS = 60
TOP_QUANTILE = 0.25
PRIOR_END = "2016-12-30"
TWIN_SEED = 1000  # the twin study's seed offset
STRUCTURE_CONFIGS, STRUCTURE_SEEDS = 24, (0, 1, 2)
PLANTED_TRIALS, PLANTED_PRIOR_TRIALS = 40, 20  # two daily searches; the previous daily search
PLANTED_PRIOR_LAG = 63  # bars between the previous run's data and this run's: a quarter

SYNTHETIC_SPACE: dict[str, ParamSpec] = parse_config(
    {
        "search_space": {
            "lr": {"type": "loguniform", "low": 1e-5, "high": 1e-1},
            "dropout": {"type": "uniform", "low": 0.0, "high": 0.6},
            "num_layers": {"type": "int", "low": 1, "high": 6},
            "seq_len": {"type": "int", "low": 5, "high": 120, "step": 5},
            "hidden_size": {"type": "categorical", "choices": [8, 16, 32, 64, 128]},
        }
    }
).search_space


def _unit(spec: ParamSpec, value: Any) -> float:
    """A parameter's position in [0, 1] of the configured range (log scale for loguniform)."""
    assert isinstance(spec, FloatRange | IntRange)
    log = isinstance(spec, FloatRange) and spec.type == "loguniform"
    to = math.log if log else float
    return (to(value) - to(spec.low)) / (to(spec.high) - to(spec.low))


def synthetic_optimum(rng: np.random.Generator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in SYNTHETIC_SPACE.items():
        if isinstance(spec, Categorical):
            out[name] = spec.choices[int(rng.integers(len(spec.choices)))]
        else:
            assert isinstance(spec, FloatRange | IntRange)
            log = isinstance(spec, FloatRange) and spec.type == "loguniform"
            to, back = (math.log, math.exp) if log else (float, float)
            u = rng.uniform(0.15, 0.85)
            out[name] = back(to(spec.low) + u * (to(spec.high) - to(spec.low)))
    return out


def attainable(optimum: dict[str, Any]) -> dict[str, Any]:
    """The objective's best point in the configured space: int coordinates on their step grid.

    The quadratic is separable, so each int coordinate's best value is the grid point nearest
    the continuous optimum; that point, not the continuous one, is what a search can find.
    """
    out = dict(optimum)
    for name, spec in SYNTHETIC_SPACE.items():
        if isinstance(spec, IntRange):
            steps = round((optimum[name] - spec.low) / spec.step)
            out[name] = min(max(spec.low + steps * spec.step, spec.low), spec.high)
    return out


def shifted(optimum: dict[str, Any], rng: np.random.Generator, by: float = 0.05) -> dict[str, Any]:
    """The optimum of the previous period: each numeric coordinate moved by `by` of its span."""
    out = dict(optimum)
    for name, spec in SYNTHETIC_SPACE.items():
        if isinstance(spec, FloatRange | IntRange):
            log = isinstance(spec, FloatRange) and spec.type == "loguniform"
            to, back = (math.log, math.exp) if log else (float, float)
            span = to(spec.high) - to(spec.low)
            out[name] = back(to(optimum[name]) + rng.choice([-1, 1]) * by * span)
    return out


def synthetic_value(params: dict[str, Any], optimum: dict[str, Any]) -> float:
    value = 0.0
    for name, spec in SYNTHETIC_SPACE.items():
        if isinstance(spec, Categorical):
            value -= 0.3 * (params[name] != optimum[name])
        else:
            value -= (_unit(spec, params[name]) - _unit(spec, optimum[name])) ** 2
    return value


def tpe_study(space: dict[str, ParamSpec], objective, seed: int, n: int) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: objective(suggest(t, space)), n_trials=n)
    return study


def top_trials(study: optuna.Study) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The evidence the narrow step reads from a prior study: its top-quantile trials and best."""
    top = top_quantile(study, TOP_QUANTILE)
    return top, dict(top[0])


def complete_values(study: optuna.Study) -> list[float]:
    """Each searched trial's value in order, -inf unless complete (a pruned trial's value covers
    fewer folds). The baseline family's reference trial is left out: every arm queues the same one
    first, so it would credit any arm with reaching a target the baseline set."""
    return [
        t.value if t.state == optuna.trial.TrialState.COMPLETE else -math.inf  # type: ignore[misc]
        for t in fresh_trials(study)  # a carried-over trial was scored on the previous run's data
        if not t.user_attrs.get(TrialAttr.BASELINE)
    ]


def searched_trials(study: optuna.Study) -> list[tuple[dict[str, Any], float]]:
    """Each complete searched trial's params (with its chosen strategy variant, as the narrow step
    reads them) and value; the baseline family's reference trial is left out."""
    return [
        ({**t.params, **(t.user_attrs.get(TrialAttr.STRATEGY) or {})}, float(t.value))  # type: ignore[arg-type]
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and not t.user_attrs.get(TrialAttr.BASELINE)
    ]


def cut_scores(firings: list, trials: list[tuple[dict[str, Any], float]]) -> dict[str, dict[str, Any]]:
    """Did each narrowing cut away trials that scored worse? Per firing that narrowed a range, the
    unnarrowed studies' trials outside the new range (those the rule cut) against those inside.

    A rule that cuts better-scoring trials than it keeps misleads the search. Widening firings are
    left out: the unnarrowed studies never tried the widened region.
    """
    out: dict[str, dict[str, Any]] = {}
    for firing in firings:
        after = parse_config({"search_space": {firing.param: firing.after}}).search_space[firing.param]
        kept = [value for params, value in trials if contains(after, params[firing.param])]
        cut = [value for params, value in trials if not contains(after, params[firing.param])]
        if not cut:  # a widening, or a cut nobody had tried
            continue
        out[f"{firing.rule}:{firing.param}"] = {
            "kept_trials": len(kept),
            "cut_trials": len(cut),
            "kept_mean": round(float(np.mean(kept)), 4) if kept else None,
            "cut_mean": round(float(np.mean(cut)), 4),
            "kept_median": round(float(np.median(kept)), 4) if kept else None,
            "cut_median": round(float(np.median(cut)), 4),
            "kept_best": round(max(kept), 4) if kept else None,
            "cut_best": round(max(cut), 4),
        }
    return out


def baseline_value(study: optuna.Study) -> float | None:
    return next((t.value for t in study.trials if t.user_attrs.get(TrialAttr.BASELINE)), None)


def trials_to_reach(values: list[float], target: float) -> int | None:
    running = np.maximum.accumulate(np.asarray(values, dtype=float))
    hit = np.nonzero(running >= target - 1e-12)[0]
    return int(hit[0]) + 1 if len(hit) else None


def ratio(values: list[float], target: float) -> float:
    """Trials to reach ``target`` over the study's budget (1.0: never)."""
    needed = trials_to_reach(values, target)
    return 1.0 if needed is None else needed / len(values)


def compare(arms: dict[str, list[float]]) -> dict[str, Any]:
    """Each arm's trials to reach the full arm's best (and top decile) against the full arm: the
    narrowed study, the twin (an unnarrowed study with another seed) and, where measured, the
    rerun (the space and seeding production gives a daily rerun)."""
    full = arms["full"]
    target = float(np.max(full))
    finite = np.asarray([v for v in full if math.isfinite(v)])
    decile = float(np.quantile(finite, 0.9))  # a target one lucky draw cannot set alone
    out: dict[str, Any] = {
        "unnarrowed_best": round(target, 5),
        "narrowed_best": round(float(np.max(arms["narrowed"])), 5),
        "trials_needed": trials_to_reach(arms["narrowed"], target),
    }
    for arm, values in arms.items():
        if arm != "full":
            prefix = "" if arm == "narrowed" else f"{arm}_"
            out[f"{prefix}ratio"] = ratio(values, target)
            out[f"{prefix}ratio_to_top_decile"] = ratio(values, decile)
    if "rerun" in arms:
        out["rerun_best"] = round(float(np.max(arms["rerun"])), 5)
    out["mean_trial"] = {arm: _finite(np.mean, values) for arm, values in arms.items()}
    # one degenerate trial (the objective's penalty, -10 Sharpe for a degenerate backtest)
    # moves a mean over 22 complete trials by 0.6, more than the arms differ: the median compares
    out["median_trial"] = {arm: _finite(np.median, values) for arm, values in arms.items()}
    return out


def _finite(statistic: Callable[[np.ndarray], Any], values: list[float]) -> float:
    """``statistic`` of the complete trials' values (a pruned trial's -inf left out)."""
    return round(float(statistic(np.asarray([v for v in values if math.isfinite(v)]))), 5)


@dataclass(frozen=True)
class Rerun:
    """What production gives a daily rerun: the space narrowed with the deployed model's shape
    pinned, in the store of the previous run's study, whose trials it carries over, production's
    params queued first."""

    space: dict[str, ParamSpec]
    storage_url: str
    previous_study: str
    incumbent: dict[str, Any]


def search_arms(
    tag: str,
    data: PreparedData,
    config: PipelineConfig,
    full: dict,
    narrowed: dict,
    twin_config: PipelineConfig,
    n: int,
    rerun: Rerun | None = None,
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], float]]]:
    """The full, narrowed, twin (and rerun) studies through the production search, compared; and
    the unnarrowed (full and twin) studies' trials, which score what each narrowing cut."""
    arms, baseline, unnarrowed_trials = {}, None, []  # the trials of the full and twin arms
    for arm, arm_config, arm_space in (
        ("full", config, full),
        ("narrowed", config, narrowed),
        ("twin", twin_config, full),
    ):
        study = run_study(
            f"{tag}-{arm}", data, arm_config, arm_space, SearchSettings(n, 600), sqlite_url(arm)
        )
        assert best_fresh_trial(study) is not None
        arms[arm] = complete_values(study)
        if arm != "narrowed":
            unnarrowed_trials += searched_trials(study)
        if arm == "full":
            baseline = baseline_value(study)
    if rerun is not None:
        study = run_study(
            f"{tag}-rerun",
            data,
            config,
            rerun.space,
            SearchSettings(n, 600),
            rerun.storage_url,
            incumbent=rerun.incumbent,
            previous_study=rerun.previous_study,
        )
        arms["rerun"] = complete_values(study)
    result = compare(arms)
    result["baseline"] = None if baseline is None else round(baseline, 5)  # what no arm is credited
    result["values"] = {  # each trial in order, to see which configurations the arms share
        arm: [round(v, 4) if math.isfinite(v) else None for v in values] for arm, values in arms.items()
    }
    return result, unnarrowed_trials


def width_share(before: dict[str, ParamSpec], after: dict[str, ParamSpec]) -> float:
    """How much of each numeric range narrowing kept (log scale for loguniform), averaged."""
    shares = [
        _unit(spec, after[name].high) - _unit(spec, after[name].low)  # type: ignore[union-attr]
        for name, spec in before.items()
        if isinstance(spec, FloatRange | IntRange) and isinstance(after[name], FloatRange | IntRange)
    ]
    return round(float(np.mean(shares)), 3)


def inside(space: dict[str, ParamSpec], point: dict[str, Any]) -> bool:
    for name, spec in space.items():
        if isinstance(spec, Categorical):
            if point[name] not in spec.choices:
                return False
        elif not spec.low <= point[name] <= spec.high:
            return False
    return True


def synthetic_seed(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    optimum = synthetic_optimum(rng)
    previous = shifted(optimum, rng)
    prior = tpe_study(SYNTHETIC_SPACE, lambda p: synthetic_value(p, previous), seed + 100, PRIOR_TRIALS)
    top, best = top_trials(prior)
    evidence = Evidence(
        n_bars=100_000,  # neutral data evidence: only the prior study speaks
        recent_volatility=0.01,
        long_volatility=0.01,
        prior_top_trials=top,
        prior_best_params=best,
    )
    narrowed = DataDrivenOptimizer().narrow(SYNTHETIC_SPACE, evidence)
    arms = {
        arm: complete_values(tpe_study(arm_space, lambda p: synthetic_value(p, optimum), arm_seed, TRIALS))
        for arm, arm_space, arm_seed in (
            ("full", SYNTHETIC_SPACE, seed),
            ("narrowed", narrowed.after, seed),
            ("twin", SYNTHETIC_SPACE, seed + TWIN_SEED),
        )
    }
    result = compare(arms)
    result["optimum_inside_narrowed_box"] = inside(narrowed.after, attainable(optimum))
    result["width_share_kept"] = width_share(SYNTHETIC_SPACE, narrowed.after)
    result["rules_fired"] = sorted({f.rule for f in narrowed.firings})
    return result


def sp500_seed(seed: int, bars: pd.DataFrame) -> dict[str, Any]:
    config = small_config(seed=seed)
    space = config.search_space
    earlier = bars[bars["timestamp"] <= PRIOR_END].reset_index(drop=True)
    prior_data = PreparedData.from_bars(earlier, config.window_bars)
    prior = run_study(
        f"sp-prior-{seed}", prior_data, config, space, SearchSettings(PRIOR_TRIALS, 60), sqlite_url("prior")
    )
    top, best = top_trials(prior)
    window = bars.tail(config.window_bars)
    evidence = Evidence(**data_evidence(window), prior_top_trials=top, prior_best_params=best)
    narrowed = DataDrivenOptimizer().narrow(space, evidence)
    data = PreparedData.from_bars(bars, config.window_bars)
    twin_config = small_config(seed=seed + TWIN_SEED)
    result, trials = search_arms(f"sp-{seed}", data, config, space, narrowed.after, twin_config, TRIALS)
    result["cuts"] = cut_scores(narrowed.firings, trials)
    result["width_share_kept"] = width_share(space, narrowed.after)
    result["rules_fired"] = sorted({f.rule for f in narrowed.firings})
    return result


def planted_seed(seed: int) -> dict[str, Any]:
    """Narrowing at the daily default's objective and budget, on a planted AR(1) series.

    The previous run searched the same series a quarter earlier; its top trials, and the data,
    narrow this run's space. The final year stays out, as in the planted promotions bench.
    """
    config = default_config("daily").model_copy(update={"seed": seed})
    space = config.search_space
    bars = planted("ar1", seed, MATCHED_STRENGTHS["ar1"])[0].bars.iloc[:-UNSEEN]
    earlier = bars.iloc[:-PLANTED_PRIOR_LAG]
    prior_data = PreparedData.from_bars(earlier, config.window_bars)
    prior_url = sqlite_url("prior")
    prior = run_study(
        f"ar-prior-{seed}",
        prior_data,
        config,
        space,
        SearchSettings(PLANTED_PRIOR_TRIALS, 600),
        prior_url,
    )
    top, best = top_trials(prior)
    evidence = Evidence(
        **data_evidence(bars.tail(config.window_bars)), prior_top_trials=top, prior_best_params=best
    )
    narrowed = DataDrivenOptimizer().narrow(space, evidence)
    # production holds the previous run's best (the bench skips its race); a daily rerun fine-tunes it
    deployed = replace(evidence, incumbent=best, deployed_params=best, pin_architecture=True)
    rerun_space = DataDrivenOptimizer().narrow(space, deployed).after
    rerun = Rerun(rerun_space, prior_url, study_name(f"ar-prior-{seed}"), best)
    data = PreparedData.from_bars(bars, config.window_bars)
    twin_config = config.model_copy(update={"seed": seed + TWIN_SEED})
    result, trials = search_arms(
        f"ar-{seed}", data, config, space, narrowed.after, twin_config, PLANTED_TRIALS, rerun
    )
    result["cuts"] = cut_scores(narrowed.firings, trials)
    result["width_share_kept"] = width_share(space, narrowed.after)
    result["rules_fired"] = sorted({f.rule for f in narrowed.firings})
    result["rerun_pinned"] = {name: best[name] for name in shape_params(best) if name in best}
    return result


def parameter_share(bars: pd.DataFrame) -> dict[str, Any]:
    """How much of the S&P objective's variance the hyperparameters explain.

    Random configurations, each scored with several training seeds; the intraclass correlation
    (between-configuration variance over total, one seed's view) is near 0 when a trial's score
    is training noise, so that a search's best is the luckiest seed, not the best configuration.
    """
    config = small_config()
    data = PreparedData.from_bars(bars, config.window_bars)
    model_space, _ = split_space(config.search_space)
    points = random_points(model_space, STRUCTURE_CONFIGS)
    scores = np.empty((len(points), len(STRUCTURE_SEEDS)))
    for column, seed in enumerate(STRUCTURE_SEEDS):
        seeded = small_config(seed=seed)
        grid = StrategyGrid.from_space(seeded.search_space, seeded.hyperparams, seeded.strategy_grid_points)
        objective = make_objective(data, seeded, model_space, "sharpe", grid)
        for row, point in enumerate(points):
            scores[row, column] = objective(optuna.trial.FixedTrial(point))
    k = len(STRUCTURE_SEEDS)
    within = float(scores.var(axis=1, ddof=1).mean())
    between = float(scores.mean(axis=1).var(ddof=1)) - within / k
    return {
        "configurations": len(points),
        "training_seeds": k,
        "between_configuration_variance": round(between, 5),
        "training_seed_variance": round(within, 5),
        "intraclass_correlation": round(intraclass_correlation(scores), 3),
    }


def planted_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Beyond the best-of-budget ratio: the top-decile ratios' medians, and per series (in seed
    order) the narrowed and twin arms' median and mean trial and the narrowed best against the
    full arm's."""

    def minus_full(statistic: str, arm: str) -> list[float]:
        return [round(r[statistic][arm] - r[statistic]["full"], 3) for r in rows]

    return {
        "planted_ratio_to_top_decile": median([r["ratio_to_top_decile"] for r in rows]),
        "planted_twin_ratio_to_top_decile": median([r["twin_ratio_to_top_decile"] for r in rows]),
        "planted_median_trial_narrowed_minus_full": minus_full("median_trial", "narrowed"),
        "planted_median_trial_twin_minus_full": minus_full("median_trial", "twin"),
        "planted_mean_trial_narrowed_minus_full": minus_full("mean_trial", "narrowed"),
        "planted_mean_trial_twin_minus_full": minus_full("mean_trial", "twin"),
        "planted_best_narrowed_minus_unnarrowed": [
            round(r["narrowed_best"] - r["unnarrowed_best"], 3) for r in rows
        ],
        # production's daily rerun: the deployed shape pinned, the previous trials carried over
        "planted_rerun_ratio": median([r["rerun_ratio"] for r in rows]),
        "planted_rerun_ratio_to_top_decile": median([r["rerun_ratio_to_top_decile"] for r in rows]),
        "planted_median_trial_rerun_minus_full": minus_full("median_trial", "rerun"),
        "planted_best_rerun_minus_unnarrowed": [
            round(r["rerun_best"] - r["unnarrowed_best"], 3) for r in rows
        ],
    }


def run() -> dict:
    from pipelines.data.sources import load_bars

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    synthetic_seeds = SYNTHETIC_SEEDS[: env_int("RETUNE_BENCH_SYNTHETIC_SEEDS", len(SYNTHETIC_SEEDS))]
    synthetic_rows = {seed: synthetic_seed(seed) for seed in synthetic_seeds}  # 0: another process has them
    print(f"   synthetic ratios {[r['ratio'] for r in synthetic_rows.values()]}", flush=True)
    n_planted = env_int("RETUNE_BENCH_SEEDS", 6)
    if n_planted < 1:
        raise ValueError("RETUNE_BENCH_SEEDS must be at least 1: the planted series are half of the value")
    planted_rows = {}
    first = env_int("RETUNE_BENCH_FIRST_SEED", 0)  # to split the planted series over processes
    for seed in range(first, first + n_planted):
        row = planted_rows[seed] = planted_seed(seed)
        print(
            f"   planted seed {seed}: {row['ratio']} (twin {row['twin_ratio']}, rerun {row['rerun_ratio']})",
            row["cuts"],
            flush=True,
        )
    sp500_seeds = range(env_int("RETUNE_BENCH_SP500_SEEDS", len(SEEDS)))
    sp500: dict[int, dict] = {}
    structure: dict[str, Any] = {}
    if sp500_seeds:
        bars = load_bars("sample:sp500", pd.Timestamp("2018-12-31"))
        for seed in sp500_seeds:
            sp500[seed] = sp500_seed(seed, bars)
            print(f"   sp500 seed {seed}: {sp500[seed]['ratio']}", flush=True)
        structure = parameter_share(bars)
        print(f"   sp500 intraclass correlation {structure['intraclass_correlation']}", flush=True)
    synthetic_ratio = median([r["ratio"] for r in synthetic_rows.values()])
    planted_ratio = median([r["ratio"] for r in planted_rows.values()])
    inside_share = float(np.mean([r["optimum_inside_narrowed_box"] for r in synthetic_rows.values()]))
    details: dict[str, Any] = {
        "synthetic_ratio": synthetic_ratio,
        "planted_ratio": planted_ratio,
        "synthetic_twin_ratio": median([r["twin_ratio"] for r in synthetic_rows.values()]),
        "planted_twin_ratio": median([r["twin_ratio"] for r in planted_rows.values()]),
        **planted_summary([planted_rows[seed] for seed in sorted(planted_rows)]),
        "synthetic_optimum_inside_narrowed_box_share": inside_share,
        "synthetic_optimum_inside_goal": ">= 0.95",
        "prior_trials": {"synthetic": PRIOR_TRIALS, "planted": PLANTED_PRIOR_TRIALS},
        "trials": {"synthetic": TRIALS, "planted": PLANTED_TRIALS},
        "top_quantile": TOP_QUANTILE,
        "synthetic": synthetic_rows,
        "planted": planted_rows,
    }
    if sp500:
        details |= {
            "sp500_ratio": median([r["ratio"] for r in sp500.values()]),
            "sp500_twin_ratio": median([r["twin_ratio"] for r in sp500.values()]),
            "sp500_parameter_share": structure,
            "sp500": sp500,
        }
    return {
        "value": max(synthetic_ratio, planted_ratio),
        "unit": f"trials to reach the unnarrowed best / the budget (worse of the two objectives; medians of "
        f"{len(SYNTHETIC_SEEDS)} synthetic seeds at {TRIALS} trials and {len(planted_rows)} planted AR(1) "
        f"phi={MATCHED_STRENGTHS['ar1']} series at the daily default, {PLANTED_TRIALS} trials)",
        "goal": "<= 0.5",
        "details": details | {"wall_s": round(time.perf_counter() - started, 1)},
    }

"""The public steps of a run and their registry.

Each step takes a RunContext, reads what earlier steps left in the run folder, writes its
own small JSON result there and returns it. The DAG, the CLI and the tests call the same
functions through ``run_step``, which also records a failure against the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pipelines.artifacts import dump_json, load_json
from pipelines.context import RunContext
from pipelines.store.repository import Repository

log = logging.getLogger(__name__)

StepResult = dict[str, Any]
Step = Callable[[RunContext], StepResult]


def _repo(ctx: RunContext) -> Repository:
    from pipelines.store.migrate import upgrade

    upgrade(ctx.settings.db_url)
    return Repository(ctx.settings.db_url)


def validate(ctx: RunContext) -> StepResult:
    """Load the bars up to ``as_of`` and check them with the Great Expectations suite."""
    import pandas as pd

    from pipelines.calendar import CalendarError, calendar_of
    from pipelines.context import CALENDAR_FILE
    from pipelines.data.sources import load_bars
    from pipelines.promotion.production_file import sync_production_file
    from pipelines.validation.suite import BarExpectations, BarValidationError, validate_bars

    repo = _repo(ctx)
    sync_production_file(repo, ctx.settings.production_config)  # repairs a write an earlier run missed
    repo.start_run(
        ctx.run_id,
        dag_id=ctx.dag,
        model_key=ctx.model_key,
        as_of=ctx.as_of,
        data_source=ctx.params.data,
        params=ctx.params.model_dump(mode="json"),
    )
    until = pd.Timestamp(ctx.data_until).tz_convert(None)
    bars = load_bars(ctx.params.data, until, db_url=ctx.settings.db_url)
    # the bar calendar (frequency, session): the config's, the rest inferred from the bars
    calendar, calendar_problem = None, None
    try:
        calendar = calendar_of(ctx.config, bars["timestamp"])
    except CalendarError as exc:
        calendar_problem = str(exc)
    # the history needed counts the sizes given in time as bars of this calendar
    config = ctx.config.with_calendar(calendar) if calendar is not None else ctx.config
    spec = BarExpectations.from_config(config, as_of=until, calendar=calendar)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    (ctx.run_dir / CALENDAR_FILE).unlink(missing_ok=True)
    try:
        gx_result = validate_bars(bars, spec)
    except BarValidationError as exc:
        dump_json(ctx.run_dir / "validation.json", exc.result)
        if calendar_problem and not exc.missing_columns:
            raise BarValidationError([*exc.failures, calendar_problem], exc.result) from None
        raise
    dump_json(ctx.run_dir / "validation.json", gx_result)
    if calendar is None:
        raise BarValidationError([str(calendar_problem)], gx_result)
    bars.to_parquet(ctx.run_dir / "bars.parquet")
    dump_json(ctx.run_dir / CALENDAR_FILE, calendar.to_dict())  # later steps' configs read it
    log.info("validate: %s", calendar.describe())
    stats = gx_result.get("statistics", {})
    return {
        "n_bars": len(bars),
        "first_bar": str(bars["timestamp"].iloc[0]),
        "last_bar": str(bars["timestamp"].iloc[-1]),
        "calendar": calendar.to_dict(),
        "expectations": stats.get("evaluated_expectations"),
        "successful": stats.get("successful_expectations"),
    }


def build_features(ctx: RunContext) -> StepResult:
    """Compute features and labels on the validated bars with the live-inference code."""
    import pandas as pd

    from pipelines.features.core import compute_features, feature_fingerprint, next_return

    bars = pd.read_parquet(ctx.run_dir / "bars.parquet")
    features = compute_features(bars)
    features["next_return"] = next_return(bars)
    features.to_parquet(ctx.run_dir / "features.parquet")
    return {
        "n_rows": len(features),
        "n_features": features.shape[1] - 1,
        "fingerprint": feature_fingerprint(),
    }


def narrow(ctx: RunContext) -> StepResult:
    """Narrow the search space from the data regime, past studies and the incumbent."""
    import pandas as pd

    from pipelines.narrowing.base import Evidence
    from pipelines.narrowing.diagnostics import TrainingDiagnostics
    from pipelines.narrowing.optimizer import DataDrivenOptimizer, data_evidence
    from pipelines.narrowing.rules import DEFAULT_RULES, rules_by_name
    from pipelines.search.history import prior_trials
    from pipelines.training.lifecycle import parent_model

    names = ctx.config.narrowing_rules  # validated when the config was parsed
    rules = DEFAULT_RULES if names is None else rules_by_name(names)
    repo = _repo(ctx)
    # the regime before the holdout: what decides the search ranges must not peek at it either
    bars = pd.read_parquet(ctx.run_dir / "bars.parquet").iloc[: -ctx.config.holdout_bars]
    bars = bars.tail(ctx.config.window_bars)
    top, best = prior_trials(repo, ctx.settings.optuna_url, ctx.model_key, ctx.run_id)
    active = repo.active_config(ctx.model_key)
    deployed = parent_model(ctx, repo)
    evidence = Evidence(
        **data_evidence(bars, recent_bars=ctx.calendar.bars_in(ctx.config.recent_window)),
        prior_top_trials=top,
        prior_best_params=best,
        incumbent=active.params if active else None,
        deployed_params=deployed.params if deployed else None,
        pin_architecture=ctx.dag != "weekly",  # daily and hourly runs fine-tune
        training=(
            TrainingDiagnostics.from_metrics(deployed.metrics, trained_how=deployed.trained_how)
            if deployed
            else None
        ),
    )
    result = DataDrivenOptimizer(rules).narrow(ctx.config.search_space, evidence)
    payload = {**result.to_dict(), "evidence": evidence.to_dict()}
    dump_json(ctx.run_dir / "narrowing.json", payload)
    repo.replace_firings(
        ctx.run_id,
        [{k: v for k, v in f.__dict__.items()} for f in result.firings],
    )
    for firing in result.firings:
        log.info("narrow: %s %s -> %s (%s)", firing.param, firing.before, firing.after, firing.rationale)
    return {"n_firings": len(result.firings), "rules": sorted({f.rule for f in result.firings})}


def search(ctx: RunContext) -> StepResult:
    """Run the Optuna study over the narrowed space; write trials, best params/config and plots.

    In one process this is prepare, the workers, finalize; ``workers`` > 1 (PostgreSQL store
    only) starts the extra workers as processes beside this one. The DAG runs the three parts
    as its own tasks, the workers as a mapped task.
    """
    workers = search_prepare(ctx)["workers"]
    if len(workers) > 1:
        _run_worker_processes(ctx, workers)
    else:
        search_worker(ctx, 0)
    return search_finalize(ctx)


def search_prepare(ctx: RunContext) -> StepResult:
    """Create the run's study and seed it exactly once; say which workers may share it."""
    from pipelines.search.study import is_sqlite, prepare_study, study_name

    repo = _repo(ctx)
    done = ctx.run_dir / "search_prepare.json"
    if done.is_file():  # a retry seeds from what the first attempt saw, not from today's store
        seed: dict[str, Any] = {k: load_json(done)[k] for k in ("incumbent", "previous_study")}
    else:
        active = repo.active_config(ctx.model_key)
        previous = repo.previous_studies(ctx.model_key, before_run=ctx.run_id, limit=1)
        seed = {
            "incumbent": active.params if active else None,
            "previous_study": previous[0] if previous else None,
        }
    prepare_study(
        ctx.run_id, ctx.config, _narrowed_space(ctx), _search_settings(ctx), ctx.settings.optuna_url, **seed
    )
    workers = ctx.params.workers
    if workers > 1 and is_sqlite(ctx.settings.optuna_url):
        log.warning(
            "search: %d workers asked for, running 1: parallel search workers need a PostgreSQL "
            "Optuna store (RETUNE_OPTUNA_URL), and this one is SQLite",
            workers,
        )
        workers = 1
    # what every worker must see alike, even if the active config changes meanwhile
    dump_json(ctx.run_dir / "search_prepare.json", {**seed, "workers": workers})
    repo.update_run(ctx.run_id, study_name=study_name(ctx.run_id))
    return {"study": study_name(ctx.run_id), "workers": list(range(workers))}


def search_worker(ctx: RunContext, worker: int = 0) -> StepResult:
    """Run trials on the prepared study until it holds the run's budget (shared by all workers)."""
    from pipelines.search.study import run_worker, stage_counts

    seed = load_json(ctx.run_dir / "search_prepare.json")
    study = run_worker(
        ctx.run_id,
        _prepared_data(ctx),
        ctx.config,
        _narrowed_space(ctx),
        _search_settings(ctx),
        ctx.settings.optuna_url,
        incumbent=seed["incumbent"],
        worker=worker,
    )
    counts = [stage_counts(study, stage) for stage in ("coarse", "fine")]
    return {"worker": worker, "study": study.study_name, "n_finished": sum(c.finished for c in counts)}


def search_finalize(ctx: RunContext) -> StepResult:
    """Write trials, best params/config, plots and the selection statistics of the finished study."""
    import optuna

    from pipelines.search.outputs import write_search_outputs
    from pipelines.search.study import make_storage, study_name

    repo = _repo(ctx)
    storage = make_storage(ctx.settings.optuna_url)
    study = optuna.load_study(study_name=study_name(ctx.run_id), storage=storage)
    _check_trials(study)
    family = study.user_attrs.get("model_family", ctx.config.hyperparams.model_family)
    summary = write_search_outputs(
        study,
        _prepared_data(ctx),
        ctx.config,
        ctx.report_dir,
        ctx.params.objective,
        population=repo.selection_population(ctx.model_key, family, exclude_run=ctx.run_id),
        family=family,
    )
    stats = summary["statistics"]
    repo.record_selection(ctx.model_key, ctx.run_id, **stats["share"])
    repo.update_run(
        ctx.run_id,
        study_name=study_name(ctx.run_id),
        best_value=summary["best_value"],
        n_trials=summary["n_trials"],
    )
    dump_json(ctx.run_dir / "search.json", summary)
    return {
        **{k: summary[k] for k in ("best_value", "n_trials", "n_complete", "n_pruned")},
        "dsr": stats["dsr"]["dsr"] if stats["dsr"] else None,
        "pbo": stats["pbo"]["pbo"] if stats["pbo"] else None,
        "n_effective": stats["n_effective_ever"],
    }


def _check_trials(study) -> None:
    """Nothing downstream may read a half-finished study: no RUNNING trial, no COMPLETE one
    without a finite value (Optuna writes state and value in one transaction; this says so)."""
    import math
    import warnings

    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():  # a killed worker's trial, once stale, no longer blocks the run
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)
    running = [t.number for t in study.trials if t.state == TrialState.RUNNING]
    if running:
        raise RuntimeError(
            f"study {study.study_name} still has RUNNING trials {running}: a worker is alive, or died less "
            "than two heartbeats ago (a retry of this task goes on once they are stale)"
        )
    broken = [
        t.number
        for t in study.trials
        if t.state == TrialState.COMPLETE and (t.value is None or not math.isfinite(t.value))
    ]
    if broken:
        raise RuntimeError(f"study {study.study_name}: COMPLETE trials {broken} have no finite value")


def _search_settings(ctx: RunContext):
    from pipelines.search.study import SearchSettings

    p = ctx.params
    return SearchSettings(p.n_trials, p.timeout_minutes, p.objective, p.mode)


def _run_worker_processes(ctx: RunContext, workers: list[int]) -> None:
    """Worker 0 here, the others as processes (not threads: the GIL would serialize them)."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")  # fork would copy torch's and the engines' state
    extra = [
        spawn.Process(target=_worker_process, args=(ctx, w), name=f"search-worker-{w}") for w in workers[1:]
    ]
    for process in extra:
        process.start()
    try:
        search_worker(ctx, workers[0])
    finally:
        for process in extra:
            process.join()
    failed = [p.name for p in extra if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"search workers failed: {', '.join(failed)} (see their log)")


def _worker_process(ctx: RunContext, worker: int) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker {worker} %(name)s: %(message)s")
    search_worker(ctx, worker)


def finetune(ctx: RunContext) -> StepResult:
    """Fine-tune the deployed model with the best params, or train one; register the version."""
    from pipelines.training.lifecycle import train_or_finetune

    repo = _repo(ctx)
    best = load_json(ctx.run_dir / "search.json")["best_params"]
    result = train_or_finetune(ctx, repo, _prepared_data(ctx, full=True), best)
    dump_json(ctx.run_dir / "finetune.json", result)
    dump_json(ctx.report_dir / "finetune_history.json", result["history"])
    return {k: v for k, v in result.items() if k != "history"}


def evaluate(ctx: RunContext) -> StepResult:
    """Champion vs challenger on the holdout, and the challenger's train/serve parity."""
    import pandas as pd

    from pipelines.evaluation.service import evaluate_run

    repo = _repo(ctx)
    bars = pd.read_parquet(ctx.run_dir / "bars.parquet")
    features = pd.read_parquet(ctx.run_dir / "features.parquet").drop(columns="next_return")
    result = evaluate_run(ctx, repo, bars, features)
    dump_json(ctx.run_dir / "evaluation.json", result)
    return {
        "challenger_wins": result["comparison"]["challenger_wins"],
        "reason": result["comparison"]["reason"],
        "parity_passed": result["parity"]["passed"],
        "parity_max_diff": result["parity"]["max_prediction_diff"],
    }


def report(ctx: RunContext) -> StepResult:
    """Write the self-contained HTML report for the run."""
    from pipelines.reporting.report import write_report

    repo = _repo(ctx)
    path = write_report(ctx, repo)
    repo.update_run(ctx.run_id, report_path=str(path))
    return {"report": str(path)}


def promote(ctx: RunContext) -> StepResult:
    """Apply the gate; on pass (policy auto) activate the new config and rewrite production.yaml."""
    from pipelines.promotion.service import promote_run

    repo = _repo(ctx)
    outcome = promote_run(ctx, repo)
    repo.update_run(ctx.run_id, state="success", decision=outcome["decision"][:500], finished_at=_now())
    return outcome


# The DAG runs the search as three tasks (the workers mapped); ``search`` above runs them in one.
SEARCH_PARTS: dict[str, Callable[..., StepResult]] = {
    "search_prepare": search_prepare,
    "search_worker": search_worker,
    "search_finalize": search_finalize,
}

STEPS: dict[str, Step] = {
    "validate": validate,
    "features": build_features,
    "narrow": narrow,
    "search": search,
    "finetune": finetune,
    "evaluate": evaluate,
    "report": report,
    "promote": promote,
}


def run_step(name: str, ctx: RunContext, **kwargs: Any) -> StepResult:
    """Run one step; on failure record it against the run (state, step, message) and re-raise."""
    known: dict[str, Callable[..., StepResult]] = {**STEPS, **SEARCH_PARTS}
    try:
        step = known[name]
    except KeyError:
        raise KeyError(f"unknown step {name!r}; steps: {', '.join(known)}") from None
    log.info("[%s] %s%s: start", ctx.run_id, name, f" {kwargs}" if kwargs else "")
    try:
        ctx = ctx.with_run_calendar()  # the bar calendar validate resolved, for every later step
        result = step(ctx, **kwargs)
    except Exception as exc:
        _record_failure(ctx, name, exc)
        raise
    log.info("[%s] %s: %s", ctx.run_id, name, result)
    return result


def run_all(ctx: RunContext) -> dict[str, StepResult]:
    """The whole chain in one process, in DAG order; stops at the first failing step."""
    return {name: run_step(name, ctx) for name in STEPS}


def _record_failure(ctx: RunContext, step: str, exc: Exception) -> None:
    try:
        repo = Repository(ctx.settings.db_url)
        if repo.get_run(ctx.run_id) is not None:
            repo.update_run(
                ctx.run_id, state="failed", failed_step=step, error=str(exc)[:4000], finished_at=_now()
            )
        repo.close()
    except Exception:  # noqa: BLE001 - never hide the step's own error
        log.exception("could not record the failure of %s", ctx.run_id)


def _now():
    from pipelines.store.tables import utcnow

    return utcnow()


def _prepared_data(ctx: RunContext, full: bool = False):
    """The run's bars, features and labels before the holdout (search and fine-tune never see
    it): the search window, or with ``full`` all that history."""
    import pandas as pd

    from pipelines.search.objective import PreparedData

    bars = pd.read_parquet(ctx.run_dir / "bars.parquet")
    frame = pd.read_parquet(ctx.run_dir / "features.parquet")
    data = PreparedData(bars, frame.drop(columns="next_return"), frame["next_return"])
    data = data.before(len(bars) - ctx.config.holdout_bars)
    return data if full else data.tail(ctx.config.window_bars)


def _narrowed_space(ctx: RunContext):
    from pydantic import TypeAdapter

    from pipelines.config import ParamSpec

    after = load_json(ctx.run_dir / "narrowing.json")["after"]
    adapter = TypeAdapter(ParamSpec)
    return {name: adapter.validate_python(spec) for name, spec in after.items()}

"""The search step's services: prepare the run's study once, run workers on it (here, as extra
processes, or as the DAG's mapped tasks) and finalize its outputs.

A retry reads what the first attempt recorded in the run folder (``search_prepare.json``), so
every worker sees the same incumbent and previous study even if the store changed meanwhile.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import warnings
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState
from pydantic import TypeAdapter

from pipelines.context import RunContext
from pipelines.param_specs import ParamSpec
from pipelines.runfolder import NarrowingRecord, SearchRecord, SearchSeed
from pipelines.search.heartbeats import make_storage
from pipelines.search.manifest import build_manifest
from pipelines.search.outputs import write_search_outputs
from pipelines.search.seeding import prepare_study
from pipelines.search.storage import is_sqlite
from pipelines.search.study import SearchSettings, study_name
from pipelines.search.worker import run_worker, stage_counts
from pipelines.store.repository import Repository
from pipelines.terms import TrialAttr
from pipelines.windowing import run_data

log = logging.getLogger(__name__)


def search_settings(ctx: RunContext) -> SearchSettings:
    p = ctx.params
    return SearchSettings(p.n_trials, p.timeout_minutes, p.objective, p.mode)


def narrowed_space(ctx: RunContext) -> dict[str, ParamSpec]:
    """The search space the narrow step wrote."""
    adapter: TypeAdapter[ParamSpec] = TypeAdapter(ParamSpec)
    after = ctx.folder.read(NarrowingRecord).after
    return {name: adapter.validate_python(spec) for name, spec in after.items()}


def prepare(ctx: RunContext, repo: Repository) -> dict[str, Any]:
    """Create the run's study and seed it exactly once; say which workers may share it."""
    if ctx.folder.has(SearchSeed):  # a retry seeds from what the first attempt saw, not from today's store
        seed: dict[str, Any] = ctx.folder.read(SearchSeed).model_dump(include={"incumbent", "previous_study"})
    else:
        active = repo.active_config(ctx.model_key)
        previous = repo.previous_studies(ctx.model_key, before_run=ctx.run_id, limit=1)
        seed = {
            "incumbent": active.params if active else None,
            "previous_study": previous[0] if previous else None,
        }
    url = ctx.settings.optuna_url
    prepare_study(ctx.run_id, ctx.config, narrowed_space(ctx), search_settings(ctx), url, **seed)
    workers = ctx.params.workers
    if workers > 1 and is_sqlite(url):
        log.warning(
            "search: %d workers asked for, running 1: parallel search workers need a PostgreSQL "
            "Optuna store (RETUNE_OPTUNA_URL), and this one is SQLite",
            workers,
        )
        workers = 1
    # what every worker must see alike, even if the active config changes meanwhile
    ctx.folder.write(SearchSeed(**seed, workers=workers))
    repo.update_run(ctx.run_id, study_name=study_name(ctx.run_id))
    return {"study": study_name(ctx.run_id), "workers": list(range(workers))}


def work(ctx: RunContext, worker: int = 0) -> dict[str, Any]:
    """Run trials on the prepared study until it holds the run's budget (shared by all workers)."""
    seed = ctx.folder.read(SearchSeed)
    study = run_worker(
        ctx.run_id,
        run_data(ctx.folder, ctx.config),
        ctx.config,
        narrowed_space(ctx),
        search_settings(ctx),
        ctx.settings.optuna_url,
        incumbent=seed.incumbent,
        worker=worker,
    )
    counts = [stage_counts(study, stage) for stage in ("coarse", "fine")]
    return {"worker": worker, "study": study.study_name, "n_finished": sum(c.finished for c in counts)}


def work_in_processes(ctx: RunContext, workers: list[int]) -> None:
    """Worker 0 here, the others as processes (not threads: the GIL would serialize them)."""
    if len(workers) == 1:
        work(ctx, workers[0])
        return
    spawn = multiprocessing.get_context("spawn")  # fork would copy torch's and the engines' state
    extra = [
        spawn.Process(target=_worker_process, args=(ctx, w), name=f"search-worker-{w}") for w in workers[1:]
    ]
    for process in extra:
        process.start()
    try:
        work(ctx, workers[0])
    finally:
        for process in extra:
            process.join()
    failed = [p.name for p in extra if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"search workers failed: {', '.join(failed)} (see their log)")


def _worker_process(ctx: RunContext, worker: int) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker {worker} %(name)s: %(message)s")
    work(ctx, worker)


def finalize(ctx: RunContext, repo: Repository) -> dict[str, Any]:
    """Write trials, best params/config, plots and the selection statistics of the finished study."""
    study = optuna.load_study(
        study_name=study_name(ctx.run_id), storage=make_storage(ctx.settings.optuna_url)
    )
    check_trials(study)
    family = study.user_attrs.get(TrialAttr.MODEL_FAMILY, ctx.config.hyperparams.model_family)
    summary = write_search_outputs(
        study,
        run_data(ctx.folder, ctx.config),
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
        study_name=study.study_name,
        best_value=summary["best_value"],
        n_trials=summary["n_trials"],
    )
    record = SearchRecord(**summary)
    ctx.folder.write(record)
    ctx.folder.write(build_manifest(ctx, study, record, pd.read_parquet(ctx.folder.bars)))
    return {
        **{k: summary[k] for k in ("best_value", "n_trials", "n_complete", "n_pruned")},
        "dsr": stats["dsr"]["dsr"] if stats["dsr"] else None,
        "pbo": stats["pbo"]["pbo"] if stats["pbo"] else None,
        "n_effective": stats["n_effective_ever"],
    }


def check_trials(study: optuna.Study) -> None:
    """Nothing downstream may read a half-finished study: no RUNNING trial, no COMPLETE one
    without a finite value (Optuna writes state and value in one transaction; this says so)."""
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

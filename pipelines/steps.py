"""The public steps of a run and their registry.

Each step takes a RunContext, reads what earlier steps left in the run folder, writes its own
small JSON result there and returns it; the work is one service of its subpackage. The DAG, the
CLI and the tests call the same functions through ``run_step``, which also records a failure
against the run. Heavy imports stay inside the steps: the DAG files import this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pipelines.context import RunContext
from pipelines.store.repository import Repository
from pipelines.terms import RunState

log = logging.getLogger(__name__)

StepResult = dict[str, Any]
Step = Callable[[RunContext], StepResult]

_open: dict[str, Repository] = {}  # one repository per database while a run (or step) runs
_migrated: set[str] = set()  # migrations run once per database and process
_depth: list[int] = []  # nesting of run_all / run_step


def _repo(ctx: RunContext) -> Repository:
    url = ctx.settings.db_url
    if url not in _migrated:
        from pipelines.store.migrate import upgrade

        upgrade(url)
        _migrated.add(url)
    if url not in _open:
        _open[url] = Repository(url)
    return _open[url]


@contextmanager
def _stores() -> Iterator[None]:
    """Keep the repositories open inside; dispose their engines when the outermost call ends."""
    _depth.append(1)
    try:
        yield
    finally:
        _depth.pop()
        if not _depth:
            for repo in _open.values():
                repo.close()
            _open.clear()


def validate(ctx: RunContext) -> StepResult:
    """Load the bars up to ``as_of`` and check them with the Great Expectations suite."""
    from pipelines.validation.service import validate_run

    return validate_run(ctx, _repo(ctx))


def build_features(ctx: RunContext) -> StepResult:
    """Compute features and labels on the validated bars with the live-inference code."""
    from pipelines.features.service import build_run_features

    return build_run_features(ctx.folder)


def narrow(ctx: RunContext) -> StepResult:
    """Narrow the search space from the data regime, past studies and the incumbent."""
    import pandas as pd

    from pipelines.narrowing.service import narrow_run

    bars = pd.read_parquet(ctx.folder.bars)
    pin = ctx.dag != "weekly"  # daily and hourly runs fine-tune: the architecture stays
    record = narrow_run(ctx.config, bars, _repo(ctx), ctx.settings.optuna_url, ctx.run_id, pin)
    ctx.folder.write(record)
    return {"n_firings": len(record.firings), "rules": sorted({f["rule"] for f in record.firings})}


def search(ctx: RunContext) -> StepResult:
    """Run the Optuna study over the narrowed space; write trials, best params/config and plots.

    In one process this is prepare, the workers, finalize; ``workers`` > 1 (PostgreSQL store
    only) starts the extra workers as processes beside this one. The DAG runs the three parts
    as its own tasks, the workers as a mapped task.
    """
    from pipelines.search.run import work_in_processes

    work_in_processes(ctx, search_prepare(ctx)["workers"])
    return search_finalize(ctx)


def search_prepare(ctx: RunContext) -> StepResult:
    """Create the run's study and seed it exactly once; say which workers may share it."""
    from pipelines.search.run import prepare

    return prepare(ctx, _repo(ctx))


def search_worker(ctx: RunContext, worker: int = 0) -> StepResult:
    """Run trials on the prepared study until it holds the run's budget (shared by all workers)."""
    from pipelines.search.run import work

    return work(ctx, worker)


def search_finalize(ctx: RunContext) -> StepResult:
    """Write trials, best params/config, plots and the selection statistics of the finished study."""
    from pipelines.search.run import finalize

    return finalize(ctx, _repo(ctx))


def finetune(ctx: RunContext) -> StepResult:
    """Fine-tune the deployed model with the best params, or train one; register the version."""
    from pipelines.training.lifecycle import finetune_step

    return finetune_step(ctx, _repo(ctx))


def evaluate(ctx: RunContext) -> StepResult:
    """Champion vs challenger on the holdout, and the challenger's train/serve parity."""
    from pipelines.evaluation.service import evaluate_step

    return evaluate_step(ctx, _repo(ctx))


def report(ctx: RunContext) -> StepResult:
    """Write the self-contained HTML report for the run."""
    from pipelines.reporting.report import write_report

    return {"report": str(write_report(ctx, _repo(ctx)))}


def promote(ctx: RunContext) -> StepResult:
    """Apply the gate; on pass (policy auto) activate the new config and rewrite production.yaml."""
    from pipelines.promotion.service import promote_run

    return promote_run(ctx, _repo(ctx))


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
    if name not in known:
        raise KeyError(f"unknown step {name!r}; steps: {', '.join(known)}")
    log.info("[%s] %s%s: start", ctx.run_id, name, f" {kwargs}" if kwargs else "")
    with _stores():
        try:
            ctx = ctx.with_run_calendar()  # the bar calendar validate resolved, for every later step
            result = known[name](ctx, **kwargs)
        except Exception as exc:
            _record_failure(ctx, name, exc)
            raise
    log.info("[%s] %s: %s", ctx.run_id, name, result)
    return result


def run_all(ctx: RunContext) -> dict[str, StepResult]:
    """The whole chain in one process, in DAG order; stops at the first failing step."""
    with _stores():
        return {name: run_step(name, ctx) for name in STEPS}


def _record_failure(ctx: RunContext, step: str, exc: Exception) -> None:
    from pipelines.store.tables import utcnow

    try:
        repo = _repo(ctx)
        if repo.get_run(ctx.run_id) is not None:
            failed = {"state": RunState.FAILED.value, "failed_step": step, "error": str(exc)[:4000]}
            repo.update_run(ctx.run_id, **failed, finished_at=utcnow())
    except Exception:  # noqa: BLE001 - never hide the step's own error
        log.exception("could not record the failure of %s", ctx.run_id)

"""One Optuna study per run, on the RDB store, resumable by run id, shared by worker processes.

A search is prepared once (``prepare_study``: create the study, carry over earlier trials,
enqueue production's params) and then worked on by one or more processes (``run_worker``)
until the study holds the run's budget. Workers are processes, not Optuna's ``n_jobs``
threads (the GIL serializes those), and share the study through a PostgreSQL RDB store;
SQLite takes one worker only.

Budget: ``n_trials`` counts the run's own COMPLETE and PRUNED trials, across all workers and
Airflow retries. A worker starts a trial only while finished + running trials are below the
budget, and it counts and asks for the trial under one PostgreSQL advisory lock, so two
workers never both take the last slot (optuna's ``MaxTrialsCallback`` stops a worker only
*after* a trial finishes: with N workers a study ends with up to N-1 extra trials). A worker
that was killed leaves its trial RUNNING; once its heartbeat is stale another worker (or the
retried one) fails it and ``RetryHeartbeatStaleTrialCallback`` queues the same parameters
again, so the killed trial is retried, not lost, and never counted twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

from pipelines.config import Categorical, ConfigError, FloatRange, IntRange, ParamSpec, PipelineConfig
from pipelines.search.history import TRAIN_FAMILY
from pipelines.search.objective import PreparedData, make_objective
from pipelines.search.space import contains, distributions, grid, grid_size
from pipelines.search.strategy import StrategyGrid, split_space

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60  # default; RETUNE_HEARTBEAT_SECONDS overrides it (the fault tests use 1)
STORAGE_PATIENCE_SECONDS = 300  # default; RETUNE_STORAGE_PATIENCE_SECONDS: how long a worker rides out
# a database outage before it gives up (its task then fails and Airflow retries it)
PREPARED = "retune:prepared"  # study user attr: carry-over and the incumbent are in, exactly once
CARRIED_FROM = "retune:carried_over_trial"  # system attr: the previous study's trial number
STORAGE_ERRORS: tuple[type[Exception], ...] = (
    optuna.exceptions.StorageInternalError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
)


@dataclass(frozen=True)
class SearchSettings:
    n_trials: int
    timeout_minutes: float
    objective: str = "sharpe"
    mode: str = "bayesian"


def study_name(run_id: str) -> str:
    return f"retune-{run_id}"


def _env_seconds(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r}: a whole number of seconds >= 1")
    return int(raw)


def heartbeat_seconds() -> int:
    """How often a running trial records that its worker is alive (``RETUNE_HEARTBEAT_SECONDS``,
    default 60). A trial is stale, failed and retried after two missed intervals."""
    return _env_seconds("RETUNE_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage with two gaps closed for worker processes.

    * A heartbeat that cannot be written (the database is restarting) is logged and tried
      again on the next beat; Optuna's own heartbeat thread dies on the first error, after
      which a live trial looks stale once the database is back.
    * A RUNNING trial that never wrote a heartbeat (its worker died between taking the trial
      and its first beat) is stale after the grace period too; Optuna skips such trials, so
      they would stay RUNNING forever and the budget would never fill.
    """

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except STORAGE_ERRORS as exc:
            log.warning("heartbeat of trial id %d not recorded, trying again: %s", trial_id, _short(exc))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        from optuna.storages._rdb import models  # pinned optuna: the heartbeat table's model

        stale = super()._get_stale_trial_ids(study_id)
        grace = self.grace_period or 2 * (self.heartbeat_interval or HEARTBEAT_SECONDS)
        # optuna 5 stores the client's start time as naive UTC
        cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=grace)
        session = self.scoped_session()
        try:
            silent = (
                session.query(models.TrialModel.trial_id)
                .outerjoin(models.TrialHeartbeatModel)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialModel.state == TrialState.RUNNING)
                .filter(models.TrialHeartbeatModel.trial_heartbeat_id.is_(None))
                .filter(models.TrialModel._datetime_start_utc < cutoff)
                .all()
            )
        finally:
            session.close()
        return stale + [row[0] for row in silent if row[0] not in stale]


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats: a trial whose worker died is failed and retried once."""
    beat = heartbeat_seconds()
    with warnings.catch_warnings():  # heartbeats are "experimental" since v2.8; we rely on them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return ResilientRDBStorage(
            url,
            # a server restart leaves dead pooled connections: test each before use
            engine_kwargs=None if is_sqlite(url) else {"pool_pre_ping": True},
            heartbeat_interval=beat,
            grace_period=2 * beat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def make_sampler(
    mode: str, space: dict[str, ParamSpec], seed: int, bayesian: str = "tpe"
) -> optuna.samplers.BaseSampler:
    """Random, grid, or a Bayesian sampler: TPE (default), CMA-ES (numeric spaces) or a GP.

    Optuna 5's TPE is a constant liar by default: running trials of other workers count as bad,
    so parallel workers do not sample next to each other.
    """
    if mode == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if mode == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    if mode != "bayesian":
        raise ConfigError(f"unknown search mode {mode!r} (bayesian, random, grid)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if bayesian == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True)
        if bayesian == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)
        if bayesian == "cmaes":
            categorical = [
                n for n, spec in space.items() if isinstance(spec, Categorical) and len(spec.choices) > 1
            ]
            if categorical:
                raise ConfigError(
                    f"sampler cmaes searches int and float ranges only; {', '.join(categorical)} "
                    "are categorical (use sampler tpe or gp, or fix them)"
                )
            return optuna.samplers.CmaEsSampler(
                seed=seed, n_startup_trials=4, warn_independent_sampling=False
            )
    raise ConfigError(f"unknown sampler {bayesian!r} (tpe, cmaes, gp)")


def make_pruner(name: str, n_folds: int) -> optuna.pruners.BasePruner:
    """Median (running mean vs other trials), Hyperband (folds as resource), Wilcoxon (fold vs fold)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=n_folds, reduction_factor=3)
    if name == "wilcoxon":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r} (median, hyperband, wilcoxon, none)")


def fresh_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials this study ran itself (not carried over from an earlier run), read-only.

    Not deep-copied: every worker counts the study before each trial, and copying every trial
    each time was most of what a trial cost the storage (bench ``storage_trials_per_second``)."""
    return [t for t in study.get_trials(deepcopy=False) if "carried_over_from" not in t.user_attrs]


def best_fresh_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best complete trial scored on this run's data; carried-over trials only guide sampling."""
    done = [t for t in fresh_trials(study) if t.state == optuna.trial.TrialState.COMPLETE]
    return max(done, key=lambda t: t.value, default=None)  # type: ignore[arg-type,return-value]


def carry_over(study: optuna.Study, previous: optuna.Study, space: dict[str, ParamSpec]) -> int:
    """Copy the previous run's complete trials that lie inside the new space into a fresh study.

    Optuna keeps out-of-range history and cannot change categorical choices inside one study,
    so each run gets a fresh study and only the trials that still fit are carried over. Each
    carried trial remembers its number in the previous study, so a retried prepare (its first
    attempt died half-way) adds only what is missing. Returns how many the study now holds.
    """
    dists = distributions(space)
    present = {t.system_attrs.get(CARRIED_FROM) for t in study.trials if "carried_over_from" in t.user_attrs}
    fits = [
        t
        for t in previous.trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and "carried_over_from" not in t.user_attrs  # its own trials only: no pile-up across runs
        and TRAIN_FAMILY not in t.user_attrs  # its value is another family's, not these params'
        and contains(space, t.params)
    ]
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={k: t.params[k] for k in space},
                distributions=dists,
                value=t.value,
                user_attrs={
                    "carried_over_from": previous.study_name,
                    "strategy": t.user_attrs.get("strategy"),
                },
                system_attrs={CARRIED_FROM: t.number},
            )
            for t in fits
            if t.number not in present
        ]
    )
    return len(fits)


def refine(space: dict[str, ParamSpec], best: dict[str, Any], fraction: float = 0.25) -> dict[str, ParamSpec]:
    """The fine stage's space: each numeric range shrunk to ``fraction`` of its span around the best.

    Categorical choices stay as they are: Optuna cannot change them inside one study.
    """
    out: dict[str, ParamSpec] = {}
    for name, spec in space.items():
        if isinstance(spec, Categorical) or name not in best:
            out[name] = spec
            continue
        log = isinstance(spec, FloatRange) and spec.type == "loguniform"
        to, back = (math.log, math.exp) if log else (float, float)
        half = fraction * (to(spec.high) - to(spec.low)) / 2
        low = max(to(spec.low), min(to(best[name]) - half, to(spec.high) - 2 * half))
        high = min(to(spec.high), low + 2 * half)
        if isinstance(spec, IntRange):
            lo = spec.low + math.floor((back(low) - spec.low) / spec.step) * spec.step
            hi = spec.low + math.ceil((back(high) - spec.low) / spec.step) * spec.step
            out[name] = spec if hi <= lo else spec.model_copy(update={"low": lo, "high": hi})
        else:
            out[name] = spec.model_copy(update={"low": back(low), "high": back(high)})
    return out


def run_study(
    run_id: str,
    data: PreparedData,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    settings: SearchSettings,
    storage_url: str,
    incumbent: dict[str, Any] | None = None,
    previous_study: str | None = None,
) -> optuna.Study:
    """Create or resume the run's study and run trials in this process until the budget is spent.

    Resuming counts finished trials against ``n_trials`` so an Airflow retry does not run the
    whole budget again. Strategy parameters are not searched: every trial scores the whole
    strategy grid on its predictions. Production's model parameters are trial 0.
    """
    prepare_study(run_id, config, space, settings, storage_url, incumbent, previous_study)
    return run_worker(run_id, data, config, space, settings, storage_url, incumbent)


def prepare_study(
    run_id: str,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    settings: SearchSettings,
    storage_url: str,
    incumbent: dict[str, Any] | None = None,
    previous_study: str | None = None,
) -> optuna.Study:
    """Create the run's study and seed it once: carried-over trials, then production's params.

    Idempotent: a second call (an Airflow retry, or a retry after a crash half-way) loads the
    study and adds only what is missing; once the study is marked prepared it changes nothing.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model_space, _ = split_space(space)
    grid_ = StrategyGrid.from_space(space, config.hyperparams, config.strategy_grid_points, incumbent)
    storage = make_storage(storage_url)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name(run_id),
        sampler=make_sampler(settings.mode, model_space, config.seed, config.sampler),
        pruner=make_pruner(config.pruner, config.n_folds),
        direction="maximize",
        load_if_exists=True,
    )
    if study.user_attrs.get(PREPARED):
        return study
    if fresh_trials(study) and not any(t.user_attrs.get("incumbent") for t in study.trials):
        # a study from before the prepared mark whose trials already ran: seeding now would
        # put production's params after them, not first
        study.set_user_attr(PREPARED, True)
        return study
    study.set_user_attr("model_family", _family(model_space, config))
    study.set_user_attr("n_variants", grid_.size)
    study.set_user_attr("objective", settings.objective)
    _seed_study(
        study,
        storage,
        model_space,
        incumbent,
        previous_study,
        settings.objective,
        settings.mode == "grid",
        config.hyperparams.model_family,
        config.baseline_family,
    )
    study.set_user_attr(PREPARED, True)
    return study


@dataclass(frozen=True)
class StageCounts:
    finished: int  # COMPLETE or PRUNED: what the budget counts
    running: int
    waiting: int  # queued: production's params, or a stale trial's retry


def stage_counts(study: optuna.Study, stage: str) -> StageCounts:
    trials = [t for t in fresh_trials(study) if _stage(t) == stage]
    return StageCounts(
        finished=sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)),
        running=sum(1 for t in trials if t.state == TrialState.RUNNING),
        waiting=sum(1 for t in trials if t.state == TrialState.WAITING),
    )


def worker_seed(seed: int, worker: int) -> int:
    """Worker 0 samples exactly as a one-process search; the others must not repeat its draws."""
    return seed + 7919 * worker


def run_worker(
    run_id: str,
    data: PreparedData,
    config: PipelineConfig,
    space: dict[str, ParamSpec],
    settings: SearchSettings,
    storage_url: str,
    incumbent: dict[str, Any] | None = None,
    worker: int = 0,
    storage_patience_seconds: int | None = None,
) -> optuna.Study:
    """Work on the prepared study until it holds the budget of each stage, or the timeout.

    Any number of these may run at once, in separate processes, on a PostgreSQL store; running
    one again after the budget is spent changes nothing. A database outage shorter than
    ``storage_patience_seconds`` (``RETUNE_STORAGE_PATIENCE_SECONDS``, default 300) is ridden
    out: the trial it broke is failed as stale and retried; a longer one raises.
    """
    if worker > 0 and is_sqlite(storage_url):
        raise ConfigError("parallel search workers need a PostgreSQL Optuna store, not SQLite")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    patience = storage_patience_seconds or _env_seconds(
        "RETUNE_STORAGE_PATIENCE_SECONDS", STORAGE_PATIENCE_SECONDS
    )
    model_space, _ = split_space(space)
    grid_ = StrategyGrid.from_space(space, config.hyperparams, config.strategy_grid_points, incumbent)
    storage = make_storage(storage_url)
    study = _retrying(
        lambda: optuna.load_study(
            study_name=study_name(run_id),
            storage=storage,
            sampler=make_sampler(
                settings.mode, model_space, worker_seed(config.seed, worker), config.sampler
            ),
            pruner=make_pruner(config.pruner, config.n_folds),
        ),
        patience,
    )
    if not study.user_attrs.get(PREPARED):
        raise RuntimeError(f"study {study.study_name} is not prepared: run the search step's prepare first")
    stages = [("coarse", settings.n_trials)]
    if config.two_stage and settings.mode != "grid":
        coarse = max(settings.n_trials // 2, 1)
        stages = [("coarse", coarse), ("fine", settings.n_trials - coarse)]
    started = time.monotonic()
    deadline = started + settings.timeout_minutes * 60
    lock = StudyLock(storage_url, study.study_name)
    try:
        for stage, budget in stages:
            stage_space = model_space
            if stage == "fine":
                best = best_fresh_trial(study)
                if best is None:
                    break
                stage_space = refine(model_space, best.params)
                study.sampler = make_sampler(
                    settings.mode, stage_space, worker_seed(config.seed + 1, worker), config.sampler
                )
            target = budget
            if settings.mode == "grid":
                target = min(budget, grid_size(grid(model_space)))
            objective = make_objective(data, config, stage_space, settings.objective, grid_)
            log.info(
                "search worker %d: %s stage to %d finished trials (%s/%s, objective=%s, %d strategy "
                "variants each, timeout %.1f min) in %s",
                worker,
                stage,
                target,
                settings.mode,
                config.sampler,
                settings.objective,
                grid_.size,
                settings.timeout_minutes,
                study.study_name,
            )
            if not work_on_stage(study, objective, stage, target, deadline, lock, started, patience, worker):
                break
    finally:
        lock.close()  # its connection, and the lock if a failure left it held
    return study


def work_on_stage(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    stage: str,
    target: int,
    deadline: float,
    lock: StudyLock,
    started: float,
    patience: int,
    worker: int,
) -> bool:
    """Run trials of ``stage`` until the study holds ``target`` finished ones (True) or time is up.

    The worker loop itself, apart from how the objective is made: the storage benchmark runs it
    with a trivial objective to measure what one study sustains."""
    poll = 1.0  # a waiting worker re-reads the study this often: it exits within 1 s of the last trial
    outage_since: float | None = None
    while time.monotonic() < deadline:
        try:
            with lock:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    # under the lock: a stale trial's retry is queued before anyone counts
                    optuna.storages.fail_stale_trials(study)
                counts = stage_counts(study, stage)
                if counts.finished >= target:
                    return True
                wait = counts.finished + counts.running >= target
                if not wait:  # ask() takes a queued trial first, else samples a new one
                    study.optimize(
                        _claimed(objective, stage, lock, worker),
                        n_trials=1,
                        callbacks=[_progress(started)],
                        gc_after_trial=False,
                    )
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            # our trial was failed as stale while it ran (its heartbeats were lost): its retry is queued
            log.warning("a trial of %s was retried elsewhere while it ran: %s", study.study_name, exc)
            continue
        except Exception as exc:
            if not _storage_failure(exc):
                raise
            now = time.monotonic()
            outage_since = outage_since or now
            if now - outage_since > patience:
                log.error(
                    "optuna storage unreachable for %.0fs, giving up: %s", now - outage_since, _short(exc)
                )
                raise
            log.warning("optuna storage unreachable (%.0fs), retrying: %s", now - outage_since, _short(exc))
            time.sleep(poll)
            continue
        outage_since = None
        if wait:  # the rest of the budget is running elsewhere; it may still go stale and come back
            time.sleep(poll)
    log.info("study %s: timeout reached in stage %s", study.study_name, stage)
    return False


class StudyLock:
    """Serializes "count the budget, then take a trial" across the workers of one study.

    A PostgreSQL session-level advisory lock keyed by the study name, on a connection of its own
    that the worker keeps (one server backend per worker, not one per trial): if the worker dies
    the server drops the connection and the lock with it; if the connection breaks, the next
    ``with`` opens a new one. SQLite takes one worker only, so there it is a no-op.
    """

    def __init__(self, url: str, name: str) -> None:
        self._engine = None if is_sqlite(url) else sa.create_engine(url, poolclass=sa.pool.NullPool)
        self._key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._conn: sa.Connection | None = None
        self._held = False
        self._since = 0.0
        self.held_seconds = 0.0  # how long this worker held the lock in all: the bench reads it

    def __enter__(self) -> StudyLock:
        if self._engine is not None:
            try:
                if self._conn is None:  # autocommit: no transaction left open between trials
                    self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
            except BaseException:
                self._drop()  # a lock it may have got goes with the connection
                raise
            self._held = True
        self._since = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        self.held_seconds += time.monotonic() - self._since
        try:
            assert self._conn is not None
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except sa.exc.SQLAlchemyError:
            self._drop()  # the connection is gone, and the server released the lock with it

    def close(self) -> None:
        """Release the lock if held and close the connection (a worker that is done)."""
        self.release()
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.close()


def _claimed(objective: Callable[[optuna.Trial], float], stage: str, lock: StudyLock, worker: int):
    """The trial exists and is RUNNING: tag its stage (and who runs it), then let the others count."""

    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr("stage", stage)
        trial.set_user_attr("worker", worker)
        lock.release()
        return objective(trial)

    return run


def _retrying(call: Callable[[], Any], patience: int) -> Any:
    waited = 0.0
    while True:
        try:
            return call()
        except STORAGE_ERRORS as exc:
            if waited > patience:
                raise
            log.warning("optuna storage unreachable, retrying: %s", _short(exc))
            time.sleep(2.0)
            waited += 2.0


def _storage_failure(exc: BaseException) -> bool:
    """Whether the database caused ``exc``. Optuna 5's ``_run_trial`` can turn a storage error into
    an ``UnboundLocalError`` (its ``finally`` reads ``updated_state`` when both ``tell`` and the
    re-read of the trial failed), so the chain of causes is searched, not just the type."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, STORAGE_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _short(exc: BaseException) -> str:
    text = str(exc.__cause__ or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _seed_study(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    space: dict[str, ParamSpec],
    incumbent: dict[str, Any] | None,
    previous_study: str | None,
    objective: str,
    grid_mode: bool,
    family: str,
    baseline: str | None = None,
) -> None:
    """A fresh study starts from what is known: earlier trials that fit, production first, then
    the baseline family's reference trial."""
    if previous_study:
        try:
            previous = optuna.load_study(study_name=previous_study, storage=storage)
        except KeyError:
            previous = None
        same_objective = previous is not None and previous.user_attrs.get("objective") == objective
        if previous is not None and not same_objective:
            log.info("not carrying over %s: it optimized another objective", previous_study)
        if previous is not None and same_objective:
            n = carry_over(study, previous, space)
            study.set_user_attr("n_carried_over", n)
            log.info("carried over %d trials of %s that fit the new bounds", n, previous_study)
    already = any(t.user_attrs.get("incumbent") for t in study.trials)
    if incumbent and contains(space, incumbent) and not grid_mode and not already:  # a grid holds it
        attrs: dict[str, Any] = {"incumbent": True}
        if "model_family" not in space and incumbent.get("model_family", family) != family:
            attrs[TRAIN_FAMILY] = incumbent["model_family"]  # production scored as it trades
        study.enqueue_trial({k: incumbent[k] for k in space}, user_attrs=attrs)
    if baseline and not grid_mode and not any(t.user_attrs.get("baseline") for t in study.trials):
        study.enqueue_trial({}, user_attrs={"baseline": True, TRAIN_FAMILY: baseline})  # sampled otherwise


def _family(space: dict[str, ParamSpec], config: PipelineConfig) -> str:
    """The model family every trial of the study uses, or ``mixed`` when it is searched."""
    spec = space.get("model_family")
    if isinstance(spec, Categorical):
        return str(spec.choices[0]) if len(spec.choices) == 1 else "mixed"
    return config.hyperparams.model_family


def _stage(trial: optuna.trial.FrozenTrial) -> str:
    return trial.user_attrs.get("stage", "coarse")


def _progress(started: float):
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = best_fresh_trial(study)
        log.info(
            "trial %d %s value=%s best=%s (%.0fs)",
            trial.number,
            trial.state.name,
            None if trial.value is None else round(trial.value, 4),
            None if best is None else round(best.value, 4),  # type: ignore[arg-type]
            time.monotonic() - started,
        )

    return report

"""The RDB storage with heartbeats: a trial whose worker died is failed and retried once.

``ResilientRDBStorage`` overrides Optuna's private ``_get_stale_trial_ids`` (pinned optuna): a
trial that never wrote a heartbeat is stale too, or it would stay RUNNING forever.
"""

from __future__ import annotations

import logging
import warnings
from datetime import UTC, datetime, timedelta

import optuna
from optuna.trial import TrialState

from pipelines.search.storage import (
    HEARTBEAT_SECONDS,
    STORAGE_ERRORS,
    heartbeat_seconds,
    is_sqlite,
    short_error,
)

log = logging.getLogger(__name__)


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
            log.warning("heartbeat of trial id %d not recorded, trying again: %s", trial_id, short_error(exc))

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

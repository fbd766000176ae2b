"""The repository: every query Retune issues, behind small intention-revealing methods."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.store.ledger import ConfigLedger
from pipelines.store.tables import (
    ModelVersion,
    NarrowingFiring,
    Run,
    SelectionLedgerEntry,
)
from pipelines.terms import RunState


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        # Several processes (Airflow tasks, the CLI) share one file: wait for locks.
        return sa.create_engine(url, connect_args={"timeout": 60})
    return sa.create_engine(url, pool_pre_ping=True)


class Repository(ConfigLedger):
    """Runs, studies, models and (from ``ConfigLedger``) config versions with their audit."""

    def __init__(self, url: str):
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # runs -----------------------------------------------------------------------------
    def start_run(self, run_id: str, **fields: Any) -> Run:
        """Create the run, or mark a retried one running again (same run id, same row)."""
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                run = Run(run_id=run_id, state=RunState.RUNNING.value, **fields)
                s.add(run)
            else:
                run.state, run.error, run.failed_step, run.finished_at = (
                    RunState.RUNNING.value,
                    None,
                    None,
                    None,
                )
            return run

    def update_run(self, run_id: str, **fields: Any) -> None:
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise KeyError(f"unknown run {run_id!r}")
            for key, value in fields.items():
                setattr(run, key, value)

    def get_run(self, run_id: str) -> Run | None:
        with self.session() as s:
            return s.get(Run, run_id)

    def list_runs(self, model_key: str | None = None, limit: int = 50) -> list[Run]:
        query = sa.select(Run).order_by(Run.started_at.desc()).limit(limit)
        if model_key:
            query = query.where(Run.model_key == model_key)
        with self.session() as s:
            return list(s.scalars(query))

    def previous_studies(self, model_key: str, before_run: str, limit: int = 3) -> list[str]:
        """Study names of this model key's earlier successful runs, newest first."""
        query = (
            sa.select(Run.study_name)
            .where(Run.model_key == model_key, Run.run_id != before_run, Run.state == RunState.SUCCESS)
            .where(Run.study_name.is_not(None))
            .order_by(Run.started_at.desc())
            .limit(limit)
        )
        with self.session() as s:
            return [name for name in s.scalars(query) if name]

    def all_studies(self, model_key: str, before_run: str) -> list[str]:
        """Study names of every earlier run of this model key, whatever its outcome."""
        query = (
            sa.select(Run.study_name)
            .where(Run.model_key == model_key, Run.run_id != before_run, Run.study_name.is_not(None))
            .order_by(Run.started_at)
        )
        with self.session() as s:
            return [name for name in s.scalars(query) if name]

    # selection ledger -----------------------------------------------------------------
    def selection_population(
        self, model_key: str, family: str, exclude_run: str
    ) -> list[SelectionLedgerEntry]:
        """Every earlier search of this model key and family (a retry's own row left out)."""
        query = (
            sa.select(SelectionLedgerEntry)
            .where(SelectionLedgerEntry.model_key == model_key, SelectionLedgerEntry.run_id != exclude_run)
            .where(SelectionLedgerEntry.family.in_((family, "mixed")))
            .order_by(SelectionLedgerEntry.id)
        )
        with self.session() as s:
            return list(s.scalars(query))

    def record_selection(self, model_key: str, run_id: str, **fields: Any) -> None:
        """This run's share of the population; a retried finalize replaces it, never adds twice."""
        with self.session() as s:
            row = s.scalars(
                sa.select(SelectionLedgerEntry).where(
                    SelectionLedgerEntry.model_key == model_key, SelectionLedgerEntry.run_id == run_id
                )
            ).one_or_none()
            if row is None:
                s.add(SelectionLedgerEntry(model_key=model_key, run_id=run_id, **fields))
            else:
                for key, value in fields.items():
                    setattr(row, key, value)

    # narrowing ------------------------------------------------------------------------
    def replace_firings(self, run_id: str, firings: list[dict[str, Any]]) -> None:
        with self.session() as s:
            s.execute(sa.delete(NarrowingFiring).where(NarrowingFiring.run_id == run_id))
            s.add_all(NarrowingFiring(run_id=run_id, **f) for f in firings)

    # models ---------------------------------------------------------------------------
    def add_model_version(self, model_key: str, source_run: str, **fields: Any) -> ModelVersion:
        """Register a checkpoint; a retried run gets its existing version back."""
        with self.session() as s:
            existing = s.scalar(
                sa.select(ModelVersion).where(
                    ModelVersion.model_key == model_key, ModelVersion.source_run == source_run
                )
            )
            if existing is not None:
                return existing
            latest = s.scalar(
                sa.select(sa.func.max(ModelVersion.version)).where(ModelVersion.model_key == model_key)
            )
            version = ModelVersion(
                model_key=model_key, version=(latest or 0) + 1, source_run=source_run, **fields
            )
            s.add(version)
            return version

    def get_model_version(self, model_key: str, version: int) -> ModelVersion | None:
        with self.session() as s:
            return s.scalar(
                sa.select(ModelVersion).where(
                    ModelVersion.model_key == model_key, ModelVersion.version == version
                )
            )

    def deployed_model(self, model_key: str) -> ModelVersion | None:
        """The deployed model: the active config's. A model that was registered but never
        promoted (its gate failed, or it awaits review) is nobody's champion."""
        active = self.active_config(model_key)
        if active is None or active.model_version is None:
            return None
        return self.get_model_version(model_key, active.model_version)

    def model_for_run(self, model_key: str, run_id: str) -> ModelVersion | None:
        with self.session() as s:
            return s.scalar(
                sa.select(ModelVersion).where(
                    ModelVersion.model_key == model_key, ModelVersion.source_run == run_id
                )
            )

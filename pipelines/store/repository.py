"""The repository: every query Retune issues, behind small intention-revealing methods."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from pipelines.store.tables import (
    AuditEntry,
    ConfigVersion,
    ModelVersion,
    NarrowingFiring,
    Run,
    SelectionLedgerEntry,
    utcnow,
)

# States a version ends in after each review action: repeating the action there is a no-op.
ALREADY_DONE = {
    "approve": ("active", "superseded", "rolled_back"),
    "reject": ("rejected",),
    "timeout": ("expired", "rejected", "active", "superseded", "rolled_back"),  # decided elsewhere first
}


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        # Several processes (Airflow tasks, the CLI) share one file: wait for locks.
        return sa.create_engine(url, connect_args={"timeout": 60})
    return sa.create_engine(url, pool_pre_ping=True)


def content_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


class Repository:
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
                run = Run(run_id=run_id, state="running", **fields)
                s.add(run)
            else:
                run.state, run.error, run.failed_step, run.finished_at = "running", None, None, None
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
            .where(Run.model_key == model_key, Run.run_id != before_run, Run.state == "success")
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

    def model_for_run(self, model_key: str, run_id: str) -> ModelVersion | None:
        with self.session() as s:
            return s.scalar(
                sa.select(ModelVersion).where(
                    ModelVersion.model_key == model_key, ModelVersion.source_run == run_id
                )
            )

    # config versions ------------------------------------------------------------------
    def active_config(self, model_key: str) -> ConfigVersion | None:
        with self.session() as s:
            return s.scalar(
                sa.select(ConfigVersion).where(
                    ConfigVersion.model_key == model_key, ConfigVersion.state == "active"
                )
            )

    def all_active_configs(self) -> list[ConfigVersion]:
        with self.session() as s:
            query = sa.select(ConfigVersion).where(ConfigVersion.state == "active")
            return list(s.scalars(query.order_by(ConfigVersion.model_key)))

    def list_config_versions(self, model_key: str | None = None) -> list[ConfigVersion]:
        query = sa.select(ConfigVersion).order_by(ConfigVersion.created_at.desc(), ConfigVersion.id.desc())
        if model_key:
            query = query.where(ConfigVersion.model_key == model_key)
        with self.session() as s:
            return list(s.scalars(query))

    def get_config_version(self, model_key: str, version: int) -> ConfigVersion | None:
        with self.session() as s:
            return self._by_version(s, model_key, version)

    def propose(
        self,
        model_key: str,
        source_run: str,
        params: dict[str, Any],
        *,
        model_version: int | None,
        metrics: dict[str, Any],
        report_path: str | None,
        actor: str = "retune",
    ) -> ConfigVersion:
        """Append a pending version for review; retrying the same run returns the same version."""
        with self.session() as s:
            self._lock(s, model_key)
            done = self._for_run(s, model_key, source_run)
            if done is not None:
                return done
            active = self._active(s, model_key)
            metrics = {**metrics, "proposed_against": active.version if active else None}
            version = self._append(s, model_key, source_run, params, model_version, metrics, report_path)
            self._audit(
                s,
                model_key,
                "propose",
                actor,
                "awaiting review",
                active.version if active else None,
                version.version,
                source_run,
            )
            return version

    def promote(
        self,
        model_key: str,
        source_run: str,
        params: dict[str, Any],
        *,
        actor: str,
        reason: str,
        model_version: int | None,
        metrics: dict[str, Any],
        report_path: str | None,
    ) -> ConfigVersion:
        """Append a version and make it active, with its audit row, in one transaction.

        Retrying the same run returns the version it already created.
        """
        with self.session() as s:
            self._lock(s, model_key)
            version = self._for_run(s, model_key, source_run)
            if version is None:
                version = self._append(s, model_key, source_run, params, model_version, metrics, report_path)
            if version.state == "pending":
                self._activate(s, version, actor, reason, action="promote")
            return version

    def approve(self, model_key: str, source_run: str, *, actor: str, reason: str) -> ConfigVersion:
        """Activate the run's pending version. Approving twice is a no-op; approving a decided one fails.

        A proposal made against another active version than today's is out of date (a newer
        proposal was approved, or a rollback happened since): it expires instead of replacing it.
        """
        with self.session() as s:
            self._lock(s, model_key)
            version = self._decidable(s, model_key, source_run, "approve")
            if version.state != "pending":
                return version
            current = self._active(s, model_key)
            now_active = current.version if current else None
            against = (version.metrics or {}).get("proposed_against", now_active)
            if now_active != against:
                version.state = "expired"
                why = f"out of date: proposed against v{against}, v{now_active} is active now"
                self._audit(s, model_key, "expire", actor, why, None, version.version, source_run)
                return version
            self._activate(s, version, actor, reason, action="approve")
            return version

    def reject(
        self, model_key: str, source_run: str, *, actor: str, reason: str, action: str = "reject"
    ) -> ConfigVersion:
        """Record that the run's pending version will not trade (``action``: reject | timeout)."""
        with self.session() as s:
            self._lock(s, model_key)
            version = self._decidable(s, model_key, source_run, action)
            if version.state == "pending":
                version.state = "rejected" if action == "reject" else "expired"
                self._audit(s, model_key, action, actor, reason, None, version.version, source_run)
            return version

    def rollback(self, model_key: str, to_version: int, *, actor: str, reason: str) -> ConfigVersion:
        """Make an earlier version active again (its params and model, unchanged)."""
        with self.session() as s:
            self._lock(s, model_key)
            target = self._by_version(s, model_key, to_version)
            if target is None:
                raise LookupError(f"{model_key} has no config version {to_version}")
            if target.state == "active":
                return target
            if target.state not in ("superseded", "rolled_back"):
                raise ValueError(
                    f"{model_key} v{to_version} is {target.state}: only a version that was active can "
                    "be rolled back to"
                )
            self._activate(s, target, actor, reason, action="rollback")
            return target

    def record_attempt(
        self, model_key: str, source_run: str, *, action: str, actor: str, reason: str
    ) -> None:
        """An audit row for a review step that changes no version: a refused approval (who tried,
        why not) or the first of two required approvals."""
        with self.session() as s:
            version = self._for_run(s, model_key, source_run)
            self._audit(
                s, model_key, action, actor, reason, None, version.version if version else None, source_run
            )

    # -- inside one transaction ----------------------------------------------------------
    @staticmethod
    def _lock(s: Session, model_key: str) -> None:
        """Serialize changes to one model key's versions across processes.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: take the database write lock
        now (BEGIN IMMEDIATE) rather than at the first write, where two readers upgrading
        their locks would deadlock and one would fail.
        """
        if s.get_bind().dialect.name == "postgresql":
            key = int.from_bytes(hashlib.sha256(model_key.encode()).digest()[:8], "big", signed=True)
            s.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        elif s.get_bind().dialect.name == "sqlite":
            s.execute(sa.text("BEGIN IMMEDIATE"))

    @staticmethod
    def _by_version(s: Session, model_key: str, version: int) -> ConfigVersion | None:
        return s.scalar(
            sa.select(ConfigVersion).where(
                ConfigVersion.model_key == model_key, ConfigVersion.version == version
            )
        )

    @staticmethod
    def _for_run(s: Session, model_key: str, source_run: str) -> ConfigVersion | None:
        return s.scalar(
            sa.select(ConfigVersion).where(
                ConfigVersion.model_key == model_key, ConfigVersion.source_run == source_run
            )
        )

    def _decidable(self, s: Session, model_key: str, source_run: str, action: str) -> ConfigVersion:
        """The run's version if ``action`` may apply to it (pending), or already did (a retry)."""
        version = self._for_run(s, model_key, source_run)
        if version is None:
            raise LookupError(f"run {source_run} proposed no config for {model_key}")
        if version.state == "pending" or version.state in ALREADY_DONE[action]:
            return version
        raise ValueError(f"{model_key} v{version.version} from {source_run} is already {version.state}")

    @staticmethod
    def _append(
        s: Session,
        model_key: str,
        source_run: str,
        params: dict[str, Any],
        model_version: int | None,
        metrics: dict[str, Any],
        report_path: str | None,
    ) -> ConfigVersion:
        latest = s.scalar(
            sa.select(sa.func.max(ConfigVersion.version)).where(ConfigVersion.model_key == model_key)
        )
        version = ConfigVersion(
            model_key=model_key,
            version=(latest or 0) + 1,
            state="pending",
            params=params,
            content_hash=content_hash(params),
            model_version=model_version,
            source_run=source_run,
            metrics=metrics,
            report_path=report_path,
            created_at=utcnow(),
        )
        s.add(version)
        s.flush()
        return version

    @staticmethod
    def _active(s: Session, model_key: str) -> ConfigVersion | None:
        return s.scalar(
            sa.select(ConfigVersion).where(
                ConfigVersion.model_key == model_key, ConfigVersion.state == "active"
            )
        )

    def _activate(self, s: Session, version: ConfigVersion, actor: str, reason: str, action: str) -> None:
        current = self._active(s, version.model_key)
        if current is not None:
            current.state = "rolled_back" if action == "rollback" else "superseded"
            s.flush()  # the one-active index must see the old row leave before the new one arrives
        version.state = "active"
        version.promoted_at = utcnow()
        version.approved_by = actor
        self._audit(
            s,
            version.model_key,
            action,
            actor,
            reason,
            current.version if current else None,
            version.version,
            version.source_run,
        )

    @staticmethod
    def _audit(
        s: Session,
        model_key: str,
        action: str,
        actor: str,
        reason: str | None,
        from_version: int | None,
        to_version: int | None,
        source_run: str | None,
    ) -> None:
        s.add(
            AuditEntry(
                model_key=model_key,
                action=action,
                actor=actor,
                reason=reason,
                from_version=from_version,
                to_version=to_version,
                source_run=source_run,
                at=utcnow(),
            )
        )

    def audit_log(self, model_key: str | None = None, limit: int = 100) -> list[AuditEntry]:
        query = sa.select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
        if model_key:
            query = query.where(AuditEntry.model_key == model_key)
        with self.session() as s:
            return list(s.scalars(query))


def as_dict(row: Any) -> dict[str, Any]:
    """A row as plain JSON-friendly values."""
    out = {}
    for column in sa.inspect(row).mapper.column_attrs:
        value = getattr(row, column.key)
        out[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return out

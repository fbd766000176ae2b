"""Config versions and their audit trail: propose, promote, approve, reject, roll back.

Every change to a model key's versions runs in one transaction under the key's lock, with its
audit row; ``Repository`` mixes this in, so callers keep one store object.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pipelines.store.keys import advisory_key, content_hash
from pipelines.store.tables import AuditEntry, ConfigVersion, utcnow
from pipelines.terms import AuditAction, ConfigState

# States a version ends in after each review action: repeating the action there is a no-op.
_DECIDED = (ConfigState.ACTIVE, ConfigState.SUPERSEDED, ConfigState.ROLLED_BACK)
ALREADY_DONE: dict[str, tuple[ConfigState, ...]] = {
    AuditAction.APPROVE: _DECIDED,
    AuditAction.REJECT: (ConfigState.REJECTED,),
    AuditAction.TIMEOUT: (ConfigState.EXPIRED, ConfigState.REJECTED, *_DECIDED),  # decided elsewhere first
}


class ConfigLedger:
    def session(self) -> AbstractContextManager[Session]:  # provided by Repository
        raise NotImplementedError

    # config versions ------------------------------------------------------------------
    def active_config(self, model_key: str) -> ConfigVersion | None:
        with self.session() as s:
            return s.scalar(
                sa.select(ConfigVersion).where(
                    ConfigVersion.model_key == model_key, ConfigVersion.state == ConfigState.ACTIVE
                )
            )

    def all_active_configs(self) -> list[ConfigVersion]:
        with self.session() as s:
            query = sa.select(ConfigVersion).where(ConfigVersion.state == ConfigState.ACTIVE)
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
                AuditAction.PROPOSE.value,
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
            if version.state == ConfigState.PENDING:
                self._activate(s, version, actor, reason, action=AuditAction.PROMOTE.value)
            return version

    def approve(self, model_key: str, source_run: str, *, actor: str, reason: str) -> ConfigVersion:
        """Activate the run's pending version. Approving twice is a no-op; approving a decided one fails.

        A proposal made against another active version than today's is out of date (a newer
        proposal was approved, or a rollback happened since): it expires instead of replacing it.
        """
        with self.session() as s:
            self._lock(s, model_key)
            version = self._decidable(s, model_key, source_run, "approve")
            if version.state != ConfigState.PENDING:
                return version
            current = self._active(s, model_key)
            now_active = current.version if current else None
            against = (version.metrics or {}).get("proposed_against", now_active)
            if now_active != against:
                version.state = ConfigState.EXPIRED.value
                why = f"out of date: proposed against v{against}, v{now_active} is active now"
                self._audit(s, model_key, "expire", actor, why, None, version.version, source_run)
                return version
            self._activate(s, version, actor, reason, action=AuditAction.APPROVE.value)
            return version

    def reject(
        self, model_key: str, source_run: str, *, actor: str, reason: str, action: str = "reject"
    ) -> ConfigVersion:
        """Record that the run's pending version will not trade (``action``: reject | timeout)."""
        with self.session() as s:
            self._lock(s, model_key)
            version = self._decidable(s, model_key, source_run, action)
            if version.state == ConfigState.PENDING:
                version.state = (
                    ConfigState.REJECTED.value if action == AuditAction.REJECT else ConfigState.EXPIRED.value
                )
                self._audit(s, model_key, action, actor, reason, None, version.version, source_run)
            return version

    def rollback(self, model_key: str, to_version: int, *, actor: str, reason: str) -> ConfigVersion:
        """Make an earlier version active again (its params and model, unchanged)."""
        with self.session() as s:
            self._lock(s, model_key)
            target = self._by_version(s, model_key, to_version)
            if target is None:
                raise LookupError(f"{model_key} has no config version {to_version}")
            if target.state == ConfigState.ACTIVE:
                return target
            if target.state not in ("superseded", "rolled_back"):
                raise ValueError(
                    f"{model_key} v{to_version} is {target.state}: only a version that was active can "
                    "be rolled back to"
                )
            self._activate(s, target, actor, reason, action=AuditAction.ROLLBACK.value)
            return target

    def record_attempt(
        self,
        model_key: str,
        source_run: str,
        *,
        action: str,
        actor: str,
        reason: str,
        at: datetime | None = None,
    ) -> None:
        """An audit row for a review step that changes no version: an answer as Airflow accepted
        it (``at``: when it did), a refused approval (who tried, why not) or the first of two
        required approvals."""
        with self.session() as s:
            version = self._for_run(s, model_key, source_run)
            to_version = version.version if version else None
            self._audit(s, model_key, action, actor, reason, None, to_version, source_run, at=at)

    # -- inside one transaction ----------------------------------------------------------
    @staticmethod
    def _lock(s: Session, model_key: str) -> None:
        """Serialize changes to one model key's versions across processes.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: take the database write lock
        now (BEGIN IMMEDIATE) rather than at the first write, where two readers upgrading
        their locks would deadlock and one would fail.
        """
        if s.get_bind().dialect.name == "postgresql":
            key = advisory_key(model_key)
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
        if version.state == ConfigState.PENDING or version.state in ALREADY_DONE[action]:
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
            state=ConfigState.PENDING.value,
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
                ConfigVersion.model_key == model_key, ConfigVersion.state == ConfigState.ACTIVE
            )
        )

    def _activate(self, s: Session, version: ConfigVersion, actor: str, reason: str, action: str) -> None:
        current = self._active(s, version.model_key)
        if current is not None:
            current.state = (
                ConfigState.ROLLED_BACK.value
                if action == AuditAction.ROLLBACK
                else ConfigState.SUPERSEDED.value
            )
            s.flush()  # the one-active index must see the old row leave before the new one arrives
        version.state = ConfigState.ACTIVE.value
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
        at: datetime | None = None,
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
                at=at or utcnow(),
            )
        )

    def partial_approvals(self, model_key: str, source_run: str) -> list[str]:
        """Who gave the approvals recorded so far for one run's proposal (``approve_partial``
        rows' actors, oldest first): what a retried review task must not ask for again."""
        query = (
            sa.select(AuditEntry.actor)
            .where(
                AuditEntry.model_key == model_key,
                AuditEntry.source_run == source_run,
                AuditEntry.action == AuditAction.APPROVE_PARTIAL,
            )
            .order_by(AuditEntry.id)
        )
        with self.session() as s:
            return list(s.scalars(query))

    def unprocessed_answer(self, model_key: str, source_run: str) -> AuditEntry | None:
        """The newest answer Airflow accepted for this run's pending proposal that its review task
        never processed (no later ``approve_partial`` or ``refused`` row by the same person), or
        None: what a retried review task must act on instead of asking again (review_tail).

        "Later" is by time: an answer's row carries the time Airflow accepted it, and the api-server
        may write it after the task has already processed the answer."""
        answers = (AuditAction.ANSWERED_APPROVE, AuditAction.ANSWERED_REJECT)
        processed = (AuditAction.APPROVE_PARTIAL, AuditAction.REFUSED)
        with self.session() as s:
            version = self._for_run(s, model_key, source_run)
            if version is None or version.state != ConfigState.PENDING:
                return None  # decided: nothing is waiting for an answer
            rows = list(
                s.scalars(
                    sa.select(AuditEntry)
                    .where(AuditEntry.model_key == model_key, AuditEntry.source_run == source_run)
                    .order_by(AuditEntry.at, AuditEntry.id)
                )
            )
        answer = next((r for r in reversed(rows) if r.action in answers), None)
        if answer is None:
            return None
        later = rows[rows.index(answer) + 1 :]
        if any(r.actor == answer.actor and r.action in processed for r in later):
            return None
        return answer

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

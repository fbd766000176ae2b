"""ORM tables. Migrations in ``sql/`` create exactly these; keep both in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Run(Base):
    __tablename__ = "retune_runs"
    run_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(100))
    model_key: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(20))  # running | success | failed
    as_of: Mapped[datetime | None]
    data_source: Mapped[str] = mapped_column(String(500))
    params: Mapped[dict[str, Any]]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    failed_step: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    study_name: Mapped[str | None] = mapped_column(String(250))
    best_value: Mapped[float | None] = mapped_column(Float)
    n_trials: Mapped[int | None] = mapped_column(Integer)
    report_path: Mapped[str | None] = mapped_column(String(1000))
    decision: Mapped[str | None] = mapped_column(String(500))
    # what decided: DSR, PBO, raw and effective N, the benchmark comparisons, the gate checks
    verdict: Mapped[dict[str, Any] | None]


class ModelVersion(Base):
    __tablename__ = "retune_model_versions"
    __table_args__ = (UniqueConstraint("model_key", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model_key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    parent_version: Mapped[int | None]
    family: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]]
    feature_fingerprint: Mapped[str] = mapped_column(String(64))
    checkpoint_path: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))
    trained_how: Mapped[str] = mapped_column(String(20))  # scratch | finetune
    data_start: Mapped[datetime | None]
    data_end: Mapped[datetime | None]
    metrics: Mapped[dict[str, Any]]
    source_run: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfigVersion(Base):
    __tablename__ = "retune_config_versions"
    __table_args__ = (
        UniqueConstraint("model_key", "version"),
        UniqueConstraint("model_key", "source_run"),  # a retried run never proposes twice
        # The database, not the code, guarantees one active version per model key.
        Index(
            "uq_retune_config_one_active",
            "model_key",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model_key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    state: Mapped[str] = mapped_column(String(20))  # active | superseded | rejected | pending
    params: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int | None]
    source_run: Mapped[str] = mapped_column(String(200))
    metrics: Mapped[dict[str, Any]]
    report_path: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(200))


class SelectionLedgerEntry(Base):
    """One search's share of the population the Deflated Sharpe Ratio deflates against.

    Every trial a model key and family ever ran is counted here: raw backtests, effective
    independent trials, and the moments of their per-bar (active) Sharpe ratios, so N and the
    variance of Sharpe ratios always describe the same set; ``sr0`` is the bar the run used.
    """

    __tablename__ = "retune_selection_ledger"
    __table_args__ = (UniqueConstraint("model_key", "run_id"),)  # a retried finalize rewrites its row
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model_key: Mapped[str] = mapped_column(String(64))
    family: Mapped[str] = mapped_column(String(40))
    run_id: Mapped[str] = mapped_column(String(200))
    n_backtests: Mapped[int]
    n_effective: Mapped[float] = mapped_column(Float)
    n_sharpes: Mapped[int]
    sharpe_sum: Mapped[float] = mapped_column(Float)
    sharpe_sq_sum: Mapped[float] = mapped_column(Float)
    sr0: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NarrowingFiring(Base):
    __tablename__ = "retune_narrowing_firings"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(200), index=True)
    rule: Mapped[str] = mapped_column(String(100))
    param: Mapped[str] = mapped_column(String(100))
    before: Mapped[dict[str, Any]]
    after: Mapped[dict[str, Any]]
    rationale: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]]


class AuditEntry(Base):
    __tablename__ = "retune_audit"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model_key: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(40))  # promote | reject | rollback
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    source_run: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)

"""Repository.promote and production.yaml on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pipelines.store.keys import content_hash
from pipelines.store.migrate import upgrade
from pipelines.store.production_file import read_production_file, sync_production_file
from pipelines.store.tables import AuditEntry, Base, ConfigVersion, utcnow

KEY = "spx_daily"


def promote(repo, run: str, params: dict | None = None, *, key: str = KEY, model_version=None):
    return repo.promote(
        key,
        run,
        params or {"lr": 0.001, "hidden_size": 16},
        actor="alice",
        reason="looks good",
        model_version=model_version,
        metrics={"best_value": 1.25, "objective": "sharpe"},
        report_path=f"/reports/{run}/report.html",
    )


def states(repo, key: str = KEY) -> dict[int, str]:
    return {cv.version: cv.state for cv in repo.list_config_versions(key)}


# --- schema -----------------------------------------------------------------------------------


def test_migrations_match_the_orm_and_are_idempotent(db_url):
    upgrade(db_url)  # a second run is a no-op
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": "retune_alembic_version"})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


# --- promotion --------------------------------------------------------------------------------


def test_first_promote_creates_an_active_v1(repo):
    version = promote(repo, "run-1")
    assert (version.version, version.state) == (1, "active")
    active = repo.active_config(KEY)
    assert active.version == 1 and active.source_run == "run-1"
    assert active.params == {"lr": 0.001, "hidden_size": 16}
    assert active.content_hash == content_hash(active.params)
    assert active.approved_by == "alice" and active.promoted_at is not None
    (audit,) = repo.audit_log(KEY)
    assert (audit.action, audit.from_version, audit.to_version) == ("promote", None, 1)
    assert (audit.actor, audit.reason, audit.source_run) == ("alice", "looks good", "run-1")


def test_second_promote_supersedes_the_first(repo):
    promote(repo, "run-1")
    v2 = promote(repo, "run-2", {"lr": 0.002, "hidden_size": 32})
    assert (v2.version, v2.state) == (2, "active")
    assert states(repo) == {1: "superseded", 2: "active"}
    assert repo.active_config(KEY).params == {"lr": 0.002, "hidden_size": 32}
    latest, first = repo.audit_log(KEY)
    assert (latest.from_version, latest.to_version, latest.source_run) == (1, 2, "run-2")
    assert (first.from_version, first.to_version) == (None, 1)


def test_retrying_a_run_returns_its_version(repo):
    first = promote(repo, "run-1")
    again = promote(repo, "run-1", {"lr": 0.5})  # an Airflow retry of the same run
    assert (again.id, again.version) == (first.id, first.version)
    assert states(repo) == {1: "active"}
    assert len(repo.audit_log(KEY)) == 1
    promote(repo, "run-2")
    late_retry = promote(repo, "run-1")
    assert late_retry.version == 1
    assert states(repo) == {1: "superseded", 2: "active"}  # a late retry does not roll back
    assert len(repo.audit_log(KEY)) == 2


def test_model_keys_are_independent(repo):
    promote(repo, "run-1", key="spx_daily")
    promote(repo, "run-1", key="ndx_daily")  # the same run id under another key is a new version
    promote(repo, "run-2", key="ndx_daily")
    assert states(repo, "spx_daily") == {1: "active"}
    assert states(repo, "ndx_daily") == {1: "superseded", 2: "active"}
    assert [cv.model_key for cv in repo.all_active_configs()] == ["ndx_daily", "spx_daily"]


def _row(version: int, state: str, key: str = KEY) -> dict:
    now = utcnow()
    return {
        "model_key": key,
        "version": version,
        "state": state,
        "params": {"v": version},
        "content_hash": "x",
        "model_version": None,
        "source_run": f"direct-{key}-{version}",
        "metrics": {},
        "report_path": None,
        "created_at": now,
        "promoted_at": now,
        "approved_by": "db",
    }


def test_database_refuses_two_active_versions(db_url):
    engine = sa.create_engine(db_url)
    table = ConfigVersion.__table__
    try:
        with engine.begin() as conn:  # these are all allowed
            conn.execute(
                sa.insert(table),
                [
                    _row(1, "superseded"),
                    _row(2, "superseded"),
                    _row(3, "active"),
                    _row(1, "active", "other"),
                ],
            )
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.insert(table), [_row(4, "active")])
        with engine.connect() as conn:
            active = (
                conn.execute(
                    sa.select(table.c.version).where(table.c.model_key == KEY, table.c.state == "active")
                )
                .scalars()
                .all()
            )
        assert active == [3]
    finally:
        engine.dispose()


def test_promote_writes_its_version_and_audit_in_one_transaction(repo, monkeypatch):
    promote(repo, "run-1")

    def broken_audit(*args, **kwargs):
        raise RuntimeError("audit insert failed")

    monkeypatch.setattr("pipelines.store.ledger.AuditEntry", broken_audit)
    with pytest.raises(RuntimeError):
        promote(repo, "run-2")
    monkeypatch.undo()
    assert states(repo) == {1: "active"}  # v1 not left superseded, no orphan v2
    with repo.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 1


# --- production.yaml --------------------------------------------------------------------------


def _register_model(repo, run: str) -> int:
    mv = repo.add_model_version(
        KEY,
        run,
        family="lstm",
        params={"hidden_size": 16},
        feature_fingerprint="f" * 16,
        checkpoint_path=f"/models/{run}",
        sha256="a" * 64,
        trained_how="finetune",
        metrics={},
    )
    return mv.version


def test_sync_writes_the_active_version(repo, tmp_path):
    path = tmp_path / "config" / "production.yaml"
    assert sync_production_file(repo, path) is False  # nothing active, nothing to write
    assert not path.exists()
    version = promote(repo, "run-1", model_version=_register_model(repo, "run-1"))
    assert sync_production_file(repo, path) is True
    text = path.read_text()
    assert text.startswith("#")
    entry = yaml.safe_load(text)["models"][KEY]
    assert entry["config_version"] == version.version == 1
    assert entry["params"] == {"lr": 0.001, "hidden_size": 16}
    assert entry["content_hash"] == version.content_hash
    assert entry["model_version"] == 1
    assert entry["checkpoint"] == "/models/run-1"
    assert entry["checkpoint_sha256"] == "a" * 64
    assert entry["source_run"] == "run-1" and "approved_by" not in entry  # in the store, not the file
    assert read_production_file(path)["models"][KEY] == entry


def test_sync_keeps_the_previous_file_and_is_idempotent(repo, tmp_path):
    path = tmp_path / "production.yaml"
    promote(repo, "run-1")
    sync_production_file(repo, path)
    first = path.read_text()
    promote(repo, "run-2", {"lr": 0.004})
    assert sync_production_file(repo, path) is True
    assert Path(f"{path}.prev").read_text() == first
    assert read_production_file(path)["models"][KEY]["config_version"] == 2
    assert read_production_file(path)["models"][KEY]["params"] == {"lr": 0.004}
    second = path.read_text()
    assert sync_production_file(repo, path) is False  # already in sync: untouched
    assert path.read_text() == second
    assert Path(f"{path}.prev").read_text() == first


@pytest.mark.parametrize("damage", ["delete", "edit"])
def test_sync_repairs_a_deleted_or_edited_file(repo, tmp_path, damage):
    path = tmp_path / "production.yaml"
    promote(repo, "run-1")
    sync_production_file(repo, path)
    good = path.read_text()
    if damage == "delete":
        path.unlink()
    else:
        path.write_text(good.replace("0.001", "0.9"))
    assert sync_production_file(repo, path) is True
    assert path.read_text() == good
    assert sync_production_file(repo, path) is False


def test_rewrite_never_leaves_the_file_missing(repo, tmp_path, monkeypatch):
    """A reader polling production.yaml must always find a complete file, even mid-rewrite."""
    path = tmp_path / "production.yaml"
    promote(repo, "run-1")
    sync_production_file(repo, path)
    promote(repo, "run-2")
    missing_during_rewrite = []
    real_replace = os.replace

    def spy(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if not path.exists():
            missing_during_rewrite.append((str(src), str(dst)))

    monkeypatch.setattr("pipelines.artifacts.os.replace", spy)
    assert sync_production_file(repo, path) is True
    assert read_production_file(path)["models"][KEY]["config_version"] == 2
    assert missing_during_rewrite == [], f"production.yaml was absent after {missing_during_rewrite}"


def test_concurrent_promotions_never_leave_two_active(postgres_url):
    """PostgreSQL, two workers promoting at once: one active version and an audit row per version."""
    import threading
    import uuid

    from pipelines.store.repository import Repository

    key = f"concurrent_{uuid.uuid4().hex[:8]}"  # its own key: the shared database may hold others
    base = Repository(postgres_url)
    try:
        promote(base, "run-0", key=key)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def worker(run: str) -> None:
            repo = Repository(postgres_url)
            try:
                barrier.wait()
                promote(repo, run, key=key)
                outcomes.append("ok")
            except sa.exc.IntegrityError:
                outcomes.append("refused")
            finally:
                repo.close()

        threads = [threading.Thread(target=worker, args=(f"run-{i}",)) for i in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(outcomes) in (["ok", "ok"], ["ok", "refused"])
        assert list(states(base, key).values()).count("active") == 1
        promoted = [a.to_version for a in base.audit_log(key)]
        assert sorted(promoted) == sorted(states(base, key))  # one audit row per version
    finally:
        base.close()

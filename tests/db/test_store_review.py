"""Reviewed promotions in the store, on SQLite and PostgreSQL: propose, approve, reject, timeout,
rollback, and many promoters at once."""

from __future__ import annotations

import threading
import uuid

import pytest

from pipelines.store.production_file import sync_production_file
from pipelines.store.repository import Repository

KEY = "spx_daily"
METRICS = {"best_value": 1.1, "dsr": 0.97}


def propose(repo, run: str, lr: float = 0.001, key: str = KEY):
    return repo.propose(
        key, run, {"lr": lr}, model_version=None, metrics=METRICS, report_path=f"/r/{run}/report.html"
    )


def promote(repo, run: str, lr: float = 0.001, key: str = KEY):
    return repo.promote(
        key,
        run,
        {"lr": lr},
        actor="gate:auto",
        reason="gate passed",
        model_version=None,
        metrics=METRICS,
        report_path=None,
    )


def states(repo, key: str = KEY) -> dict[int, str]:
    return {cv.version: cv.state for cv in repo.list_config_versions(key)}


def actions(repo, key: str = KEY) -> list[tuple]:
    return [(a.action, a.actor, a.from_version, a.to_version) for a in reversed(repo.audit_log(key))]


def test_a_proposal_waits_and_changes_nothing_active(repo):
    promote(repo, "run-1")
    pending = propose(repo, "run-2", lr=0.002)
    assert pending.state == "pending" and pending.version == 2
    assert repo.active_config(KEY).version == 1
    assert propose(repo, "run-2", lr=0.002).id == pending.id  # a retried run proposes once
    assert states(repo) == {1: "active", 2: "pending"}


def test_approve_activates_with_the_responder_in_the_audit(repo):
    promote(repo, "run-1")
    propose(repo, "run-2", lr=0.002)
    approved = repo.approve(KEY, "run-2", actor="ops:bob", reason="reviewed the report")
    assert approved.state == "active" and approved.approved_by == "ops:bob"
    assert states(repo) == {1: "superseded", 2: "active"}
    assert actions(repo)[-1] == ("approve", "ops:bob", 1, 2)
    assert repo.approve(KEY, "run-2", actor="ops:bob", reason="again").state == "active"  # no-op
    assert len(actions(repo)) == 3  # promote v1, propose v2, approve v2
    with pytest.raises(ValueError, match="already active"):
        repo.reject(KEY, "run-2", actor="ops:carol", reason="too late")


def test_partial_approvals_are_read_back_per_run_for_a_retried_review(repo):
    propose(repo, "run-2", lr=0.002)
    propose(repo, "run-3", lr=0.003)
    repo.record_attempt(KEY, "run-2", action="approve_partial", actor="airflow:bob", reason="1 of 2")
    repo.record_attempt(KEY, "run-2", action="refused", actor="airflow:alice", reason="four-eyes")
    repo.record_attempt(KEY, "run-3", action="approve_partial", actor="airflow:carol", reason="1 of 2")
    assert repo.partial_approvals(KEY, "run-2") == ["airflow:bob"]  # not alice's refused try, not run-3's
    assert repo.partial_approvals(KEY, "run-4") == []


def test_an_answer_no_review_try_processed_is_found_for_its_retry(repo):
    propose(repo, "run-2", lr=0.002)
    assert repo.unprocessed_answer(KEY, "run-2") is None  # nobody answered yet
    repo.record_attempt(KEY, "run-2", action="answered_approve", actor="airflow:bob", reason="checked")
    assert repo.unprocessed_answer(KEY, "run-2").reason == "checked"
    repo.record_attempt(KEY, "run-2", action="refused", actor="airflow:vic", reason="Airflow refused")
    assert repo.unprocessed_answer(KEY, "run-2").actor == "airflow:bob"  # another's row processes nothing
    repo.record_attempt(KEY, "run-2", action="approve_partial", actor="airflow:bob", reason="1 of 2")
    assert repo.unprocessed_answer(KEY, "run-2") is None  # bob's answer was processed
    repo.record_attempt(KEY, "run-2", action="answered_approve", actor="airflow:bob", reason="again")
    repo.record_attempt(KEY, "run-2", action="refused", actor="airflow:bob", reason="already approved")
    assert repo.unprocessed_answer(KEY, "run-2") is None  # processed: refused
    repo.record_attempt(KEY, "run-2", action="answered_approve", actor="airflow:carol", reason="ok")
    assert repo.unprocessed_answer(KEY, "run-3") is None  # another run's
    assert repo.unprocessed_answer(KEY, "run-2").actor == "airflow:carol"
    repo.approve(KEY, "run-2", actor="airflow:bob+carol", reason="ok")
    assert repo.unprocessed_answer(KEY, "run-2") is None  # decided: nothing waits for an answer


def test_an_answer_audited_after_the_task_processed_it_counts_as_processed(repo):
    """The api-server writes an answer's row after Airflow accepted it, at the time it did; the
    resumed task may have written its own row in between."""
    from datetime import UTC, datetime

    propose(repo, "run-2")
    accepted = datetime.now(UTC)
    repo.record_attempt(KEY, "run-2", action="approve_partial", actor="airflow:bob", reason="1 of 2")
    repo.record_attempt(
        KEY, "run-2", action="answered_approve", actor="airflow:bob", reason="ok", at=accepted
    )
    assert repo.unprocessed_answer(KEY, "run-2") is None
    assert [a.action for a in reversed(repo.audit_log(KEY))] == [
        "propose",
        "answered_approve",
        "approve_partial",
    ]


def test_reject_and_timeout_record_why_and_change_nothing(repo):
    promote(repo, "run-1")
    propose(repo, "run-2")
    propose(repo, "run-3")
    repo.reject(KEY, "run-2", actor="ops:bob", reason="drawdown too deep")
    repo.reject(KEY, "run-3", actor="airflow:timeout", reason="no response in 24h", action="timeout")
    assert states(repo) == {1: "active", 2: "rejected", 3: "expired"}
    log = repo.audit_log(KEY)
    assert (log[0].action, log[0].reason) == ("timeout", "no response in 24h")
    assert (log[1].action, log[1].actor, log[1].reason) == ("reject", "ops:bob", "drawdown too deep")
    with pytest.raises(ValueError, match="already rejected"):
        repo.approve(KEY, "run-2", actor="ops:bob", reason="changed my mind")
    with pytest.raises(LookupError, match="run-9 proposed no config"):
        repo.approve(KEY, "run-9", actor="ops:bob", reason="?")


def test_rollback_restores_the_previous_production_file_byte_for_byte(repo, tmp_path):
    path = tmp_path / "production.yaml"
    promote(repo, "run-1", lr=0.001)
    sync_production_file(repo, path)
    first = path.read_bytes()
    promote(repo, "run-2", lr=0.005)
    sync_production_file(repo, path)
    assert path.read_bytes() != first
    back = repo.rollback(KEY, 1, actor="ops:bob", reason="v2 trades badly")
    sync_production_file(repo, path)
    assert back.state == "active" and path.read_bytes() == first
    assert states(repo) == {1: "active", 2: "rolled_back"}
    assert actions(repo)[-1] == ("rollback", "ops:bob", 2, 1)
    repo.rollback(KEY, 2, actor="ops:bob", reason="forward again")  # a rolled-back version can return
    assert states(repo) == {1: "rolled_back", 2: "active"}


def test_rollback_refuses_versions_that_never_traded(repo):
    promote(repo, "run-1")
    propose(repo, "run-2")
    with pytest.raises(ValueError, match="v2 is pending"):
        repo.rollback(KEY, 2, actor="ops", reason="x")
    with pytest.raises(LookupError, match="no config version 7"):
        repo.rollback(KEY, 7, actor="ops", reason="x")
    assert states(repo) == {1: "active", 2: "pending"}


def test_twenty_concurrent_promotions_leave_exactly_one_active(db_url):
    """Twenty promoters, each its own engine and connection, released at once."""
    key = f"race_{uuid.uuid4().hex[:8]}"
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        repo = Repository(db_url)
        try:
            barrier.wait()
            promote(repo, f"run-{i}", lr=0.001 * (i + 1), key=key)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            repo.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    repo = Repository(db_url)
    try:
        assert errors == []
        final = states(repo, key)
        assert sorted(final) == list(range(1, 21))  # every attempt got its own version number
        assert list(final.values()).count("active") == 1
        chain = [(a.from_version, a.to_version) for a in reversed(repo.audit_log(key))]
        assert len(chain) == 20 and chain[0][0] is None
        assert all(prev[1] == nxt[0] for prev, nxt in zip(chain, chain[1:], strict=False))  # no lost update
    finally:
        repo.close()


def test_a_crash_between_the_commit_and_the_file_write_is_repaired(repo, db_url, tmp_path, monkeypatch):
    """The approval commits, the process dies before production.yaml is rewritten: the next
    `retune status` (or run) rewrites it from the store."""
    import pipelines.promotion.service as service
    from pipelines.settings import Settings
    from pipelines.status import status_payload
    from pipelines.store.production_file import read_production_file

    settings = Settings(tmp_path, db_url, db_url)
    promote(repo, "run-1")
    sync_production_file(repo, settings.production_config)
    propose(repo, "run-2", lr=0.002)

    def die(*args, **kwargs):
        raise SystemExit("killed between the commit and the file write")

    monkeypatch.setattr(service, "sync_production_file", die)
    with pytest.raises(SystemExit):
        service.review(settings, repo, KEY, "run-2", approve=True, actor="ops:bob", reason="ok")
    assert repo.active_config(KEY).version == 2  # committed
    assert read_production_file(settings.production_config)["models"][KEY]["config_version"] == 1  # stale

    monkeypatch.undo()
    monkeypatch.setenv("RETUNE_HOME", str(tmp_path))
    monkeypatch.setenv("RETUNE_DB_URL", db_url)
    status = status_payload()
    assert read_production_file(settings.production_config)["models"][KEY]["config_version"] == 2
    assert status["active"]["version"] == 2 and status["active"]["approved_by"] == "ops:bob"


def test_an_out_of_date_proposal_expires_instead_of_replacing_a_newer_config(repo):
    promote(repo, "run-1")
    propose(repo, "run-a", lr=0.002)  # both proposed against v1
    propose(repo, "run-b", lr=0.003)
    repo.approve(KEY, "run-b", actor="ops:bob", reason="newest")
    stale = repo.approve(KEY, "run-a", actor="ops:bob", reason="clicked the old one")
    assert stale.state == "expired"
    assert states(repo) == {1: "superseded", 2: "expired", 3: "active"}
    assert (
        repo.audit_log(KEY)[0].action == "expire" and "proposed against v1" in repo.audit_log(KEY)[0].reason
    )


def test_a_timeout_after_a_cli_decision_changes_nothing(repo):
    promote(repo, "run-1")
    propose(repo, "run-2")
    repo.approve(KEY, "run-2", actor="cli:bob", reason="approved from the terminal")
    after = repo.reject(KEY, "run-2", actor="airflow:timeout", reason="no answer", action="timeout")
    assert after.state == "active" and states(repo) == {1: "superseded", 2: "active"}


def test_long_decisions_fit_the_runs_table(repo):
    import pandas as pd

    decision = "kept: gate failed (best_value_positive, deflated_sharpe, max_drawdown, min_trades)"
    repo.start_run(
        "run-x", dag_id="daily", model_key=KEY, as_of=pd.Timestamp(2021, 1, 1), data_source="x", params={}
    )
    repo.update_run("run-x", decision=decision)
    assert repo.get_run("run-x").decision == decision

"""The rules of the operator's path, without Airflow running: trigger errors in words, where a
scheduled run reads its bars, who may approve, numbers for people, the run note, the report's
recorded decision. tests/e2e/test_operator_path.py walks the same path through a real stack."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins"))


def test_trigger_errors_name_every_bad_field_its_value_and_the_rule_in_words():
    from retune_airflow.params import conf_errors, run_params

    params = run_params(20, 30)
    errors = conf_errors(
        {
            "n_trials": -5,
            "timeout_minutes": 0,
            "objective": "profit",
            "data": "/etc/passwd",
            "config": "../../etc/passwd",
            "as_of": "2020-13-45",
            "n_trial": 3,
        },
        params,
    )
    text = "\n".join(errors)
    assert len(errors) == 7, text
    assert "n_trials = -5: must be a whole number from 1 to 10000" in text
    assert "timeout_minutes = 0: must be a number greater than 0 and at most 1440" in text
    assert 'objective = "profit": must be one of sharpe, return, sortino, calmar' in text
    assert 'data = "/etc/passwd": must be sample:sp500' in text
    assert 'config = "../../etc/passwd": must be the name of a config' in text
    assert 'as_of = "2020-13-45": must be a date YYYY-MM-DD' in text
    assert "n_trial = 3: not a parameter of this DAG" in text
    assert "^" not in text and "[A-Za-z" not in text  # words, not a regex
    good = {"n_trials": 3, "data": "csv:fx/EURUSD.csv", "config": None, "as_of": "2021-09-30"}
    assert conf_errors(good, params) == []


def _context(run_type: str = "scheduled", dag_id: str = "retune_daily", conf: dict | None = None):
    from airflow.sdk.definitions.param import ParamsDict
    from retune_airflow.params import run_params

    params = ParamsDict(run_params(20, 30))
    return {
        "dag": SimpleNamespace(dag_id=dag_id, params=params),
        "dag_run": SimpleNamespace(run_type=run_type, dag_id=dag_id, conf=conf or {}),
        "params": {**params.dump(), **(conf or {})},
    }


def test_a_scheduled_run_reads_the_configured_source_or_skips_with_one_line(monkeypatch, tmp_path):
    from airflow.sdk.exceptions import AirflowSkipException
    from retune_airflow.tasks import is_scheduled, scheduled_data_source

    from pipelines.settings import load_settings

    context = _context()
    assert is_scheduled(context) and not is_scheduled(_context("manual"))
    monkeypatch.delenv("RETUNE_DAILY_DATA", raising=False)
    with pytest.raises(AirflowSkipException) as skipped:
        scheduled_data_source(context, "daily", None)
    line = str(skipped.value)
    assert "\n" not in line and "RETUNE_DAILY_DATA" in line and "data_source" in line

    configs = load_settings().configs_dir
    configs.mkdir(parents=True, exist_ok=True)
    (configs / "spx.yaml").write_text("data_source: csv:spx.csv\n")
    assert scheduled_data_source(context, "daily", "spx") == "csv:spx.csv"
    monkeypatch.setenv("RETUNE_DAILY_DATA", "table:market.spx")
    assert scheduled_data_source(context, "daily", "spx") == "table:market.spx"  # the environment wins
    monkeypatch.setenv("RETUNE_DAILY_FLEET_DATA", "csv:fleet.csv")
    assert scheduled_data_source(_context(dag_id="retune_daily_fleet"), "daily", None) == "csv:fleet.csv"


def test_the_first_task_refuses_bad_parameters_with_every_field_named():
    from airflow.sdk.exceptions import AirflowFailException
    from retune_airflow.tasks import check_trigger_conf

    check_trigger_conf(_context("manual", conf={"n_trials": 3}))
    with pytest.raises(AirflowFailException) as refused:
        check_trigger_conf(_context("manual", conf={"n_trials": 0, "data": "csv:../x.csv"}))
    assert "n_trials = 0" in str(refused.value) and 'data = "csv:../x.csv"' in str(refused.value)


def test_reviewers_become_assigned_users_without_the_user_who_triggered(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException
    from retune_airflow.review import assigned_reviewers

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "alice:admin,bob:op,carol:user,dan:user")
    assert assigned_reviewers((), "alice") is None  # none configured: Airflow lets any user answer
    users = assigned_reviewers(("alice", "bob", "role:user"), "alice")
    assert [u["id"] for u in users or []] == ["bob", "carol", "dan"]
    assert [u["id"] for u in assigned_reviewers(("bob",), None) or []] == ["bob"]  # a scheduled run
    with pytest.raises(AirflowFailException, match="four-eyes"):
        assigned_reviewers(("alice",), "alice")


def test_who_may_not_approve_and_why():
    from retune_airflow.review import approval_refusal

    assigned = [{"id": "bob", "name": "bob"}, {"id": "carol", "name": "carol"}]
    assert approval_refusal("bob", "alice", [], assigned) is None
    assert "four-eyes" in (approval_refusal("alice", "alice", [], None) or "")
    assert "already approved" in (approval_refusal("bob", "alice", ["bob"], assigned) or "")
    assert "not a reviewer" in (approval_refusal("mallory", "alice", [], assigned) or "")
    assert approval_refusal("anyone", "alice", [], None) is None  # no reviewers configured


def test_numbers_for_people():
    from retune_airflow.ui import num, when

    from pipelines.reporting.numbers import for_people

    assert for_people(1.7761692825217155) == 1.776 and for_people(8.326672684688674e-17) == 0
    assert for_people(3) == 3 and for_people(True) is True and for_people("p=0.01") == "p=0.01"
    assert num(8.326672684688674e-17) == "0" and num(1.7761692825217155) == "1.776" and num(None) == ""
    assert when("2026-12-04T17:43:02.123") == "2026-12-04 17:43 UTC"
    assert when(datetime(2026, 12, 4, 18, 0, tzinfo=UTC)) == "2026-12-04 18:00 UTC"


def test_the_run_note_states_the_decision_and_every_failed_check():
    from retune_airflow.listeners import run_summary

    kept = SimpleNamespace(
        model_key="spx",
        run_id="daily__r2",
        report_path="/r/report.html",
        failed_step=None,
        error=None,
        state="success",
        decision="kept: policy off",
        verdict={
            "gate": {
                "checks": [
                    {"name": "deflated_sharpe", "value": 0.41234, "threshold": ">= 0.95", "passed": False},
                    {"name": "min_trades", "value": 9, "threshold": ">= 1", "passed": True},
                ]
            }
        },
    )
    note = run_summary(kept)
    assert "**spx: kept: policy off**" in note and "[report](/retune/reports/daily__r2/)" in note
    assert "deflated_sharpe 0.412 (needs >= 0.95)" in note and "min_trades" not in note
    failed = SimpleNamespace(
        **{**vars(kept), "failed_step": "validate", "error": "missing columns: open\nmore"}
    )
    assert "failed in validate**: missing columns: open" in run_summary(failed)
    proposal = SimpleNamespace(version=3, state="active", approved_by="airflow:bob+carol")
    promoted = SimpleNamespace(**{**vars(kept), "decision": "promoted", "verdict": None})
    assert "(config v3 active, approved by airflow:bob+carol)" in run_summary(promoted, proposal)


def test_the_report_states_the_decision_as_recorded(tmp_path):
    from pipelines.promotion.decision import END, START, record_decision

    report = tmp_path / "report.html"
    report.write_text(
        f"<h2>7. Gate</h2>{START}<p><b>Waiting for approval (policy review)</b></p>{END}</body>"
    )
    at = datetime(2026, 12, 4, 18, 5, tzinfo=UTC)
    assert record_decision(report, "kept: rejected by cli:ops", "cli:ops", "drawdown <too deep>", at)
    text = report.read_text()
    assert "Waiting for approval" not in text and "Decision recorded 2026-12-04 18:05 UTC" in text
    assert "drawdown &lt;too deep&gt;" in text and text.endswith("</body>")
    assert record_decision(report, "promoted", "cli:ops", "again", at) and text.count(START) == 1
    assert not record_decision(tmp_path / "missing.html", "promoted", "x", "y", at)


def test_the_cli_takes_its_identity_from_the_environment(monkeypatch, capsys):
    from pipelines.cli import build_parser

    monkeypatch.setenv("RETUNE_ACTOR", "ops_dana")
    assert build_parser().parse_args(["approve", "daily__r1"]).by == "ops_dana"
    assert build_parser().parse_args(["reject", "daily__r1", "--reason", "x", "--by", "lee"]).by == "lee"
    monkeypatch.setenv("RETUNE_ACTOR", "not a name; rm -rf")
    assert build_parser().parse_args(["rollback", "--to", "1"]).by == "operator"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["approve", "--help"])
    assert "trusts its caller" in capsys.readouterr().out


def test_an_answer_a_failed_review_try_never_processed_is_handed_to_its_retry(tmp_path):
    """Found in CI under load: bob approved, the scheduler failed the paused try as his answer
    re-queued it, and the retry (a new task instance, a new request) asked again: his approval was
    lost and carol's counted alone. The api-server records the answers it accepts; the retry
    processes the one no try did."""
    from retune_airflow.review import APPROVE, REJECT, answer_lost_to_a_retry

    from pipelines.store.migrate import upgrade
    from pipelines.store.repository import Repository

    url = f"sqlite:///{tmp_path / 'retune.db'}"
    upgrade(url)
    ctx = SimpleNamespace(settings=SimpleNamespace(db_url=url), model_key="spx", run_id="daily__manual_1")
    repo = Repository(url)
    try:
        repo.propose("spx", ctx.run_id, {"lr": 0.01}, model_version=None, metrics={}, report_path=None)

        def audit(action: str, actor: str, reason: str) -> None:
            repo.record_attempt("spx", ctx.run_id, action=action, actor=actor, reason=reason)

        assert answer_lost_to_a_retry(ctx) is None  # nobody answered: the retry asks
        audit("answered_approve", "airflow:bob", "checked")
        event = answer_lost_to_a_retry(ctx)
        assert event is not None and event["responded_at"].tzinfo is not None
        assert {k: v for k, v in event.items() if k != "responded_at"} == {
            "chosen_options": [APPROVE],
            "params_input": {"reason": "checked"},
            "responded_by_user": {"id": "bob", "name": "bob"},
        }
        audit("approve_partial", "airflow:bob", "1 of 2")
        assert answer_lost_to_a_retry(ctx) is None  # processed before the try failed
        audit("answered_reject", "airflow:carol", "no")
        assert (answer_lost_to_a_retry(ctx) or {})["chosen_options"] == [REJECT]
    finally:
        repo.close()

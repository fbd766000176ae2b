"""The operator's path, as a new operator walks it: `make airflow`, trigger from the form, the
review with four-eyes, the report opened from the run, every link it has, the decision on the
run page — in headless Chromium (Debian's) against the stack `make airflow` starts, and through
the HITL REST API with real users. One stack and one reviewed DAG run serve every test here.

Users (simple auth manager): alice (Admin) triggers, so she may not approve her own run; bob (Op)
and carol (User) are reviewers; vic is a Viewer. The model key needs two approvals.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urljoin

import pytest
import yaml
from e2e_support import AS_OF, ROOT
from test_review import REVIEWED_CONFIG, planted_bars

from devtools.airflow_stack import RestClient, free_port

pytestmark = pytest.mark.slow

USERS = {"alice": "admin", "bob": "op", "carol": "user", "vic": "viewer"}
CONFIG = {**REVIEWED_CONFIG, "reviewers": ["bob", "role:user", "alice"], "approvals_required": 2}
KEY = CONFIG["model_key"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
]


def password(user: str) -> str:
    return f"{user}-operator-path-pw"


class MakeAirflow:
    """`make airflow` in a session of its own, stopped as a terminal's Ctrl-C stops it."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = int(env["AIRFLOW_PORT"])
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                # -o: the venv the suite runs in is the one `make install` built; never reinstall here
                ["make", "--no-print-directory", "-o", ".venv/bin/retune", "airflow"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # as a terminal starts it: Ctrl-C (SIGINT) not ignored, whatever started pytest
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )

    def client(self, user: str) -> RestClient:
        api = RestClient(self.base)
        api.login(user, password(user))
        return api

    def health(self) -> dict:
        with urllib.request.urlopen(f"{self.base}/api/v2/monitor/health", timeout=5) as response:
            return json.loads(response.read())

    def wait_until_up(
        self, components: tuple[str, ...] = ("metadatabase", "dag_processor"), timeout: float = 240
    ):
        """Until the UI answers and ``components`` report healthy (the scheduler, preloading the
        task libraries, may come up while a test already logs in and fills the trigger form)."""
        started, deadline = time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"make airflow exited:\n{self.output()}")
            with contextlib.suppress(OSError, ValueError):
                health = self.health()
                if all(health[c]["status"] == "healthy" for c in components):
                    return time.monotonic() - started
            time.sleep(1)
        raise TimeoutError(f"make airflow did not come up in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()[-6000:]

    @staticmethod
    def _stats() -> dict[int, list[str]]:
        """pid → the fields of /proc/PID/stat after the command (state, ppid, pgrp, session, ...)."""
        stats = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                stats[int(stat.parent.name)] = stat.read_text().rpartition(")")[2].split()
        return stats

    def sessions(self) -> set[int]:
        """The sessions of `make airflow` and everything it started (standalone runs in its own)."""
        stats, tree, found = self._stats(), {self.process.pid}, True
        while found:
            found = False
            for pid, fields in stats.items():
                if pid not in tree and int(fields[1]) in tree:
                    tree.add(pid)
                    found = True
        return {int(stats[pid][3]) for pid in tree if pid in stats}

    def processes(self, sessions: set[int]) -> list[str]:
        """Live processes (not zombies) left in those sessions."""
        left = []
        for pid, fields in self._stats().items():
            if int(fields[3]) in sessions and fields[0] != "Z":
                with contextlib.suppress(OSError):
                    left.append(f"{pid} {fields[0]} {Path(f'/proc/{pid}/cmdline').read_text()[:80]}")
        return left

    def stop(self, timeout: float = 90) -> list[str]:
        """Ctrl-C, as in a terminal; what is left after ``timeout`` is reported, then killed."""
        sessions = self.sessions()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        deadline = time.monotonic() + 10
        while (left := self.processes(sessions)) and time.monotonic() < deadline:
            time.sleep(0.5)
        for session in sessions:  # whatever is left: the next tests need the machine
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(session, signal.SIGKILL)
        return left


@pytest.fixture(scope="module")
def stack(e2e_env, tmp_path_factory):
    base = tmp_path_factory.mktemp("operator-path")
    home, airflow_home = base / "var", base / "airflow"
    (home / "configs").mkdir(parents=True)
    airflow_home.mkdir()
    (home / "configs" / "reviewed.yaml").write_text(yaml.safe_dump(CONFIG))
    planted_bars().to_csv(Path(e2e_env["RETUNE_DATA_DIR"]) / "planted.csv", index=False)
    passwords = airflow_home / "passwords.json"
    passwords.write_text(json.dumps({user: password(user) for user in USERS}))
    env = {k: v for k, v in e2e_env.items() if not k.startswith("AIRFLOW__") and k != "MAKEFLAGS"}
    env.update(
        RETUNE_HOME=str(home),
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW_PORT=str(free_port()),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{u}:{r}" for u, r in USERS.items()),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),  # other stacks may run beside
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        # retune_weekly keeps its schedule: its scheduled run (beside the manual daily one) has
        # no data source and must skip
        RETUNE_DAILY_SCHEDULE="none",
    )
    airflow = MakeAirflow(env, base / "make-airflow.log")
    try:
        airflow.startup_seconds = airflow.wait_until_up()
        airflow.retune_home = home
        airflow.shots = base / "screenshots"
        airflow.shots.mkdir()
        yield airflow
    finally:
        airflow.stop(timeout=30)


def test_make_airflow_starts_and_the_ui_answers(stack):
    with urllib.request.urlopen(f"{stack.base}/", timeout=30) as page:
        assert page.status == 200 and b"<html" in page.read().lower()
    alice = stack.client("alice")
    assert {d["dag_id"] for d in alice.call("GET", "/api/v2/dags")["dags"]} >= {
        "retune_daily",
        "retune_weekly",
    }
    assert stack.startup_seconds < 240


def test_a_refused_trigger_names_every_bad_field_in_words(stack):
    alice = stack.client("alice")
    bad = {"n_trials": -5, "data": "/etc/passwd", "config": "../../etc/passwd"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        alice.call("POST", "/api/v2/dags/retune_daily/dagRuns", {"logical_date": None, "conf": bad})
    assert refused.value.code == 400
    detail = json.loads(refused.value.read())["detail"]
    assert "n_trials = -5: must be a whole number from 1 to 10000" in detail
    assert 'data = "/etc/passwd": must be sample:sp500' in detail and "no '..'" in detail
    assert 'config = "../../etc/passwd": must be the name of a config' in detail
    assert "^(" not in detail  # no regex


def login(browser, user: str, base: str):
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    page.goto(f"{base}/auth/login?next=/")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password(user))
    page.locator("input[name=password]").press("Enter")
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    return page


def pending_review(api: RestClient, run_id: str, timeout: float = 600) -> dict:
    path = f"/api/v2/dags/retune_daily/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(urllib.error.HTTPError):
            detail = api.call("GET", path)
            ti = api.call("GET", f"/api/v2/dags/retune_daily/dagRuns/{run_id}/taskInstances/review")
            if not detail["response_received"] and ti["state"] == "awaiting_input":
                return detail
        run = api.call("GET", f"/api/v2/dags/retune_daily/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            tasks = api.call("GET", f"/api/v2/dags/retune_daily/dagRuns/{run_id}/taskInstances")
            states = {t["task_id"]: t["state"] for t in tasks["task_instances"]}
            raise AssertionError(
                f"the run {run_id} ended ({run['state']}) without asking for a review: "
                f"tasks {states}, note {run.get('note')!r}"
            )
        time.sleep(2)
    raise TimeoutError("no review request")


def answer(api: RestClient, run_id: str, option: str, reason: str) -> int:
    path = f"/api/v2/dags/retune_daily/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"
    try:
        api.call("PATCH", path, {"chosen_options": [option], "params_input": {"reason": reason}})
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def test_trigger_review_with_four_eyes_open_the_report_follow_its_links_see_the_decision(stack):
    from playwright.sync_api import sync_playwright

    from pipelines.context import safe_run_id

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed for this test: `make browser` (apt-get install chromium)")
    alice_api, shots = stack.client("alice"), stack.shots
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)

        # 1. alice triggers from the form, with Param values typed into it
        page = login(browser, "alice", stack.base)
        page.goto(f"{stack.base}/dags/retune_daily")
        page.get_by_role("button", name="Trigger").click()
        form = page.get_by_role("dialog")
        form.locator("[name=element_n_trials]").fill("3")
        form.locator("[name=element_data]").fill("csv:planted.csv")
        form.locator("[name=element_config]").fill("reviewed")
        form.locator("[name=element_as_of]").fill(AS_OF)
        page.screenshot(path=str(shots / "1-trigger-form.png"))
        form.get_by_role("button", name="Trigger").click()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runs = alice_api.call("GET", "/api/v2/dags/retune_daily/dagRuns?run_type=manual")["dag_runs"]
            if runs:
                break
            time.sleep(1)
        (run,) = runs
        run_id = run["dag_run_id"]
        assert run["triggering_user_name"] == "alice" and run["conf"]["n_trials"] == 3

        # 2. the review: who may approve, four-eyes, two distinct approvals
        request = pending_review(alice_api, run_id)
        assert {u["id"] for u in request["assigned_users"]} == {"bob", "carol"}  # not alice, who triggered
        assert "May approve: bob, carol" in request["body"] and "four-eyes" in request["body"]
        assert answer(alice_api, run_id, "Approve", "my own run looks fine") == 403
        assert answer(stack.client("vic"), run_id, "Approve", "a viewer") == 403
        # bob's answer meets a failed try: under load Airflow's scheduler has failed the paused
        # try as an answer re-queued it (CI). Made certain here: with the DAG paused his answer
        # re-queues nothing, and the cleared task starts a new try (a new task instance, a new
        # request) once it is unpaused. The new try acts on his recorded answer.
        dag = "/api/v2/dags/retune_daily"
        alice_api.call("PATCH", dag, {"is_paused": True})
        assert answer(stack.client("bob"), run_id, "Approve", "folds and holdout checked") == 200
        clear = {"dry_run": False, "task_ids": ["review"], "dag_run_id": run_id, "only_failed": False}
        alice_api.call("POST", f"{dag}/clearTaskInstances", {**clear, "reset_dag_runs": False})
        alice_api.call("PATCH", dag, {"is_paused": False})
        pending_review(alice_api, run_id, timeout=120)  # asked again: one approval of two (bob's)
        review_ti = alice_api.call("GET", f"{dag}/dagRuns/{run_id}/taskInstances/review")
        assert review_ti["try_number"] == 2
        second_try = alice_api.call("GET", f"{dag}/dagRuns/{run_id}/taskInstances/review/logs/2")
        assert "processing bob's answer" in json.dumps(second_try)
        carol = login(browser, "carol", stack.base)
        carol.goto(f"{stack.base}/dags/retune_daily/runs/{run_id}/tasks/review/required_actions")
        # long enough that Airflow gzips the answer's response to the browser: the audit reads it
        carol_reason = "second pair of eyes: " + "folds, holdout and report checked; " * 27
        carol.locator("[name=element_reason]").fill(carol_reason)
        carol.screenshot(path=str(shots / "2-required-action.png"), full_page=True)
        carol.get_by_role("button", name="Approve").click()
        deadline = time.monotonic() + 180
        while alice_api.call("GET", f"/api/v2/dags/retune_daily/dagRuns/{run_id}")["state"] != "success":
            assert time.monotonic() < deadline, stack.output()
            time.sleep(2)

        # 3. the decision on Airflow's run page (the run note)
        carol.goto(f"{stack.base}/dags/retune_daily/runs/{run_id}")
        note = carol.get_by_text(f"{KEY}: promoted")
        note.wait_for(timeout=30_000)
        carol.screenshot(path=str(shots / "3-run-page.png"))
        note_text = alice_api.call("GET", f"/api/v2/dags/retune_daily/dagRuns/{run_id}")["note"]
        assert "config v1 active, approved by airflow:bob+carol" in note_text

        # 4. the report, from the task's extra link
        carol.goto(f"{stack.base}/dags/retune_daily/runs/{run_id}/tasks/report")
        carol.get_by_text("Details", exact=True).click()
        carol.get_by_role("link", name="Retune report").click()
        carol.wait_for_url("**/retune/reports/**", timeout=30_000)
        assert carol.url.endswith(f"/retune/reports/{safe_run_id('daily', run_id)}/")
        carol.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
        decision = carol.locator("#decision").inner_text()
        assert "Decision recorded" in decision and "promoted (v1 is the active config)" in decision
        assert "airflow:bob+carol" in decision and "Waiting for approval" not in carol.content()
        carol.screenshot(path=str(shots / "4-report.png"), full_page=True)

        # 5. every link of the report answers (no 404), each file served from the run's folder
        hrefs = carol.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        linked = [h for h in hrefs if not h.startswith(("#", "http://", "https://", "mailto:"))]
        assert {"trials.csv", "best_params.json", "best_config.json", "best_equity.csv"} <= set(linked)
        assert any(h.startswith("plots/") for h in linked)
        for href in linked:
            response = carol.request.get(urljoin(carol.url, href))
            assert response.status == 200, f"{href}: {response.status}"
        carol.goto(urljoin(carol.url, next(h for h in linked if h.startswith("plots/"))))
        carol.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)  # the plot draws

        # 6. the Retune page: the proposal's state now, a link back to the Airflow run
        carol.goto(f"{stack.base}/retune/")
        retune = carol.content()
        carol.screenshot(path=str(shots / "5-retune-page.png"), full_page=True)
        assert "v1 active" in retune and "UTC" in retune
        back = carol.get_by_role("link", name="Airflow run").first.get_attribute("href")
        assert back == f"/dags/retune_daily/runs/{quote(run_id, safe='')}"
        browser.close()

    # 7. each attempt in the audit, with who tried
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{stack.retune_home / 'retune.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT action, actor, reason FROM retune_audit WHERE model_key = :k ORDER BY at, id"),
            {"k": KEY},
        ).all()
    engine.dispose()
    assert ("answered_approve", "airflow:carol", carol_reason) in [tuple(r) for r in rows]
    audit = [(action, actor) for action, actor, _ in rows]
    assert audit == [
        ("propose", "retune"),
        ("refused", "airflow:alice"),
        ("refused", "airflow:vic"),
        ("answered_approve", "airflow:bob"),  # recorded by the api-server as Airflow accepts it
        ("approve_partial", "airflow:bob"),  # what the review task made of it
        ("answered_approve", "airflow:carol"),
        ("approve", "airflow:bob+carol"),
    ]


def test_a_scheduled_run_without_a_data_source_skips_with_one_line(stack):
    alice = stack.client("alice")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = alice.call("GET", "/api/v2/dags/retune_weekly/dagRuns?run_type=scheduled")["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            break
        time.sleep(2)
    else:
        pytest.fail(f"no scheduled run finished:\n{stack.output()}")
    run = runs[0]
    states = {
        t["task_id"]: t["state"]
        for t in alice.call("GET", f"/api/v2/dags/retune_weekly/dagRuns/{run['dag_run_id']}/taskInstances")[
            "task_instances"
        ]
    }
    assert run["state"] == "success" and states["validate"] == "skipped", states
    assert set(states.values()) == {"skipped"}
    assert "no data source for scheduled runs" in run["note"] and "RETUNE_WEEKLY_DATA" in run["note"]


def test_stopping_make_airflow_leaves_no_process_behind(stack):
    every = ("metadatabase", "scheduler", "dag_processor", "triggerer")
    stack.wait_until_up(every, timeout=30)  # every component ran (and still does), then Ctrl-C
    left = stack.stop()
    assert left == [], "\n".join(left)
    assert stack.process.returncode is not None

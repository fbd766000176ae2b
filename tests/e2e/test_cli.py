"""`retune` as a user runs it: errors without tracebacks, a full run, status, and predict."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from e2e_support import AS_OF, BIN, random_walk_bars, run

RETUNE = str(BIN / "retune")


def private_home(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``env`` with a copy of its RETUNE_HOME, for a test that changes the store: the module's
    shared homes keep config v1 active and cli-test as the latest run, whatever runs first."""
    home = tmp_path / "var"
    shutil.copytree(env["RETUNE_HOME"], home, symlinks=True)
    return dict(env, RETUNE_HOME=str(home))


@pytest.fixture(scope="module")
def cli_env(e2e_env, tmp_path_factory):
    env = dict(e2e_env, RETUNE_HOME=str(tmp_path_factory.mktemp("cli") / "var"))
    return env


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-trials", "-5"], "n_trials"),
        (["--n-trials", "100000000"], "n_trials"),
        (["--data", "csv:missing.csv"], "file not found"),
        (["--data", "sample:bitcoin"], "unknown sample"),
        (["--data", "table:x; drop table y"], "table name"),
        (["--as-of", "not-a-date"], "as_of"),
    ],
)
def test_bad_run_flags_are_refused_cleanly(cli_env, args, message):
    out = run([RETUNE, "run", *args], cli_env)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (Path(cli_env["RETUNE_HOME"]) / "config" / "production.yaml").exists()


def test_help_lists_subcommands(cli_env):
    out = run([RETUNE, "--help"], cli_env)
    for command in ("run", "status", "history", "predict", "db"):
        assert command in out.stdout


def test_predict_without_active_model_says_so(cli_env):
    out = run([RETUNE, "predict", "--data", "csv:good.csv"], cli_env)
    assert out.returncode == 2 and "no active model" in out.stderr


@pytest.fixture(scope="module")
def promoted_env(e2e_env, tmp_path_factory):
    """A home of its own after one `retune run`, its proposal promoted (by the gate or as an
    operator would): the store holds config version 1 and model version 1 of key "good"."""
    cli_env = dict(e2e_env, RETUNE_HOME=str(tmp_path_factory.mktemp("promoted") / "var"))
    args = ["--n-trials", "2", "--data", "csv:good.csv", "--as-of", AS_OF, "--run-id", "cli-test"]
    out = run([RETUNE, "run", *args], cli_env)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout)
    if result["decision"] != "promoted":
        # The gate kept the current (empty) config: promote as an operator would.
        from pipelines.settings import Settings
        from pipelines.store.production_file import sync_production_file
        from pipelines.store.repository import Repository

        home = Path(cli_env["RETUNE_HOME"])
        repo = Repository(f"sqlite:///{home / 'retune.db'}")
        best = json.loads((home / "runs" / "daily__cli-test" / "search.json").read_text())
        repo.promote(
            "good",
            "daily__cli-test",
            best["best_params"],
            actor="test",
            reason="test",
            model_version=1,
            metrics={},
            report_path=result["report"],
        )
        sync_production_file(repo, Settings(home, "", "").production_config)
        repo.close()
    return cli_env, out, result


def test_run_status_and_predict(promoted_env):
    cli_env, out, result = promoted_env
    # our progress (a line per step and per trial), not ~220 lines of library internals
    assert "[daily__cli-test] search: start" in out.stderr and re.search(r"trial 1 [A-Z]+ ", out.stderr)
    assert "great_expectations" not in out.stderr and len(out.stderr.splitlines()) < 60, out.stderr
    assert result["run_id"] == "daily__cli-test" and Path(result["report"]).is_file()
    # no config names a model key: the run is the instrument's (good.csv → "good"), and says so
    assert "Retune report — good (daily)" in Path(result["report"]).read_text()
    latest = json.loads(run([RETUNE, "status", "--json"], cli_env).stdout)["runs"][0]
    assert latest["run_id"] == "daily__cli-test" and latest["n_trials"] == 2
    assert latest["decision"] == result["decision"]

    status = json.loads(run([RETUNE, "status", "--json"], cli_env).stdout)
    assert status["active"]["version"] == 1 and status["active"]["model_version"] == 1
    assert status["active"]["model_key"] == "good"
    assert status["versions"][0]["source_run"] == "daily__cli-test"

    predicted = run([RETUNE, "predict", "--data", "csv:good.csv"], cli_env)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    signal = json.loads(predicted.stdout)
    assert signal["bar"].startswith(AS_OF) and signal["position"] in (-1, 0, 1)
    assert signal["model_version"] == 1 and signal["model_key"] == "good"


@pytest.fixture(scope="module")
def hostile_env(promoted_env, tmp_path_factory):
    """promoted_env's store, a data directory holding a symlink out of it and a file that is not bars."""
    base = tmp_path_factory.mktemp("hostile")
    data = base / "data"
    data.mkdir()
    secret = base / "secret.csv"
    secret.write_text("timestamp,open,high,low,close,volume\nroot:SECRET-HASH:19000:0:99999:7:::\n")
    (data / "escape.csv").symlink_to(secret)
    (data / "passwd.csv").write_text("root:x:0:0:SECRET-GECOS:/root:/bin/bash\n")
    return dict(promoted_env[0], RETUNE_DATA_DIR=str(data)), data, secret


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--data", "csv:../../../../etc/passwd"], "'..' is not allowed"),
        (["run", "--data", "csv:/etc/shadow"], "outside the data directory"),
        (["run", "--data", "parquet:{secret}"], "outside the data directory"),
        (["run", "--data", "csv:escape.csv"], "outside the data directory"),  # symlink out
        (["predict", "--data", "csv:/etc/shadow"], "outside the data directory"),
        (["predict", "--data", "csv:escape.csv"], "outside the data directory"),
        (["run", "--run-id", "../../etc/cron.d/x"], "run id '../../etc/cron.d/x' refused"),
        (["run", "--run-id", "x; rm -rf /"], "run id 'x; rm -rf /' refused"),
        (["run", "--run-id", ""], "run id '' refused"),
    ],
)
def test_hostile_data_and_run_ids_are_refused_and_change_nothing(hostile_env, args, message):
    """The store has a run and an active model: a refusal must leave both."""
    env, data, secret = hostile_env
    args = [a.replace("{secret}", str(secret)) for a in args]
    before = run([RETUNE, "status", "--json"], env).stdout
    out = run([RETUNE, *args], env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    if "--data" in args:
        assert f"data directory {data}" in out.stderr  # names where the file must be
    assert "SECRET" not in out.stdout + out.stderr and "root:" not in out.stdout + out.stderr
    assert run([RETUNE, "status", "--json"], env).stdout == before


def test_a_file_that_is_not_bars_fails_the_run_without_quoting_it(hostile_env, tmp_path):
    env = private_home(hostile_env[0], tmp_path)  # a failed run becomes the latest
    out = run([RETUNE, "run", "--data", "csv:passwd.csv", "--run-id", "not-bars"], env)
    assert out.returncode != 0
    assert "none of its 1 columns is a timestamp or date column" in out.stderr
    status = run([RETUNE, "status", "--json"], env).stdout
    failed = json.loads(status)["runs"][0]
    assert failed["run_id"] == "daily__not-bars" and failed["state"] == "failed"
    assert "none of its 1 columns" in failed["error"]
    for text in (out.stdout, out.stderr, status):
        assert "SECRET" not in text and "root:" not in text


def test_a_ten_fold_price_jump_stops_the_run_at_validation(hostile_env, tmp_path):
    """It used to pass 25/25 checks, then train and score on the jump."""
    env, data, _ = hostile_env
    env = private_home(env, tmp_path)  # a failed run becomes the latest
    bars = random_walk_bars()
    bars.loc[500:, ["open", "high", "low", "close"]] *= 10
    bars.to_csv(data / "jump.csv", index=False)
    out = run([RETUNE, "run", "--data", "csv:jump.csv", "--as-of", AS_OF, "--run-id", "jump"], env)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "close jumps more than ×2.72 (or ÷) in one bar" in out.stderr
    assert "e.g. row 500 (" in out.stderr and "column=close_log_return" in out.stderr
    failed = json.loads(run([RETUNE, "status", "--json"], env).stdout)["runs"][0]
    assert (failed["run_id"], failed["state"], failed["failed_step"]) == ("daily__jump", "failed", "validate")
    assert not (Path(env["RETUNE_HOME"]) / "runs" / "daily__jump" / "bars.parquet").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["approve", "run'; DROP TABLE retune_runs;--"], "run id"),
        (["reject", "daily__cli-test"], "--reason"),
        (["reject", "daily__cli-test", "--reason", ""], "reason"),
        (["rollback", "--to", "1", "--model-key", "spx$(rm -rf /)"], "model key"),
        (["approve", "daily__nope"], "unknown run 'daily__nope'"),
        (["rollback", "--to", "99"], "no config version 99"),
        (["diff", "1", "42"], "no config version 42"),
    ],
)
def test_review_commands_refuse_bad_input_and_change_nothing(promoted_env, args, message):
    cli_env = promoted_env[0]
    before = run([RETUNE, "status", "--json"], cli_env).stdout
    out = run([RETUNE, *args], cli_env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert run([RETUNE, "status", "--json"], cli_env).stdout == before


def test_rollback_and_diff_from_the_cli(promoted_env, tmp_path):
    """After the run's v1, promote a v2 by hand; diff them; roll back to v1."""
    cli_env = private_home(promoted_env[0], tmp_path)  # adds a version 2 and rolls it back
    from pipelines.store.repository import Repository

    home = Path(cli_env["RETUNE_HOME"])
    production = home / "config" / "production.yaml"
    v1_bytes = production.read_bytes()
    repo = Repository(f"sqlite:///{home / 'retune.db'}")
    v1 = repo.get_config_version("good", 1)
    repo.promote(
        "good",
        "manual-v2",
        {**v1.params, "lr": v1.params["lr"] * 2},
        actor="test",
        reason="a second version",
        model_version=1,
        metrics={},
        report_path=None,
    )
    repo.close()

    diff = run([RETUNE, "diff", "1", "2"], cli_env)
    assert diff.returncode == 0, diff.stderr
    assert list(json.loads(diff.stdout)) == ["lr"]

    back = run([RETUNE, "rollback", "--to", "1", "--reason", "v2 was a test", "--by", "ops_bob"], cli_env)
    assert back.returncode == 0, back.stderr
    assert production.read_bytes() == v1_bytes
    status = json.loads(run([RETUNE, "status", "--json"], cli_env).stdout)
    assert status["active"]["version"] == 1 and status["active"]["approved_by"] == "cli:ops_bob"
    assert [v["state"] for v in status["versions"] if v["model_key"] == "good"][:2] == [
        "rolled_back",
        "active",
    ]

"""``retune``: run the chain without a scheduler, and inspect or steer the config store."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from pipelines.calendar import DAG_NAMES
from pipelines.config import ConfigError
from pipelines.logs import configure_cli_logging
from pipelines.review_cli import add_review_commands
from pipelines.run_params import RunParams
from pipelines.settings import CONFIG_NAME, load_settings
from pipelines.status import status_payload


def _run(args: argparse.Namespace) -> int:
    from pipelines.context import RunContext, check_run_id
    from pipelines.steps import run_all

    params = {
        "n_trials": args.n_trials,
        "timeout_minutes": args.timeout_minutes,
        "objective": args.objective,
        "mode": args.mode,
        "model_family": args.model_family,
        "data": args.data,
        "as_of": args.as_of,
        "workers": args.workers,
    }
    config_path = None
    if args.config:  # a bare name is a config under RETUNE_HOME/configs; anything else a file
        if CONFIG_NAME.match(args.config):
            params["config"] = args.config
        else:
            config_path = Path(args.config)
    # checked before anything is read or written; a bad id is refused, not silently rewritten
    run_id = (
        check_run_id(args.run_id) if args.run_id is not None else f"cli__{datetime.now(UTC):%Y%m%dT%H%M%S}"
    )
    ctx = RunContext.create(args.dag, run_id, params, config_path=config_path)
    results = run_all(ctx)
    print(
        json.dumps(
            {"run_id": ctx.run_id, **results["promote"], "report": results["report"]["report"]},
            indent=2,
            default=str,
        )
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    payload = status_payload(args.limit)
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
        return 0
    active = payload["active"]
    print(f"production config: {payload['production_config_status']}")
    print(f"active: {json.dumps(active, default=str) if active else 'none yet'}")
    for run in payload["runs"]:
        print(
            f"{run['started_at'][:19]}  {run['state']:8} {run['run_id']}  best={run['best_value']} "
            f"trials={run['n_trials']} decision={run['decision'] or run['failed_step'] or '-'}"
        )
    return 0


def _history(args: argparse.Namespace) -> int:
    payload = status_payload(args.limit)
    for v in payload["versions"]:
        when = (v["created_at"] or "")[:19]
        print(f"v{v['version']:<4} {v['state']:11} {when}  {v['model_key']}  from {v['source_run']}")
    if not payload["versions"]:
        print("no config versions yet")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pipelines.predictor import LivePredictor

    predictor = LivePredictor.from_production(load_settings(), args.model_key)
    print(json.dumps(predictor.predict_source(args.data, args.as_of), indent=2, default=str))
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from pipelines.store.migrate import upgrade

    settings = load_settings()
    upgrade(settings.db_url)
    print(f"database at revision head: {_redact(settings.db_url)}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from pipelines.search.reproduce import reproduce

    result = reproduce(load_settings(), args.run_id)
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["matches"] else 1


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _choices(annotation: Any) -> list[Any]:
    """The values of a ``Literal`` (or an optional one)."""
    return [
        value for arg in get_args(annotation) for value in (get_args(arg) or [arg]) if value is not type(None)
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retune",
        description="Re-tune a deployed trading model: validate, narrow, search, "
        "fine-tune, report, promote. State lives in RETUNE_HOME (default ./var) and RETUNE_DB_URL.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="also show library logs (-v: their INFO and our DEBUG; -vv: DEBUG for everything)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole chain in this process (same steps as the DAG)")
    run.add_argument("--dag", choices=list(DAG_NAMES), default="daily")
    fields = RunParams.model_fields
    run.add_argument(
        "--data",
        default=fields["data"].default,
        help="sample:sp500|nasdaq|goog, csv:PATH, parquet:PATH or table:NAME",
    )
    run.add_argument("--n-trials", type=int, default=fields["n_trials"].default)
    run.add_argument("--timeout-minutes", type=float, default=fields["timeout_minutes"].default)
    for name in ("objective", "mode", "model_family"):  # choices and defaults: RunParams' own
        annotation = fields[name].annotation
        choices = [c for arg in get_args(annotation) for c in (get_args(arg) or [arg]) if c is not type(None)]
        run.add_argument(
            f"--{name.replace('_', '-')}",
            choices=choices or get_args(annotation),
            default=fields[name].default,
        )
    run.add_argument(
        "--as-of",
        help="use bars up to this date (YYYY-MM-DD, the whole day) or time (2024-03-01T14:00, "
        "naive = UTC); default now",
    )
    run.add_argument(
        "--config", help="config file (JSON/YAML, seed search-space format), or a name in RETUNE_HOME/configs"
    )
    run.add_argument(
        "--workers",
        type=int,
        default=fields["workers"].default,
        help="search worker processes (1-16; >1 needs a PostgreSQL store)",
    )
    run.add_argument("--run-id", help="resume or name a run (default: cli__<timestamp>)")
    run.set_defaults(func=_run)

    status = sub.add_parser("status", help="active config, versions and recent runs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--limit", type=int, default=20)
    status.set_defaults(func=_status)

    history = sub.add_parser("history", help="config versions, newest first")
    history.add_argument("--limit", type=int, default=50)
    history.set_defaults(func=_history)

    predict = sub.add_parser("predict", help="the active model's signal for the newest bar")
    predict.add_argument("--model-key", default=None, help="default: the only active model")
    predict.add_argument("--data", default="sample:sp500")
    predict.add_argument("--as-of", default=None)
    predict.set_defaults(func=_predict)

    add_review_commands(sub)

    again = sub.add_parser("reproduce", help="re-run a run's winning trial from its manifest; does it match?")
    again.add_argument("run_id", help="the run id (as in status --json)")
    again.set_defaults(func=_reproduce)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations in sql/").set_defaults(func=_db_upgrade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_cli_logging(args.verbose)  # our progress; library internals only with -v
    from sqlalchemy.exc import OperationalError

    try:
        return int(args.func(args))
    except (ConfigError, ValueError, FileNotFoundError, LookupError) as exc:
        print(f"retune: error: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:  # the database is down, locked or unreachable
        print(f"retune: error: database unavailable: {str(exc.orig).strip()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

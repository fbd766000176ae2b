"""``retune approve | reject | rollback | diff``: the operations side of promotions.

Arguments are checked before anything is read or written: run ids, model keys and names must
look like what Retune itself produces, so a value carrying SQL or shell metacharacters is
refused with a message, not passed along.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
from collections.abc import Callable
from typing import Any

from pipelines.settings import load_settings
from pipelines.terms import MODEL_KEY_PATTERN

RUN_ID = re.compile(r"^[A-Za-z0-9_.:+-]{1,200}$")
MODEL_KEY = re.compile(MODEL_KEY_PATTERN)
ACTOR = re.compile(r"^[A-Za-z0-9_.@:+-]{1,100}$")


def checked(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise argparse.ArgumentTypeError(f"{what} {value!r}: only letters, digits and _.:+-@ are allowed")
        return value

    return check


def _user() -> str:
    """Who decides, for the audit: ``RETUNE_ACTOR`` when the environment sets it (e.g. a
    bastion host or CI job that knows the operator), else the OS user; a container may have none."""
    name = os.environ.get("RETUNE_ACTOR", "").strip()
    if name:
        return name if ACTOR.match(name) else "operator"
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        return "operator"
    return name if ACTOR.match(name) else "operator"


TRUST = (
    "The CLI is an operator's tool that trusts its caller: whoever can run it against the store can "
    "write the store, so it records who they say they are (--by, else $RETUNE_ACTOR, else the OS user) "
    "as cli:NAME in the audit. Reviewers, four-eyes and approvals_required are enforced on the Airflow "
    "review task, not here."
)


def reason(value: str) -> str:
    if not value.strip() or len(value) > 1000:
        raise argparse.ArgumentTypeError("reason: 1 to 1000 characters")
    return value


def _repo():
    from pipelines.store.migrate import upgrade
    from pipelines.store.repository import Repository

    settings = load_settings()
    upgrade(settings.db_url)
    return settings, Repository(settings.db_url)


def _model_key_of_run(repo, run_id: str) -> str:
    run = repo.get_run(run_id)
    if run is None:
        raise LookupError(f"unknown run {run_id!r} (see `retune status`)")
    return run.model_key


def _model_key(repo, given: str | None) -> str:
    keys = sorted({v.model_key for v in repo.list_config_versions()})
    if given is not None:
        if given not in keys:
            raise LookupError(f"unknown model key {given!r} (known: {', '.join(keys) or 'none yet'})")
        return given
    if len(keys) != 1:
        raise LookupError(f"pass --model-key: {', '.join(keys) if keys else 'no config versions yet'}")
    return keys[0]


def _answer(args: argparse.Namespace, approve: bool) -> int:
    from pipelines.promotion.service import review

    settings, repo = _repo()
    try:
        key = _model_key_of_run(repo, args.run)
        version = review(
            settings, repo, key, args.run, approve=approve, actor=f"cli:{args.by}", reason=args.reason
        )
        print(f"{key} v{version.version}: {version.state} (production config: {settings.production_config})")
    finally:
        repo.close()
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from pipelines.promotion.service import rollback

    settings, repo = _repo()
    try:
        key = _model_key(repo, args.model_key)
        version = rollback(settings, repo, key, args.to, actor=f"cli:{args.by}", reason=args.reason)
        print(f"{key} v{version.version} is active again (production config: {settings.production_config})")
    finally:
        repo.close()
    return 0


def _diff(args: argparse.Namespace) -> int:
    _, repo = _repo()
    try:
        key = _model_key(repo, args.model_key)
        versions = {}
        for number in (args.a, args.b):
            version = repo.get_config_version(key, number)
            if version is None:
                raise LookupError(f"{key} has no config version {number}")
            versions[number] = version
        print(
            json.dumps(params_diff(versions[args.a].params, versions[args.b].params), indent=2, default=str)
        )
    finally:
        repo.close()
    return 0


def params_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{param: {"from": a, "to": b}}`` for every param whose value differs."""
    return {k: {"from": a.get(k), "to": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def add_review_commands(sub: Any) -> None:
    run_id = checked(RUN_ID, "run id")
    by = {
        "type": checked(ACTOR, "name"),
        "default": _user(),
        "help": "who decides, for the audit (default: $RETUNE_ACTOR, else the OS user; not verified)",
    }

    approve = sub.add_parser("approve", help="activate a run's proposed config", description=TRUST)
    approve.add_argument("run", type=run_id, help="run id, as in `retune status`")
    approve.add_argument("--reason", type=reason, default="approved")
    approve.add_argument("--by", **by)
    approve.set_defaults(func=lambda a: _answer(a, approve=True))

    reject = sub.add_parser(
        "reject", help="refuse a run's proposed config (nothing changes)", description=TRUST
    )
    reject.add_argument("run", type=run_id)
    reject.add_argument("--reason", type=reason, required=True)
    reject.add_argument("--by", **by)
    reject.set_defaults(func=lambda a: _answer(a, approve=False))

    back = sub.add_parser("rollback", help="make an earlier config version active again", description=TRUST)
    back.add_argument("--to", type=int, required=True, metavar="VERSION")
    back.add_argument("--model-key", type=checked(MODEL_KEY, "model key"))
    back.add_argument("--reason", type=reason, default="rollback")
    back.add_argument("--by", **by)
    back.set_defaults(func=_rollback)

    diff = sub.add_parser("diff", help="params that differ between two config versions")
    diff.add_argument("a", type=int)
    diff.add_argument("b", type=int)
    diff.add_argument("--model-key", type=checked(MODEL_KEY, "model key"))
    diff.set_defaults(func=_diff)

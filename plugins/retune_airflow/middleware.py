"""Two api-server middlewares on Retune DAGs; neither changes what Airflow decides.

* A refused trigger (HTTP 400) says, in words, every bad field, its value and the rule — Airflow's
  own message names the first bad Param only, with its JSON schema and regex.
* Refused review answers go into Retune's audit, with who tried.

Airflow refuses an answer to a review task from a user who is not among its ``assigned_users``
(the model key's reviewers, less the user who triggered the run) or whose role may not answer
at all (a Viewer) with HTTP 403, before any Retune code runs. This api-server middleware sees
those responses on Retune DAGs' review tasks and records them in our audit (action ``refused``).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import unquote

log = logging.getLogger(__name__)

TRIGGER_PATH = re.compile(r"/api/v2/dags/(?P<dag_id>retune_[A-Za-z0-9_]+)/dagRuns$")
HITL_PATH = re.compile(
    r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<run_id>[^/]+)/taskInstances/(?P<task_id>[^/]+)"
    r"/(?P<map_index>-?\d+)/hitlDetails$"
)


class RefusedReviewAuditMiddleware:
    """Pure ASGI: watches the status of PATCH …/hitlDetails on ``retune_*`` review tasks."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        match = HITL_PATH.search(scope.get("path", "")) if scope.get("type") == "http" else None
        if match is None or scope.get("method") != "PATCH" or not match["dag_id"].startswith("retune_"):
            await self.app(scope, receive, send)
            return
        status: dict[str, int] = {}

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status.get("code") == 403 and match["task_id"].rpartition(".")[2] == "review":
            try:
                who = await _caller(scope)
                # on the event loop, briefly: in a worker thread (anyio.to_thread) the store's
                # write never finished under the api-server (the refusal went unrecorded)
                _record_refusal(unquote(match["dag_id"]), unquote(match["run_id"]), who)
            except Exception:  # the audit must never break the API
                log.exception("could not audit a refused review answer")


async def _caller(scope: dict) -> str:
    """The user behind the request's token (header or UI cookie), as Airflow resolved it."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import get_auth_manager
    from starlette.requests import Request

    request = Request(scope)
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        return "anonymous"
    try:
        user = await get_auth_manager().get_user_from_token(token)
    except Exception:
        return "invalid token"
    return str(user.get_name())


def _record_refusal(dag_id: str, dag_run_id: str, who: str) -> None:
    from pipelines.settings import load_settings
    from pipelines.store.repository import Repository
    from retune_airflow.links import runs_of
    from retune_airflow.review import AIRFLOW_ACTOR

    repo = Repository(load_settings().db_url)
    try:
        pending = {(v.model_key, v.source_run) for v in repo.list_config_versions() if v.state == "pending"}
        for run in runs_of(repo, dag_id, dag_run_id):
            if (run.model_key, run.run_id) in pending:
                repo.record_attempt(
                    run.model_key,
                    run.run_id,
                    action="refused",
                    actor=f"{AIRFLOW_ACTOR}{who}",
                    reason="Airflow refused the answer: not an assigned reviewer of this run "
                    "(or the user who triggered it), or a role that may not answer",
                )
    finally:
        repo.close()


class TriggerErrorsMiddleware:
    """Pure ASGI: when Airflow refuses to trigger a ``retune_*`` DAG (400), answer with every bad
    field of the conf in words instead; any other response passes through unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        match = TRIGGER_PATH.search(scope.get("path", "")) if scope.get("type") == "http" else None
        if match is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:  # the body, read once and replayed to Airflow
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        held: dict[str, Any] = {}

        async def rewrite(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                held["start"] = message
                return
            if "start" in held and message["type"] == "http.response.body":
                held.setdefault("body", []).append(message.get("body", b""))
                if message.get("more_body"):
                    return
                original = b"".join(held["body"])
                words = _trigger_errors(match["dag_id"], body)
                new_body = json.dumps({"detail": words}).encode() if words else original
                headers = [(k, v) for k, v in held["start"]["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(new_body)).encode()))
                await send({**held["start"], "headers": headers})
                await send({"type": "http.response.body", "body": new_body, "more_body": False})
                return
            await send(message)

        await self.app(scope, replay, rewrite)


def _trigger_errors(dag_id: str, body: bytes) -> str | None:
    """``bad run parameters: n_trials = -5: must be a whole number from 1 to 10000; ...``"""
    from retune_airflow.params import conf_errors, fleet_params, run_params

    try:
        conf = (json.loads(body or b"{}") or {}).get("conf") or {}
    except (ValueError, AttributeError):
        return None
    if not isinstance(conf, dict):
        return None
    spec = {**run_params(1, 1), **(fleet_params([]) if dag_id.endswith("_fleet") else {})}
    errors = conf_errors(conf, spec)
    return ("bad run parameters: " + "; ".join(errors)) if errors else None

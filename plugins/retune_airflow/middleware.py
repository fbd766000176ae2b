"""Two api-server middlewares on Retune DAGs; neither changes what Airflow decides.

* A refused trigger (HTTP 400) says, in words, every bad field, its value and the rule — Airflow's
  own message names the first bad Param only, with its JSON schema and regex.
* Every answer to a review task goes into Retune's audit, with who gave it: refused or accepted.

Airflow refuses an answer to a review task from a user who is not among its ``assigned_users``
(the model key's reviewers, less the user who triggered the run) or whose role may not answer
at all (a Viewer) with HTTP 403, before any Retune code runs; those go into our audit as
``refused``. An answer Airflow accepts (200) goes in as ``answered_approve`` / ``answered_reject``
with its reason: the review task processes it when it resumes, and when Airflow fails the paused
try instead (a scheduler race, see review_tail), the retry takes the answer from here — a task
cannot read the failed try's answer from Airflow.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

log = logging.getLogger(__name__)

TRIGGER_PATH = re.compile(r"/api/v2/dags/(?P<dag_id>retune_[A-Za-z0-9_]+)/dagRuns$")
HITL_PATH = re.compile(
    r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<run_id>[^/]+)/taskInstances/(?P<task_id>[^/]+)"
    r"/(?P<map_index>-?\d+)/hitlDetails$"
)
REFUSED_BY_AIRFLOW = (
    "Airflow refused the answer: not an assigned reviewer of this run "
    "(or the user who triggered it), or a role that may not answer"
)


class ReviewAnswerAuditMiddleware:
    """Pure ASGI: watches PATCH …/hitlDetails on ``retune_*`` review tasks (status and body)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        match = HITL_PATH.search(scope.get("path", "")) if scope.get("type") == "http" else None
        if (
            match is None
            or scope.get("method") != "PATCH"
            or not match["dag_id"].startswith("retune_")
            or match["task_id"].rpartition(".")[2] != "review"
        ):
            await self.app(scope, receive, send)
            return
        status: dict[str, int] = {}
        body: list[bytes] = []
        gzipped = False

        async def watch(message: dict) -> None:
            nonlocal gzipped
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                gzipped = (b"content-encoding", b"gzip") in [(k.lower(), v) for k, v in message["headers"]]
            elif message["type"] == "http.response.body" and status.get("code") == 200:
                body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, watch)
        if status.get("code") not in (200, 403):
            return
        task = TaskOfRun(
            unquote(match["dag_id"]),
            unquote(match["run_id"]),
            unquote(match["task_id"]),
            int(match["map_index"]),
        )
        from pipelines.terms import AuditAction
        from retune_airflow.review import ANSWERED

        # on the event loop, briefly: in a worker thread (anyio.to_thread) the store's write never
        # finished under the api-server (the refusal went unrecorded)
        try:
            if status["code"] == 403:
                _record(task, AuditAction.REFUSED, await _caller(scope), REFUSED_BY_AIRFLOW)
            else:
                raw = b"".join(body)  # Airflow's GZipMiddleware is inside this one
                answer = json.loads(gzip.decompress(raw) if gzipped else raw)
                who = str(answer["responded_by"]["id"])
                option = (answer.get("chosen_options") or [""])[0]
                reason = str((answer.get("params_input") or {}).get("reason") or "")
                at = datetime.fromisoformat(answer["responded_at"])
                _record(task, ANSWERED[option], who, reason, at)
        except Exception:  # the audit must never break the API
            log.exception("could not audit an answer to a review")


@dataclass(frozen=True)
class TaskOfRun:
    """The review task an answer went to: an Airflow DAG run's, one map index of it."""

    dag_id: str
    dag_run_id: str
    task_id: str
    map_index: int


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


def _record(task: TaskOfRun, action: str, who: str, reason: str, at: datetime | None = None) -> None:
    """One audit row on the proposal the answered task reviews (a fleet run: its map index's key).

    Not only while it is pending: the task may have acted on an answer (and the run decided)
    before this row is written; ``at`` keeps it in its place in the audit."""
    from pipelines.settings import load_settings
    from pipelines.store.repository import Repository
    from retune_airflow.review import AIRFLOW_ACTOR

    repo = Repository(load_settings().db_url)
    try:
        run = _reviewed_run(repo, task)
        proposed = run is not None and any(
            v.source_run == run.run_id for v in repo.list_config_versions(run.model_key)
        )
        if proposed:
            repo.record_attempt(
                run.model_key, run.run_id, action=action, actor=f"{AIRFLOW_ACTOR}{who}", reason=reason, at=at
            )
    finally:
        repo.close()


def _reviewed_run(repo: Any, task: TaskOfRun) -> Any:
    """Our run whose proposal the task reviews: the DAG run's own, or in a fleet run the run of
    the config its task group was mapped over (the task's rendered ``config``)."""
    from pipelines.context import safe_run_id
    from retune_airflow.links import retune_dag_name

    name = retune_dag_name(task.dag_id)
    if name is None:
        return None
    config = _rendered_config(task) if task.map_index >= 0 else None
    raw = f"{task.dag_run_id}__{config}" if config else task.dag_run_id
    return repo.get_run(safe_run_id(name, raw))


def _rendered_config(task: TaskOfRun) -> str | None:
    import sqlalchemy as sa
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
    from airflow.utils.session import create_session

    with create_session() as session:
        fields = session.scalar(
            sa.select(Rendered.rendered_fields).where(
                Rendered.dag_id == task.dag_id,
                Rendered.run_id == task.dag_run_id,
                Rendered.task_id == task.task_id,
                Rendered.map_index == task.map_index,
            )
        )
    return (fields or {}).get("config")


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

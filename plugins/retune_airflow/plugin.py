"""Registers Retune with Airflow: the FastAPI app under /retune and a navigation entry, a
"Retune report" link on every task of a Retune DAG run, the run note that states the decision,
trigger errors in words, and the audit of every answer to a review."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from retune_airflow import listeners
from retune_airflow.links import RetuneReportLink
from retune_airflow.middleware import ReviewAnswerAuditMiddleware, TriggerErrorsMiddleware
from retune_airflow.ui import app


class RetunePlugin(AirflowPlugin):
    name = "retune"
    fastapi_apps = [{"app": app, "url_prefix": "/retune", "name": "Retune"}]
    fastapi_root_middlewares = [
        {"middleware": ReviewAnswerAuditMiddleware, "name": "retune_review_answer_audit"},
        {"middleware": TriggerErrorsMiddleware, "name": "retune_trigger_errors"},
    ]
    global_operator_extra_links = [RetuneReportLink()]
    listeners = [listeners]
    external_views = [
        {
            "name": "Retune",
            "href": "/retune/",
            "destination": "nav",
            "category": "browse",
            "url_route": "retune",
        }
    ]

"""Registers Retune's pages with Airflow: the FastAPI app under /retune and a navigation entry."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from retune_airflow.ui import app


class RetunePlugin(AirflowPlugin):
    name = "retune"
    fastapi_apps = [{"app": app, "url_prefix": "/retune", "name": "Retune"}]
    external_views = [
        {
            "name": "Retune",
            "href": "/retune/",
            "destination": "nav",
            "category": "browse",
            "url_route": "retune",
        }
    ]

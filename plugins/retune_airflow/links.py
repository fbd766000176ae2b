"""Between Airflow's runs and ours: an Airflow DAG run ``retune_daily / manual__2026-…`` is our run
``daily__manual__2026-…`` (a fleet run: one per config, ``…__<config>``). The api-server side of
the plugin (Retune pages, the extra link, the run note) reads Airflow's metadata DB for this;
tasks never do.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from airflow.sdk.bases.operatorlink import BaseOperatorLink

log = logging.getLogger(__name__)
REPORT_LINK = "Retune report"


def retune_dag_name(dag_id: str) -> str | None:
    """``retune_daily`` / ``retune_daily_fleet`` → ``daily``; None for DAGs that are not ours."""
    if not dag_id.startswith("retune_"):
        return None
    return dag_id.removeprefix("retune_").removesuffix("_fleet")


def our_run_id(dag_id: str, dag_run_id: str) -> str | None:
    from pipelines.context import safe_run_id

    name = retune_dag_name(dag_id)
    return safe_run_id(name, dag_run_id) if name else None


def runs_of(repo: Any, dag_id: str, dag_run_id: str) -> list[Any]:
    """Our runs of one Airflow DAG run: the run itself, or a fleet run's one per config."""
    run_id = our_run_id(dag_id, dag_run_id)
    if run_id is None:
        return []
    exact = repo.get_run(run_id)
    if exact is not None:
        return [exact]
    return [r for r in repo.list_runs(limit=500) if r.run_id.startswith(f"{run_id}__")]


def airflow_runs(limit: int = 500) -> dict[str, tuple[str, str]]:
    """Our run id → (Airflow dag_id, Airflow run_id) for the latest Retune DAG runs."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    try:
        with create_session() as session:
            rows = session.execute(
                sa.select(DagRun.dag_id, DagRun.run_id)
                .where(DagRun.dag_id.like("retune\\_%", escape="\\"))
                .order_by(DagRun.id.desc())
                .limit(limit)
            ).all()
    except sa.exc.SQLAlchemyError as exc:  # no Airflow metadata here: pages work without the links
        log.warning("no Airflow runs to link to: %s", exc)
        return {}
    found: dict[str, tuple[str, str]] = {}
    for dag_id, run_id in rows:
        ours = our_run_id(dag_id, run_id)
        if ours is not None:
            found[ours] = (dag_id, run_id)
    return found


def airflow_run_for(our_id: str, known: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """The Airflow run of one of our runs (a fleet key's run: its DAG run's)."""
    if our_id in known:
        return known[our_id]
    head = our_id.rpartition("__")[0]
    return known.get(head)


def airflow_run_url(dag_id: str, run_id: str) -> str:
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


class RetuneReportLink(BaseOperatorLink):
    """ "Retune report" on every task of a Retune DAG run: the run's report in the Retune UI."""

    name = REPORT_LINK

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if retune_dag_name(ti_key.dag_id) is None:
            return ""
        return f"/retune/airflow/{quote(ti_key.dag_id, safe='')}/{quote(ti_key.run_id, safe='')}"

"""Fleet re-tunes: several model keys (one config each, e.g. one per instrument) per run."""

from retune_airflow.dag_factory import build_fleet_dag

daily_fleet = build_fleet_dag("daily")
weekly_fleet = build_fleet_dag("weekly")

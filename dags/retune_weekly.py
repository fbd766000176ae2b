"""Weekly re-tune: wider search, larger budget, full retrain."""

from retune_airflow.dag_factory import build_dag

dag = build_dag("weekly")

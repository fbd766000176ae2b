"""Hourly re-tune for intraday model keys: a small search and a fine-tune, every hour."""

from retune_airflow.dag_factory import build_dag

dag = build_dag("hourly")

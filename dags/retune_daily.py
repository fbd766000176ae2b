"""Daily re-tune: narrowed search, small budget, incremental fine-tune of the deployed model."""

from retune_airflow.dag_factory import build_dag

dag = build_dag("daily")

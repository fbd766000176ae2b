"""Retune core: Airflow-free steps that re-tune a deployed trading model."""

from pipelines.process_exit import skip_final_collection

skip_final_collection()

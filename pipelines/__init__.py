"""Retune core: Airflow-free steps that re-tune a deployed trading model."""

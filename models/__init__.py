"""Torch networks and their checkpoints. Knows nothing of pipelines or Airflow."""

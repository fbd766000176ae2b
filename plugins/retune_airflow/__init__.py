"""The only Airflow-aware code: DAG factory, Params, and Airflow context -> RunContext."""

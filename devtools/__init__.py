"""Development tooling that tests and benchmarks share (throwaway PostgreSQL databases, a real
Airflow deployment in subprocesses). Not shipped: nothing under pipelines/, models/ or plugins/
may import it, and it lives outside tests/ so benchmarks need no path into the test tree."""

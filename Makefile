# Retune — every command a user or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
ONLY ?=

export RETUNE_HOME ?= $(CURDIR)/var
export NUMBA_CACHE_DIR ?= $(RETUNE_HOME)/numba-cache
export AIRFLOW_HOME ?= $(RETUNE_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT := 120
export PYTHONWARNINGS ?= ignore::DeprecationWarning,ignore::FutureWarning

# The demo promotes on its own (policy auto): `airflow dags test` has no scheduler to time out a
# review, so under policy review a passing gate would wait for an answer from the Airflow UI.
DEMO_CONF := {"data": "sample:sp500", "as_of": "2018-12-31", "n_trials": 24, "timeout_minutes": 8, "config": "demo"}

.PHONY: help install browser demo airflow dashboard test lint bench clean
help:
	@echo "make demo     - install, initialize stores, run retune_daily once through Airflow on S&P 500 bars"
	@echo "make test     - the test suite (what CI runs)"
	@echo "make airflow  - local Airflow UI (api-server, scheduler, dag-processor, triggerer) on :8080 (AIRFLOW_PORT=N)"
	@echo "make dashboard - optuna-dashboard on the study storage (RETUNE_OPTUNA_URL) on :8081 (DASHBOARD_PORT=N)"
	@echo "make lint     - ruff, mypy and the import contracts"
	@echo "make bench    - benchmarks into bench/results.json (ONLY=NAME for one)"

$(BIN)/retune: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/retune

init: install
	mkdir -p $(RETUNE_HOME) $(AIRFLOW_HOME)
	$(BIN)/retune db upgrade
	$(BIN)/airflow db migrate > $(RETUNE_HOME)/airflow-migrate.log 2>&1 || (tail -50 $(RETUNE_HOME)/airflow-migrate.log; exit 1)

demo: init
	mkdir -p $(RETUNE_HOME)/configs
	{ cat pipelines/defaults/daily.yaml; echo "promotion_policy: auto"; } > $(RETUNE_HOME)/configs/demo.yaml
	$(BIN)/airflow dags test retune_daily --conf '$(DEMO_CONF)' 2>&1 | tee $(RETUNE_HOME)/demo.log | grep --line-buffered -E "\[pipelines\.|ERROR|Traceback|DagRun Finished" || true
	@grep -q "DagRun Finished.*state=success\|Marking run .* successful" $(RETUNE_HOME)/demo.log || (echo "demo DAG run failed: see $(RETUNE_HOME)/demo.log"; exit 1)
	@$(BIN)/python -c "import json,subprocess; s=json.loads(subprocess.check_output(['$(BIN)/retune','status','--json'])); r=s['runs'][0]; print('\nreport:            ', r['report']); print('decision:          ', r['decision']); print('production config: ', s['production_config'] or 'not written: nothing promoted (the decision above says why)')"

# `airflow standalone` with .venv/bin first on PATH (it starts each component as a bare `airflow …`),
# in a process group that Ctrl-C (or SIGTERM) stops entirely: plugins/retune_airflow/standalone.py.
# AIRFLOW_PORT picks the UI's port.
AIRFLOW_PORT ?= 8080
airflow: init
	AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	  AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:$(AIRFLOW_PORT)/execution/ \
	  exec $(BIN)/python -m retune_airflow.standalone

# optuna-dashboard on the studies the searches write: the storage `retune` itself uses
# (RETUNE_OPTUNA_URL, else RETUNE_DB_URL, else var/retune.db). It has no login and can edit
# studies: it listens on loopback unless DASHBOARD_HOST says otherwise. Set RETUNE_DASHBOARD_URL
# (e.g. http://127.0.0.1:8081) where reports and the Retune page are made, and they link to it.
DASHBOARD_PORT ?= 8081
DASHBOARD_HOST ?= 127.0.0.1
dashboard: install
	exec $(BIN)/optuna-dashboard --host $(DASHBOARD_HOST) --port $(DASHBOARD_PORT) \
	  "$$($(BIN)/python -c 'from pipelines.settings import load_settings; print(load_settings().optuna_url)')"

# Debian's chromium, for the test that opens the report in a real browser.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }; }; } || \
	  { echo "the report browser test needs Debian's chromium: sudo apt-get install chromium"; exit 1; }

# Two pytest workers, a test file each at a time: the end-to-end files spend much of their wall
# time waiting on Airflow subprocesses, so the other worker fills it. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: install browser
	$(BIN)/python -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/run.py $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(RETUNE_HOME)

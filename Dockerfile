# Retune's Airflow image: the official Airflow image plus our pinned dependencies and code.
# Used by every Airflow service in docker-compose.yaml and by optuna-dashboard (same Optuna version as
# the workers, so the dashboard always understands the study schema they write).
#
#   docker compose build            # or: docker build -t retune-airflow:0.1.0 .
#
# The Airflow version in the tag must be the apache-airflow pin in constraints.txt, and the Python
# version the one pyproject.toml requires (tests/deploy check both).
FROM apache/airflow:3.3.2-python3.11

# torch==2.13.0 is pinned in constraints.txt; from PyPI alone that pin resolves to the CUDA build
# (several GB). The CPU wheel index offers 2.13.0+cpu, which satisfies the same pin and which pip
# prefers (a local version sorts after the plain one), so the image gets the CPU build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV RETUNE_SRC=/opt/retune \
    RETUNE_HOME=/opt/airflow/retune-home \
    RETUNE_DATA_DIR=/opt/airflow/retune-home/data \
    NUMBA_CACHE_DIR=/opt/airflow/retune-home/numba-cache \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/retune/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/retune/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=120 \
    PYTHONWARNINGS=ignore::DeprecationWarning,ignore::FutureWarning

# Folders owned by airflow and group 0 (group-writable), so the image also runs under another
# AIRFLOW_UID, as the official image allows. RETUNE_HOME is a named volume in docker-compose.yaml,
# which copies this folder's ownership when it is first created.
USER root
RUN mkdir -p /opt/retune /opt/airflow/retune-home/data /opt/airflow/retune-home/numba-cache \
    && chown -R airflow:0 /opt/retune /opt/airflow/retune-home \
    && chmod -R g+rwX /opt/retune /opt/airflow/retune-home

# pip runs as the airflow user (the official image refuses pip as root).
USER airflow
WORKDIR /opt/retune

# Dependencies first, from the two files that pin them: this layer is rebuilt only when they change,
# not on every code change. The list is pyproject's [project.dependencies] (no dev tools) plus
# optuna-dashboard; constraints.txt fixes every version. apache-airflow is named with the image's own
# version so a conflict fails the build instead of silently up- or downgrading Airflow.
COPY --chown=airflow:0 pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/retune-requirements.txt \
    && pip install --no-cache-dir \
        --extra-index-url "${TORCH_INDEX_URL}" \
        -c constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -r /tmp/retune-requirements.txt \
        optuna-dashboard \
    && rm /tmp/retune-requirements.txt

# Then the code, least often changed first. An editable install keeps sql/ (Alembic's script
# location, found relative to the pipelines package) next to the code, exactly as in a checkout, and
# puts `retune` on PATH; retune_airflow is importable both as an installed package and from the
# plugins folder, from the same files.
COPY --chown=airflow:0 README.md ./
COPY --chown=airflow:0 models ./models
COPY --chown=airflow:0 sql ./sql
COPY --chown=airflow:0 pipelines ./pipelines
COPY --chown=airflow:0 plugins ./plugins
COPY --chown=airflow:0 dags ./dags
RUN pip install --no-cache-dir --no-deps -e .

WORKDIR /opt/airflow
USER airflow

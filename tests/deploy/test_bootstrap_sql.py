"""sql/bootstrap: creates the databases the compose URLs name, and really runs on PostgreSQL.

The postgres image executes ``/docker-entrypoint-initdb.d/*.sql`` with ``psql -v ON_ERROR_STOP=1`` as
the superuser. The live test does the same against the test server, with every database and role
name rewritten to a throwaway one, and drops them afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit

import psycopg2
import pytest
from alembic.script import ScriptDirectory
from deploy_files import ROOT
from sqlalchemy.engine import make_url

from pipelines.store.migrate import alembic_config, upgrade

BOOTSTRAP = ROOT / "sql" / "bootstrap"
ADMIN_URL = os.environ.get("RETUNE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CREATE_DATABASE = re.compile(r"^CREATE DATABASE (\w+) OWNER (\w+)\b", re.M)
CREATE_ROLE = re.compile(r"^CREATE ROLE (\w+) LOGIN PASSWORD :'(\w+)';", re.M)
GETENV = re.compile(r"^\\getenv (\w+) (\w+)\s*$", re.M)


def bootstrap_sql() -> str:
    files = sorted(BOOTSTRAP.glob("*.sql"))
    assert files, "no bootstrap SQL"
    return "\n".join(f.read_text() for f in files)


def url_parts(value: str) -> tuple[str, str, str]:
    parts = urlsplit(value)
    return parts.path.lstrip("/"), parts.username or "", parts.password or ""


@pytest.fixture(scope="module")
def store_urls(rendered) -> dict[str, str]:
    env = rendered["services"]["airflow-scheduler"]["environment"]
    keys = (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "RETUNE_DB_URL",
        "RETUNE_OPTUNA_URL",
        "AIRFLOW_CONN_RETUNE_DB",
    )
    return {key: env[key] for key in keys}


def test_bootstrap_creates_every_database_the_urls_name(store_urls):
    databases = dict(CREATE_DATABASE.findall(bootstrap_sql()))
    for key, value in store_urls.items():
        database, user, _ = url_parts(value)
        assert databases.get(database) == user, f"{key}: no database {database} owned by {user}"


def test_bootstrap_passwords_come_from_the_postgres_environment(rendered, store_urls):
    """Each login role's password variable is set on postgres to the password its URL carries."""
    sql = bootstrap_sql()
    psql_var_to_env = dict(GETENV.findall(sql))
    role_env = {role: psql_var_to_env[var] for role, var in CREATE_ROLE.findall(sql)}
    postgres_env = rendered["services"]["postgres"]["environment"]
    for key, value in store_urls.items():
        _, user, password = url_parts(value)
        assert role_env[user] in postgres_env, f"{key}: {role_env[user]} is not passed to postgres"
        assert postgres_env[role_env[user]] == password, key


def test_alembic_does_not_take_bootstrap_for_migrations():
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    paths = {os.path.dirname(rev.path) for rev in scripts.walk_revisions()}
    assert paths == {str(ROOT / "sql" / "versions")}


# --- on the live server ---


def scram_matches(verifier: str, password: str) -> bool:
    """Check a SCRAM-SHA-256 verifier from pg_authid against a password (RFC 5802 / 7677)."""
    match = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier)
    if not match:
        return False
    iterations, salt, stored_key, server_key = match.groups()
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return (
        base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
        and base64.b64encode(hmac.new(salted, b"Server Key", hashlib.sha256).digest()).decode() == server_key
    )


@pytest.fixture
def admin():
    try:
        conn = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required for the bootstrap test but is not reachable at {ADMIN_URL}: {exc}",
            pytrace=False,
        )
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def throwaway(admin):
    """Bootstrap SQL with its names replaced by unique ones; every such database and role dropped after."""
    if shutil.which("psql") is None:
        pytest.fail(
            "the bootstrap test runs psql, as the postgres image does: apt-get install postgresql-client"
        )
    sql = bootstrap_sql()
    prefix = f"rt_boot_{uuid.uuid4().hex[:10]}"
    names = {
        name: f"{prefix}_{name}"
        for name in {*dict(CREATE_DATABASE.findall(sql)), *dict(CREATE_ROLE.findall(sql))}
    }
    for name, new in names.items():
        sql = re.sub(rf"\b{name}\b", new, sql)
    yield sql, names
    with admin.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",))
        for (database,) in cur.fetchall():
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,)
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{database}"')
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (prefix + "%",))
        for (role,) in cur.fetchall():
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')


def run_psql(sql: str, tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "bootstrap.sql"
    script.write_text(sql)
    clean_env = {
        k: v for k, v in os.environ.items() if k not in ("AIRFLOW_DB_PASSWORD", "RETUNE_DB_PASSWORD")
    }
    return subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-q", "-d", ADMIN_URL, "-f", str(script)],
        capture_output=True,
        text=True,
        env={**clean_env, **env},
        timeout=60,
    )


def test_bootstrap_runs_on_postgres(admin, throwaway, tmp_path, store_urls):
    sql, names = throwaway
    passwords = {"AIRFLOW_DB_PASSWORD": "af pass 'quoted'", "RETUNE_DB_PASSWORD": "rt-pass-9"}
    result = run_psql(sql, tmp_path, **passwords)
    assert result.returncode == 0, result.stderr

    airflow_db, airflow_user, _ = url_parts(store_urls["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    retune_db, retune_user, _ = url_parts(store_urls["RETUNE_DB_URL"])
    with admin.cursor() as cur:
        cur.execute(
            "SELECT datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding) FROM pg_database "
            "WHERE datname = ANY(%s)",
            ([names[airflow_db], names[retune_db]],),
        )
        found = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", (list(names.values()),)
        )
        verifiers = dict(cur.fetchall())
    assert found == {
        names[airflow_db]: (names[airflow_user], "UTF8"),
        names[retune_db]: (names[retune_user], "UTF8"),
    }
    assert scram_matches(verifiers[names[airflow_user]], passwords["AIRFLOW_DB_PASSWORD"])
    assert scram_matches(verifiers[names[retune_user]], passwords["RETUNE_DB_PASSWORD"])

    def connect(user: str, database: str):
        return psycopg2.connect(ADMIN_URL, user=names[user], dbname=names[database], connect_timeout=5)

    # each owner can create its tables in public (what the migrations do) ...
    for user, database in ((airflow_user, airflow_db), (retune_user, retune_db)):
        conn = connect(user, database)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE bootstrap_probe (id integer PRIMARY KEY)")
        finally:
            conn.close()
    # ... including Retune's own migrations, as airflow-init runs them (as the retune role)
    retune_url = make_url(ADMIN_URL).set(
        drivername="postgresql+psycopg2", username=names[retune_user], database=names[retune_db]
    )
    upgrade(retune_url.render_as_string(hide_password=False))
    conn = connect(retune_user, retune_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'retune_runs'")
            assert cur.fetchone() == (names[retune_user],)
    finally:
        conn.close()
    # ... and neither may even connect to the other's database
    for user, database in ((airflow_user, retune_db), (retune_user, airflow_db)):
        with pytest.raises(psycopg2.OperationalError, match="permission denied"):
            connect(user, database).close()


def test_bootstrap_without_a_password_creates_nothing(admin, throwaway, tmp_path):
    sql, names = throwaway
    result = run_psql(sql, tmp_path, AIRFLOW_DB_PASSWORD="only-one")
    assert result.returncode != 0
    # the unset variable stays unexpanded: a syntax error before anything is created
    assert "syntax error" in result.stderr and "PASSWORD :'" in result.stderr
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", (list(names.values()),))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", (list(names.values()),))
        assert cur.fetchone()[0] == 0

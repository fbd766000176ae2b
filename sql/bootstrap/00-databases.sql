-- PostgreSQL bootstrap for docker-compose.yaml (mounted into /docker-entrypoint-initdb.d).
--
-- The postgres image runs this once, with psql as the superuser, when its data volume is empty.
-- It is not a migration: Alembic only reads sql/versions/ (our tables are created afterwards by
-- `retune db upgrade`, Airflow's by `airflow db migrate`, both in the airflow-init service).
--
-- Two databases, each owned by its own login role and closed to every other role:
--   airflow  Airflow's metadata                      AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
--   retune   Retune's tables and the Optuna studies  RETUNE_DB_URL, RETUNE_OPTUNA_URL, AIRFLOW_CONN_RETUNE_DB
-- Passwords come from the container's environment (psql's \getenv, PostgreSQL 15+), never from
-- this file. An unset variable leaves `:'name'` unexpanded, which is a syntax error: the script
-- stops before anything is created instead of creating a role without a password.

\set ON_ERROR_STOP on
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv retune_password RETUNE_DB_PASSWORD

-- Both roles or neither: a failed init leaves the data volume initialized, and the image never
-- runs this file again on it.
BEGIN;
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE ROLE retune LOGIN PASSWORD :'retune_password';
COMMIT;

-- The owner may create tables in `public` (PostgreSQL 15+ gives that schema to the database owner).
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE retune OWNER retune ENCODING 'UTF8' TEMPLATE template0;

-- PUBLIC may connect to every new database by default: Airflow's role has no business in Retune's
-- tables, and task code reaches them only through RETUNE_DB_URL / the retune_db Connection.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE retune FROM PUBLIC;

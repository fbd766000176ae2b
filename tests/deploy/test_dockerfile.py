"""Dockerfile and .dockerignore: base image, pinned installs, layer order, user, build context."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from deploy_files import CONSTRAINTS, DOCKERIGNORE, PYPROJECT, ROOT, normalize, parse_dockerfile, pins
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

CODE_DIRS = ("dags", "plugins", "pipelines", "models", "sql")


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads(PYPROJECT.read_text())


@pytest.fixture(scope="module")
def constraints():
    return pins(CONSTRAINTS)


def steps(dockerfile, keyword):
    return [(i, args) for i, (kw, args) in enumerate(dockerfile) if kw == keyword]


def arg_defaults(dockerfile) -> dict[str, str]:
    defaults = {}
    for _, args in steps(dockerfile, "ARG"):
        name, _, value = args.partition("=")
        defaults[name] = value
    return defaults


def env_values(dockerfile) -> dict[str, str]:
    values = {}
    for _, args in steps(dockerfile, "ENV"):
        for pair in args.split():
            key, _, value = pair.partition("=")
            values[key] = value
    return values


def copies(dockerfile) -> list[tuple[int, list[str], str]]:
    """(position, sources, destination) of every COPY, flags dropped."""
    result = []
    for i, args in steps(dockerfile, "COPY"):
        words = [w for w in args.split() if not w.startswith("--")]
        result.append((i, words[:-1], words[-1]))
    return result


def dependency_install(dockerfile) -> tuple[int, str]:
    installs = [
        (i, a) for i, a in steps(dockerfile, "RUN") if "pip install" in a and "-c constraints.txt" in a
    ]
    assert len(installs) == 1, "one pip install of the dependencies, constrained by constraints.txt"
    return installs[0]


def user_at(dockerfile, position: int) -> str:
    users = [args for i, args in steps(dockerfile, "USER") if i < position]
    return users[-1] if users else "airflow"  # the official image's default user


def test_parser_joins_continuations_and_drops_comments():
    parsed = parse_dockerfile("# c\nFROM a:1\nRUN x \\\n  # inner\n  && y\n\nUSER z\n")
    assert parsed == [("FROM", "a:1"), ("RUN", "x && y"), ("USER", "z")]


def test_base_image_is_the_official_airflow_of_our_pins(dockerfile, constraints, pyproject):
    froms = steps(dockerfile, "FROM")
    assert len(froms) == 1 and froms[0][0] == 0
    match = re.fullmatch(r"apache/airflow:(?P<airflow>[\d.]+)-python(?P<python>\d+\.\d+)", froms[0][1])
    assert match, f"FROM {froms[0][1]}: pin the Airflow and Python versions"
    assert match["airflow"] == constraints["apache-airflow"]
    assert match["airflow"] == constraints["apache-airflow-core"]
    assert match["python"] == "3.11"
    assert SpecifierSet(pyproject["project"]["requires-python"]).contains(match["python"] + ".0")


def test_dependencies_install_with_constraints_and_the_cpu_torch_index(dockerfile):
    _, run = dependency_install(dockerfile)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in run, "Airflow must stay the image's version"
    assert "-r /tmp/retune-requirements.txt" in run
    assert re.search(r"\boptuna-dashboard\b", run)
    index = re.search(r'--extra-index-url\s+"?\$\{(\w+)\}"?', run)
    assert index, "torch must come from the CPU wheel index"
    assert arg_defaults(dockerfile)[index[1]] == "https://download.pytorch.org/whl/cpu"


def test_requirements_are_pyprojects_dependencies(dockerfile, pyproject):
    """Run the Dockerfile's own extraction command: it yields exactly [project.dependencies]."""
    _, run = dependency_install(dockerfile)
    command = re.search(r'python -c "(?P<code>[^"]+)"\s*>\s*/tmp/retune-requirements.txt', run)
    assert command, "the requirements file is written from pyproject.toml"
    # inside double quotes the shell passes \n through unchanged: Python sees the same source
    result = subprocess.run(
        [sys.executable, "-c", command["code"]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.splitlines() == pyproject["project"]["dependencies"]


def test_torch_and_dashboard_pins_agree(pyproject, constraints):
    exact = {}
    for dependency in pyproject["project"]["dependencies"]:
        req = Requirement(dependency)
        for spec in req.specifier:
            if spec.operator == "==":
                exact[normalize(req.name)] = spec.version
        # every dependency is pinned by constraints.txt, or pip could pick any version in the image
        assert normalize(req.name) in constraints, req.name
        assert req.specifier.contains(constraints[normalize(req.name)]), req.name
    assert exact["torch"] == constraints["torch"] == "2.13.0"
    assert constraints["optuna-dashboard"] == "0.21.0"
    assert constraints["optuna"] == exact["optuna"]


def test_layers_dependencies_before_code(dockerfile):
    install_at, _ = dependency_install(dockerfile)
    copied = copies(dockerfile)
    manifests = [i for i, sources, _ in copied if {"pyproject.toml", "constraints.txt"} <= set(sources)]
    assert manifests and manifests[0] < install_at, "copy the pin files alone before installing"
    for i, sources, _ in copied:
        if any(s.rstrip("/") in CODE_DIRS for s in sources):
            assert i > install_at, f"COPY {sources} before the dependency layer busts its cache"
    editable = [i for i, a in steps(dockerfile, "RUN") if re.search(r"pip install .*--no-deps -e \.", a)]
    assert editable and editable[0] > max(i for i, *_ in copied)


def test_code_is_copied_where_airflow_and_alembic_look(dockerfile, pyproject):
    workdirs = steps(dockerfile, "WORKDIR")
    env = env_values(dockerfile)
    copied = {}
    for i, sources, destination in copies(dockerfile):
        workdir = [a for j, a in workdirs if j < i][-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            copied[source.rstrip("/")] = os.path.normpath(os.path.join(workdir, destination))
    for name in CODE_DIRS:
        assert name in copied, f"{name}/ is not in the image"
    # pyproject's readme is read when the package is installed
    assert pyproject["project"]["readme"] in copied
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == copied["dags"]
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == copied["plugins"]
    # migrate.py finds Alembic's scripts at <parent of pipelines>/sql
    assert Path(copied["sql"]).parent == Path(copied["pipelines"]).parent


def test_runs_as_airflow(dockerfile):
    last_user_at, last_user = steps(dockerfile, "USER")[-1]
    assert last_user == "airflow"
    assert last_user_at > max(i for i, _ in steps(dockerfile, "RUN")), "nothing runs as root after it"
    for i, run in steps(dockerfile, "RUN"):
        if "pip install" in run:
            assert user_at(dockerfile, i) == "airflow", "the official image refuses pip as root"


def test_state_paths_match_the_compose_file(dockerfile, rendered):
    env = env_values(dockerfile)
    compose_env = rendered["services"]["airflow-scheduler"]["environment"]
    for key in ("RETUNE_HOME", "RETUNE_DATA_DIR", "NUMBA_CACHE_DIR"):
        assert env[key] == compose_env[key], key
    assert env["NUMBA_CACHE_DIR"].startswith(env["RETUNE_HOME"] + "/")


# --- .dockerignore ---


def _pattern(pattern: str) -> re.Pattern[str]:
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.compile(regex)


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also excludes everything below a match."""
    result = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for rule in rules:
        negate = rule.startswith("!")
        regex = _pattern(rule.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negate
    return result


@pytest.fixture(scope="module")
def ignore_rules():
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"]


def test_dockerignore_matcher():
    rules = ["var", "**/__pycache__", "*.egg-info", "!keep.egg-info"]
    assert ignored("var/retune.db", rules) and ignored("pipelines/x/__pycache__/a.pyc", rules)
    assert ignored("retune.egg-info/PKG-INFO", rules) and not ignored("keep.egg-info", rules)
    assert not ignored("pipelines/variables.py", rules)


def test_dockerignore_keeps_secrets_and_local_state_out(ignore_rules):
    for path in (".env", ".git/HEAD", ".venv/bin/python", "var/retune.db", "bench/results.json"):
        assert ignored(path, ignore_rules), path
    assert ignored("pipelines/__pycache__/cli.cpython-311.pyc", ignore_rules)


def test_dockerignore_keeps_everything_the_image_copies(dockerfile, ignore_rules):
    sources = {s.rstrip("/") for _, srcs, _ in copies(dockerfile) for s in srcs}
    for source in sorted(sources):
        root = ROOT / source
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" in relative:
                continue
            assert not ignored(relative, ignore_rules), f"{relative} is copied but .dockerignore drops it"
    assert (ROOT / "sql/bootstrap/00-databases.sql").is_file()

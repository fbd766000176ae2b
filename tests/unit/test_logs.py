"""pipelines.logs: the CLI shows its own progress, library internals only with -v."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Importing Great Expectations is what wrote ~220 INFO lines before each CLI run.
SCRIPT = """
import logging, sys
from pipelines.logs import configure_cli_logging
configure_cli_logging(int(sys.argv[1]))
import great_expectations  # noqa: F401
logging.getLogger("pipelines.steps").info("OWN-INFO")
logging.getLogger("pipelines.steps").debug("OWN-DEBUG")
logging.getLogger("optuna.study").warning("LIB-WARNING")
logging.getLogger("some.library").debug("LIB-DEBUG")
"""


def _stderr(verbosity: int) -> str:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(verbosity)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stderr


@pytest.fixture(scope="module")
def quiet() -> str:
    return _stderr(0)


def test_default_shows_own_progress_and_every_warning_only(quiet):
    lines = quiet.splitlines()
    assert "great_expectations" not in quiet and "Skipping registering" not in quiet
    assert [line.split(" ", 1)[1] for line in lines] == [
        "OWN-INFO",
        "WARNING optuna.study: LIB-WARNING",
    ]


def test_one_v_shows_library_info_and_our_debug():
    verbose = _stderr(1)
    assert verbose.count("great_expectations._docs_decorators: Skipping registering") > 100
    assert "OWN-DEBUG" in verbose and "LIB-WARNING" in verbose
    assert "LIB-DEBUG" not in verbose


def test_two_v_is_debug_for_everything():
    assert "LIB-DEBUG" in _stderr(2)

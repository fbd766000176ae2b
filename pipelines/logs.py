"""How ``retune`` logs: its own progress by default, library internals only when asked.

Libraries log a lot at INFO (Great Expectations alone writes ~220 lines of
``_docs_decorators: Skipping registering function …`` on import). By default the CLI shows
our own loggers' INFO and everybody's warnings; ``-v`` lets library INFO through and turns
ours to DEBUG, ``-vv`` is DEBUG for everything. Airflow configures task logging itself.
"""

from __future__ import annotations

import logging
import sys

OWN_LOGGERS = ("pipelines", "models", "retune_airflow")


class _ProgressFormatter(logging.Formatter):
    """``13:50:41 [run] search: start``; warnings and errors say so, and who logged them."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, message = line.partition(" ")
            line = f"{stamp} {record.levelname} {record.name}: {message}"
        return line


def is_own_or_warning(record: logging.LogRecord) -> bool:
    """Our progress, or anything at WARNING and above, whoever logs it."""
    return record.levelno >= logging.WARNING or record.name.partition(".")[0] in OWN_LOGGERS


def configure_cli_logging(verbosity: int = 0) -> None:
    """Route logs to stderr for a ``retune`` command; ``verbosity`` is the count of ``-v``."""
    handler = logging.StreamHandler(sys.stderr)
    if verbosity:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_ProgressFormatter())
        # a filter on the handler, not logger levels: some libraries set their loggers' level
        # themselves on import (great_expectations.data_context.types.base sets INFO)
        handler.addFilter(is_own_or_warning)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity else logging.INFO)

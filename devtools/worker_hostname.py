"""``[core] hostname_callable`` for the Celery tests: several workers share one machine, so each
reports the name it was started with (``RETUNE_WORKER_NAME``) as its task instances' hostname."""

from __future__ import annotations

import os


def hostname() -> str:
    return os.environ["RETUNE_WORKER_NAME"]

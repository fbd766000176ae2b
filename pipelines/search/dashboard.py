"""Where a run's study is shown in optuna-dashboard, when one is configured (``RETUNE_DASHBOARD_URL``).

optuna-dashboard addresses a study by its numeric id in the storage, not by its name, so the
link is looked up in the same Optuna storage the dashboard serves.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def study_link(dashboard_url: str | None, optuna_url: str, study_name: str | None) -> str | None:
    """``<dashboard>/dashboard/studies/<id>`` of ``study_name``; None without a dashboard or study."""
    if not dashboard_url or not study_name:
        return None
    import optuna

    try:
        storage = optuna.storages.RDBStorage(
            optuna_url, skip_compatibility_check=True, skip_table_creation=True
        )
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    except Exception as exc:  # a link is a convenience: a report or page never fails for it
        log.warning("no optuna-dashboard link for %s: %s", study_name, exc)
        return None
    return f"{dashboard_url.rstrip('/')}/dashboard/studies/{study_id}"

"""Where Retune keeps its state: one home folder and one database URL, from the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.terms import CONFIG_NAME_PATTERN

CONFIG_NAME = re.compile(CONFIG_NAME_PATTERN)
DASHBOARD_URL = re.compile(r"^https?://[^\s/?#\"'<>]+(/[^\s?#\"'<>]*)?$")


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    optuna_url: str
    dashboard_url: str | None = None  # optuna-dashboard on optuna_url: reports and the UI link runs to it

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def production_config(self) -> Path:
        return self.home / "config" / "production.yaml"

    @property
    def configs_dir(self) -> Path:
        """Named run configs (``<name>.yaml``): what a DAG trigger may choose, by name only."""
        return self.home / "configs"

    def config_file(self, name: str) -> Path:
        """The file of a named config (``spx_weekly`` → ``configs/spx_weekly.yaml``, or .yml/.json)."""
        if not CONFIG_NAME.match(name):
            raise ValueError(f"config name {name!r}: letters, digits, _ and - only (a name, not a path)")
        for suffix in (".yaml", ".yml", ".json"):
            if (self.configs_dir / f"{name}{suffix}").is_file():
                return self.configs_dir / f"{name}{suffix}"
        return self.configs_dir / f"{name}.yaml"  # missing: load_config says so, naming it


def load_settings() -> Settings:
    """Read RETUNE_HOME / RETUNE_DB_URL / RETUNE_OPTUNA_URL / RETUNE_DASHBOARD_URL; defaults keep
    everything under ./var and link to no dashboard."""
    home = Path(os.environ.get("RETUNE_HOME", "var")).expanduser().resolve()
    db_url = os.environ.get("RETUNE_DB_URL") or f"sqlite:///{home / 'retune.db'}"
    optuna_url = os.environ.get("RETUNE_OPTUNA_URL") or db_url
    return Settings(home=home, db_url=db_url, optuna_url=optuna_url, dashboard_url=dashboard_url())


def dashboard_url() -> str | None:
    """``RETUNE_DASHBOARD_URL``: where people open optuna-dashboard (``http(s)://host[:port][/prefix]``)."""
    raw = os.environ.get("RETUNE_DASHBOARD_URL", "").strip()
    if not raw:
        return None
    if not DASHBOARD_URL.match(raw):
        raise ValueError(
            f"RETUNE_DASHBOARD_URL={raw!r}: an http:// or https:// URL of optuna-dashboard, "
            "e.g. http://127.0.0.1:8081"
        )
    return raw.rstrip("/")

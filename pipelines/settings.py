"""Where Retune keeps its state: one home folder and one database URL, from the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.terms import CONFIG_NAME_PATTERN

CONFIG_NAME = re.compile(CONFIG_NAME_PATTERN)


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    optuna_url: str

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
    """Read RETUNE_HOME / RETUNE_DB_URL / RETUNE_OPTUNA_URL; defaults keep everything under ./var."""
    home = Path(os.environ.get("RETUNE_HOME", "var")).expanduser().resolve()
    db_url = os.environ.get("RETUNE_DB_URL") or f"sqlite:///{home / 'retune.db'}"
    optuna_url = os.environ.get("RETUNE_OPTUNA_URL") or db_url
    return Settings(home=home, db_url=db_url, optuna_url=optuna_url)

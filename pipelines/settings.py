"""Where Retune keeps its state: one home folder and one database URL, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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


def load_settings() -> Settings:
    """Read RETUNE_HOME / RETUNE_DB_URL / RETUNE_OPTUNA_URL; defaults keep everything under ./var."""
    home = Path(os.environ.get("RETUNE_HOME", "var")).expanduser().resolve()
    db_url = os.environ.get("RETUNE_DB_URL") or f"sqlite:///{home / 'retune.db'}"
    optuna_url = os.environ.get("RETUNE_OPTUNA_URL") or db_url
    return Settings(home=home, db_url=db_url, optuna_url=optuna_url)

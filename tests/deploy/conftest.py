"""Fixtures for tests/deploy: the compose file parsed and rendered, the Dockerfile's instructions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from deploy_files import COMPOSE_FILE, DOCKERFILE, SECRETS, interpolate, parse_dockerfile


@pytest.fixture(scope="session")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="session")
def compose(compose_text) -> dict[str, Any]:
    """docker-compose.yaml as YAML (anchors and merge keys resolved), variables not yet substituted."""
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="session")
def render(compose) -> Callable[..., dict[str, Any]]:
    """The compose file after interpolation with SECRETS plus ``overrides`` (None removes a variable)."""

    def _render(**overrides: str | None) -> dict[str, Any]:
        env = {**SECRETS, **overrides}
        return interpolate(compose, {k: v for k, v in env.items() if v is not None})

    return _render


@pytest.fixture(scope="session")
def rendered(render) -> dict[str, Any]:
    return render()


@pytest.fixture(scope="session")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text())

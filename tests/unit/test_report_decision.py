"""The report's "what happens next" paragraph follows the gate's decision terms, not spelled-out strings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipelines.promotion.gate import GateCheck, GateResult
from pipelines.reporting.report import template_env

CTX = SimpleNamespace(
    run_id="run-1", model_key="k", settings=SimpleNamespace(production_config="/home/config/production.yaml")
)


def render(policy: str, passed: bool, active_version: int | None = 3) -> str:
    gate = GateResult([GateCheck("dsr", 0.97 if passed else 0.2, 0.95, passed)], policy)  # type: ignore[arg-type]
    block = template_env().get_template("decision.html.j2")
    return block.render(ctx=CTX, gate=gate.to_dict(), active_version=active_version)


@pytest.mark.parametrize(
    ("policy", "passed", "opening"),
    [
        ("auto", True, "Promoted automatically (policy auto)"),
        ("review", True, "Waiting for approval (policy review)"),
        ("off", True, "Kept current: promotion is off"),
        ("auto", False, "Kept current: the gate failed (dsr)"),
        ("review", False, "Kept current: the gate failed (dsr)"),
    ],
)
def test_each_decision_has_its_paragraph(policy, passed, opening):
    html = render(policy, passed)
    assert html.startswith(f"<!--retune:decision--><p><b>{opening}")
    assert html.endswith("<!--/retune:decision-->")


def test_a_kept_run_says_whether_anything_stays_in_production():
    assert "v3 stays in production" in render("auto", False)
    assert "no production config was written for k" in render("auto", False, active_version=None)

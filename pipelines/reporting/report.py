"""The run report: one self-contained HTML file (plotly.js inlined, works offline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import optuna
import pandas as pd
from plotly.offline import get_plotlyjs

from pipelines.artifacts import load_json, write_atomic
from pipelines.context import RunContext
from pipelines.promotion.gate import gate_for_run
from pipelines.reporting import figures
from pipelines.reporting.numbers import for_people
from pipelines.runfolder import (
    EvaluationRecord,
    FinetuneRecord,
    NarrowingRecord,
    SearchRecord,
    ValidationRecord,
)
from pipelines.search.dashboard import study_link
from pipelines.store.repository import Repository
from pipelines.terms import Decision

TEMPLATES = Path(__file__).parent / "templates"


def template_env() -> jinja2.Environment:
    """The report's templates, with the gate's ``Decision`` terms as a global: the template
    compares against them, so renaming a decision cannot silently skip a branch."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["people"] = for_people
    env.globals["Decision"] = Decision
    return env


def config_diff(active: dict[str, Any] | None, proposed: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of (param, active, proposed, changed) over the union of keys."""
    active = active or {}
    keys = sorted(set(active) | set(proposed))
    return [
        {
            "param": k,
            "active": active.get(k),
            "proposed": proposed.get(k),
            "changed": active.get(k) != proposed.get(k),
        }
        for k in keys
    ]


def validation_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in result.get("results", []):
        cfg = r["expectation_config"]
        kwargs = {k: v for k, v in cfg["kwargs"].items() if k != "batch_id"}
        rows.append(
            {"expectation": cfg["type"], "kwargs": json.dumps(kwargs, default=str), "success": r["success"]}
        )
    return rows


def write_report(ctx: RunContext, repo: Repository) -> Path:
    search = ctx.folder.read(SearchRecord)
    model = ctx.folder.read(FinetuneRecord).model_dump()
    narrowing = ctx.folder.read(NarrowingRecord).model_dump()
    validation = ctx.folder.read(ValidationRecord)
    study = optuna.load_study(study_name=search.study, storage=ctx.settings.optuna_url)
    equity = pd.read_csv(ctx.report_dir / "best_equity.csv", index_col=0, parse_dates=True)
    active = repo.active_config(ctx.model_key)
    gate = gate_for_run(ctx, fresh=True)
    template = template_env().get_template("report.html.j2")
    html = template.render(
        ctx=ctx,
        params=ctx.params.model_dump(mode="json"),
        validation=validation.statistics,
        validation_rows=validation_rows(validation.model_dump()),
        narrowing=narrowing,
        search=search.model_dump(),
        model=model,
        evaluation=ctx.folder.read(EvaluationRecord).model_dump(),
        gate=gate.to_dict(),
        dsr_threshold=ctx.config.dsr_threshold,
        benchmark_alpha=ctx.config.benchmark_alpha,
        holdout_benchmark_alpha=ctx.config.holdout_benchmark_alpha,
        calendar=ctx.calendar,
        active_version=active.version if active else None,
        diff=config_diff(active.params if active else None, search.best_params),
        dashboard_link=study_link(ctx.settings.dashboard_url, ctx.settings.optuna_url, search.study),
        plotly_js=get_plotlyjs(),
        fig_history=figures.optimization_history(study),
        fig_importance=figures.param_importances(study),
        fig_equity=figures.equity_and_drawdown(equity),
        fig_loss=figures.loss_curve(load_json(ctx.report_dir / "finetune_history.json")),
        final_return=float(equity["strategy"].iloc[-1] - 1),
        hold_return=float(equity["buy_and_hold"].iloc[-1] - 1),
        max_drawdown=float(equity["drawdown"].min()),
    )
    path = ctx.report_dir / "report.html"
    write_atomic(path, html)
    repo.update_run(ctx.run_id, report_path=str(path))
    return path

"""Plotly figures for the report; each returns an HTML fragment (plotly.js is inlined once)."""

from __future__ import annotations

import logging

import optuna
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

log = logging.getLogger(__name__)


def fragment(fig: go.Figure) -> str:
    fig.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 40}, height=380, template="plotly_white")
    return fig.to_html(full_html=False, include_plotlyjs=False)


def optimization_history(study: optuna.Study) -> str:
    return fragment(optuna.visualization.plot_optimization_history(study))


def param_importances(study: optuna.Study) -> str | None:
    """Importances need a few completed trials with varying params; say so instead of failing."""
    try:
        return fragment(optuna.visualization.plot_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        log.info("no parameter importances: %s", exc)
        return None


def equity_and_drawdown(equity: pd.DataFrame) -> str:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    fig.add_trace(go.Scatter(x=equity.index, y=equity["strategy"], name="best trial"), row=1, col=1)
    fig.add_trace(
        go.Scatter(x=equity.index, y=equity["buy_and_hold"], name="buy and hold", line={"dash": "dot"}),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(x=equity.index, y=equity["drawdown"], name="drawdown", fill="tozeroy"), row=2, col=1
    )
    fig.update_yaxes(title_text="equity (start = 1)", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".0%", row=2, col=1)
    return fragment(fig)


def loss_curve(history: list[dict]) -> str | None:
    if not history:
        return None
    frame = pd.DataFrame(history)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["train_loss"], name="train loss"))
    if frame["val_loss"].notna().any():
        fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["val_loss"], name="validation loss"))
    # what adaptive training rules changed, at the epoch they acted (models/adaptive_training)
    for _, row in frame[frame["adaptation"].notna()].iterrows() if "adaptation" in frame else ():
        fig.add_vline(x=row["epoch"], line_dash="dot", annotation_text=str(row["adaptation"]))
    fig.update_layout(xaxis_title="epoch", yaxis_title="MSE (scaled)")
    return fragment(fig)

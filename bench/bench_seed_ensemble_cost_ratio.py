"""What k seeds per trial cost: one trial with k = 8 batched members over the same trial with k = 1.

Issue 14: a trial's score should be its configuration's, not one seed's, so a trial trains
``seeds_per_trial`` members and trades their mean; the members train as one batched computation
(``models.ensemble``: every weight carries a member dimension, one ``bmm`` per step for all).
Arms: the production walk-forward objective (``make_objective``, every fold, every strategy
variant, the per-seed and half-ensemble backtests) for one trial of the weekly default config
(3,000 S&P 500 bars, 4 folds of 252, 10 epochs, batch 64) at the default architecture
(LSTM, hidden 32, 1 layer, seq_len 20, lr 1e-3), k = 8 and k = 1 (a plain ``nn.LSTM``: the
cost a one-seed trial has). Early stopping is off for the headline so both arms train the same
10 epochs per fold; with it on (the default) the arms stop when their own validation says, shown
in details. Interleaved, ``REPEATS`` repeats, medians; the first (cold) call of each arm apart.

``value``: warm median time(k = 8) / time(k = 1). ``details.batching_efficiency``: 8 x time(k =
1) / time(k = 8), what batching saves over eight one-seed trainings; ``details.by_hidden``: the
same ratio at other widths of the daily and weekly spaces. On this CPU the k members' arithmetic
is k times one member's, so batching saves the per-step overhead, not the FLOPs.

``details.fused_floor``: what any batching of k members could reach here. One training step
(forward, MSE, backward, Adam) of the one-seed network (PyTorch's fused ``nn.LSTM``) at the
trial's batch, and of the same network at k times that batch: the same arithmetic as k members,
in PyTorch's own fused kernel, with one step's overhead. Their ratio is the floor of the
trial's ratio. Beside it the ensemble's step both ways it can run (``models.ensemble``: each
member through the fused kernel, what training does from width 16; the grouped recurrence op by op)
and k separate networks (``ModuleListEnsemble``). ``k8_op_by_op`` / ``ratio_op_by_op``: the
headline trial with every member op by op, as before the fused kernel was used.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from typing import Any

import optuna
import pandas as pd
import torch

from models import ensemble
from models.ensemble import GroupedLSTMEnsemble, ModuleListEnsemble
from models.networks import ArchitectureSpec, build_single
from pipelines.config_files import default_config
from pipelines.data.sources import load_bars
from pipelines.search.objective import make_objective
from pipelines.search.strategy import StrategyGrid, split_space
from pipelines.windowing import PreparedData

NAME = "seed_ensemble_cost_ratio"
K = 8
REPEATS = 2
POINT = {"hidden_size": 32, "num_layers": 1, "seq_len": 20, "lr": 1e-3, "dropout": 0.0}


def trial_seconds(
    data: PreparedData, members: int, early_stopping: bool, point: dict[str, Any], kernel: Any = nullcontext
) -> float:
    base = default_config("weekly")
    inner = base.inner_val_fraction if early_stopping else 0.0
    config = base.model_copy(update={"seeds_per_trial": members, "inner_val_fraction": inner})
    space, _ = split_space(config.search_space)
    grid = StrategyGrid.from_space(config.search_space, config.hyperparams, config.strategy_grid_points)
    objective = make_objective(data, config, space, "sharpe", grid)
    with kernel():
        started = time.perf_counter()
        objective(optuna.trial.FixedTrial(point))
        return time.perf_counter() - started


@contextmanager
def op_by_op_lstm() -> Iterator[None]:
    """Every LSTM ensemble built inside runs the grouped recurrence op by op, training and
    predicting, as all did before members took the fused kernel (the before arm)."""
    width, batch = ensemble.FUSED_FROM_HIDDEN, ensemble.FUSED_FROM_BATCH
    ensemble.FUSED_FROM_HIDDEN = ensemble.FUSED_FROM_BATCH = sys.maxsize
    try:
        yield
    finally:
        ensemble.FUSED_FROM_HIDDEN, ensemble.FUSED_FROM_BATCH = width, batch


def arms(
    data: PreparedData, early_stopping: bool, point: dict[str, Any], repeats: int, before: bool = False
) -> dict[str, Any]:
    """k = 1 and k = K (and with ``before``, k = K op by op), cold once, then interleaved."""
    runs: dict[str, tuple[int, Any]] = {"k1": (1, nullcontext), f"k{K}": (K, nullcontext)}
    if before:
        runs[f"k{K}_op_by_op"] = (K, op_by_op_lstm)
    cold = {name: trial_seconds(data, k, early_stopping, point, kernel) for name, (k, kernel) in runs.items()}
    warm: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (k, kernel) in runs.items():  # interleaved: load on the machine hits all arms alike
            warm[name].append(trial_seconds(data, k, early_stopping, point, kernel))
    median = {name: statistics.median(times) for name, times in warm.items()}
    one, many = median["k1"], median[f"k{K}"]
    out = {
        "ratio": round(many / one, 3),
        "batching_efficiency": round(K * one / many, 3),
        **{f"{name}_warm_median_s": round(t, 3) for name, t in median.items()},
        **{f"{name}_warm_s": [round(t, 3) for t in times] for name, times in warm.items()},
        "cold_s": {name: round(t, 3) for name, t in cold.items()},
    }
    if before:
        out["ratio_op_by_op"] = round(median[f"k{K}_op_by_op"] / one, 3)
    return out


def step_ms(outputs: Any, params: Any, x: torch.Tensor, y: torch.Tensor, steps: int = 40) -> float:
    """Median milliseconds of one training step (forward, MSE, backward, Adam), after 3 warm-up."""
    optimizer = torch.optim.Adam(list(params), lr=1e-3)
    times = []
    for step in range(steps + 3):
        started = time.perf_counter()
        optimizer.zero_grad()
        loss = (outputs(x) - y).square().mean()
        loss.backward()
        optimizer.step()
        if step >= 3:
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def fused_floor(n_features: int, batch: int, point: dict[str, Any]) -> dict[str, Any]:
    """One training step of one network at the trial's batch, at K times it (K members'
    arithmetic in one fused kernel), and of K members grouped and looped."""
    torch.manual_seed(0)
    spec = ArchitectureSpec(
        family="lstm",
        n_features=n_features,
        hidden_size=point["hidden_size"],
        num_layers=point["num_layers"],
        dropout=point["dropout"],
        seq_len=point["seq_len"],
    )
    x = torch.randn(batch, spec.seq_len, n_features)
    wide_x = torch.randn(K * batch, spec.seq_len, n_features)
    members_y = torch.randn(K, batch)
    single = build_single(spec)
    one = step_ms(single, single.parameters(), x, torch.randn(batch))
    wide = step_ms(single, single.parameters(), wide_x, torch.randn(K * batch))
    grouped = GroupedLSTMEnsemble(replace(spec, members=K))
    looped = ModuleListEnsemble(replace(spec, members=K))
    members = {}
    for name, fused in ((f"fused_kernel_k{K}_ms", True), (f"op_by_op_k{K}_ms", False)):
        grouped.trains_fused = fused
        members[name] = round(step_ms(grouped.member_outputs, grouped.parameters(), x, members_y), 3)
    return {
        "one_network_ms": round(one, 3),
        f"one_network_{K}x_batch_ms": round(wide, 3),
        "floor_ratio": round(wide / one, 3),
        **members,
        f"module_list_k{K}_ms": round(step_ms(looped.member_outputs, looped.parameters(), x, members_y), 3),
        "batch": batch,
    }


def run() -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    weekly = default_config("weekly")
    bars = load_bars("sample:sp500", pd.Timestamp("2018-12-31"))
    history = bars.iloc[: -weekly.holdout_bars].reset_index(drop=True)
    data = PreparedData.from_bars(history, weekly.window_bars)
    floor = fused_floor(data.features.shape[1], weekly.hyperparams.batch_size, POINT)
    headline = arms(data, early_stopping=False, point=POINT, repeats=REPEATS, before=True)
    early = arms(data, early_stopping=True, point=POINT, repeats=1)
    by_hidden = {
        hidden: arms(data, early_stopping=False, point={**POINT, "hidden_size": hidden}, repeats=1)["ratio"]
        for hidden in (16, 64)
    }
    return {
        "value": headline["ratio"],
        "unit": f"x wall time of one trial, k={K} batched seeds / k=1 (weekly config, LSTM 32x1, warm)",
        "goal": "<= 2.0",
        "details": {
            **headline,
            "fused_floor": floor,
            "with_early_stopping": early,
            "ratio_by_hidden_size": by_hidden,
            "point": POINT,
            "folds": weekly.n_folds,
            "epochs": weekly.hyperparams.epochs,
            "bars": weekly.window_bars,
            "repeats": REPEATS,
            "torch_threads": 1,
        },
    }

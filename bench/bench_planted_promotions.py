"""Does the chain find, promote and trade an edge that is really there? Through the real chain.

Issue 14: ``RETUNE_BENCH_SERIES`` (10) AR(1) series (phi = 0.10, 3,000 daily bars) whose final 252
bars are never shown to the chain: the CSV holds the bars before them and the run's as-of is the
last of those. Each series is one ``retune run`` (default daily config, ``promotion_policy:
auto``) in its own home. ``value``: how many were promoted (goal >= 8 of 10).

For each promoted series the unseen year is traded as a trading system would: the live predictor
of the home's production config (``LivePredictor.from_production``) is warmed up on the history
and fed the unseen bars one ``update`` at a time; its ``position`` signals are backtested by
``backtest_positions`` with the config's fees and slippage. The oracle's positions on the same
bars go through the same backtest. ``details.planted_oos_vs_oracle``: the median of promoted OOS
Sharpe / oracle Sharpe, and how many promoted series had an OOS Sharpe > 0. The same for
``RETUNE_BENCH_EXTRA_SERIES`` (3) series each of 20-bar momentum, a calm/storm volatility regime
and a Friday effect (``pipelines.data.synthetic``).

The backtest fills a position at the close of the bar it was decided on, so a decision at t earns
bar t+1's return: the oracle is the rule that knows the planted process (for the weekday effect:
long on the bar before a Friday). ``RETUNE_BENCH_PHI`` changes phi (the issue's 0.10 is the
default); ``oracle_psr_walk_forward`` is the oracle's own PSR(0) on the run's walk-forward bars:
with no search to deflate, the most a DSR could be, so a series the oracle itself cannot get
through the gate cannot be promoted rightly. The volatility regime's oracle knows the true regime,
which no model can, so its series are also judged by the causal reader (``causal_reader``: a
``vol_20`` or ``vol_10`` rule at the truth's threshold), and each structure's summary counts the
series where its yardstick (the causal reader, else the oracle) would pass the run's gate and earn
on the unseen year, and of those the ones the chain promoted and earned on.
``RETUNE_BENCH_EXTRA_STRENGTHS`` (a JSON object, e.g. ``{"momentum": 0.7, "vol_regime": 0.002,
"day_of_week": 0.006}``) sets the other structures' strengths: momentum's ``strength``, the
volatility regime's drift (calm +d, storm -d) and the Friday effect; ``bench/oracle_power.py``
shows which strengths a perfect model could get through the gate. ``RETUNE_BENCH_STRUCTURES``
(e.g. ``day_of_week,vol_regime``) runs only those of the other structures, on seeds from
``RETUNE_BENCH_FIRST_EXTRA_SEED`` (100) on. ``RETUNE_BENCH_RERUNS`` (1) runs each series that many
times in its home, a bar appended before each rerun as a daily DAG sees it (the first run starts
that many bars earlier), and trades the unseen year with what production holds after the last.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from chain import SeriesResult, SeriesSpec, cleanup, config_overrides, env_int, log, run_all, series_summary

from pipelines.data import synthetic

NAME = "planted_promotions"
BARS = 3000
UNSEEN = 252
PHI = float(os.environ.get("RETUNE_BENCH_PHI", "0.10"))
# the strengths whose oracle the gate tells from luck as often as an AR(1) with phi 0.25 on the
# daily walk-forward (bench/oracle_power.py), for the diagnostics that use these structures
MATCHED_STRENGTHS = {"ar1": 0.25, "momentum": 0.7, "vol_regime": 0.002, "day_of_week": 0.006}
# the generators' defaults unless RETUNE_BENCH_EXTRA_STRENGTHS says otherwise
EXTRA_STRENGTHS = {"momentum": 0.5, "vol_regime": 0.0012, "day_of_week": 0.002} | json.loads(
    os.environ.get("RETUNE_BENCH_EXTRA_STRENGTHS", "{}")
)
# which of the other structures run (comma-separated names; all by default)
EXTRA_STRUCTURES = [
    name for name in os.environ.get("RETUNE_BENCH_STRUCTURES", ",".join(EXTRA_STRENGTHS)).split(",") if name
]


def holdout_start(holdout_bars: int) -> int:
    """The first holdout bar of a planted series' run: the chain searches the bars before it."""
    return BARS - UNSEEN - holdout_bars


def planted(structure: str, seed: int, strength: float) -> tuple[synthetic.SyntheticSeries, np.ndarray]:
    """One planted series at a strength (AR(1) phi, momentum strength, the volatility regime's
    drift: calm +d, storm -d, the Friday effect) and its oracle's positions for the chain's
    backtest, which fills a decision at its own bar's close (the weekday oracle: lead 1)."""
    if structure == "ar1":
        s = synthetic.ar1(BARS, seed, phi=strength)
    elif structure == "momentum":
        s = synthetic.momentum(BARS, seed, strength=strength)
    elif structure == "vol_regime":
        s = synthetic.vol_regime(BARS, seed, calm_drift=strength, storm_drift=-strength)
    elif structure == "day_of_week":
        s = synthetic.day_of_week(BARS, seed, effects={4: strength})
        return s, synthetic.weekday_rule(s.bars, s.truth["effects"], lead=1)
    else:
        raise ValueError(f"unknown planted structure {structure!r}")
    return s, s.oracle


def structures(n_ar1: int, n_extra: int) -> list[tuple[str, synthetic.SyntheticSeries, np.ndarray]]:
    """(label, series, oracle positions for the chain's backtest)."""
    out = [(f"ar1_{seed}", *planted("ar1", seed, PHI)) for seed in range(n_ar1)]
    first = env_int("RETUNE_BENCH_FIRST_EXTRA_SEED", 100)
    for seed in range(first, first + n_extra):
        for structure in EXTRA_STRUCTURES:
            strength = EXTRA_STRENGTHS[structure]
            out.append((f"{structure}_{seed}", *planted(structure, seed, strength)))
    return out


def structure_of(label: str) -> str:
    return label.rsplit("_", 1)[0]


def backtest_sharpe(bars: pd.DataFrame, positions: np.ndarray, fees: float, slippage: float) -> float:
    from pipelines.trading.backtest import Costs, backtest_positions

    close = pd.Series(bars["close"].to_numpy(dtype=float), index=pd.DatetimeIndex(bars["timestamp"]))
    frame = pd.DataFrame({"positions": np.asarray(positions, dtype=int)}, index=close.index)
    sharpe = float(backtest_positions(close, frame, Costs(fees, slippage)).iloc[0]["sharpe"])
    return sharpe if math.isfinite(sharpe) else 0.0  # never trading: no return, no risk


def trade_unseen(home: Path, history: pd.DataFrame, unseen: pd.DataFrame) -> dict[str, Any]:
    """The production predictor of ``home`` on the unseen bars, one update each."""
    from pipelines.predictor import LivePredictor
    from pipelines.settings import Settings

    db_url = f"sqlite:///{home / 'retune.db'}"
    predictor = LivePredictor.from_production(Settings(home=home, db_url=db_url, optuna_url=db_url))
    predictor.predict_bars(history)
    positions = []
    for bar in unseen.to_dict("records"):
        signal = predictor.update(bar)
        assert signal is not None  # warm after predict_bars
        positions.append(int(signal["position"]))
    return {"positions": np.array(positions), "params": predictor.params.model_dump()}


def bench_config(home: Path) -> dict[str, Any]:
    """The config the home's run used (``chain.write_config``)."""
    import yaml

    return yaml.safe_load((home / "bench_config.yaml").read_text())


def score_series(result: SeriesResult, series: synthetic.SyntheticSeries, oracle: np.ndarray) -> dict:
    split = BARS - UNSEEN
    unseen = series.bars.iloc[split:].reset_index(drop=True)
    raw = bench_config(result.home)
    fees, slippage = float(raw.get("fees", 0.0005)), float(raw.get("slippage", 0.0))
    holdout = holdout_start(int(raw.get("holdout_bars", 120)))
    folds = walk_forward_folds(holdout, int(raw.get("n_folds", 3)), int(raw.get("val_bars", 120)))
    walk_forward_start = folds[0].start
    _, walk_forward = oracle_returns(series, oracle, walk_forward_start, holdout, fees, slippage)
    close, held = oracle_returns(series, oracle, holdout, split, fees, slippage)
    record = result.runs[-1]
    row: dict[str, Any] = {
        **series_summary(result),
        # PSR(0) of the oracle on the run's walk-forward bars: with no search to deflate, the most
        # a DSR of this series could be (below the gate's threshold, no search can promote it
        # and be right to); then as if it had won this run's search, against the run's SR0
        "oracle_psr_walk_forward": round(psr(walk_forward, 0.0), 4),
        "oracle_dsr_at_run_sr0": round(psr(walk_forward, record.get("sr0") or 0.0), 4),
        "oracle_holdout_p": round(holdout_p(close, held, oracle[holdout:split], fees, slippage), 4),
        # with reruns: promoted by any run (a later run that keeps the champion leaves it deployed)
        "promoted": result.ever_promoted,
        "oracle_sharpe": round(backtest_sharpe(unseen, oracle[split:], fees, slippage), 3),
        "oracle_sharpe_no_costs": round(backtest_sharpe(unseen, oracle[split:], 0.0, 0.0), 3),
    }
    if structure_of(result.label) == "vol_regime":
        row.update(causal_reader(series, folds, split, fees, slippage, record.get("sr0") or 0.0))
    if row["promoted"]:
        traded = trade_unseen(result.home, series.bars.iloc[:split].reset_index(drop=True), unseen)
        oos = backtest_sharpe(unseen, traded["positions"], fees, slippage)
        row["oos_sharpe"] = round(oos, 3)
        row["oos_vs_oracle"] = round(oos / row["oracle_sharpe"], 3) if row["oracle_sharpe"] > 0 else None
        row["oos_exposure"] = round(float(np.mean(traded["positions"] != 0)), 3)
        row["oos_long_share"] = round(float(np.mean(traded["positions"] == 1)), 3)
        row["promoted_params"] = traded["params"]
    return row


def oracle_returns(
    series: synthetic.SyntheticSeries, oracle: np.ndarray, start: int, end: int, fees: float, slippage: float
) -> tuple[pd.Series, np.ndarray]:
    """The closes of bars [start, end) and the oracle's per-bar returns there, through the
    chain's backtest."""
    from pipelines.trading.backtest import Costs, backtest_with_returns

    bars = series.bars.iloc[start:end]
    close = pd.Series(bars["close"].to_numpy(), index=pd.DatetimeIndex(bars["timestamp"]))
    positions = pd.DataFrame({"oracle": oracle[start:end].astype(int)}, index=close.index)
    return close, backtest_with_returns(close, positions, Costs(fees, slippage))[1][:, 0]


# the volatility features a causal reader may read (pipelines.features.core)
READER_WINDOWS = (20, 10)


def vol_regime_causal_positions(series: synthetic.SyntheticSeries, window: int = 20) -> dict[str, np.ndarray]:
    """A causal reading of a volatility regime, with the truth's help: the trailing ``window``-bar
    volatility of log returns (``vol_20``, ``vol_10`` are features) against the geometric middle
    of the calm and storm volatilities the series was drawn with, long below it and short above it
    (``long/short``) or flat (``long-only``)."""
    calm, storm = series.truth["calm"]["vol"], series.truth["storm"]["vol"]
    log_returns = np.log(series.bars["close"]).diff()
    calm_now = log_returns.rolling(window).std().to_numpy() < np.sqrt(calm * storm)
    return {"long/short": np.where(calm_now, 1, -1), "long-only": calm_now.astype(int)}


def causal_reader(
    series: synthetic.SyntheticSeries,
    folds: list[slice],
    split: int,
    fees: float,
    slippage: float,
    sr0: float,
    windows: tuple[int, ...] = READER_WINDOWS,
) -> dict[str, Any]:
    """The volatility regime's yardstick. Its oracle knows the true regime of every bar, which no
    model can; the causal reader (``vol_regime_causal_positions`` on each of ``windows``) is the
    best a model could do. The window and side a search would pick (the better Sharpe of its
    walk-forward active returns), its DSR as the run's gate would compute it had it won the run's
    search (active returns over ``folds``, against the run's SR0) and its unseen-year Sharpe."""
    from pipelines.search.stats import sharpe_ratio

    rules = {
        f"vol_{window} {side}": pos
        for window in windows
        for side, pos in vol_regime_causal_positions(series, window).items()
    }
    active = {
        name: walk_forward_active(series.bars, pos, folds, fees, slippage) for name, pos in rules.items()
    }
    picked = max(active, key=lambda name: sharpe_ratio(active[name]))
    unseen = series.bars.iloc[split:].reset_index(drop=True)
    return {
        "causal_side": picked,
        "causal_dsr_at_run_sr0": round(psr(active[picked], sr0), 4),
        "causal_sharpe": round(backtest_sharpe(unseen, rules[picked][split:], fees, slippage), 3),
    }


def walk_forward_folds(holdout: int, n_folds: int, val_bars: int) -> list[slice]:
    """The validation blocks of the run's walk-forward, oldest first, ending at the holdout."""
    return [
        slice(holdout - (n_folds - k) * val_bars, holdout - (n_folds - k - 1) * val_bars)
        for k in range(n_folds)
    ]


def walk_forward_active(
    bars: pd.DataFrame, positions: np.ndarray, folds: list[slice], fees: float, slippage: float
) -> np.ndarray:
    """Per-bar active returns of ``positions`` over the walk-forward folds, as the search scores a
    trial for the DSR: each fold traded (and its buy-and-hold benchmark held) from its own first
    close, folds concatenated, the exposure to the benchmark taken out."""
    from pipelines.search.benchmark import active_returns, traded_benchmark_returns
    from pipelines.trading.backtest import Costs, backtest_with_returns

    costs = Costs(fees, slippage)
    strategy, bench = [], []
    for fold in folds:
        close = pd.Series(
            bars["close"].to_numpy()[fold], index=pd.DatetimeIndex(bars["timestamp"].iloc[fold])
        )
        held = pd.DataFrame({"rule": np.asarray(positions)[fold].astype(int)}, index=close.index)
        strategy.append(np.nan_to_num(backtest_with_returns(close, held, costs)[1][:, 0]))
        bench.append(traded_benchmark_returns(close, "buy_and_hold", costs, 252))
    return active_returns(np.concatenate(strategy), np.concatenate(bench))


def psr(returns: np.ndarray, sr0: float) -> float:
    """The PSR of these returns against the per-bar bar ``sr0``: the gate's DSR with the bar given."""
    from pipelines.search.stats import deflated_sharpe_ratio

    return deflated_sharpe_ratio(returns, 1, 0.0, sr0_floor=sr0).dsr


def holdout_p(
    close: pd.Series, returns: np.ndarray, positions: np.ndarray, fees: float, slippage: float
) -> float:
    """The p of the gate's holdout benchmark test ("alpha > 0", paired with buy-and-hold traded
    as the model is) for the oracle on the run's holdout bars, traded as one block: how often a
    perfect model would fail that check."""
    from pipelines.search.benchmark import compare_to_benchmark, traded_benchmark_returns
    from pipelines.trading.backtest import Costs

    bench = traded_benchmark_returns(close, "buy_and_hold", Costs(fees, slippage), 252)
    exposure = float(np.mean(positions != 0))
    return compare_to_benchmark(returns, bench, "buy_and_hold", exposure).p_value


def yardstick_earns(row: dict[str, Any]) -> bool:
    """Would the best a model could do have passed this run's gate and earned on the unseen year?
    The yardstick is the oracle where it is causal (AR(1), momentum, weekday: rules on past bars
    and the calendar; its DSR from raw walk-forward returns, as ``oracle_dsr_at_run_sr0`` always
    was), the causal reader for the volatility regime (``causal_reader``, from active returns)."""
    if "causal_sharpe" in row:
        return row["causal_dsr_at_run_sr0"] >= 0.95 and row["causal_sharpe"] > 0
    return row["oracle_dsr_at_run_sr0"] >= 0.95 and row["oracle_sharpe"] > 0


def summarize(rows: dict[str, dict]) -> dict[str, Any]:
    promoted = {k: r for k, r in rows.items() if r["promoted"]}
    earning = [r for r in rows.values() if yardstick_earns(r)]
    ratios = [r["oos_vs_oracle"] for r in promoted.values() if r.get("oos_vs_oracle") is not None]
    return {
        "series": len(rows),
        "promoted": len(promoted),
        "planted_oos_vs_oracle": float(np.median(ratios)) if ratios else None,
        "ratios_in_median": len(ratios),  # a promoted series whose oracle Sharpe <= 0 has no ratio
        "oos_sharpe_positive": sum(r["oos_sharpe"] > 0 for r in promoted.values()),
        "oracle_sharpe_median": float(np.median([r["oracle_sharpe"] for r in rows.values()])),
        # series the oracle itself could get through a DSR >= 0.95 gate (no search to deflate)
        "oracle_passes_dsr_0_95": sum(r["oracle_psr_walk_forward"] >= 0.95 for r in rows.values()),
        # ... and as the winner of the run's search, deflated by the run's SR0
        "oracle_passes_run_dsr": sum(r["oracle_dsr_at_run_sr0"] >= 0.95 for r in rows.values()),
        # series whose oracle has a positive holdout alpha (p < 0.5), the old holdout check
        "oracle_holdout_alpha_positive": sum(r["oracle_holdout_p"] < 0.5 for r in rows.values()),
        # the proposed criterion: of the series where the best a model could do would have passed
        # the run's gate and earned on the unseen year, those the chain promoted and earned on
        "yardstick_passes_and_earns": len(earning),
        "promoted_and_earned_of_those": sum(r["promoted"] and r["oos_sharpe"] > 0 for r in earning),
    }


def run() -> dict:
    started = time.perf_counter()
    n_ar1, n_extra = env_int("RETUNE_BENCH_SERIES", 10), env_int("RETUNE_BENCH_EXTRA_SERIES", 3)
    runs = env_int("RETUNE_BENCH_RERUNS", 1)
    planted = structures(n_ar1, n_extra)
    specs = [
        SeriesSpec(
            label,
            f"bench_planted_{label}",
            runs,
            bars=series.bars,
            # one bar appended before each rerun; the last run's CSV ends where the unseen year begins
            first_bars=BARS - UNSEEN - (runs - 1),
            append=True,
            truth=series.truth,
        )
        for label, series, _ in planted
    ]
    results, root = run_all(specs, NAME)
    try:
        rows = {}
        for result, (label, series, oracle) in zip(results, planted, strict=True):
            rows[label] = score_series(result, series, oracle)
            r = rows[label]
            log(
                f"[{label}] promoted={r['promoted']} oos={r.get('oos_sharpe')} oracle={r['oracle_sharpe']} "
                f"(no costs {r['oracle_sharpe_no_costs']})"
            )
    finally:
        cleanup(root)
    by_structure: dict[str, dict] = {}
    for label, row in rows.items():
        by_structure.setdefault(structure_of(label), {})[label] = row
    summaries = {name: summarize(group) for name, group in by_structure.items()}
    ar1 = summaries.get("ar1", {"promoted": 0})
    return {
        "value": ar1["promoted"],
        "unit": f"AR(1) series (phi={PHI}, {BARS} bars, last {UNSEEN} unseen) promoted, of {n_ar1}",
        "goal": f">= {math.ceil(0.8 * n_ar1)}",
        "details": {
            "planted_oos_vs_oracle": ar1.get("planted_oos_vs_oracle"),
            "oos_sharpe_positive": ar1.get("oos_sharpe_positive"),
            "by_structure": summaries,
            "series": rows,
            "n_trials": specs[0].n_trials if specs else None,
            "config": "pipelines/defaults/daily.yaml + promotion_policy: auto (one home per series)",
            "config_overrides": config_overrides(),
            "extra_strengths": EXTRA_STRENGTHS,
            "fill": "positions decided at t's close fill at t's close (pipelines.trading.backtest)",
            "wall_s": round(time.perf_counter() - started, 1),
        },
    }

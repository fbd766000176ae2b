"""Our vectorized ``backtest_positions`` against backtesting.py on the same signals.

Data: real S&P 500 daily bars (``arch.data.sp500``). Signals: deterministic moving-average
crossovers and momentum thresholds, long-only (0/1) and long-short (-1/0/1). A position is
decided and filled at a bar's close, all-in, fees on both legs.

Arm A scores every variant in one ``backtest_positions`` call. Arm B runs one backtesting.py
backtest per variant, configured to the same semantics (see ``SEMANTICS``). Parity (same trade
count, same final equity within ``REL_TOL``) is checked per variant before anything is timed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NAME = "backtest_vs_backtestingpy"
FEES = 0.0005
SLIPPAGE = 0.0
REPEATS = 5
# backtesting.py trades whole units. With units of 1e-16 index points (index <= ~3000) and
# equity >= ~0.3 an entry buys >= ~1e12 units, so rounding down to a whole unit costs < 1e-12
# of equity per entry; over <= ~500 trades that bounds the drift by ~5e-10 < REL_TOL.
FRACTIONAL_UNIT = 1e-16
REL_TOL = 1e-9
ROOT = Path(__file__).resolve().parent.parent

SEMANTICS = [
    "backtesting.py fills a trade_on_close market order at the close of the bar it was placed "
    "on, but only while processing the following bar; so Strategy.next at bar t orders the "
    "position held from bar t's close: our position decided (and filled) at bar t.",
    "That leaves no bar to fill an order placed on the last bar, which vectorbt does fill; arm B "
    "gets one extra copy of the last bar (same prices), so the final equity is unchanged.",
    "backtesting.py sizes in whole units (floor of available cash / price incl. commission); "
    "vectorbt buys fractionally. FractionalBacktest with a tiny unit makes the gap ~1e-13.",
    "backtesting.py charges `commission` on entry and exit value, like vectorbt `fees`; "
    "exclusive_orders=True makes a reversal close the old trade first and then size the new "
    "one from the freed cash, which is what vectorbt's upon_opposite_entry='reverse' does.",
    "Arm B runs without tqdm progress bars (backtesting.py's own path when tqdm is absent).",
    "Open trades at the end: vectorbt counts them and values them at the last close without "
    "an exit fee; backtesting.py leaves them out of '# Trades' unless finalize_trades=True, "
    "which would also charge the exit commission. Arm B keeps finalize_trades=False and counts "
    "closed + open trades.",
]


def load_bars() -> pd.DataFrame:
    from arch.data import sp500

    return sp500.load()[["Open", "High", "Low", "Close", "Volume"]].astype(float)


def make_positions(close: pd.Series) -> pd.DataFrame:
    """Deterministic signal variants; each column holds positions decided at each close."""
    sma = {w: close.rolling(w).mean() for w in (3, 5, 10, 20, 50, 100, 150, 200)}
    cols: dict[str, pd.Series] = {}
    for fast, slow in product((3, 5, 10, 20), (50, 100, 150, 200)):
        cols[f"sma_{fast}_{slow}"] = (sma[fast] > sma[slow]).astype(int)
    for lookback, thr in product((5, 10, 20, 60, 120, 250), (0.0, 0.02)):
        cols[f"mom_{lookback}_{thr:g}"] = (close.pct_change(lookback) > thr).astype(int)
    for fast, slow in ((5, 50), (10, 100), (20, 200), (50, 200)):
        cols[f"ls_sma_{fast}_{slow}"] = np.sign(sma[fast] - sma[slow]).fillna(0).astype(int)
    for lookback in (20, 60, 120, 250):
        cols[f"ls_mom_{lookback}"] = np.sign(close.pct_change(lookback)).fillna(0).astype(int)
    return pd.DataFrame(cols, index=close.index)


def arm_ours(close: pd.Series, positions: pd.DataFrame) -> pd.DataFrame:
    from pipelines.trading.backtest import Costs, backtest_positions

    metrics = backtest_positions(close, positions, Costs(fees=FEES, slippage=SLIPPAGE))
    return metrics[["n_trades", "final_value"]]


def make_theirs(bars: pd.DataFrame, positions: pd.DataFrame) -> Callable[[], pd.DataFrame]:
    """A callable running one backtesting.py backtest per positions column."""
    import backtesting.backtesting
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest

    # No progress bars: the library's own code path for when tqdm is not installed.
    backtesting.backtesting._tqdm = lambda seq, **_: seq

    class HeldPositions(Strategy):
        held: np.ndarray = np.zeros(0, dtype=int)  # position to hold from bar i's close

        def init(self) -> None:
            pass

        def next(self) -> None:
            target = self.held[len(self.data) - 1]
            size = self.position.size
            if target == (size > 0) - (size < 0):
                return
            if target == 0:
                self.position.close()
            elif target > 0:
                self.buy()
            else:
                self.sell()

    last = bars.iloc[[-1]].set_axis([bars.index[-1] + pd.Timedelta(days=1)])
    padded = pd.concat([bars, last])
    held = positions.fillna(0).astype(int)
    held = pd.concat([held, held.iloc[[-1]]]).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = FractionalBacktest(
            padded,
            HeldPositions,
            cash=1.0,
            commission=FEES,
            spread=SLIPPAGE,
            trade_on_close=True,
            exclusive_orders=True,
            finalize_trades=False,
            fractional_unit=FRACTIONAL_UNIT,
        )

    def run_all() -> pd.DataFrame:
        rows = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j in range(held.shape[1]):
                stats = bt.run(held=held[:, j])
                strategy = stats["_strategy"]
                n_trades = len(strategy.closed_trades) + len(strategy.trades)
                rows.append((n_trades, float(stats["Equity Final [$]"])))
        return pd.DataFrame(rows, index=positions.columns, columns=["n_trades", "final_value"])

    return run_all


def check_parity(ours: pd.DataFrame, theirs: pd.DataFrame) -> dict[str, Any]:
    rel = (ours["final_value"] - theirs["final_value"]).abs() / ours["final_value"].abs()
    same_trades = ours["n_trades"].astype(int) == theirs["n_trades"].astype(int)
    bad = [c for c in ours.index if not (same_trades[c] and rel[c] <= REL_TOL)]
    per_variant = {
        str(c): {
            "n_trades": int(ours.at[c, "n_trades"]),
            "n_trades_backtestingpy": int(theirs.at[c, "n_trades"]),
            "final_value": float(ours.at[c, "final_value"]),
            "rel_diff": float(rel[c]),
        }
        for c in ours.index
    }
    if bad:
        raise AssertionError(f"parity failed for {bad}: {[per_variant[str(c)] for c in bad]}")
    return {
        "rel_tol": REL_TOL,
        "max_rel_diff": float(rel.max()),
        "trades_equal": bool(same_trades.all()),
        "passed": True,
        "per_variant": per_variant,
    }


def cold(arm: str, cache_dir: str) -> dict[str, float]:
    """First call of one arm in a fresh interpreter (import, then any remaining numba JIT or disk cache)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, __file__, "--cold", arm],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cold_child(arm: str) -> None:
    bars = load_bars()
    positions = make_positions(bars["Close"])
    t0 = time.perf_counter()
    if arm == "ours":
        import vectorbt  # noqa: F401

        def call() -> object:
            return arm_ours(bars["Close"], positions)
    else:
        import backtesting  # noqa: F401

        call = make_theirs(bars, positions)
    t1 = time.perf_counter()
    call()
    t2 = time.perf_counter()
    call()
    t3 = time.perf_counter()
    times = {"import_s": t1 - t0, "first_call_s": t2 - t1, "second_call_s": t3 - t2}
    print(json.dumps(times))


def run() -> dict[str, Any]:
    bars = load_bars()
    close = bars["Close"]
    positions = make_positions(close)

    def ours() -> pd.DataFrame:
        return arm_ours(close, positions)

    theirs = make_theirs(bars, positions)

    # Untimed warm-up of both arms; its results are the ones checked for parity.
    parity = check_parity(ours(), theirs())

    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    arms = {"ours": ours, "theirs": theirs}
    for r in range(REPEATS):
        order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
        for name in order:
            t0 = time.perf_counter()
            arms[name]()
            times[name].append(time.perf_counter() - t0)
    ours_s = statistics.median(times["ours"])
    theirs_s = statistics.median(times["theirs"])

    with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache_dir:
        cold_ours_empty = cold("ours", cache_dir)
        cold_ours_cached = cold("ours", cache_dir)
    cold_theirs = cold("theirs", tempfile.gettempdir())

    n_variants = positions.shape[1]
    n_long_short = int((positions < 0).any().sum())
    return {
        "value": round(theirs_s / ours_s, 2),
        "unit": "x",
        "goal": ">= 30x",
        "details": {
            "what": "warm median time of backtesting.py (one Backtest.run per variant) / warm "
            "median time of our backtest_positions (all variants in one vectorbt call)",
            "data": f"arch.data.sp500 daily {close.index[0].date()}..{close.index[-1].date()}",
            "n_variants": n_variants,
            "n_long_only": n_variants - n_long_short,
            "n_long_short": n_long_short,
            "n_bars": len(close),
            "fees": FEES,
            "slippage": SLIPPAGE,
            "repeats": REPEATS,
            "ours_warm_median_s": ours_s,
            "theirs_warm_median_s": theirs_s,
            "theirs_per_variant_median_s": theirs_s / n_variants,
            "ours_warm_s": times["ours"],
            "theirs_warm_s": times["theirs"],
            "cold": {
                "ours_empty_numba_cache": cold_ours_empty,
                "ours_warm_numba_disk_cache": cold_ours_cached,
                "theirs": cold_theirs,
                "speedup_first_call_empty_cache": cold_theirs["first_call_s"]
                / cold_ours_empty["first_call_s"],
            },
            "parity": parity,
            "semantics": SEMANTICS,
            "versions": _versions(),
        },
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("vectorbt", "vectorbt-rust", "backtesting", "numba", "pandas", "numpy")}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--cold":
        _cold_child(sys.argv[2])
    else:
        sys.exit("usage: run via bench/run.py, or --cold ours|theirs")

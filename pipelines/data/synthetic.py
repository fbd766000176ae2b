"""Seeded synthetic daily bars whose return process is known, each with its oracle rule.

A decision-quality test needs series where "there is no edge" and "this is the edge" are facts,
not estimates: random walks are the null, and AR(1), 20-bar momentum, a volatility regime and a
weekday effect are planted structures a trading model should find. Every generator returns a
``SyntheticSeries``: bars in the shape every bar source returns (``timestamp`` on business days,
``open, high, low, close, volume``, OHLC consistent, volume > 0, so they pass the validation
suite) and the oracle's position series.

Conventions shared by every generator:

* ``log_returns[t] = log(close[t] / close[t-1])`` (``close[-1]`` = 100), so the truth is stated
  on the same returns a model's features see.
* ``oracle[t]`` is the position (-1 flat-short, 0 flat, 1 long) decided at bar t's close from
  information up to t; it is meant to earn the next bar's return ``log_returns[t+1]``
  (``next_bar_pnl``). A backtest that fills a bar later earns ``log_returns[t+2]`` instead; the
  weekday oracle takes ``lead`` for that, the others' sign does not depend on it.
* Each random stream has its own child seed, so a shorter series with the same seed is an exact
  prefix of a longer one (nothing at t depends on how many bars follow).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.calendar import SESSIONS

START = "2000-01-03"
BARS_PER_YEAR = SESSIONS["xnys"].days_per_year  # business-day bars: the equity calendar's year
_STREAMS = ("returns", "state", "gap", "high", "low", "volume")


@dataclass(frozen=True)
class SyntheticSeries:
    """Bars with a known return process and the oracle's positions (see the module docstring)."""

    name: str
    bars: pd.DataFrame
    log_returns: np.ndarray
    oracle: np.ndarray  # int8, -1/0/1, decided at t's close
    truth: dict[str, Any] = field(default_factory=dict)  # the generating parameters

    def __len__(self) -> int:
        return len(self.bars)


def random_walk(n: int, seed: int, drift: float = 0.0, vol: float = 0.01) -> SyntheticSeries:
    """The null: i.i.d. normal log returns with mean ``drift``; no rule beats holding the drift.

    The oracle holds the drift's sign (flat when there is none): what exposure earns for free,
    which a gate must not mistake for skill.
    """
    r = drift + vol * _rng(seed, "returns").standard_normal(n)
    oracle = np.full(n, int(np.sign(drift)), dtype=np.int8)
    truth = {"drift": drift, "vol": vol}
    return _series("random_walk", r, oracle, seed, truth)


def ar1(n: int, seed: int, phi: float = 0.1, vol: float = 0.01) -> SyntheticSeries:
    """``r[t] = phi * r[t-1] + e[t]``: tomorrow's expected return has today's sign when phi > 0.

    Oracle: long-short on the sign of today's return (``ar1_rule``). ``vol`` is the innovation
    standard deviation.
    """
    if not -1 < phi < 1:
        raise ValueError(f"phi={phi} must be in (-1, 1) for a stationary AR(1)")
    e = vol * _rng(seed, "returns").standard_normal(n)
    r = np.empty(n)
    prev = 0.0
    for t in range(n):
        prev = r[t] = phi * prev + e[t]
    series = _series("ar1", r, np.zeros(n, dtype=np.int8), seed, {"phi": phi, "vol": vol})
    return _with_oracle(series, ar1_rule(series.bars) * (1 if phi >= 0 else -1))


def momentum(
    n: int, seed: int, lookback: int = 20, strength: float = 0.5, vol: float = 0.01
) -> SyntheticSeries:
    """A planted trend: the next return's mean is ``strength`` x the mean of the last ``lookback``.

    ``r[t] = strength * mean(r[t-lookback:t]) + e[t]`` (stationary for ``|strength| < 1``), so the
    sign of the trailing ``lookback``-bar return is the sign of the next bar's expected return.
    Oracle: ``momentum_rule`` (long-short on that sign; flat until ``lookback`` bars exist).
    """
    if not 0 < strength < 1:
        raise ValueError(f"strength={strength} must be in (0, 1) to stay stationary")
    e = vol * _rng(seed, "returns").standard_normal(n)
    r = np.zeros(n)
    trailing = 0.0  # sum of the last `lookback` returns
    for t in range(n):
        mean = trailing / lookback if t >= lookback else 0.0
        r[t] = strength * mean + e[t]
        trailing += r[t] - (r[t - lookback] if t >= lookback else 0.0)
    truth = {"lookback": lookback, "strength": strength, "vol": vol}
    series = _series("momentum", r, np.zeros(n, dtype=np.int8), seed, truth)
    return _with_oracle(series, momentum_rule(series.bars, lookback))


def vol_regime(
    n: int,
    seed: int,
    calm_vol: float = 0.006,
    calm_drift: float = 0.0012,
    storm_vol: float = 0.018,
    storm_drift: float = -0.0012,
    switch: float = 0.01,
) -> SyntheticSeries:
    """Persistent calm and storm regimes: calm bars drift up, storm bars drift down.

    The leverage effect in caricature: the regime is hidden but shows in the trailing volatility
    (one of the model's features), lasts ~1/``switch`` bars, and sets the sign of the mean, so
    "long when calm, short when stormy" is learnable. By default the drifts cancel over time
    (buy-and-hold earns ~nothing) and the oracle's annualized Sharpe is ~1.4. Oracle: the regime
    of bar t (the one bar t's return was drawn in; the next bar stays in it with probability
    1 - ``switch``): long when calm, short when stormy.
    """
    flips = _rng(seed, "state").random(n) < switch
    storm = np.cumsum(flips) % 2 == 1
    e = _rng(seed, "returns").standard_normal(n)
    r = np.where(storm, storm_drift + storm_vol * e, calm_drift + calm_vol * e)
    oracle = np.where(storm, int(np.sign(storm_drift)), int(np.sign(calm_drift))).astype(np.int8)
    truth = {
        "calm": {"vol": calm_vol, "drift": calm_drift},
        "storm": {"vol": storm_vol, "drift": storm_drift},
        "switch": switch,
        "storm_share": float(storm.mean()),
    }
    return _series("vol_regime", r, oracle, seed, truth)


def day_of_week(
    n: int,
    seed: int,
    effects: Mapping[int, float] | None = None,
    vol: float = 0.01,
    lead: int = 1,
) -> SyntheticSeries:
    """A weekday effect: bars falling on weekday d (0 = Monday) have mean ``effects[d]``.

    The calendar is known in advance, so the oracle may look at the weekday of a future bar:
    long at t when the bar ``lead`` bars later falls on a positive weekday, short on a negative
    one, else flat (``weekday_rule``). ``lead=1`` earns the next bar; pass 2 for a backtest that
    fills a bar after the decision. Default: Fridays +0.2% (a per-bar Sharpe of 0.2 on Fridays).
    """
    effects = dict({4: 0.002} if effects is None else effects)
    if not set(effects) <= set(range(5)):
        raise ValueError(f"weekday effects {sorted(effects)} must be business days 0..4")
    weekdays = _timestamps(n).dayofweek.to_numpy()
    mean = np.array([effects.get(int(d), 0.0) for d in weekdays])
    r = mean + vol * _rng(seed, "returns").standard_normal(n)
    truth = {"effects": effects, "vol": vol, "lead": lead}
    series = _series("day_of_week", r, np.zeros(n, dtype=np.int8), seed, truth)
    return _with_oracle(series, weekday_rule(series.bars, effects, lead))


# --- oracle rules that read only bars up to t (also applicable to any other series) -------------


def ar1_rule(bars: pd.DataFrame) -> np.ndarray:
    """Position at t = sign of bar t's close-to-close return (flat on the first bar)."""
    r = np.diff(np.log(bars["close"].to_numpy(dtype=float)), prepend=np.nan)
    return np.nan_to_num(np.sign(r)).astype(np.int8)


def momentum_rule(bars: pd.DataFrame, lookback: int = 20) -> np.ndarray:
    """Position at t = sign of the return over the last ``lookback`` bars (flat before that)."""
    log_close = np.log(bars["close"].to_numpy(dtype=float))
    out = np.zeros(len(log_close), dtype=np.int8)
    out[lookback:] = np.sign(log_close[lookback:] - log_close[:-lookback])
    return out


def weekday_rule(bars: pd.DataFrame, effects: Mapping[int, float], lead: int = 1) -> np.ndarray:
    """Position at t = sign of the effect of the weekday ``lead`` business days after bar t."""
    target = (pd.DatetimeIndex(bars["timestamp"]) + pd.offsets.BDay(lead)).dayofweek
    return np.sign([effects.get(int(d), 0.0) for d in target]).astype(np.int8)


# --- scoring and files ---------------------------------------------------------------------------


def next_bar_pnl(positions: np.ndarray, log_returns: np.ndarray) -> np.ndarray:
    """Per-bar log P&L of holding ``positions[t]`` over bar t+1 (no costs): the oracle's ideal."""
    return np.asarray(positions[:-1], dtype=float) * np.asarray(log_returns[1:], dtype=float)


def annualized_sharpe(pnl: np.ndarray, bars_per_year: int = BARS_PER_YEAR) -> float:
    """Mean over standard deviation of per-bar P&L, x sqrt(bars per year); 0 with no variance."""
    std = float(np.std(pnl, ddof=1)) if len(pnl) > 1 else 0.0
    return float(np.mean(pnl) / std * np.sqrt(bars_per_year)) if std > 0 else 0.0


def write_csv(bars: pd.DataFrame, path: str | Path) -> Path:
    """Write bars as a ``csv:`` data source reads them (ISO dates, full float precision)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = bars.copy()
    out["timestamp"] = pd.DatetimeIndex(out["timestamp"]).strftime("%Y-%m-%d")
    tmp = path.with_suffix(path.suffix + ".tmp")
    out.to_csv(tmp, index=False, float_format="%.17g")
    tmp.replace(path)  # a reader never sees half a file
    return path


# --- internals -----------------------------------------------------------------------------------


def _rng(seed: int, stream: str) -> np.random.Generator:
    """One generator per stream and seed, so streams never shift each other with ``n``."""
    return np.random.default_rng(np.random.SeedSequence([seed, _STREAMS.index(stream)]))


def _timestamps(n: int) -> pd.DatetimeIndex:
    return pd.bdate_range(START, periods=n)


def _series(
    name: str, r: np.ndarray, oracle: np.ndarray, seed: int, truth: dict[str, Any]
) -> SyntheticSeries:
    return SyntheticSeries(name, bars_from_log_returns(r, seed), r, oracle, {"seed": seed, **truth})


def _with_oracle(series: SyntheticSeries, oracle: np.ndarray) -> SyntheticSeries:
    return SyntheticSeries(series.name, series.bars, series.log_returns, oracle, series.truth)


def bars_from_log_returns(log_returns: np.ndarray, seed: int) -> pd.DataFrame:
    """Business-day OHLCV bars whose close-to-close log returns are exactly ``log_returns``.

    The open gaps a little from the previous close; high and low extend beyond the body by a
    random share, so OHLC are consistent; volume is positive and carries no information.
    """
    n = len(log_returns)
    gap = _rng(seed, "gap").normal(0.0, 0.002, n)
    up, down = _rng(seed, "high").uniform(0, 0.004, n), _rng(seed, "low").uniform(0, 0.004, n)
    volume = _rng(seed, "volume").integers(10_000, 100_000, n).astype(float)
    close = 100.0 * np.exp(np.cumsum(log_returns))
    open_ = np.r_[100.0, close[:-1]] * np.exp(gap)
    return pd.DataFrame(
        {
            "timestamp": _timestamps(n).astype("datetime64[ns]"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + up),
            "low": np.minimum(open_, close) * (1 - down),
            "close": close,
            "volume": volume,
        }
    )

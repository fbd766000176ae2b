"""The synthetic test bed: series with a known truth are only useful if the truth holds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.data import synthetic
from pipelines.data.sources import load_bars
from pipelines.validation.suite import BarExpectations, validate_bars

GENERATORS = {
    "random_walk": lambda n, seed: synthetic.random_walk(n, seed),
    "random_walk_drift": lambda n, seed: synthetic.random_walk(n, seed, drift=0.0005),
    "ar1": lambda n, seed: synthetic.ar1(n, seed, phi=0.1),
    "momentum": lambda n, seed: synthetic.momentum(n, seed),
    "vol_regime": lambda n, seed: synthetic.vol_regime(n, seed),
    "day_of_week": lambda n, seed: synthetic.day_of_week(n, seed),
}
PLANTED = ("ar1", "momentum", "vol_regime", "day_of_week")


def oracle_sharpe(series: synthetic.SyntheticSeries) -> float:
    return synthetic.annualized_sharpe(synthetic.next_bar_pnl(series.oracle, series.log_returns))


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_series_other_seed_other_series(name):
    make = GENERATORS[name]
    a, b, c = make(300, 7), make(300, 7), make(300, 8)
    pd.testing.assert_frame_equal(a.bars, b.bars)
    np.testing.assert_array_equal(a.oracle, b.oracle)
    assert not np.allclose(a.bars["close"], c.bars["close"])


@pytest.mark.parametrize("name", GENERATORS)
def test_a_shorter_series_is_a_prefix_of_a_longer_one(name):
    # Nothing at bar t depends on how many bars follow: the generator has no look-ahead either.
    short, long = GENERATORS[name](200, 3), GENERATORS[name](500, 3)
    pd.testing.assert_frame_equal(short.bars, long.bars.iloc[:200])
    np.testing.assert_array_equal(short.oracle, long.oracle[:200])


@pytest.mark.parametrize("name", GENERATORS)
def test_bars_are_valid_ohlcv_on_business_days(name):
    series = GENERATORS[name](2000, 1)
    bars = series.bars
    assert list(bars.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars[["open", "high", "low", "close"]] > 0).all().all()
    assert (bars["volume"] > 0).all()
    ts = pd.DatetimeIndex(bars["timestamp"])
    assert ts.is_monotonic_increasing and ts.is_unique and (ts.dayofweek < 5).all()
    np.testing.assert_allclose(np.diff(np.log(bars["close"])), series.log_returns[1:], atol=1e-12)
    assert set(np.unique(series.oracle)) <= {-1, 0, 1}


def test_bars_pass_the_validation_suite_after_a_csv_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("RETUNE_DATA_DIR", str(tmp_path))  # csv: paths must be in the data dir
    series = synthetic.ar1(400, 0, phi=0.1)
    path = synthetic.write_csv(series.bars, tmp_path / "ar1.csv")
    bars = load_bars(f"csv:{path}")
    np.testing.assert_allclose(bars["close"], series.bars["close"], rtol=1e-15)
    as_of = pd.Timestamp(bars["timestamp"].iloc[-1])
    validate_bars(bars, BarExpectations(min_rows=300, as_of=as_of, max_staleness=pd.Timedelta(days=7)))


@pytest.mark.parametrize("phi", [0.1, 0.3, -0.2])
def test_ar1_lag1_autocorrelation_is_phi(phi):
    r = synthetic.ar1(20_000, 5, phi=phi).log_returns
    sample = np.corrcoef(r[:-1], r[1:])[0, 1]
    assert sample == pytest.approx(phi, abs=3 / np.sqrt(len(r)))  # ~3 standard errors


def test_momentum_plants_the_trailing_return_sign():
    series = synthetic.momentum(20_000, 2, lookback=20, strength=0.5)
    log_close = np.log(series.bars["close"].to_numpy())
    trailing = log_close[20:-1] - log_close[:-21]  # known at t
    nxt = series.log_returns[21:]  # bar t+1
    assert np.corrcoef(trailing, nxt)[0, 1] > 0.05


def test_vol_regime_is_visible_in_trailing_volatility():
    series = synthetic.vol_regime(5000, 4)
    storm = series.oracle < 0
    vol = pd.Series(series.log_returns).rolling(20).std().to_numpy()
    assert np.nanmedian(vol[storm]) > 2 * np.nanmedian(vol[~storm])
    assert 0.2 < series.truth["storm_share"] < 0.8


def test_weekday_effect_is_on_the_given_weekday():
    series = synthetic.day_of_week(20_000, 6, effects={4: 0.002})
    weekday = pd.DatetimeIndex(series.bars["timestamp"]).dayofweek.to_numpy()
    fridays, others = series.log_returns[weekday == 4], series.log_returns[weekday != 4]
    assert fridays.mean() - others.mean() == pytest.approx(0.002, abs=0.0006)
    # the oracle holds through Fridays only: long on Thursdays' close
    assert set(weekday[series.oracle == 1]) == {3}


@pytest.mark.parametrize("name", PLANTED)
def test_oracle_earns_on_planted_series(name):
    sharpes = [oracle_sharpe(GENERATORS[name](3000, seed)) for seed in range(8)]
    assert np.median(sharpes) > 0.8, sharpes
    assert min(sharpes) > 0, sharpes


@pytest.mark.parametrize(
    "rule",
    [
        synthetic.ar1_rule,
        synthetic.momentum_rule,
        lambda bars: synthetic.weekday_rule(bars, {4: 0.002}),
    ],
    ids=["ar1", "momentum", "day_of_week"],
)
def test_planted_rules_earn_nothing_on_random_walks(rule):
    # The oracle's edge is the planted structure, not an artifact of the rule or of the bars.
    sharpes = []
    for seed in range(40):
        walk = synthetic.random_walk(1000, seed)
        sharpes.append(synthetic.annualized_sharpe(synthetic.next_bar_pnl(rule(walk.bars), walk.log_returns)))
    # one 1000-bar Sharpe has a standard error of ~0.5 annualized; the mean of 40 ~0.08
    assert abs(np.mean(sharpes)) < 0.3, np.mean(sharpes)


def test_random_walk_oracle_is_exposure_only():
    assert set(synthetic.random_walk(100, 0).oracle) == {0}
    assert set(synthetic.random_walk(100, 0, drift=0.001).oracle) == {1}
    assert set(synthetic.random_walk(100, 0, drift=-0.001).oracle) == {-1}


@pytest.mark.parametrize(
    "rule",
    [synthetic.ar1_rule, synthetic.momentum_rule, lambda bars: synthetic.weekday_rule(bars, {4: 0.002})],
    ids=["ar1", "momentum", "day_of_week"],
)
def test_oracle_at_t_reads_nothing_after_t(rule):
    bars = synthetic.ar1(300, 9, phi=0.1).bars
    full = rule(bars)
    for t in (0, 1, 19, 20, 21, 150, 299):
        # the future replaced by something else entirely: the position at t must not move
        future = synthetic.random_walk(300, 100 + t, vol=0.05).bars.iloc[t + 1 :]
        scaled = future.assign(**{c: future[c] * 3.0 for c in ("open", "high", "low", "close")})
        tampered = pd.concat([bars.iloc[: t + 1], scaled.assign(timestamp=bars["timestamp"].iloc[t + 1 :])])
        assert rule(tampered.reset_index(drop=True))[t] == full[t]
        assert np.array_equal(rule(bars.iloc[: t + 1])[: t + 1], full[: t + 1])


def test_vol_regime_oracle_is_the_regime_already_drawn():
    # The regime of bar t is fixed when r[t] is drawn; a longer series (more future) cannot move it.
    a, b = synthetic.vol_regime(400, 2), synthetic.vol_regime(4000, 2)
    np.testing.assert_array_equal(a.oracle, b.oracle[:400])
    # and the oracle's information does not include r[t+1]: on the storm/calm path, its
    # positions are uncorrelated with the next bar's innovation
    series = synthetic.vol_regime(20_000, 3)
    storm = series.oracle[:-1] < 0
    nxt = series.log_returns[1:]
    z = np.where(storm, (nxt + 0.0012) / 0.018, (nxt - 0.0012) / 0.006)
    assert abs(np.corrcoef(series.oracle[:-1], z)[0, 1]) < 0.05


def test_write_csv_round_trips_exactly(tmp_path):
    bars = synthetic.momentum(50, 1).bars
    path = synthetic.write_csv(bars, tmp_path / "sub" / "m.csv")
    back = pd.read_csv(path, parse_dates=["timestamp"])
    back["timestamp"] = back["timestamp"].astype("datetime64[ns]")
    pd.testing.assert_frame_equal(back, bars, check_dtype=False)

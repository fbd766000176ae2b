"""pipelines.search.stats: PSR, DSR and PBO against the papers' worked examples and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pipelines.search.stats import (
    BacktestOverfitting,
    DeflatedSharpe,
    deflated_sharpe_from_moments,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    null_sharpe_variance,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratio,
)

DAYS_PER_YEAR = 250  # the DSR paper's annual -> daily conversion

# --------------------------------------------------------------------------- sharpe_ratio


def test_sharpe_ratio_is_per_period_mean_over_sample_std():
    x = np.array([0.01, -0.02, 0.03, 0.005, 0.0])
    assert sharpe_ratio(x) == pytest.approx(x.mean() / x.std(ddof=1), rel=1e-12)


def test_sharpe_ratio_drops_nan_and_inf():
    x = np.array([0.01, np.nan, -0.02, 0.03, np.inf, 0.005, -np.inf])
    assert sharpe_ratio(x) == pytest.approx(sharpe_ratio(np.array([0.01, -0.02, 0.03, 0.005])), rel=1e-12)


@pytest.mark.parametrize(
    "values",
    [[], [0.01], [np.nan, np.nan], [0.0, 0.0, 0.0], [0.001] * 50, [0.1, 0.1, np.nan, 0.1]],
)
def test_sharpe_ratio_is_zero_when_undefined(values):
    assert sharpe_ratio(np.array(values, dtype=float)) == 0.0


# --------------------------------------------------------------------------- PSR


def test_psr_paper_examples_sharpe_ratio_efficient_frontier():
    """Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", J. of Risk 15(2).

    Worked example: two years of monthly returns (T=24) with monthly SR 0.458 (annualized ~1.59).
    Under normal returns (skew 0, kurtosis 3) PSR(0) = 0.982; with the fund's skew -2.448 and
    kurtosis 10.164, PSR(0) = 0.913. Figures as printed (3 d.p.), transcribed in the paper-example
    tests of github.com/rubenbriones/Probabilistic-Sharpe-Ratio (tests/test_sharpe_ratio_stats.py).
    """
    assert round(probabilistic_sharpe_ratio(0.458, 0.0, 24, 0.0, 3.0), 3) == 0.982
    assert round(probabilistic_sharpe_ratio(0.458, 0.0, 24, -2.448, 10.164), 3) == 0.913


@pytest.mark.parametrize(
    ("sharpe", "skew", "kurtosis", "printed_std"),
    [(0.7079, -0.2250, 2.9570, 0.1028), (0.8183, -1.4455, 7.0497, 0.1550)],
)
def test_psr_sharpe_standard_error_paper_examples(sharpe, skew, kurtosis, printed_std):
    """Same paper, 134 monthly returns of two hedge-fund indices: the printed standard errors of SR
    (transcribed in the same repository's tests).

    sigma(SR) = sqrt((1 - g3 SR + (g4-1)/4 SR^2) / (T-1)). PSR against SR - sigma(SR) is
    Z(1) = 0.8413; the tolerance covers the 4-d.p. rounding of the printed sigma. The first index
    has RAW kurtosis 2.957 < 3: passing its excess kurtosis (-0.043) would give sigma ~ 0.088.
    """
    psr = probabilistic_sharpe_ratio(sharpe, sharpe - printed_std, 134, skew, kurtosis)
    assert psr == pytest.approx(sps.norm.cdf(1.0), abs=5e-4)


def test_psr_normal_returns_reduce_to_textbook_formula():
    sr, bench, n = 0.08, 0.02, 500
    expected = sps.norm.cdf((sr - bench) * math.sqrt(n - 1) / math.sqrt(1 + sr**2 / 2))
    assert probabilistic_sharpe_ratio(sr, bench, n, 0.0, 3.0) == pytest.approx(expected, rel=1e-12)


def test_psr_is_half_at_the_benchmark_and_monotone_in_sharpe_and_length():
    assert probabilistic_sharpe_ratio(0.1, 0.1, 250, -1.0, 6.0) == pytest.approx(0.5)
    by_sharpe = [probabilistic_sharpe_ratio(sr, 0.0, 250, -0.5, 5.0) for sr in (-0.1, 0.0, 0.05, 0.1, 0.2)]
    assert by_sharpe == sorted(by_sharpe) and len(set(by_sharpe)) == len(by_sharpe)
    by_length = [probabilistic_sharpe_ratio(0.05, 0.0, n, -0.5, 5.0) for n in (20, 100, 500, 2500)]
    assert by_length == sorted(by_length) and len(set(by_length)) == len(by_length)


def test_psr_penalizes_negative_skew_and_fat_tails():
    normal = probabilistic_sharpe_ratio(0.1, 0.0, 250, 0.0, 3.0)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 250, -2.0, 3.0) < normal
    assert probabilistic_sharpe_ratio(0.1, 0.0, 250, 0.0, 12.0) < normal


def test_psr_rejects_too_few_observations_and_impossible_moments():
    with pytest.raises(ValueError, match="at least 2"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0)
    # excess kurtosis -2 passed where raw is expected: the variance term goes negative
    with pytest.raises(ValueError, match="kurtosis raw"):
        probabilistic_sharpe_ratio(3.0, 0.0, 100, 2.0, -2.0)


# --------------------------------------------------------------------------- expected max / DSR


def test_dsr_paper_numerical_example():
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection Bias,
    Backtest Overfitting and Non-Normality", J. of Portfolio Management 40(5), numerical example.

    N = 100 independent trials whose annualized Sharpe ratios have variance 1/2; the selected one
    has annualized SR 2.5 over five years of daily returns (T = 1250), skewness -3 and kurtosis 10.
    Converted to daily with 250 days a year: SR = 2.5/sqrt(250), V = 0.5/250. The paper prints
    SR0 ~ 0.1132 (daily) and DSR ~ 0.9004. Only those 4 printed decimals are the paper's; the
    full-precision values (SR0 = 0.113172001865132, DSR = 0.900396834449390) are our own evaluation
    of eqs. 1-2, checked separately below against an independent scipy evaluation.
    """
    sr = 2.5 / math.sqrt(DAYS_PER_YEAR)
    variance = 0.5 / DAYS_PER_YEAR
    sr0 = expected_max_sharpe(100, variance)
    dsr = deflated_sharpe_from_moments(sr, 1250, -3.0, 10.0, 100, variance)
    assert round(sr0, 4) == 0.1132
    assert round(dsr, 4) == 0.9004

    # independent evaluation of the same equations (not through the module under test)
    g = np.euler_gamma
    oracle_sr0 = math.sqrt(variance) * (
        (1 - g) * sps.norm.ppf(1 - 1 / 100) + g * sps.norm.ppf(1 - 1 / (100 * math.e))
    )
    oracle_dsr = sps.norm.cdf((sr - oracle_sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2))
    assert sr0 == pytest.approx(oracle_sr0, rel=1e-12)
    assert dsr == pytest.approx(oracle_dsr, rel=1e-12)
    assert sr0 == pytest.approx(0.113172001865132, rel=1e-12)
    assert dsr == pytest.approx(0.900396834449390, rel=1e-12)


def test_expected_max_sharpe_grows_with_trials_and_scales_with_dispersion():
    assert expected_max_sharpe(1, 0.7) == 0.0
    values = [expected_max_sharpe(n, 1.0) for n in (2, 10, 100, 1000, 10_000)]
    assert values == sorted(values) and values[0] > 0
    assert expected_max_sharpe(50, 4.0) == pytest.approx(2 * expected_max_sharpe(50, 1.0))
    assert expected_max_sharpe(50, 0.0) == 0.0


@pytest.mark.parametrize(("n_trials", "variance"), [(0, 1.0), (-3, 1.0), (10, -0.1), (10, float("nan"))])
def test_expected_max_sharpe_rejects_bad_inputs(n_trials, variance):
    with pytest.raises(ValueError):
        expected_max_sharpe(n_trials, variance)


def _normal_returns(n: int = 2000, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0008, 0.01, n)


def test_dsr_from_returns_matches_moments_path_and_plain_sample_moments():
    returns = _normal_returns()
    result = deflated_sharpe_ratio(returns, n_trials=30, sharpe_variance=0.0004)
    assert isinstance(result, DeflatedSharpe)
    assert result.n_obs == 2000
    assert result.sharpe == pytest.approx(returns.mean() / returns.std(ddof=1), rel=1e-12)
    assert result.skew == pytest.approx(sps.skew(returns, bias=True), rel=1e-12)
    assert result.kurtosis == pytest.approx(sps.kurtosis(returns, fisher=False, bias=True), rel=1e-12)
    assert result.sr0 == pytest.approx(expected_max_sharpe(30, 0.0004), rel=1e-12)
    assert result.dsr == pytest.approx(
        deflated_sharpe_from_moments(result.sharpe, 2000, result.skew, result.kurtosis, 30, 0.0004),
        rel=1e-12,
    )
    # normal data: sample moments near (0, 3), so the DSR is close to the normal-moments one
    assert abs(result.skew) < 0.2 and abs(result.kurtosis - 3.0) < 0.4
    normal = deflated_sharpe_from_moments(result.sharpe, 2000, 0.0, 3.0, 30, 0.0004)
    assert result.dsr == pytest.approx(normal, abs=0.02)


def test_dsr_falls_as_trials_grow():
    returns = _normal_returns()
    dsrs = [deflated_sharpe_ratio(returns, n, 0.0004).dsr for n in (1, 2, 10, 100, 1000)]
    assert dsrs == sorted(dsrs, reverse=True) and len(set(dsrs)) == len(dsrs)


def test_dsr_of_one_trial_is_psr_against_zero():
    returns = _normal_returns()
    result = deflated_sharpe_ratio(returns, 1, 0.0004)
    assert result.sr0 == 0.0
    assert result.dsr == pytest.approx(
        probabilistic_sharpe_ratio(result.sharpe, 0.0, result.n_obs, result.skew, result.kurtosis), rel=1e-12
    )


def test_dsr_drops_nans_and_reports_a_serializable_dict():
    returns = _normal_returns(500)
    gappy = returns.copy().astype(float)
    gappy = np.insert(gappy, [0, 100, 250], np.nan)
    a = deflated_sharpe_ratio(returns, 20, 0.001)
    b = deflated_sharpe_ratio(gappy, 20, 0.001)
    assert a == b
    d = b.to_dict()
    assert set(d) == {"dsr", "sharpe", "sr0", "n_obs", "skew", "kurtosis", "n_trials", "sharpe_variance"}
    assert all(type(v) in (int, float) for v in d.values())


def test_dsr_of_flat_returns_has_no_edge():
    flat = deflated_sharpe_ratio(np.zeros(300), 1, 0.001)
    assert (flat.sharpe, flat.skew, flat.kurtosis, flat.dsr) == (0.0, 0.0, 3.0, 0.5)
    assert deflated_sharpe_ratio(np.full(300, 0.001), 10, 0.001).dsr < 0.5


def test_dsr_needs_two_finite_returns():
    with pytest.raises(ValueError, match="at least 2"):
        deflated_sharpe_ratio(np.array([0.01, np.nan]), 5, 0.001)


# --------------------------------------------------------------------------- PBO (CSCV)

LN3 = math.log(3.0)


def test_pbo_hand_worked_example():
    """T=4 rows, S=4 blocks of one row each, N=3 strategies, default (Sharpe) metric.

    Returns by row r0..r3:  A = [2, 0, -3, -1],  B = [1, 3, 0, 2],  C = [3, -2, 1, -3].
    Two rows {a, b} have Sharpe (a+b)/2 / (|a-b|/sqrt 2) = k/sqrt 2 with k = (a+b)/|a-b|, so k ranks:

        rows    k(A)   k(B)   k(C)
        {0,1}    1      2     1/5
        {0,2}  -1/5     1      2
        {0,3}   1/3     3      0
        {1,2}   -1      1    -1/3
        {1,3}   -1      5     -5
        {2,3}   -2      1    -1/2

    The C(4,2) = 6 splits, IS blocks in lexicographic order, OOS = the complement:

        IS     winner   OOS    OOS rank of winner (1 = worst)   w = rank/(N+1)   logit
        {0,1}    B      {2,3}  3 (B=1 > C=-1/2 > A=-2)            3/4            ln 3
        {0,2}    C      {1,3}  1 (C=-5 worst)                     1/4           -ln 3
        {0,3}    B      {1,2}  3                                   3/4            ln 3
        {1,2}    B      {0,3}  3                                   3/4            ln 3
        {1,3}    B      {0,2}  2 (C=2 > B=1 > A=-1/5)              1/2            0
        {2,3}    B      {0,1}  3                                   3/4            ln 3

    Logit <= 0 in 2 of 6 splits: PBO = 1/3. The logit-0 split (winner exactly at the OOS median)
    counts as overfit, per PBO = integral_{-inf}^{0} f; a strict "< 0" would give 1/6.
    """
    a = [2, 0, -3, -1]
    b = [1, 3, 0, 2]
    c = [3, -2, 1, -3]
    returns = np.array([a, b, c], dtype=float).T
    result = probability_of_backtest_overfitting(returns, n_splits=4)
    assert isinstance(result, BacktestOverfitting)
    assert (result.n_splits, result.n_combinations, result.n_strategies) == (4, 6, 3)
    assert result.logits == pytest.approx((LN3, -LN3, LN3, LN3, 0.0, LN3), abs=1e-12)
    assert result.pbo == pytest.approx(1 / 3)


def test_pbo_ties_average_ranks_and_first_column_wins_is_ties():
    """T=2, S=2, N=3 with the mean as the metric (generic path); one row per block.

    r0: A=3, B=2, C=1;  r1: A=5, B=5, C=0.
    IS {r0}: winner A; OOS r1: A and B tie for best -> ranks 2 and 3 average to 2.5,
             w = 2.5/4, logit ln(5/3).
    IS {r1}: A and B tie IS -> the first column, A; OOS r0: A best -> rank 3, logit ln 3.
    No logit <= 0: PBO = 0.
    """
    returns = np.array([[3.0, 2.0, 1.0], [5.0, 5.0, 0.0]])
    result = probability_of_backtest_overfitting(returns, n_splits=2, metric=lambda r: float(np.mean(r)))
    assert result.logits == pytest.approx((math.log(5 / 3), LN3), abs=1e-12)
    assert result.pbo == 0.0


def test_pbo_of_pure_noise_is_near_one_half():
    """Zero-edge strategies: the IS winner lands at a random OOS rank, so PBO ~ 0.5.

    One matrix is noisy (its 12870 splits share the same data; SD ~ 0.15 across seeds), so the
    band is checked on the mean of 6 seeded matrices (50 strategies x 800 rows, S = 16).
    """
    pbos = []
    for seed in range(6):
        returns = np.random.default_rng(seed).normal(0.0, 0.01, (800, 50))
        result = probability_of_backtest_overfitting(returns, n_splits=16)
        assert result.n_combinations == 12870
        assert np.isfinite(result.logits).all()
        pbos.append(result.pbo)
    assert 0.3 < float(np.mean(pbos)) < 0.7


def test_pbo_with_a_real_edge_is_near_zero():
    rng = np.random.default_rng(100)
    returns = rng.normal(0.0, 0.01, (800, 50))
    returns[:, 7] += 0.003  # per-period Sharpe 0.3 among 49 zero-edge strategies
    result = probability_of_backtest_overfitting(returns, n_splits=16)
    assert result.pbo < 0.1
    assert float(np.median(result.logits)) > 0


@pytest.mark.parametrize(
    ("returns", "n_splits", "message"),
    [
        (np.zeros(100), 4, "2-D"),
        (np.zeros((100, 3)), 5, "even"),
        (np.zeros((100, 3)), 0, "even"),
        (np.zeros((100, 3)), 4.0, "integer"),
        (np.zeros((7, 3)), 8, "at least n_splits=8 rows"),
        (np.zeros((100, 1)), 4, "at least 2 strategies"),
        (np.where(np.eye(100, 3) > 0, np.nan, 0.0), 4, "finite"),
    ],
)
def test_pbo_validates_inputs(returns, n_splits, message):
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(returns, n_splits=n_splits)


def test_pbo_vectorized_sharpe_equals_generic_metric_path():
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0005, 0.01, (95, 7))  # 95 % 6 = 5 remainder rows dropped
    returns[:, 2] = 0.001  # a constant column: Sharpe 0 on both paths
    returns[:, 5] = 0.0
    fast = probability_of_backtest_overfitting(returns, n_splits=6)
    slow = probability_of_backtest_overfitting(returns, n_splits=6, metric=lambda r: sharpe_ratio(r))
    assert fast.n_combinations == slow.n_combinations == 20
    assert fast.logits == pytest.approx(slow.logits, abs=1e-12)
    assert fast.pbo == slow.pbo


def test_pbo_drops_remainder_rows_at_the_start():
    rng = np.random.default_rng(11)
    returns = rng.normal(0.0, 0.01, (120, 9))
    older = rng.normal(0.05, 0.5, (5, 9))  # 125 % 8 = 5: exactly these rows are dropped
    base = probability_of_backtest_overfitting(returns, n_splits=8)
    padded = probability_of_backtest_overfitting(np.vstack([older, returns]), n_splits=8)
    assert padded == base


def test_pbo_to_dict_summarizes_logits():
    rng = np.random.default_rng(5)
    result = probability_of_backtest_overfitting(rng.normal(size=(64, 4)), n_splits=4)
    d = result.to_dict()
    assert d["pbo"] == result.pbo and d["n_combinations"] == 6 and d["n_strategies"] == 4
    assert d["logits"] == list(result.logits)
    assert d["logit_median"] == pytest.approx(float(np.median(result.logits)))


def test_effective_trials_counts_independent_bets():
    from pipelines.search.stats import effective_trials

    rng = np.random.default_rng(0)
    base = rng.normal(size=(2000, 1))
    assert effective_trials(np.repeat(base, 10, axis=1)) == pytest.approx(1.0)  # ten copies: one bet
    independent = effective_trials(rng.normal(size=(2000, 10)))
    assert 9.0 < independent <= 10.0
    two = np.hstack([np.repeat(base, 5, axis=1), np.repeat(rng.normal(size=(2000, 1)), 5, axis=1)])
    assert effective_trials(two + rng.normal(scale=0.01, size=two.shape)) == pytest.approx(2.0, rel=0.02)
    flat = np.hstack([rng.normal(size=(100, 3)), np.zeros((100, 2))])
    assert effective_trials(flat) <= 3.0  # columns without variance are no bet
    assert effective_trials(np.zeros((50, 4))) == 1.0


def test_expected_max_sharpe_takes_an_effective_n_and_never_goes_negative():
    assert expected_max_sharpe(1.2, 0.01) == 0.0  # the quantile is negative this close to N = 1
    assert expected_max_sharpe(10.5, 0.01) > expected_max_sharpe(10.0, 0.01)


def test_the_null_variance_of_a_sharpe_is_one_over_t_even_for_fat_tailed_skewed_returns():
    """What the DSR's bar rests on: a skill-less strategy's Sharpe over T bars varies by 1/T."""
    rng = np.random.default_rng(8)
    t = 252
    draws = rng.standard_t(3, size=(4000, t)) + rng.exponential(1.0, size=(4000, t)) - 1.0
    sharpes = draws.mean(axis=1) / draws.std(axis=1, ddof=1)
    assert np.var(sharpes) == pytest.approx(null_sharpe_variance(t), rel=0.1)

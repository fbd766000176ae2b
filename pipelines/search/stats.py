"""Selection statistics for a search winner: PSR, Deflated Sharpe Ratio and PBO (CSCV).

A search that keeps the best of many trials reports an inflated Sharpe ratio. These statistics,
implemented from the original papers rather than a library, say how much of it survives:

* PSR -- Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", J. of Risk 15(2).
* DSR -- Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality", J. of Portfolio Management 40(5), 94-107.
* PBO -- Bailey, Borwein, López de Prado & Zhu (2017), "The Probability of Backtest Overfitting",
  J. of Computational Finance 20(4), 39-69 (combinatorially symmetric cross-validation, CSCV).

Every Sharpe ratio here is per period (per bar), never annualized: the PSR/DSR formulas are in the
units of the observations, and an annualized Sharpe fed to them saturates the probabilities.
Kurtosis is raw (Pearson, normal = 3), as in the papers; excess kurtosis would be a silent error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats as sps

EULER_GAMMA = float(np.euler_gamma)

# A standard deviation this small relative to the mean is rounding noise of a constant series:
# its Sharpe ratio is reported as 0, not as +/-1e15.
_DEGENERATE_STD = 1e-12


def _finite(returns: np.ndarray) -> np.ndarray:
    values = np.asarray(returns, dtype=float).ravel()
    return values[np.isfinite(values)]


def _flat(values: np.ndarray) -> bool:
    """True when finite ``values`` (at least 2) have no variance beyond rounding noise."""
    return float(values.std(ddof=1)) <= _DEGENERATE_STD * abs(float(values.mean()))


def sharpe_ratio(returns: np.ndarray) -> float:
    """Per-period Sharpe ratio mean / std (ddof=1) of the finite values; NaN and +/-inf are dropped.

    Returns 0.0 when it is undefined (fewer than 2 finite values, or zero variance), so a flat or
    empty strategy ranks as "no edge" instead of poisoning a ranking with NaN or infinity.
    """
    values = _finite(returns)
    if values.size < 2 or _flat(values):
        return 0.0
    return float(values.mean()) / float(values.std(ddof=1))


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """Probability that the true Sharpe exceeds ``benchmark``, given the observed per-period one.

    PSR(SR*) = Z[(SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2)] with skewness g3 and
    RAW kurtosis g4 (normal: 3, which reduces the denominator to the textbook 1 + SR^2/2).
    Non-normal returns widen the Sharpe estimate's error: negative skew and fat tails lower PSR.
    """
    if n_obs < 2:
        raise ValueError(f"PSR needs at least 2 observations, got n_obs={n_obs}")
    variance_term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not variance_term > 0.0:
        # Impossible for real data (kurtosis >= 1 + skew^2 makes it a square), so the inputs are wrong.
        raise ValueError(
            f"inconsistent moments: 1 - skew*SR + (kurtosis-1)/4*SR^2 = {variance_term} <= 0 "
            f"(skew={skew}, kurtosis={kurtosis}, sharpe={sharpe}); is kurtosis raw (normal = 3)?"
        )
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(variance_term)
    return float(sps.norm.cdf(z))


def null_sharpe_variance(n_obs: int) -> float:
    """The variance of a per-period Sharpe estimate over ``n_obs`` periods when the true Sharpe
    is 0: 1/T, whatever the returns' skew and kurtosis (their terms in the estimate's variance
    are multiplied by the true Sharpe; Lo 2002, Mertens 2002)."""
    if n_obs < 1:
        raise ValueError(f"n_obs must be >= 1, got {n_obs}")
    return 1.0 / n_obs


def expected_max_sharpe(n_trials: float, sharpe_variance: float) -> float:
    """SR0: the expected maximum Sharpe of ``n_trials`` independent zero-skill trials.

    SR0 = sqrt(V) ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e))), g = Euler-Mascheroni, V = variance
    of the trials' (per-period) Sharpe ratios (DSR paper, eq. 2 with E[SR_n] = 0). This is the bar a
    winner must clear to show skill rather than luck. One trial has no selection: SR0 = 0.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if not sharpe_variance >= 0.0:
        raise ValueError(f"sharpe_variance must be >= 0, got {sharpe_variance}")
    if n_trials == 1:
        return 0.0
    quantiles = (1.0 - EULER_GAMMA) * sps.norm.ppf(1.0 - 1.0 / n_trials) + EULER_GAMMA * sps.norm.ppf(
        1.0 - 1.0 / (n_trials * math.e)
    )
    # An effective N just above 1 gives a negative quantile; selection never lowers the bar.
    return float(math.sqrt(sharpe_variance) * max(quantiles, 0.0))


def effective_trials(returns: np.ndarray) -> float:
    """How many independent bets the columns of a T x N return matrix are: (sum l)^2 / sum l^2
    over the eigenvalues l of their correlation matrix (the participation ratio), = N^2 / sum rho^2.

    N uncorrelated strategies count N, N copies of one strategy count 1, and anything between
    counts in between, continuously. The DSR paper estimates N by clustering the trials; this
    eigenvalue form needs no cluster count and cannot jump when one trial changes cluster.
    Columns without variance carry no bet and are left out; no column left counts as one.
    """
    matrix = np.asarray(returns, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"returns must be T x N, got shape {matrix.shape}")
    live = matrix[:, matrix.std(axis=0) > _DEGENERATE_STD] if matrix.shape[0] > 1 else matrix[:, :0]
    n = live.shape[1]
    if n <= 1:
        return 1.0
    rho = np.corrcoef(live, rowvar=False)
    return float(min(max(n * n / float(np.sum(rho * rho)), 1.0), n))


def deflated_sharpe_from_moments(
    sharpe: float, n_obs: int, skew: float, kurtosis: float, n_trials: float, sharpe_variance: float
) -> float:
    """DSR = PSR(SR0): the PSR of the winner against the luck of the best of ``n_trials``."""
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe_ratio(sharpe, sr0, n_obs, skew, kurtosis)


@dataclass(frozen=True)
class DeflatedSharpe:
    dsr: float  # probability that the winner's true Sharpe exceeds sr0
    sharpe: float  # per-period Sharpe of the winner
    sr0: float  # per-period benchmark: expected maximum Sharpe of n_trials zero-skill trials
    n_obs: int
    skew: float
    kurtosis: float  # raw (normal = 3)
    n_trials: float  # independent trials the winner was picked from (an effective N may be fractional)
    sharpe_variance: float  # variance of the trials' per-period Sharpe ratios

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def deflated_sharpe_ratio(
    returns: np.ndarray, n_trials: float, sharpe_variance: float, sr0_floor: float = 0.0
) -> DeflatedSharpe:
    """DSR of the selected strategy from its per-period returns (NaN/inf dropped).

    ``sr0_floor`` is a bar the benchmark SR0 may not fall below: the expected best of a larger
    population of trials is never lower than that of a part of it, so a bar set by earlier
    searches of the same population stays (see ``pipelines.search.selection``).

    Skewness and raw kurtosis are the plain sample moments m3/m2^1.5 and m4/m2^2 (scipy
    ``bias=True``): the paper's g3, g4 are the skewness and kurtosis of the selected returns, with
    no small-sample correction, and such a correction is O(1/T), far below the DSR's own estimation
    error. A zero-variance series has SR = 0 and is given normal moments (0, 3) for lack of any.
    """
    values = _finite(returns)
    if values.size < 2:
        raise ValueError(f"DSR needs at least 2 finite returns, got {values.size}")
    sharpe = sharpe_ratio(values)
    if _flat(values):
        skew, kurtosis = 0.0, 3.0
    else:
        skew = float(sps.skew(values, bias=True))
        kurtosis = float(sps.kurtosis(values, fisher=False, bias=True))
    sr0 = max(expected_max_sharpe(n_trials, sharpe_variance), sr0_floor)
    dsr = probabilistic_sharpe_ratio(sharpe, sr0, int(values.size), skew, kurtosis)
    return DeflatedSharpe(
        dsr=dsr,
        sharpe=sharpe,
        sr0=sr0,
        n_obs=int(values.size),
        skew=skew,
        kurtosis=kurtosis,
        n_trials=float(n_trials),
        sharpe_variance=float(sharpe_variance),
    )


@dataclass(frozen=True)
class BacktestOverfitting:
    pbo: float  # fraction of IS/OOS splits whose IS winner ranks at or below the OOS median
    logits: tuple[float, ...]  # one logit of the IS winner's relative OOS rank per split
    n_splits: int  # S: contiguous blocks of rows
    n_combinations: int  # C(S, S/2) IS/OOS splits
    n_strategies: int  # N

    def to_dict(self) -> dict[str, Any]:
        logits = list(self.logits)
        return {
            "pbo": self.pbo,
            "n_splits": self.n_splits,
            "n_combinations": self.n_combinations,
            "n_strategies": self.n_strategies,
            "logit_median": float(np.median(logits)) if logits else float("nan"),
            "logits": logits,
        }


def _block_combinations(n_splits: int) -> tuple[np.ndarray, np.ndarray]:
    """All S/2-subsets of the S blocks (lexicographic) and, for each, the index of its complement.

    A split's OOS half is itself another split's IS half, so a metric evaluated once per subset
    serves both roles: half the work.
    """
    subsets = np.array(list(combinations(range(n_splits), n_splits // 2)), dtype=np.intp)
    masks = (np.left_shift(1, subsets)).sum(axis=1)
    position = {int(mask): i for i, mask in enumerate(masks)}
    full = (1 << n_splits) - 1
    complement = np.array([position[full ^ int(mask)] for mask in masks], dtype=np.intp)
    return subsets, complement


def _subset_sharpes(blocks: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """Per-period Sharpe of every strategy on every union of blocks, from per-block sums.

    ``blocks`` is (S, rows per block, N). Columns are centred on their full-sample mean before
    summing so that var = (sum y^2 - (sum y)^2 / n) / (n - 1) does not lose precision to
    cancellation; the result matches :func:`sharpe_ratio` on the concatenated rows.
    """
    n_splits, block_rows, _ = blocks.shape
    n = subsets.shape[1] * block_rows
    centre = blocks.mean(axis=(0, 1))
    centred = blocks - centre
    indicator = np.zeros((subsets.shape[0], n_splits))
    np.put_along_axis(indicator, subsets, 1.0, axis=1)
    sums = indicator @ centred.sum(axis=1)
    sumsq = indicator @ (centred**2).sum(axis=1)
    if n < 2:
        return np.zeros_like(sums)
    mean_centred = sums / n
    var = np.maximum(sumsq - sums * mean_centred, 0.0) / (n - 1)
    std = np.sqrt(var)
    mean = mean_centred + centre
    degenerate = std <= _DEGENERATE_STD * np.abs(mean)
    return np.where(degenerate, 0.0, mean / np.where(degenerate, 1.0, std))


def _subset_metrics(
    blocks: np.ndarray, subsets: np.ndarray, metric: Callable[[np.ndarray], float]
) -> np.ndarray:
    """Generic path: ``metric`` on each strategy's rows of each union of blocks, in time order."""
    n_strategies = blocks.shape[2]
    out = np.empty((subsets.shape[0], n_strategies))
    for i, subset in enumerate(subsets):
        rows = blocks[subset].reshape(-1, n_strategies)  # subsets are sorted: original order
        for j in range(n_strategies):
            out[i, j] = float(metric(rows[:, j]))
    return out


def probability_of_backtest_overfitting(
    returns: np.ndarray, n_splits: int = 16, metric: Callable[[np.ndarray], float] = sharpe_ratio
) -> BacktestOverfitting:
    """PBO by CSCV: how often the in-sample (IS) winner is at or below the median out of sample (OOS).

    ``returns`` is T x N: rows are time, columns are strategies (trials). The rows are cut into
    ``n_splits`` = S contiguous blocks of T // S rows; the T % S remainder rows are dropped at the
    START, so the most recent data is kept. For each of the C(S, S/2) ways to pick S/2 blocks as
    IS (the other S/2 are OOS), the strategy n* with the best IS ``metric`` is found (ties: the
    first column) and its OOS relative rank w = rank / (N + 1) is taken, with ranks 1..N (N best)
    and ties averaged; the split's logit is ln(w / (1 - w)).

    PBO = integral_{-inf}^{0} f(lambda) d lambda, estimated as the fraction of splits with logit
    <= 0. The boundary counts: logit = 0 means the IS winner only matched the OOS median (possible
    when N is odd, or with ties), and selection that merely matches the median did not
    generalize. This is the conservative reading, and the one of the ``pbo`` R package.

    ``metric=sharpe_ratio`` runs vectorized from per-block sums (T=1000, N=200, S=16 in well under a
    second). Any other metric is called per strategy and per half: C(S, S/2) * N calls -- keep S
    small for expensive metrics. The cost grows as C(S, S/2): S=16 is 12870 splits, S=20 184756.
    """
    matrix = np.asarray(returns, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"returns must be a 2-D T x N matrix (rows = time), got shape {matrix.shape}")
    n_rows, n_strategies = matrix.shape
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise ValueError(f"n_splits must be an integer, got {n_splits!r}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be even and >= 2, got {n_splits}")
    if n_rows < n_splits:
        raise ValueError(f"need at least n_splits={n_splits} rows to form the blocks, got T={n_rows}")
    if n_strategies < 2:
        raise ValueError(f"need at least 2 strategies (columns) to rank, got N={n_strategies}")
    if not np.isfinite(matrix).all():
        bad = int((~np.isfinite(matrix)).sum())
        raise ValueError(f"returns must be finite: {bad} NaN/inf values (fill or drop them first)")

    n_splits = int(n_splits)
    block_rows = n_rows // n_splits
    kept = matrix[n_rows - block_rows * n_splits :]
    blocks = kept.reshape(n_splits, block_rows, n_strategies)
    subsets, complement = _block_combinations(n_splits)

    if metric is sharpe_ratio:
        scores = _subset_sharpes(blocks, subsets)
    else:
        scores = _subset_metrics(blocks, subsets, metric)

    winners = np.argmax(scores, axis=1)  # IS: the split's own subset
    oos = scores[complement]  # OOS: the complementary subset
    winner_oos = oos[np.arange(oos.shape[0]), winners][:, None]
    below = (oos < winner_oos).sum(axis=1)
    ties = (oos == winner_oos).sum(axis=1)  # includes the winner itself
    rank = below + (ties + 1) / 2.0  # average of ranks below+1 .. below+ties
    omega = rank / (n_strategies + 1)
    logits = np.log(omega / (1.0 - omega))
    overfit = 2.0 * rank <= n_strategies + 1  # omega <= 1/2, in exact arithmetic (ranks are k/2)
    return BacktestOverfitting(
        pbo=float(overfit.mean()),
        logits=tuple(float(x) for x in logits),
        n_splits=n_splits,
        n_combinations=int(subsets.shape[0]),
        n_strategies=int(n_strategies),
    )

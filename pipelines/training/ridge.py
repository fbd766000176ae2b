"""Ridge regression in closed form, its penalty chosen by generalized cross-validation.

The linear baseline family trains with this instead of gradient descent: one SVD, the penalty
that minimizes the GCV estimate of out-of-sample error (Golub, Heath & Wahba, 1979), no seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Penalties tried, as multiples of the number of samples (features are standardized).
PENALTIES = np.geomspace(1e-4, 1e2, 25)


@dataclass(frozen=True)
class RidgeFit:
    coef: np.ndarray  # features x outputs
    intercept: np.ndarray  # outputs
    penalty: float
    gcv: float


def fit_ridge(x: np.ndarray, y: np.ndarray) -> RidgeFit:
    """Ridge of ``y`` (n, or n x outputs) on ``x`` (n x features), unpenalized intercept."""
    y2 = y.reshape(len(y), -1).astype(float)
    x_mean, y_mean = x.mean(axis=0), y2.mean(axis=0)
    xc, yc = x - x_mean, y2 - y_mean
    u, sv, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    n = len(x)
    best: tuple[float, float, np.ndarray] | None = None
    for penalty in PENALTIES * n:
        shrink = sv / (sv**2 + penalty)
        coef = vt.T @ (shrink[:, None] * uty)
        residual = yc - xc @ coef
        dof = float(np.sum(sv**2 / (sv**2 + penalty)))
        gcv = float(np.mean(residual[:, 0] ** 2)) / max(1.0 - dof / n, 1e-12) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, float(penalty), coef)
    assert best is not None
    gcv, penalty, coef = best
    return RidgeFit(coef=coef, intercept=y_mean - x_mean @ coef, penalty=penalty, gcv=gcv)

"""Evidence maximisation for a Bayesian linear model (MacKay), shared by LogME and the probe.

For each target column ``y`` the model ``y = F w + e``, ``w ~ N(0, 1/a)``,
``e ~ N(0, 1/b)`` on the feature matrix ``F`` has a marginal likelihood
(evidence) that one fixed-point iteration maximises over ``a`` and ``b``.
``selection.logme`` reports the maximum; the linear-probe head
(``_probe``) uses ``t = a / b`` there as its ridge penalty.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning


def _spectrum(features, targets):
    """Nonzero eigenvalues ``sigma`` of F^T F and the targets in its eigenbasis.

    With F = U S V^T, returns ``sigma = S**2`` and ``x = U^T y`` for each target
    column, from whichever Gram matrix (F^T F or F F^T) is smaller. Directions
    with eigenvalue below round-off are dropped: in every LogME term they act
    as a zero eigenvalue, which is what they are.
    """
    n, d = features.shape
    eps = np.finfo(np.float64).eps
    if n >= d:
        sigma, vecs = np.linalg.eigh(features.T @ features)
    else:
        sigma, vecs = np.linalg.eigh(features @ features.T)
    keep = sigma > max(sigma.max(), 0.0) * max(n, d) * eps
    sigma, vecs = sigma[keep], vecs[:, keep]
    if n >= d:
        x = (vecs.T @ (features.T @ targets)) / np.sqrt(sigma)[:, None]
    else:
        x = vecs.T @ targets
    return sigma, x


def maximise_evidence(features, targets, *, tol=1e-10, max_iter=1000, caller="logme"):
    """Maximised log evidence per sample, and ``t = a / b`` at the maximum, per column.

    ``features`` is ``(n, d)`` and ``targets`` ``(n, k)``, both float64. See
    :func:`sktransfer.selection.logme` for the formulas. A ConvergenceWarning
    names ``caller`` when ``max_iter`` iterations do not reach ``tol``; with
    ``caller=None`` there is none (the evidence is then flat within ``tol``
    around the ``t`` returned, which is what a caller that needs ``t`` uses).
    """
    n = len(features)
    sigma, x = _spectrum(features, targets)
    sigma = sigma[:, None]
    x2 = x**2
    # Part of each target outside the span of the features: no model can fit it.
    outside = np.maximum((targets**2).sum(axis=0) - x2.sum(axis=0), 0.0)
    eps = np.finfo(np.float64).eps
    scale = sigma.max() if len(sigma) else 1.0
    t_min, t_max = scale * eps, scale / eps

    def evidence(t):
        residual = (x2 * t / (t + sigma)).sum(axis=0) + outside
        return (
            -np.log1p(sigma / t).sum(axis=0) / (2 * n)
            + 0.5 * np.log(n / residual)
            - 0.5 * (1 + np.log(2 * np.pi))
        )

    t = np.ones(targets.shape[1])
    current = evidence(t)
    for _ in range(max_iter):
        shrink = t / (t + sigma)
        gamma = (sigma / (t + sigma)).sum(axis=0)
        weight2 = (sigma * x2 / (t + sigma) ** 2).sum(axis=0)
        residual2 = (x2 * shrink**2).sum(axis=0) + outside
        with np.errstate(divide="ignore", invalid="ignore"):
            t = gamma * residual2 / (weight2 * (n - gamma))
        # No fitted weight (weight2 = 0) is the limit alpha -> infinity.
        t = np.clip(np.nan_to_num(t, nan=t_max), t_min, t_max)
        previous, current = current, evidence(t)
        if np.all(np.abs(current - previous) <= tol):
            break
    else:
        if caller is None:
            return current, t
        warnings.warn(
            f"{caller}: the evidence maximisation did not converge in max_iter={max_iter} "
            "iterations",
            ConvergenceWarning,
            stacklevel=3,
        )
    return current, t

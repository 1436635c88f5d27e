"""Transferability scores: how well a source model suits a target task, before any training.

Each score looks at what a source model computes on the target inputs (its
penultimate-layer features, or its output probabilities) next to the target
labels, and takes seconds where fine-tuning every candidate takes hours.
Higher is better for all of them; compare scores of one method on one task,
never across methods or tasks.
"""

import numbers
import time
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from sklearn.utils import check_array, check_consistent_length, column_or_1d
from sklearn.utils.multiclass import type_of_target

from ._evidence import maximise_evidence
from ._source import source_name
from ._validation import check_number
from .features import SourceFeatures

_METHODS = ("logme", "leep", "hscore")
_PROBABILITY_TOL = 1e-3


def _features(features):
    """Features as a 2-D float array; samples of any shape are flattened to rows."""
    features = check_array(features, dtype=np.float64, ensure_min_features=1, allow_nd=True)
    return features.reshape(len(features), -1)


def _labels(y, n_samples, method):
    """Class labels as integer codes 0..K-1, with a message naming the method."""
    y = column_or_1d(y, warn=True)
    check_consistent_length(np.empty(n_samples), y)
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"{method} needs class labels; y is of type {kind!r}")
    return np.unique(y, return_inverse=True)[1]


def _logme_targets(y, n_samples):
    """The target columns LogME fits: one-hot classes, or the regression targets."""
    y = np.asarray(y)
    kind = type_of_target(y)
    if kind in ("binary", "multiclass"):
        codes = np.unique(column_or_1d(y, warn=True), return_inverse=True)[1]
        targets = np.eye(codes.max() + 1)[codes]
    elif kind in ("continuous", "continuous-multioutput", "multilabel-indicator"):
        targets = check_array(y, dtype=np.float64, ensure_2d=False)
        targets = targets.reshape(len(targets), -1)
    else:
        raise ValueError(
            "logme needs class labels, real-valued targets or a label indicator matrix; "
            f"y is of type {kind!r}"
        )
    check_consistent_length(np.empty(n_samples), targets)
    return targets


def logme(features, y, *, tol=1e-10, max_iter=1000):
    r"""LogME: the log marginal evidence of a linear model on the features.

    For each target column ``y`` (one per class, one-hot coded, for class
    labels; each target for regression), LogME fits the Bayesian linear model

    .. math::

        y = F w + \varepsilon, \quad w \sim N(0, \alpha^{-1} I_D),
        \quad \varepsilon \sim N(0, \beta^{-1} I_N)

    on the ``N x D`` feature matrix ``F``, and chooses ``alpha`` and ``beta``
    that maximise the evidence

    .. math::

        \log p(y \mid F, \alpha, \beta) = \frac{D}{2} \log \alpha
        + \frac{N}{2} \log \beta - \frac{N}{2} \log 2\pi
        - \frac{\beta}{2} \lVert y - F m \rVert^2
        - \frac{\alpha}{2} \lVert m \rVert^2 - \frac{1}{2} \log \lvert A \rvert,

    with :math:`A = \alpha I + \beta F^T F` and :math:`m = \beta A^{-1} F^T y`.
    The maximum is found by MacKay's fixed-point iteration
    :math:`\gamma = \sum_i \beta\sigma_i / (\alpha + \beta\sigma_i)`,
    :math:`\alpha = \gamma / \lVert m \rVert^2`,
    :math:`\beta = (N - \gamma) / \lVert y - F m \rVert^2`, where the
    :math:`\sigma_i` are the eigenvalues of :math:`F^T F`. One eigen-decomposition
    of the smaller Gram matrix (the SVD trick) makes each step cost O(min(N, D)).

    With :math:`F = U S V^T`, :math:`x = U^T y` and :math:`t = \alpha / \beta`,
    the evidence at the best ``beta`` for a given ``t`` is

    .. math::

        \frac{1}{N} \log p = -\frac{1}{2N} \sum_i \log\left(1 + \frac{\sigma_i}{t}\right)
        + \frac{1}{2} \log \frac{N}{R(t)} - \frac{1 + \log 2\pi}{2}, \qquad
        R(t) = \sum_i \frac{t \, x_i^2}{t + \sigma_i} + \lVert y \rVert^2
        - \lVert x \rVert^2,

    which is how it is computed: it stays finite when the features carry no
    information about ``y`` and the maximum lies at :math:`\alpha \to \infty`
    (then the score is that of predicting zero,
    :math:`-\frac{1}{2} \log(2\pi e \lVert y \rVert^2 / N)`). ``t`` is kept
    within a factor of machine precision of the eigenvalues, so a target that
    the features reproduce exactly gets a large finite score.

    The score is the maximised evidence divided by ``N``, averaged over the
    target columns (You et al., 2021). Higher is better.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features) or (n_samples, ...)
        Features of the target inputs, such as a source model's
        penultimate-layer activations (:class:`~sktransfer.features.SourceFeatures`).
        Samples of more than one dimension (feature maps) are flattened.

    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Class labels (integers or strings; float labels with integer values
        count as classes), real-valued regression targets, or a label
        indicator matrix, whose columns are used as they are.

    tol : float, default=1e-10
        Stop when no column's log evidence per sample changes by more than
        this between iterations.

    max_iter : int, default=1000
        Most fixed-point iterations; more warn with a ``ConvergenceWarning``.

    Returns
    -------
    score : float
        Average log evidence per sample.

    References
    ----------
    K. You, Y. Liu, J. Wang and M. Long. "LogME: Practical Assessment of
    Pre-trained Models for Transfer Learning". ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import logme
    >>> rng = np.random.default_rng(0)
    >>> informative = rng.normal(size=(200, 5))
    >>> y = (informative[:, 0] > 0).astype(int)
    >>> noise = rng.normal(size=(200, 5))
    >>> bool(logme(informative, y) > logme(noise, y))
    True
    """
    features = _features(features)
    targets = _logme_targets(y, len(features))
    evidence, _ = maximise_evidence(features, targets, tol=tol, max_iter=max_iter, caller="logme")
    return float(np.mean(evidence))


def _check_probabilities(probs, what):
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(
            f"{what} must be a 2-D array of class probabilities with at least two "
            f"columns; got shape {probs.shape}"
        )
    sums = probs.sum(axis=1)
    if probs.min() < 0 or np.abs(sums - 1).max() > _PROBABILITY_TOL:
        raise ValueError(
            f"{what} must be class probabilities (non-negative rows summing to 1, as "
            f"a softmax output gives); got values in [{probs.min():.3g}, "
            f"{probs.max():.3g}] and row sums in [{sums.min():.3g}, {sums.max():.3g}]"
        )


def leep(source_probs, y):
    r"""LEEP: the log expected empirical prediction of the source's classifier.

    With :math:`\theta(x_i)` the source model's output distribution over its
    own classes ``z`` for target sample ``i``, LEEP builds the empirical joint
    and conditional distributions of target label and source class

    .. math::

        \hat P(y, z) = \frac{1}{N} \sum_{i: y_i = y} \theta(x_i)_z, \qquad
        \hat P(y \mid z) = \frac{\hat P(y, z)}{\sum_{y'} \hat P(y', z)},

    and scores the classifier that predicts target labels through them:

    .. math::

        \mathrm{LEEP} = \frac{1}{N} \sum_{i=1}^{N}
        \log \sum_z \hat P(y_i \mid z) \, \theta(x_i)_z .

    It is the average log-likelihood of the true labels, so it is at most 0;
    higher is better (Nguyen et al., 2020).

    Parameters
    ----------
    source_probs : array-like of shape (n_samples, n_source_classes)
        The source model's predicted class probabilities on the target inputs
        (a softmax output): non-negative rows that sum to 1.

    y : array-like of shape (n_samples,)
        Target class labels.

    Returns
    -------
    score : float
        The LEEP score, in (-inf, 0].

    References
    ----------
    C. V. Nguyen, T. Hassner, M. Seeger and C. Archambeau. "LEEP: A New
    Measure to Evaluate Transferability of Learned Representations".
    ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import leep
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    >>> round(leep(probs, [0, 0, 1, 1]), 4)
    -0.2955
    >>> round(leep(probs, [0, 1, 0, 1]), 4)  # labels the source cannot tell apart
    -0.6931
    """
    probs = check_array(source_probs, dtype=np.float64, ensure_2d=False)
    _check_probabilities(probs, "source_probs")
    codes = _labels(y, len(probs), "leep")
    joint = np.zeros((codes.max() + 1, probs.shape[1]))
    np.add.at(joint, codes, probs)
    joint /= len(probs)
    marginal = joint.sum(axis=0)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    likelihood = np.einsum("iz,iz->i", probs, conditional[codes])
    return float(np.mean(np.log(likelihood)))


def h_score(features, y):
    r"""H-score: how much of the feature covariance the class means explain.

    .. math::

        H(f) = \operatorname{tr}\left(\operatorname{cov}(f)^{+}\,
        \operatorname{cov}(E[f \mid y])\right)

    where :math:`E[f \mid y]` replaces each feature row by the mean of its
    class and :math:`^{+}` is the Moore-Penrose pseudo-inverse, so redundant
    features do not make the score blow up. It is the Fisher discriminant
    criterion summed over directions: between ``0`` and ``min(n_features,
    n_classes - 1)``; higher is better (Bao et al., 2019).

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features) or (n_samples, ...)
        Features of the target inputs, such as a source model's
        penultimate-layer activations. Samples of more than one dimension
        (feature maps) are flattened.

    y : array-like of shape (n_samples,)
        Target class labels.

    Returns
    -------
    score : float
        The H-score.

    References
    ----------
    Y. Bao, Y. Li, S.-L. Huang, L. Zhang, L. Zheng, A. Zamir and L. Guibas.
    "An Information-Theoretic Approach to Transferability in Task Transfer
    Learning". ICIP 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import h_score
    >>> features = np.array([[0.0], [2.0], [4.0], [6.0]])
    >>> round(h_score(features, [0, 0, 1, 1]), 6)  # class means 1 and 5: 4 of the variance 5
    0.8
    """
    from scipy.linalg import pinvh

    features = _features(features)
    codes = _labels(y, len(features), "h_score")
    centred = features - features.mean(axis=0)
    counts = np.bincount(codes)
    class_means = np.zeros((len(counts), features.shape[1]))
    np.add.at(class_means, codes, centred)
    class_means /= counts[:, None]
    between = class_means[codes]
    # Both covariances carry the same 1/N, which cancels in the trace.
    cov_f = centred.T @ centred
    cov_g = between.T @ between
    return float(np.trace(pinvh(cov_f) @ cov_g))


class RankedSource(NamedTuple):
    """One row of a :class:`SourceRanking`: a source's name, score and time taken.

    Parameters
    ----------
    name : str
        Display name of the source.

    score : float
        Its transferability score; higher is better.

    seconds : float
        Time taken to load the source, run it on ``X`` and compute its score.

    Examples
    --------
    >>> from sktransfer.selection import RankedSource
    >>> row = RankedSource("mlp", -0.25, 0.5)
    >>> row.name, row.score, row.seconds
    ('mlp', -0.25, 0.5)
    """

    name: str
    score: float
    seconds: float


class SourceRanking:
    """Source models ranked by a transferability score, best first.

    A sequence of :class:`RankedSource` rows ``(name, score, seconds)``:
    index it, iterate over it, print it as a table, or turn it into a pandas
    DataFrame with :meth:`to_frame`. ``seconds`` is the time taken to load the
    source, run it on ``X`` and compute its score.

    Parameters
    ----------
    rows : iterable of (name, score, seconds)
        The scored sources, in any order. Rows with a NaN score go last.

    method : str
        The score used, as passed to :func:`rank_sources`.

    Attributes
    ----------
    rows : tuple of RankedSource
        The rows, best score first.

    method : str
        The score used.

    names : list of str
        Names of the sources, best first.

    scores : list of float
        Scores of the sources, best first.

    Examples
    --------
    >>> from sktransfer.selection import SourceRanking
    >>> ranking = SourceRanking([("a", -0.9, 0.5), ("b", -0.2, 0.4)], method="logme")
    >>> ranking[0].name, len(ranking)
    ('b', 2)
    >>> print(ranking)
    SourceRanking by logme (higher is better)
    rank  name    score  seconds
       1  b     -0.2000     0.40
       2  a     -0.9000     0.50
    """

    def __init__(self, rows, *, method):
        rows = [
            RankedSource(str(name), float(score), float(seconds)) for name, score, seconds in rows
        ]
        self.rows = tuple(
            sorted(rows, key=lambda row: -row.score if not np.isnan(row.score) else np.inf)
        )
        self.method = method

    @property
    def names(self):
        """Names of the sources, best first."""
        return [row.name for row in self.rows]

    @property
    def scores(self):
        """Scores of the sources, best first."""
        return [row.score for row in self.rows]

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, index):
        return self.rows[index]

    def to_frame(self):
        """The ranking as a pandas DataFrame.

        Returns
        -------
        frame : pandas.DataFrame
            Columns ``name``, ``score`` and ``seconds``; the index is the rank,
            starting at 1.

        Examples
        --------
        >>> from sktransfer.selection import SourceRanking
        >>> ranking = SourceRanking([("a", -0.9, 0.5), ("b", -0.2, 0.4)], method="logme")
        >>> frame = ranking.to_frame()
        >>> frame.index.name, frame.index.tolist(), frame["name"].tolist()
        ('rank', [1, 2], ['b', 'a'])
        """
        import pandas as pd

        frame = pd.DataFrame(self.rows, columns=list(RankedSource._fields))
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="rank")
        return frame

    def __str__(self):
        cells = [("rank", "name", "score", "seconds")] + [
            (str(i), row.name, f"{row.score:.4f}", f"{row.seconds:.2f}")
            for i, row in enumerate(self.rows, start=1)
        ]
        widths = [max(len(cell[j]) for cell in cells) for j in range(4)]
        lines = [f"SourceRanking by {self.method} (higher is better)"]
        for cell in cells:
            padded = (
                text.ljust(width) if j == 1 else text.rjust(width)
                for j, (text, width) in enumerate(zip(cell, widths, strict=True))
            )
            lines.append("  ".join(padded).rstrip())
        return "\n".join(lines)

    __repr__ = __str__


def _named_sources(sources):
    if isinstance(sources, Mapping):
        named = [(str(name), source) for name, source in sources.items()]
    elif isinstance(sources, (list, tuple)):
        named = [(source_name(source), source) for source in sources]
    else:
        raise TypeError(
            "sources must be a list of sources or a dict mapping names to sources; "
            f"got {type(sources).__name__}"
        )
    if not named:
        raise ValueError("sources is empty: pass at least one source model")
    return named


def rank_sources(sources, X, y, method="logme", *, batch_size=256):
    """Rank source models by how well they suit the task ``(X, y)``, best first.

    Each source is run once, in inference mode, on ``X`` (mapped onto its
    input by reshaping, as :class:`~sktransfer.features.SourceFeatures` does)
    and scored against ``y``; nothing is trained and no source is modified.

    Parameters
    ----------
    sources : list or dict
        The candidate source models, each a ``keras.Model``, a path to a
        ``.keras`` file, a fitted scikit-learn wrapper of a Keras model or a
        zero-argument callable returning one. A dict maps display names to
        sources; in a list, the names are the model names or paths.

    X : array-like of shape (n_samples, n_features) or (n_samples, ...)
        Target inputs: rows of features, or samples of any shape (images,
        sequences) that fit the sources' inputs.

    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Target labels (regression targets are allowed with ``"logme"``).

    method : {"logme", "leep", "hscore"}, default="logme"
        The score: :func:`logme` or :func:`h_score` of each source's
        penultimate-layer features, or :func:`leep` of its output
        probabilities (which needs sources with a softmax output).

    batch_size : int, default=256
        Number of rows passed through a source at a time.

    Returns
    -------
    ranking : SourceRanking
        Rows ``(name, score, seconds)``, best score first.

    Examples
    --------
    >>> import keras
    >>> import numpy as np
    >>> from sktransfer.selection import rank_sources
    >>> def mlp(name, sees_first_feature):
    ...     init = keras.initializers.GlorotUniform(seed=0)
    ...     model = keras.Sequential([
    ...         keras.Input((4,)),
    ...         keras.layers.Dense(16, activation="tanh", kernel_initializer=init),
    ...         keras.layers.Dense(3, activation="softmax", kernel_initializer=init),
    ...     ], name=name)
    ...     kernel, bias = model.layers[0].get_weights()
    ...     kernel[0] *= sees_first_feature  # 0: the features ignore X[:, 0]
    ...     model.layers[0].set_weights([kernel, bias])
    ...     return model
    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> ranking = rank_sources([mlp("blind", 0), mlp("sighted", 1)], X, y, method="logme")
    >>> ranking.names  # best first: only "sighted" sees what y depends on
    ['sighted', 'blind']
    >>> list(ranking.to_frame().columns)
    ['name', 'score', 'seconds']
    """
    if method not in _METHODS:
        raise ValueError(f"method={method!r} is not valid: use one of {list(_METHODS)}")
    check_number("batch_size", batch_size, numbers.Integral, 1)
    named = _named_sources(sources)
    # Check the targets before running any source.
    check_consistent_length(X, y)
    if method == "logme":
        _logme_targets(y, len(y))
    else:
        _labels(y, len(y), f"method={method!r}")
    rows = []
    for name, source in named:
        start = time.perf_counter()
        layer = -1 if method == "leep" else None
        values = SourceFeatures(source, layer=layer, batch_size=batch_size).fit_transform(X)
        if method == "leep":
            _check_probabilities(values, f"method='leep': the outputs of source {name!r}")
            score = leep(values, y)
        elif method == "logme":
            score = logme(values, y)
        else:
            score = h_score(values, y)
        rows.append((name, score, time.perf_counter() - start))
    return SourceRanking(rows, method=method)

"""Source and target tasks for trying, testing and benchmarking transfer.

The generators follow ``sklearn.datasets.make_classification``: plain NumPy
arrays, a ``random_state``, and shapes set by arguments. Each returns the
source task and the target task together, so that tests, docs and benchmarks
share one definition of "related tasks".
"""

import numbers

import numpy as np
from sklearn.utils import check_random_state

from ._validation import check_number


def _tasks(n_source, n_target, n_features, n_latent, relatedness, random_state, outputs):
    """Inputs and latent read-outs of a source and a target task.

    Both tasks read ``h(x) = sin(x W)``; the target's map is
    ``relatedness * h_source + (1 - relatedness) * h_other`` with an
    independent ``h_other``. ``outputs`` gives the shapes of the source and
    target read-out matrices. Returns the generator (for noise) and
    ``X_source, z_source, X_target, z_target``.
    """
    for name, value in (
        ("n_source", n_source),
        ("n_target", n_target),
        ("n_features", n_features),
        ("n_latent", n_latent),
    ):
        check_number(name, value, numbers.Integral, 1)
    check_number("relatedness", relatedness, numbers.Real, 0.0, 1.0, "both")
    rng = check_random_state(random_state)
    shared = rng.normal(size=(n_features, n_latent)) / np.sqrt(n_features)
    other = rng.normal(size=(n_features, n_latent)) / np.sqrt(n_features)
    read_source = rng.normal(size=(n_latent, *outputs[0]))
    read_target = rng.normal(size=(n_latent, *outputs[1]))
    X_source = rng.normal(size=(n_source, n_features))
    X_target = rng.normal(size=(n_target, n_features))
    h_target = relatedness * np.sin(X_target @ shared)
    h_target = h_target + (1.0 - relatedness) * np.sin(X_target @ other)
    return rng, X_source, np.sin(X_source @ shared) @ read_source, X_target, h_target @ read_target


def make_transfer_classification(
    n_source=3000,
    n_target=1000,
    n_features=20,
    *,
    n_latent=8,
    n_source_classes=10,
    n_target_classes=3,
    relatedness=1.0,
    random_state=None,
):
    """Generate a source and a target classification task that share a representation.

    Inputs are standard normal. Labels read a nonlinear feature map
    ``h(x) = sin(x W)`` with ``n_latent`` features: source labels are
    ``argmax(h_s(x) A_s)`` and target labels ``argmax(h_t(x) A_t)`` with
    independent random read-outs ``A_s`` and ``A_t``. The target's map is
    ``h_t = relatedness * h_s + (1 - relatedness) * h_other``: with
    ``relatedness=1`` both tasks read the same representation (a network
    trained on the source has learned what the target needs), with ``0`` they
    read unrelated ones (transfer should not help).

    Parameters
    ----------
    n_source : int, default=3000
        Number of source samples.
    n_target : int, default=1000
        Number of target samples (split off a few for training and keep the
        rest to measure accuracy).
    n_features : int, default=20
        Number of input features, shared by both tasks.
    n_latent : int, default=8
        Size of the representation the labels read.
    n_source_classes, n_target_classes : int, default=10 and 3
        Number of classes of each task.
    relatedness : float in [0, 1], default=1.0
        How much of the source representation the target reads.
    random_state : int, RandomState instance or None, default=None
        Seed of the generator.

    Returns
    -------
    X_source : ndarray of shape (n_source, n_features)
        Source inputs.
    y_source : ndarray of shape (n_source,)
        Source class labels, integers in ``[0, n_source_classes)``.
    X_target : ndarray of shape (n_target, n_features)
        Target inputs.
    y_target : ndarray of shape (n_target,)
        Target class labels, integers in ``[0, n_target_classes)``.

    Examples
    --------
    >>> from sktransfer.datasets import make_transfer_classification
    >>> Xs, ys, Xt, yt = make_transfer_classification(n_source=500, n_target=80,
    ...                                               random_state=0)
    >>> Xs.shape, Xt.shape, len(set(ys.tolist())), len(set(yt.tolist()))
    ((500, 20), (80, 20), 10, 3)
    """
    check_number("n_source_classes", n_source_classes, numbers.Integral, 2)
    check_number("n_target_classes", n_target_classes, numbers.Integral, 2)
    outputs = ((n_source_classes,), (n_target_classes,))
    _, X_source, z_source, X_target, z_target = _tasks(
        n_source, n_target, n_features, n_latent, relatedness, random_state, outputs
    )
    return X_source, np.argmax(z_source, axis=1), X_target, np.argmax(z_target, axis=1)


def make_transfer_regression(
    n_source=3000,
    n_target=1000,
    n_features=20,
    *,
    n_latent=8,
    n_source_targets=4,
    relatedness=1.0,
    noise=0.05,
    random_state=None,
):
    """Generate a source and a target regression task that share a representation.

    As :func:`make_transfer_classification`, with linear read-outs: the
    source has ``n_source_targets`` outputs ``h_s(x) B_s`` and the target one
    output ``h_t(x) b_t``, each with Gaussian noise of standard deviation
    ``noise``.

    Parameters
    ----------
    n_source, n_target, n_features, n_latent : int, default=3000, 1000, 20 and 8
        Numbers of source and target samples, of input features and of
        representation features, as in :func:`make_transfer_classification`.
    n_source_targets : int, default=4
        Number of source outputs.
    relatedness : float in [0, 1], default=1.0
        How much of the source representation the target reads.
    noise : float >= 0, default=0.05
        Standard deviation of the noise added to every output.
    random_state : int, RandomState instance or None, default=None
        Seed of the generator.

    Returns
    -------
    X_source : ndarray of shape (n_source, n_features)
        Source inputs.
    y_source : ndarray of shape (n_source, n_source_targets)
        Source targets.
    X_target : ndarray of shape (n_target, n_features)
        Target inputs.
    y_target : ndarray of shape (n_target,)
        Target values.

    Examples
    --------
    >>> from sktransfer.datasets import make_transfer_regression
    >>> Xs, ys, Xt, yt = make_transfer_regression(n_target=50, random_state=0)
    >>> ys.shape, yt.shape
    ((3000, 4), (50,))
    """
    check_number("n_source_targets", n_source_targets, numbers.Integral, 1)
    check_number("noise", noise, numbers.Real, 0.0)
    rng, X_source, y_source, X_target, y_target = _tasks(
        n_source,
        n_target,
        n_features,
        n_latent,
        relatedness,
        random_state,
        ((n_source_targets,), ()),
    )
    y_source = y_source + noise * rng.normal(size=y_source.shape)
    y_target = y_target + noise * rng.normal(size=y_target.shape)
    return X_source, y_source, X_target, y_target


def load_digits_transfer(split="classes"):
    """scikit-learn's bundled 8x8 digits, split into a source and a target task.

    Pixels are scaled to [0, 1]; each row holds 64 values (reshape to 8x8x1
    for an image model, which ``input_adapter="auto"`` does).

    Parameters
    ----------
    split : {"classes", "transposed"}, default="classes"
        ``"classes"``: digits 0-4 are the source task and 5-9 the target
        (relabelled 0-4); this measures whether strokes learned on some digits
        help to tell other digits apart. ``"transposed"``: all upright digits
        are the source and the transposed images the target (same labels);
        this measures transfer under a change of domain. On such small images
        a network trained from scratch often does about as well as a
        transferred one; the generated tasks show the effect of transfer more
        clearly.

    Returns
    -------
    X_source : ndarray of shape (n_source, 64)
        Source images, one flattened 8x8 image per row.
    y_source : ndarray of shape (n_source,)
        Source digit labels.
    X_target : ndarray of shape (n_target, 64)
        Target images; for ``"transposed"`` the same 1797 digits as
        ``X_source``, transposed.
    y_target : ndarray of shape (n_target,)
        Target labels: digits 5-9 relabelled 0-4 for ``"classes"``, the
        digits themselves for ``"transposed"``.

    Examples
    --------
    >>> from sktransfer.datasets import load_digits_transfer
    >>> Xs, ys, Xt, yt = load_digits_transfer("classes")
    >>> sorted(set(ys.tolist())), sorted(set(yt.tolist())), Xs.shape[1]
    ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], 64)
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    if split == "classes":
        source = y < 5
        return X[source], y[source], X[~source], y[~source] - 5
    if split == "transposed":
        transposed = X.reshape(-1, 8, 8).transpose(0, 2, 1).reshape(-1, 64)
        return X, y, transposed, y.copy()
    raise ValueError(f"split must be 'classes' or 'transposed'; got {split!r}")

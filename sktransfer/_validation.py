"""The rules for numeric and flag parameters and for the shape of X, written once."""

import numbers

import numpy as np
from sklearn.utils import check_scalar


class InvalidParameterError(ValueError, TypeError):
    """A parameter of the wrong type or out of range.

    Both a ValueError and a TypeError, as scikit-learn's own
    ``InvalidParameterError`` is, so callers may catch either.
    """


def _span(low, high, closed):
    if low is None and high is None:
        return ""
    left = "[" if closed in ("left", "both") and low is not None else "("
    right = "]" if closed in ("right", "both") and high is not None else ")"
    return f" in {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def check_number(name, value, kind, low=None, high=None, closed="left", why=""):
    """Check a finite number with :func:`sklearn.utils.check_scalar`; return it.

    ``kind`` is ``numbers.Integral`` or ``numbers.Real``; ``closed`` says
    which bounds are allowed values, as check_scalar's ``include_boundaries``.
    Booleans, NaN and infinities are refused. The error names the parameter,
    the value given and what is allowed, followed by ``why``.
    """
    if low is None and closed in ("left", "both"):
        closed = "neither" if closed == "left" else "right"
    if high is None and closed in ("right", "both"):
        closed = "neither" if closed == "right" else "left"
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        check_scalar(value, name, kind, min_val=low, max_val=high, include_boundaries=closed)
        if not np.isfinite(value):
            raise ValueError
    except (TypeError, ValueError):
        noun = "an integer" if kind is numbers.Integral else "a number"
        if isinstance(value, numbers.Real) and not np.isfinite(value):
            noun = f"a finite {noun.split()[-1]}"
        raise InvalidParameterError(
            f"{name}={value!r} is not valid: {name} must be {noun}{_span(low, high, closed)}{why}"
        ) from None
    return value


def check_flag(name, value):
    """Check a boolean parameter; ``"False"`` and other truthy stand-ins are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(f"{name}={value!r} is not valid: {name} must be True or False")
    return bool(value)


def check_choice(name, value, choices):
    """Check that ``value`` is one of ``choices`` (compared by equality, type included)."""
    if not any(type(value) is type(c) and value == c for c in choices):
        raise InvalidParameterError(
            f"{name}={value!r} is not valid: {name} must be one of {list(choices)}"
        )
    return value


def _values(shape):
    size = 1
    for dim in shape:
        size *= int(dim)
    return size


def describe_samples(shape):
    """``"30 features"`` for flat rows, ``"samples of shape (8, 8) (64 values)"`` otherwise."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 1:
        return f"{shape[0]} features"
    return f"samples of shape {shape} ({_values(shape)} values)"


def _ndim(X):
    """Number of dimensions of array-like ``X``; 2 when unclear (validation says why)."""
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        try:
            ndim = np.asarray(X).ndim
        except (TypeError, ValueError):  # ragged or odd input: scikit-learn's error
            ndim = 2
    return ndim


def validate_samples(estimator, X, y="no_validation", *, reset, **check_params):
    """scikit-learn's ``validate_data`` for ``X`` of any rank: the input-shape rule.

    2-D ``X`` is validated exactly as scikit-learn does. ``X`` of higher rank
    (images ``(n, h, w)`` or ``(n, h, w, c)``, sequences ``(n, steps,
    features)``) goes through the same checks with ``allow_nd=True``, and its
    samples are counted as rows of values: ``n_features_in_`` is the number
    of values in one sample, and ``input_shape_`` (set for every ``X``) the
    shape of one sample, ``(n_features_in_,)`` for 2-D ``X``.

    With ``reset=False``, samples of ``input_shape_`` and samples flattened
    to ``n_features_in_`` values are both accepted, and ``X`` is returned in
    samples of ``input_shape_``. Returns what ``validate_data`` returns.
    """
    from sklearn.utils import check_array
    from sklearn.utils.validation import validate_data

    if _ndim(X) <= 2:
        out = validate_data(estimator, X, y, reset=reset, **check_params)
        if reset:
            estimator.input_shape_ = (int(estimator.n_features_in_),)
            return out
        # Estimators fitted before input_shape_ existed took flat rows only.
        shape = getattr(estimator, "input_shape_", out.shape[1:])
        return out.reshape((len(out), *shape))
    if reset:
        out = validate_data(estimator, X, y, reset=True, allow_nd=True, **check_params)
        X_checked = out[0] if isinstance(out, tuple) else out
        estimator.input_shape_ = tuple(int(d) for d in X_checked.shape[1:])
        estimator.n_features_in_ = _values(estimator.input_shape_)
        return out
    X = check_array(X, allow_nd=True, **check_params)
    expected = tuple(estimator.input_shape_)
    if X.shape[1:] != expected:
        raise ValueError(
            f"X has {describe_samples(X.shape[1:])}, but {type(estimator).__name__} was "
            f"fitted on {describe_samples(expected)}: pass samples of that shape, or "
            f"flattened to {_values(expected)} columns"
        )
    # The flat view runs scikit-learn's own checks of the fitted state.
    validate_data(estimator, X.reshape(len(X), -1), reset=False, **check_params)
    return X

"""The rule for numeric and flag parameters, written once for every public function."""

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

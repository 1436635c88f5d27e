"""Turning the ``source`` parameter into a Keras model, without ever changing it."""

import os


def _is_keras_model(obj):
    import keras

    return isinstance(obj, keras.Model)


def _wrapped_model(obj):
    """The fitted Keras model inside a scikit-learn wrapper, or None.

    Fitted ``scikeras`` estimators and ``keras.wrappers.SKLearn*`` estimators
    keep their trained network in ``model_``. They are recognised by that
    attribute alone, so neither package is ever imported here.
    """
    if not hasattr(obj, "fit"):
        return None
    model = getattr(obj, "model_", None)
    return model if model is not None and _is_keras_model(model) else None


def load_model_file(path, *, safe_mode=True):
    """Load a ``.keras`` file, with errors that name the path."""
    import keras

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"source: no such model file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"source: {path!r} is a directory, not a .keras model file")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ValueError(
            f"source: could not load a Keras model from {path!r}: {type(exc).__name__}: {exc}"
        ) from None
    if not _is_keras_model(model):
        raise ValueError(f"source: {path!r} does not hold a Keras model")
    return model


def resolve_source(source):
    """Return the Keras model that ``source`` designates.

    ``source`` is a ``keras.Model``, a path to a ``.keras`` file (loaded in
    Keras' safe mode), a fitted scikit-learn wrapper around a Keras model, or
    a zero-argument callable returning a model. The returned model is only
    ever read.
    """
    if _is_keras_model(source):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_model_file(source)
    wrapped = _wrapped_model(source)
    if wrapped is not None:
        return wrapped
    if callable(source):
        model = source()
        if not _is_keras_model(model):
            raise TypeError(
                "source: the callable must return a keras.Model; "
                f"it returned {type(model).__name__}"
            )
        return model
    raise TypeError(
        "source must be a keras.Model, a path to a .keras file, a fitted "
        "scikit-learn wrapper of a Keras model, or a zero-argument callable "
        f"returning a keras.Model; got {type(source).__name__}"
    )


def source_name(source):
    """A short human-readable name for a source, for tables and messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if _is_keras_model(source):
        return source.name
    wrapped = _wrapped_model(source)
    if wrapped is not None:
        return f"{type(source).__name__}({wrapped.name})"
    return getattr(source, "__name__", type(source).__name__)


def clone_sharing_source(estimator):
    """``sklearn.clone`` for an estimator with a ``source`` parameter, sharing it.

    The source is never mutated, so clones can share it: deep-copying a large
    Keras model for every candidate and fold would dominate a grid search.
    Everything else is cloned as ``sklearn.base.clone`` does, including
    metadata requests and ``set_output`` configuration.
    """
    import copy

    from sklearn.base import clone

    params = estimator.get_params(deep=False)
    source = params.pop("source")
    params = {key: clone(value, safe=False) for key, value in params.items()}
    new = type(estimator)(source=source, **params)
    for attribute in ("_metadata_request", "_sklearn_output_config"):
        if hasattr(estimator, attribute):
            setattr(new, attribute, copy.deepcopy(getattr(estimator, attribute)))
    return new

"""Turning the ``source`` parameter into a Keras model, without ever changing it."""

import os
import zipfile


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


def load_model_file(path, *, safe_mode=True, label=None, opt_in=None):
    """Load a ``.keras`` file, with errors that name the path.

    ``label`` names the file in messages (default: the path); ``opt_in`` is
    the call that accepts ``safe_mode=False`` for files that need to run code.
    The zip's members are checked against the caps of
    :mod:`sktransfer.persistence` before Keras reads them, and
    ``safe_mode=True`` holds even after
    ``keras.config.enable_unsafe_deserialization()``.
    """
    from .persistence import _keras_file

    path = os.fspath(path)
    label = label or path
    if not os.path.exists(path):
        raise FileNotFoundError(f"source: no such model file: {label!r}")
    if os.path.isdir(path):
        raise ValueError(f"source: {label!r} is a directory, not a .keras model file")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{label!r} is not a .keras model file: it is not a zip archive "
            "(truncated, corrupt, or another kind of file)"
        )
    with _keras_file(path, label) as readable:
        model = _keras_load(readable, label, safe_mode, opt_in)
    if not _is_keras_model(model):
        raise ValueError(f"{label!r} does not hold a Keras model")
    return model


def _keras_load(path, label, safe_mode, opt_in):
    """``keras.saving.load_model``, with Keras' many error types turned into ValueError."""
    import contextlib

    import keras

    from ._compat import safe_mode_scope

    # Keras' global enable_unsafe_deserialization() would override safe_mode=True.
    scope = safe_mode_scope(True) if safe_mode else contextlib.nullcontext()
    try:
        with scope:
            return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as exc:  # Keras raises many types for a bad file
        message = str(exc)
        if "safe_mode" in message or "Lambda" in message:
            how = (
                f"{opt_in}(..., safe_mode=False)"
                if opt_in
                else f"keras.models.load_model({label!r}, safe_mode=False) and pass the model"
            )
            raise ValueError(
                f"{label!r} was refused: loading it would run code stored in the file "
                f"(a Lambda layer). If you trust the file, use {how}; this executes that "
                f"code. ({message[:160]})"
            ) from None
        if "Could not locate" in message or "could not be deserialized" in message:
            raise ValueError(
                f"{label!r} needs custom layers or objects that are not registered in "
                "this process. If you trust their code, import and register them "
                "(keras.saving.register_keras_serializable), or load the file yourself "
                "with keras.models.load_model(..., custom_objects=...) and pass the "
                f"model. ({message[:160]})"
            ) from None
        raise ValueError(
            f"could not load a Keras model from {label!r}: {type(exc).__name__}: {message[:300]}"
        ) from None


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
    A source that is itself a fitted estimator (a scikit-learn wrapper) gets
    a shallow copy, so that ``set_params(source__...)`` on a clone leaves the
    original's wrapper alone, while both still share the Keras model inside.
    Everything else is cloned as ``sklearn.base.clone`` does, including
    metadata requests and ``set_output`` configuration.
    """
    import copy

    from sklearn.base import clone

    from ._compat import SKLEARN_CLONED_STATE

    params = estimator.get_params(deep=False)
    source = params.pop("source")
    if _wrapped_model(source) is not None:
        source = copy.copy(source)
    params = {key: clone(value, safe=False) for key, value in params.items()}
    new = type(estimator)(source=source, **params)
    for attribute in SKLEARN_CLONED_STATE:
        if hasattr(estimator, attribute):
            setattr(new, attribute, copy.deepcopy(getattr(estimator, attribute)))
    return new

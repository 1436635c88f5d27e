"""Saving fitted estimators without pickle, and loading them without running code.

A saved estimator is one zip file that holds:

- ``estimator.json``: the format version, the sktransfer version, the class
  name, the parameters and the fitted attributes, all as plain JSON data;
- ``model.keras``: the fitted ``model_`` in Keras' own format;
- ``source.keras``: the source model, when ``source`` was a ``keras.Model``.

:func:`load` reads the JSON, builds the estimator from a fixed list of
classes, and loads the Keras files in Keras' safe mode, so a file cannot make
it run code. Use pickle (or joblib) instead when you need the exact Python
objects back, including parameters that are not plain data (callbacks, a
callable source, a ``joblib.Memory``), and only for files you trust.
"""

import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

from ._version import __version__

FORMAT = 1
# The classes a file may name: the estimators register themselves
# (``_register``), so that this module never imports them.
_CLASSES = {}


def _register(*classes):
    """Let ``save`` and ``load`` handle ``classes`` (estimators with ``_fitted_attributes``)."""
    _CLASSES.update((cls.__name__, cls) for cls in classes)


def _classes():
    return dict(_CLASSES)


def _encode(value):
    """Plain JSON for a fitted attribute or parameter; raises TypeError if not plain."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            raise TypeError(f"arrays of dtype {value.dtype} are not plain data")
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        encoded = [_encode(v) for v in value]
        return {"__tuple__": encoded} if isinstance(value, tuple) else encoded
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("dicts with non-string keys are not plain data")
        return {k: _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__} is not plain data")


def _decode(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save(estimator, path):
    """Save a fitted transfer estimator to ``path`` (a zip file), without pickle.

    Parameters that are not plain data and not a Keras model (callbacks, a
    callable source, a ``joblib.Memory``) are saved as None, with a warning.

    Parameters
    ----------
    estimator : TransferClassifier or TransferRegressor
        A fitted estimator.
    path : str or path-like
        Where to write; by convention with a ``.skt`` suffix.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import os, tempfile, zipfile
    >>> import keras
    >>> import numpy as np
    >>> from sktransfer import TransferClassifier
    >>> from sktransfer.persistence import save
    >>> source = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(8, activation="relu"),
    ...     keras.layers.Dense(3, activation="softmax"),
    ... ])
    >>> X = np.random.default_rng(0).normal(size=(30, 4))
    >>> clf = TransferClassifier(source, epochs=2, random_state=0).fit(X, np.arange(30) % 3)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "clf.skt")
    ...     save(clf, path)  # the same as clf.save(path)
    ...     sorted(zipfile.ZipFile(path).namelist())
    ['estimator.json', 'model.keras', 'source.keras']
    """
    import keras
    from sklearn.utils.validation import check_is_fitted

    if _classes().get(type(estimator).__name__) is not type(estimator):
        raise TypeError(f"save supports {sorted(_classes())}; got {type(estimator).__name__}")
    check_is_fitted(estimator)
    params, dropped, files = {}, [], {}
    for name, value in estimator.get_params(deep=False).items():
        if name == "source" and isinstance(value, keras.Model):
            files["source.keras"] = value
            params[name] = {"__file__": "source.keras"}
            continue
        if name == "source" and isinstance(value, os.PathLike):
            value = os.fspath(value)
        try:
            params[name] = _encode(value)
        except TypeError:
            params[name] = None
            dropped.append(name)
    if dropped:
        warnings.warn(
            f"save: parameters {dropped} are not plain data and are saved as None; "
            "set them again after load, or use pickle for files you trust",
            UserWarning,
            stacklevel=2,
        )
    fitted = {
        name: _encode(getattr(estimator, name))
        for name in estimator._fitted_attributes
        if hasattr(estimator, name)
    }
    header = {
        "format": FORMAT,
        "sktransfer": __version__,
        "class": type(estimator).__name__,
        "params": params,
        "dropped_params": dropped,
        "fitted": fitted,
    }
    files["model.keras"] = estimator.model_
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path, "w") as archive:
        archive.writestr("estimator.json", json.dumps(header))
        for name, model in files.items():
            model_path = os.path.join(tmp, name)
            model.save(model_path)
            archive.write(model_path, name)


def _load_keras(archive, name, path, safe_mode):
    from ._source import load_model_file

    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, name)
        with open(target, "wb") as out:
            out.write(archive.read(name))
        return load_model_file(
            target, safe_mode=safe_mode, label=f"{path}:{name}", opt_in="sktransfer.load"
        )


def load(path, *, safe_mode=True):
    """Load an estimator written by ``est.save(path)``.

    Nothing in the file is executed: the estimator class comes from a fixed
    list, parameters and fitted attributes are plain JSON data, and the
    networks load in Keras' safe mode.

    Parameters
    ----------
    path : str or path-like
        The saved file.
    safe_mode : bool, default=True
        Keras' safe mode. ``False`` lets the networks' files run code (a
        ``Lambda`` layer's function, custom objects): only for files you
        trust.

    Returns
    -------
    estimator : TransferClassifier or TransferRegressor
        The fitted estimator, predicting exactly as when it was saved.

    See Also
    --------
    save : Write a fitted estimator to a file.

    Examples
    --------
    >>> import os, tempfile
    >>> import keras
    >>> import numpy as np
    >>> from sktransfer import TransferClassifier, load
    >>> source = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(8, activation="relu"),
    ...     keras.layers.Dense(3, activation="softmax"),
    ... ])
    >>> X = np.random.default_rng(0).normal(size=(30, 4))
    >>> clf = TransferClassifier(source, epochs=2, random_state=0).fit(X, np.arange(30) % 3)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "clf.skt")
    ...     clf.save(path)
    ...     loaded = load(path)
    >>> loaded.classes_.tolist(), loaded.n_iter_
    ([0, 1, 2], 2)
    >>> bool(np.array_equal(loaded.predict_proba(X), clf.predict_proba(X)))
    True
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"load: {path!r} is a directory, not a saved sktransfer estimator")
    try:
        archive = zipfile.ZipFile(path)
        header = json.loads(archive.read("estimator.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ValueError(
            f"load: {path!r} is not a saved sktransfer estimator ({type(exc).__name__}: {exc})"
        ) from None
    with archive:
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            version = header.get("sktransfer", "?") if isinstance(header, dict) else "?"
            found = header.get("format") if isinstance(header, dict) else None
            raise ValueError(
                f"load: {path!r} was written by sktransfer {version} in file format "
                f"{found!r}; this sktransfer reads format {FORMAT}. Load it with the "
                "sktransfer version that wrote it, and refit or save it again."
            )
        cls = _classes().get(header.get("class"))
        if cls is None:
            raise ValueError(f"load: {path!r} holds an unknown class {header.get('class')!r}")
        params = _decode(header["params"])
        if isinstance(params.get("source"), dict) and "__file__" in params["source"]:
            params["source"] = _load_keras(archive, "source.keras", path, safe_mode)
        estimator = cls(**params)
        for name, value in header["fitted"].items():
            if name in cls._fitted_attributes:
                setattr(estimator, name, _decode(value))
        estimator.model_ = _load_keras(archive, "model.keras", path, safe_mode)
    if header.get("dropped_params"):
        warnings.warn(
            f"load: parameters {header['dropped_params']} were not plain data when "
            "saved and are None; set them again if you refit",
            UserWarning,
            stacklevel=2,
        )
    return estimator

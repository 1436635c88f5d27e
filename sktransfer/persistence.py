"""Saving fitted estimators without pickle, and loading them without running code.

A saved estimator is one zip file that holds:

- ``estimator.json``: the format version, the sktransfer version, the class
  name, the parameters and the fitted attributes, all as plain JSON data;
- ``model.keras``: the fitted ``model_`` in Keras' own format;
- ``source.keras``: the source model, when ``source`` was a ``keras.Model``
  or a fitted scikeras or ``keras.wrappers`` estimator (whose Keras model,
  ``source.model_``, is saved: the loaded estimator's ``source`` is that
  model).

:func:`load` reads the JSON, builds the estimator from a fixed list of
classes, and loads the Keras files in Keras' safe mode, so a file cannot make
it run code. A file never gives the loaded estimator a path or a cache:
``memory`` is None and a ``source`` given as a path is None. Use pickle (or
joblib) instead when you need the exact Python objects back, including
parameters that are not plain data (callbacks, a callable source, a
``joblib.Memory``), and only for files you trust.

Reading a file, saved estimator or ``.keras`` source, is bounded: no zip member
may expand to more than these sizes, checked before anything is read and again
while reading. Raise them, for files you trust, by assigning to them::

    import sktransfer.persistence
    sktransfer.persistence.MAX_ARCHIVE_BYTES = 16 * 2**30

MAX_JSON_BYTES
    Each JSON member (``estimator.json``, a ``.keras`` file's ``config.json``),
    16 MiB: 17 times the ``config.json`` of EfficientNetV2L (1031 layers).
MAX_ARCHIVE_BYTES
    All members of one zip together, 4 GiB: a billion float32 weights, three
    times ConvNeXtXLarge, the largest ``keras.applications`` model.
MAX_EXPANSION
    How many times a member other than JSON, larger than 1 MiB, may expand
    (100). Keras and sktransfer store members uncompressed, and real weights
    compress about 1.1 times, so more is a decompression bomb. (JSON, which
    compresses up to about 40 times, is capped by size instead.)
"""

import contextlib
import json
import os
import re
import tempfile
import warnings
import zipfile
import zlib

import numpy as np

from ._version import __version__

FORMAT = 1
MAX_JSON_BYTES = 16 * 2**20
MAX_ARCHIVE_BYTES = 4 * 2**30
MAX_EXPANSION = 100
_EXPANSION_FLOOR = 2**20
_MAX_DEPTH = 32
_CHUNK = 2**20
# Plain scalar dtypes, as ``dtype.str`` writes them; "object" holds plain scalars.
_DTYPES = re.compile(r"[<>|=](b1|[iu][1248]|f[248]|U[1-9][0-9]{0,3})|object")
# What zipfile and zlib raise for damaged data (OSError: a header pointing outside the file).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError)
# Parameters a file never sets, and why.
_NEVER_FROM_A_FILE = {
    "memory": "a memory directory is a joblib cache, read with pickle: set it yourself, "
    "to a directory only you can write",
    "source": "a path names a file on this machine: set source again before a refit, "
    "to a file you trust",
}
# The classes a file may name: the estimators register themselves
# (``_register``), so that this module never imports them.
_CLASSES = {}


def _register(*classes):
    """Let ``save`` and ``load`` handle ``classes`` (estimators with ``_fitted_attributes``)."""
    _CLASSES.update((cls.__name__, cls) for cls in classes)


def _classes():
    return dict(_CLASSES)


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _size(n):
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# -- bounded zip reading ----------------------------------------------------------------


def _check_archive(archive, label):
    """Refuse a zip whose members could exhaust memory or disk when read.

    Every member is checked from its header before anything is read: stored
    or deflated, not encrypted, within ``MAX_JSON_BYTES`` (JSON members) and
    ``MAX_ARCHIVE_BYTES`` (all members together), and, unless JSON, expanding
    at most ``MAX_EXPANSION`` times. The readers below then never inflate
    much past those sizes, whatever the compressed data holds.
    """
    total = 0
    for info in archive.infolist():
        name, size = info.filename, info.file_size
        total += size
        methods = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
        if info.compress_type not in methods or info.flag_bits & 0x1:
            raise ValueError(
                f"{label!r}: member {name!r} is encrypted or compressed with method "
                f"{info.compress_type}; sktransfer reads stored and deflated members only"
            )
        is_json = name.endswith(".json")
        if is_json and size > MAX_JSON_BYTES:
            raise ValueError(
                f"{label!r}: member {name!r} expands to {_size(size)}, above the "
                f"{_size(MAX_JSON_BYTES)} of sktransfer.persistence.MAX_JSON_BYTES "
                "(raise it if you trust the file)"
            )
        if not is_json and size > _EXPANSION_FLOOR and size > MAX_EXPANSION * info.compress_size:
            raise ValueError(
                f"{label!r}: member {name!r} expands from {_size(info.compress_size)} "
                f"to {_size(size)}, more than sktransfer.persistence.MAX_EXPANSION = "
                f"{MAX_EXPANSION} times: a decompression bomb"
            )
    if total > MAX_ARCHIVE_BYTES:
        raise ValueError(
            f"{label!r}: its members expand to {_size(total)}, above the "
            f"{_size(MAX_ARCHIVE_BYTES)} of sktransfer.persistence.MAX_ARCHIVE_BYTES "
            "(raise it if you trust the file)"
        )


@contextlib.contextmanager
def _opened(path, label):
    """The zip at ``path``, checked; a damaged zip is a ValueError naming ``label``."""
    try:
        archive = zipfile.ZipFile(path)
    except (*_ZIP_ERRORS, ValueError) as exc:
        raise ValueError(
            f"{label!r} is not a readable zip archive ({type(exc).__name__}: {exc})"
        ) from None
    with archive:
        _check_archive(archive, label)
        yield archive


@contextlib.contextmanager
def _member(archive, name, label):
    """Member ``name`` opened for reading; missing or damaged is a ValueError."""
    try:
        with archive.open(name) as stream:
            yield stream
    except KeyError:
        raise ValueError(f"{label!r} has no member {name!r}") from None
    except _ZIP_ERRORS as exc:
        raise ValueError(
            f"{label!r}: member {name!r} cannot be read ({type(exc).__name__}: {exc})"
        ) from None


def _overrun(label, name):
    return ValueError(f"{label!r}: member {name!r} holds more than its header declares")


def _read_member(archive, name, label):
    """The bytes of member ``name``, never reading past the size its header declares."""
    with _member(archive, name, label) as stream:
        limit = archive.getinfo(name).file_size
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise _overrun(label, name)
    return data


def _copy_member(archive, name, label, out):
    """Copy member ``name`` into the open file ``out``, inflating one chunk at a time."""
    written = 0
    with _member(archive, name, label) as stream:
        limit = archive.getinfo(name).file_size
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise _overrun(label, name)
            out.write(chunk)


@contextlib.contextmanager
def _keras_file(path, label):
    """A path at which Keras can read the ``.keras`` zip ``path`` without a bomb.

    Keras reads whole members at once, and a deflated member whose header
    understates its size makes it inflate far more than the header says. A
    file whose members are all stored (as Keras writes them) is given as it
    is, after :func:`_check_archive`; otherwise its members are copied through
    the bounded reader into a stored copy in a temporary directory.
    """
    with _opened(path, label) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if all(info.compress_type == zipfile.ZIP_STORED for info in infos):
            yield path
            return
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "model.keras")
            with zipfile.ZipFile(copy, "w") as out:
                for info in infos:
                    stored = zipfile.ZipInfo(info.filename, info.date_time)
                    stored.file_size = info.file_size
                    with out.open(stored, "w") as member:
                        _copy_member(archive, info.filename, label, member)
            yield copy


# -- plain data -------------------------------------------------------------------------


def _plain_scalar(value):
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (str, bool, int, float)):
        raise TypeError(f"arrays of dtype object holding {type(value).__name__} are not plain")
    return value


def _encode(value):
    """Plain JSON for a fitted attribute or parameter; raises TypeError if not plain."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            items = np.array([_plain_scalar(v) for v in value.ravel()], dtype=object)
            return {"__ndarray__": items.reshape(value.shape).tolist(), "dtype": "object"}
        if not _DTYPES.fullmatch(value.dtype.str):
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


def _array_shape(data, depth):
    """The shape of a rectangular nested list of plain scalars, or ValueError."""
    if not isinstance(data, list):
        if isinstance(data, (str, bool, int, float)):
            return ()
        raise ValueError(f"array entries must be numbers or strings, not {_short(data)}")
    if depth >= _MAX_DEPTH:
        raise ValueError(f"arrays have at most {_MAX_DEPTH} dimensions")
    shapes = {_array_shape(item, depth + 1) for item in data}
    if len(shapes) > 1:
        raise ValueError("array rows have different lengths")
    return (len(data), *(shapes.pop() if shapes else ()))


def _decode_array(value, depth):
    data, dtype = value["__ndarray__"], value.get("dtype")
    if set(value) != {"__ndarray__", "dtype"} or not isinstance(dtype, str):
        raise ValueError("an array needs exactly the keys '__ndarray__' and 'dtype'")
    if not _DTYPES.fullmatch(dtype):
        raise ValueError(f"dtype {_short(dtype)} is not one of bool, int, float, str, object")
    dtype = np.dtype(dtype)
    shape = _array_shape(data, depth)
    # The JSON size bounds the entries; only a long string dtype could multiply it.
    if int(np.prod(shape)) * dtype.itemsize > 8 * MAX_JSON_BYTES:
        raise ValueError(f"an array of shape {shape} and dtype {dtype} is too large")
    try:
        array = np.array(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"bad array entries for dtype {dtype} ({exc})") from None
    if array.shape != shape:
        raise ValueError(f"array entries do not form shape {shape}")
    return array


def _decode(value, depth=0):
    """Python values from plain JSON; ValueError for anything ``_encode`` never writes."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"values nest more than {_MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return _decode_array(value, depth)
        if "__tuple__" in value:
            if set(value) != {"__tuple__"} or not isinstance(value["__tuple__"], list):
                raise ValueError("a tuple needs exactly the key '__tuple__', with a list")
            return tuple(_decode(v, depth + 1) for v in value["__tuple__"])
        return {k: _decode(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, depth + 1) for v in value]
    return value


# -- save -------------------------------------------------------------------------------


def save(estimator, path):
    """Save a fitted transfer estimator to ``path`` (a zip file), without pickle.

    Parameters that are not plain data and not a Keras model (callbacks, a
    callable source) and a ``source`` given as a path are saved as None, with
    a warning: a file never gives a loaded estimator code or a path. ``memory``
    is always saved as None, since it only caches work on this machine. A
    fitted scikeras or ``keras.wrappers`` estimator given as ``source`` is
    saved as the Keras model it wraps (``source.model_``), which the loaded
    estimator then has as its ``source``.

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
    from sklearn.utils.validation import check_is_fitted

    if _classes().get(type(estimator).__name__) is not type(estimator):
        raise TypeError(f"save supports {sorted(_classes())}; got {type(estimator).__name__}")
    check_is_fitted(estimator)
    params, dropped, files = _saved_params(estimator)
    if dropped:
        warnings.warn(
            f"save: parameters {dropped} are not plain data or are paths, and are saved "
            "as None; set them again after load, or use pickle for files you trust",
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


def _saved_params(estimator):
    """``(params, dropped, files)``: plain parameters, the names saved as None, models."""
    import keras

    from ._source import _wrapped_model

    params, dropped, files = {}, [], {}
    for name, value in estimator.get_params(deep=False).items():
        wrapped = _wrapped_model(value) if name == "source" else None
        if wrapped is not None:
            value = wrapped  # a wrapper's code is not data, but the network it trained is
        if name == "source" and isinstance(value, keras.Model):
            files["source.keras"] = value
            params[name] = {"__file__": "source.keras"}
        elif name == "memory":
            params[name] = None  # a cache of work done on this machine
        elif name == "source" and isinstance(value, (str, os.PathLike)):
            params[name] = None  # a path names a file on this machine only
            dropped.append(name)
        else:
            try:
                params[name] = _encode(value)
            except TypeError:
                params[name] = None
                dropped.append(name)
    return params, dropped, files


# -- load -------------------------------------------------------------------------------


def _load_keras(archive, name, path, safe_mode):
    from ._source import load_model_file

    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, name)
        with open(target, "wb") as out:
            _copy_member(archive, name, path, out)
        return load_model_file(
            target, safe_mode=safe_mode, label=f"{path}:{name}", opt_in="sktransfer.load"
        )


def _read_header(archive, path):
    """The checked contents of ``estimator.json``."""
    data = _read_member(archive, "estimator.json", path)
    try:
        header = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(
            f"load: {path!r}: estimator.json is not JSON ({type(exc).__name__}: {str(exc)[:100]})"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        version = header.get("sktransfer", "?") if isinstance(header, dict) else "?"
        found = header.get("format") if isinstance(header, dict) else None
        raise ValueError(
            f"load: {path!r} was written by sktransfer {str(version)[:40]} in file format "
            f"{_short(found)}; this sktransfer reads format {FORMAT}. Load it with the "
            "sktransfer version that wrote it, and refit or save it again."
        )
    kinds = {"class": str, "params": dict, "fitted": dict, "dropped_params": list}
    for key, kind in kinds.items():
        if not isinstance(header.get(key), kind):
            raise ValueError(
                f"load: {path!r}: estimator.json needs {key!r} as a {kind.__name__}; "
                f"it holds {_short(header.get(key))}"
            )
    if header["class"] not in _classes():
        raise ValueError(f"load: {path!r} holds an unknown class {_short(header['class'])}")
    return header


def _decoded(entries, allowed, path, what):
    """Decode a dict of named entries, refusing names outside ``allowed``."""
    unknown = sorted(set(entries) - set(allowed))
    if unknown:
        raise ValueError(f"load: {path!r}: unknown {what}s {_short(unknown)}")
    decoded = {}
    for name, value in entries.items():
        try:
            decoded[name] = _decode(value)
        except ValueError as exc:
            raise ValueError(f"load: {path!r}: {what} {name!r}: {exc}") from None
    return decoded


def _restored_params(header, cls, archive, path, safe_mode):
    """``(params, never)``: the parameters for ``cls``, and those the file may not set."""
    params = _decoded(header["params"], cls().get_params(deep=False), path, "parameter")
    never = ["memory"] if params.get("memory") is not None else []
    if isinstance(params.get("source"), str):
        never.append("source")
    params.update(dict.fromkeys(never))
    if isinstance(params.get("source"), dict) and "__file__" in params["source"]:
        params["source"] = _load_keras(archive, "source.keras", path, safe_mode)
    return params, never


def load(path, *, safe_mode=True):
    """Load an estimator written by ``est.save(path)``.

    Nothing in the file is executed: the estimator class comes from a fixed
    list, parameters and fitted attributes are plain JSON data, and the
    networks load in Keras' safe mode, even after
    ``keras.config.enable_unsafe_deserialization()``. A file never sets a path
    or a cache: ``memory`` is None, and so is a ``source`` given as a path
    (each with a warning if the file holds one). Every member's size is
    bounded (see :mod:`sktransfer.persistence`), and the fitted attributes
    must match the network. A file that breaks any of these rules raises a
    ``ValueError`` naming it.

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
    if not zipfile.is_zipfile(path):
        raise ValueError(f"load: {path!r} is not a saved sktransfer estimator (not a zip file)")
    with _opened(path, path) as archive:
        header = _read_header(archive, path)
        cls = _classes()[header["class"]]
        fitted = _decoded(header["fitted"], cls._fitted_attributes, path, "fitted attribute")
        params, never = _restored_params(header, cls, archive, path, safe_mode)
        estimator = cls(**params)
        vars(estimator).update(fitted)
        estimator.model_ = _load_keras(archive, "model.keras", path, safe_mode)
    if "input_shape_" not in fitted and _count(fitted.get("n_features_in_"), 1):
        # Files written before input_shape_ existed: X was always 2-D then.
        estimator.input_shape_ = (fitted["n_features_in_"],)
    _check_fitted(estimator, path)
    _warn_cleaned(path, header["dropped_params"], never)
    return estimator


def _warn_cleaned(path, dropped, never):
    for name in never:
        warnings.warn(
            f"load: {path!r} sets {name}, which a file never sets; it is None: "
            f"{_NEVER_FROM_A_FILE[name]}",
            UserWarning,
            stacklevel=3,
        )
    if dropped:
        warnings.warn(
            f"load: parameters {_short(dropped)} were not plain data or were paths when "
            "saved and are None; set them again if you refit",
            UserWarning,
            stacklevel=3,
        )


# -- consistency of the fitted state ----------------------------------------------------


def _check_fitted(estimator, path):
    """Refuse fitted attributes that do not describe the network they come with."""
    problem = _fitted_problem(estimator)
    if problem:
        raise ValueError(f"load: {path!r} does not hold a consistent estimator: {problem}")


def _count(value, low=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _vector(value, kinds, length):
    return (
        isinstance(value, np.ndarray)
        and value.ndim == 1
        and value.dtype.kind in kinds
        and len(value) == length
    )


def _network_shape(model):
    """``(sample_shape, n_outputs)`` of a network with one input and one 2-D output, or None."""
    try:
        (inputs,), (outputs,) = model.inputs, model.outputs
    except (AttributeError, TypeError, ValueError):
        return None
    if len(inputs.shape) < 2 or len(outputs.shape) != 2:
        return None
    return tuple(inputs.shape[1:]), outputs.shape[1]


def _fitted_problem(est):
    """What is wrong with the fitted attributes of ``est``, or None."""
    names = type(est)._fitted_attributes
    missing = [n for n in names if n != "feature_names_in_" and not hasattr(est, n)]
    if missing:
        return f"the fitted attributes {missing} are missing"
    shape = _network_shape(est.model_)
    if shape is None or not all(_count(n, 1) for n in (*shape[0], shape[1])):
        return "the network must take (n_samples, ...) and give (n_samples, n_outputs)"
    sample_shape, n_out = shape
    problem = _inputs_problem(est, sample_shape) or _bookkeeping_problem(est)
    if problem:
        return problem
    if "classes_" in names:
        return _classes_problem(est.classes_, n_out)
    return _targets_problem(est, n_out)


def _inputs_problem(est, sample_shape):
    if est.input_shape_ != sample_shape:
        return (
            f"input_shape_ is {_short(est.input_shape_)}; the network takes samples of "
            f"shape {sample_shape}"
        )
    n_in = int(np.prod(sample_shape))
    if not _count(est.n_features_in_) or est.n_features_in_ != n_in:
        return f"n_features_in_ is {_short(est.n_features_in_)}; the network takes {n_in}"
    names = getattr(est, "feature_names_in_", None)
    if names is not None and not (
        _vector(names, "UO", n_in) and all(isinstance(v, str) for v in names.tolist())
    ):
        return f"feature_names_in_ must be {n_in} strings, one per network input"
    return None


def _bookkeeping_problem(est):
    if not (
        _count(est.n_iter_)
        and isinstance(est.history_, dict)
        and isinstance(est.frozen_layers_, list)
        and all(isinstance(v, str) for v in est.frozen_layers_)
        and isinstance(est.input_adapter_, str)
        and est.input_adapter_ in ("none", "reshape", "resize", "dense")
    ):
        return "n_iter_, history_, frozen_layers_ or input_adapter_ is malformed"
    return None


def _classes_problem(classes, n_out):
    if not (isinstance(classes, np.ndarray) and classes.ndim == 1 and len(classes) >= 2):
        return f"classes_ must be a 1-D array of at least 2 labels; it is {_short(classes)}"
    if classes.dtype.kind not in "biufUO" or len(set(classes.tolist())) != len(classes):
        return "classes_ must hold distinct labels"
    expected = 1 if len(classes) == 2 else len(classes)
    if expected != n_out:
        return (
            f"classes_ has {len(classes)} labels, so the network needs {expected} "
            f"output(s); it has {n_out}"
        )
    return None


def _targets_problem(est, n_out):
    if not _count(est.n_outputs_, 1) or est.n_outputs_ != n_out:
        return f"n_outputs_ is {_short(est.n_outputs_)}; the network has {n_out} outputs"
    for name in ("_y_mean", "_y_scale"):
        value = getattr(est, name)
        if not (_vector(value, "f", n_out) and np.isfinite(value).all()):
            return f"{name} must be {n_out} finite floats, one per output"
    if not (est._y_scale > 0).all():
        return "_y_scale must be positive"
    if not (_count(est._y_ndim, 1) and est._y_ndim <= 2) or (est._y_ndim == 1 and n_out != 1):
        return f"_y_ndim is {_short(est._y_ndim)} for {n_out} outputs"
    return None

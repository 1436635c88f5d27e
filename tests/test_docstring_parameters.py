"""Docstrings match the code: what a signature takes and what a fit sets is documented.

In the spirit of imbalanced-learn's ``tests/test_docstring_parameters.py``: the
numpydoc sections of every public class and function list exactly the
parameters of its signature, every fitted estimator documents exactly the
trailing-underscore attributes it has, and every public class and function
shows a runnable Examples section (the doctests themselves run with
``--doctest-modules``). Public names are discovered, not listed, so new ones
are covered as they land.
"""

import importlib
import importlib.util
import inspect

import numpy as np
import pytest
from sklearn.base import BaseEstimator, is_classifier, is_regressor

import sktransfer

docscrape = pytest.importorskip("numpydoc.docscrape")

_PUBLIC_MODULES = [
    "sktransfer.datasets",
    "sktransfer.estimators",
    "sktransfer.features",
    "sktransfer.persistence",
    "sktransfer.plotting",
    "sktransfer.selection",
]


def _public_modules():
    return [
        importlib.import_module(name)
        for name in _PUBLIC_MODULES
        if importlib.util.find_spec(name) is not None
    ]


def _public_objects():
    """Public classes and functions: ``sktransfer.__all__`` and the public modules' own."""
    found = {}
    candidates = [getattr(sktransfer, name) for name in sktransfer.__all__]
    for module in _public_modules():
        candidates += [
            obj
            for name, obj in vars(module).items()
            if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__
        ]
    for obj in candidates:
        if inspect.isclass(obj) or inspect.isfunction(obj):
            found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return dict(sorted(found.items()))


_OBJECTS = _public_objects()
_CLASSES = {name: obj for name, obj in _OBJECTS.items() if inspect.isclass(obj)}
_FUNCTIONS = {name: obj for name, obj in _OBJECTS.items() if inspect.isfunction(obj)}
# Estimators that learn from data; abstract bases (BaseTransfer) have no fit.
_ESTIMATORS = {
    name: cls
    for name, cls in _CLASSES.items()
    if issubclass(cls, BaseEstimator) and callable(getattr(cls, "fit", None))
}


def _public_methods():
    """Public methods of public classes that sktransfer defines (not scikit-learn's)."""
    found = {}
    for class_name, cls in _CLASSES.items():
        for name in dir(cls):
            if name.startswith("_"):
                continue
            function = inspect.getattr_static(cls, name)
            if isinstance(function, (classmethod, staticmethod)):
                function = function.__func__
            if inspect.isfunction(function) and function.__module__.startswith("sktransfer"):
                found[f"{class_name}.{name}"] = (cls, name)
    return found


_METHODS = _public_methods()


def _doc(obj):
    return docscrape.NumpyDocString(inspect.getdoc(obj) or "")


def _names(section):
    """Documented names; ``a, b : int`` documents both, ``**kwargs`` documents kwargs."""
    return {
        part.strip().lstrip("*")
        for entry in section
        for part in entry.name.split(",")
        if part.strip()
    }


def _signature_names(callable_):
    return {
        name
        for name, parameter in inspect.signature(callable_).parameters.items()
        if name not in ("self", "cls")
    }


def _compare(what, in_code, documented, absent="not in the signature"):
    missing = sorted(in_code - documented)
    extra = sorted(documented - in_code)
    assert not missing and not extra, (
        f"{what}: undocumented {missing}, documented but {absent} {extra}"
    )


def test_public_names_are_discovered():
    assert {"TransferClassifier", "TransferRegressor", "SourceFeatures"} <= {
        cls.__name__ for cls in _ESTIMATORS.values()
    }
    assert {"logme", "leep", "h_score", "rank_sources", "load", "save"} <= {
        function.__name__ for function in _FUNCTIONS.values()
    }


@pytest.mark.parametrize("name", list(_CLASSES))
def test_class_parameters_are_documented(name):
    cls = _CLASSES[name]
    _compare(f"{name}.__init__", _signature_names(cls), _names(_doc(cls)["Parameters"]))


@pytest.mark.parametrize("name", list(_FUNCTIONS))
def test_function_parameters_are_documented(name):
    function = _FUNCTIONS[name]
    _compare(name, _signature_names(function), _names(_doc(function)["Parameters"]))


@pytest.mark.parametrize("name", list(_METHODS))
def test_method_parameters_are_documented(name):
    cls, method = _METHODS[name]
    function = getattr(cls, method)
    doc = _doc(function)
    assert doc["Summary"], f"{name} has no docstring summary"
    _compare(name, _signature_names(function), _names(doc["Parameters"]))


@pytest.mark.parametrize("name", list(_OBJECTS))
def test_examples_section_is_present(name):
    examples = "\n".join(_doc(_OBJECTS[name])["Examples"])
    assert ">>>" in examples, f"{name} has no Examples section with a doctest"


@pytest.fixture(scope="module")
def tiny_task():
    """A small Keras source and a target task whose X has string column names.

    String column names make ``feature_names_in_`` appear, so the one
    conditional attribute is checked like the others.
    """
    keras = pytest.importorskip("keras")
    pd = pytest.importorskip("pandas")
    source = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 4)), columns=["a", "b", "c", "d"])
    labels = np.arange(30) % 3
    return source, X, labels


def _fitted(cls, task):
    source, X, labels = task
    params = {"source": source, "epochs": 2, "random_state": 0}
    estimator = cls(**{k: v for k, v in params.items() if k in cls().get_params()})
    y = labels.astype(float) if is_regressor(estimator) else labels
    if not (is_classifier(estimator) or is_regressor(estimator)):
        y = None
    return estimator.fit(X, y)


def _trailing_attributes(estimator):
    names = set()
    for name in dir(estimator):
        if name.endswith("_") and not name.startswith("_"):
            try:
                getattr(estimator, name)
            except AttributeError:
                continue
            names.add(name)
    return names


@pytest.mark.parametrize("name", list(_ESTIMATORS))
def test_fitted_attributes_are_documented(name, tiny_task):
    cls = _ESTIMATORS[name]
    estimator = _fitted(cls, tiny_task)
    documented = {attr for attr in _names(_doc(cls)["Attributes"]) if attr.endswith("_")}
    _compare(f"{name} after fit", _trailing_attributes(estimator), documented, "not set by fit")

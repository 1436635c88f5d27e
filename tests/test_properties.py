"""Bad input, tried systematically with hypothesis.

Every drawn case either works correctly or raises a ValueError or TypeError
with a clear message from sktransfer or scikit-learn, never an error from
inside TensorFlow; X, y and the source model are never modified.
"""

import copy
import pickle
import traceback
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from sktransfer import TransferClassifier, TransferRegressor

keras = pytest.importorskip("keras")
pd = pytest.importorskip("pandas")

SOURCE = None


def source():
    global SOURCE
    if SOURCE is None:
        init = keras.initializers.GlorotUniform
        SOURCE = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(8, activation="relu", kernel_initializer=init(0)),
                keras.layers.Dense(3, activation="softmax", kernel_initializer=init(1)),
            ]
        )
    return SOURCE


X_DTYPES = ["int64", "float16", "float32", "float64", "bool", "object_numbers", "object_strings"]
LABELS = ["int", "str", "bool", "mixed", "float", "single"]


@st.composite
def cases(draw):
    n = draw(st.sampled_from([0, 1, 2, 3, 8, 20]))
    n_features = draw(st.sampled_from([1, 3, 4]))
    kind = draw(st.sampled_from(X_DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X = rng.normal(size=(n, n_features)) * 3
    if kind == "object_strings":
        X = X.astype(str).astype(object)
        if n:
            X[0, 0] = "not a number"
    elif kind == "object_numbers":
        X = X.astype(object)
    elif kind == "bool":
        X = X > 0
    else:
        X = X.astype(kind)
    holes = draw(st.sampled_from(["none", "nan", "inf"]))
    if holes != "none" and n and X.dtype.kind == "f":
        X[draw(st.integers(0, n - 1)), 0] = np.nan if holes == "nan" else np.inf
    labels = draw(st.sampled_from(LABELS))
    base = rng.integers(0, 3, size=n)
    y = {
        "int": base,
        "str": np.array(["a", "b", "c"])[base],
        "bool": base > 0,
        "mixed": np.array(["a", 1, "c"], dtype=object)[base],
        "float": rng.normal(size=n),
        "single": np.zeros(n, dtype=int),
    }[labels]
    y = y[: max(n + draw(st.sampled_from([0, 0, 0, -1, 1])), 0)] if n else y
    container = draw(st.sampled_from(["numpy", "list", "pandas"]))
    if container == "list":
        X, y = X.tolist(), list(y)
    elif container == "pandas":
        X, y = pd.DataFrame(X), pd.Series(y)
    estimator = draw(st.sampled_from(["classifier", "regressor"]))
    return X, y, estimator


def _frames_inside_tensorflow(exc):
    return [f for f in traceback.extract_tb(exc.__traceback__) if "tensorflow" in f.filename]


def test_bad_input_never_crashes_or_mutates():
    counts = Counter()
    src = source()
    weights = [w.copy() for w in src.get_weights()]

    @given(case=cases())
    def check(case):
        X, y, kind = case
        X0, y0 = copy.deepcopy(X), copy.deepcopy(y)
        cls = TransferClassifier if kind == "classifier" else TransferRegressor
        est = cls(src, epochs=1, batch_size=8, random_state=0)
        try:
            est.fit(X, y)
            predicted = est.predict(X)
            assert len(predicted) == len(X)
            if kind == "classifier":
                proba = est.predict_proba(X)
                np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
                assert set(np.asarray(predicted).tolist()) <= set(est.classes_.tolist())
            score = est.score(X, y)
            assert np.isfinite(score) or (kind == "regressor" and len(X) < 2)  # R2 needs 2
            counts["worked"] += 1
        except (ValueError, TypeError) as exc:
            message = str(exc)
            assert len(message) > 15, message
            assert not _frames_inside_tensorflow(exc), traceback.format_exc()
            counts["refused"] += 1
        if isinstance(X, pd.DataFrame):
            pd.testing.assert_frame_equal(X, X0)
            pd.testing.assert_series_equal(y, y0)
        else:  # pickled bytes: NaN-safe and exact, dtype included
            assert pickle.dumps(X) == pickle.dumps(X0)
            assert pickle.dumps(y) == pickle.dumps(y0)

    check()
    for before, after in zip(weights, src.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    total = sum(counts.values())
    print(
        f"\nhypothesis tried {total} cases: {counts['worked']} worked, "
        f"{counts['refused']} refused with a clear error"
    )
    assert total > 0 and counts["refused"] > 0


# Each parameter: values that must work, and values that must be refused by name.
PARAMETERS = {
    "alpha": ([0.0, 0.3], [-0.5, 1.0, float("nan"), "0.3", None]),
    "learning_rate": ([1e-3, 0.05], [0.0, -1.0, float("inf"), 1e300, "fast"]),
    "epochs": ([1, 2], [0, 2.5, "many", None]),
    "batch_size": ([4, 64], [0, -2, 3.5]),
    "freeze": ([0, 1, "all"], [9, "some", 1.5]),
    "head": ([None, 3, (4, 2)], [0, -3, 10**9, "wide", (2, 0)]),
    "head_init": (["probe", "random"], ["lp", None]),
    "source_loss": (["distill", "l2sp"], ["kl", None]),
    "source_lr_scale": ([1.0, 0.2], [-1.0, float("inf")]),
    "pretrained": ([True, False], ["False", 0]),
    "class_weight": ([None, "balanced"], [[1, 2], "even", {0: -1.0}, {0: float("nan")}]),
    "random_state": ([0, 7], [-1, "seed"]),
}


@st.composite
def parameters(draw):
    """A few parameters, each valid or not; returns the params and the bad names."""
    names = draw(
        st.lists(st.sampled_from(sorted(PARAMETERS)), min_size=1, max_size=3, unique=True)
    )
    params, bad = {}, set()
    for name in names:
        good_values, bad_values = PARAMETERS[name]
        if draw(st.booleans()):
            params[name] = draw(st.sampled_from(bad_values))
            bad.add(name)
        else:
            params[name] = draw(st.sampled_from(good_values))
    return params, bad


def test_bad_parameters_are_refused_by_name_and_good_ones_work():
    """fit succeeds with finite, right-shaped predictions, or names a bad parameter."""
    src = source()
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 4)), np.arange(24) % 3
    counts = Counter()

    @settings(max_examples=60)
    @given(drawn=parameters())
    def check(drawn):
        params, bad = drawn
        est = TransferClassifier(src, **{"epochs": 1, **params})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X, y)
        except (ValueError, TypeError) as exc:
            assert bad, f"{params} is valid, but fit raised {exc!r}"
            assert any(name in str(exc) for name in bad), (params, str(exc))
            assert not _frames_inside_tensorflow(exc), traceback.format_exc()
            counts["refused"] += 1
            return
        assert not bad, f"fit accepted the bad parameters {sorted(bad)}: {params}"
        proba = est.predict_proba(X)
        assert proba.shape == (24, 3) and np.all(np.isfinite(proba))
        counts["worked"] += 1

    check()
    print(f"\nparameters: {counts['worked']} worked, {counts['refused']} refused by name")
    assert counts["worked"] and counts["refused"]

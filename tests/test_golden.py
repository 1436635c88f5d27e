"""Fixed seeds give the outputs recorded in ``tests/data/golden.npz``.

The file was written before the estimators were split into modules (issue
12), from the configurations below; a refactor of the training machinery must
reproduce them. Run ``python tests/test_golden.py --record`` to write the file
again after an intended change of results, and say why in the commit.

Locally the outputs match bit for bit; across machines (another CPU, another
oneDNN build) float32 rounding may differ in the last digits, hence the
tolerance. ``SKTRANSFER_GOLDEN_EXACT=1`` asks for exact equality.
"""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from sklearn.datasets import load_diabetes, load_iris  # noqa: E402

from sktransfer import SourceData, TransferClassifier, TransferRegressor  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "golden.npz"
# Settings that later changes of the defaults must not reach.
PINNED = dict(epochs=4, learning_rate=0.01, batch_size=32, head_init="random")


def _mlp(n_in, n_out, activation="softmax", seed=0, dropout=0.0):
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer=init(seed), name="d1"),
            keras.layers.Dropout(dropout, seed=seed, name="drop"),
            keras.layers.Dense(8, activation="relu", kernel_initializer=init(seed + 1), name="d2"),
            keras.layers.Dense(n_out, activation=activation, kernel_initializer=init(seed + 2)),
        ]
    )


def _cnn():
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Conv2D(4, 2, activation="relu", kernel_initializer=init(0), name="c"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(8, activation="relu", kernel_initializer=init(1), name="fc"),
            keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2), name="o"),
        ]
    )


def _outputs(name, est, X):
    out = {f"{name}/history/{k}": np.asarray(v) for k, v in est.history_.items()}
    if hasattr(est, "predict_proba"):
        out[f"{name}/proba"] = est.predict_proba(X)
    else:
        out[f"{name}/predict"] = est.predict(X)
    return out


def _classifier_cases(X, y, tmp):
    src = _mlp(4, 3, dropout=0.2)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    cases = {
        "plain": dict(),
        "freeze1_distill": dict(freeze=1, alpha=0.5),
        "freeze_all": dict(freeze="all"),
        "l2sp": dict(source_loss="l2sp", alpha=0.3),
        "head_cut": dict(head=(8,), cut=0, alpha=0.2),
        "scratch": dict(pretrained=False, freeze=1),
        "warmup_lr_scale": dict(head_warmup=2, source_lr_scale=0.5, alpha=0.2),
        "early_stopping": dict(early_stopping=True, n_iter_no_change=2, epochs=8),
        "class_weight": dict(class_weight="balanced", freeze=1),
        "dense_adapter_distill": dict(input_adapter="dense", alpha=0.4),
    }
    for name, params in cases.items():
        est = TransferClassifier(src, **{**PINNED, "random_state": 0, **params})
        fit = dict(sample_weight=weights) if name == "class_weight" else {}
        yield name, est.fit(X, y, **fit), X
    joint = TransferClassifier(src, source_loss="joint", alpha=0.5, random_state=0, **PINNED)
    yield "joint", joint.fit(X, y, source_data=SourceData(X[::-1], y[::-1])), X
    memory = dict(freeze=1, alpha=0.5, memory=os.path.join(tmp, "cache"), random_state=0)
    cached = TransferClassifier(_mlp(4, 3, seed=3), **PINNED, **memory)
    yield "memory_first", cached.fit(X, y), X
    yield "memory_hit", TransferClassifier(_mlp(4, 3, seed=3), **PINNED, **memory).fit(X, y), X
    warm = TransferClassifier(src, warm_start=True, random_state=0, **PINNED).fit(X, y)
    yield "warm_start", warm.fit(X, y), X
    watched = TransferClassifier(src, callbacks=[keras.callbacks.History()], random_state=1)
    yield "callbacks", watched.set_params(**PINNED).fit(X, y), X


def _image_cases():
    rng = np.random.default_rng(0)
    X, y = rng.random((90, 16)), rng.integers(0, 3, 90)
    for name, params in {
        "cnn_freeze1": dict(freeze=1, alpha=0.5),
        "cnn_freeze_all": dict(freeze="all"),
    }.items():
        yield name, TransferClassifier(_cnn(), random_state=0, **PINNED, **params).fit(X, y), X


def _regressor_cases():
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:200], y[:200]
    Y = np.column_stack([y, y[::-1]])
    src = _mlp(10, 2, activation="linear")
    for name, params, target in [
        ("reg_distill", dict(freeze=1, alpha=0.3), y),
        ("reg_l2sp_multi", dict(source_loss="l2sp", alpha=0.5), Y),
        ("reg_joint", dict(source_loss="joint", alpha=0.5), y),
    ]:
        est = TransferRegressor(src, random_state=0, **PINNED, **params)
        fit = dict(source_data=SourceData(X, Y)) if params.get("source_loss") == "joint" else {}
        yield name, est.fit(X, target, **fit), X


def compute():
    X, y = load_iris(return_X_y=True)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cases in (_classifier_cases(X, y, tmp), _image_cases(), _regressor_cases()):
            for name, est, X_eval in cases:
                out.update(_outputs(name, est, X_eval))
    return out


@pytest.mark.tensorflow_only(
    "recorded on TensorFlow; Keras' seeded initialisers draw other numbers on other backends"
)
def test_fixed_seeds_reproduce_the_recorded_outputs():
    expected = np.load(GOLDEN)
    got = compute()
    assert sorted(got) == sorted(expected.files)
    exact = os.environ.get("SKTRANSFER_GOLDEN_EXACT") == "1"
    for key in expected.files:
        if exact:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        else:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)


if __name__ == "__main__" and "--record" in sys.argv:
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez(GOLDEN, **compute())
    print(f"wrote {GOLDEN}")

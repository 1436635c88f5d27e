"""The contract with the rest of the Keras and scikit-learn world, and clean errors.

Callbacks see a network that maps raw X; divergence and non-finite inputs
are refused; clones are independent; every bad parameter is named.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _tasks import InterruptAt
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import NotFittedError

from sktransfer import TransferClassifier, TransferRegressor

keras = pytest.importorskip("keras")
ROOT = Path(__file__).resolve().parents[1]


def mlp(n_in=4, n_out=3, activation="softmax"):
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer=init(0), name="d1"),
            keras.layers.Dense(8, activation="relu", kernel_initializer=init(1), name="d2"),
            keras.layers.Dense(n_out, activation=activation, kernel_initializer=init(2)),
        ]
    )


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def source():
    return mlp()


# -- callbacks see the target network ----------------------------------------------------


class PredictsRawX(keras.callbacks.Callback):
    def __init__(self, X):
        super().__init__()
        self.X = X
        self.shapes = []

    def on_epoch_end(self, epoch, logs=None):
        self.shapes.append(self.model.predict(self.X, verbose=0).shape)


@pytest.mark.parametrize("freeze", [0, 1, "all"])
def test_callbacks_predict_on_raw_x_at_every_freeze_depth(freeze, source, iris):
    X, y = iris
    watcher = PredictsRawX(X[:7])
    clf = TransferClassifier(
        source, freeze=freeze, head=(4,), epochs=3, callbacks=[watcher], random_state=0
    )
    clf.fit(X, y)
    # Each fit works on copies of the callbacks: the one passed in is untouched.
    assert watcher.shapes == []
    shapes = []

    class Recorder(PredictsRawX):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            shapes.append(self.shapes[-1])

    TransferClassifier(
        source, freeze=freeze, head=(4,), epochs=3, callbacks=[Recorder(X[:7])], random_state=0
    ).fit(X, y)
    assert shapes == [(7, 3)] * 3


def test_model_checkpoint_writes_a_file_that_loads_in_safe_mode(tmp_path, source, iris):
    X, y = iris
    path = tmp_path / "best.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=False)
    clf = TransferClassifier(
        source, freeze=1, alpha=0.3, source_lr_scale=0.5, epochs=4, callbacks=[checkpoint]
    ).fit(X, y)
    saved = keras.saving.load_model(path, safe_mode=True)
    # The file holds the last epoch's network: the fitted model_.
    np.testing.assert_allclose(
        saved.predict(X.astype("float32"), verbose=0),
        clf.model_.predict(X.astype("float32"), verbose=0),
        rtol=1e-6,
    )


def test_backup_and_restore_resumes_an_interrupted_fit(tmp_path, source, iris):
    X, y = iris
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    params = dict(freeze=1, epochs=6, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        TransferClassifier(source, callbacks=[backup, InterruptAt(2)], **params).fit(X, y)
    resumed = TransferClassifier(source, callbacks=[backup], **params).fit(X, y)
    # Epochs 0-2 were done and backed up: the refit runs the remaining three.
    assert resumed.n_iter_ == 3


def test_user_early_stopping_and_learning_rate_callbacks_work(source, iris):
    X, y = iris
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    clf = TransferClassifier(source, epochs=20, callbacks=[stop], random_state=0).fit(X, y)
    assert clf.n_iter_ < 20
    seen = []

    class LearningRate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(float(self.model.optimizer.learning_rate))

    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 1e-3 / (epoch + 1))
    TransferClassifier(source, epochs=3, callbacks=[schedule, LearningRate()], random_state=0).fit(
        X, y
    )
    np.testing.assert_allclose(seen, [1e-3, 5e-4, 1e-3 / 3], rtol=1e-5)


# -- divergence and values outside float32 -------------------------------------------------


@pytest.mark.parametrize("head_init", ["probe", "random"])
def test_divergence_is_an_error_that_names_the_learning_rate(head_init, iris):
    X, y = iris
    source = mlp(n_out=1, activation="linear")
    reg = TransferRegressor(
        source, optimizer="sgd", learning_rate=10.0, epochs=5, head_init=head_init
    )
    with pytest.raises(ValueError, match=r"diverged.*learning_rate=10\.0"):
        reg.fit(X, X[:, 0])
    with pytest.raises(NotFittedError):
        reg.predict(X)


def test_divergence_of_a_warm_start_keeps_the_fitted_network(source, iris):
    X, y = iris
    clf = TransferClassifier(source, warm_start=True, epochs=3, random_state=0).fit(X, y)
    before = clf.predict_proba(X)
    clf.set_params(optimizer="sgd", learning_rate=1e30)
    with pytest.raises(ValueError, match="diverged"):
        clf.fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(X_scale=1e39), "beyond the float32 range"),
        (dict(learning_rate=float("inf")), "learning_rate=inf is not valid"),
        (dict(learning_rate=1e300), "learning_rate=1e.300 is not valid"),
        (dict(source_lr_scale=float("inf")), "source_lr_scale=inf is not valid"),
        (dict(class_weight={0: float("nan"), 1: 1.0, 2: 1.0}), "finite non-negative"),
        (dict(class_weight={0: -1.0, 1: 1.0, 2: 1.0}), "finite non-negative"),
        (dict(class_weight=[1, 2]), "class_weight must be None, 'balanced' or a dict"),
        (dict(sample_weight=-1.0), "sample_weight must hold finite non-negative"),
    ],
)
def test_non_finite_and_negative_values_are_refused(change, match, source, iris):
    X, y = iris
    change = dict(change)
    X = X * change.pop("X_scale", 1.0)
    weight = change.pop("sample_weight", None)
    weights = None if weight is None else np.full(len(y), weight)
    with pytest.raises(ValueError, match=match):
        TransferClassifier(source, epochs=1, **change).fit(X, y, sample_weight=weights)


def test_huge_regression_targets_give_finite_predictions(iris):
    X, _ = iris
    y = X[:, 0] * 1e200
    reg = TransferRegressor(mlp(n_out=1, activation="linear"), random_state=0).fit(X, y)
    prediction = reg.predict(X)
    # (R^2 and correlations overflow on such values: compare them scaled down.)
    assert np.all(np.isfinite(prediction))
    assert np.corrcoef(prediction / 1e200, y / 1e200)[0, 1] > 0.7


# -- parameters are validated up front, by name ---------------------------------------------


@pytest.mark.parametrize(
    "param, value, error, match",
    [
        ("pretrained", "False", ValueError, "pretrained='False' is not valid"),
        ("early_stopping", 1, ValueError, "early_stopping=1 is not valid"),
        ("warm_start", None, ValueError, "warm_start=None is not valid"),
        ("callbacks", ["x"], TypeError, "callbacks must hold keras.callbacks.Callback"),
        ("callbacks", [1], TypeError, "callbacks must hold keras.callbacks.Callback"),
        ("callbacks", [None], TypeError, "callbacks must hold keras.callbacks.Callback"),
        ("optimizer", "Optimizer", ValueError, "optimizer='Optimizer' is not a Keras"),
        ("optimizer", "LossScaleOptimizer", ValueError, "is not a Keras optimizer name"),
        ("head", 10**12, ValueError, "head=1000000000000 is not valid"),
        ("random_state", -1, ValueError, "random_state=-1 is not valid"),
        ("alpha", 1.0, ValueError, "alpha=1 would train on the source term alone"),
    ],
)
def test_bad_parameters_name_themselves(param, value, error, match, source, iris):
    with pytest.raises(error, match=match):
        TransferClassifier(source, epochs=1, **{param: value}).fit(*iris)


def test_a_single_class_is_named_plainly(source, iris):
    X, y = iris
    with pytest.raises(ValueError, match=r"got 1 class: 0$"):
        TransferClassifier(source).fit(X[:40], y[:40])


def test_a_source_with_string_inputs_is_refused_at_fit(iris):
    X, y = iris
    text = keras.Input((1,), dtype="string")
    ids = keras.layers.StringLookup(vocabulary=["a", "b"])(text)
    h = keras.layers.Dense(4, activation="relu")(keras.layers.CategoryEncoding(3)(ids))
    source = keras.Model(text, keras.layers.Dense(2, activation="softmax")(h))
    with pytest.raises(ValueError, match="the source takes inputs of dtype 'string'"):
        TransferClassifier(source).fit(X[:, :1], y)


# -- clones, predict and warnings ----------------------------------------------------------


def test_clones_of_an_estimator_source_are_independent(source, iris):
    from keras.wrappers import SKLearnClassifier

    X, y = iris

    def model_fn(X, y):
        return keras.models.clone_model(source)

    wrapper = SKLearnClassifier(model=model_fn, model_kwargs={})
    wrapper.model_ = source  # a fitted wrapper: its network in model_
    clf = TransferClassifier(wrapper, epochs=1)
    twin = clone(clf)
    twin.set_params(source__fit_kwargs={"epochs": 99})
    assert clf.source.fit_kwargs is None or "epochs" not in (clf.source.fit_kwargs or {})
    assert twin.source is not clf.source and twin.source.model_ is clf.source.model_
    # A Keras model source is shared, never copied.
    assert clone(TransferClassifier(source)).source is source


def test_predict_with_memory_leaves_the_estimator_unchanged(tmp_path, source, iris):
    X, y = iris
    clf = TransferClassifier(source, freeze=1, epochs=2, memory=str(tmp_path), random_state=0)
    clf.fit(X, y)
    before = dict(vars(clf))
    clf.predict(X)
    clf.predict_proba(X[:10])
    assert vars(clf).keys() == before.keys()
    assert all(vars(clf)[key] is value for key, value in before.items())


@pytest.mark.tensorflow_only(
    "on JAX, Keras' own Layer.get_weights() calls np.array on its variables, which warns "
    "under NumPy 2 (keras/src/backend/common/variables.py)"
)
def test_a_fit_runs_clean_under_deprecation_warnings_as_errors():
    code = (
        "import numpy as np, keras\n"
        "from sklearn.datasets import load_iris\n"
        "from sktransfer import TransferClassifier\n"
        "X, y = load_iris(return_X_y=True)\n"
        "src = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation='relu'),"
        " keras.layers.Dense(3, activation='softmax')])\n"
        "for kw in [{}, {'freeze': 1, 'alpha': 0.3}, {'source_loss': 'l2sp', 'alpha': 0.3},"
        " {'warm_start': True}]:\n"
        "    c = TransferClassifier(src, random_state=0, **kw).fit(X, y)\n"
        "    c.fit(X, y).predict(X)\n"
        "print('clean')\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "clean" in done.stdout

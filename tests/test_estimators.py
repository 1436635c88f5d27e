"""Behaviour of TransferClassifier and TransferRegressor that users rely on."""

import pickle

import numpy as np
import pytest
from _tasks import same_on_every_backend, shared_representation_task, train_source
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from sktransfer import TransferClassifier, TransferRegressor

keras = pytest.importorskip("keras")

FAST = dict(epochs=15, learning_rate=0.01, random_state=0)


def mlp(n_in=4, n_out=3, name="src", seed=0, dropout=False, batchnorm=False):
    init = keras.initializers.GlorotUniform
    layers = [keras.Input((n_in,))]
    layers.append(
        keras.layers.Dense(16, activation="relu", kernel_initializer=init(seed), name="d1")
    )
    if batchnorm:
        layers.append(keras.layers.BatchNormalization(name="bn"))
    if dropout:
        layers.append(keras.layers.Dropout(0.5, name="drop"))
    layers.append(
        keras.layers.Dense(8, activation="relu", kernel_initializer=init(seed + 1), name="d2")
    )
    layers.append(
        keras.layers.Dense(
            n_out, activation="softmax", kernel_initializer=init(seed + 2), name="out"
        )
    )
    return same_on_every_backend(keras.Sequential(layers, name=name), seed)


def snapshot(model):
    return [w.copy() for w in model.get_weights()]


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def source():
    return mlp()


# -- freeze ------------------------------------------------------------------


def test_freeze_keeps_frozen_weights_and_trains_the_rest(source, iris):
    X, y = iris
    clf = TransferClassifier(source, freeze=1, **FAST).fit(X, y)
    body = clf.model_.get_layer("sktransfer_frozen")
    assert clf.frozen_layers_ == ["d1"]
    assert same_weights(body.get_layer("d1").get_weights(), source.get_layer("d1").get_weights())
    rest = clf.model_.get_layer("sktransfer_body")
    assert not np.allclose(
        rest.get_layer("d2").get_weights()[0], source.get_layer("d2").get_weights()[0]
    )


@pytest.mark.parametrize(
    "freeze, frozen",
    [
        (0, []),
        (1, ["d1"]),
        (2, ["d1", "drop", "d2"]),
        (-1, ["d1"]),
        (-2, []),
        ("all", ["d1", "drop", "d2"]),
    ],
)
def test_freeze_counts_weighted_layers(freeze, frozen, iris):
    X, y = iris
    clf = TransferClassifier(mlp(dropout=True), freeze=freeze, epochs=1, random_state=0)
    assert clf.fit(X, y).frozen_layers_ == frozen


@pytest.mark.parametrize("freeze", [3, -3, "some", 1.5, True])
def test_freeze_out_of_range_names_parameter_and_range(freeze, source, iris):
    X, y = iris
    with pytest.raises(ValueError, match=r"freeze") as info:
        TransferClassifier(source, freeze=freeze, epochs=1).fit(X, y)
    if isinstance(freeze, int) and not isinstance(freeze, bool):
        assert "[-2, 2]" in str(info.value) and repr(freeze) in str(info.value)


def test_frozen_batchnorm_runs_in_inference_mode(iris):
    X, y = iris
    src = mlp(batchnorm=True)
    stats = snapshot(src.get_layer("bn"))
    clf = TransferClassifier(src, freeze="all", **FAST).fit(X * 10, y)
    assert same_weights(
        clf.model_.get_layer("sktransfer_frozen").get_layer("bn").get_weights(), stats
    )


# -- alpha and source_loss -----------------------------------------------------


def _distance_from_source(clf, source):
    layer = clf.model_.get_layer("sktransfer_body").get_layer("d1")
    return sum(
        float(np.sum((a - b) ** 2))
        for a, b in zip(layer.get_weights(), source.get_layer("d1").get_weights(), strict=True)
    )


@pytest.mark.parametrize("source_loss", ["l2sp", "distill"])
def test_alpha_keeps_the_network_closer_to_the_source(source_loss, source, iris):
    X, y = iris
    # From a random head, whose gradients pull the body about: the source
    # term has something to hold back.
    params = dict(
        source_loss=source_loss, epochs=30, learning_rate=0.02, head_init="random", random_state=0
    )
    free = TransferClassifier(source, alpha=0.0, **params).fit(X, y)
    held = TransferClassifier(source, alpha=0.9, **params).fit(X, y)
    # L2-SP constrains the weights directly; distillation only through outputs.
    factor = 0.5 if source_loss == "l2sp" else 0.8
    assert _distance_from_source(held, source) < factor * _distance_from_source(free, source)
    assert held.history_["source_loss"][-1] > 0
    assert free.history_["source_loss"] == [0.0] * free.n_iter_ or source_loss == "distill"


def test_distillation_pulls_source_head_towards_teacher(source, iris):
    X, y = iris
    teacher = source.predict_on_batch(X.astype("float32"))
    gaps = []
    for alpha in (0.0, 0.9):
        clf = TransferClassifier(
            source, alpha=alpha, epochs=30, learning_rate=0.02, random_state=0
        )
        clf.fit(X, y)
        # Without distillation the source head is not trained: it is the source's own.
        head = clf._network.source_head if alpha else source.get_layer("out")
        student = head(clf.model_.get_layer("sktransfer_body")(X.astype("float32")))
        gaps.append(float(np.mean(np.abs(np.asarray(student) - teacher))))
    assert gaps[1] < 0.5 * gaps[0]


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 2, "0.5", None])
def test_alpha_outside_unit_interval_is_refused(alpha, source, iris):
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\)"):
        TransferClassifier(source, alpha=alpha).fit(*iris)


def test_unknown_source_loss_is_refused(source, iris):
    with pytest.raises(ValueError, match="source_loss must be one of"):
        TransferClassifier(source, source_loss="mse").fit(*iris)


# -- pretrained, cut, head, input_adapter -------------------------------------


def test_pretrained_false_reinitialises_every_weight(source, iris):
    X, y = iris
    scratch = TransferClassifier(source, freeze="all", pretrained=False, epochs=1, random_state=0)
    frozen = scratch.fit(X, y).model_.get_layer("sktransfer_frozen")
    for name in ("d1", "d2"):
        assert not np.allclose(
            frozen.get_layer(name).get_weights()[0], source.get_layer(name).get_weights()[0]
        )
    kept = TransferClassifier(source, freeze="all", epochs=1, random_state=0).fit(X, y)
    for name in ("d1", "d2"):
        assert same_weights(
            kept.model_.get_layer("sktransfer_frozen").get_layer(name).get_weights(),
            source.get_layer(name).get_weights(),
        )


def test_cut_and_head_change_the_architecture(source, iris):
    X, y = iris
    default = TransferClassifier(source, epochs=1, random_state=0).fit(X, y)
    assert default.model_.get_layer("sktransfer_head").input_shape[-1] == 8
    shallow = TransferClassifier(source, cut="d1", head=(5, 4), epochs=1, random_state=0).fit(X, y)
    head = shallow.model_.get_layer("sktransfer_head")
    assert head.input_shape[-1] == 16
    assert [lyr.units for lyr in head.layers if hasattr(lyr, "units")] == [5, 4, 3]
    assert (
        TransferClassifier(source, cut=0, epochs=1)
        .fit(X, y)
        .model_.get_layer("sktransfer_head")
        .input_shape[-1]
        == 16
    )
    with pytest.raises(ValueError, match="cut='nope' names no layer"):
        TransferClassifier(source, cut="nope").fit(X, y)
    with pytest.raises(ValueError, match=r"cut=7 is not valid.*\[-3, 2\]"):
        TransferClassifier(source, cut=7).fit(X, y)
    with pytest.raises(ValueError, match="head="):
        TransferClassifier(source, head=(4, 0)).fit(X, y)


def _image_source():
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=init(0), name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, activation="softmax", kernel_initializer=init(1), name="out"),
        ]
    )


def test_input_adapter_reshapes_or_projects():
    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16, y[:200]
    src = _image_source()
    reshaped = TransferClassifier(src, epochs=1, random_state=0).fit(X, y)
    assert reshaped.input_adapter_ == "reshape"
    # A wrong feature count is refused by "auto", with the way out named.
    with pytest.raises(ValueError, match=r"input_adapter='auto'.*use input_adapter='dense'"):
        TransferClassifier(src, epochs=1, random_state=0).fit(X[:, :30], y)
    projected = TransferClassifier(src, input_adapter="dense", epochs=1, random_state=0)
    projected.fit(X[:, :30], y)
    assert projected.input_adapter_ == "dense"
    assert projected.predict(X[:5, :30]).shape == (5,)
    with pytest.raises(ValueError, match=r"\(n_samples, 30\).*\(None, 8, 8, 1\)"):
        TransferClassifier(src, input_adapter=None).fit(X[:, :30], y)
    with pytest.raises(ValueError, match="input_adapter='reshape'.*30 features"):
        TransferClassifier(src, input_adapter="reshape").fit(X[:, :30], y)
    with pytest.raises(ValueError, match="input_adapter must be one of"):
        TransferClassifier(src, input_adapter="pad").fit(X, y)


# -- the point of it all --------------------------------------------------------


@pytest.fixture(scope="module")
def shared_task():
    (xs, ys), target, test = shared_representation_task()
    return train_source(xs, ys, 10), target, test


def test_transfer_beats_training_from_scratch(shared_task):
    source, (xt, yt), (xe, ye) = shared_task
    params = dict(freeze="all", epochs=100, learning_rate=3e-3, batch_size=16, random_state=0)
    transfer = TransferClassifier(source, **params).fit(xt, yt).score(xe, ye)
    scratch = TransferClassifier(source, pretrained=False, **params).fit(xt, yt).score(xe, ye)
    baseline = LogisticRegression().fit(xt, yt).score(xe, ye)
    assert transfer > scratch + 0.1
    assert transfer > baseline


# -- the source is never changed -------------------------------------------------


def test_source_unchanged_by_fit_search_and_cv(iris):
    X, y = iris
    src = mlp(dropout=True)
    weights, flags = snapshot(src), [lyr.trainable for lyr in src.layers]
    attributes = set(vars(src))
    clf = TransferClassifier(src, freeze=1, alpha=0.5, **FAST)
    clf.fit(X, y)
    GridSearchCV(clf, {"alpha": [0.0, 0.5], "freeze": [0, "all"]}, cv=2).fit(X, y)
    cross_val_score(TransferClassifier(src, source_loss="l2sp", alpha=0.5, **FAST), X, y, cv=2)
    assert same_weights(snapshot(src), weights)
    assert [lyr.trainable for lyr in src.layers] == flags
    assert set(vars(src)) == attributes


def test_inputs_are_not_modified(source, iris):
    X, y = iris[0].copy(), np.array(["a", "b", "c"])[iris[1]]
    X0, y0 = X.copy(), y.copy()
    w = np.ones(len(X))
    clf = TransferClassifier(source, **FAST).fit(X, y, sample_weight=w)
    clf.predict(X)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(w, np.ones(len(X)))


# -- sources given in other forms -------------------------------------------------


def test_source_as_path_callable_and_wrapper(tmp_path, source, iris):
    X, y = iris
    path = tmp_path / "model.keras"
    source.save(path)
    expected = TransferClassifier(source, **FAST).fit(X, y).predict_proba(X)
    for given in (str(path), path, lambda: keras.models.load_model(path)):
        got = TransferClassifier(given, **FAST).fit(X, y).predict_proba(X)
        np.testing.assert_array_equal(got, expected)


def test_missing_file_and_non_model_sources_are_refused(tmp_path, iris):
    X, y = iris
    missing = tmp_path / "nope.keras"
    with pytest.raises(FileNotFoundError, match="nope.keras"):
        TransferClassifier(str(missing)).fit(X, y)
    with pytest.raises(TypeError, match="source must be a keras.Model"):
        TransferClassifier(42).fit(X, y)
    with pytest.raises(TypeError, match="callable must return a keras.Model"):
        TransferClassifier(lambda: "model").fit(X, y)
    with pytest.raises(ValueError, match="source is required"):
        TransferClassifier().fit(X, y)


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda X, y: (np.where(X > 7, np.nan, X), y), ValueError, "NaN"),
        (lambda X, y: (np.where(X > 7, np.inf, X), y), ValueError, "infinity"),
        (lambda X, y: (X[:0], y[:0]), ValueError, "0 sample"),
        (lambda X, y: (X, np.zeros_like(y)), ValueError, "at least 2 classes"),
        (lambda X, y: (X, y[:-1]), ValueError, "inconsistent numbers of samples"),
        (lambda X, y: (X, y + 0.5), ValueError, "Unknown label type"),
    ],
)
def test_bad_training_data_is_refused(mutate, error, match, source, iris):
    X, y = mutate(*iris)
    with pytest.raises(error, match=match):
        TransferClassifier(source, epochs=1).fit(X, y)


def test_sparse_input_and_wrong_width_are_refused(source, iris):
    import scipy.sparse as sp

    X, y = iris
    with pytest.raises(TypeError, match="dense data is required"):
        TransferClassifier(source, epochs=1).fit(sp.csr_matrix(X), y)
    clf = TransferClassifier(source, epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features"):
        clf.predict(X[:, :3])


# -- labels, outputs, pandas ----------------------------------------------------------


@pytest.mark.parametrize(
    "labels", [np.array(["setosa", "versicolor", "virginica"]), np.array([3, 7, 11]), None]
)
def test_any_label_type(labels, source, iris):
    X, y = iris
    y = y > 0 if labels is None else labels[y]
    clf = TransferClassifier(source, **FAST).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(np.unique(y)))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= set(np.unique(y))
    assert clf.score(X, y) > 0.6


def test_regressor_outputs_follow_y_and_beat_the_mean():
    X, y = load_diabetes(return_X_y=True)
    src = mlp(n_in=10, n_out=1)
    reg = TransferRegressor(src, epochs=40, learning_rate=0.01, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (len(X),) and reg.n_outputs_ == 1
    assert reg.score(X, y) > 0.3
    Y = np.column_stack([y, -2 * y])
    multi = TransferRegressor(src, epochs=5, random_state=0).fit(X, Y)
    assert multi.predict(X).shape == (len(X), 2) and multi.n_outputs_ == 2


def test_pandas_input_records_feature_names(source, iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = TransferClassifier(source, epochs=1).fit(frame, pd.Series(y))
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])


# -- training controls ------------------------------------------------------------------


def test_early_stopping_stops_and_logs_validation(source, iris):
    X, y = iris
    clf = TransferClassifier(
        source,
        early_stopping=True,
        n_iter_no_change=2,
        epochs=200,
        learning_rate=0.1,
        random_state=0,
    ).fit(X, y)
    assert clf.n_iter_ < 200
    assert {"loss", "target_loss", "source_loss", "val_target_loss"} <= set(clf.history_)
    assert len(clf.history_["val_loss"]) == clf.n_iter_


def test_warm_start_continues_training(source, iris):
    X, y = iris
    clf = TransferClassifier(source, warm_start=True, **FAST).fit(X, y)
    first = clf.history_["target_loss"]
    clf.fit(X, y)
    assert clf.history_["target_loss"][0] < first[0]
    restored = pickle.loads(pickle.dumps(clf))
    before = restored.predict_proba(X)
    restored.fit(X, y)
    assert not np.array_equal(restored.predict_proba(X), before)
    assert restored.history_["target_loss"][0] < first[0]


def test_callbacks_are_copied_per_fit(source, iris):
    X, y = iris

    class Count(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs += 1

    counter = Count()
    clf = TransferClassifier(source, callbacks=[counter], epochs=3).fit(X, y)
    assert counter.epochs == 0 and clf.n_iter_ == 3


def test_class_weight_shifts_predictions(source, iris):
    X, y = iris
    keep = np.r_[0:50, 50:60, 100:110]
    X, y = X[keep], y[keep]
    plain = TransferClassifier(source, **FAST).fit(X, y).predict_proba(X)[:, 0].mean()
    balanced = TransferClassifier(source, class_weight="balanced", **FAST).fit(X, y)
    assert balanced.predict_proba(X)[:, 0].mean() < plain


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("epochs", 0, "epochs must be an integer"),
        ("batch_size", 2.5, "batch_size must be an integer"),
        ("learning_rate", -1, "learning_rate must be a number"),
        ("validation_fraction", 1.0, "validation_fraction must be a number in"),
        ("optimizer", "sgdd", "optimizer='sgdd' is not a Keras optimizer"),
        ("callbacks", "early", "callbacks must be None or a list"),
    ],
)
def test_bad_parameters_are_named(param, value, match, source, iris):
    with pytest.raises(ValueError, match=match):
        TransferClassifier(source, **{param: value}).fit(*iris)


# -- reproducibility, cloning, persistence -------------------------------------------------


def test_same_seed_same_predictions_other_seed_differs(source, iris):
    X, y = iris
    params = dict(freeze=1, alpha=0.3, head=8, epochs=5)
    a = TransferClassifier(source, random_state=1, **params).fit(X, y).predict_proba(X)
    b = TransferClassifier(source, random_state=1, **params).fit(X, y).predict_proba(X)
    c = TransferClassifier(source, random_state=2, **params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_clone_shares_the_source_and_keeps_params(source):
    clf = TransferClassifier(source, freeze=2, alpha=0.3, head=(4,), callbacks=[])
    twin = clone(clf)
    assert twin.source is source
    assert twin.get_params() == {**clf.get_params(), "callbacks": []}
    twin.set_params(alpha=0.5)
    assert clf.alpha == 0.3


def test_pickle_round_trip_predicts_identically(source, iris):
    X, y = iris
    clf = TransferClassifier(source, alpha=0.3, **FAST)
    unfitted = pickle.loads(pickle.dumps(clf))
    assert unfitted.get_params()["alpha"] == 0.3
    clf.fit(X, y)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(clf)).predict_proba(X), clf.predict_proba(X)
    )


def test_model_saves_as_keras_file_for_serving(tmp_path, iris):
    X, y = iris
    clf = TransferClassifier(mlp(dropout=True), freeze=1, input_adapter="dense", **FAST).fit(X, y)
    path = tmp_path / "served.keras"
    clf.model_.save(path)
    served = keras.models.load_model(path)
    np.testing.assert_allclose(
        served.predict_on_batch(X.astype("float32")),
        clf.model_.predict_on_batch(X.astype("float32")),
    )


def test_pipeline_grid_search_and_cross_validation(source, iris):
    X, y = iris
    X = X.copy()
    X[::7, 1] = np.nan
    pipe = Pipeline([("impute", SimpleImputer()), ("clf", TransferClassifier(source, **FAST))])
    search = GridSearchCV(pipe, {"clf__alpha": [0, 0.3], "clf__freeze": [0, 1]}, cv=2).fit(X, y)
    assert search.best_score_ > 0.6
    assert set(search.cv_results_["param_clf__freeze"]) == {0, 1}
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_distillation_term_is_the_exact_kl_even_where_probabilities_underflow(kind):
    from sktransfer._source_terms import distill_loss

    logits = np.array([[120.0, 0.0, -40.0], [0.5, -0.3, 2.0]], dtype="float32")
    teacher = np.array([[0.2, 0.5, 0.3], [0.1, 0.6, 0.3]], dtype="float32")
    z = logits.astype("float64")
    if kind == "softmax":
        student = keras.activations.softmax(keras.ops.convert_to_tensor(logits))
        log_s = z - z.max(axis=1, keepdims=True)
        log_s -= np.log(np.exp(log_s).sum(axis=1, keepdims=True))
        expected = np.sum(teacher * (np.log(teacher) - log_s), axis=1).mean()
    else:
        student = keras.activations.sigmoid(keras.ops.convert_to_tensor(logits))
        log_s, log_not_s = -np.logaddexp(0, -z), -np.logaddexp(0, z)
        t = teacher.astype("float64")
        kl = t * (np.log(t) - log_s) + (1 - t) * (np.log(1 - t) - log_not_s)
        expected = kl.mean(axis=1).mean()
    value = float(keras.ops.convert_to_numpy(distill_loss(teacher, student, kind, 1.0)))
    if keras.backend.backend() == "tensorflow":
        # The first row's probabilities underflow to 0 in float32; the term
        # comes from the logits, so it is the exact KL divergence.
        assert value == pytest.approx(expected, rel=1e-5)
    else:  # probabilities clipped at 1e-7: bounded, never inf or nan
        assert np.isfinite(value)

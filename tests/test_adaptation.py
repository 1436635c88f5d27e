"""Joint training with source data, staged fine-tuning and wrapped sources."""

import numpy as np
import pytest
import sklearn
from _tasks import shared_representation_task, train_source
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import SourceData, TransferClassifier, TransferRegressor

keras = pytest.importorskip("keras")


def mlp(n_in=4, n_out=3, seed=0):
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer=init(seed), name="d1"),
            keras.layers.Dense(8, activation="relu", kernel_initializer=init(seed + 1), name="d2"),
            keras.layers.Dense(
                n_out, activation="softmax", kernel_initializer=init(seed + 2), name="out"
            ),
        ]
    )


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def shared_task():
    (xs, ys), target, _ = shared_representation_task(n_source=3000, n_test=10)
    return train_source(xs, ys, 10), (xs, ys), target


# -- joint training -----------------------------------------------------------------


def _source_accuracy(clf, source, x, y):
    """Accuracy on the source task of the fitted body and its source head."""
    features = clf.model_.get_layer("sktransfer_body")(x)
    head = clf._network.source_head if clf.alpha else source.get_layer("out")
    return float(np.mean(np.argmax(np.asarray(head(features)), axis=1) == y))


def test_joint_training_keeps_the_source_task(shared_task):
    source, (xs, ys), (xt, yt) = shared_task
    held_out = slice(2000, 3000)
    data = SourceData(xs[:2000], ys[:2000])
    params = dict(source_loss="joint", epochs=60, learning_rate=0.01, random_state=0)
    before = float(np.mean(np.argmax(source.predict_on_batch(xs[held_out]), 1) == ys[held_out]))
    plain = TransferClassifier(source, alpha=0.0, **params).fit(xt, yt, source_data=data)
    joint = TransferClassifier(source, alpha=0.5, **params).fit(xt, yt, source_data=data)
    forgotten = _source_accuracy(plain, source, xs[held_out], ys[held_out])
    kept = _source_accuracy(joint, source, xs[held_out], ys[held_out])
    assert kept > forgotten + 0.1
    assert forgotten < before - 0.1  # plain fine-tuning did forget
    assert joint.history_["source_loss"][-1] > 0


def test_joint_source_data_errors(iris):
    X, y = iris
    clf = TransferClassifier(mlp(), source_loss="joint", alpha=0.5, epochs=1)
    with pytest.raises(ValueError, match="source_loss='joint' needs the source task's data"):
        clf.fit(X, y)
    with pytest.raises(TypeError, match="source_data must be a sktransfer.SourceData"):
        clf.fit(X, y, source_data=(X, y))
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        clf.fit(X, y, source_data=SourceData(X, y + 5))
    with pytest.raises(ValueError, match="4 columns but the source head has 3 outputs"):
        clf.fit(X, y, source_data=SourceData(X, np.eye(4)[y % 4]))
    with pytest.raises(ValueError, match="does not fit the source input"):
        clf.fit(X, y, source_data=SourceData(X[:, :3], y))
    with pytest.raises(ValueError, match="150 inputs and 149 targets"):
        clf.fit(X, y, source_data=SourceData(X, y[:-1]))


class Recording(TransferClassifier):
    """Records the length of the source data each fit receives."""

    seen = []

    def fit(self, X, y, sample_weight=None, source_data=None):
        Recording.seen.append((len(X), len(source_data.X)))
        return super().fit(X, y, sample_weight=sample_weight, source_data=source_data)


@pytest.mark.parametrize("routing", [False, True])
def test_source_data_arrives_whole_through_search_and_cv(routing, iris):
    X, y = iris
    # Source data exactly as long as the target data: the case where
    # scikit-learn slices fit parameters along with the folds.
    data = SourceData(X[::-1].copy(), y[::-1].copy())
    clf = Recording(mlp(), source_loss="joint", alpha=0.3, epochs=2, random_state=0)
    Recording.seen.clear()
    with sklearn.config_context(enable_metadata_routing=routing):
        if routing:
            clf.set_fit_request(source_data=True, sample_weight=False)
            pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)])
            fit_params = {"source_data": data}
        else:
            pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)])
            fit_params = {"clf__source_data": data}
        pipe.fit(X, y, **fit_params)
        GridSearchCV(pipe, {"clf__alpha": [0.1, 0.5]}, cv=3).fit(X, y, **fit_params)
        cross_val_score(pipe, X, y, cv=3, params=fit_params)
    assert len(Recording.seen) == 1 + (2 * 3 + 1) + 3
    assert all(n_source == len(X) for _, n_source in Recording.seen)
    assert {n_target for n_target, _ in Recording.seen} == {len(X), 100}


def test_joint_regressor_with_linear_source():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    source = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)]
    )
    data = SourceData(rng.normal(size=(50, 5)), rng.normal(size=(50, 2)))
    reg = TransferRegressor(source, source_loss="joint", alpha=0.5, epochs=3, random_state=0)
    reg.fit(X, X[:, 0] * 2, source_data=data)
    assert reg.predict(X).shape == (80,)
    assert np.isfinite(reg.history_["source_loss"]).all()


# -- staged fine-tuning ------------------------------------------------------------------

BODY_SNAPSHOTS = []


class BodySnapshot(keras.callbacks.Callback):
    """Records the first body kernel after each epoch (shared across copies)."""

    def on_epoch_end(self, epoch, logs=None):
        body = self.model.get_layer("sktransfer_body")  # callbacks see the target network
        BODY_SNAPSHOTS.append(body.get_layer("d1").get_weights()[0].copy())


def test_head_warmup_leaves_the_body_untouched_during_warmup(iris):
    X, y = iris
    source = mlp()
    original = source.get_layer("d1").get_weights()[0]
    BODY_SNAPSHOTS.clear()
    clf = TransferClassifier(
        source, head_warmup=3, epochs=5, learning_rate=0.01, callbacks=[BodySnapshot()]
    )
    clf.set_params(random_state=0).fit(X, y)
    assert len(BODY_SNAPSHOTS) == 5 and clf.n_iter_ == 5
    for snapshot in BODY_SNAPSHOTS[:3]:
        np.testing.assert_array_equal(snapshot, original)
    assert not np.allclose(BODY_SNAPSHOTS[4], original)
    head = clf.model_.get_layer("sktransfer_head")
    assert all(layer.trainable for layer in clf.model_.get_layer("sktransfer_body").layers)
    assert head.trainable


def _one_step_moves(source, X, y, scale):
    clf = TransferClassifier(
        source, source_lr_scale=scale, epochs=1, batch_size=len(X), random_state=0
    ).fit(X, y)
    body = clf.model_.get_layer("sktransfer_body").get_layer("d1").get_weights()[0]
    head = clf.model_.get_layer("sktransfer_head").get_weights()[0]
    return np.abs(body - source.get_layer("d1").get_weights()[0]).mean(), head


@pytest.mark.parametrize("scale", [0.1, 0.5])
def test_source_lr_scale_scales_the_update_under_adam(scale, iris):
    X, y = iris
    source = mlp()
    full, head_full = _one_step_moves(source, X, y, 1.0)
    scaled, head_scaled = _one_step_moves(source, X, y, scale)
    assert scaled / full == pytest.approx(scale, rel=0.05)
    np.testing.assert_allclose(head_scaled, head_full)


def test_new_parameters_validate_and_clone(iris):
    from sklearn.base import clone

    X, y = iris
    clf = TransferClassifier(mlp(), head_warmup=2, source_lr_scale=0.1)
    assert clone(clf).get_params()["source_lr_scale"] == 0.1
    with pytest.raises(ValueError, match="head_warmup must be an integer"):
        TransferClassifier(mlp(), head_warmup=-1).fit(X, y)
    with pytest.raises(ValueError, match="source_lr_scale must be a number"):
        TransferClassifier(mlp(), source_lr_scale=-0.5).fit(X, y)


# -- sources from the Keras-in-scikit-learn world ---------------------------------------


def test_fitted_keras_wrapper_is_a_source(iris):
    from keras.wrappers import SKLearnClassifier

    X, y = iris

    def build(X, y):
        model = mlp()
        model.compile("adam", "categorical_crossentropy")
        return model

    wrapper = SKLearnClassifier(build, fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, y)
    weights = [w.copy() for w in wrapper.model_.get_weights()]
    clf = TransferClassifier(wrapper, freeze=1, epochs=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(
        clf.model_.get_layer("sktransfer_frozen").get_layer("d1").get_weights()[0],
        wrapper.model_.get_layer("d1").get_weights()[0],
    )
    assert all(
        np.array_equal(a, b) for a, b in zip(weights, wrapper.model_.get_weights(), strict=True)
    )
    with pytest.raises(TypeError, match="source must be a keras.Model"):
        TransferClassifier(SKLearnClassifier(build)).fit(X, y)


def _saved_and_loaded(clf, path):
    import warnings

    import sktransfer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.save(path)
    assert not [w for w in caught if "save:" in str(w.message)]  # nothing saved as None
    return sktransfer.load(path)


def test_a_fitted_keras_wrapper_source_is_saved_as_its_model(iris, tmp_path):
    from keras.wrappers import SKLearnClassifier

    X, y = iris

    def build(X, y):
        model = mlp()
        model.compile("adam", "categorical_crossentropy")
        return model

    wrapper = SKLearnClassifier(build, fit_kwargs={"epochs": 2, "verbose": 0}).fit(X, y)
    clf = TransferClassifier(wrapper, freeze=1, epochs=2, random_state=0).fit(X, y)
    loaded = _saved_and_loaded(clf, tmp_path / "clf.skt")
    assert isinstance(loaded.source, keras.Model)
    for a, b in zip(loaded.source.get_weights(), wrapper.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    refit = loaded.fit(X, y)  # the loaded source trains a new network
    np.testing.assert_array_equal(refit.predict_proba(X), clf.predict_proba(X))


def test_fitted_scikeras_estimator_is_a_source(iris, tmp_path):
    scikeras = pytest.importorskip("scikeras.wrappers")
    X, y = iris
    try:
        wrapper = scikeras.KerasClassifier(mlp(), loss="sparse_categorical_crossentropy")
        wrapper.set_params(epochs=1, verbose=0).fit(X, y)
    except Exception as exc:  # scikeras 0.13's tag calls raise on scikit-learn 1.6
        pytest.skip(f"scikeras does not fit on this scikit-learn: {exc}")
    clf = TransferClassifier(wrapper, epochs=1, random_state=0).fit(X, y)
    assert clf.predict(X).shape == (len(X),)
    loaded = _saved_and_loaded(clf, tmp_path / "clf.skt")
    assert isinstance(loaded.source, keras.Model)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_grid_search_over_source_models(tmp_path, iris):
    X, y = iris
    path = tmp_path / "b.keras"
    mlp(seed=5).save(path)
    first, second = mlp(seed=1), mlp(seed=3)
    search = GridSearchCV(
        TransferClassifier(first, epochs=5, learning_rate=0.01, random_state=0),
        {"source": [first, second, str(path)]},
        cv=2,
    ).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 3
    assert any(search.best_params_["source"] is s for s in (first, second, str(path)))
    assert search.best_estimator_.predict(X).shape == (len(X),)

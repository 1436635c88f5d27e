"""A frozen backbone shared by the fits of a search with ``memory`` (sktransfer._shared):
copied once, results as with a copy per fit, and ``model_`` still each estimator's own."""

import pickle

import numpy as np
import pytest

from sktransfer import TransferClassifier, TransferRegressor, _network, clear_caches, load
from sktransfer._fingerprint import model_key

keras = pytest.importorskip("keras")

FROZEN = dict(freeze="all", random_state=3)


def backbone(seed=0):
    """A small image backbone with the layers that matter: BatchNormalization, Dropout."""
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, kernel_initializer=init(seed), name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name="backbone")


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 8, 8, 3)).astype(np.float32)
    return X, (X[:, :4, :4, 0].mean(axis=(1, 2)) > 0).astype(int) + (X[..., 1].mean((1, 2)) > 0)


@pytest.fixture(autouse=True)
def fresh_caches():
    clear_caches()
    yield
    clear_caches()


@pytest.fixture
def copies(monkeypatch):
    """Counts the copies of a source that fits make."""
    made = []
    original = _network.clone_seeded

    def counting(model, rng):
        made.append(model.name)
        return original(model, rng)

    monkeypatch.setattr(_network, "clone_seeded", counting)
    return made


def test_the_candidates_of_a_search_copy_the_backbone_once(images, tmp_path, copies):
    X, y = images
    source = backbone()
    fits = [
        TransferClassifier(source, learning_rate=rate, memory=str(tmp_path), **FROZEN).fit(X, y)
        for rate in (1e-3, 1e-2, 1e-1)
    ]
    assert len(copies) == 1
    assert all(fit._network.shared is not None for fit in fits)
    assert all("model_" not in vars(fit) for fit in fits)  # not built until read
    TransferClassifier(source, **FROZEN).fit(X, y)  # no memory: a copy of its own
    assert len(copies) == 2


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"head_init": "random", "epochs": 4},
        {"head": (5,), "epochs": 4},
        {"alpha": 0.3, "epochs": 2},
    ],
    ids=["probe", "random-head", "hidden-head", "distill"],
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_shared_backbone_gives_the_fit_of_a_copied_one(images, tmp_path, params):
    X, y = images
    source = backbone()
    own = TransferClassifier(source, **FROZEN, **params).fit(X, y)
    first = TransferClassifier(source, memory=str(tmp_path), **FROZEN, **params).fit(X, y)
    second = TransferClassifier(source, memory=str(tmp_path), **FROZEN, **params).fit(X, y)
    assert second._network.shared is first._network.shared is not None
    expected = own.predict_proba(X)
    np.testing.assert_array_equal(first.predict_proba(X), expected)
    np.testing.assert_array_equal(second.predict_proba(X), expected)
    np.testing.assert_allclose(second.model_.predict(X, verbose=0), expected, atol=1e-6)
    assert second.frozen_layers_ == own.frozen_layers_
    assert [layer.name for layer in second.model_.layers] == [
        layer.name for layer in own.model_.layers
    ]


def test_a_regressor_shares_too(images, tmp_path):
    X, y = images
    source = backbone()
    own = TransferRegressor(source, **FROZEN).fit(X, y.astype(float))
    shared = TransferRegressor(source, memory=str(tmp_path), **FROZEN).fit(X, y.astype(float))
    assert shared._network.shared is not None
    np.testing.assert_array_equal(shared.predict(X), own.predict(X))


def test_model_of_a_sharing_fit_is_its_own(images, tmp_path):
    X, y = images
    source = backbone()
    before = [w.copy() for w in source.get_weights()]
    one = TransferClassifier(source, memory=str(tmp_path), **FROZEN).fit(X, y)
    other = TransferClassifier(source, memory=str(tmp_path), **FROZEN).fit(X, y)
    expected = other.predict_proba(X)
    state = dict(vars(other))
    other.predict(X)
    assert vars(other).keys() == state.keys()  # predicting builds nothing
    for variable in one.model_.variables:  # a user changes one estimator's network
        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
    np.testing.assert_array_equal(other.predict_proba(X), expected)
    third = TransferClassifier(source, memory=str(tmp_path), **FROZEN).fit(X, y)
    np.testing.assert_array_equal(third.predict_proba(X), expected)
    for was, now in zip(before, source.get_weights(), strict=True):
        np.testing.assert_array_equal(was, now)


def test_a_sharing_fit_pickles_saves_and_warm_starts(images, tmp_path):
    X, y = images
    source = backbone()
    params = dict(memory=str(tmp_path), head=(4,), epochs=2, **FROZEN)
    fitted = TransferClassifier(source, **params).fit(X, y)
    expected = fitted.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict_proba(X), expected)
    fitted.save(tmp_path / "fitted.sktransfer")
    loaded = load(tmp_path / "fitted.sktransfer")
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
    warm = TransferClassifier(source, warm_start=True, **params).fit(X, y)
    assert warm._network.shared is not None
    warm.fit(X, y)  # trains its own copy, never the shared one
    assert warm._network.shared is None
    np.testing.assert_array_equal(fitted.predict_proba(X), expected)


def test_a_changed_source_gets_a_new_backbone(images, tmp_path):
    X, y = images
    source = backbone()
    memory = dict(memory=str(tmp_path), head_init="random", epochs=2, **FROZEN)
    TransferClassifier(source, **memory).fit(X, y)
    conv = source.get_layer("conv")
    conv.set_weights([w * 2 for w in conv.get_weights()])
    shared = TransferClassifier(source, **memory).fit(X, y)
    own = TransferClassifier(source, head_init="random", epochs=2, **FROZEN).fit(X, y)
    np.testing.assert_array_equal(shared.predict_proba(X), own.predict_proba(X))
    source.get_layer("drop").rate = 0.5  # a layer's configuration, weights unchanged
    key = model_key(source)
    source.get_layer("drop").rate = 0.3
    assert model_key(source) != key


@pytest.mark.parametrize(
    "params",
    [
        {"freeze": 1},
        {"freeze": "all", "pretrained": False},
        {"freeze": "all", "callbacks": [keras.callbacks.TerminateOnNaN()]},
    ],
    ids=["trainable-layers", "not-pretrained", "callbacks"],
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_fit_that_needs_its_own_network_builds_it(images, tmp_path, params):
    X, y = images
    fit = dict(memory=str(tmp_path), epochs=1, random_state=0)
    fitted = TransferClassifier(backbone(), **fit, **params).fit(X, y)
    assert fitted._network.shared is None and "model_" in vars(fitted)


def test_fits_of_a_nested_source_inline_it_once(images, tmp_path, monkeypatch):
    X, y = images
    inner = keras.Model(*_body(), name="inner")
    source = keras.Sequential([keras.Input((8, 8, 3)), inner, keras.layers.Dense(3)], name="outer")
    inlined = []
    original = _network.inline_nested

    def counting(model):
        inlined.append(model.name)
        return original(model)

    monkeypatch.setattr(_network, "inline_nested", counting)
    first = TransferClassifier(source, freeze=1, epochs=1, random_state=0).fit(X, y)
    second = TransferClassifier(source, freeze=1, epochs=1, random_state=0).fit(X, y)
    assert inlined == ["outer"]
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert first.frozen_layers_ == ["conv"]


def _body():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    return inputs, keras.layers.GlobalAveragePooling2D(name="gap")(x)

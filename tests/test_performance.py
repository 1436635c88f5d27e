"""Work that must disappear: it does, and the results stay what a fresh fit gives.

Speed itself is measured in benchmarks/, not here; these tests check the
mechanisms and their correctness.
"""

import gc
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris

from sktransfer import TransferClassifier, _trainer, clear_caches

keras = pytest.importorskip("keras")
TRACED_LOOP = pytest.mark.tensorflow_only("the loop over epochs, train_epochs, is a tf.function")


def mlp(dropout=0.0, seed=0):
    init = keras.initializers.GlorotUniform
    layers = [
        keras.Input((4,)),
        keras.layers.Dense(16, activation="relu", kernel_initializer=init(seed), name="d1"),
        keras.layers.Dropout(dropout, seed=seed, name="drop"),
        keras.layers.Dense(8, activation="relu", kernel_initializer=init(seed + 1), name="d2"),
        keras.layers.Dense(3, activation="softmax", kernel_initializer=init(seed + 2), name="out"),
    ]
    return keras.Sequential(layers)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def test_import_loads_neither_tensorflow_nor_matplotlib():
    code = (
        "import sys; from sktransfer import TransferClassifier; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "params", [{}, {"freeze": 1, "alpha": 0.5}, {"source_loss": "l2sp", "alpha": 0.3}]
)
def test_repeat_fits_reuse_traced_functions_and_match_a_fresh_fit(params, iris):
    X, y = iris
    source = mlp(dropout=0.2)

    def make(seed, learning_rate=1e-3):
        return TransferClassifier(
            source, epochs=3, learning_rate=learning_rate, random_state=seed, **params
        )

    clear_caches()
    fresh = make(0).fit(X, y).predict_proba(X)
    # The worker trains another fit in between, with other data and learning rate.
    other = make(1, learning_rate=0.05).fit(X[:100], y[:100])
    again = make(0).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), fresh)
    # Fitted estimators keep their own weights: the worker's next fit leaves them be.
    assert not np.array_equal(other.predict_proba(X), fresh)
    clear_caches()
    np.testing.assert_array_equal(make(0).fit(X, y).predict_proba(X), fresh)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"freeze": 1, "alpha": 0.5},
        {"freeze": "all", "alpha": 0.3, "head_init": "random"},
        {"source_loss": "l2sp", "alpha": 0.3},
        {"head_warmup": 2, "alpha": 0.2},
    ],
)
def test_one_traced_training_call_matches_keras_fit(params, iris, monkeypatch):
    X, y = iris  # 150 rows in batches of 32: each epoch ends on a short batch
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    source = mlp(dropout=0.2)

    def fit():
        clear_caches()
        est = TransferClassifier(source, epochs=4, batch_size=32, random_state=0, **params)
        est.fit(X, y, sample_weight=weights)
        est.fit(X, y, sample_weight=weights)  # the second fit trains on a worker
        return est

    fast = fit()
    monkeypatch.setattr(_trainer, "train_epochs", lambda net, batches: None)
    keras_fit = fit()
    assert fast.history_ == keras_fit.history_
    assert set(fast.history_) == {"loss", "target_loss", "source_loss"}
    assert len(fast.history_["loss"]) == 4
    for a, b in zip(fast.model_.get_weights(), keras_fit.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@TRACED_LOOP
def test_training_in_chunks_of_epochs_changes_nothing(iris, monkeypatch):
    X, y = iris
    source = mlp(dropout=0.2)

    def fit():
        clear_caches()
        return TransferClassifier(source, freeze=1, alpha=0.5, epochs=5, random_state=0).fit(X, y)

    whole = fit()
    calls = []
    real = _trainer._traced_loop

    def counted(*args):
        loop, names = real(*args)

        def call(*tensors):
            calls.append(int(tensors[-1].shape[0]))
            return loop(*tensors)

        return call, names

    # Python sees Ctrl-C only between calls into TensorFlow: long fits are
    # split into chunks of epochs (here one epoch per call).
    monkeypatch.setattr(_trainer, "_traced_loop", counted)
    monkeypatch.setattr(_trainer, "_FIRST_CHUNK_STEPS", 1)
    monkeypatch.setattr(_trainer, "_CHUNK_SECONDS", 0.0)
    chunked = fit()
    assert calls == [1, 1, 1, 1, 1]
    assert chunked.history_ == whole.history_
    np.testing.assert_array_equal(chunked.predict_proba(X), whole.predict_proba(X))


@TRACED_LOOP
def test_training_loop_is_traced_once_per_worker(iris, monkeypatch):
    X, y = iris
    source = mlp()
    clear_caches()
    traced = []
    real = _trainer._traced_loop

    def counted(*args):
        traced.append(args[1:])
        return real(*args)

    monkeypatch.setattr(_trainer, "_traced_loop", counted)
    order = np.random.default_rng(0).permutation(len(y))
    for seed in range(3):  # other seeds and fold sizes: one configuration
        rows = order[: 100 + seed]
        TransferClassifier(source, freeze=1, epochs=2, random_state=seed).fit(X[rows], y[rows])
    # The first fit builds the configuration's worker, which traces its
    # loop once and trains all three fits with it.
    assert len(traced) == 1


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="XLA compilation of training steps on JAX"
)
def test_jax_training_is_compiled_and_reused_by_later_fits(iris, caplog):
    import logging

    import jax

    X, y = iris
    source = mlp()
    clear_caches()

    def compiled_training_steps(seed):
        caplog.clear()
        with caplog.at_level(logging.WARNING), jax.log_compiles(True):
            TransferClassifier(source, freeze=1, epochs=2, random_state=seed).fit(X, y)
        return [r for r in caplog.records if "compilation of jit(train_step)" in r.getMessage()]

    # Uncompiled, Keras runs every step of a JAX fit op by op, several times
    # slower than the whole fit compiled.
    assert compiled_training_steps(0)
    assert not compiled_training_steps(1)  # the configuration's worker is compiled


def test_user_callbacks_see_every_batch_and_change_no_result(iris):
    X, y = iris

    class Count(keras.callbacks.Callback):
        batches = 0

        def on_train_batch_end(self, batch, logs=None):
            type(self).batches += 1

    source = mlp()
    plain = TransferClassifier(source, freeze=1, epochs=3, random_state=0).fit(X, y)
    watched = TransferClassifier(
        source, freeze=1, epochs=3, random_state=0, callbacks=[Count()]
    ).fit(X, y)
    assert Count.batches == 3 * 5  # 150 rows in batches of 32
    assert watched.history_ == plain.history_
    np.testing.assert_array_equal(watched.predict_proba(X), plain.predict_proba(X))


def test_cached_and_uncached_frozen_prefix_train_the_same_network(iris, monkeypatch):
    X, y = iris
    source = mlp(dropout=0.5)  # Dropout in the frozen part must stay off either way
    params = dict(freeze=1, alpha=0.5, epochs=5, random_state=0)
    cached = TransferClassifier(source, **params).fit(X, y)
    monkeypatch.setattr(TransferClassifier, "_cache_prefix", False)
    uncached = TransferClassifier(source, **params).fit(X, y)
    for a, b in zip(cached.model_.get_weights(), uncached.model_.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_fits_leave_no_gradient_registrations_behind(iris):
    from tensorflow.python.framework import ops

    X, y = iris
    source = mlp()
    registry = ops._gradient_registry._registry
    TransferClassifier(source, epochs=1, random_state=0).fit(X, y)
    before = len(registry)
    for seed in range(6):
        params = dict(freeze=seed % 2, alpha=0.3 * (seed % 3), head=(seed % 2) or None)
        TransferClassifier(source, epochs=1, random_state=seed, **params).fit(X, y)
    assert len(registry) == before


def _rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status on this platform")


def test_memory_stays_flat_over_many_fits(iris):
    X, y = iris
    source = mlp()

    def fit(seed):
        params = dict(freeze=seed % 2, alpha=0.3 * (seed % 3))
        TransferClassifier(source, epochs=1, random_state=seed, **params).fit(X, y).predict(X)

    for seed in range(15):  # warm-up: first traces of each configuration
        fit(seed)
    gc.collect()
    start = _rss_mib()
    for seed in range(15, 55):
        fit(seed)
    gc.collect()
    assert (_rss_mib() - start) / 40 < 0.5  # MiB per fit


def narrow():
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, activation="tanh", kernel_initializer=init(0), name="d1"),
            keras.layers.Dense(3, activation="tanh", kernel_initializer=init(1), name="d2"),
            keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2), name="out"),
        ]
    )


def _assert_same_network(fitted, reference):
    for a, b in zip(fitted.model_.get_weights(), reference.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def _activation_entries(path):
    """The stored activations under a memory directory (not the probe's solves)."""
    return sorted(entry for entry in path.rglob("output.pkl") if "_compute" in entry.parts)


def test_memory_caches_activations_and_recomputes_corrupt_entries(tmp_path, iris):
    X, y = iris
    source = narrow()  # activations no larger than X: worth storing
    params = dict(freeze=1, alpha=0.5, epochs=2, random_state=0)
    expected = TransferClassifier(source, **params).fit(X, y)
    memory = joblib.Memory(tmp_path, verbose=0)
    first = TransferClassifier(source, memory=memory, **params).fit(X, y)
    stored = sorted(tmp_path.rglob("output.pkl"))
    entries = _activation_entries(tmp_path)
    # The frozen prefix only: the source's outputs go on from it, no second pass.
    assert len(entries) == 1
    # ... and the probe head's solve.
    (solve,) = [path for path in stored if "_stored_solve" in path.parts]
    second = TransferClassifier(source, memory=memory, **params).fit(X, y)
    assert sorted(tmp_path.rglob("output.pkl")) == stored
    by_path = TransferClassifier(source, memory=str(tmp_path / "by_path"), **params).fit(X, y)
    for fitted in (first, second, by_path):
        _assert_same_network(fitted, expected)
        np.testing.assert_allclose(
            fitted.predict_proba(X), expected.predict_proba(X), rtol=1e-4, atol=1e-5
        )

    # An entry that no longer loads, then one that loads but holds wrong values.
    entries[0].write_bytes(b"not a pickle")
    _assert_same_network(TransferClassifier(source, memory=memory, **params).fit(X, y), expected)
    values, _ = joblib.load(entries[0])
    joblib.dump((np.zeros_like(values), "digest of other values"), entries[0])
    fourth = TransferClassifier(source, memory=memory, **params).fit(X, y)
    _assert_same_network(fourth, expected)
    np.testing.assert_array_equal(fourth.predict_proba(X), first.predict_proba(X))
    kernel, bias, _ = joblib.load(solve)
    joblib.dump((np.zeros_like(kernel), bias, "digest of other values"), solve)
    fifth = TransferClassifier(source, memory=memory, **params).fit(X, y)
    np.testing.assert_array_equal(fifth.predict_proba(X), first.predict_proba(X))


def test_memory_caches_source_outputs_when_nothing_is_frozen(tmp_path, iris):
    X, y = iris
    source = mlp()
    params = dict(freeze=0, alpha=0.5, epochs=1, random_state=0, memory=str(tmp_path))
    expected = TransferClassifier(source, **{**params, "memory": None}).fit(X, y)
    cached = TransferClassifier(source, **params).fit(X, y)
    assert len(_activation_entries(tmp_path)) == 1  # the source's outputs
    again = TransferClassifier(source, **params).fit(X, y)
    for fitted in (cached, again):
        np.testing.assert_array_equal(fitted.predict_proba(X), expected.predict_proba(X))


def pooled_cnn():
    """Conv, global pooling, Dense: prefix outputs small enough for memory to store."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(8, activation="relu", name="fc"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ]
    )


def test_memory_serves_scoring_folds_from_the_prefix_cache(tmp_path):
    import pickle

    source = pooled_cnn()
    rng = np.random.default_rng(0)
    X, y, X_test = rng.random((60, 64)), rng.integers(0, 3, 60), rng.random((40, 64))
    params = dict(freeze=1, epochs=2, random_state=0)
    plain = TransferClassifier(source, **params).fit(X, y)
    clf = TransferClassifier(source, memory=str(tmp_path), **params).fit(X, y)
    stored = len(list(tmp_path.rglob("output.pkl")))
    first = clf.predict_proba(X_test)  # computes and stores the prefix on X_test
    assert len(list(tmp_path.rglob("output.pkl"))) == stored + 1
    # A hit, a copy after pickling and a fresh fit all give the same values...
    np.testing.assert_array_equal(clf.predict_proba(X_test), first)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X_test), first)
    again = TransferClassifier(source, memory=str(tmp_path), **params).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X_test), first)
    assert len(list(tmp_path.rglob("output.pkl"))) == stored + 1
    # ...equal, to float32 rounding, to the network computed in one piece.
    np.testing.assert_allclose(first, plain.predict_proba(X_test), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first, clf.model_.predict_on_batch(X_test), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X_test), plain.predict(X_test))


def test_memory_deeper_freeze_goes_on_from_a_cached_shallower_one(tmp_path, monkeypatch):
    from sktransfer import _cache

    source = pooled_cnn()
    rng = np.random.default_rng(0)
    X, y = rng.random((60, 64)), rng.integers(0, 3, 60)
    params = dict(epochs=2, random_state=0, memory=str(tmp_path))
    TransferClassifier(source, freeze=1, **params).fit(X, y)  # stores conv + gap outputs
    ran = []
    real = _cache.call_traced  # the frozen prefix runs traced

    def spy(models, x):
        ran.append([layer.name for model in models for layer in model.layers])
        return real(models, x)

    monkeypatch.setattr(_cache, "call_traced", spy)
    deeper = TransferClassifier(source, freeze="all", **params).fit(X, y)
    # Only the layer after the stored prefix ran, not the convolution again.
    assert ran and all("conv" not in names for names in ran)
    assert any("fc" in names for names in ran)
    plain = TransferClassifier(source, freeze="all", epochs=2, random_state=0).fit(X, y)
    _assert_same_network(deeper, plain)


def test_memory_does_not_store_activations_larger_than_the_input(tmp_path, iris):
    X, y = iris
    params = dict(freeze=1, alpha=0.5, epochs=1, random_state=0, memory=str(tmp_path))
    TransferClassifier(mlp(), **params).fit(X, y)  # 16 prefix outputs for 4 inputs
    # Nothing stored: the source's outputs are computed on from the prefix.
    assert _activation_entries(tmp_path) == []


def test_memory_is_validated(iris):
    with pytest.raises(ValueError, match="memory"):
        TransferClassifier(mlp(), memory=42, epochs=1).fit(*iris)


def test_large_inputs_stream_through_predict(iris):
    X, y = iris
    clf = TransferClassifier(mlp(), epochs=1, random_state=0).fit(X, y)
    big = np.tile(X, (70, 1))  # 10,500 rows: several prediction batches
    proba = clf.predict_proba(big)
    assert proba.shape == (len(big), 3)
    np.testing.assert_allclose(proba[: len(X)], clf.predict_proba(X), rtol=1e-6)
    np.testing.assert_allclose(proba[-len(X) :], clf.predict_proba(X), rtol=1e-6)


def test_weightless_layers_after_the_frozen_ones_join_the_cached_prefix(tmp_path):
    init = keras.initializers.GlorotUniform
    source = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, activation="relu", kernel_initializer=init(0), name="conv"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(8, activation="relu", kernel_initializer=init(1), name="fc"),
            keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2), name="out"),
        ]
    )
    rng = np.random.default_rng(0)
    X, y = rng.random((60, 64)), rng.integers(0, 2, 60)
    params = dict(freeze=1, alpha=0.5, epochs=2, random_state=0)
    clf = TransferClassifier(source, memory=str(tmp_path), **params).fit(X, y)
    assert clf.frozen_layers_ == ["conv"]
    frozen = clf.model_.get_layer("sktransfer_frozen")
    assert [layer.name for layer in frozen.layers][-2:] == ["conv", "gap"]
    # 8 pooled features per row (not 6x6x8 feature maps): small enough to store.
    assert len(_activation_entries(tmp_path)) == 1
    _assert_same_network(clf, TransferClassifier(source, **params).fit(X, y))


def test_search_shares_traced_predict_functions_without_retracing_warnings(iris, caplog):
    import logging

    from sklearn.model_selection import GridSearchCV

    X, y = iris
    source = mlp()
    clf = TransferClassifier(source, epochs=1, random_state=0)
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        search = GridSearchCV(clf, {"alpha": [0.0, 0.3], "learning_rate": [1e-3, 1e-2]}, cv=3)
        search.fit(X, y)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    # Predictions through the shared function equal the model's own, exactly.
    fitted = search.best_estimator_
    own = np.asarray(fitted.model_.predict_on_batch(X), dtype=np.float64)
    np.testing.assert_array_equal(fitted.predict_proba(X), own / own.sum(axis=1, keepdims=True))

"""Real inputs and real backbones: images and sequences as X, resizing, input scale,
headless and nested sources, BatchNormalization statistics (issue 14)."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sktransfer import SourceFeatures, TransferClassifier, TransferRegressor, load
from sktransfer.selection import h_score, logme, rank_sources

keras = pytest.importorskip("keras")

FAST = dict(epochs=3, learning_rate=0.01, random_state=0)


def cnn(shape=(8, 8, 1), name="cnn", batchnorm=False, n_out=10):
    init = keras.initializers.GlorotUniform
    layers = [keras.Input(shape)]
    layers.append(keras.layers.Conv2D(4, 3, kernel_initializer=init(0), name="conv"))
    if batchnorm:
        layers.append(keras.layers.BatchNormalization(name="bn"))
    layers += [
        keras.layers.Activation("relu", name="relu"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(n_out, activation="softmax", kernel_initializer=init(1), name="out"),
    ]
    return keras.Sequential(layers, name=name)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:120] / 16).reshape(-1, 8, 8).astype(np.float32), y[:120] % 3


@pytest.fixture(scope="module")
def mobilenet():
    """A headless application backbone (random weights: nothing is downloaded)."""
    return keras.applications.MobileNetV3Small(
        weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3)
    )


def saved_and_reloaded(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path, safe_mode=True)


# -- 1. X of any rank --------------------------------------------------------------


@pytest.mark.parametrize("Estimator", [TransferClassifier, TransferRegressor])
def test_images_and_their_flat_rows_give_identical_fits(Estimator, digits):
    X, y = digits
    images = X[..., None]
    on_images = Estimator(cnn(), freeze=1, **FAST).fit(images, y)
    on_rows = Estimator(cnn(), freeze=1, **FAST).fit(images.reshape(len(X), -1), y)
    assert on_images.input_shape_ == (8, 8, 1) and on_rows.input_shape_ == (64,)
    assert on_images.n_features_in_ == on_rows.n_features_in_ == 64
    assert on_images.model_.input_shape == (None, 8, 8, 1)
    np.testing.assert_array_equal(on_images.history_["loss"], on_rows.history_["loss"])
    np.testing.assert_array_equal(
        on_images.predict(images), on_rows.predict(images.reshape(len(X), -1))
    )


def test_samples_of_any_rank_are_accepted(digits):
    X, y = digits
    sequences = keras.Sequential(
        [
            keras.Input((8, 8)),
            keras.layers.Conv1D(4, 3, name="conv1d"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    for source, samples in ((cnn(), X), (sequences, X)):  # (n, h, w): an image or a sequence
        clf = TransferClassifier(source, epochs=1, random_state=0).fit(samples, y)
        assert clf.input_shape_ == (8, 8) and clf.n_features_in_ == 64
        assert clf.predict(samples[:5]).shape == (5,)
        # Samples flattened to n_features_in_ columns are the same samples.
        np.testing.assert_array_equal(
            clf.predict_proba(samples), clf.predict_proba(samples.reshape(len(X), -1))
        )


def test_a_sample_shape_mismatch_at_predict_is_a_clear_error(digits):
    X, y = digits
    clf = TransferClassifier(cnn(), epochs=1, random_state=0).fit(X, y)
    with pytest.raises(
        ValueError, match=r"samples of shape \(4, 16\).*fitted on samples of shape"
    ):
        clf.predict(X.reshape(-1, 4, 16))
    with pytest.raises(ValueError, match="X has 63 features"):
        clf.predict(X.reshape(len(X), -1)[:, :63])


def test_saved_estimator_keeps_its_sample_shape(digits, tmp_path):
    X, y = digits
    clf = TransferClassifier(cnn(), freeze="all", epochs=1, random_state=0).fit(X[..., None], y)
    clf.save(tmp_path / "clf.skt")
    loaded = load(tmp_path / "clf.skt")
    assert loaded.input_shape_ == (8, 8, 1)
    np.testing.assert_array_equal(
        loaded.predict_proba(X[..., None]), clf.predict_proba(X[..., None])
    )


def test_source_features_and_scores_take_images(digits):
    X, y = digits
    features = SourceFeatures(cnn(), layer="gap").fit(X[..., None])
    assert features.input_shape_ == (8, 8, 1) and features.n_features_in_ == 64
    np.testing.assert_array_equal(
        features.transform(X[..., None]), features.transform(X.reshape(len(X), -1))
    )
    maps = SourceFeatures(cnn(), layer="conv").fit(X).transform(X).reshape(len(X), 6, 6, 4)
    assert logme(maps, y) == logme(maps.reshape(len(X), -1), y)
    assert h_score(maps, y) == h_score(maps.reshape(len(X), -1), y)
    ranking = rank_sources({"cnn": cnn()}, X[..., None], y)
    assert ranking.names == ["cnn"] and np.isfinite(ranking.scores[0])


# -- 2. images of another size or channel count --------------------------------------


def test_auto_resizes_images_of_another_size_and_channel_count(digits, tmp_path):
    X, y = digits
    source = cnn((16, 16, 3))
    clf = TransferClassifier(source, freeze="all", **FAST).fit(X, y)  # 8x8 grey onto 16x16 RGB
    assert clf.input_adapter_ == "resize" and clf.model_.input_shape == (None, 8, 8)
    adapter = clf.model_.get_layer("sktransfer_adapter")
    expected = keras.ops.convert_to_numpy(keras.layers.Resizing(16, 16)(X[..., None]))
    np.testing.assert_allclose(adapter.predict(X, verbose=0), np.repeat(expected, 3, axis=-1))
    reloaded = saved_and_reloaded(clf.model_, tmp_path)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in _all_layers(reloaded))
    np.testing.assert_array_equal(reloaded.predict(X, verbose=0), clf.model_.predict(X, verbose=0))


def test_colour_images_are_averaged_onto_a_grey_source(digits):
    X, y = digits
    rgb = np.stack([X, 2 * X, 3 * X], axis=-1)
    clf = TransferClassifier(cnn((8, 8, 1)), freeze="all", epochs=1, random_state=0).fit(rgb, y)
    adapter = clf.model_.get_layer("sktransfer_adapter")
    np.testing.assert_allclose(adapter.predict(rgb, verbose=0)[..., 0], 2 * X, rtol=1e-6)


def test_resize_is_forced_or_refused_with_a_reason(digits):
    X, y = digits
    forced = TransferClassifier(cnn(), input_adapter="resize", epochs=1, random_state=0)
    assert forced.fit(X[:, ::-1], y).input_adapter_ == "resize"
    with pytest.raises(ValueError, match="cannot resize: it needs images"):
        forced.fit(X.reshape(len(X), -1), y)
    with pytest.raises(ValueError, match="not 2 to 3"):
        TransferClassifier(cnn((8, 8, 3)), epochs=1).fit(np.stack([X, X], axis=-1), y)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


# -- 3. input scale ---------------------------------------------------------------------


FAMILIES = [
    "densenet",
    "efficientnet",
    "mobilenet",
    "mobilenet_v2",
    "mobilenet_v3",
    "resnet50",
    "resnet_v2",
    "vgg16",
    "xception",
]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_scaling_is_the_application_preprocess_input(family):
    from sktransfer._preprocessing import apply_preprocess

    images = np.random.default_rng(0).uniform(0, 255, (4, 5, 5, 3)).astype(np.float32)
    inputs = keras.Input((5, 5, 3))
    scaled = keras.Model(inputs, apply_preprocess(inputs, family))
    expected = getattr(keras.applications, family).preprocess_input(images.copy())
    np.testing.assert_allclose(
        scaled.predict(images, verbose=0), np.asarray(expected), rtol=1e-5, atol=1e-4
    )


def test_preprocess_layer_puts_the_source_scale_inside_model_(digits, tmp_path):
    X, y = digits
    pixels = np.round(X * 255)
    scaled = TransferClassifier(
        cnn(), freeze="all", preprocess=keras.layers.Rescaling(1 / 255), **FAST
    ).fit(pixels, y)
    plain = TransferClassifier(cnn(), freeze="all", **FAST).fit(pixels / 255, y)
    np.testing.assert_allclose(
        scaled.predict_proba(pixels), plain.predict_proba(pixels / 255), atol=1e-5
    )
    assert scaled.input_adapter_ == "reshape"  # the adapter holds the scaling too
    reloaded = saved_and_reloaded(scaled.model_, tmp_path)
    np.testing.assert_array_equal(
        reloaded.predict(pixels, verbose=0), scaled.model_.predict(pixels, verbose=0)
    )


def test_family_scaling_saves_and_reloads_in_safe_mode(tmp_path):
    rng = np.random.default_rng(0)
    images, y = rng.uniform(0, 255, (40, 8, 8, 3)).astype(np.float32), rng.integers(0, 2, 40)
    clf = TransferClassifier(cnn((8, 8, 3)), freeze="all", preprocess="resnet50", epochs=1)
    clf.fit(images, y)
    reloaded = saved_and_reloaded(clf.model_, tmp_path)
    np.testing.assert_array_equal(
        reloaded.predict(images, verbose=0), clf.model_.predict(images, verbose=0)
    )


def test_bad_preprocess_is_refused(digits):
    X, y = digits
    with pytest.raises(ValueError, match="preprocess='imagenet' is not valid"):
        TransferClassifier(cnn(), preprocess="imagenet").fit(X, y)
    with pytest.raises(ValueError, match="scales RGB images"):
        TransferClassifier(cnn(), preprocess="vgg16").fit(X, y)


# -- 4. headless and nested backbones -------------------------------------------------------


def test_headless_application_is_transferred_whole(mobilenet):
    rng = np.random.default_rng(0)
    images, y = rng.uniform(0, 255, (24, 32, 32, 3)).astype(np.float32), rng.integers(0, 2, 24)
    clf = TransferClassifier(mobilenet, freeze="all", epochs=1, random_state=0).fit(images, y)
    assert clf.frozen_layers_[-1] == "avg_pool"
    assert clf.model_.get_layer("sktransfer_head").input_shape == (None, 576)
    assert SourceFeatures(mobilenet).fit(images).n_features_out_ == 576


def test_keras_fine_tuning_pattern_fits(mobilenet):
    rng = np.random.default_rng(0)
    images, y = rng.uniform(0, 255, (24, 32, 32, 3)).astype(np.float32), rng.integers(0, 2, 24)
    source = keras.Sequential(
        [keras.Input((32, 32, 3)), mobilenet, keras.layers.Dense(10, activation="softmax")]
    )
    clf = TransferClassifier(source, freeze="all", epochs=1, random_state=0).fit(images, y)
    inner = [layer.name for layer in mobilenet.layers[1:]]  # the input layer does not count
    assert clf.frozen_layers_ == inner
    assert clf.predict(images).shape == (24,)


def _nested(weights_from=None):
    init = keras.initializers.GlorotUniform
    block = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer=init(0), name="d1"),
            keras.layers.Dense(8, activation="relu", kernel_initializer=init(1), name="d2"),
        ],
        name="block",
    )
    inputs = keras.Input((4,))
    out = keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2), name="out")
    return keras.Model(inputs, out(block(inputs)), name="nested")


def _flat():
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer=init(0), name="d1"),
            keras.layers.Dense(8, activation="relu", kernel_initializer=init(1), name="d2"),
            keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2), name="out"),
        ],
        name="flat",
    )


@pytest.mark.parametrize(
    "freeze, frozen", [(1, ["d1"]), (-1, ["d1"]), (2, ["d1", "d2"]), ("all", ["d1", "d2"])]
)
def test_nested_layers_count_for_freeze(freeze, frozen):
    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 3
    clf = TransferClassifier(_nested(), freeze=freeze, epochs=1, random_state=0).fit(X, y)
    assert clf.frozen_layers_ == frozen


def test_a_nested_source_trains_as_its_flat_twin():
    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 3
    nested = TransferClassifier(_nested(), freeze=1, alpha=0.5, cut="d1", **FAST).fit(X, y)
    flat = TransferClassifier(_flat(), freeze=1, alpha=0.5, cut="d1", **FAST).fit(X, y)
    np.testing.assert_array_equal(nested.predict_proba(X), flat.predict_proba(X))


def test_what_cannot_be_cut_names_the_nested_layer():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4, name="inner_dense")(inputs)
    block = keras.Model(inputs, keras.layers.Add(name="skip")([inputs, hidden]), name="block")
    x = keras.Input((4,))
    source = keras.Model(x, keras.layers.Dense(3, activation="softmax")(block(x)))
    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 3
    with pytest.raises(ValueError, match="cut='inner_dense'.*does not split the source"):
        TransferClassifier(source, cut="inner_dense", alpha=0.5).fit(X, y)
    with pytest.raises(ValueError, match=r"cut=0 \(layer 'inner_dense'\) does not split"):
        TransferClassifier(source, cut=0, alpha=0.5).fit(X, y)
    twice = keras.Model(x, keras.layers.Dense(3, activation="softmax")(block(block(x))))
    with pytest.raises(ValueError, match="nested model 'block' is called more than once"):
        TransferClassifier(twice).fit(X, y)


# -- 5. BatchNormalization --------------------------------------------------------------------


def test_fine_tuning_keeps_the_batchnorm_statistics(digits):
    X, y = digits
    source = cnn(batchnorm=True)
    stats = [w.copy() for w in source.get_layer("bn").get_weights()]
    tuned = TransferClassifier(source, freeze=0, **FAST).fit(X[:20] * 5, y[:20])
    bn = tuned.model_.get_layer("sktransfer_body").get_layer("bn")
    for kept, before in zip(bn.get_weights(), stats, strict=True):
        np.testing.assert_array_equal(kept, before)
    assert tuned.frozen_layers_ == []
    trained = TransferClassifier(source, freeze=0, batchnorm="train", **FAST).fit(
        X[:20] * 5, y[:20]
    )
    moving_mean = trained.model_.get_layer("sktransfer_body").get_layer("bn").moving_mean
    assert not np.allclose(keras.ops.convert_to_numpy(moving_mean), stats[2])

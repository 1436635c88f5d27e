"""SourceFeatures: layer activations of a Keras source as a scikit-learn transformer."""

import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer.features import SourceFeatures


def _sequence_source():
    """A source that reads a sequence of any length, so any number of columns fits it."""
    import keras

    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((None, 1)),
            keras.layers.Conv1D(4, 1, activation="tanh", kernel_initializer=init(0)),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dense(3, activation="tanh", kernel_initializer=init(1), name="pen"),
            keras.layers.Dense(2, activation="softmax", kernel_initializer=init(2), name="out"),
        ],
        name="sequence_source",
    )


def _write_source():
    """Saved as .keras: a path hashes stably for the common checks, a model does not."""
    path = Path(tempfile.mkdtemp(prefix="sktransfer-features-")) / "source.keras"
    _sequence_source().save(path)
    return str(path)


SOURCE = _write_source()


@parametrize_with_checks([SourceFeatures(SOURCE)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _image_source():
    import keras

    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Conv2D(2, 3, activation="relu", kernel_initializer=init(0), name="conv"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(5, activation="relu", kernel_initializer=init(1), name="pen"),
            keras.layers.Dropout(0.5, name="drop"),
            keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2), name="out"),
        ],
        name="image_source",
    )


@pytest.fixture(scope="module")
def image_source():
    return _image_source()


@pytest.fixture(scope="module")
def X16():
    return np.random.default_rng(0).normal(size=(9, 16))


def test_default_layer_is_the_one_before_the_output(image_source, X16):
    features = SourceFeatures(image_source).fit(X16)
    # Layers counted without the input: conv, flat, pen, drop, out; -2 is the Dropout.
    assert features.layer_name_ == "drop"
    assert features.n_features_out_ == 5
    assert features.transform(X16).shape == (9, 5)


@pytest.mark.parametrize(
    ("layer", "name", "width"),
    [(0, "conv", 2 * 2 * 2), ("flat", "flat", 8), (-1, "out", 3), (2, "pen", 5)],
)
def test_layer_by_index_or_name(image_source, X16, layer, name, width):
    features = SourceFeatures(image_source, layer=layer).fit(X16)
    assert features.layer_name_ == name
    out = features.transform(X16)
    assert out.shape == (9, width) and features.n_features_out_ == width


def test_features_equal_the_source_activations(image_source, X16):
    import keras

    out = SourceFeatures(image_source, layer="pen", batch_size=4).fit_transform(X16)
    pen = keras.Model(image_source.inputs[0], image_source.get_layer("pen").output)
    expected = np.asarray(pen(X16.reshape(-1, 4, 4, 1).astype(np.float32)))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    probs = SourceFeatures(image_source, layer=-1).fit_transform(X16)
    # Inference mode: Dropout is off, so the outputs are the source's predictions.
    np.testing.assert_allclose(probs, image_source.predict_on_batch(X16.reshape(-1, 4, 4, 1)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_batch_size_does_not_change_the_features(image_source, X16):
    whole = SourceFeatures(image_source, batch_size=100).fit_transform(X16)
    for batch_size in (1, 2, 9):
        chunked = SourceFeatures(image_source, batch_size=batch_size).fit_transform(X16)
        np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-7)


def test_source_is_not_modified(X16):
    source = _image_source()
    weights = [w.copy() for w in source.get_weights()]
    before = source.predict_on_batch(X16.reshape(-1, 4, 4, 1))
    layers = [(lyr.name, lyr.trainable) for lyr in source.layers]
    features = SourceFeatures(source).fit(X16)
    features.transform(X16)
    assert [(lyr.name, lyr.trainable) for lyr in source.layers] == layers
    for old, new in zip(weights, source.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(source.predict_on_batch(X16.reshape(-1, 4, 4, 1)), before)


def test_fitted_features_keep_their_own_weights(X16):
    source = _image_source()
    features = SourceFeatures(source).fit(X16)
    before = features.transform(X16)
    source.set_weights([np.zeros_like(w) for w in source.get_weights()])
    np.testing.assert_array_equal(features.transform(X16), before)


def test_clone_shares_the_source_model(image_source):
    features = SourceFeatures(image_source, layer="pen")
    copy = clone(features)
    assert copy.source is image_source and copy.layer == "pen"


def test_source_from_path_and_callable(tmp_path, image_source, X16):
    path = tmp_path / "image.keras"
    image_source.save(path)
    expected = SourceFeatures(image_source).fit_transform(X16)
    np.testing.assert_allclose(SourceFeatures(str(path)).fit_transform(X16), expected, rtol=1e-6)
    np.testing.assert_allclose(SourceFeatures(path).fit_transform(X16), expected, rtol=1e-6)
    calls = []

    def build():
        calls.append(1)
        return image_source

    np.testing.assert_allclose(SourceFeatures(build).fit_transform(X16), expected, rtol=1e-6)
    assert len(calls) == 1


def test_one_dimensional_source_takes_matching_columns_as_is():
    import keras

    source = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, name="h"), keras.layers.Dense(1)]
    )
    X = np.arange(12.0).reshape(4, 3)
    out = SourceFeatures(source).fit_transform(X)
    np.testing.assert_allclose(out, np.asarray(source.layers[0](X.astype(np.float32))))


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (5, r"layer=5 is not valid.*\[-5, 4\]"),
        (-6, r"layer=-6 is not valid"),
        ("nope", r"layer='nope' names no layer.*'pen'"),
        (1.5, r"layer=1.5 is not valid"),
        (True, r"layer=True is not valid"),
    ],
)
def test_bad_layer_is_a_value_error(image_source, X16, layer, match):
    with pytest.raises(ValueError, match=match):
        SourceFeatures(image_source, layer=layer).fit(X16)


def test_feature_count_must_fill_the_source_input(image_source):
    X = np.zeros((3, 10))
    with pytest.raises(ValueError, match=r"\(n_samples, 10\).*\(None, 4, 4, 1\).*16 values"):
        SourceFeatures(image_source).fit(X)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "8", None])
def test_bad_batch_size_is_a_value_error(image_source, X16, batch_size):
    with pytest.raises(ValueError, match=rf"batch_size={batch_size!r}"):
        SourceFeatures(image_source, batch_size=batch_size).fit(X16)


def test_missing_source_is_a_type_error(X16):
    with pytest.raises(TypeError, match="source must be"):
        SourceFeatures().fit(X16)


def test_pandas_output_and_feature_names(image_source, X16):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X16, columns=[f"pixel{i}" for i in range(16)])
    features = SourceFeatures(image_source, layer="pen").set_output(transform="pandas")
    out = features.fit_transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"sourcefeatures{i}" for i in range(5)]
    assert list(features.feature_names_in_) == list(frame.columns)
    np.testing.assert_allclose(
        out.to_numpy(), SourceFeatures(image_source, layer="pen").fit_transform(X16), rtol=1e-6
    )


def test_pickle_round_trip(image_source, X16):
    features = SourceFeatures(image_source).fit(X16)
    copy = pickle.loads(pickle.dumps(features))
    np.testing.assert_allclose(copy.transform(X16), features.transform(X16), rtol=1e-6)


def test_in_a_pipeline(image_source):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 16))
    y = (X[:, 0] > 0).astype(int)
    model = make_pipeline(SourceFeatures(image_source, layer="flat"), LogisticRegression())
    assert model.fit(X, y).predict(X).shape == (40,)


def test_import_does_not_load_keras():
    code = (
        "import sys, sktransfer.features, sktransfer.selection; "
        "print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

"""Source models and data shared by the benchmarks and their subprocesses."""

import numpy as np


def _init(seed):
    import keras

    return keras.initializers.GlorotUniform(seed=seed)


def mlp_source(n_features=20, hidden=(64, 32), n_outputs=10, seed=0):
    """A functional MLP source model: ``n_features -> hidden... -> n_outputs`` softmax."""
    import keras

    inputs = keras.Input((n_features,), name="x")
    h = inputs
    for i, units in enumerate(hidden):
        h = keras.layers.Dense(
            units, activation="relu", kernel_initializer=_init(seed + i), name=f"h{i + 1}"
        )(h)
    outputs = keras.layers.Dense(
        n_outputs, activation="softmax", kernel_initializer=_init(seed + 99), name="out"
    )(h)
    return keras.Model(inputs, outputs, name="mlp_source")


def cnn_source(shape=(32, 32, 3), n_outputs=10, seed=0, dense=None, width=1):
    """A small functional CNN: Conv-Conv-Pool-Conv-GAP-Dense (about 24k parameters).

    ``dense`` adds a fully connected ReLU layer of that width before the output
    layer, as many image classifiers have; ``width`` multiplies the number of
    channels of every convolution.
    """
    import keras

    inputs = keras.Input(shape, name="image")
    h = keras.layers.Conv2D(
        16 * width, 3, padding="same", activation="relu", kernel_initializer=_init(seed), name="c1"
    )(inputs)
    h = keras.layers.Conv2D(
        32 * width,
        3,
        padding="same",
        activation="relu",
        kernel_initializer=_init(seed + 1),
        name="c2",
    )(h)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Conv2D(
        64 * width,
        3,
        padding="same",
        activation="relu",
        kernel_initializer=_init(seed + 2),
        name="c3",
    )(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    if dense:
        h = keras.layers.Dense(
            dense, activation="relu", kernel_initializer=_init(seed + 4), name="fc"
        )(h)
    outputs = keras.layers.Dense(
        n_outputs, activation="softmax", kernel_initializer=_init(seed + 3), name="out"
    )(h)
    return keras.Model(inputs, outputs, name="cnn_source")


def labelled_rows(n_samples, n_features, n_classes, seed=0):
    """Gaussian rows with labels from a fixed random linear map (learnable, balanced-ish)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features)).astype(np.float32)
    w = rng.normal(size=(n_features, n_classes))
    y = np.argmax(X @ w, axis=1)
    return X, y

"""Generated tasks for the tests: a source and a target that share a representation."""

import keras
import numpy as np


def shared_representation_task(n_source=3000, n_target=60, n_test=1000, seed=0):
    """Source and target labels both read a fixed nonlinear feature map of X.

    The target has few samples, so a network that already computes the map
    (the source model's body) should beat one learning it from scratch.
    """
    rng = np.random.default_rng(seed)
    d, k = 20, 8
    w1 = rng.normal(size=(d, k)) / np.sqrt(d)

    def features(x):
        return np.sin(x @ w1)

    a_source = rng.normal(size=(k, 10))
    a_target = rng.normal(size=(k, 3))
    n = n_source + n_target + n_test
    x = rng.normal(size=(n, d)).astype(np.float32)
    h = features(x)
    y_source = np.argmax(h @ a_source, axis=1)
    y_target = np.argmax(h @ a_target, axis=1)
    xs, ys = x[:n_source], y_source[:n_source]
    xt, yt = x[n_source : n_source + n_target], y_target[n_source : n_source + n_target]
    xe, ye = x[n_source + n_target :], y_target[n_source + n_target :]
    return (xs, ys), (xt, yt), (xe, ye)


def train_source(x, y, n_classes, epochs=40, seed=0):
    """A small MLP trained on the source task, seeded."""
    import keras

    init = keras.initializers.GlorotUniform
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(64, activation="relu", kernel_initializer=init(seed), name="h1"),
            keras.layers.Dense(
                32, activation="relu", kernel_initializer=init(seed + 1), name="h2"
            ),
            keras.layers.Dense(
                n_classes, activation="softmax", kernel_initializer=init(seed + 2), name="out"
            ),
        ],
        name="source_mlp",
    )
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, shuffle=False)
    return model


def same_on_every_backend(model, seed=0):
    """``model`` with Glorot-uniform kernels drawn by NumPy from ``seed``; returns it.

    Keras' seeded initialisers draw other numbers on each backend, so a test
    network built with them is another network on JAX than on TensorFlow,
    and a test of behaviour would check another case on each.
    """
    rng = np.random.default_rng(seed)
    weights = []
    for value in model.get_weights():
        if value.ndim == 2:
            limit = np.sqrt(6.0 / sum(value.shape))
            value = rng.uniform(-limit, limit, value.shape)
        weights.append(value.astype(np.float32))
    model.set_weights(weights)
    return model


class InterruptAt(keras.callbacks.Callback):
    """A callback that interrupts a fit, as Ctrl-C would, at the end of ``epoch``."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt

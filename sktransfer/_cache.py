"""Activations computed once: per fit, and across fits with ``memory``.

Frozen-prefix outputs and the untouched source's outputs depend only on the
frozen weights and the data, so grid-search candidates that differ in alpha,
learning rate, head or epochs can share them, also across worker processes,
through a ``joblib.Memory``.
"""

import joblib

from ._batches import call_batched


def fingerprint(models):
    """A stable key for what ``models`` compute: their layers and weights.

    Layer configurations and weights, never the Keras objects themselves:
    pickling a Keras model embeds a timestamp, so its hash changes on every
    call.
    """
    import keras

    layers = [
        (type(layer).__name__, layer.get_config(), [w.shape for w in layer.weights])
        for model in models
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    weights = [w for model in models for w in model.get_weights()]
    shapes = [tuple(model.input.shape) for model in models]
    return joblib.hash((repr(layers), shapes, weights))


def keras_layers_only(models):
    """Whether every layer of ``models`` is one of Keras' own (deterministic
    in inference mode), looking inside nested models."""
    import keras

    def own(layer):
        if isinstance(layer, keras.Model):
            return all(own(inner) for inner in layer.layers)
        return type(layer).__module__.startswith("keras.")

    return all(own(layer) for model in models for layer in model.layers)


def _compute(key, x, models):
    values = call_batched(models, x)
    return values, joblib.hash(values)


def _worth_storing(models, x):
    """Whether outputs are no larger than the input rows they stand for.

    Reading a cache entry costs about what writing it did; when a frozen
    prefix expands the data (early convolutions with many channels), the
    entry costs more to store and load than the layers cost to run.
    """
    output = 1
    for dim in models[-1].output.shape[1:]:
        output *= dim or 1
    return output <= max(x[0].size, 1)


def cacheable(memory, models, x):
    """Whether ``activations`` stores and reads the outputs of ``models`` on ``x``."""
    return (
        memory is not None
        and getattr(memory, "location", None) is not None
        and len(x) > 0
        and _worth_storing(models, x)
    )


def activations(memory, models, x, key=None):
    """``models`` applied in sequence to ``x`` in inference mode, as NumPy.

    With a ``joblib.Memory`` that has a location, results no larger than the
    input are cached under the models' fingerprint (``key``, computed when
    None) and the data. Each entry carries its own hash and is recomputed
    when it does not match (a corrupt entry that still loads); one that fails
    to load is recomputed by joblib.
    """
    if not cacheable(memory, models, x):
        return call_batched(models, x)
    cached = memory.cache(_compute, ignore=["models"])
    key = fingerprint(models) if key is None else key
    values, digest = cached(key, x, models)
    if joblib.hash(values) != digest:
        (values, _), _ = cached.call(key, x, models)
    return values

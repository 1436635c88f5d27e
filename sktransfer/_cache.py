"""Activations computed once: per fit, and across fits with ``memory``.

Frozen-prefix outputs and the untouched source's outputs depend only on the
frozen weights and the data, so grid-search candidates that differ in alpha,
learning rate, head or epochs can share them, also across worker processes,
through a ``joblib.Memory``.
"""

import joblib
import numpy as np

from ._fingerprint import fingerprint
from ._inference import call_batched


def keras_layers_only(models):
    """Whether every layer of ``models`` is one of Keras' own (deterministic
    in inference mode), looking inside nested models."""
    import keras

    def own(layer):
        if isinstance(layer, keras.Model):
            return all(own(inner) for inner in layer.layers)
        return type(layer).__module__.startswith("keras.")

    return all(own(layer) for model in models for layer in model.layers)


def _compute(key, data, x, models, start=None):
    """Outputs of ``models`` on ``x``, with their hash for checking on load.

    ``start`` is ``(values, tail)`` when the outputs of a shallower prefix of
    ``models`` are known: the forward pass goes on from them through
    ``tail``, the same operations on the same rows, so the values are too.
    """
    values = call_batched(models, x) if start is None else call_batched([start[1]], start[0])
    return values, joblib.hash(values)


def _shallower(cached, models, x, data):
    """A cached shallower prefix of ``models`` on ``x`` and the layers after it.

    Candidates of a search over freeze depths share their lower frozen
    layers; a deeper prefix then needs only the layers after the deepest
    shallower one already stored. Returns ``(values, tail)`` or None.
    """
    import keras

    from ._network import graph_layers

    *first, frozen = models
    layers = graph_layers(frozen)
    size = max(x[0].size, 1)
    for layer in reversed(layers[:-1]):
        try:
            boundary = layer.output
        except (AttributeError, ValueError):  # a layer called more than once
            continue
        if int(np.prod([d or 1 for d in boundary.shape[1:]])) > size:
            continue  # never stored: see _worth_storing
        try:
            tail = keras.Model(boundary, frozen.output)
        except ValueError:  # other paths bypass this layer
            continue
        shallow = [*first, keras.Model(frozen.input, boundary)]
        key = fingerprint(shallow)
        if cached.check_call_in_cache(key, data, x, shallow):
            values, digest = cached(key, data, x, shallow)
            if joblib.hash(values) == digest:
                return values, tail
    return None


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
    cached = memory.cache(_compute, ignore=["x", "models", "start"])
    key = fingerprint(models) if key is None else key
    data = joblib.hash(x)
    start = None
    if not cached.check_call_in_cache(key, data, x, models):
        start = _shallower(cached, models, x, data)
    values, digest = cached(key, data, x, models, start)
    if joblib.hash(values) != digest:
        (values, _), _ = cached.call(key, data, x, models)
    return values

"""Activations computed once: per fit, and across fits with ``memory``.

Frozen-prefix outputs and the untouched source's outputs depend only on the
frozen weights and the data, so grid-search candidates that differ in alpha,
learning rate, head or epochs can share them, also across worker processes,
through a ``joblib.Memory``.
"""

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._fingerprint import prefix_keys
from ._inference import call_traced

_HASH_CHUNK = 1 << 24  # bytes hashed per task when the rows are large


def data_key(x):
    """A key for the rows ``x``: the SHA-256 of their dtype, shape and bytes.

    The rows are hashed on every fit and prediction that uses ``memory``.
    Large arrays (images: hundreds of megabytes) are hashed in chunks of
    16 MiB on all cores (hashlib releases the GIL), and the key is the hash
    of the chunks' hashes: about 0.13 s for 221 MB on two cores, against
    0.26 s in one pass and 0.39 s with ``joblib.hash`` (MD5).
    """
    x = np.ascontiguousarray(x)
    flat = x.reshape(-1).view(np.uint8)
    digest = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    if flat.size <= 2 * _HASH_CHUNK:
        digest.update(flat)
        return digest.hexdigest()
    chunks = [flat[i : i + _HASH_CHUNK] for i in range(0, flat.size, _HASH_CHUNK)]
    with ThreadPoolExecutor(min(len(chunks), _cores())) as pool:
        for chunk_digest in pool.map(_sha256, chunks):
            digest.update(chunk_digest)
    return digest.hexdigest()


def _sha256(chunk):
    return hashlib.sha256(chunk).digest()


def _cores():
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    values = call_traced(models, x) if start is None else call_traced([start[1]], start[0])
    return values, data_key(values)


def _shallower(cached, models, x, data, keys):
    """A cached shallower prefix of ``models`` on ``x`` and the layers after it.

    Candidates of a search over freeze depths share their lower frozen
    layers; a deeper prefix then needs only the layers after the deepest
    shallower one already stored. ``keys`` are the prefixes' keys
    (``prefix_keys``), so looking costs a file lookup per layer, and a model
    is built only for a prefix that is stored. Returns ``(values, tail)`` or
    None.
    """
    import keras

    from ._network import graph_layers

    *first, frozen = models
    size = max(x[0].size, 1)
    for layer in reversed(graph_layers(frozen)[:-1]):
        key = keys.get(layer.name)
        if key is None or not cached.check_call_in_cache(key, data, x, None):
            continue
        try:
            boundary = layer.output
            tail = keras.Model(boundary, frozen.output)
        except (AttributeError, ValueError):  # called more than once, or bypassed
            continue
        if int(np.prod([d or 1 for d in boundary.shape[1:]])) > size:
            continue  # never stored: see _worth_storing
        shallow = [*first, keras.Model(frozen.input, boundary)]
        values, digest = cached(key, data, x, shallow)
        if data_key(values) == digest:
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


def activations(memory, models, x, key=None, keys=None):
    """``models`` applied in sequence to ``x`` in inference mode, as NumPy.

    Deep models run through shared traced functions
    (``_inference.call_traced``). With a ``joblib.Memory`` that has a
    location, results no larger than the input are cached under the models'
    key (``prefix_keys``, or ``key`` when given, which skips the search for
    a stored shallower prefix) and the data; ``keys``, when given, are the
    models' ``prefix_keys`` computed before. Each entry carries its own hash
    and is recomputed when it does not match (a corrupt entry that still
    loads); one that fails to load is recomputed by joblib.
    """
    if not cacheable(memory, models, x):
        return call_traced(models, x)
    cached = memory.cache(_compute, ignore=["x", "models", "start"])
    if key is None:
        keys = prefix_keys(models) if keys is None else keys
        key = next(reversed(keys.values()))  # that of the last layer: the whole chain
    data = data_key(x)
    start = None
    if keys is not None and not cached.check_call_in_cache(key, data, x, models):
        start = _shallower(cached, models, x, data, keys)
    values, digest = cached(key, data, x, models, start)
    if data_key(values) != digest:
        (values, _), _ = cached.call(key, data, x, models)
    return values

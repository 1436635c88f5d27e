"""Running networks in inference mode over many rows, a chunk at a time."""

import threading

import numpy as np

from ._reuse import Registry

# Architecture -> (traced twin, lock), for call_traced; emptied by clear_caches.
PASSES = Registry(4)


def chunked(function, x, batch_size):
    """``function`` applied to ``x`` in chunks of ``batch_size`` rows, as one array.

    The output is allocated once, from the first chunk's shape and dtype,
    and filled chunk by chunk: no list of partial results and no copy to
    join them, so large inputs stream through with one output's memory.
    """
    first = np.asarray(function(x[:batch_size]))
    if len(x) <= batch_size:
        return first
    out = np.empty((len(x), *first.shape[1:]), dtype=first.dtype)
    out[:batch_size] = first
    for start in range(batch_size, len(x), batch_size):
        out[start : start + batch_size] = function(x[start : start + batch_size])
    return out


def call_batched(models, x, batch_size=1024):
    """Apply ``models`` in sequence, in inference mode, chunk by chunk.

    A plain call never builds a ``predict_function`` on a model, so a source
    model passed through here is left exactly as it was.
    """
    import keras

    def forward(chunk):
        for model in models:
            chunk = model(chunk, training=False)
        return keras.ops.convert_to_numpy(chunk)

    return chunked(forward, x, batch_size)


_TRACED_BATCH = 256  # rows per call: larger batches of images run slower on CPU
# Op by op, each layer costs a dispatch; below this depth that costs less than
# a trace, which TensorFlow also counts towards its retracing warning.
_TRACED_MIN_LAYERS = 32


def _fixed_size(function, size):
    """``function`` on chunks of at most ``size`` rows, padded to ``size`` rows.

    A traced function traces again for each new batch size; padding the
    last, shorter chunk (rows never mix in inference mode) keeps every call
    at one size, so a twin traces once in the process.
    """

    def run(chunk):
        n = len(chunk)
        if n < size:
            padding = np.zeros((size - n, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, padding])
        return np.asarray(function(chunk))[:n]

    return run


def _pass_twin(model):
    """The traced twin of ``model``'s architecture (a clone), and its lock."""
    from ._fingerprint import fingerprint
    from ._network import clone_model

    return PASSES.setdefault(
        fingerprint([model], weights=False), lambda: (clone_model(model), threading.Lock())
    )


def call_traced(models, x):
    """``call_batched``, through traced functions that fits of one architecture share.

    Op by op, a deep network (an application backbone of a hundred layers)
    runs several times slower than traced, and tracing the fresh copy that
    each fit builds would cost as much again. Each model of at least
    ``_TRACED_MIN_LAYERS`` layers runs through its architecture's traced
    *twin*, a copy kept between fits (``PASSES``), with the model's weights
    copied in; the values are those of ``call_batched``, to float32
    rounding. Shallower models, every model on backends other than
    TensorFlow (where a traced function may donate the buffers that a copy
    shares) and every model under a ``tf.distribute`` strategy run as in
    ``call_batched``.
    """
    import keras

    from ._distribution import current
    from ._reuse import copy_variables

    # Under a tf.distribute strategy a twin's predict_on_batch would run on
    # every replica, and the twin would stay tied to the strategy.
    if keras.backend.backend() != "tensorflow" or current() is not None:
        return call_batched(models, x)
    for model in models:
        if len(model.layers) < _TRACED_MIN_LAYERS:
            x = call_batched([model], x)
            continue
        twin, lock = _pass_twin(model)
        with lock:
            copy_variables(model, twin)
            x = chunked(_fixed_size(twin.predict_on_batch, _TRACED_BATCH), x, _TRACED_BATCH)
    return np.asarray(x)

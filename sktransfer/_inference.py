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
    each fit builds would cost as much again. Each model here runs through
    its architecture's traced *twin*, a copy kept between fits (``PASSES``),
    with the model's weights copied in; the values are those of
    ``call_batched``. On backends other than TensorFlow, where a traced
    function may donate the buffers that a copy shares, it is
    ``call_batched``.
    """
    import keras

    from ._reuse import copy_variables

    if keras.backend.backend() != "tensorflow":
        return call_batched(models, x)
    for model in models:
        twin, lock = _pass_twin(model)
        with lock:
            copy_variables(model, twin)
            x = chunked(twin.predict_on_batch, x, _TRACED_BATCH)
    return np.asarray(x)

"""Running networks in inference mode over many rows, a chunk at a time."""

import numpy as np


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

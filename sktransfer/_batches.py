"""Feeding training data to Keras with a shuffle seeded from ``random_state``."""

import keras
import numpy as np


class Batches(keras.utils.PyDataset):
    """Mini-batches of ``(x, y, sample_weight)``, reshuffled every epoch.

    ``y`` may be a tuple of arrays (target and teacher outputs). With
    ``source=(x_source, y_source)`` each batch also carries a batch of source
    data, drawn as a stream that cycles through the source rows, and is
    ``((x, x_source), (y, y_source), sample_weight)``. The order comes from a
    local generator seeded with ``seed``; with ``seed=None`` the rows are
    served in order (validation data).
    """

    def __init__(self, x, y, sample_weight, batch_size, seed=None, source=None):
        super().__init__()
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size = batch_size
        self.source = source
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._order = self._next_order(len(x))
        if source is not None:
            self._source_batch = min(batch_size, len(source[0]))
            self._source_order = self._next_order(len(source[0]))
            self._source_at = 0

    def _next_order(self, n):
        return np.arange(n) if self._rng is None else self._rng.permutation(n)

    def _source_rows(self):
        rows = self._source_order[self._source_at : self._source_at + self._source_batch]
        self._source_at += self._source_batch
        if len(rows) < self._source_batch:
            self._source_order = self._next_order(len(self._source_order))
            self._source_at = self._source_batch - len(rows)
            rows = np.concatenate([rows, self._source_order[: self._source_at]])
        return rows

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        if isinstance(self.y, tuple):
            y = tuple(part[rows] for part in self.y)
        else:
            y = self.y[rows]
        if self.source is None:
            return self.x[rows], y, self.sample_weight[rows]
        source_rows = self._source_rows()
        x_source, y_source = (part[source_rows] for part in self.source)
        return (self.x[rows], x_source), (y, y_source), self.sample_weight[rows]

    def on_epoch_end(self):
        if self._rng is not None:
            self._order = self._next_order(len(self.x))


def call_batched(models, x, batch_size=1024):
    """Apply ``models`` in sequence, in inference mode, chunk by chunk.

    A plain call never builds a ``predict_function`` on a model, so a source
    model passed through here is left exactly as it was.
    """

    def forward(chunk):
        for model in models:
            chunk = model(chunk, training=False)
        return keras.ops.convert_to_numpy(chunk)

    chunks = [forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(chunks)

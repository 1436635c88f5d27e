"""Feeding training data to Keras with a shuffle seeded from ``random_state``."""

import keras
import numpy as np


def take(part, rows):
    """``rows`` of an array, or of each array in a tuple of them."""
    if isinstance(part, tuple):
        return tuple(p[rows] for p in part)
    return part[rows]


class Batches(keras.utils.PyDataset):
    """Mini-batches of ``(x, y, sample_weight)`` for ``epochs`` epochs.

    All epochs form one long sequence, which ``fit`` reads with
    ``steps_per_epoch``: Keras then keeps one iterator for the whole fit
    instead of setting up a new one each epoch, which is most of the cost of
    an epoch on small data. The rows of epoch ``e`` come in the order of a
    permutation drawn from ``(seed, e)`` alone; with ``seed=None`` they come
    in order (validation data).

    ``y`` may be a tuple of arrays (target and teacher outputs). With
    ``source=(x_source, y_source)`` each batch also carries a batch of source
    data, drawn as a stream that cycles through the source rows, and is
    ``((x, x_source), (y, y_source), sample_weight)``.
    """

    def __init__(
        self, x, y, sample_weight, batch_size, seed=None, source=None, epochs=1, first_epoch=0
    ):
        super().__init__()
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size = batch_size
        self.seed = seed
        self.epochs, self.first_epoch = epochs, first_epoch
        self.steps_per_epoch = -(-len(x) // batch_size)
        self._epoch, self._order = None, None
        self.source = source
        if source is not None:
            self._source_batch = min(batch_size, len(source[0]))
            self._source_pass = 0
            self._source_order = self.permutation(len(source[0]), "source", 0)
            self._source_at = 0

    def permutation(self, n, stream, index):
        """The row order of pass ``index`` over ``n`` rows of ``stream`` ("target" or "source")."""
        if self.seed is None:
            return np.arange(n)
        salt = 1 if stream == "source" else 0
        return np.random.default_rng([self.seed, salt, index]).permutation(n)

    def _source_rows(self):
        rows = self._source_order[self._source_at : self._source_at + self._source_batch]
        self._source_at += self._source_batch
        if len(rows) < self._source_batch:
            self._source_pass += 1
            n = len(self._source_order)
            self._source_order = self.permutation(n, "source", self._source_pass)
            self._source_at = self._source_batch - len(rows)
            rows = np.concatenate([rows, self._source_order[: self._source_at]])
        return rows

    def __len__(self):
        return self.steps_per_epoch * self.epochs

    def __getitem__(self, index):
        epoch, step = divmod(index, self.steps_per_epoch)
        epoch += self.first_epoch
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = self.permutation(len(self.x), "target", epoch)
        rows = self._order[step * self.batch_size : (step + 1) * self.batch_size]
        y = take(self.y, rows)
        if self.source is None:
            return self.x[rows], y, self.sample_weight[rows]
        source_rows = self._source_rows()
        x_source, y_source = take(self.source, source_rows)
        return (self.x[rows], x_source), (y, y_source), self.sample_weight[rows]

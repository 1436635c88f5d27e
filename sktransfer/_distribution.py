"""Fits spread over several devices or hosts, through Keras' distribution API.

sktransfer adds no parameter for this: a fit follows the distribution that is
active when it is called, as a Keras model's ``fit`` does.

- TensorFlow: ``fit`` called inside ``strategy.scope()`` of a
  ``tf.distribute.MirroredStrategy`` (or another strategy). The network is
  built in the scope, so its variables are mirrored, and each batch of
  ``batch_size`` rows is split over the replicas.
- JAX: ``keras.distribution.set_distribution(DataParallel(...))`` (or inside
  ``distribution.scope()``). Each batch is sharded along the distribution's
  batch axis; on several hosts (``keras.distribution.initialize``) every
  process calls ``fit`` with the same data and seed, and feeds its own part
  of each batch.

What a fit does differently under a distribution is decided here:

- the loss of a training step is the mean over the whole batch, whichever
  device computes which rows (``batch_reduction``);
- on JAX, a batch whose rows do not split evenly over the devices is padded
  with rows marked as padding, and on several hosts each process feeds its
  own rows of every batch (``feed``);
- traced training networks are kept per distribution (``key``);
- predictions run on one device (``predict_unreplicated``).

The fit itself is the same fit: the same batches in the same order, the same
seeds, the same updates up to float32 rounding of the sums across devices.
"""

import contextlib
import copy
import threading
import weakref

import numpy as np

_EPS = 1e-7  # as in the training objective


class Spread:
    """The distribution a fit runs under: what it is and how batches split over it."""

    def __init__(self, backend, handle, key, shards, process=0, processes=1):
        self.backend = backend
        self.handle = handle  # the tf.distribute strategy or the Keras distribution
        self.key = key
        self.shards = shards  # parts each batch is split into
        self.process, self.processes = process, processes


def current():
    """The distribution a fit called now runs under, or None for one device."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.distribute.has_strategy():
            return None
        strategy = tf.distribute.get_strategy()
        # The strategy itself is the key: variables made in its scope work
        # under no other, and holding it keeps its id from being reused.
        return Spread(backend, strategy, (backend, strategy), strategy.num_replicas_in_sync)
    if backend == "jax":
        return _jax_spread(keras.distribution.distribution())
    return None


def _jax_spread(distribution):
    import jax

    if distribution is None:
        return None
    mesh = distribution.device_mesh
    shards = mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)]
    if type(distribution).__name__ == "DataParallel":
        # Equal data-parallel distributions lay variables out alike.
        devices = tuple(d.id for d in np.ravel(mesh.devices))
        key = ("jax", "DataParallel", devices, tuple(mesh.shape), distribution.batch_dim_name)
    else:  # a layout map may shard variables: only this distribution
        key = ("jax", distribution)
    return Spread("jax", distribution, key, shards, jax.process_index(), jax.process_count())


def key():
    """What a traced training network is specific to: None on one device."""
    spread = current()
    return None if spread is None else spread.key


def steps_per_execution(steps):
    """Training steps per call into Keras' training function.

    Under a ``tf.distribute`` strategy, one: with more, Keras 3.15 on
    TensorFlow 2.21 fails inside its multi-step loop ("You must feed a value
    for placeholder tensor"), for a plain Keras model too.
    """
    spread = current()
    return 1 if spread is not None and spread.backend == "tensorflow" else steps


# -- the loss of a batch split over devices --------------------------------------------


class Reduction:
    """How a training step takes means over its batch: on one device, as written."""

    def weighted_mean(self, values, weight):
        from keras import ops

        return ops.sum(values * weight) / ops.maximum(ops.sum(weight), _EPS)

    def rows_mean(self, values):
        """The mean over the batch's target rows."""
        from keras import ops

        return ops.mean(values)

    def mean(self, values):
        """The mean over the rows of another batch of the step (source rows)."""
        from keras import ops

        return ops.mean(values)

    def weight(self, sample_weight):
        return sample_weight

    def loss(self, loss):
        return loss


class ReplicaReduction(Reduction):
    """TensorFlow: each replica holds part of the batch, and Keras sums the
    replicas' gradients of the returned loss.

    Each replica's means are taken over the whole batch (its sums divided by
    totals summed over the replicas, times the number of replicas), so that
    the average over replicas is the mean over the batch however its rows
    split (a batch of 15 rows splits 8 and 7 over 2 replicas); the loss
    returned is divided by the number of replicas, as Keras' own losses
    are, so that the summed gradients are those of the batch's loss.
    (Without that division each replica's full loss made the summed
    gradients twice as large on 2 replicas: Adam, nearly blind to the scale
    of its gradients, moved predictions by about 1e-3, plain SGD would have
    taken steps twice as long.)
    """

    def __init__(self, context):
        self.context = context
        self.replicas = context.num_replicas_in_sync

    def _total(self, value):
        return self.context.all_reduce("SUM", value)

    def weighted_mean(self, values, weight):
        from keras import ops

        total = ops.maximum(self._total(ops.sum(weight)) / self.replicas, _EPS)
        return ops.sum(values * weight) / total

    def mean(self, values):
        from keras import ops

        count = ops.cast(ops.size(values), values.dtype)
        return ops.sum(values) / ops.maximum(self._total(count) / self.replicas, 1.0)

    rows_mean = mean

    def loss(self, loss):
        from keras import ops

        # Keras averages the replicas' losses weighted by their rows for
        # history_: each replica reports the batch's loss (the mean of theirs)
        # and keeps the gradient of its own.
        batch = self._total(ops.stop_gradient(loss)) / self.replicas
        return (loss + ops.stop_gradient(batch - loss)) / self.replicas


class PaddedReduction(Reduction):
    """JAX: one program sees the whole batch, whose padding rows (see ``feed``)
    carry a NaN sample weight; they count in no mean."""

    def __init__(self, sample_weight):
        from keras import ops

        self.rows = ops.logical_not(ops.isnan(sample_weight))

    def weight(self, sample_weight):
        from keras import ops

        return ops.where(self.rows, sample_weight, ops.zeros_like(sample_weight))

    def rows_mean(self, values):
        from keras import ops

        rows = ops.cast(ops.reshape(self.rows, ops.shape(values)), values.dtype)
        return ops.sum(values * rows) / ops.maximum(ops.sum(rows), 1.0)


LOCAL = Reduction()


def batch_reduction(sample_weight):
    """The ``Reduction`` of the training step being traced."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            return ReplicaReduction(context)
    elif backend == "jax" and sample_weight is not None:
        spread = current()
        if spread is not None and spread.shards > 1:
            return PaddedReduction(sample_weight)
    return LOCAL


# -- feeding batches to several devices and hosts (JAX) -------------------------------


def feed(batches, spread):
    """``batches`` as this process passes them to ``fit`` under ``spread``.

    Unchanged on one device and under TensorFlow, whose strategies split
    uneven batches themselves; on JAX, a ``Fed`` view of them.
    """
    if batches is None or spread is None or spread.backend != "jax":
        return batches
    return Fed(batches, spread).dataset


class Fed:
    """A ``Batches`` as this process feeds it to a JAX distribution.

    Keras shards each batch along the distribution's batch axis, which needs
    a number of rows that the devices divide: a shorter batch (the last of
    an epoch) gets padding rows, copies of its first rows with a NaN sample
    weight, which ``PaddedReduction`` leaves out of every mean. On several
    hosts each process passes only its own rows of every batch (the rows
    that its devices hold), and Keras joins the processes' rows into the
    batch that a fit on one device trains on.
    """

    def __init__(self, batches, spread):
        import keras

        self.batches, self.spread = batches, spread
        source_rows = getattr(batches, "_source_batch", 0) if batches.source is not None else 0
        if source_rows % spread.shards:
            raise ValueError(
                f"source_loss='joint' draws {source_rows} source rows per step, which do not "
                f"split evenly over the distribution's {spread.shards} devices; choose a "
                f"batch_size divisible by {spread.shards}, and at least as many source rows"
            )
        fed = self

        class Dataset(keras.utils.PyDataset):
            def __len__(self):
                return len(batches)

            def __getitem__(self, index):
                return fed.batch(batches[index])

        self.dataset = Dataset()

    def batch(self, data):
        from ._batches import take

        x, y, weight = data
        if self.batches.source is None:
            return self._target_rows(x, y, weight)
        (x, x_source), (y, y_source) = x, y
        x, y, weight = self._target_rows(x, y, weight)
        mine = self._own_rows(len(x_source))
        return (x, take(x_source, mine)), (y, take(y_source, mine)), weight

    def _target_rows(self, x, y, weight):
        from ._batches import take

        n = len(weight)
        padded = -(-n // self.spread.shards) * self.spread.shards
        if padded > n:
            fill = np.arange(padded - n) % n
            rows = np.concatenate([np.arange(n), fill])
            x, y = take(x, rows), take(y, rows)
            weight = np.concatenate([weight, np.full(padded - n, np.nan, weight.dtype)])
        mine = self._own_rows(padded)
        return take(x, mine), take(y, mine), weight[mine]

    def _own_rows(self, n):
        """The rows of a batch of ``n`` that this process's devices hold."""
        if self.spread.processes == 1:
            return slice(None)
        layout = self.spread.handle.get_data_layout((n,)).backend_layout
        held = {
            index[0].indices(n)[:2]
            for index in layout.addressable_devices_indices_map((n,)).values()
        }
        start, stop = min(a for a, _ in held), max(b for _, b in held)
        if sum(b - a for a, b in held) != stop - start:
            raise ValueError(
                "this process's devices hold rows of each batch that are not contiguous; "
                "list the distribution's devices process by process"
            )
        return slice(start, stop)


@contextlib.contextmanager
def feeding(spread):
    """The distribution ``fit`` runs under while sktransfer feeds it (see ``Fed``).

    Across processes, Keras would itself split data among them, which it
    can only do for a ``tf.data.Dataset``: each process already passes its
    own rows, so the fit runs under a copy of the distribution with
    ``auto_shard_dataset=False``. The user's distribution is left as it is.
    """
    distribution = None if spread is None or spread.backend != "jax" else spread.handle
    if distribution is None or spread.processes == 1 or not distribution.auto_shard_dataset:
        yield
        return
    own = copy.copy(distribution)
    own.auto_shard_dataset = False
    with own.scope():
        yield


# -- predicting on one device (TensorFlow) --------------------------------------------

_MIRRORED = weakref.WeakKeyDictionary()  # model -> whether its variables are mirrored
_CALLS = weakref.WeakKeyDictionary()  # model -> its traced call
_CALLS_LOCK = threading.Lock()


def mirrored(model):
    """Whether ``model`` must predict through ``predict_unreplicated`` (TensorFlow).

    Under a strategy, and for a model built in a strategy's scope (which
    Keras ties to that strategy for good), ``predict_on_batch`` runs the
    whole batch on every replica and returns the replicas' outputs joined:
    as many copies of the rows as there are replicas.
    """
    import tensorflow as tf

    if tf.distribute.has_strategy():
        return True
    with _CALLS_LOCK:
        known = _MIRRORED.get(model)
    if known is None:
        known = any(isinstance(v.value, tf.distribute.DistributedValues) for v in model.variables)
        with _CALLS_LOCK:
            _MIRRORED[model] = known
    return known


def predict_unreplicated(model, x):
    """``model``'s outputs on ``x`` in inference mode, computed once (TensorFlow).

    A traced call of the model, the computation of Keras' predict step,
    without the strategy's replication. It is kept with the model.
    """
    import tensorflow as tf

    with _CALLS_LOCK:
        call = _CALLS.get(model)
        if call is None:
            ref = weakref.ref(model)
            call = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True)
            _CALLS[model] = call
    return np.asarray(call(x))

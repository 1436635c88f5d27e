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

- the loss of a training step is the mean over the real rows of the whole
  batch, whichever device holds which rows (``batch_reduction``);
- each batch is padded to a multiple of the devices with rows that count in
  no mean, and on several hosts each process feeds its own rows of every
  batch (``Fed``, ``train``); on TensorFlow, training runs through Keras'
  ``fit``, one step per call (``steps_per_execution``);
- traced training networks are kept per distribution (``key``), and a warm
  start stays under the distribution it began under (``check_warm_start``);
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
    import keras

    if distribution is None:
        return None
    mesh = distribution.device_mesh
    shards = mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)]
    if isinstance(distribution, keras.distribution.DataParallel):
        # Equal data-parallel distributions lay variables out alike.
        devices = tuple(d.id for d in np.ravel(mesh.backend_mesh.devices))
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


class SpreadReduction(Reduction):
    """Under a distribution: means over the real rows of the whole batch.

    The batch reaches the devices padded to a multiple of their number, its
    padding rows marked by a NaN sample weight (see ``Fed``); they count in
    no mean. On JAX one program sees the whole batch. On TensorFlow each of
    the ``replicas`` sees its part, and Keras sums their gradients: each
    replica's means divide its sums by totals over all replicas, times the
    number of replicas, so that the replicas' average is the batch's mean,
    and the loss returned is divided by the number of replicas, as Keras'
    own losses are. (Without that division the summed gradients were twice
    as large on 2 replicas: Adam, nearly blind to the scale of its
    gradients, moved predictions by about 1e-3; plain SGD took steps twice
    as long.)
    """

    def __init__(self, sample_weight, context=None):
        from keras import ops

        self.context = context
        self.replicas = 1 if context is None else context.num_replicas_in_sync
        self.rows = None if sample_weight is None else ops.logical_not(ops.isnan(sample_weight))

    def _total(self, value):
        """``value`` summed over the replicas."""
        return value if self.context is None else self.context.all_reduce("SUM", value)

    def _per_replica(self, total, floor):
        from keras import ops

        return ops.maximum(self._total(total) / self.replicas, floor)

    def _mask(self, values):
        from keras import ops

        if self.rows is None:
            return ops.ones_like(values)
        return ops.cast(ops.reshape(self.rows, ops.shape(values)), values.dtype)

    def weight(self, sample_weight):
        from keras import ops

        return ops.where(self.rows, sample_weight, ops.zeros_like(sample_weight))

    def weighted_mean(self, values, weight):
        from keras import ops

        return ops.sum(values * weight) / self._per_replica(ops.sum(weight), _EPS)

    def rows_mean(self, values):
        from keras import ops

        rows = self._mask(values)
        return ops.sum(values * rows) / self._per_replica(ops.sum(rows), 1.0)

    def mean(self, values):
        from keras import ops

        count = ops.cast(ops.size(values), values.dtype)
        return ops.sum(values) / self._per_replica(count, 1.0)

    def loss(self, loss):
        """The loss to differentiate, with the value Keras' ``loss`` log should add up.

        Keras logs the mean of the batches' losses weighted by their rows,
        padding rows included, so each replica reports the batch's loss
        scaled by its share of real rows; ``train`` scales the epoch's mean
        back. The gradient is that of the replica's own loss.
        """
        from keras import ops

        batch = self._total(ops.stop_gradient(loss)) / self.replicas
        if self.rows is not None:
            rows = ops.cast(self.rows, loss.dtype)
            padded = ops.cast(ops.size(rows), loss.dtype)
            batch = batch * self._total(ops.sum(rows)) / self._total(padded)
        return (loss + ops.stop_gradient(batch - loss)) / self.replicas


LOCAL = Reduction()


def batch_reduction(sample_weight):
    """The ``Reduction`` of the training step being traced."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            return SpreadReduction(sample_weight, context)
    elif backend == "jax":
        spread = current()
        if spread is not None and spread.shards > 1:
            return SpreadReduction(sample_weight)
    return LOCAL


# -- feeding batches to the devices ----------------------------------------------------


class Fed:
    """``Batches`` as this process feeds them to ``fit`` under a distribution.

    Each batch is padded to a number of rows that the devices divide: Keras
    shards a JAX batch only so, and on TensorFlow a batch that splits
    unevenly fails in Keras 3.15 ("Inputs to operation AddN ... must have
    the same size", when ``fit`` starts). The padding rows are copies of
    the batch's first rows with a NaN sample weight, which
    ``SpreadReduction`` leaves out of every mean. On several hosts (JAX)
    each process passes only its own rows of every batch (those its devices
    hold), and Keras joins the processes' rows into the batch that a fit on
    one device trains on.
    """

    def __init__(self, batches, spread):
        import keras

        self.batches, self.spread = batches, spread
        source_rows = getattr(batches, "_source_batch", 0) if batches.source is not None else 0
        if source_rows % spread.shards:
            raise ValueError(
                f"source_loss='joint' draws {source_rows} source rows per step (the batch "
                "size, or all the source rows when there are fewer), which do not split "
                f"evenly over the distribution's {spread.shards} devices: choose a batch_size "
                f"and a number of source rows that {spread.shards} divides"
            )
        fed = self

        class Dataset(keras.utils.PyDataset):
            def __len__(self):
                return len(batches)

            def __getitem__(self, index):
                return fed.batch(batches[index])

        self.dataset = Dataset()

    def _padded(self, n):
        return -(-n // self.spread.shards) * self.spread.shards

    def padding_factor(self):
        """Rows an epoch feeds, padding included, per row of the data."""
        n, size = len(self.batches.x), self.batches.batch_size
        full, last = divmod(n, size)
        return (full * self._padded(size) + (self._padded(last) if last else 0)) / n

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
        padded = self._padded(n)
        if padded > n:
            rows = np.concatenate([np.arange(n), np.arange(padded - n) % n])
            x, y = take(x, rows), take(y, rows)
            weight = np.concatenate([weight, np.full(padded - n, np.nan, weight.dtype)])
        mine = self._own_rows(padded)
        return take(x, mine), take(y, mine), weight[mine]

    def _own_rows(self, n):
        """The rows of a batch of ``n`` that this process's devices hold."""
        if self.spread.processes == 1:
            return slice(None)
        layout = self.spread.handle.get_data_layout((n,)).backend_layout
        held = {i[0].indices(n)[:2] for i in layout.addressable_devices_indices_map((n,)).values()}
        start, stop = min(a for a, _ in held), max(b for _, b in held)
        if sum(b - a for a, b in held) != stop - start:
            raise ValueError(
                "this process's devices hold rows of each batch that are not contiguous; "
                "list the distribution's devices process by process"
            )
        return slice(start, stop)


def train(net, batches, validation, spread, **fit_args):
    """``net.fit`` on ``batches`` (and ``validation``) under ``spread``; the history.

    Keras' ``loss`` log weighs each batch by its rows, padding included
    (``SpreadReduction.loss``): it is scaled back to the rows of the data.
    """
    fed = Fed(batches, spread)
    checked = None if validation is None else Fed(validation, spread)
    with _feeding(spread):
        history = net.fit(
            fed.dataset,
            steps_per_epoch=batches.steps_per_epoch,
            validation_data=None if checked is None else checked.dataset,
            **fit_args,
        ).history
    for name, feed in (("loss", fed), ("val_loss", checked)):
        if name in history:
            history[name] = [v * feed.padding_factor() for v in history[name]]
    return history


@contextlib.contextmanager
def _feeding(spread):
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
            spec = tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype))
            call = tf.function(lambda x: ref()(x, training=False), input_signature=[spec])
            _CALLS[model] = call
    return np.asarray(call(x))


# -- warm starts -------------------------------------------------------------------


def check_warm_start(network):
    """Refuse to go on training ``network`` under another distribution than its own.

    A network's variables are made for the distribution it was built under
    (mirrored in a strategy's scope, laid out over a JAX mesh), and Keras
    cannot train them under another one.
    """
    import keras

    # A shared frozen backbone (see _shared) only ever runs ahead of training.
    frozen = network.frozen if network.shared is None else None
    parts = (network.adapter, frozen, network.body, network.head, network.source_head)
    variables = [v for part in parts if part is not None for v in part.variables]
    spread = current()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        mirrored = any(isinstance(v.value, tf.distribute.DistributedValues) for v in variables)
        if spread is None:
            fits = not mirrored
        else:
            fits = all(
                spread.handle.extended.variable_created_in_scope(v.value) for v in variables
            )
    elif keras.backend.backend() == "jax" and spread is not None:
        # The mesh's JAX devices: Keras' own mesh may name them as strings.
        devices = set(np.ravel(spread.handle.device_mesh.backend_mesh.devices))
        fits = all(set(v.value.sharding.device_set) == devices for v in variables)
    else:
        fits = True
    if not fits:
        where = "on one device" if spread is None else "under a distribution"
        raise ValueError(
            f"warm_start=True goes on training the fitted network, whose variables belong "
            f"to the distribution (or the single device) it was built under, and this fit "
            f"runs {where}. Fit it again with warm_start=False, or go on under the "
            "distribution it was first fitted under"
        )

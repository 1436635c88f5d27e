"""Training without the per-fit overheads of Keras: traced functions are reused
across fits of one configuration, and no fit leaves graphs behind.

A grid search trains the same architecture again and again on small folds,
where building and tracing the training function costs more than training.
A fit of a configuration without an idle *worker* builds one: a second copy
of the network, traced and kept; every later fit copies its fresh initial
weights into the idle worker, restores the optimizer's initial state and
trains with the already traced functions. The spare copy costs a network
build, little next to the trace it saves, except for large networks: those
get a worker only from a configuration's second fit, so a single fit of a
large model pays for no spare copy. A worker's trained weights are copied
into the estimator's own network, so fitted estimators never share weights,
and the result is what a fresh fit gives.
"""

import contextlib
import re
import threading
import time
import weakref
from collections import OrderedDict

import numpy as np

_MAX_WORKERS = 8
_MAX_PARAMS = 5_000_000  # above this, a spare copy of the network costs too much memory
_SMALL_PARAMS = 1_000_000  # below this, a worker is built from a configuration's first fit
_TWIN_CALLS = 4  # predictions of a model served by its architecture's shared twin


class _Workers:
    """Idle traced networks by configuration; a checked-out one belongs to one fit."""

    def __init__(self):
        self._idle = OrderedDict()
        self._seen = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, key):
        """Whether ``key`` was fitted before (and remember that it now was)."""
        with self._lock:
            before = key in self._seen
            self._seen[key] = True
            self._seen.move_to_end(key)
            while len(self._seen) > 64:
                self._seen.popitem(last=False)
            return before

    def checkout(self, key):
        with self._lock:
            return self._idle.pop(key, None)

    def checkin(self, key, worker):
        with self._lock:
            self._idle[key] = worker
            self._idle.move_to_end(key)
            while len(self._idle) > _MAX_WORKERS:
                self._idle.popitem(last=False)

    def clear(self):
        with self._lock:
            self._idle.clear()
            self._seen.clear()


WORKERS = _Workers()


class Worker:
    """A compiled network with its optimizer and the optimizer's initial state."""

    def __init__(self, net, optimizer):
        self.net = net
        self.optimizer = optimizer
        optimizer.build(net.trainable_variables)
        self.initial = [np.array(v) for v in optimizer.variables]

    def reset(self, fresh, learning_rate):
        """Take the fresh network's initial values and a new optimizer state."""
        copy_variables(fresh, self.net)
        for variable, value in zip(self.optimizer.variables, self.initial, strict=True):
            variable.assign(value)
        self.optimizer.learning_rate = learning_rate


def copy_variables(source, target):
    """Assign every variable of ``source`` to its counterpart in ``target``."""
    for a, b in zip(source.variables, target.variables, strict=True):
        b.assign(a)


def compatible(a, b):
    """Whether two networks hold variables of the same shapes, in the same order."""
    va, vb = a.variables, b.variables
    return len(va) == len(vb) and all(x.shape == y.shape for x, y in zip(va, vb, strict=True))


def reusable(network):
    return network.model.count_params() <= _MAX_PARAMS


def keep_worker(key, network):
    """Whether this fit builds a worker: small networks at once, others when seen before."""
    seen = WORKERS.seen(key)
    return seen or network.model.count_params() <= _SMALL_PARAMS


@contextlib.contextmanager
def released_gradients():
    """Drop the gradient registrations that the enclosed training adds.

    TensorFlow registers a ``CustomGradient-*`` function for the optimizer's
    gradient all-reduce each time a training function is traced, in a
    process-wide registry that is never cleaned, so every traced graph stays
    alive (about 4 MiB per fit of a small model; tensorflow#97697,
    keras#20552). The registry is only read while tracing, so entries created
    here can go once training has finished. The registry is private, so this
    does nothing if it is not where it is expected.
    """
    registry = _gradient_registry()
    before = set(registry) if registry is not None else None
    try:
        yield
    finally:
        if registry is not None:
            for name in set(registry) - before:
                if name.startswith("CustomGradient-"):
                    registry.pop(name, None)


def _gradient_registry():
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return None
    return registry if isinstance(registry, dict) else None


def architecture_key(graph, network):
    """A key that is equal for networks that trace to the same functions."""
    import hashlib
    import json

    import keras

    def describe(layer):
        if isinstance(layer, keras.layers.InputLayer):  # auto-named, differs per build
            return ("InputLayer", tuple(layer.output.shape))
        return (
            type(layer).__name__,
            layer.name,
            layer.trainable,
            [w.shape for w in layer.weights],
        )

    config = json.dumps(graph.get_config(), sort_keys=True, default=str)
    parts = [config, network.adapter_kind, tuple(network.frozen_layers), network.teacher is None]
    for part in (network.adapter, network.body, network.head, network.source_head):
        parts.append(None if part is None else [describe(layer) for layer in part.layers])
    return hashlib.sha256(repr(parts).encode()).hexdigest()


class _Predictors:
    """Traced predict functions shared by the networks of one architecture.

    Keras traces a new predict function for every model it predicts with, so
    a search that scores a fresh ``model_`` per candidate and fold traces once
    per fit (about 25 ms for a small network) and TensorFlow warns about
    excessive retracing. Here each architecture gets one *twin* network,
    traced once; a prediction copies the model's weights into the twin under
    the twin's lock and runs the twin's traced function, the same graph as the
    model's own, so the values are the same. A model that keeps predicting
    (serving rather than scoring) switches to its own traced function after
    a few calls, which saves the copy; so does a model whose architecture
    cannot be cloned, and every model on backends other than TensorFlow.
    """

    def __init__(self, size=8):
        self._size = size
        self._twins = OrderedDict()  # architecture key -> (twin or None, lock)
        self._keys = weakref.WeakKeyDictionary()  # model -> architecture key
        self._calls = weakref.WeakKeyDictionary()  # model -> predictions so far
        self._lock = threading.Lock()

    def _hot(self, model):
        """Whether ``model`` predicted often enough to be worth its own trace."""
        with self._lock:
            calls = self._calls[model] = self._calls.get(model, 0) + 1
        return calls > _TWIN_CALLS

    def _twin(self, model):
        import hashlib
        import json

        from ._network import clone_model

        with self._lock:
            key = self._keys.get(model)
            if key is None:
                config = json.dumps(model.get_config(), sort_keys=True, default=str)
                # Initialiser seeds and generated tensor names differ between
                # builds of one architecture and change nothing at inference.
                config = re.sub(r'"seed": -?\d+', '"seed": 0', config)
                config = re.sub(r"(keras_tensor|input_layer)_\d+", r"\1", config)
                key = self._keys[model] = hashlib.sha256(config.encode()).hexdigest()
            entry = self._twins.get(key)
            if entry is None:
                try:
                    twin = clone_model(model)
                except Exception:  # custom layers that do not clone: no twin
                    twin = None
                entry = self._twins[key] = (twin, threading.Lock())
                while len(self._twins) > self._size:
                    self._twins.popitem(last=False)
            self._twins.move_to_end(key)
            return entry

    def predict(self, model, x):
        """``model.predict_on_batch(x)`` through the architecture's twin."""
        import keras

        if keras.backend.backend() != "tensorflow" or self._hot(model):
            # JAX may donate a twin's buffers, which assign() shares with the model.
            return np.asarray(model.predict_on_batch(x))
        twin, lock = self._twin(model)
        if twin is None or not compatible(twin, model):
            return np.asarray(model.predict_on_batch(x))
        with lock:
            copy_variables(model, twin)
            return np.asarray(twin.predict_on_batch(x))


PREDICTORS = _Predictors()


# -- one traced call per fit ------------------------------------------------------

_LOOP_BYTES = 256 * 2**20  # above this, the data is fed batch by batch instead
_FIRST_CHUNK_STEPS = 64  # training steps in the first call of a fit
_CHUNK_SECONDS = 0.5  # aimed duration of each later call


def train_epochs(net, batches):
    """Train ``net`` for ``batches``' epochs in a traced loop over all the data.

    Keras' ``fit`` costs a few milliseconds per epoch and per fit around the
    training itself (a ``tf.data`` pipeline that calls back into Python for
    every batch, callbacks, logs), more than the training of a small head on
    a few hundred rows. Here the whole data goes to TensorFlow once, with
    each epoch's row order (drawn exactly as ``Batches`` draws it), and a
    traced loop runs the epochs' steps through the model's own
    ``train_step`` (all of a small fit's epochs in one or two calls): the
    same updates, in the same order, on the same values, as ``fit`` on
    ``batches``. Returns the per-epoch logs as ``fit``'s
    history would hold them, or None where this does not apply (another
    backend, source rows streamed alongside, unordered or too large data, a
    Keras without the expected internals); the caller then uses ``fit``.

    The traced loop is kept on the network, so a worker (see ``Workers``)
    traces it once for all its fits.
    """
    import keras

    if keras.backend.backend() != "tensorflow" or batches.source is not None:
        return None
    if batches.seed is None or not hasattr(net, "_maybe_symbolic_build"):
        return None
    tuple_targets = isinstance(batches.y, tuple)
    targets = batches.y if tuple_targets else (batches.y,)
    flat = (batches.x, *targets, batches.sample_weight)
    if not all(isinstance(a, np.ndarray) for a in flat):
        return None
    if sum(a.nbytes for a in flat) > _LOOP_BYTES:
        return None
    import tensorflow as tf

    n = len(batches.x)
    epochs = range(batches.first_epoch, batches.first_epoch + batches.epochs)
    order = np.stack([batches._permutation(n, "target", e) for e in epochs]).astype(np.int32)
    first = order[0, : batches.batch_size]
    nested = _nest(flat, tuple_targets)
    net._maybe_symbolic_build(data_batch=tuple(_rows(a, first) for a in nested))
    signature = (
        batches.batch_size,
        tuple_targets,
        tuple((a.shape[1:], a.dtype.str) for a in flat),
    )
    # A loop is traced for one optimizer and one set of trainable variables:
    # compiling again (a new training phase) makes a new one.
    loops = net.__dict__.get("_sktransfer_loops")
    if loops is None or loops[0] is not net.optimizer:
        loops = net.__dict__["_sktransfer_loops"] = (net.optimizer, {})
    if signature not in loops[1]:
        loops[1][signature] = _traced_loop(net, batches.batch_size, flat, tuple_targets)
    loop, names = loops[1][signature]
    tensors = [tf.convert_to_tensor(a) for a in flat]
    values, done = [], 0
    # Epochs run in chunks that each take well under a second, timed on the
    # first: Python sees Ctrl-C only between calls into TensorFlow, so a long
    # fit stays interruptible. Chunks change nothing in the result.
    chunk = max(1, _FIRST_CHUNK_STEPS // batches.steps_per_epoch)
    while done < len(order):
        stop = min(len(order), done + chunk)
        start = time.perf_counter()
        values.append(np.asarray(loop(*tensors, tf.convert_to_tensor(order[done:stop]))))
        elapsed = max(time.perf_counter() - start, 1e-6)
        chunk = max(1, int((stop - done) * _CHUNK_SECONDS / elapsed))
        done = stop
    values = np.concatenate(values).astype(np.float64)
    return {name: values[:, i].tolist() for i, name in enumerate(names)}


def _nest(flat, tuple_targets):
    """``(x, y, sample_weight)`` from the flat arrays of ``train_epochs``."""
    x, *targets, weight = flat
    return x, (tuple(targets) if tuple_targets else targets[0]), weight


def _rows(part, rows):
    if isinstance(part, tuple):
        return tuple(p[rows] for p in part)
    return part[rows]


def _traced_loop(net, batch_size, flat, tuple_targets):
    """A traced function running all epochs; returns it and its log names."""
    import tensorflow as tf

    names = []
    specs = [tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in flat]
    specs.append(tf.TensorSpec((None, None), tf.int32))

    def loop(*args):
        *arrays, order = args
        x, y, weight = _nest(arrays, tuple_targets)
        n_epochs, n = tf.shape(order)[0], tf.shape(order)[1]
        steps = (n + batch_size - 1) // batch_size

        def epoch(e, logs):
            net.reset_metrics()
            rows_of_epoch = order[e]

            def step(s):
                rows = rows_of_epoch[s * batch_size : tf.minimum((s + 1) * batch_size, n)]
                net.train_step(
                    (
                        tf.gather(x, rows),
                        tf.nest.map_structure(lambda t: tf.gather(t, rows), y),
                        tf.gather(weight, rows),
                    )
                )
                return (s + 1,)

            tf.while_loop(lambda s: s < steps, step, (tf.constant(0),))
            result = net.get_metrics_result()
            names[:] = list(result)
            values = tf.stack([tf.cast(v, tf.float64) for v in result.values()])
            return e + 1, logs.write(e, values)

        logs = tf.TensorArray(tf.float64, size=n_epochs)
        _, logs = tf.while_loop(lambda e, _: e < n_epochs, epoch, (tf.constant(0), logs))
        return logs.stack()

    traced = tf.function(loop, input_signature=specs, autograph=False)
    traced.get_concrete_function()  # trace now, so that the log names are known
    return traced, names

"""Training a transfer network: the phases of a fit, and one traced call per fit.

``train_phases`` runs a fit's phases (the head warm-up, then fine-tuning)
with the settings of the estimator. Each phase trains through
``train_epochs``, a traced loop over all its epochs, where that applies, and
through Keras' own ``fit`` otherwise (callbacks, validation data, progress
bars, source rows streamed alongside, other backends). On JAX, ``fit`` runs
XLA-compiled training steps (``jit_compiled``).
"""

import contextlib
import copy
import functools
import threading
import time
import warnings
import weakref
from dataclasses import dataclass

import numpy as np

from ._batches import take

AUTO_STEPS = 1000  # optimizer steps of epochs="auto"


def resolve_epochs(epochs, steps_per_epoch):
    """The number of epochs of a fit: ``epochs``, or for ``"auto"`` as many as
    make ``AUTO_STEPS`` optimizer steps (at least one)."""
    if epochs == "auto":
        return max(1, -(-AUTO_STEPS // steps_per_epoch))
    return epochs


@dataclass(frozen=True)
class Training:
    """The estimator parameters that decide how a network trains."""

    optimizer: str
    learning_rate: float
    source_lr_scale: float
    epochs: int
    early_stopping: bool
    n_iter_no_change: int
    callbacks: tuple
    verbose: int

    @classmethod
    def of(cls, estimator, steps_per_epoch):
        return cls(
            optimizer=estimator.optimizer,
            learning_rate=float(estimator.learning_rate),
            source_lr_scale=estimator.source_lr_scale,
            epochs=resolve_epochs(estimator.epochs, steps_per_epoch),
            early_stopping=estimator.early_stopping,
            n_iter_no_change=estimator.n_iter_no_change,
            callbacks=tuple(estimator.callbacks or ()),
            verbose=estimator.verbose,
        )

    def trace_key(self):
        """The settings baked into a traced training function."""
        return (self.optimizer, self.source_lr_scale, self.early_stopping, self.n_iter_no_change)


@functools.cache
def optimizer_class(name):
    """The Keras optimizer class named ``name``; a clear error for a bad name.

    Kept per name: finding the class builds an optimizer, whose variables
    get a new automatic name each time, and TensorFlow keeps native memory
    for every variable name it has seen (about 35 KiB each).
    """
    import keras

    try:
        optimizer = keras.optimizers.get(name)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError
        # The class, to build with its defaults and our learning rate: reading
        # an instance's config back converts its variables with np.array,
        # which warns under NumPy 2 on the JAX backend.
        return type(optimizer)
    except (ValueError, TypeError, KeyError):
        raise ValueError(
            f"optimizer={name!r} is not a Keras optimizer name; use e.g. 'adam', 'sgd', "
            "'rmsprop' or 'adamw'"
        ) from None


def transferred_parts(net):
    """The parts of a training network that hold transferred layers."""
    return [part for part in (net.body, net.source_head) if part is not None]


def make_optimizer(settings, net):
    """The optimizer of a fit, with the transferred layers' updates scaled."""
    from ._objective import scaled_optimizer

    transferred = [v for part in transferred_parts(net) for v in part.trainable_weights]
    cls = scaled_optimizer(
        optimizer_class(settings.optimizer), transferred, settings.source_lr_scale
    )
    # A fixed name: automatic ones differ per optimizer (see optimizer_class).
    return cls(learning_rate=settings.learning_rate, name="sktransfer_optimizer")


def steps_per_execution(settings, batches):
    """Training steps per call into the traced function: a whole epoch.

    Running an epoch's steps in one graph loop removes Keras' per-step
    dispatch, most of a step's cost on small networks, and computes the
    same updates in the same order. User callbacks keep one step per
    call, so their batch hooks see every batch; so do fits under a
    ``tf.distribute`` strategy (see ``_distribution.steps_per_execution``).
    """
    from ._distribution import steps_per_execution as spread_steps

    return spread_steps(1 if settings.callbacks else batches.steps_per_epoch)


def jit_compiled():
    """Whether training steps are compiled with XLA on this Keras backend.

    On JAX, yes: uncompiled, Keras runs every training step op by op (the
    20-epoch fit of benchmark row 1j took 5.7 s instead of 72 ms); XLA's
    fused step rounds differently in float32 (outputs moved by at most
    2.4e-7).
    On TensorFlow, no: the steps run as traced graphs already, and XLA
    would change the numbers of every fit recorded so far.
    """
    import keras

    return keras.backend.backend() == "jax"


def compile_net(net, settings, batches, optimizer=None):
    """Compile ``net`` for ``batches`` (with a new optimizer unless one is given)."""
    net.compile(
        optimizer=optimizer if optimizer is not None else make_optimizer(settings, net),
        jit_compile=jit_compiled(),
        steps_per_execution=steps_per_execution(settings, batches),
    )


def _phase_callbacks(settings, callbacks, warmup_phase):
    import keras

    phase = list(callbacks)
    if settings.early_stopping and not warmup_phase:
        phase.append(
            keras.callbacks.EarlyStopping(
                monitor="val_target_loss",
                mode="min",
                patience=settings.n_iter_no_change,
                restore_best_weights=True,
            )
        )
    return phase


def _run_phase(net, settings, batches, validation, start, stop, callbacks):
    """Train epochs ``start`` to ``stop``; the per-epoch logs."""
    from . import _distribution

    batches.first_epoch, batches.epochs = start, stop - start
    if not (callbacks or validation is not None or settings.verbose):
        logs = train_epochs(net, batches)
        if logs is not None:
            return logs
    fit_args = dict(
        initial_epoch=start,
        epochs=stop,
        shuffle=False,  # Batches shuffles with its own seeded generator
        callbacks=callbacks,
        verbose=settings.verbose,
    )
    spread = _distribution.current()
    if spread is not None:
        return _distribution.train(net, batches, validation, spread, **fit_args)
    return net.fit(
        batches, steps_per_epoch=batches.steps_per_epoch, validation_data=validation, **fit_args
    ).history


def train_phases(net, settings, *, batches, validation, warmup, compiled=False):
    """Run a fit's phases (head warm-up, then fine-tuning); the history.

    During the warm-up every transferred layer is frozen. ``compiled`` says
    that ``net`` is a worker, compiled once for fits without a warm-up.
    """
    from ._callbacks import user_callbacks

    transferred = [layer for part in transferred_parts(net) for layer in part.layers]
    trainable = {id(layer): layer.trainable for layer in transferred}
    callbacks = [copy.deepcopy(cb) for cb in settings.callbacks]
    history = {}
    for start, stop in ((0, warmup), (warmup, settings.epochs)):
        if stop <= start:
            continue
        warmup_phase = stop == warmup
        if not compiled:
            for layer in transferred:
                layer.trainable = trainable[id(layer)] and not warmup_phase
            compile_net(net, settings, batches)
        phase = _phase_callbacks(settings, user_callbacks(callbacks, net), warmup_phase)
        logs = _run_phase(net, settings, batches, validation, start, stop, phase)
        for key, values in logs.items():
            history.setdefault(key, []).extend(float(v) for v in values)
    for layer in transferred:
        layer.trainable = trainable[id(layer)]
    return history


def _flattened(losses):
    """Whether a training-loss curve of four epochs or more has flattened by its end.

    Over the last tenth of the epochs (at least two) the loss must have
    fallen by at most 10% of what it fell since the first epoch, or by at
    most 0.1% of its value (a curve that hardly moved at all, as when a
    probe head starts at the optimum).
    """
    window = max(2, len(losses) // 10)
    last = float(np.mean(losses[-window:]))
    before = float(np.mean(losses[-2 * window : -window]))
    tolerance = max(0.1 * (losses[0] - last), 1e-3 * abs(last))
    return before - last <= tolerance


def _converged(losses, steps_per_epoch):
    """Whether a fit's loss curve says it converged.

    A curve of fewer than four epochs is too short to read: it counts as
    converged when it made at least the optimizer steps of ``epochs="auto"``
    (one epoch of a large data set), and as under-trained otherwise.
    """
    if len(losses) < 4:
        return len(losses) * steps_per_epoch >= AUTO_STEPS
    return _flattened(losses)


def warn_if_unconverged(history, settings, steps_per_epoch, name):
    """A ConvergenceWarning when the budget ran out with the loss still falling steeply.

    The message names no loss values, so that Python's warning filters show it
    once per configuration, not once per fit of a search.
    """
    from sklearn.exceptions import ConvergenceWarning

    losses = history.get("loss", [])
    stopped_early = settings.early_stopping and len(losses) < settings.epochs
    if not losses or stopped_early or _converged(losses, steps_per_epoch):
        return
    warnings.warn(
        f"{name}: the training loss was still falling after {len(losses)} epochs "
        f"({len(losses) * steps_per_epoch} optimizer steps; see history_['loss']): the "
        "network may be under-trained. Raise epochs or learning_rate (epochs='auto' sizes "
        "the training to the data).",
        ConvergenceWarning,
        stacklevel=6,  # the user's call of fit
    )


@contextlib.contextmanager
def released_gradients():
    """Drop the gradient registrations that the enclosed training adds.

    TensorFlow registers a ``CustomGradient-*`` function for the optimizer's
    gradient all-reduce each time a training function is traced, in a
    process-wide registry that is never cleaned, so every traced graph stays
    alive (about 4 MiB per fit of a small model; tensorflow#97697,
    keras#20552). The registry is only read while tracing, so entries created
    here can go once training has finished.
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

    from ._compat import gradient_registry

    return gradient_registry() if keras.backend.backend() == "tensorflow" else None


# -- one traced call per fit ------------------------------------------------------

_LOOP_BYTES = 256 * 2**20  # above this, the data is fed batch by batch instead
_FIRST_CHUNK_STEPS = 64  # training steps in the first call of a fit
_CHUNK_SECONDS = 0.5  # aimed duration of each later call
_LOOPS = weakref.WeakKeyDictionary()  # network -> (its optimizer, {signature: loop})
_LOOPS_LOCK = threading.Lock()


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
    backend, a ``tf.distribute`` strategy, source rows streamed alongside,
    unordered or too large data, a Keras without the expected internals);
    the caller then uses ``fit``. (Under a strategy each step must run on
    every replica's share of the batch through ``strategy.run``, and
    TensorFlow 2.21 cannot run that inside a traced loop: see
    ``_distribution.steps_per_execution``.)

    The traced loop is kept with the network, so a worker (see ``_reuse``)
    traces it once for all its fits.
    """
    import keras

    from ._distribution import current

    if keras.backend.backend() != "tensorflow" or batches.source is not None:
        return None
    if batches.seed is None or current() is not None:
        return None
    tuple_targets = isinstance(batches.y, tuple)
    targets = batches.y if tuple_targets else (batches.y,)
    flat = (batches.x, *targets, batches.sample_weight)
    if not all(isinstance(a, np.ndarray) for a in flat):
        return None
    if sum(a.nbytes for a in flat) > _LOOP_BYTES:
        return None
    import tensorflow as tf

    from ._compat import symbolic_build

    n = len(batches.x)
    epochs = range(batches.first_epoch, batches.first_epoch + batches.epochs)
    order = np.stack([batches.permutation(n, "target", e) for e in epochs]).astype(np.int32)
    first = order[0, : batches.batch_size]
    if not symbolic_build(net, tuple(take(a, first) for a in _nest(flat, tuple_targets))):
        return None
    signature = (
        batches.batch_size,
        tuple_targets,
        tuple((a.shape[1:], a.dtype.str) for a in flat),
    )
    # A loop is traced for one optimizer and one set of trainable variables:
    # compiling again (a new training phase) makes a new one.
    loop, names = _loop_for(net, signature, batches.batch_size, flat, tuple_targets)
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


def _loop_for(net, signature, batch_size, flat, tuple_targets):
    """The traced loop of ``net`` for ``signature``, traced on first use.

    A loop is traced for one optimizer and one set of trainable variables:
    compiling again (a new training phase) makes a new one. Loops live as
    long as their network (a worker keeps its loops for all its fits).
    """
    with _LOOPS_LOCK:
        optimizer, loops = _LOOPS.get(net, (None, None))
        if optimizer is not net.optimizer:
            loops = {}
            _LOOPS[net] = (net.optimizer, loops)
    if signature not in loops:
        loops[signature] = _traced_loop(net, batch_size, flat, tuple_targets)
    return loops[signature]


def _traced_loop(net, batch_size, flat, tuple_targets):
    """A traced function running all epochs; returns it and its log names.

    The function refers to ``net`` weakly (its graph captures the variables,
    not the network), so that ``_LOOPS`` never keeps a network alive.
    """
    import tensorflow as tf

    net_ref = weakref.ref(net)
    names = []
    specs = [tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in flat]
    specs.append(tf.TensorSpec((None, None), tf.int32))

    def loop(*args):
        net = net_ref()
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

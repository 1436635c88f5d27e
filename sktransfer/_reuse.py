"""Reusing traced networks across fits of one configuration.

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

The process-wide registries here and in ``_prediction`` are bounded, locked,
and emptied by :func:`clear_caches`.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass

_MAX_WORKERS = 8
_MAX_SEEN = 64
_MAX_PARAMS = 5_000_000  # above this, a spare copy of the network costs too much memory
_SMALL_PARAMS = 1_000_000  # below this, a worker is built from a configuration's first fit
_REGISTRIES = []


class Registry:
    """A process-wide mapping with a size bound, a lock and a way to empty it.

    The least recently used entries go first when it is full.
    """

    def __init__(self, size):
        self._size = size
        self._entries = OrderedDict()
        self.lock = threading.Lock()
        _REGISTRIES.append(self)

    def get(self, key, default=None):
        with self.lock:
            if key in self._entries:
                self._entries.move_to_end(key)
            return self._entries.get(key, default)

    def put(self, key, value):
        with self.lock:
            self._put(key, value)

    def _put(self, key, value):
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def setdefault(self, key, make):
        """The entry of ``key``, made by ``make()`` under the lock if there is none."""
        with self.lock:
            if key not in self._entries:
                self._put(key, make())
            self._entries.move_to_end(key)
            return self._entries[key]

    def pop(self, key):
        with self.lock:
            return self._entries.pop(key, None)

    def __len__(self):
        return len(self._entries)

    def clear(self):
        with self.lock:
            self._entries.clear()


def clear_caches():
    """Forget every traced network that sktransfer keeps between fits.

    sktransfer keeps a few traced training networks (one per configuration
    recently fitted, at most 8), traced predict functions (one per
    architecture recently used, at most 8) and traced copies of frozen
    bodies (at most 4), so that the fits and predictions of a search do not
    trace their functions again. They hold memory, about two copies of each
    network; call this to release it.
    Results never depend on these caches: a fit after this call gives
    exactly what it would have given before.

    Examples
    --------
    >>> from sktransfer import clear_caches
    >>> clear_caches()
    """
    for registry in _REGISTRIES:
        registry.clear()


IDLE = Registry(_MAX_WORKERS)  # configuration -> idle Worker
SEEN = Registry(_MAX_SEEN)  # configurations fitted before


@dataclass(frozen=True)
class WorkerKey:
    """What makes two fits trace to the same training functions."""

    architecture: str  # fingerprint of the network's parts, trainable flags included
    training: tuple  # the training settings baked into the trace
    task: str
    term: str
    term_key: tuple  # what else the term bakes in (label kind of joint source data)
    prefix_cached: bool
    batch_size: int
    steps_per_execution: int


class Worker:
    """A compiled network with its optimizer and the optimizer's initial state."""

    def __init__(self, net, optimizer):
        self.net = net
        self.optimizer = optimizer
        optimizer.build(net.trainable_variables)
        # variable.numpy(): np.array(variable) warns under NumPy 2 (no copy keyword).
        self.initial = [v.numpy() for v in optimizer.variables]

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
    """Whether a spare traced copy of ``network`` is worth its memory."""
    return network.count_params() <= _MAX_PARAMS


def _keep_worker(key, network):
    """Whether this fit builds a worker: small networks at once, others when seen before."""
    seen = SEEN.get(key, False)
    SEEN.put(key, True)
    return seen or network.count_params() <= _SMALL_PARAMS


def _worker_for(net, settings, key, make_twin, batches):
    """An idle worker of configuration ``key`` holding ``net``'s initial state, or None."""
    from ._trainer import compile_net, make_optimizer

    worker = IDLE.pop(key)
    if worker is not None and compatible(worker.net, net):
        worker.reset(net, settings.learning_rate)
        return worker
    if not _keep_worker(key, net.network):
        return None
    twin = make_twin()
    copy_variables(net, twin)
    optimizer = make_optimizer(settings, twin)
    compile_net(twin, settings, batches, optimizer)
    return Worker(twin, optimizer)


def train_reusing(net, settings, key, make_twin, **phases):
    """Train ``net`` as ``train_phases`` does, on a traced worker where one applies.

    ``key`` is the configuration's ``WorkerKey``, or None for a fit that
    trains its own network (a warm start, a head warm-up, a large network);
    ``make_twin`` builds a fresh training network of the configuration.
    A worker serves the fits of one distribution (or of one device): its
    variables were made for it.
    """
    from ._distribution import key as distribution_key
    from ._trainer import train_phases

    if key is not None:
        key = (key, distribution_key())
    worker = None if key is None else _worker_for(net, settings, key, make_twin, phases["batches"])
    if worker is None:
        return train_phases(net, settings, **phases)
    history = train_phases(worker.net, settings, compiled=True, **phases)
    copy_variables(worker.net, net)
    IDLE.put(key, worker)
    return history

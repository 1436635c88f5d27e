"""Planning and running one fit: from validated, encoded arrays to a trained network.

``run_fit`` is the whole path of the data through a fit, step by step: the
source is resolved and cut into a network, the frozen prefix runs once over
X, the source-knowledge term computes its targets, the rows become
mini-batches, and the network trains (on a traced worker where one
applies).
"""

import contextlib
import functools
import os
from dataclasses import dataclass

import numpy as np

_VALIDATION_BATCH = 4096  # validation rows per step: one step for most data sets


@dataclass(frozen=True)
class Task:
    """The target task as the network sees it."""

    kind: str  # "binary", "multiclass" or "regression"
    n_outputs: int
    activation: str  # of the output layer


@dataclass
class Fitted:
    """What one fit produced."""

    network: object
    history: dict


def run_fit(est, X, y, sample_weight, task, source_data=None):
    """Train the target network of ``est`` on validated, encoded data."""
    from sklearn.utils.validation import check_memory

    from ._distribution import check_warm_start
    from ._network import functional_graph
    from ._objective import TransferNet
    from ._seeds import fit_seeds
    from ._shared import flattened
    from ._source import resolve_source
    from ._source_terms import PLAIN, SOURCE_TERMS, Context

    SOURCE_TERMS[est.source_loss].check_fit(source_data)
    term = SOURCE_TERMS[est.source_loss] if est.alpha > 0 else PLAIN
    memory = check_memory(est.memory)
    seeds = fit_seeds(est.random_state)
    source = resolve_source(est.source)
    with naming_path(est.source):
        source = flattened(source)
        graph = functional_graph(source)
        _check_numeric_input(graph)
    build = functools.partial(_build, est, source, X.shape[1:], task, seeds["init"], term, memory)
    network, warm = _network(est, build, X)
    if warm:
        check_warm_start(network)
    prefix = frozen_prefix(network, X, memory, enabled=est._cache_prefix)
    fresh = est.pretrained and not warm
    context = Context(network, graph, X, y, source_data, memory, prefix, fresh)
    prepared = term.prepare(context)
    inputs, source_rows = _inputs(network, X, prefix, prepared.source_rows, memory)
    net_args = dict(task=task.kind, alpha=est.alpha, prepared=prepared)
    net_args["prefix_cached"] = prefix is not None
    net = TransferNet(network, **net_args)
    batches, validation = _batches(
        est, inputs, prepared.targets, sample_weight, y, seeds, source_rows
    )
    if est.head_init == "probe" and not warm:
        if _probe(network, batches, prefix is not None, task, seeds["init"], memory):
            return Fitted(network, {"loss": [], "target_loss": [], "source_loss": []})

    def make_twin():
        return TransferNet(build(), **net_args)

    history = _train(est, net, task, prepared, batches, validation, warm, make_twin)
    return Fitted(network, history)


def _probe(network, batches, prefix_cached, task, seed, memory):
    """Start the head from the exact linear probe; whether that is the whole fit."""
    from ._probe import probe_head, probe_only

    y = batches.y[0] if isinstance(batches.y, tuple) else batches.y
    weight = batches.sample_weight
    probe_head(network, batches.x, prefix_cached, y, weight, task.kind, seed, memory)
    return probe_only(network)


@contextlib.contextmanager
def naming_path(source):
    """Prefix errors about a source loaded from a file with its path."""
    try:
        yield
    except ValueError as exc:
        if isinstance(source, (str, os.PathLike)):
            raise ValueError(f"source {os.fspath(source)!r}: {exc}") from None
        raise


def _check_numeric_input(graph):
    """Refuse a source whose input is not numeric: X reaches it as float32 numbers."""
    dtype = str(graph.input.dtype)
    if not any(kind in dtype for kind in ("float", "int")):
        raise ValueError(
            f"the source takes inputs of dtype {dtype!r}; sktransfer feeds it numeric X "
            "(float32). Put the source's preprocessing (a StringLookup, a TextVectorization) "
            "in front of the estimator instead, and give it a source that starts at the "
            "numbers that preprocessing produces"
        )


def _build(est, source, sample_shape, task, seed, term, memory):
    from ._network import build_network
    from ._shared import shared_network

    with naming_path(est.source):
        network = shared_network(est, source, sample_shape, task, seed, term, memory)
        if network is not None:
            return network
        return build_network(
            source,
            sample_shape=sample_shape,
            n_outputs=task.n_outputs,
            output_activation=task.activation,
            cut=est.cut,
            freeze=est.freeze,
            head=est.head,
            input_adapter=est.input_adapter,
            pretrained=est.pretrained,
            seed=seed,
            term=term,
            preprocess=est.preprocess,
            batchnorm=est.batchnorm,
        )


def _network(est, build, X):
    """The network to train and whether it warm-starts from the fitted one."""
    from ._network import ADAPTER, BODY, FROZEN, HEAD, parts_of
    from ._validation import describe_samples

    if not (est.warm_start and hasattr(est, "model_")):
        return build(), False
    if tuple(est.model_.input_shape[1:]) != X.shape[1:]:
        raise ValueError(
            f"warm_start=True, but X has {describe_samples(X.shape[1:])} and the fitted "
            f"network takes {describe_samples(est.model_.input_shape[1:])}"
        )
    if getattr(est, "_network", None) is not None:
        return est._network, True
    # After unpickling only model_ is left: train its parts again.
    network = build()
    parts = parts_of(est.model_)
    network.model = est.model_
    network.adapter, network.frozen = parts[ADAPTER], parts[FROZEN]
    network.body, network.head = parts[BODY], parts[HEAD]
    return network, True


def frozen_prefix(network, X, memory, enabled=True):
    """Outputs of the frozen prefix on ``X``, computed once, or None if unsafe.

    Precomputing is safe when nothing trainable comes before the frozen
    layers (no dense input adapter) and they compute a deterministic
    function in inference mode: Keras' own layers do (Dropout, noise and
    augmentation layers pass inputs through unchanged in inference mode);
    with other layers, this is checked on a few rows.
    """
    from ._cache import activations, keras_layers_only

    if network.frozen is None or network.adapter_kind == "dense" or not enabled:
        return None
    models = [m for m in (network.adapter, network.frozen) if m is not None]
    if not keras_layers_only(models):
        probe = X[: min(len(X), 64)]
        first = activations(None, models, probe)
        if not np.array_equal(first, activations(None, models, probe)):
            return None
    keys = None if network.shared is None else network.shared.keys
    return activations(memory, models, X, keys=keys)


def _inputs(network, X, prefix, source_rows, memory):
    """What the network trains on: X, or the frozen prefix's outputs (source rows too)."""
    from ._cache import activations

    if prefix is None:
        return X, source_rows
    if source_rows is not None:
        x_source, y_source = source_rows
        source_rows = (activations(memory, [network.frozen], x_source), y_source)
    return prefix, source_rows


def _validation_split(rows, y, fraction, stratify, seed):
    from sklearn.model_selection import train_test_split

    n_val = int(np.ceil(fraction * len(rows)))
    if len(rows) < 2 or n_val >= len(rows):
        raise ValueError(
            f"early_stopping=True needs more training samples: {len(rows)} "
            f"samples leave none to train on with validation_fraction={fraction}"
        )
    try:
        return train_test_split(
            rows, test_size=n_val, random_state=seed, stratify=y if stratify else None
        )
    except ValueError:  # a class too rare to stratify
        return train_test_split(rows, test_size=n_val, random_state=seed)


def _batches(est, inputs, targets, sample_weight, y, seeds, source_rows):
    """Training batches, and validation batches under early stopping."""
    from ._batches import Batches, take

    rows = np.arange(len(inputs))
    validation = None
    if est.early_stopping:
        stratify = getattr(est, "_stratify", False)
        rows, held = _validation_split(rows, y, est.validation_fraction, stratify, seeds["split"])
        validation = Batches(
            inputs[held],
            take(targets, held),
            sample_weight[held],
            _VALIDATION_BATCH,
            source=source_rows,
        )
    batch_size = min(est.batch_size, len(rows))
    batches = Batches(
        inputs[rows],
        take(targets, rows),
        sample_weight[rows],
        batch_size,
        seed=seeds["shuffle"],
        source=source_rows,
    )
    return batches, validation


@contextlib.contextmanager
def _restored_on_interrupt(net, snapshot):
    """Put ``net`` back to ``snapshot`` if training stops with an exception.

    A warm-started fit trains the fitted network in place; when it is
    interrupted (KeyboardInterrupt included) the estimator keeps the network
    it had before the call.
    """
    try:
        yield
    except BaseException:
        if snapshot is not None:
            for variable, value in zip(net.variables, snapshot, strict=True):
                variable.assign(value)
        raise


def _train(est, net, task, prepared, batches, validation, warm, make_twin):
    """Train ``net`` through its phases; the history."""
    from ._fingerprint import fingerprint
    from ._reuse import WorkerKey, reusable, train_reusing
    from ._trainer import Training, released_gradients, steps_per_execution, warn_if_unconverged

    settings = Training.of(est, batches.steps_per_epoch)
    warmup = 0 if warm else min(est.head_warmup, settings.epochs)
    key = None
    if not (warm or warmup) and reusable(net.network):
        key = WorkerKey(
            architecture=fingerprint(net.parts(), weights=False, trainable=True),
            training=settings.trace_key(),
            task=task.kind,
            term=prepared.term.name,
            term_key=prepared.trace_key,
            prefix_cached=net.prefix_cached,
            batch_size=batches.batch_size,
            steps_per_execution=steps_per_execution(settings, batches),
        )
    snapshot = [v.numpy() for v in net.variables] if warm else None
    with released_gradients(), _restored_on_interrupt(net, snapshot):
        history = train_reusing(
            net, settings, key, make_twin, batches=batches, validation=validation, warmup=warmup
        )
        _check_finite(history, settings, type(est).__name__)
    warn_if_unconverged(history, settings, batches.steps_per_epoch, type(est).__name__)
    return history


def _check_finite(history, settings, name):
    """Refuse a fit whose loss became NaN or infinite (the estimator stays as it was)."""
    losses = np.asarray(history.get("loss", []), dtype=float)
    bad = np.flatnonzero(~np.isfinite(losses))
    if len(bad):
        raise ValueError(
            f"{name}: training diverged: the loss became {losses[bad[0]]} in epoch "
            f"{bad[0] + 1} of {len(losses)}. The learning rate is the likely cause "
            f"(learning_rate={settings.learning_rate} with optimizer={settings.optimizer!r}): "
            "lower it. Inputs far off the scale the source was trained on can cause this "
            "too. The estimator keeps no result of this fit."
        )

"""scikit-learn estimators that transfer a Keras source model to a new task."""

import contextlib
import copy
import functools
import numbers
import os

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._seeds import fit_seeds
from ._source import clone_sharing_source

_FLOATS = (np.float64, np.float32)
_SOURCE_LOSSES = ("distill", "l2sp", "joint")
_ADAPTERS = ("auto", "reshape", "dense", None)
_PREDICT_BATCH = 4096
_PRIVATE_FITTED = ("_network", "_predictor", "_y_mean", "_y_scale", "_y_ndim")

_PARAMETERS_DOC = """
    Parameters
    ----------
    source : keras.Model, str, path-like or callable, default=None
        The source model: a Sequential or functional ``keras.Model``, a path to
        a ``.keras`` file (loaded in Keras' safe mode), a fitted scikit-learn
        wrapper of a Keras model (scikeras or ``keras.wrappers``), or a
        zero-argument callable returning a model. It is never modified: fit
        works on a copy, and ``clone`` shares it instead of copying it.
        Required: ``None`` raises an error in ``fit``.

    freeze : int or "all", default=0
        Freeze depth. The first ``freeze`` layers of the source body that hold
        weights, counted from the input, are frozen together with every layer
        before them. Negative values count from the top (``-1`` freezes every
        weighted body layer but the last); ``"all"`` freezes the whole body
        (pure feature extraction). Frozen layers, BatchNorm and Dropout
        included, run in inference mode.

    alpha : float in [0, 1), default=0.0
        Weight of the source-knowledge term in
        ``L = (1 - alpha) * L_target + alpha * L_source``. ``alpha=0`` is plain
        fine-tuning.

    source_loss : {"distill", "l2sp", "joint"}, default="distill"
        The source-knowledge term ``L_source``:

        - ``"distill"`` (Learning without Forgetting): the source's own output
          layers stay on the body as a second head, and their outputs ``s(x)``
          on each training batch are pulled towards the untouched source
          model's outputs ``t(x)``. For a softmax source output,
          ``L_source = mean_i KL(t(x_i) || s(x_i))``; for a sigmoid output, the
          Bernoulli KL averaged over units; otherwise
          ``L_source = mean_i mean_k (s_k(x_i) - t_k(x_i))**2 / v``, where
          ``v`` is the variance of the teacher outputs on the training data.
        - ``"l2sp"`` (L2-SP): ``L_source = ||w - w_0||**2 / ||w_0||**2``,
          summed over the trainable transferred weights ``w`` with their
          source values ``w_0``: the squared relative distance from the source.

        - ``"joint"``: the source task's own loss on source data, passed to
          ``fit`` as ``source_data=SourceData(X_source, y_source)``. Each
          training step draws a batch of source data and computes, through
          the source head, cross-entropy for a softmax source (integer labels
          or one-hot rows), binary cross-entropy for a sigmoid source, and
          otherwise ``mean((s(x) - y)**2) / var(y_source)``.

        All three terms are dimensionless and zero (or minimal) at the
        source, so sweeping ``alpha`` over [0, 1) goes from no constraint to
        a dominant one.

    cut : int, str or None, default=None
        Last layer of the source body, as an index into the source's layers
        (input layers not counted; negative counts from the end) or a layer
        name. ``None`` means ``-2``: everything but the output layer.

    head : None, int or tuple of int, default=None
        The new target head. ``None`` is a single output layer (softmax for
        multiclass, sigmoid for binary, linear for regression); an int or a
        tuple of ints adds hidden ReLU Dense layers of those sizes first.

    input_adapter : {"auto", "reshape", "dense"} or None, default="auto"
        How 2-D ``X`` reaches the source input. ``"reshape"`` reshapes the
        features (64 columns become an (8, 8, 1) image) and needs the counts
        to match; ``"dense"`` learns a linear projection onto the source
        input, for transfer across feature spaces; ``"auto"`` reshapes when
        the counts match and projects otherwise; ``None`` requires ``X`` to
        match a 1-D source input exactly.

    pretrained : bool, default=True
        If False, keep the architecture and the freezing but re-initialise
        every weight: the from-scratch baseline that transfer must beat. The
        source-knowledge term still refers to the real source model.

    head_warmup : int, default=0
        Number of the ``epochs`` that train only the new layers (head and
        input adapter) with every transferred layer frozen, before the layers
        that ``freeze`` leaves trainable are unfrozen: linear probing, then
        fine-tuning (Kumar et al. 2022). Skipped when warm-starting.

    source_lr_scale : float >= 0, default=1.0
        Learning rate of the transferred layers relative to the new layers
        (discriminative learning rates, as in ULMFiT). The update itself is
        scaled, so it works under Adam too.

    optimizer : str, default="adam"
        Name of a Keras optimizer (``"adam"``, ``"sgd"``, ``"rmsprop"``,
        ``"adamw"``, ...).

    learning_rate : float, default=1e-3
        Learning rate of the optimizer.

    epochs : int, default=100
        Maximum number of passes over the training data.

    batch_size : int, default=32
        Mini-batch size (capped at the number of training samples).

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when
        its target loss has not improved for ``n_iter_no_change`` epochs,
        keeping the best weights.

    validation_fraction : float in (0, 1), default=0.1
        Share of the training data held out when ``early_stopping=True``.

    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.

    callbacks : list of keras.callbacks.Callback, default=None
        Extra Keras callbacks. Each fit uses deep copies, so the objects
        passed here are left untouched.

    memory : None, str or joblib.Memory, default=None
        Where to cache the outputs of the frozen layers and of the source
        model on the training data, as in ``Pipeline(memory=...)``. Entries
        are keyed by the frozen weights, the cut and freeze point and the
        data, so grid-search candidates that differ only in ``alpha``,
        ``learning_rate``, ``head`` or ``epochs`` reuse them, also across
        worker processes. Outputs larger than the input rows (early
        convolutions with many channels) are recomputed rather than stored,
        as loading them would cost more. A corrupt entry is recomputed.
        Without ``memory`` they are still computed only once per fit.
        ``predict`` and ``score`` read and store the frozen prefix's outputs
        on the data they are given as well, so the candidates of a search
        also share them on each scoring fold; their predictions then come
        from the prefix and the rest of the network run separately, equal to
        ``model_.predict`` up to float32 rounding (about 1e-7).

    warm_start : bool, default=False
        If True and the estimator is fitted, ``fit`` continues training the
        fitted network instead of starting over.

    random_state : int, RandomState instance or None, default=None
        Seeds every random choice of a fit (weight initialisation, batch
        order, validation split) without touching global generators. Equal
        values give identical predictions on CPU.

    verbose : int, default=0
        0 is silent, 1 shows Keras' progress bar.
"""

_ATTRIBUTES_DOC = """
    model_ : keras.Model
        The trained target network. It maps the raw 2-D ``X`` (float32) to the
        target output and saves as ``.keras`` with no custom objects.

    history_ : dict of str to list of float
        Per-epoch values of ``loss`` (the full objective), ``target_loss`` and
        ``source_loss``, with ``val_`` versions under early stopping.

    n_iter_ : int
        Number of epochs run by the last fit.

    frozen_layers_ : list of str
        Names of the frozen source layers.

    input_adapter_ : str
        How X reached the source input: ``"none"``, ``"reshape"`` or
        ``"dense"``.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.
"""


def _check_number(name, value, kind, low=None, high=None, low_open=False, high_open=False):
    valid = isinstance(value, kind) and not isinstance(value, bool)
    if valid and low is not None:
        valid = value > low if low_open else value >= low
    if valid and high is not None:
        valid = value < high if high_open else value <= high
    if not valid:
        what = "an integer" if kind is numbers.Integral else "a number"
        lo = "" if low is None else f"{'(' if low_open else '['}{low}, "
        hi = "" if high is None else f"{high}{')' if high_open else ']'}"
        span = f" in {lo}{hi or 'inf)'}" if low is not None else ""
        raise ValueError(f"{name} must be {what}{span}; got {value!r}")


class BaseTransfer(BaseEstimator):
    __doc__ = (
        """Shared machinery of the transfer estimators (not for direct use).

    :class:`TransferClassifier` and :class:`TransferRegressor` derive from it
    and add only their target handling; the parameters they share are
    documented once, here and in each of them.
"""
        + _PARAMETERS_DOC
        + """
    See Also
    --------
    TransferClassifier : Transfer to a classification task.
    TransferRegressor : Transfer to a regression task.

    Examples
    --------
    >>> from sktransfer import TransferClassifier, TransferRegressor
    >>> from sktransfer.estimators import BaseTransfer
    >>> issubclass(TransferClassifier, BaseTransfer), issubclass(TransferRegressor, BaseTransfer)
    (True, True)
    >>> sorted(set(TransferClassifier().get_params()) - set(BaseTransfer().get_params()))
    ['class_weight']
    """
    )

    # Precompute the frozen prefix's outputs when it is safe (tests turn it off
    # to check that both paths train the same network).
    _cache_prefix = True

    def __init__(
        self,
        source=None,
        *,
        freeze=0,
        alpha=0.0,
        source_loss="distill",
        cut=None,
        head=None,
        input_adapter="auto",
        pretrained=True,
        head_warmup=0,
        source_lr_scale=1.0,
        optimizer="adam",
        learning_rate=1e-3,
        epochs=100,
        batch_size=32,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        memory=None,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.source = source
        self.freeze = freeze
        self.alpha = alpha
        self.source_loss = source_loss
        self.cut = cut
        self.head = head
        self.input_adapter = input_adapter
        self.pretrained = pretrained
        self.head_warmup = head_warmup
        self.source_lr_scale = source_lr_scale
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.memory = memory
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # -- scikit-learn protocol -------------------------------------------------

    def __sklearn_clone__(self):
        return clone_sharing_source(self)

    def __getstate__(self):
        state = super().__getstate__()
        # Training-time parts share layers with model_; pickle keeps model_ alone.
        state.pop("_network", None)
        state.pop("_predictor", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags

    def save(self, path):
        """Save the fitted estimator to ``path`` without pickle.

        The file holds the networks in Keras' format and everything else as
        plain data; :func:`sktransfer.load` reads it back without running any
        code from it. See :mod:`sktransfer.persistence`.

        Parameters
        ----------
        path : str or path-like
            Where to write (a zip file; ``.skt`` by convention).

        See Also
        --------
        sktransfer.load : Read the file back.
        """
        from .persistence import save

        save(self, path)

    # -- validation --------------------------------------------------------------

    def _fitted_state(self):
        return {
            name: value
            for name, value in vars(self).items()
            if (name.endswith("_") and not name.startswith("__")) or name in _PRIVATE_FITTED
        }

    def _guarded_fit(self, fit_target, *args):
        """Run ``fit_target`` so that a failed or interrupted fit mixes no state.

        A fresh fit starts from an unfitted estimator and leaves it unfitted
        if it stops early (KeyboardInterrupt included); a warm-started fit
        that stops early leaves the estimator as it was before the call.
        """
        self._check_params()
        warm = self.warm_start and hasattr(self, "model_")
        before = self._fitted_state() if warm else {}
        for name in self._fitted_state():
            delattr(self, name)
        vars(self).update(before)
        try:
            return fit_target(*args)
        except BaseException:
            for name in self._fitted_state():
                delattr(self, name)
            vars(self).update(before)
            raise

    def _check_params(self):
        if self.source is None:
            raise ValueError(
                "source is required: pass a keras.Model, a path to a .keras file "
                "or a callable returning a model"
            )
        _check_number("alpha", self.alpha, numbers.Real, 0, 1, high_open=True)
        if self.source_loss not in _SOURCE_LOSSES:
            raise ValueError(
                f"source_loss must be one of {_SOURCE_LOSSES}; got {self.source_loss!r}"
            )
        if self.input_adapter not in _ADAPTERS:
            raise ValueError(
                f"input_adapter must be one of {_ADAPTERS}; got {self.input_adapter!r}"
            )
        if not (
            self.cut is None
            or isinstance(self.cut, str)
            or (isinstance(self.cut, numbers.Integral) and not isinstance(self.cut, bool))
        ):
            raise ValueError(f"cut must be None, a layer index or a layer name; got {self.cut!r}")
        if not (self.freeze == "all" or isinstance(self.freeze, numbers.Integral)):
            raise ValueError(f"freeze must be an integer or 'all'; got {self.freeze!r}")
        if not isinstance(self.optimizer, str):
            raise ValueError(f"optimizer must be a Keras optimizer name; got {self.optimizer!r}")
        _check_number("learning_rate", self.learning_rate, numbers.Real, 0, low_open=True)
        _check_number("head_warmup", self.head_warmup, numbers.Integral, 0)
        _check_number("source_lr_scale", self.source_lr_scale, numbers.Real, 0)
        _check_number("epochs", self.epochs, numbers.Integral, 1)
        _check_number("batch_size", self.batch_size, numbers.Integral, 1)
        _check_number(
            "validation_fraction",
            self.validation_fraction,
            numbers.Real,
            0,
            1,
            low_open=True,
            high_open=True,
        )
        _check_number("n_iter_no_change", self.n_iter_no_change, numbers.Integral, 1)
        _check_number("verbose", self.verbose, numbers.Integral, 0)
        if self.callbacks is not None and not isinstance(self.callbacks, (list, tuple)):
            raise ValueError(
                f"callbacks must be None or a list of Keras callbacks; got {self.callbacks!r}"
            )

    # -- fitting -----------------------------------------------------------------

    def _make_optimizer(self):
        import keras

        try:
            optimizer = keras.optimizers.get(self.optimizer)
        except ValueError:
            raise ValueError(
                f"optimizer={self.optimizer!r} is not a Keras optimizer name; use "
                "e.g. 'adam', 'sgd', 'rmsprop' or 'adamw'"
            ) from None
        config = optimizer.get_config()
        config["learning_rate"] = float(self.learning_rate)
        return type(optimizer).from_config(config)

    def _network_for(self, source, *, n_features, n_outputs, activation, seed, mode):
        from ._network import ADAPTER, BODY, FROZEN, HEAD, build_network, parts_of

        warm = self.warm_start and hasattr(self, "model_")
        if warm and getattr(self, "_network", None) is not None:
            return self._network
        network = build_network(
            source,
            n_features=n_features,
            n_outputs=n_outputs,
            output_activation=activation,
            cut=self.cut,
            freeze=self.freeze,
            head=self.head,
            input_adapter=self.input_adapter,
            pretrained=self.pretrained,
            seed=seed,
            source_loss=mode,
        )
        if warm:
            # After unpickling only model_ is left: train its parts again.
            parts = parts_of(self.model_)
            network.model = self.model_
            network.adapter, network.frozen = parts[ADAPTER], parts[FROZEN]
            network.body, network.head = parts[BODY], parts[HEAD]
        return network

    def _source_term(self, network, graph, X, y, source_data, memory, prefix, fresh):
        """Targets and settings for the active source-knowledge term.

        Returns ``(mode, targets, extra)``: ``mode`` is the active term (None
        when ``alpha=0``), ``targets`` what the network trains on, and
        ``extra`` the keyword arguments of ``TransferNet`` for it (with the
        source rows under ``"source"`` for joint training). ``prefix`` holds
        the frozen prefix's outputs on ``X`` (or None), and ``fresh`` says
        that the network still holds the source's weights.
        """
        from ._batches import call_batched
        from ._cache import activations
        from ._objective import source_task_loss

        mode = self.source_loss if self.alpha > 0 else None
        if mode == "distill":
            head = network.source_head
            if network.teacher is None and prefix is not None and fresh and head is not None:
                # The untouched source's outputs, computed once per fit: the
                # layers after the frozen prefix still hold the source's
                # weights, so the forward pass goes on from the prefix's
                # outputs instead of running the frozen layers again.
                rest = [m for m in (network.body, head) if m is not None]
                teacher = call_batched(rest, prefix).astype(np.float32)
            elif network.teacher is None:
                source_x = X.reshape((len(X), *graph.input.shape[1:]))
                teacher = activations(memory, [graph], source_x).astype(np.float32)
            else:
                teacher = activations(None, [network.adapter, network.teacher], X)
            targets = y if network.teacher is not None else (y, teacher)
            extra = {"scale": _variance(teacher) if network.source_output == "linear" else 1.0}
            return mode, targets, extra
        if mode == "l2sp":
            names = {layer.name for layer in graph.layers}
            anchors = {
                layer.name: [np.asarray(w) for w in graph.get_layer(layer.name).trainable_weights]
                for layer in (network.body.layers if network.body is not None else [])
                if layer.trainable_weights and layer.name in names
            }
            return (mode, y, {"anchors": anchors}) if anchors else (None, y, {})
        if mode == "joint":
            x_source, y_source, sparse = _check_source_data(source_data, graph, network)
            linear = network.source_output == "linear"
            return (
                mode,
                y,
                {
                    "source_loss": source_task_loss(network.source_output, sparse),
                    "scale": _variance(y_source) if linear else 1.0,
                    "source": (x_source, y_source),
                },
            )
        return None, y, {}

    def _frozen_prefix(self, network, X, memory):
        """Outputs of the frozen prefix, computed once, or None if unsafe.

        Precomputing is safe when nothing trainable comes before the frozen
        layers (no dense input adapter) and they compute a deterministic
        function in inference mode: Keras' own layers do (Dropout, noise and
        augmentation layers pass inputs through unchanged in inference mode);
        with other layers, this is checked on a few rows.
        """
        from ._cache import activations, keras_layers_only

        models = _prefix_models(network)
        if not models or not self._cache_prefix:
            return None
        if not keras_layers_only(models):
            probe = X[: min(len(X), 64)]
            first = activations(None, models, probe)
            if not np.array_equal(first, activations(None, models, probe)):
                return None
        return activations(memory, models, X)

    def _fit(self, X, y, sample_weight, task, n_outputs, activation, source_data=None):
        """Train the target network on validated, encoded data."""
        from sklearn.utils.validation import check_memory

        from . import _trainer
        from ._batches import Batches
        from ._cache import activations
        from ._network import functional_graph
        from ._objective import TransferNet
        from ._source import resolve_source

        if self.source_loss == "joint" and source_data is None:
            raise ValueError(
                "source_loss='joint' needs the source task's data: pass "
                "fit(X, y, source_data=SourceData(X_source, y_source))"
            )
        memory = check_memory(self.memory)
        seeds = fit_seeds(self.random_state)
        source = resolve_source(self.source)
        with _naming_path(self.source):
            graph = functional_graph(source)
        warm = self.warm_start and hasattr(self, "model_")
        if warm and self.model_.input_shape[-1] != X.shape[1]:
            raise ValueError(
                f"warm_start=True, but X has {X.shape[1]} features and the fitted "
                f"network takes {self.model_.input_shape[-1]}"
            )
        active = self.source_loss if self.alpha > 0 else None
        build = dict(
            n_features=X.shape[1],
            n_outputs=n_outputs,
            activation=activation,
            seed=seeds["init"],
            mode=active,
        )
        with _naming_path(self.source):
            network = self._network_for(source, **build)
        prefix = self._frozen_prefix(network, X, memory)
        fresh = self.pretrained and not warm
        mode, targets, extra = self._source_term(
            network, graph, X, y, source_data, memory, prefix, fresh
        )
        source_rows = extra.pop("source", None)
        inputs = X
        if prefix is not None:
            inputs = prefix
            if source_rows is not None:
                x_source, y_source = source_rows
                source_rows = (activations(memory, [network.frozen], x_source), y_source)
        net_args = dict(task=task, alpha=self.alpha, mode=mode, prefix_cached=prefix is not None)
        net_args.update(extra)
        own = TransferNet(network, **net_args)

        rows = np.arange(len(X))
        validation = None
        if self.early_stopping:
            rows, val_rows = self._validation_split(rows, y, seeds["split"])
            validation = Batches(
                inputs[val_rows],
                _take(targets, val_rows),
                sample_weight[val_rows],
                _PREDICT_BATCH,
                source=source_rows,
            )
        batch_size = min(self.batch_size, len(rows))
        batches = Batches(
            inputs[rows],
            _take(targets, rows),
            sample_weight[rows],
            batch_size,
            seed=seeds["shuffle"],
            source=source_rows,
        )
        warmup = 0 if warm else min(self.head_warmup, self.epochs)
        train = dict(batches=batches, validation=validation, warmup=warmup)

        snapshot = [np.array(v) for v in own.variables] if warm else None
        with _trainer.released_gradients(), _restored_on_interrupt(own, snapshot):
            key = None
            if not (warm or warmup) and _trainer.reusable(network):
                key = (
                    _trainer.architecture_key(graph, network),
                    repr(self._trace_params()),
                    task,
                    mode,
                    prefix is not None,
                    batch_size,
                    X.shape[1],
                    n_outputs,
                    repr(extra.get("source_loss") and extra["source_loss"].__code__),
                    repr(source_rows is not None and source_rows[1].dtype),
                    self._steps_per_execution(batches),
                )
            worker = _trainer.WORKERS.checkout(key) if key is not None else None
            if worker is not None and not _trainer.compatible(worker.net, own):
                worker = None
            if worker is None and key is not None and _trainer.keep_worker(key, network):
                # Keep a traced worker for this configuration from now on.
                twin_net = TransferNet(self._network_for(source, **build), **net_args)
                _trainer.copy_variables(own, twin_net)
                optimizer = self._optimizer_for(twin_net)
                twin_net.compile(
                    optimizer=optimizer,
                    jit_compile=False,
                    steps_per_execution=self._steps_per_execution(batches),
                )
                worker = _trainer.Worker(twin_net, optimizer)
            elif worker is not None:
                worker.reset(own, float(self.learning_rate))
            if worker is None:
                history = self._train(own, **train)
            else:
                history = self._train(worker.net, compiled=True, **train)
                _trainer.copy_variables(worker.net, own)
                _trainer.WORKERS.checkin(key, worker)

        self.model_ = network.model
        self._network = network
        self.history_ = history
        self.n_iter_ = len(history["loss"])
        self.frozen_layers_ = list(network.frozen_layers)
        self.input_adapter_ = network.adapter_kind
        return self

    def _steps_per_execution(self, batches):
        """Training steps per call into the traced function: a whole epoch.

        Running an epoch's steps in one graph loop removes Keras' per-step
        dispatch, most of a step's cost on small networks, and computes the
        same updates in the same order. User callbacks keep one step per
        call, so their batch hooks see every batch.
        """
        if self.callbacks:
            return 1
        return batches.steps_per_epoch

    def _memory_predictor(self):
        """The fitted network split at its frozen prefix, built once per fit."""
        if not hasattr(self, "_predictor"):
            self._predictor = _memory_predictor(self.model_, self.input_adapter_)
        return self._predictor

    def _trace_params(self):
        """Parameters baked into a traced training function."""
        return (self.optimizer, self.source_lr_scale, self.early_stopping, self.n_iter_no_change)

    def _optimizer_for(self, net):
        from ._objective import scaled_optimizer

        transferred = [
            v
            for part in (net.body, net.source_head)
            if part is not None
            for v in part.trainable_weights
        ]
        return scaled_optimizer(self._make_optimizer(), transferred, self.source_lr_scale)

    def _train(self, net, *, batches, validation, warmup, compiled=False):
        """Run ``fit`` in its phases (head warm-up, then fine-tuning)."""
        import keras

        from . import _trainer

        transferred = [
            layer
            for part in (net.body, net.source_head)
            if part is not None
            for layer in part.layers
        ]
        trainable = {id(layer): layer.trainable for layer in transferred}
        callbacks = [copy.deepcopy(cb) for cb in (self.callbacks or [])]
        history = {}
        for start, stop in ((0, warmup), (warmup, self.epochs)):
            if stop <= start:
                continue
            is_warmup = stop == warmup
            phase_callbacks = list(callbacks)
            if self.early_stopping and not is_warmup:
                phase_callbacks.append(
                    keras.callbacks.EarlyStopping(
                        monitor="val_target_loss",
                        mode="min",
                        patience=self.n_iter_no_change,
                        restore_best_weights=True,
                    )
                )
            if not compiled:
                for layer in transferred:
                    layer.trainable = trainable[id(layer)] and not is_warmup
                net.compile(
                    optimizer=self._optimizer_for(net),
                    jit_compile=False,
                    steps_per_execution=self._steps_per_execution(batches),
                )
            batches.first_epoch, batches.epochs = start, stop - start
            logs = None
            if not (phase_callbacks or validation is not None or self.verbose):
                logs = _trainer.train_epochs(net, batches)
            if logs is None:
                logs = net.fit(
                    batches,
                    steps_per_epoch=batches.steps_per_epoch,
                    validation_data=validation,
                    initial_epoch=start,
                    epochs=stop,
                    shuffle=False,  # Batches shuffles with its own seeded generator
                    callbacks=phase_callbacks,
                    verbose=self.verbose,
                ).history
            for key, values in logs.items():
                history.setdefault(key, []).extend(float(v) for v in values)
        for layer in transferred:
            layer.trainable = trainable[id(layer)]
        return history

    def _validation_split(self, rows, y, seed):
        n_val = int(np.ceil(self.validation_fraction * len(rows)))
        if len(rows) < 2 or n_val >= len(rows):
            raise ValueError(
                f"early_stopping=True needs more training samples: {len(rows)} "
                f"samples leave none to train on with validation_fraction="
                f"{self.validation_fraction}"
            )
        from sklearn.model_selection import train_test_split

        stratify = y if getattr(self, "_stratify", False) else None
        try:
            return train_test_split(rows, test_size=n_val, random_state=seed, stratify=stratify)
        except ValueError:  # a class too rare to stratify
            return train_test_split(rows, test_size=n_val, random_state=seed)

    # -- prediction --------------------------------------------------------------

    def _forward(self, X):
        from sklearn.utils.validation import check_memory

        from ._cache import activations, cacheable
        from ._trainer import PREDICTORS

        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOATS).astype(np.float32, copy=False)
        model = self.model_
        if self.memory is not None:
            memory = check_memory(self.memory)
            predictor = self._memory_predictor()
            if predictor is not None and cacheable(memory, predictor[0], X):
                # Scoring folds of a search share their frozen-prefix outputs too.
                prefix, model, key = predictor
                X = activations(memory, prefix, X, key=key)
        predict = functools.partial(PREDICTORS.predict, model)
        if len(X) <= _PREDICT_BATCH:
            return predict(X)
        first = predict(X[:_PREDICT_BATCH])
        out = np.empty((len(X), *first.shape[1:]), dtype=first.dtype)
        out[:_PREDICT_BATCH] = first
        for start in range(_PREDICT_BATCH, len(X), _PREDICT_BATCH):
            stop = start + _PREDICT_BATCH
            out[start:stop] = predict(X[start:stop])
        return out


def _memory_predictor(model, adapter_kind):
    """``(prefix, rest, key)`` to predict through the frozen prefix's cache, or None.

    ``prefix`` is the frozen prefix of ``model`` (with a reshaping adapter),
    ``rest`` the model from its outputs to the target output, and ``key`` the
    prefix's fingerprint in the cache. None when nothing frozen comes first
    or the prefix holds layers other than Keras' own.
    """
    import keras

    from ._cache import fingerprint, keras_layers_only
    from ._network import ADAPTER, BODY, FROZEN, HEAD, parts_of

    parts = parts_of(model)
    if parts[FROZEN] is None or adapter_kind == "dense":
        return None
    prefix = [m for m in (parts[ADAPTER], parts[FROZEN]) if m is not None]
    if not keras_layers_only(prefix):
        return None
    x = inputs = keras.Input(tuple(parts[FROZEN].output.shape[1:]), name="prefix_outputs")
    for part in (parts[BODY], parts[HEAD]):
        if part is not None:
            x = part(x)
    return prefix, keras.Model(inputs, x, name="sktransfer_rest"), fingerprint(prefix)


class SourceData:
    """The source task's data, for ``source_loss="joint"``.

    A container rather than two arrays, so that scikit-learn never mistakes
    the source rows for target samples: cross-validation slices fit
    parameters that are as long as ``X``, but passes this object whole.

    Parameters
    ----------
    X : array-like of shape (n_source_samples, ...)
        Source inputs, in the source model's input shape or flattened to 2-D.
    y : array-like of shape (n_source_samples,) or (n_source_samples, n_outputs)
        Source targets, as the source head expects them: class indices or
        one-hot rows for a softmax head, 0/1 values for a sigmoid head,
        values otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import SourceData
    >>> SourceData(np.zeros((100, 4)), np.zeros(100, dtype=int))
    SourceData(X: (100, 4), y: (100,))
    """

    def __init__(self, X, y):
        self.X = X
        self.y = y

    def __repr__(self):
        return f"SourceData(X: {np.shape(self.X)}, y: {np.shape(self.y)})"


def _check_source_data(source_data, graph, network):
    """Validate source data against the source's input and output heads."""
    if not isinstance(source_data, SourceData):
        raise TypeError(
            "source_data must be a sktransfer.SourceData(X_source, y_source); got "
            f"{type(source_data).__name__}"
        )
    input_shape = tuple(graph.input.shape[1:])
    x = np.asarray(source_data.X, dtype=np.float32)
    y = np.asarray(source_data.y)
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(
            f"source_data holds {len(x)} inputs and {len(y)} targets; it needs the "
            "same non-zero number of each"
        )
    if x.shape[1:] != input_shape:
        if int(np.prod(x.shape[1:])) != int(np.prod(input_shape)):
            raise ValueError(
                f"source_data.X has shape {x.shape}, which does not fit the source "
                f"input {(None, *input_shape)}"
            )
        x = x.reshape((len(x), *input_shape))
    if not np.all(np.isfinite(x)):
        raise ValueError("source_data.X contains NaN or infinity")
    n_out = int(graph.output.shape[-1])
    kind = network.source_output
    if kind == "softmax" and y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_out:
            raise ValueError(
                f"source_data.y must hold class indices in [0, {n_out}) for the "
                f"source's {n_out}-class softmax head, or one-hot rows; got values "
                f"of dtype {y.dtype} in [{y.min()}, {y.max()}]"
            )
        return x, y.astype(np.int32), True
    y = y.reshape(len(y), -1).astype(np.float32)
    if y.shape[1] != n_out:
        raise ValueError(
            f"source_data.y has {y.shape[1]} columns but the source head has {n_out} outputs"
        )
    if kind == "sigmoid" and not np.all((y >= 0) & (y <= 1)):
        raise ValueError("source_data.y must lie in [0, 1] for the source's sigmoid head")
    return x, y, False


@contextlib.contextmanager
def _naming_path(source):
    """Prefix errors about a source loaded from a file with its path."""
    try:
        yield
    except ValueError as exc:
        if isinstance(source, (str, os.PathLike)):
            raise ValueError(f"source {os.fspath(source)!r}: {exc}") from None
        raise


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


def _prefix_models(network):
    """The frozen prefix whose outputs can be computed ahead, or []."""
    if network.frozen is None or network.adapter_kind == "dense":
        return []
    return [m for m in (network.adapter, network.frozen) if m is not None]


def _variance(values):
    """Mean per-column variance, the scale of a squared-error source term."""
    variance = float(np.mean(np.var(values, axis=0)))
    return variance if variance > 1e-12 else 1.0


def _take(targets, rows):
    if isinstance(targets, tuple):
        return tuple(part[rows] for part in targets)
    return targets[rows]


def _validated_weights(sample_weight, X):
    return _check_sample_weight(sample_weight, X, dtype=np.float32)


class TransferClassifier(ClassifierMixin, BaseTransfer):
    __doc__ = (
        """Classifier that transfers a Keras source model to a new task.

    The source model is cut below its output layer, its first ``freeze``
    weighted layers are frozen, a new head is added for the target classes,
    and the network is trained on
    ``L = (1 - alpha) * L_target + alpha * L_source``, with cross-entropy as
    ``L_target`` and ``L_source`` set by ``source_loss``.
"""
        + _PARAMETERS_DOC
        + """
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the target loss, as in scikit-learn
        (multiplied with ``sample_weight``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
"""
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    TransferRegressor : The same transfer for regression targets.

    Examples
    --------
    >>> import keras
    >>> from sklearn.datasets import load_iris
    >>> from sktransfer import TransferClassifier
    >>> source = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(16, activation="relu"),
    ...     keras.layers.Dense(3, activation="softmax"),
    ... ])
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = TransferClassifier(source, freeze=1, epochs=20, random_state=0)
    >>> clf.fit(X, y).predict(X[:3]).shape
    (3,)
    >>> clf.frozen_layers_ == [source.layers[0].name]
    True
    """
    )

    _stratify = True

    def __init__(
        self,
        source=None,
        *,
        freeze=0,
        alpha=0.0,
        source_loss="distill",
        cut=None,
        head=None,
        input_adapter="auto",
        pretrained=True,
        head_warmup=0,
        source_lr_scale=1.0,
        optimizer="adam",
        learning_rate=1e-3,
        epochs=100,
        batch_size=32,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        class_weight=None,
        callbacks=None,
        memory=None,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            source,
            freeze=freeze,
            alpha=alpha,
            source_loss=source_loss,
            cut=cut,
            head=head,
            input_adapter=input_adapter,
            pretrained=pretrained,
            head_warmup=head_warmup,
            source_lr_scale=source_lr_scale,
            optimizer=optimizer,
            learning_rate=learning_rate,
            epochs=epochs,
            batch_size=batch_size,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            callbacks=callbacks,
            memory=memory,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
        )
        self.class_weight = class_weight

    def fit(self, X, y, sample_weight=None, source_data=None):
        """Fit the transferred network to the target data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Target inputs.
        y : array-like of shape (n_samples,)
            Target labels of any type (strings, integers, booleans).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the target loss.
        source_data : SourceData, default=None
            The source task's data, required by ``source_loss="joint"`` and
            ignored otherwise. It passes whole through ``Pipeline``,
            ``GridSearchCV`` and ``cross_val_score``.

        Returns
        -------
        self : TransferClassifier
            The fitted estimator.
        """
        return self._guarded_fit(self._fit_target, X, y, sample_weight, source_data)

    def _fit_target(self, X, y, sample_weight, source_data):
        """Validate and encode the labels, then train."""
        X, y = validate_data(self, X, y, dtype=_FLOATS)
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                "TransferClassifier needs samples of at least 2 classes in y; "
                f"got 1 class: {classes[0]!r}"
            )
        if self.warm_start and hasattr(self, "classes_"):
            if not np.array_equal(classes, self.classes_):
                raise ValueError(
                    f"warm_start=True, but y has classes {classes.tolist()} and the "
                    f"fitted estimator has {self.classes_.tolist()}"
                )
        sample_weight = _validated_weights(sample_weight, X)
        if self.class_weight is not None:
            from sklearn.utils.class_weight import compute_sample_weight

            sample_weight = sample_weight * compute_sample_weight(self.class_weight, y).astype(
                np.float32
            )
        self.classes_ = classes
        binary = len(classes) == 2
        return self._fit(
            X.astype(np.float32, copy=False),
            encoded.astype(np.float32 if binary else np.int32),
            sample_weight,
            task="binary" if binary else "multiclass",
            n_outputs=1 if binary else len(classes),
            activation="sigmoid" if binary else "softmax",
            source_data=source_data,
        )

    def predict_proba(self, X):
        """Class probabilities of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities, in the order of ``classes_``.
        """
        out = self._forward(X).astype(np.float64)
        if len(self.classes_) == 2:
            out = np.column_stack([1.0 - out[:, 0], out[:, 0]])
        return out / out.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Predicted class labels of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class TransferRegressor(RegressorMixin, BaseTransfer):
    __doc__ = (
        """Regressor that transfers a Keras source model to a new task.

    The source model is cut below its output layer, its first ``freeze``
    weighted layers are frozen, a new linear head is added for the targets,
    and the network is trained on
    ``L = (1 - alpha) * L_target + alpha * L_source``, with the mean squared
    error of the standardised targets as ``L_target`` and ``L_source`` set by
    ``source_loss``. Predictions are returned in the original units.
"""
        + _PARAMETERS_DOC
        + """
    Attributes
    ----------
    n_outputs_ : int
        Number of regression targets.
"""
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    TransferClassifier : The same transfer for class labels.

    Examples
    --------
    >>> import keras
    >>> from sklearn.datasets import load_diabetes
    >>> from sktransfer import TransferRegressor
    >>> source = keras.Sequential([
    ...     keras.Input((10,)),
    ...     keras.layers.Dense(16, activation="relu"),
    ...     keras.layers.Dense(1),
    ... ])
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = TransferRegressor(source, alpha=0.3, source_loss="l2sp",
    ...                         epochs=5, random_state=0).fit(X, y)
    >>> reg.predict(X[:2]).shape
    (2,)
    """
    )

    def fit(self, X, y, sample_weight=None, source_data=None):
        """Fit the transferred network to the target data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Target inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the target loss.
        source_data : SourceData, default=None
            The source task's data, required by ``source_loss="joint"`` and
            ignored otherwise. It passes whole through ``Pipeline``,
            ``GridSearchCV`` and ``cross_val_score``.

        Returns
        -------
        self : TransferRegressor
            The fitted estimator.
        """
        return self._guarded_fit(self._fit_target, X, y, sample_weight, source_data)

    def _fit_target(self, X, y, sample_weight, source_data):
        """Validate and standardise the targets, then train."""
        X, y = validate_data(self, X, y, dtype=_FLOATS, multi_output=True, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        Y = y.reshape(len(y), -1)
        if self.warm_start and hasattr(self, "n_outputs_"):
            if Y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"warm_start=True, but y has {Y.shape[1]} outputs and the fitted "
                    f"estimator has {self.n_outputs_}"
                )
        else:
            scale = Y.std(axis=0)
            self._y_mean = Y.mean(axis=0)
            self._y_scale = np.where(scale > 0, scale, 1.0)
        self._y_ndim = y.ndim
        self.n_outputs_ = Y.shape[1]
        sample_weight = _validated_weights(sample_weight, X)
        return self._fit(
            X.astype(np.float32, copy=False),
            ((Y - self._y_mean) / self._y_scale).astype(np.float32),
            sample_weight,
            task="regression",
            n_outputs=self.n_outputs_,
            activation="linear",
            source_data=source_data,
        )

    def predict(self, X):
        """Predicted targets of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictions, shaped like the ``y`` given to ``fit``.
        """
        out = self._forward(X).astype(np.float64) * self._y_scale + self._y_mean
        return out[:, 0] if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

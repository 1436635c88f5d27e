"""scikit-learn estimators that transfer a Keras source model to a new task.

This module is the scikit-learn face of sktransfer: the parameters, their
validation and the encoding of targets. A fit validates its data, runs one
fit (``_fit.run_fit``) and sets the fitted attributes; predictions come from
``_prediction``. ``docs/contributing.md`` maps the other modules.
"""

import contextlib
import inspect
import numbers
import textwrap

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from . import persistence
from ._compat import check_sample_weight
from ._fit import Task, run_fit
from ._source import clone_sharing_source
from ._source_terms import SOURCE_TERMS, SourceData
from ._validation import check_choice, check_flag, check_number, validate_samples

__all__ = ["BaseTransfer", "SourceData", "TransferClassifier", "TransferRegressor"]

_FLOATS = (np.float64, np.float32)
_ADAPTERS = ("auto", "reshape", "resize", "dense", None)
_BATCHNORM = ("frozen", "train")
# Numeric parameters: (kind, lowest, highest, which bounds are allowed values).
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBERS = {
    "learning_rate": (numbers.Real, 0, _FLOAT32_MAX, "neither"),
    "head_warmup": (numbers.Integral, 0, None, "left"),
    "source_lr_scale": (numbers.Real, 0, None, "left"),
    "batch_size": (numbers.Integral, 1, None, "left"),
    "validation_fraction": (numbers.Real, 0, 1, "neither"),
    "n_iter_no_change": (numbers.Integral, 1, None, "left"),
    "verbose": (numbers.Integral, 0, None, "left"),
}
_FLAGS = ("pretrained", "early_stopping", "warm_start")
_ALPHA_WHY = ": alpha=1 would train on the source term alone and leave the new head untrained"

_PARAMETERS_DOC_TEMPLATE = """
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
        included, run in inference mode. The layers of a model nested in the
        source (a Keras application used as a layer) count one by one, and
        ``frozen_layers_`` names them.

    batchnorm : {"frozen", "train"}, default="frozen"
        What fine-tuning does to the source's BatchNormalization layers.
        ``"frozen"`` keeps them as the source has them, whatever ``freeze``
        says: they run in inference mode, normalising with the source's
        moving statistics, and never update them, so a few target rows in
        small batches cannot overwrite statistics the source learned from
        plenty of data (as Keras' fine-tuning guide advises). Keras runs a
        BatchNormalization layer in inference mode exactly when it is not
        trainable, so their scale and offset stay fixed too. ``"train"``
        trains those that ``freeze`` leaves trainable as Keras does: on batch
        statistics, updating the moving ones. With ``pretrained=False`` there
        are no source statistics to keep, and they train either way.
        ``frozen_layers_`` lists only the layers ``freeze`` froze.

    alpha : float in [0, 1), default=0.0
        Weight of the source-knowledge term in
        ``L = (1 - alpha) * L_target + alpha * L_source``. ``alpha=0`` is plain
        fine-tuning.

    source_loss : {"distill", "l2sp", "joint"}, default="distill"
        The source-knowledge term ``L_source``:

{source_terms}

        All three terms are dimensionless and zero (or minimal) at the
        source, so sweeping ``alpha`` over [0, 1) goes from no constraint to
        a dominant one.

    cut : int, str or None, default=None
        Last layer of the source body, as an index into the source's layers
        (input layers not counted; negative counts from the end) or a layer
        name; the layers of nested models count one by one. ``None`` cuts
        off the source's output layer (``-2``) when it has one: when its last
        layer is a ``Dense`` layer or applies a softmax or sigmoid. A headless
        source, whose last layer is anything else (the pooling layer of a
        Keras application built with ``include_top=False, pooling="avg"``, a
        convolution, a normalisation), is transferred whole (``-1``).

    head : None, int or tuple of int, default=None
        The new target head. ``None`` is a single output layer (softmax for
        multiclass, sigmoid for binary, linear for regression); an int or a
        tuple of ints adds hidden ReLU Dense layers of those sizes first.

    head_init : {"probe", "random"}, default="probe"
        How the new output layer starts. ``"probe"`` solves it exactly on
        the features that reach it, before any gradient step: L2-regularised
        logistic regression (multinomial, or binary for two classes) for a
        classifier, ridge regression for a regressor, weighted by
        ``sample_weight`` and ``class_weight``, with the penalty chosen by
        evidence maximisation on the training rows (see the user guide's
        "Concepts" page). Fine-tuning then starts from a head that already
        fits the data (LP-FT, Kumar et al. 2022). When nothing else can
        train (``freeze="all"``, no hidden head layers, no ``"dense"`` input
        adapter) the probe is the whole fit and no epoch runs. Hidden head
        layers keep their random initial weights and the probe solves the
        output layer on their outputs; a ``"dense"`` input adapter is
        probed through its initial projection. ``pretrained=False`` probes
        too, so that the from-scratch twin follows the same recipe; a warm
        start keeps the fitted head. ``"random"`` starts from Glorot-uniform
        weights.

    input_adapter : {"auto", "reshape", "resize", "dense"} or None, default="auto"
        How the samples of ``X`` reach the source input, inside ``model_``.
        ``"reshape"`` reshapes each sample (64 columns become an (8, 8, 1)
        image) and needs the counts to match; ``"resize"`` takes images
        (``X`` of shape (n, h, w) or (n, h, w, c)) to the source's image
        size with Keras' ``Resizing`` layer (bilinear) and maps one channel
        to c (copied) or c channels to one (averaged); ``"dense"`` learns a
        linear projection onto the source input, for transfer across feature
        spaces; ``"auto"`` passes samples of the source's input shape as
        they are, resizes images of another size or channel count, reshapes
        when the counts match, and otherwise refuses ``X`` with an error that
        suggests ``"dense"`` (a wrong feature count is more often a mistake
        than a change of feature space); ``None`` requires samples of
        exactly the source's input shape.

    preprocess : None, str or keras.layers.Layer, default=None
        The source's own input scaling, put inside ``model_`` between the
        input adapter and the source: ``X`` must reach the source on the
        scale it was trained on. ``None`` adds nothing. A Keras layer, such
        as ``keras.layers.Rescaling(1 / 127.5, offset=-1)`` or a
        ``keras.layers.Normalization``, is copied with its weights and does
        not train. The name of a Keras application family applies the
        scaling of its ``preprocess_input`` to RGB values in [0, 255], as
        plain Keras layers: ``"mobilenet"``, ``"mobilenet_v2"``,
        ``"inception_v3"``, ``"inception_resnet_v2"``, ``"xception"``,
        ``"nasnet"`` and ``"resnet_v2"`` scale to [-1, 1]; ``"resnet"``,
        ``"resnet50"``, ``"vgg16"`` and ``"vgg19"`` turn RGB into BGR and
        subtract the ImageNet mean; ``"densenet"`` scales to [0, 1] and
        standardises each channel; ``"mobilenet_v3"``, ``"efficientnet"``,
        ``"efficientnet_v2"`` and ``"convnext"`` models scale their inputs
        themselves, so nothing is added. The rows of a ``SourceData`` are
        taken to be in the source's input space already.

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

    epochs : int or "auto", default="auto"
        Number of passes over the training data. ``"auto"`` sizes the
        training to the data: as many epochs as make 1000 optimizer steps
        (1000 full-batch steps for 30 rows, 32 epochs of 1000 rows, one
        epoch of 100,000 rows). Starting from the probe head, that is
        enough for fine-tuning to settle on small targets without
        over-training large ones (the measurements are in the user guide).
        When the training loss is still falling steeply at the end, a
        ``ConvergenceWarning`` says so.

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
        ``model_.predict`` up to float32 rounding (relative differences of
        1e-7 to 1e-5, larger where the head's weights are large).

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
        The trained target network. It maps the raw ``X`` given to fit
        (float32 samples of ``input_shape_``) to the target output, input
        adapter and ``preprocess`` included, and saves as ``.keras`` with no
        custom objects.

    history_ : dict of str to list of float
        Per-epoch values of ``loss`` (the full objective), ``target_loss`` and
        ``source_loss``, with ``val_`` versions under early stopping.

    n_iter_ : int
        Number of epochs run by the last fit.

    frozen_layers_ : list of str
        Names of the frozen source layers.

    input_adapter_ : str
        How X reached the source input: ``"none"``, ``"reshape"``,
        ``"resize"`` or ``"dense"``.

    input_shape_ : tuple of int
        Shape of one sample of the ``X`` seen during fit: ``(n_features_in_,)``
        for 2-D ``X``, ``(height, width, channels)`` for images. ``model_``
        takes inputs of this shape; ``predict`` takes samples of this shape
        or flattened to ``n_features_in_`` columns.

    n_features_in_ : int
        Number of values in one sample of the ``X`` seen during fit: the
        number of columns of 2-D ``X``, ``height * width * channels`` for
        images.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.
"""


def _term_docs():
    """The ``source_loss`` entries, from the docstrings of the source terms."""
    items = []
    for term in SOURCE_TERMS.values():
        text = textwrap.fill(" ".join(inspect.cleandoc(term.__doc__).split()), width=70)
        items.append(textwrap.indent(text, "          ").replace("          ", "        - ", 1))
    return "\n\n".join(items)


_PARAMETERS_DOC = _PARAMETERS_DOC_TEMPLATE.replace("{source_terms}", _term_docs())


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
    # Fitted attributes that are plain data (persistence saves them); with
    # model_ and the training network _network they are the fitted state.
    _fitted_attributes = (
        "n_features_in_",
        "feature_names_in_",
        "history_",
        "n_iter_",
        "frozen_layers_",
        "input_adapter_",
        "input_shape_",
    )

    def __init__(
        self,
        source=None,
        *,
        freeze=0,
        batchnorm="frozen",
        alpha=0.0,
        source_loss="distill",
        cut=None,
        head=None,
        head_init="probe",
        input_adapter="auto",
        preprocess=None,
        pretrained=True,
        head_warmup=0,
        source_lr_scale=1.0,
        optimizer="adam",
        learning_rate=1e-3,
        epochs="auto",
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
        self.batchnorm = batchnorm
        self.alpha = alpha
        self.source_loss = source_loss
        self.cut = cut
        self.head = head
        self.head_init = head_init
        self.input_adapter = input_adapter
        self.preprocess = preprocess
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
        # The training network shares layers with model_; pickle keeps model_ alone.
        state.pop("_network", None)
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
        persistence.save(self, path)

    # -- fitting -----------------------------------------------------------------

    def _fit(self, X, y, sample_weight, source_data):
        """Validate, run one fit, set the fitted attributes (``fit`` of the subclasses)."""
        self._validate_params()
        with self._fitting():
            X, y, sample_weight, task = self._validate_fit_data(X, y, sample_weight)
            fitted = run_fit(self, X, y, sample_weight, task, source_data)
            self._set_fitted(fitted)
        return self

    def _fitted_state(self):
        names = (*self._fitted_attributes, "model_", "_network")
        return {name: vars(self)[name] for name in names if name in vars(self)}

    @contextlib.contextmanager
    def _fitting(self):
        """A scope in which a failed or interrupted fit mixes no state.

        A fresh fit starts from an unfitted estimator and leaves it unfitted
        if it stops early (KeyboardInterrupt included); a warm-started fit
        that stops early leaves the estimator as it was before the call.
        """
        warm = self.warm_start and hasattr(self, "model_")
        before = self._fitted_state() if warm else {}
        for name in self._fitted_state():
            delattr(self, name)
        vars(self).update(before)
        try:
            yield
        except BaseException:
            for name in self._fitted_state():
                delattr(self, name)
            vars(self).update(before)
            raise

    def _checked_rows(self, X, sample_weight):
        """X in float32 range, and finite non-negative weights, as the network takes them."""
        if X.size and np.abs(X).max() > _FLOAT32_MAX:
            raise ValueError(
                f"X holds values up to {np.abs(X).max():.3g}, beyond the float32 range "
                f"(+-{_FLOAT32_MAX:.3g}) the network computes in; rescale X to the scale "
                "the source was trained on"
            )
        sample_weight = check_sample_weight(sample_weight, X, dtype=np.float32)
        if np.any(sample_weight < 0) or not np.all(np.isfinite(sample_weight)):
            raise ValueError(
                "sample_weight must hold finite non-negative values; got values in "
                f"[{sample_weight.min():.3g}, {sample_weight.max():.3g}]"
            )
        return X.astype(np.float32, copy=False), sample_weight

    def _set_fitted(self, fitted):
        network = fitted.network
        self.model_ = network.model
        self._network = network
        self.history_ = fitted.history
        self.n_iter_ = len(fitted.history["loss"])
        self.frozen_layers_ = list(network.frozen_layers)
        self.input_adapter_ = network.adapter_kind

    def _validate_params(self):
        """Check every parameter; the error names it, the value and what is allowed."""
        from ._preprocessing import check_preprocess
        from ._trainer import optimizer_class

        if self.source is None:
            raise ValueError(
                "source is required: pass a keras.Model, a path to a .keras file "
                "or a callable returning a model"
            )
        check_number("alpha", self.alpha, numbers.Real, 0, 1, "left", why=_ALPHA_WHY)
        for name, (kind, low, high, closed) in _NUMBERS.items():
            check_number(name, getattr(self, name), kind, low, high, closed)
        for name in _FLAGS:
            check_flag(name, getattr(self, name))
        if self.epochs != "auto":
            check_number("epochs", self.epochs, numbers.Integral, 1, why=' or "auto"')
        check_choice("source_loss", self.source_loss, tuple(SOURCE_TERMS))
        check_choice("input_adapter", self.input_adapter, _ADAPTERS)
        check_choice("head_init", self.head_init, ("probe", "random"))
        check_choice("batchnorm", self.batchnorm, _BATCHNORM)
        check_preprocess(self.preprocess)
        _check_layer_choice("cut", self.cut, str)
        _check_layer_choice("freeze", self.freeze, "all")
        if not isinstance(self.optimizer, str):
            raise ValueError(f"optimizer must be a Keras optimizer name; got {self.optimizer!r}")
        optimizer_class(self.optimizer)
        _check_callbacks(self.callbacks)

    # -- prediction --------------------------------------------------------------

    def _forward(self, X):
        from sklearn.utils.validation import check_memory

        from ._prediction import forward

        check_is_fitted(self)
        X = validate_samples(self, X, reset=False, dtype=_FLOATS).astype(np.float32, copy=False)
        memory = None if self.memory is None else check_memory(self.memory)
        return forward(self.model_, X, memory=memory, adapter_kind=self.input_adapter_)


def _check_layer_choice(name, value, word):
    """``cut`` is None, an index or a layer name; ``freeze`` an integer or "all"."""
    integer = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if name == "cut" and (value is None or isinstance(value, str) or integer):
        return
    if name == "freeze" and (value == "all" if isinstance(value, str) else integer):
        return
    allowed = "None, a layer index or a layer name" if name == "cut" else "an integer or 'all'"
    raise ValueError(f"{name} must be {allowed}; got {value!r}")


def _check_callbacks(callbacks):
    import keras

    if callbacks is None:
        return
    if not isinstance(callbacks, (list, tuple)):
        raise ValueError(f"callbacks must be None or a list of Keras callbacks; got {callbacks!r}")
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(
                "callbacks must hold keras.callbacks.Callback instances; got "
                f"{callback!r} of type {type(callback).__name__}"
            )


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
    _fitted_attributes = (*BaseTransfer._fitted_attributes, "classes_")

    def __init__(
        self,
        source=None,
        *,
        freeze=0,
        batchnorm="frozen",
        alpha=0.0,
        source_loss="distill",
        cut=None,
        head=None,
        head_init="probe",
        input_adapter="auto",
        preprocess=None,
        pretrained=True,
        head_warmup=0,
        source_lr_scale=1.0,
        optimizer="adam",
        learning_rate=1e-3,
        epochs="auto",
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
            batchnorm=batchnorm,
            alpha=alpha,
            source_loss=source_loss,
            cut=cut,
            head=head,
            head_init=head_init,
            input_adapter=input_adapter,
            preprocess=preprocess,
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
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Target inputs: rows of features, or samples of any shape, such as
            images (n_samples, height, width[, channels]) or sequences
            (n_samples, steps, features).
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
        return self._fit(X, y, sample_weight, source_data)

    def _validate_fit_data(self, X, y, sample_weight):
        """Validate X and the weights; encode the labels as class indices."""
        X, y = validate_samples(self, X, y, reset=True, dtype=_FLOATS)
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                "TransferClassifier needs samples of at least 2 classes in y; "
                f"got 1 class: {_plain(classes[0])!r}"
            )
        if self.warm_start and hasattr(self, "classes_"):
            if not np.array_equal(classes, self.classes_):
                raise ValueError(
                    f"warm_start=True, but y has classes {classes.tolist()} and the "
                    f"fitted estimator has {self.classes_.tolist()}"
                )
        X, sample_weight = self._checked_rows(X, sample_weight)
        if self.class_weight is not None:
            sample_weight = sample_weight * _class_weights(self.class_weight, y)
        self.classes_ = classes
        binary = len(classes) == 2
        task = (
            Task("binary", 1, "sigmoid") if binary else Task("multiclass", len(classes), "softmax")
        )
        targets = encoded.astype(np.float32 if binary else np.int32)
        return X, targets, sample_weight, task

    def predict_proba(self, X):
        """Class probabilities of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Inputs, shaped like the samples given to ``fit`` (``input_shape_``
            per sample) or flattened to ``n_features_in_`` columns.

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
        X : array-like of shape (n_samples, ...)
            Inputs, shaped like the samples given to ``fit`` (``input_shape_``
            per sample) or flattened to ``n_features_in_`` columns.

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

    _fitted_attributes = (
        *BaseTransfer._fitted_attributes,
        "n_outputs_",
        "_y_mean",
        "_y_scale",
        "_y_ndim",
    )

    def fit(self, X, y, sample_weight=None, source_data=None):
        """Fit the transferred network to the target data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Target inputs: rows of features, or samples of any shape, such as
            images (n_samples, height, width[, channels]) or sequences
            (n_samples, steps, features).
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
        return self._fit(X, y, sample_weight, source_data)

    def _validate_fit_data(self, X, y, sample_weight):
        """Validate X and the weights; standardise the targets."""
        X, y = validate_samples(
            self, X, y, reset=True, dtype=_FLOATS, multi_output=True, y_numeric=True
        )
        y = np.asarray(y, dtype=np.float64)
        Y = y.reshape(len(y), -1)
        if self.warm_start and hasattr(self, "n_outputs_"):
            if Y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"warm_start=True, but y has {Y.shape[1]} outputs and the fitted "
                    f"estimator has {self.n_outputs_}"
                )
        else:
            self._y_mean, self._y_scale = _standardisation(Y)
        self._y_ndim = y.ndim
        self.n_outputs_ = Y.shape[1]
        X, sample_weight = self._checked_rows(X, sample_weight)
        targets = ((Y - self._y_mean) / self._y_scale).astype(np.float32)
        task = Task("regression", self.n_outputs_, "linear")
        return X, targets, sample_weight, task

    def predict(self, X):
        """Predicted targets of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Inputs, shaped like the samples given to ``fit`` (``input_shape_``
            per sample) or flattened to ``n_features_in_`` columns.

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


def _class_weights(class_weight, y):
    """Per-row weights of ``class_weight`` ("balanced" or a dict of class to weight)."""
    from sklearn.utils.class_weight import compute_sample_weight

    if isinstance(class_weight, dict):
        for label, weight in class_weight.items():
            if not (isinstance(weight, numbers.Real) and np.isfinite(weight) and weight >= 0):
                raise ValueError(
                    "class_weight must map classes to finite non-negative numbers; got "
                    f"{weight!r} for class {label!r}"
                )
    elif not (isinstance(class_weight, str) and class_weight == "balanced"):
        raise ValueError(
            "class_weight must be None, 'balanced' or a dict mapping classes to weights; "
            f"got {class_weight!r}"
        )
    return compute_sample_weight(class_weight, y).astype(np.float32)


def _standardisation(Y):
    """Mean and scale of each target column (scales that overflow are computed in parts)."""
    with np.errstate(over="ignore", invalid="ignore"):
        scale = Y.std(axis=0)
    if not np.all(np.isfinite(scale)):
        size = np.abs(Y).max(axis=0)
        scale = (Y / size).std(axis=0) * size
    return Y.mean(axis=0), np.where(scale > 0, scale, 1.0)


def _plain(value):
    """A NumPy scalar as the Python value it holds, for messages."""
    return value.item() if isinstance(value, np.generic) else value


persistence._register(TransferClassifier, TransferRegressor)

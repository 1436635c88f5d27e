"""scikit-learn estimators that transfer a Keras source model to a new task.

This module is the scikit-learn face of sktransfer: the parameters, their
validation and the encoding of targets. A fit validates its data, runs one
fit (``_fit.run_fit``) and sets the fitted attributes; predictions come from
``_prediction``. ``docs/contributing.md`` maps the other modules.
"""

import contextlib
import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from . import persistence
from ._compat import check_sample_weight
from ._docstrings import ATTRIBUTES_DOC as _ATTRIBUTES_DOC
from ._docstrings import PARAMETERS_DOC as _PARAMETERS_DOC
from ._fit import Task, run_fit
from ._shared import MaterialisedModel
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
    # Built on first read after a fit that shared a frozen backbone (_shared).
    model_ = MaterialisedModel()
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
        if "_network" in vars(self):
            getattr(self, "model_", None)  # a fit on a shared backbone builds its copy here
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
        # Finite float32 values (checked by validation) are in range by type;
        # two reductions need no temporary array the size of X.
        peak = 0.0 if X.dtype == np.float32 or not X.size else max(-X.min(), X.max())
        if peak > _FLOAT32_MAX:
            raise ValueError(
                f"X holds values up to {peak:.3g}, beyond the float32 range "
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
        if network.model is not None:  # else built on first read (_shared)
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

        from ._prediction import forward, forward_shared

        check_is_fitted(self)
        X = validate_samples(self, X, reset=False, dtype=_FLOATS).astype(np.float32, copy=False)
        memory = None if self.memory is None else check_memory(self.memory)
        if "model_" not in vars(self):  # fitted on a shared backbone: its prefix, own head
            return forward_shared(self._network, X, memory)
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

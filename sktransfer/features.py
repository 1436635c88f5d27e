"""The activations of a layer of a Keras source model, as a scikit-learn transformer."""

import numbers
import os
from math import prod

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from ._inference import chunked
from ._network import (
    clone_model,
    functional_graph,
    graph_layers,
    inline_nested,
    layer_output,
    resolve_cut,
)
from ._source import clone_sharing_source, resolve_source
from ._validation import check_number, describe_samples, validate_samples

_FLOATS = (np.float64, np.float32)


def _input_shape_for(sample_shape, input_shape):
    """The shape one sample of X takes to fit the source input, by reshaping.

    A sample that fits the source input as it is keeps its shape; one unknown
    dimension of the source input (a variable-length sequence) is filled in
    from the number of values.
    """
    sample_shape, input_shape = tuple(sample_shape), tuple(input_shape)
    n_values = prod(sample_shape)
    if len(sample_shape) == len(input_shape) and all(
        d is None or d == s for s, d in zip(sample_shape, input_shape, strict=True)
    ):
        return sample_shape
    known = prod(d for d in input_shape if d is not None)
    n_unknown = sum(d is None for d in input_shape)
    if n_unknown == 0 and known == n_values:
        return input_shape
    if n_unknown == 1 and n_values % known == 0:
        return tuple(n_values // known if d is None else d for d in input_shape)
    holds = f"holds {known} values" if n_unknown == 0 else f"needs a multiple of {known} values"
    raise ValueError(
        f"X has shape (n_samples, {', '.join(map(str, sample_shape))}) and the source "
        "expects inputs of shape "
        f"{(None, *input_shape)}: SourceFeatures reshapes each sample of X onto the source "
        f"input, which {holds}"
    )


def _own_copy(source, model):
    """A copy of a model the caller may still change; a model just loaded from a file as is."""

    if isinstance(source, (str, os.PathLike)):
        return model
    copy = clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


class SourceFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Activations of one layer of a pre-trained Keras model, as features.

    ``fit`` learns nothing from the data: it builds a Keras model from the
    source input to the output of ``layer``, and ``transform`` runs it in
    inference mode (Dropout off, BatchNorm on its moving statistics) and
    flattens the activations to one row per sample. Use it to put a frozen
    pre-trained representation in front of any scikit-learn model, or to
    score how well a source suits a task (:func:`sktransfer.selection.logme`).

    Parameters
    ----------
    source : keras.Model, str, path-like or callable, default=None
        The source model: a Sequential or functional ``keras.Model``, a path to
        a ``.keras`` file (loaded in Keras' safe mode), a fitted scikit-learn
        wrapper of a Keras model, or a zero-argument callable returning a
        model. It is never modified, and ``clone`` shares it instead of
        copying it. Required: ``None`` raises an error in ``fit``.

    layer : int, str or None, default=None
        The layer whose output gives the features: an index into the source's
        layers (input layers not counted; negative counts from the end) or a
        layer name; the layers of nested models count one by one. ``None``
        means ``-2``, the layer before the output layer (penultimate-layer
        features), or ``-1`` for a headless source (one whose last layer is
        not a ``Dense`` layer and applies no softmax or sigmoid, such as a
        Keras application built with ``include_top=False, pooling="avg"``).

    batch_size : int, default=256
        Number of rows passed through the network at a time in ``transform``.

    Attributes
    ----------
    n_features_in_ : int
        Number of values in one sample of the ``X`` seen during ``fit``: its
        number of columns for 2-D ``X``. Each sample of ``X`` is reshaped
        onto the source input, so it must hold exactly as many values as one
        source input (a source input with one unknown dimension, such as a
        variable-length sequence, takes any multiple of the known ones).

    input_shape_ : tuple of int
        Shape of one sample of the ``X`` seen during ``fit``:
        ``(n_features_in_,)`` for 2-D ``X``, ``(height, width, channels)``
        for images. ``transform`` takes samples of this shape, or flattened.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``, when ``X`` has string
        column names.

    n_features_out_ : int
        Number of features ``transform`` returns: the size of the chosen
        layer's output.

    layer_name_ : str
        Name of the chosen layer.

    feature_model_ : keras.Model
        The network ``transform`` runs, from rows of ``X`` to the flattened
        output of the chosen layer. It holds its own copy of the source
        weights, so later changes to the source model do not affect it.

    See Also
    --------
    sktransfer.selection.rank_sources : Rank source models for a task.

    Examples
    --------
    >>> import keras
    >>> import numpy as np
    >>> from sktransfer.features import SourceFeatures
    >>> source = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(8, activation="relu", name="hidden"),
    ...     keras.layers.Dense(3, activation="softmax", name="out"),
    ... ])
    >>> X = np.random.default_rng(0).normal(size=(10, 4))
    >>> features = SourceFeatures(source).fit(X)
    >>> features.layer_name_, features.transform(X).shape
    ('hidden', (10, 8))
    >>> features.get_feature_names_out()[:3].tolist()
    ['sourcefeatures0', 'sourcefeatures1', 'sourcefeatures2']
    """

    def __init__(self, source=None, *, layer=None, batch_size=256):
        self.source = source
        self.layer = layer
        self.batch_size = batch_size

    def __sklearn_clone__(self):
        return clone_sharing_source(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Keras computes in float32 by default, whatever the input dtype.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.n_features_out_

    def fit(self, X, y=None):
        """Build the feature network for the source and ``X``'s feature count.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Input rows, or samples of any shape (images, sequences). Only
            the shape of a sample is used.

        y : None
            Ignored.

        Returns
        -------
        self : SourceFeatures
            The fitted transformer.
        """
        import keras

        check_number("batch_size", self.batch_size, numbers.Integral, 1)
        X = validate_samples(self, X, reset=True, dtype=_FLOATS)
        model = _own_copy(self.source, resolve_source(self.source))
        graph = functional_graph(inline_nested(model))
        layers = graph_layers(graph)
        chosen = layers[resolve_cut(self.layer, layers, param="layer")]
        body = keras.Model(graph.input, layer_output(chosen), name="source_body")

        source_shape = tuple(graph.input.shape[1:])
        row_shape = _input_shape_for(X.shape[1:], source_shape)
        x = inputs = keras.Input(X.shape[1:], name="X")
        if row_shape != X.shape[1:]:
            x = keras.layers.Reshape(row_shape, name="reshape")(x)
        x = body(x)
        if len(x.shape) > 2:
            x = keras.layers.Flatten(name="flatten")(x)
        n_out = x.shape[-1]
        if n_out is None:
            raise ValueError(
                f"layer={chosen.name!r} gives outputs of shape {tuple(x.shape)} for X with "
                f"{describe_samples(X.shape[1:])}; SourceFeatures needs a layer whose "
                "output has a known size"
            )
        self.feature_model_ = keras.Model(inputs, x, name="sktransfer_features")
        self.layer_name_ = chosen.name
        self.n_features_out_ = int(n_out)
        return self

    def transform(self, X):
        """Return the activations of the chosen layer for each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input samples, shaped like those given to ``fit`` (``input_shape_``
            per sample) or flattened to ``n_features_in_`` columns.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out_)
            The flattened activations, computed in inference mode.
        """

        check_is_fitted(self)
        X = validate_samples(self, X, reset=False, dtype=_FLOATS)
        X = np.asarray(X, dtype=self.feature_model_.inputs[0].dtype)
        out = chunked(self._run, X, self.batch_size)
        return out.astype(np.result_type(out.dtype, np.float32), copy=False)

    def _run(self, chunk):
        import keras

        return keras.ops.convert_to_numpy(self.feature_model_(chunk, training=False))

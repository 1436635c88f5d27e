"""The source-knowledge terms ``L_source``: one class per value of ``source_loss``.

Each class holds everything its term needs: what it asks of the network
(the source's output layers, a frozen teacher), the targets it computes
before training, the outputs it reads in training, its loss, and the
documentation of its formula. The estimators, the network surgery and the
training objective ask the term; none of them branches on its name. A new
term is a new class here, added to ``SOURCE_TERMS``.

Everything that runs inside training uses ``keras.ops`` only, so it runs on
every Keras backend.
"""

from dataclasses import dataclass, field

import numpy as np

_EPS = 1e-7


@dataclass
class Prepared:
    """What a term computed before training, for one fit.

    ``term`` is the term that trains (the plain one when it turned out to
    have nothing to do), ``targets`` what the network's outputs are compared
    with, ``scale`` the term's normaliser, ``anchors`` the L2-SP source
    values by layer name, ``source_rows`` the joint term's source data (in
    the source's input space) and ``trace_key`` what else changes the traced
    training function.
    """

    term: object
    targets: object
    scale: float = 1.0
    anchors: dict = field(default_factory=dict)
    source_rows: tuple = None
    trace_key: tuple = ()


@dataclass
class Context:
    """What a term may read to prepare a fit (see ``SourceTerm.prepare``)."""

    network: object
    graph: object
    X: np.ndarray
    y: object
    source_data: object
    memory: object
    prefix: object
    fresh: bool


class SourceTerm:
    """No source-knowledge term: plain fine-tuning (``alpha=0``)."""

    name = None
    uses_source_head = False

    def needs_teacher(self, adapter_kind):
        """Whether the network needs a frozen copy of the whole source as teacher."""
        return False

    def check_fit(self, source_data):
        """Refuse the arguments of ``fit`` that this term cannot train with."""

    def prepare(self, context):
        return Prepared(self, context.y)

    def build(self, net, prepared):
        """Add the term's constant values to the training network ``net``."""

    def forward(self, net, x, training):
        """The network's outputs in training, as the loss reads them."""
        return net.target_output(net.adapt(x, training), training)

    def split(self, net, y, y_pred, reduce):
        """``(y_target, target_output, L_source)`` from the targets and outputs.

        ``reduce`` takes the batch means (``_distribution.Reduction``).
        """
        from keras import ops

        return y, y_pred, ops.zeros((), dtype=y_pred.dtype)


PLAIN = SourceTerm()


def transferred_trains(network):
    """Whether any transferred layer (after the frozen prefix) has weights that train."""
    return network.body is not None and bool(network.body.trainable_weights)


def variance(values):
    """Mean per-column variance, the scale of a squared-error source term."""
    value = float(np.mean(np.var(values, axis=0)))
    return value if value > 1e-12 else 1.0


def distill_loss(teacher, student, kind, scale, mean=None):
    """Batch mean of the distillation distance between source-head outputs.

    ``kind`` is the source output's activation: KL(teacher || student) for
    softmax, the mean Bernoulli KL over units for sigmoid, and the squared
    error divided by the teacher outputs' variance (``scale``) otherwise.
    ``mean`` takes the mean over the batch's rows (by default ``ops.mean``).
    """
    from keras import ops

    from ._compat import keras_logits

    # Log-probabilities from the student's logits where the backend keeps
    # them: exact where probabilities underflow, and no softmax to run.
    logits = keras_logits(student) if kind in ("softmax", "sigmoid") else None
    if kind == "softmax":
        t = ops.clip(teacher, _EPS, 1.0)
        if logits is None:
            log_s = ops.log(ops.clip(student, _EPS, 1.0))
        else:
            log_s = ops.log_softmax(logits, axis=-1)
        per_sample = ops.sum(t * (ops.log(t) - log_s), axis=-1)
    elif kind == "sigmoid":
        t = ops.clip(teacher, _EPS, 1.0 - _EPS)
        if logits is None:
            s = ops.clip(student, _EPS, 1.0 - _EPS)
            log_s, log_not_s = ops.log(s), ops.log(1 - s)
        else:
            log_s, log_not_s = ops.log_sigmoid(logits), ops.log_sigmoid(-logits)
        kl = t * (ops.log(t) - log_s) + (1 - t) * (ops.log(1 - t) - log_not_s)
        per_sample = ops.mean(kl, axis=-1)
    else:
        diff = ops.reshape(student - teacher, (ops.shape(student)[0], -1))
        per_sample = ops.mean(ops.square(diff), axis=-1) / scale
    return ops.mean(per_sample) if mean is None else mean(per_sample)


class Distill(SourceTerm):
    """``"distill"`` (Learning without Forgetting): the source's own output
    layers stay on the body as a second head, and their outputs ``s(x)``
    on each training batch are pulled towards the untouched source
    model's outputs ``t(x)``. For a softmax source output,
    ``L_source = mean_i KL(t(x_i) || s(x_i))``; for a sigmoid output, the
    Bernoulli KL averaged over units; otherwise
    ``L_source = mean_i mean_k (s_k(x_i) - t_k(x_i))**2 / v``, where
    ``v`` is the variance of the teacher outputs on the training data."""

    name = "distill"
    uses_source_head = True

    def needs_teacher(self, adapter_kind):
        # A trainable input adapter changes what reaches the source input
        # during training, so teacher outputs cannot be computed ahead.
        return adapter_kind == "dense"

    def prepare(self, context):
        from ._cache import activations
        from ._inference import call_batched

        network, X = context.network, context.X
        if not transferred_trains(network):
            # The target head reads frozen features: pulling the source head
            # back to the teacher changes nothing the estimator keeps.
            return Prepared(PLAIN, context.y)
        head = network.source_head
        if network.teacher is None and context.prefix is not None and context.fresh and head:
            # The layers after the frozen prefix still hold the source's
            # weights, so the teacher's pass goes on from the prefix's outputs.
            rest = [m for m in (network.body, head) if m is not None]
            teacher = call_batched(rest, context.prefix).astype(np.float32)
        elif network.teacher is None:
            # The adapter (no trainable weights here) maps X onto the source input.
            source_x = X if network.adapter is None else call_batched([network.adapter], X)
            teacher = activations(context.memory, [context.graph], source_x)
            teacher = teacher.astype(np.float32)
        else:
            teacher = activations(None, [network.adapter, network.teacher], X)
        targets = context.y if network.teacher is not None else (context.y, teacher)
        scale = variance(teacher) if network.source_output == "linear" else 1.0
        return Prepared(self, targets, scale=scale)

    def forward(self, net, x, training):
        from keras import ops

        adapted = net.adapt(x, training)
        features = net.features(adapted, training)
        out = net.head(features, training=training)
        student = net.source_out(features, training)
        if net.teacher is None:
            return out, student
        return out, student, ops.stop_gradient(net.teacher(adapted, training=False))

    def split(self, net, y, y_pred, reduce):
        if net.teacher is None:
            (y, teacher), (out, student) = y, y_pred
        else:
            out, student, teacher = y_pred
        kind = net.network.source_output
        return y, out, distill_loss(teacher, student, kind, net.scale, reduce.rows_mean)


class L2SP(SourceTerm):
    """``"l2sp"`` (L2-SP): ``L_source = ||w - w_0||**2 / ||w_0||**2``,
    summed over the trainable transferred weights ``w`` with their
    source values ``w_0``: the squared relative distance from the source."""

    name = "l2sp"

    def prepare(self, context):
        network, graph = context.network, context.graph
        names = {layer.name for layer in graph.layers}
        anchors = {
            layer.name: [w.numpy() for w in graph.get_layer(layer.name).trainable_weights]
            for layer in (network.body.layers if network.body is not None else [])
            if layer.trainable_weights and layer.name in names
        }
        if not anchors:  # nothing transferred trains: nothing to pull back
            return Prepared(PLAIN, context.y)
        return Prepared(self, context.y, anchors=anchors)

    def build(self, net, prepared):
        import keras

        constant = keras.initializers.Constant
        net.anchor_layers = tuple(prepared.anchors)
        values = [value for name in net.anchor_layers for value in prepared.anchors[name]]
        net.anchor_values = [
            net.add_weight(
                shape=value.shape, initializer=constant(value), trainable=False, name="anchor"
            )
            for value in values
        ]
        norm = max(float(sum((v.astype("float64") ** 2).sum() for v in values)), _EPS)
        net.anchor_norm = net.add_weight(
            shape=(), initializer=constant(norm), trainable=False, name="anchor_norm"
        )

    def split(self, net, y, y_pred, reduce):
        from keras import ops

        anchored = [
            variable
            for name in net.anchor_layers
            for variable in net.body.get_layer(name).trainable_weights
        ]
        distance = ops.sum(
            [
                ops.sum(ops.square(variable - anchor))
                for variable, anchor in zip(anchored, net.anchor_values, strict=True)
            ]
        )
        return y, y_pred, distance / net.anchor_norm


def source_task_loss(kind, sparse):
    """Per-batch loss ``f(y, p, scale, mean)`` of the source head on source labels,
    ``mean`` taking the mean over the batch."""
    import keras
    from keras import ops

    if kind == "softmax":
        if sparse:
            return lambda y, p, scale, mean: mean(
                keras.losses.sparse_categorical_crossentropy(y, p)
            )
        return lambda y, p, scale, mean: mean(keras.losses.categorical_crossentropy(y, p))
    if kind == "sigmoid":
        return lambda y, p, scale, mean: mean(keras.losses.binary_crossentropy(y, p))
    return lambda y, p, scale, mean: mean(ops.square(p - y)) / scale


class Joint(SourceTerm):
    """``"joint"``: the source task's own loss on source data, passed to
    ``fit`` as ``source_data=SourceData(X_source, y_source)``. Each
    training step draws a batch of source data and computes, through
    the source head, cross-entropy for a softmax source (integer labels
    or one-hot rows), binary cross-entropy for a sigmoid source, and
    otherwise ``mean((s(x) - y)**2) / var(y_source)``."""

    name = "joint"
    uses_source_head = True

    def check_fit(self, source_data):
        if source_data is None:
            raise ValueError(
                "source_loss='joint' needs the source task's data: pass "
                "fit(X, y, source_data=SourceData(X_source, y_source))"
            )

    def prepare(self, context):
        network = context.network
        x_source, y_source, sparse = check_source_data(
            context.source_data, context.graph, network.source_output
        )
        scale = variance(y_source) if network.source_output == "linear" else 1.0
        return Prepared(
            self,
            context.y,
            scale=scale,
            source_rows=(x_source, y_source),
            trace_key=(sparse, y_source.dtype.str),
        )

    def build(self, net, prepared):
        sparse = prepared.trace_key[0]
        net.source_task_loss = source_task_loss(net.network.source_output, sparse)

    def forward(self, net, x, training):
        x, x_source = x
        out = net.target_output(net.adapt(x, training), training)
        source_features = net.features(x_source, training)
        return out, net.source_out(source_features, training)

    def split(self, net, y, y_pred, reduce):
        (y, y_source), (out, source_out) = y, y_pred
        return y, out, net.source_task_loss(y_source, source_out, net.scale, reduce.mean)


SOURCE_TERMS = {term.name: term for term in (Distill(), L2SP(), Joint())}


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


def _source_inputs(X, input_shape):
    """Source inputs as float32 in the source's input shape."""
    x = np.asarray(X, dtype=np.float32)
    if x.shape[1:] != input_shape:
        if int(np.prod(x.shape[1:])) != int(np.prod(input_shape)):
            raise ValueError(
                f"source_data.X has shape {x.shape}, which does not fit the source "
                f"input {(None, *input_shape)}"
            )
        x = x.reshape((len(x), *input_shape))
    if not np.all(np.isfinite(x)):
        raise ValueError("source_data.X contains NaN or infinity")
    return x


def check_source_data(source_data, graph, kind):
    """Validate source data against the source's input and its ``kind`` of output.

    Returns ``(x, y, sparse)``: inputs in the source's input shape, targets
    as the source head's loss takes them, and whether they are class indices.
    """
    if not isinstance(source_data, SourceData):
        raise TypeError(
            "source_data must be a sktransfer.SourceData(X_source, y_source); got "
            f"{type(source_data).__name__}"
        )
    y = np.asarray(source_data.y)
    n_x = len(source_data.X)
    if n_x == 0 or n_x != len(y):
        raise ValueError(
            f"source_data holds {n_x} inputs and {len(y)} targets; it needs the "
            "same non-zero number of each"
        )
    x = _source_inputs(source_data.X, tuple(graph.input.shape[1:]))
    n_out = int(graph.output.shape[-1])
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

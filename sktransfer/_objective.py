"""The transfer objective: ``L = (1 - alpha) * L_target + alpha * L_source``.

Written with ``keras.ops`` only, as a ``keras.Model`` that overrides
``compute_loss``, so it runs on every Keras backend.
"""

import keras
from keras import ops

_EPS = 1e-7


def target_loss_fn(task):
    """Per-sample loss of the target head for ``task``."""
    if task == "binary":
        return lambda y, p: keras.losses.binary_crossentropy(ops.expand_dims(y, -1), p)
    if task == "multiclass":
        return keras.losses.sparse_categorical_crossentropy
    return keras.losses.mean_squared_error


def distill_loss(teacher, student, kind, scale):
    """Batch mean of the distillation distance between source-head outputs.

    ``kind`` is the source output's activation: KL(teacher || student) for
    softmax, the mean Bernoulli KL over units for sigmoid, and the squared
    error divided by the teacher outputs' variance (``scale``) otherwise.
    """
    # Where the backend keeps the student's pre-activation values (TensorFlow
    # does, as Keras' own losses use them), the log-probabilities come from
    # them: exact where the probabilities underflow, and no softmax to run
    # in training, which on small batches costs more than the rest of the
    # term.
    logits = getattr(student, "_keras_logits", None)
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
    return ops.mean(per_sample)


def source_task_loss(kind, sparse):
    """Per-batch loss ``f(y, p, scale)`` of the source head on source labels.

    Cross-entropy for a softmax head (``sparse`` integer labels or one-hot
    rows), binary cross-entropy for a sigmoid head, and otherwise the squared
    error divided by the variance of the source targets (``scale``).
    """
    if kind == "softmax":
        if sparse:
            return lambda y, p, scale: ops.mean(keras.losses.sparse_categorical_crossentropy(y, p))
        return lambda y, p, scale: ops.mean(keras.losses.categorical_crossentropy(y, p))
    if kind == "sigmoid":
        return lambda y, p, scale: ops.mean(keras.losses.binary_crossentropy(y, p))
    return lambda y, p, scale: ops.mean(ops.square(p - y)) / scale


def scaled_optimizer(optimizer, variables, scale):
    """``optimizer`` with the updates of ``variables`` scaled by ``scale``.

    The learning rate itself is scaled inside ``update_step``, so the size of
    the update shrinks by ``scale`` for every optimizer, Adam included (Adam
    ignores a scaled gradient).
    """
    if scale == 1.0:
        return optimizer
    # The TensorFlow backend hands update_step the backend variable (.value).
    scaled = {id(v) for v in variables} | {id(getattr(v, "value", v)) for v in variables}
    base = type(optimizer)

    class ScaledOptimizer(base):
        def update_step(self, gradient, variable, learning_rate):
            if id(variable) in scaled:
                learning_rate = learning_rate * scale
            return super().update_step(gradient, variable, learning_rate)

    ScaledOptimizer.__name__ = f"Scaled{base.__name__}"
    return ScaledOptimizer.from_config(optimizer.get_config())


class TransferNet(keras.Model):
    """Training-time wrapper around the parts of a target network.

    The frozen prefix is always called with ``training=False`` (so its
    BatchNorm and Dropout run in inference mode whatever ``fit`` asks), and
    the loss adds the source-knowledge term ``mode`` to the target loss:

    - ``"distill"``: ``y`` is ``(y_target, teacher_outputs)`` when teacher
      outputs are precomputed, else ``y_target`` (the network holds a frozen
      teacher);
    - ``"joint"``: ``x`` is ``(x_target, x_source)`` and ``y`` is
      ``(y_target, y_source)``;
    - ``"l2sp"``: ``anchors`` pairs each trainable transferred variable with
      its source value;
    - ``None``: plain fine-tuning.
    """

    def __init__(
        self,
        network,
        *,
        task,
        alpha,
        mode,
        anchors=None,
        scale=1.0,
        source_loss=None,
        prefix_cached=False,
    ):
        super().__init__()
        self.network = network
        self.adapter = network.adapter
        self.frozen = network.frozen
        self.body = network.body
        self.head = network.head
        self.source_head = network.source_head
        self.teacher = network.teacher if mode == "distill" else None
        self.task = task
        self.mode = mode
        self.prefix_cached = prefix_cached
        self._target_loss = target_loss_fn(task)
        self._source_task_loss = source_loss
        # Values rather than Python constants, so that one traced training
        # function serves every alpha (see _trainer).
        constant = keras.initializers.Constant
        self.alpha = self.add_weight(
            shape=(), initializer=constant(float(alpha)), trainable=False, name="alpha"
        )
        self.scale = self.add_weight(
            shape=(), initializer=constant(float(scale)), trainable=False, name="scale"
        )
        self._anchor_layers = tuple(anchors or ())
        if self.mode == "l2sp":
            values = [value for name in self._anchor_layers for value in anchors[name]]
            self.anchor_values = [
                self.add_weight(
                    shape=value.shape, initializer=constant(value), trainable=False, name="anchor"
                )
                for value in values
            ]
            norm = max(float(sum((v.astype("float64") ** 2).sum() for v in values)), _EPS)
            self.anchor_norm = self.add_weight(
                shape=(), initializer=constant(norm), trainable=False, name="anchor_norm"
            )
        self.target_tracker = keras.metrics.Mean(name="target_loss")
        self.source_tracker = keras.metrics.Mean(name="source_loss")

    def _anchored(self):
        """The transferred variables that L2-SP pulls towards their anchors."""
        return [
            variable
            for name in self._anchor_layers
            for variable in self.body.get_layer(name).trainable_weights
        ]

    def _features(self, z, training):
        """Body features of an input in the source's input space (or past the
        frozen prefix, when its outputs were computed before training)."""
        if self.frozen is not None and not self.prefix_cached:
            z = self.frozen(z, training=False)
        if self.body is not None:
            z = self.body(z, training=training)
        return z

    def _source_out(self, features, training):
        if self.source_head is None:
            return features
        return self.source_head(features, training=training)

    def call(self, x, training=None):
        if self.mode == "joint":
            x, x_source = x
        adapted = x
        if self.adapter is not None and not self.prefix_cached:
            adapted = self.adapter(x, training=training)
        features = self._features(adapted, training)
        out = self.head(features, training=training)
        if self.mode == "joint":
            source_features = self._features(x_source, training)
            return out, self._source_out(source_features, training)
        if self.mode != "distill":
            return out
        student = self._source_out(features, training)
        if self.teacher is None:
            return out, student
        return out, student, ops.stop_gradient(self.teacher(adapted, training=False))

    def _source_term(self, y, y_pred):
        """Split targets and outputs, and compute ``L_source``."""
        if self.mode == "joint":
            (y, y_source), (out, source_out) = y, y_pred
            return y, out, self._source_task_loss(y_source, source_out, self.scale)
        if self.mode == "distill":
            if self.teacher is None:
                (y, teacher), (out, student) = y, y_pred
            else:
                out, student, teacher = y_pred
            kind = self.network.source_output
            return y, out, distill_loss(teacher, student, kind, self.scale)
        if self.mode == "l2sp":
            distance = ops.sum(
                [
                    ops.sum(ops.square(variable - anchor))
                    for variable, anchor in zip(self._anchored(), self.anchor_values, strict=True)
                ]
            )
            return y, y_pred, distance / self.anchor_norm
        return y, y_pred, ops.zeros((), dtype=y_pred.dtype)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        y, out, source = self._source_term(y, y_pred)
        per_sample = self._target_loss(y, out)
        if sample_weight is None:
            target = ops.mean(per_sample)
        else:
            weight = ops.cast(ops.reshape(sample_weight, ops.shape(per_sample)), out.dtype)
            target = ops.sum(per_sample * weight) / ops.maximum(ops.sum(weight), _EPS)
        loss = (1.0 - self.alpha) * target + self.alpha * source
        if self.losses:
            loss = loss + ops.sum(self.losses)
        self.target_tracker.update_state(target)
        self.source_tracker.update_state(source)
        return loss

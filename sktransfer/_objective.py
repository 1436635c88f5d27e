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
    if kind == "softmax":
        t = ops.clip(teacher, _EPS, 1.0)
        s = ops.clip(student, _EPS, 1.0)
        per_sample = ops.sum(t * (ops.log(t) - ops.log(s)), axis=-1)
    elif kind == "sigmoid":
        t = ops.clip(teacher, _EPS, 1.0 - _EPS)
        s = ops.clip(student, _EPS, 1.0 - _EPS)
        kl = t * (ops.log(t) - ops.log(s)) + (1 - t) * (ops.log(1 - t) - ops.log(1 - s))
        per_sample = ops.mean(kl, axis=-1)
    else:
        diff = ops.reshape(student - teacher, (ops.shape(student)[0], -1))
        per_sample = ops.mean(ops.square(diff), axis=-1) / scale
    return ops.mean(per_sample)


class TransferNet(keras.Model):
    """Training-time wrapper around the parts of a target network.

    The frozen prefix is always called with ``training=False`` (so its
    BatchNorm and Dropout run in inference mode whatever ``fit`` asks), and
    the loss adds the source-knowledge term to the target loss.

    ``y`` for ``fit`` is ``(y_target, teacher_outputs)`` when the teacher
    outputs are precomputed, else ``y_target``.
    """

    def __init__(self, network, *, task, alpha, source_loss, anchors=(), scale=1.0):
        super().__init__()
        self.network = network
        self.adapter = network.adapter
        self.frozen = network.frozen
        self.body = network.body
        self.head = network.head
        self.source_head = network.source_head
        self.teacher = network.teacher
        self.task = task
        self.alpha = float(alpha)
        self.source_loss_kind = source_loss
        self.distill = source_loss == "distill" and self.alpha > 0
        self.scale = float(scale)
        self._target_loss = target_loss_fn(task)
        self.anchored = [(variable, value) for variable, value in anchors]
        if self.anchored:
            self.anchor_values = [
                self.add_weight(
                    shape=value.shape,
                    initializer=keras.initializers.Constant(value),
                    trainable=False,
                    name=f"anchor_{i}",
                )
                for i, (_, value) in enumerate(self.anchored)
            ]
            self.anchor_norm = max(
                float(sum((value.astype("float64") ** 2).sum() for _, value in anchors)),
                _EPS,
            )
        self.target_tracker = keras.metrics.Mean(name="target_loss")
        self.source_tracker = keras.metrics.Mean(name="source_loss")

    def call(self, x, training=None):
        z = x
        if self.adapter is not None:
            z = self.adapter(z, training=training)
        adapted = z
        if self.frozen is not None:
            z = self.frozen(z, training=False)
        if self.body is not None:
            z = self.body(z, training=training)
        out = self.head(z, training=training)
        if not self.distill:
            return out
        student = self.source_head(z, training=training) if self.source_head else z
        if self.teacher is None:
            return out, student
        teacher = ops.stop_gradient(self.teacher(adapted, training=False))
        return out, student, teacher

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.distill:
            if self.teacher is None:
                y, teacher = y
                out, student = y_pred
            else:
                out, student, teacher = y_pred
        else:
            out = y_pred
        per_sample = self._target_loss(y, out)
        if sample_weight is None:
            target = ops.mean(per_sample)
        else:
            weight = ops.cast(ops.reshape(sample_weight, ops.shape(per_sample)), out.dtype)
            target = ops.sum(per_sample * weight) / ops.maximum(ops.sum(weight), _EPS)
        if self.distill:
            source = distill_loss(teacher, student, self.network.source_output, self.scale)
        elif self.anchored and self.alpha > 0:
            source = ops.sum(
                [
                    ops.sum(ops.square(variable - anchor))
                    for (variable, _), anchor in zip(
                        self.anchored, self.anchor_values, strict=True
                    )
                ]
            ) / ops.cast(self.anchor_norm, out.dtype)
        else:
            source = ops.zeros((), dtype=out.dtype)
        loss = (1.0 - self.alpha) * target + self.alpha * source
        if self.losses:
            loss = loss + ops.sum(self.losses)
        self.target_tracker.update_state(target)
        self.source_tracker.update_state(source)
        return loss

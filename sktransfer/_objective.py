"""The transfer objective: ``L = (1 - alpha) * L_target + alpha * L_source``.

Written with ``keras.ops`` only, as a ``keras.Model`` that overrides
``compute_loss``, so it runs on every Keras backend.
"""

import keras
from keras import ops

from ._distribution import batch_reduction

_EPS = 1e-7


def target_loss_fn(task):
    """Per-sample loss of the target head for ``task``."""
    if task == "binary":
        return lambda y, p: keras.losses.binary_crossentropy(ops.expand_dims(y, -1), p)
    if task == "multiclass":
        return keras.losses.sparse_categorical_crossentropy
    return keras.losses.mean_squared_error


def scaled_optimizer(base, variables, scale):
    """The optimizer class ``base``, with the updates of ``variables`` scaled by ``scale``.

    The learning rate itself is scaled inside ``update_step``, so the size of
    the update shrinks by ``scale`` for every optimizer, Adam included (Adam
    ignores a scaled gradient).
    """
    if scale == 1.0:
        return base
    # The TensorFlow backend hands update_step the backend variable (.value).
    scaled = {id(v) for v in variables} | {id(getattr(v, "value", v)) for v in variables}

    class ScaledOptimizer(base):
        def update_step(self, gradient, variable, learning_rate):
            if id(variable) in scaled:
                learning_rate = learning_rate * scale
            return super().update_step(gradient, variable, learning_rate)

    ScaledOptimizer.__name__ = f"Scaled{base.__name__}"
    return ScaledOptimizer


class TransferNet(keras.Model):
    """Training-time wrapper around the parts of a target network.

    The frozen prefix is always called with ``training=False`` (so its
    BatchNorm and Dropout run in inference mode whatever ``fit`` asks), and
    the loss adds the source-knowledge term to the target loss. The term
    (see ``_source_terms``) decides what the network outputs in training and
    how its loss reads them; ``prepared`` holds what it computed before
    training.
    """

    def __init__(self, network, *, task, alpha, prepared, prefix_cached=False):
        # A fixed name: an automatic one is new for every fit, and so are the
        # names of the variables below, which TensorFlow keeps native memory
        # for (see _trainer.optimizer_class).
        super().__init__(name="sktransfer_training")
        term = prepared.term
        self.network = network
        # When the frozen prefix ran ahead, the adapter and the prefix take no
        # part in training: left out, their variables (most of a large
        # backbone) stay out of every copy of the training network.
        self.adapter = None if prefix_cached else network.adapter
        self.frozen = None if prefix_cached else network.frozen
        self.body = network.body
        self.head = network.head
        # Parts a term turned out not to need are left out, so that they
        # neither train nor tell this network apart from a plain one.
        self.source_head = network.source_head if term.uses_source_head else None
        self.teacher = network.teacher if term.needs_teacher(network.adapter_kind) else None
        self.task = task
        self.term = term
        if term.name is None:  # no source term: the objective is L_target alone
            alpha = 0.0
        self.prefix_cached = prefix_cached
        self._target_loss = target_loss_fn(task)
        # Values rather than Python constants, so that one traced training
        # function serves every alpha (see _reuse).
        constant = keras.initializers.Constant
        self.alpha = self.add_weight(
            shape=(), initializer=constant(float(alpha)), trainable=False, name="alpha"
        )
        self.scale = self.add_weight(
            shape=(), initializer=constant(float(prepared.scale)), trainable=False, name="scale"
        )
        self.term.build(self, prepared)
        self.target_tracker = keras.metrics.Mean(name="target_loss")
        self.source_tracker = keras.metrics.Mean(name="source_loss")

    def parts(self):
        """The sub-models this network calls, None for absent ones."""
        return (self.adapter, self.frozen, self.body, self.head, self.source_head, self.teacher)

    def adapt(self, x, training):
        """``x`` mapped onto the source input (unless the prefix ran ahead)."""
        if self.adapter is not None and not self.prefix_cached:
            return self.adapter(x, training=training)
        return x

    def features(self, z, training):
        """Body features of an input in the source's input space (or past the
        frozen prefix, when its outputs were computed before training)."""
        if self.frozen is not None and not self.prefix_cached:
            z = self.frozen(z, training=False)
        if self.body is not None:
            z = self.body(z, training=training)
        return z

    def target_output(self, adapted, training):
        return self.head(self.features(adapted, training), training=training)

    def source_out(self, features, training):
        if self.source_head is None:
            return features
        return self.source_head(features, training=training)

    def call(self, x, training=None):
        return self.term.forward(self, x, training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # Under a distribution each mean is taken over the whole batch,
        # whichever device holds which rows (see _distribution.Reduction).
        reduce = batch_reduction(sample_weight)
        y, out, source = self.term.split(self, y, y_pred, reduce)
        per_sample = self._target_loss(y, out)
        if sample_weight is None:
            target = reduce.rows_mean(per_sample)
        else:
            weight = ops.reshape(reduce.weight(sample_weight), ops.shape(per_sample))
            target = reduce.weighted_mean(per_sample, ops.cast(weight, out.dtype))
        loss = (1.0 - self.alpha) * target + self.alpha * source
        if self.losses:
            loss = loss + ops.sum(self.losses)
        self.target_tracker.update_state(target)
        self.source_tracker.update_state(source)
        return reduce.loss(loss)

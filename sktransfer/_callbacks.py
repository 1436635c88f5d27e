"""User callbacks see the target network, not the training wrapper around it.

Training runs on a ``TransferNet``: a Keras model whose inputs may be the
frozen prefix's outputs rather than X, and that Keras cannot save. Keras
callbacks read and write ``self.model``: ``ModelCheckpoint`` saves it,
``BackupAndRestore`` restores it, user code calls ``self.model.predict(X)``.
So each user callback is given a *view*: a functional model on the layers of
the network being trained, from the raw X given to ``fit`` to the target
output, the graph of ``model_``, with the training optimizer attached for
callbacks that change the learning rate. What a callback asks of the view
(stop training, resume from an epoch) is passed on to the training network.
"""

import keras

from ._compat import carry_initial_epoch

_HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)


def target_view(net):
    """A functional model from raw X to the target output, sharing ``net``'s layers."""
    model = net.network.model
    view = keras.Model(model.inputs, model.outputs, name=model.name)
    view.optimizer = net.optimizer
    view.stop_training = False
    return view


class OnTargetNetwork(keras.callbacks.Callback):
    """Run the user callback ``inner`` with ``view`` as its model."""

    def __init__(self, inner, view):
        super().__init__()
        self.inner, self.view = inner, view

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(self.view)

    def set_params(self, params):
        super().set_params(params)
        self.inner.set_params(params)

    def _relay(self, hook, *args, **kwargs):
        getattr(self.inner, hook)(*args, **kwargs)
        if getattr(self.view, "stop_training", False):
            self.model.stop_training = True
        if hook == "on_train_begin":  # BackupAndRestore resumes from a saved epoch
            carry_initial_epoch(self.view, self.model)


def _make_hook(name):
    def hook(self, *args, **kwargs):
        self._relay(name, *args, **kwargs)

    hook.__name__ = name
    return hook


for _name in _HOOKS:
    setattr(OnTargetNetwork, _name, _make_hook(_name))


def user_callbacks(callbacks, net):
    """The user's callbacks, each seeing the target network of ``net``."""
    if not callbacks:
        return []
    view = target_view(net)
    return [OnTargetNetwork(callback, view) for callback in callbacks]

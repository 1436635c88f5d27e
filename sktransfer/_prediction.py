"""Prediction: a fitted network's outputs on validated rows, as fast as a search needs.

Two things make predictions cheap where a search makes many of them: the
fitted networks of one architecture share one traced predict function
(``Predictors``), and with ``memory`` the frozen prefix's outputs on the
scored rows come from the activation cache (``memory_predictor``).
"""

import functools
import threading
import weakref

import numpy as np

from ._distribution import mirrored, predict_unreplicated
from ._inference import chunked
from ._reuse import Registry, compatible, copy_variables

PREDICT_BATCH = 4096  # rows per call into the traced function
_TWIN_CALLS = 4  # predictions of a model served by its architecture's shared twin


class Predictors:
    """Traced predict functions shared by the networks of one architecture.

    Keras traces a new predict function for every model it predicts with, so
    a search that scores a fresh ``model_`` per candidate and fold traces once
    per fit (about 25 ms for a small network) and TensorFlow warns about
    excessive retracing. Here each architecture gets one *twin* network,
    traced once; a prediction copies the model's weights into the twin under
    the twin's lock and runs the twin's traced function, the same graph as the
    model's own, so the values are the same. A model that keeps predicting
    (serving rather than scoring) switches to its own traced function after
    a few calls, which saves the copy; so does a model whose architecture
    cannot be cloned, and every model on backends other than TensorFlow and
    JAX.

    On JAX nothing is copied: the twin's compiled function takes the model's
    weights as arguments (see ``_predict_jax``), so every fitted model of an
    architecture shares one compilation, however often it predicts.

    Under a ``tf.distribute`` strategy, and for a model built under one,
    predictions run once, on one device, through the model's own traced
    call (see ``_distribution.mirrored``), and no twin is made there.
    """

    def __init__(self, size=8):
        self._twins = Registry(size)  # architecture key -> (twin or None, lock)
        self._keys = weakref.WeakKeyDictionary()  # model -> architecture key
        self._calls = weakref.WeakKeyDictionary()  # model -> predictions so far
        self._compiled = weakref.WeakKeyDictionary()  # twin (JAX) -> its predict function
        self._lock = threading.Lock()

    def _hot(self, model):
        """Whether ``model`` predicted often enough to be worth its own trace."""
        with self._lock:
            calls = self._calls[model] = self._calls.get(model, 0) + 1
        return calls > _TWIN_CALLS

    def _key(self, model):
        from ._fingerprint import fingerprint

        with self._lock:
            key = self._keys.get(model)
        if key is None:
            key = fingerprint([model], weights=False)
            with self._lock:
                self._keys[model] = key
        return key

    def _twin(self, model):
        from ._network import clone_model

        def make():
            try:
                twin = clone_model(model)
            except Exception:  # custom layers that do not clone: no twin
                twin = None
            return twin, threading.Lock()

        return self._twins.setdefault(self._key(model), make)

    def predict(self, model, x):
        """``model.predict_on_batch(x)`` through the architecture's twin."""
        import keras

        if keras.backend.backend() == "jax":
            return self._predict_jax(model, x)
        if keras.backend.backend() == "tensorflow" and mirrored(model):
            return predict_unreplicated(model, x)
        if keras.backend.backend() != "tensorflow" or self._hot(model):
            return np.asarray(model.predict_on_batch(x))
        twin, lock = self._twin(model)
        if twin is None or not compatible(twin, model):
            return np.asarray(model.predict_on_batch(x))
        with lock:
            copy_variables(model, twin)
            return np.asarray(twin.predict_on_batch(x))

    def _predict_jax(self, model, x):
        """``model``'s outputs on ``x`` from a compiled function that donates nothing.

        Keras' ``predict_on_batch`` on JAX donates the model's weight buffers
        to its compiled step and stores the step's copies back, so a second
        thread predicting with the same model reads buffers that are gone
        ("Buffer has been deleted or donated"). Here the weights are plain
        arguments of the twin's jitted ``stateless_call``, the computation of
        Keras' predict step: threads share it without a lock, and the values
        are those of ``predict_on_batch``.
        """
        twin, _ = self._twin(model)
        if twin is None or not compatible(twin, model):
            twin = model  # compiled for this model alone
        with self._lock:
            function = self._compiled.get(twin)
            if function is None:
                function = self._compiled[twin] = _stateless_predict(twin)
        return np.asarray(function([v.value for v in model.variables], x))


def _stateless_predict(model):
    """A jitted ``f(values, x)``: ``model`` in inference mode with ``values`` as weights.

    ``values`` follow ``model.variables`` (or any model of the same
    architecture). The function refers to ``model`` weakly, so that the cache
    holding it never keeps a model alive.
    """
    import jax

    ref = weakref.ref(model)

    def run(values, x):
        model = ref()
        by_id = {id(v): value for v, value in zip(model.variables, values, strict=True)}
        trainable = [by_id[id(v)] for v in model.trainable_variables]
        non_trainable = [by_id[id(v)] for v in model.non_trainable_variables]
        outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return outputs

    return jax.jit(run)


PREDICTORS = Predictors()
# model_ -> (prefix, rest, key) or None; weak, so that predicting never
# changes the estimator and a dropped model takes its entry along.
_MEMORY_PREDICTORS = weakref.WeakKeyDictionary()
_MEMORY_LOCK = threading.Lock()


def _split_at_prefix(model, adapter_kind):
    """``(prefix, rest, key)`` to predict through the frozen prefix's cache, or None.

    ``prefix`` is the frozen prefix of ``model`` (with a reshaping adapter),
    ``rest`` the model from its outputs to the target output, and ``key`` the
    prefix's fingerprint in the cache. None when nothing frozen comes first
    or the prefix holds layers other than Keras' own.
    """
    import keras

    from ._cache import keras_layers_only
    from ._fingerprint import fingerprint
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


def memory_predictor(model, adapter_kind):
    """The fitted network split at its frozen prefix, built once per fitted model."""
    with _MEMORY_LOCK:
        if model in _MEMORY_PREDICTORS:
            return _MEMORY_PREDICTORS[model]
    predictor = _split_at_prefix(model, adapter_kind)
    with _MEMORY_LOCK:
        return _MEMORY_PREDICTORS.setdefault(model, predictor)


def forward(model, X, *, memory=None, adapter_kind="none"):
    """Outputs of the fitted ``model`` on validated float32 rows ``X``.

    With ``memory``, the frozen prefix's outputs on ``X`` are read from (or
    stored in) the activation cache, so the candidates of a search share
    them on each scoring fold; such predictions run the prefix and the rest
    of the network separately and equal ``model.predict`` to float32
    rounding.
    """
    from ._cache import activations, cacheable

    if memory is not None:
        predictor = memory_predictor(model, adapter_kind)
        if predictor is not None and cacheable(memory, predictor[0], X):
            prefix, model, key = predictor
            X = activations(memory, prefix, X, key=key)
    return chunked(functools.partial(PREDICTORS.predict, model), X, PREDICT_BATCH)


def forward_shared(network, X, memory=None):
    """Outputs of a network fitted on a shared frozen backbone (``_shared``).

    The backbone's prefix runs (or its outputs on ``X`` are read from
    ``memory``, under the key predictions of a built ``model_`` use), then
    the estimator's own head: the computation of a ``model_`` predicting
    through the cache, so the values are the same.
    """
    from ._cache import activations

    features = activations(memory, network.shared.models, X, key=network.shared.predict_key)
    return chunked(functools.partial(PREDICTORS.predict, network.head), features, PREDICT_BATCH)

"""A frozen backbone built once and shared, read-only, by the fits of a search.

Each fit builds its network on a copy of the source: for an application
backbone of a hundred and fifty layers that copy (Keras building layers and
variables) costs more than everything else a fit with ``memory`` does once
the backbone's outputs are cached. When every transferred layer is frozen,
the fits of one source, ``cut``, ``freeze`` and input mapping compute the
same frozen prefix, so with ``memory`` set they share one copy of it, kept
here (``Backbone``), and each fit builds only its own head.

That shared copy is sktransfer's own, never the source and never handed
out: a fit that shares it leaves ``model_`` unbuilt, prediction runs the
shared prefix and the estimator's own head, and the first read of
``model_`` (saving, pickling, a warm start, the user) builds the estimator
a private copy (``materialise``). Fitted estimators therefore never share
weights that anyone can change, and results are those of a fit that copies
the source: the same weights, the same seeds drawn in the same order.
"""

import dataclasses
import hashlib
import json
import threading

import numpy as np

from ._reuse import Registry
from ._seeds import draw_seed

_BACKBONES = Registry(2)  # a backbone's weights can be large: keep few
_FLATTENED = Registry(2)  # source key -> its nested models inlined
_MATERIALISE_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Backbone:
    """The shared frozen prefix of one configuration and what a fit needs from it."""

    adapter: object
    frozen: object
    frozen_layers: tuple
    source_output: str
    draws: int  # seeds a copy of the source draws before the head's
    keys: dict  # the activation cache's keys of the prefix (``prefix_keys``)
    predict_key: str  # the key predictions of a fitted ``model_`` store under

    @property
    def models(self):
        return [m for m in (self.adapter, self.frozen) if m is not None]


def shared_network(est, source, sample_shape, task, seed, term, memory):
    """The network of this fit on a shared frozen backbone, or None if it needs its own.

    A fit shares when ``memory`` is set, the source's weights are
    transferred, every layer up to ``cut`` is frozen, the input mapping
    learns nothing, all layers are Keras' own (their inference outputs are
    deterministic, so cached outputs stand for them), no callback needs the
    network during training, and the source-knowledge term has nothing to
    train (distillation and L2-SP act on trainable transferred layers only).
    """
    from ._network import Network, _head, head_units

    if not _may_share(est, term, memory):
        return None
    backbone = _backbone(est, source, sample_shape, term)
    if backbone is None:
        return None
    rng = np.random.default_rng(seed)
    for _ in range(backbone.draws):  # as many as copying the source draws, in order
        draw_seed(rng)
    shape = tuple(backbone.frozen.output.shape[1:])
    head = _head(shape, head_units(est.head), task.n_outputs, task.activation, rng)
    return Network(
        model=None,
        adapter=backbone.adapter,
        frozen=backbone.frozen,
        head=head,
        adapter_kind=_adapter_kind(est, sample_shape, backbone),
        frozen_layers=list(backbone.frozen_layers),
        source_output=backbone.source_output,
        shared=backbone,
    )


def flattened(source):
    """``inline_nested(source)``, kept per source so that its fits copy it once.

    A source that holds a backbone as a layer (Keras' fine-tuning pattern)
    is inlined into a copy before every cut; the copy is only read (each
    fit builds its network on a copy of it), so fits of the same source,
    weights included, share it.
    """
    from ._fingerprint import model_key
    from ._network import functional_graph, has_nested, inline_nested

    if not has_nested(functional_graph(source)):
        return source
    return _FLATTENED.setdefault(model_key(source), lambda: inline_nested(source))


def _may_share(est, term, memory):
    return (
        memory is not None
        and getattr(memory, "location", None) is not None
        and est.pretrained
        and est._cache_prefix
        and not est.callbacks
        and term.name in (None, "distill", "l2sp")
    )


def _adapter_kind(est, sample_shape, backbone):
    from ._network import resolve_adapter

    input_shape = tuple(backbone.frozen.input.shape[1:])
    return resolve_adapter(est.input_adapter, sample_shape, input_shape)


def _backbone(est, source, sample_shape, term):
    """The registry's backbone for this configuration, built on first use; None
    when the configuration does not freeze everything it transfers."""
    from ._fingerprint import model_key

    key = (
        model_key(source),
        repr(est.cut),
        repr(est.freeze),
        tuple(sample_shape),
        repr(est.input_adapter),
        _preprocess_key(est.preprocess),
        est.batchnorm,
    )
    backbone = _BACKBONES.get(key)
    if backbone is None:
        if not _frozen_throughout(est, source, sample_shape, term):
            return None
        backbone = _BACKBONES.setdefault(key, lambda: _build(est, source, sample_shape, term))
    return backbone or None


def _frozen_throughout(est, source, sample_shape, term):
    """Whether the configuration freezes every transferred layer, checked on the
    source's own graph (no copy): the condition for a shared backbone."""
    import keras

    from ._cache import keras_layers_only
    from ._network import (
        _cut_index,
        functional_graph,
        graph_layers,
        layer_output,
        resolve_adapter,
        resolve_freeze,
    )

    graph = functional_graph(source)
    layers = graph_layers(graph)
    cut = _cut_index(source, est.cut, layers)
    kind = resolve_adapter(est.input_adapter, sample_shape, tuple(graph.input.shape[1:]))
    if kind == "dense" or term.needs_teacher(kind) or not keras_layers_only([graph]):
        return False
    if est.preprocess is not None and not isinstance(est.preprocess, str):
        if not type(est.preprocess).__module__.startswith("keras."):
            return False
    if est.freeze == "all":
        return True
    try:
        body = keras.Model(graph.input, layer_output(layers[cut]))
    except ValueError:
        return False
    body_layers = graph_layers(body)
    return resolve_freeze(est.freeze, body_layers) == len(body_layers)


def _build(est, source, sample_shape, term):
    """A fit's network on a copy of the source, kept for its frozen prefix; False
    when it turns out to train part of what it transfers."""
    from ._fingerprint import fingerprint, prefix_keys
    from ._network import build_network

    network = build_network(
        source,
        sample_shape=tuple(sample_shape),
        n_outputs=1,
        output_activation="linear",
        cut=est.cut,
        freeze=est.freeze,
        head=None,
        input_adapter=est.input_adapter,
        pretrained=True,
        seed=0,
        term=term,
        preprocess=est.preprocess,
        batchnorm=est.batchnorm,
    )
    if network.frozen is None or network.body is not None or network.teacher is not None:
        return False
    models = [m for m in (network.adapter, network.frozen) if m is not None]
    return Backbone(
        adapter=network.adapter,
        frozen=network.frozen,
        frozen_layers=tuple(network.frozen_layers),
        source_output=network.source_output,
        draws=seed_draws(source),
        keys=prefix_keys(models),
        predict_key=fingerprint(models),
    )


def seed_draws(model):
    """How many seeds ``_network.clone_seeded`` draws to copy ``model``."""
    import keras

    from ._network import _reseed_config

    class Counter:
        n = 0

        def integers(self, high):
            self.n += 1
            return 0

    counter = Counter()

    def walk(model):
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
            elif not isinstance(layer, keras.layers.InputLayer):
                _reseed_config(layer.get_config(), counter)

    walk(model)
    return counter.n


def _preprocess_key(preprocess):
    """A key for the ``preprocess`` parameter: a name, or a layer's class, config and weights."""
    if preprocess is None or isinstance(preprocess, str):
        return repr(preprocess)
    digest = hashlib.sha256(type(preprocess).__qualname__.encode())
    digest.update(json.dumps(preprocess.get_config(), sort_keys=True, default=str).encode())
    for value in preprocess.get_weights():
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def materialise(network, sample_shape):
    """A private copy of a shared network: its own frozen prefix and a full ``model``."""
    from ._network import clone_model, target_model

    def own(model):
        if model is None:
            return None
        copy = clone_model(model)
        copy.set_weights(model.get_weights())
        return copy

    adapter, frozen = own(network.adapter), own(network.frozen)
    model = target_model(sample_shape, (adapter, frozen, network.body, network.head))
    return dataclasses.replace(network, model=model, adapter=adapter, frozen=frozen, shared=None)


class MaterialisedModel:
    """The ``model_`` attribute of an estimator fitted on a shared backbone.

    A non-data descriptor: once ``model_`` is in the instance's ``__dict__``
    (every fit that builds its own network, a load, a first read) it is
    read from there; before that, reading it builds the private copy.
    """

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        with _MATERIALISE_LOCK:
            state = vars(obj)
            if self.name in state:
                return state[self.name]
            network = state.get("_network")
            if network is None or network.shared is None:
                raise AttributeError(
                    f"{type(obj).__name__!r} object has no attribute {self.name!r}"
                )
            network = materialise(network, obj.input_shape_)
            state["_network"], state[self.name] = network, network.model
            return network.model

"""Network surgery: cut the source, freeze a prefix, add an input adapter and a head.

The target network is assembled from small named sub-models so that training
can call the frozen part in inference mode and the fitted ``model_`` stays a
plain functional Keras model that saves as ``.keras`` with no custom objects::

    X (a sample) -> adapter -> frozen -> body -> head -> target output
                                              \\-> source head (distill, joint)

The adapter maps a sample of X onto the source input (reshaping, resizing
images, a learned projection) and applies the ``preprocess`` scaling. A source
that holds other models as layers is first flattened into one graph of their
layers (``inline_nested``), so every rule below sees the layers a user sees
in ``model.summary()`` of the nested models. Every rule about layers (which
count for ``freeze``, where ``cut`` falls, how X is mapped onto the source
input) is written once, here.
"""

from dataclasses import dataclass, field
from math import prod

import numpy as np

from ._seeds import draw_seed
from ._validation import describe_samples

ADAPTER, FROZEN, BODY, HEAD = (
    "sktransfer_adapter",
    "sktransfer_frozen",
    "sktransfer_body",
    "sktransfer_head",
)


@dataclass
class Network:
    """The parts of a target network. Unused parts are None."""

    model: object
    adapter: object = None
    frozen: object = None
    body: object = None
    head: object = None
    source_head: object = None
    teacher: object = None
    adapter_kind: str = "none"
    frozen_layers: list = field(default_factory=list)
    source_output: str = "linear"
    shared: object = None  # the _shared.Backbone whose frozen prefix this network uses

    def count_params(self):
        """Parameters of the target network (``model``'s, also before it is built)."""
        parts = (self.adapter, self.frozen, self.body, self.head)
        return sum(part.count_params() for part in parts if part is not None)


def functional_graph(model):
    """A functional view (same layers) of a Sequential or functional model."""
    import keras

    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(
            f"source model {model.name!r} has no layer graph to cut: sktransfer "
            "needs a Sequential or functional Keras model with a defined input "
            "shape (start it with keras.Input(shape=...))."
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"source model {model.name!r} has {len(inputs)} inputs and "
            f"{len(outputs)} outputs; sktransfer supports exactly one of each."
        )
    if type(model).__name__ == "Functional" and type(model).__module__.startswith("keras."):
        return model  # already one (building a view costs a few milliseconds per fit)
    return keras.Model(inputs[0], outputs[0], name=model.name)


def _inlinable(layer):
    """Whether ``layer`` is a Sequential or functional model whose layers can be inlined."""
    import keras

    if isinstance(layer, keras.Sequential):
        return True
    return type(layer).__name__ == "Functional" and type(layer).__module__.startswith("keras.")


def has_nested(graph):
    """Whether a functional graph holds models that ``inline_nested`` inlines."""
    return any(_inlinable(layer) for layer in graph_layers(graph))


def inline_nested(model):
    """``model``, or a functional copy with the layers of its nested models inlined.

    A source such as ``Sequential([Input, MobileNetV3Small(...), Dense])``
    holds a whole model as one layer: it cannot be cut inside, and its
    layers do not count for ``freeze``. The copy calls new layers, with the
    same configurations and weights, on the outer graph's tensors, so that
    one graph holds every layer. Layer names stay as they are, except a name
    already taken earlier in the graph, which is prefixed with the name of
    the model that holds the layer.
    A model with no nested models is returned as it is.
    """
    import keras

    graph = functional_graph(model)
    if not has_nested(graph):
        return model
    copies, inlined, names, owners = [], set(), set(), [model.name]

    def clone_layer(layer):
        if _inlinable(layer):
            return layer  # replaced by its layers in call_layer
        config = layer.get_config()
        if config.get("name") in names:
            config["name"] = f"{owners[-1]}_{config['name']}"
        names.add(config.get("name"))
        copy = layer.__class__.from_config(config)
        copies.append((copy, layer))
        return copy

    def call_layer(layer, *args, **kwargs):
        if not _inlinable(layer):
            return layer(*args, **kwargs)
        if id(layer) in inlined:
            raise ValueError(
                f"the nested model {layer.name!r} is called more than once in source "
                f"model {model.name!r}, so its layers cannot be inlined"
            )
        inlined.add(id(layer))
        owners.append(layer.name)
        # The nested call's own flags (training, mask) are dropped: Keras
        # overrides a nested model's training flag with the outer one anyway.
        inner = keras.models.clone_model(
            functional_graph(layer),
            input_tensors=args[0],
            clone_function=clone_layer,
            call_function=call_layer,
        )
        owners.pop()
        return inner.output

    with _in_memory_cloning():
        flat = keras.models.clone_model(
            graph, clone_function=clone_layer, call_function=call_layer
        )
    for copy, layer in copies:
        if getattr(layer, "weights", None):  # graph operations (ops on tensors) have none
            copy.set_weights(layer.get_weights())
    return flat


def graph_layers(graph):
    """The layers of a functional graph that ``cut`` and ``freeze`` count."""
    import keras

    return [lyr for lyr in graph.layers if not isinstance(lyr, keras.layers.InputLayer)]


def _reseed_config(config, rng):
    """Give every initialiser and random layer in a layer config its own seed."""
    for key, value in config.items():
        if (
            key.endswith("_initializer")
            and isinstance(value, dict)
            and isinstance(value.get("config"), dict)
            and "seed" in value["config"]
        ):
            value["config"]["seed"] = draw_seed(rng)
    if "seed" in config:
        config["seed"] = draw_seed(rng)
    return config


def _in_memory_cloning():
    """A scope in which Keras may rebuild the in-memory model's own layers.

    Cloning goes through layer configs; for a ``Lambda`` layer that means
    deserialising its function, which Keras' safe mode refuses. The model is
    the caller's live object, not a file, so nothing untrusted runs; files
    are checked when loaded (``_source.load_model_file``).
    """
    from ._compat import safe_mode_scope

    return safe_mode_scope(False)


def clone_model(model, clone_function=None):
    """``keras.models.clone_model`` that also clones the model's Lambda layers."""
    import keras

    with _in_memory_cloning():
        return keras.models.clone_model(model, clone_function=clone_function)


def clone_seeded(model, rng):
    """Clone ``model`` with fresh weights drawn from ``rng`` (never globally)."""
    import keras

    def clone_layer(layer):
        if isinstance(layer, keras.Model):
            return keras.models.clone_model(layer, clone_function=clone_layer)
        config = _reseed_config(layer.get_config(), rng)
        return layer.__class__.from_config(config)

    return clone_model(model, clone_layer)


def layer_output(layer):
    try:
        return layer.output
    except (AttributeError, ValueError):
        raise ValueError(
            f"layer {layer.name!r} is called more than once in the source, so "
            "the network cannot be cut or split at it"
        ) from None


def is_output_layer(layer):
    """Whether ``layer`` is a source's output layer: a ``Dense`` layer, or one
    that applies a softmax or sigmoid. A source that ends in anything else
    (pooling, a convolution, a normalisation) is headless."""
    import keras

    return isinstance(layer, keras.layers.Dense) or _activation_name(layer) != "linear"


def resolve_cut(cut, layers, param="cut"):
    """Index into ``layers`` of the layer that ``cut`` designates.

    ``cut`` is a layer name, an index (negative counts from the end) or None:
    ``-2``, the layer before the output layer, when the last layer is an
    output layer (``is_output_layer``), and ``-1``, the whole source, when
    the source is headless. ``param`` names the parameter in error messages.
    """
    names = [lyr.name for lyr in layers]
    if cut is None:
        cut = -2 if layers and is_output_layer(layers[-1]) else -1
    if isinstance(cut, str):
        if cut not in names:
            raise ValueError(
                f"{param}={cut!r} names no layer of the source; its layers are {names}"
            )
        return names.index(cut)
    n = len(layers)
    if isinstance(cut, bool) or not isinstance(cut, (int, np.integer)) or not -n <= cut < n:
        raise ValueError(
            f"{param}={cut!r} is not valid: the source has {n} layers (input layers "
            f"not counted), so {param} must be an integer in [{-n}, {n - 1}] or a layer name"
        )
    return int(cut) % n


def resolve_freeze(freeze, body_layers):
    """Number of body layers, counted from the input, that ``freeze`` freezes."""
    weighted = [i for i, lyr in enumerate(body_layers) if lyr.weights]
    n_weighted = len(weighted)
    if isinstance(freeze, str):
        if freeze == "all":
            return len(body_layers)
    elif not isinstance(freeze, bool) and isinstance(freeze, (int, np.integer)):
        if -n_weighted <= freeze <= n_weighted:
            k = n_weighted + int(freeze) if freeze < 0 else int(freeze)
            return 0 if k == 0 else weighted[k - 1] + 1
    raise ValueError(
        f"freeze={freeze!r} is out of range for this source: its body has "
        f"{n_weighted} layers with weights, so freeze must be an integer in "
        f"[{-n_weighted}, {n_weighted}] or 'all'"
    )


def _mode_free(layer):
    """Whether a layer has no weights and computes the same in training and
    inference (pooling, flattening, reshaping, activations), so that running
    it with the frozen prefix changes nothing. Such layers right after the
    frozen ones join the precomputed prefix, whose outputs (pooled features
    rather than feature maps) are then small enough to cache."""
    import inspect

    if layer.weights:
        return False
    try:
        return "training" not in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


def _split_body(body, body_layers, n_frozen):
    """Split the body into a frozen prefix model and a trainable rest.

    The split point is the output of the last frozen layer if the graph passes
    through it alone; in a graph with skip connections, the last earlier point
    that does. Frozen layers after the split point stay in the rest with
    ``trainable=False``.
    """
    import keras

    for j in range(n_frozen, 0, -1):
        boundary = layer_output(body_layers[j - 1])
        try:
            rest = keras.Model(boundary, body.output, name=BODY)
        except ValueError:
            continue
        frozen = keras.Model(body.input, boundary, name=FROZEN)
        return frozen, rest
    return None, body


def _activation_name(layer):
    import keras

    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "")
    return name if name in ("softmax", "sigmoid") else "linear"


def _resized(x, input_shape):
    """Images ``x`` at the size and channel count of ``input_shape``, with plain layers."""
    import keras

    if len(x.shape) == 3:
        x = keras.layers.Reshape((*x.shape[1:], 1), name="add_channel")(x)
    (height, width, channels), (new_height, new_width, new_channels) = x.shape[1:], input_shape
    if (height, width) != (new_height, new_width):
        x = keras.layers.Resizing(new_height, new_width, name="resize")(x)
    if channels != new_channels:
        # One channel copied to each of c, or c averaged into one: a fixed
        # linear map, so a frozen Dense layer with a constant kernel.
        init = keras.initializers.Constant(1.0 / channels)
        x = keras.layers.Dense(
            new_channels, use_bias=False, kernel_initializer=init, trainable=False, name="channels"
        )(x)
    return x


def _adapter(kind, sample_shape, input_shape, preprocess, rng):
    import keras

    from ._preprocessing import apply_preprocess

    size = prod(input_shape)
    x = inputs = keras.Input(sample_shape, name="X")
    if kind == "dense":
        if len(sample_shape) > 1:
            x = keras.layers.Flatten(name="flatten")(x)
        init = keras.initializers.GlorotUniform(seed=draw_seed(rng))
        x = keras.layers.Dense(size, kernel_initializer=init, name="projection")(x)
    if kind == "resize":
        x = _resized(x, input_shape)
    elif tuple(x.shape[1:]) != tuple(input_shape):
        x = keras.layers.Reshape(input_shape, name="reshape")(x)
    x = apply_preprocess(x, preprocess)
    return keras.Model(inputs, x, name=ADAPTER)


def _images(sample_shape, input_shape):
    """Whether samples and source input are images, (h, w) or (h, w, c) onto (h, w, c)."""
    return len(sample_shape) in (2, 3) and len(input_shape) == 3


def _resizable(sample_shape, input_shape):
    """Why ``"resize"`` cannot map these samples onto the source input, or None."""
    if not _images(sample_shape, input_shape):
        return (
            "it needs images: X of shape (n_samples, height, width) or (n_samples, height, "
            f"width, channels) and a source input of shape (None, height, width, channels); "
            f"X has {describe_samples(sample_shape)} and the source input is "
            f"{(None, *input_shape)}"
        )
    channels, new_channels = (sample_shape + (1,))[2], input_shape[2]
    if channels != new_channels and 1 not in (channels, new_channels):
        return (
            f"it maps 1 channel to {new_channels} or {channels} to 1, not {channels} to "
            f"{new_channels}; convert the images first, or use input_adapter='dense'"
        )
    return None


def _dims(shape):
    return ", ".join(str(d) for d in shape)


def resolve_adapter(input_adapter, sample_shape, input_shape):
    """How samples of ``sample_shape`` reach a source input of ``input_shape``."""
    if any(d is None for d in input_shape):
        raise ValueError(
            f"the source input shape {(None, *input_shape)} has unknown dimensions; "
            "sktransfer needs a source with a fixed input shape"
        )
    sample_shape, input_shape = tuple(sample_shape), tuple(input_shape)
    described = describe_samples(sample_shape)
    if input_adapter == "dense":
        return "dense"
    if input_adapter is None:
        if sample_shape != input_shape:
            raise ValueError(
                f"input_adapter=None, but X has shape (n_samples, {_dims(sample_shape)}) "
                "and the source expects "
                f"inputs of shape {(None, *input_shape)}; use input_adapter='reshape', "
                "'resize' or 'dense' (or 'auto') to map X onto it"
            )
        return "none"
    if input_adapter == "resize" or (
        input_adapter == "auto"
        and _images(sample_shape, input_shape)
        and (sample_shape + (1,))[:3] != input_shape
    ):
        problem = _resizable(sample_shape, input_shape)
        if problem:
            raise ValueError(f"input_adapter={input_adapter!r} cannot resize: {problem}")
        return "resize"
    if sample_shape == input_shape:
        return "none"
    if prod(input_shape) == prod(sample_shape):
        return "reshape"
    # "auto" never learns a projection on its own: a feature count that does
    # not fit the source is more often a mistake than a change of space.
    raise ValueError(
        f"input_adapter={input_adapter!r}, but X has {described} and the source "
        f"input {(None, *input_shape)} holds {prod(input_shape)} values, so X cannot be "
        "reshaped onto it. If X really lives in another feature space than the source's "
        "inputs, use input_adapter='dense' to learn a projection onto them"
    )


def _head(input_shape, hidden, n_outputs, activation, rng):
    import keras

    x = inputs = keras.Input(input_shape, name="features")
    if len(input_shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden):
        init = keras.initializers.GlorotUniform(seed=draw_seed(rng))
        x = keras.layers.Dense(
            units, activation="relu", kernel_initializer=init, name=f"hidden_{i}"
        )(x)
    init = keras.initializers.GlorotUniform(seed=draw_seed(rng))
    x = keras.layers.Dense(
        n_outputs, activation=activation, kernel_initializer=init, name="output"
    )(x)
    return keras.Model(inputs, x, name=HEAD)


_MAX_UNITS = 2**16  # per hidden head layer: beyond it a head dwarfs any source


def head_units(head):
    """Hidden layer sizes of the ``head`` parameter, as a tuple."""
    if head is None:
        return ()
    units = (head,) if isinstance(head, (int, np.integer)) else head
    if isinstance(units, (tuple, list)) and all(
        isinstance(h, (int, np.integer)) and not isinstance(h, bool) and 0 < h <= _MAX_UNITS
        for h in units
    ):
        return tuple(int(h) for h in units)
    raise ValueError(
        f"head={head!r} is not valid: use None for a single output layer, or a "
        f"positive int or a tuple of positive ints (at most {_MAX_UNITS} each) for "
        "hidden Dense layers"
    )


def build_network(
    source,
    *,
    sample_shape,
    n_outputs,
    output_activation,
    cut,
    freeze,
    head,
    input_adapter,
    pretrained,
    seed,
    term,
    preprocess=None,
    batchnorm="frozen",
):
    """Build the target network for a source model.

    Parameters
    ----------
    source : keras.Model
        The resolved source model. It is only read: the network is built on a
        clone.
    sample_shape : tuple of int
        Shape of one sample of X; the network's input.
    term : _source_terms.SourceTerm
        The active source-knowledge term. A term that uses the source head
        gets the part of the source after ``cut``; one that needs a teacher
        in the network (distillation through a trainable input adapter)
        gets a frozen copy of the whole source.
    """
    import keras

    rng = np.random.default_rng(seed)
    clone = clone_seeded(source, rng)
    if pretrained:
        clone.set_weights(source.get_weights())
    clone = functional_graph(clone)
    layers = graph_layers(clone)
    cut_index = _cut_index(source, cut, layers)
    cut_tensor = layer_output(layers[cut_index])
    body = keras.Model(clone.input, cut_tensor, name=BODY)
    frozen, rest, frozen_layers = _freeze_body(body, freeze)
    if pretrained and batchnorm == "frozen":
        _keep_batchnorm(layers)

    input_shape = tuple(clone.input.shape[1:])
    kind = resolve_adapter(input_adapter, sample_shape, input_shape)
    adapter = None
    if kind != "none" or preprocess is not None:
        adapter = _adapter(kind, sample_shape, input_shape, preprocess, rng)
    target_head = _head(
        tuple(cut_tensor.shape[1:]), head_units(head), n_outputs, output_activation, rng
    )
    net = Network(
        model=target_model(sample_shape, (adapter, frozen, rest, target_head)),
        adapter=adapter,
        frozen=frozen,
        body=rest,
        head=target_head,
        adapter_kind=kind,
        frozen_layers=[layer.name for layer in frozen_layers],
        source_output=_activation_name(graph_layers(functional_graph(source))[-1]),
    )
    if term.uses_source_head and cut_index < len(layers) - 1:
        net.source_head = _source_head(clone, layers[cut_index], cut, term)
    if term.needs_teacher(kind):
        net.teacher = clone_model(source)
        net.teacher.set_weights(source.get_weights())
        net.teacher.trainable = False
    return net


def target_model(sample_shape, parts):
    """The target network: a sample of X through ``parts`` in order (None skipped)."""
    import keras

    x = inputs = keras.Input(tuple(sample_shape), name="X")
    for part in parts:
        if part is not None:
            x = part(x)
    return keras.Model(inputs, x, name="sktransfer_target")


def _cut_index(source, cut, layers):
    if cut is None and len(layers) < 2 and is_output_layer(layers[-1]):
        raise ValueError(
            f"source model {source.name!r} has {len(layers)} layer(s) besides its input, "
            "so nothing is left once its output layer is cut off; pass cut=-1 to use "
            "its outputs as features"
        )
    return resolve_cut(cut, layers)


def _freeze_body(body, freeze):
    """``(frozen, rest, frozen_layers)``: the frozen prefix model, the trainable
    rest (None when all is frozen) and the layers ``freeze`` froze."""
    import keras

    body_layers = graph_layers(body)
    n_frozen = resolve_freeze(freeze, body_layers)
    if n_frozen == 0:
        frozen, rest = None, body
    elif n_frozen == len(body_layers):
        frozen, rest = keras.Model(body.input, body.output, name=FROZEN), None
    else:
        split = n_frozen
        while split < len(body_layers) - 1 and _mode_free(body_layers[split]):
            split += 1
        frozen, rest = _split_body(body, body_layers, split)
    for layer in body_layers[:n_frozen]:
        layer.trainable = False
    return frozen, rest, body_layers[:n_frozen]


def _keep_batchnorm(layers):
    """Run the BatchNormalization layers in inference mode, on the source's statistics.

    Keras runs a BatchNormalization layer in inference mode exactly when it
    is not trainable (a ``training=False`` given to a nested model is
    overridden by the outer call's flag), so they are made non-trainable:
    fine-tuning on a few rows then never overwrites the source's moving
    statistics.
    """
    import keras

    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _source_head(clone, cut_layer, cut, term):
    """The source's own layers after ``cut``, as a model on the body's features."""
    import keras

    try:
        return keras.Model(layer_output(cut_layer), clone.output, name="source_head")
    except ValueError:
        raise ValueError(
            f"cut={cut!r} (layer {cut_layer.name!r}) does not split the source into a "
            f"body and a head: other paths bypass it, so source_loss={term.name!r} cannot "
            "use the source's own output layers"
        ) from None


def parts_of(model):
    """The named parts of a fitted ``model_`` (for warm starts)."""
    names = {layer.name: layer for layer in model.layers}
    return {key: names.get(key) for key in (ADAPTER, FROZEN, BODY, HEAD)}

"""One key for what a Keras network computes: its layers, their wiring and, if asked, weights.

Three caches key networks: the activation cache (``_cache``), the traced
workers (``_reuse``) and the shared predict functions (``_prediction``).
They all use :func:`fingerprint`, which hashes the models' configurations,
never the Keras objects: pickling a Keras model embeds a timestamp, so its
hash changes on every call. The activation cache keys a frozen prefix with
:func:`prefix_keys`, which gives the key of every shallower prefix in the
same pass.
"""

import hashlib
import json
import re
import threading
import weakref

# Initialiser and layer seeds differ between builds of one architecture and
# change nothing once weights are set; generated tensor and model names
# differ between builds and change nothing at all.
_SEED = re.compile(r'"seed": -?\d+')
_GENERATED = re.compile(r"\b(keras_tensor|input_layer|functional)_\d+")
_TRAINABLE = re.compile(r'"trainable": (true|false)')


def _normalised(config, trainable):
    text = json.dumps(config, sort_keys=True, default=str)
    text = _GENERATED.sub(r"\1", _SEED.sub('"seed": 0', text))
    # Whether a layer trains changes the traced training step, not what the
    # layer computes in inference mode.
    return text if trainable else _TRAINABLE.sub("", text)


def _config(model, trainable):
    config = dict(model.get_config())
    config.pop("name", None)  # the model's own name, often generated
    return _normalised(config, trainable)


def _update_weights(digest, weights):
    for value in weights:
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())


def _input_shape(model):
    try:
        return tuple(model.input.shape)
    except (AttributeError, ValueError):  # a Sequential model never called: in its config
        return None


def fingerprint(models, *, weights=True, trainable=False):
    """A hex key equal for models that compute the same function.

    Parameters
    ----------
    models : sequence of keras.Model or None
        Models applied in sequence; a None entry stands for an absent part
        and keeps its place in the key.
    weights : bool
        Include the weight values (inference outputs), or only the
        architecture (traced functions, whose weights are copied in).
    trainable : bool
        Include which layers train.
    """
    digest = hashlib.sha256()
    for model in models:
        if model is None:
            digest.update(b"none;")
            continue
        digest.update(_config(model, trainable).encode())
        digest.update(repr(_input_shape(model)).encode())
        if weights:
            _update_weights(digest, model.get_weights())
    return digest.hexdigest()


def prefix_keys(models):
    """Keys of every prefix of ``models``, by the name of the layer it ends at.

    ``models`` are applied in sequence; the last one is a functional model.
    The key of its layer ``name`` stands for the earlier models followed by
    the last one's layers up to ``name`` (in the order of its configuration,
    with their wiring, configurations and weights), so it is equal for two
    prefixes only if they compute the same function, as a ``fingerprint``
    is. The last model's own key is that of its last layer. One pass over
    the configuration gives them all: the activation cache looks for a
    stored shallower prefix of a frozen body (``_cache._shallower``) without
    building or hashing a model per layer.
    """
    *first, last = models
    digest = hashlib.sha256(fingerprint(first).encode())
    weights = {layer.name: layer.get_weights() for layer in last.layers}
    keys = {}
    for entry in last.get_config()["layers"]:
        name = entry.get("name", entry.get("config", {}).get("name"))  # Sequential: in config
        digest.update(_normalised(entry, trainable=False).encode())
        _update_weights(digest, weights.get(name, ()))
        keys[name] = digest.copy().hexdigest()
    return keys


_ARCHITECTURES = weakref.WeakKeyDictionary()  # model -> (its layers' configs, architecture key)
_ARCHITECTURES_LOCK = threading.Lock()


def model_key(model):
    """``fingerprint([model])``'s equal for a model seen before, at a third of its cost.

    Serialising a functional model's whole configuration (its wiring) takes
    most of a fingerprint: about 0.09 s for an application backbone. A
    model's wiring never changes once built, so the architecture key is kept
    per model object and reused while its layers' own configurations (which
    do change when a layer's attributes are set) stay as they were; the
    weights are hashed every time.
    """
    configs = [layer.get_config() for layer in model.layers]
    layers = json.dumps(configs, sort_keys=True, default=str)
    with _ARCHITECTURES_LOCK:
        known = _ARCHITECTURES.get(model)
    if known is None or known[0] != layers:
        known = (layers, fingerprint([model], weights=False))
        with _ARCHITECTURES_LOCK:
            _ARCHITECTURES[model] = known
    digest = hashlib.sha256(known[1].encode())
    _update_weights(digest, model.get_weights())
    return digest.hexdigest()

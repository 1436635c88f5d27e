"""The ``preprocess`` parameter: a source's own input scaling, as plain Keras layers.

Keras application models expect their inputs on the scale of their
``keras.applications.<family>.preprocess_input``. Those functions are plain
Python, so they cannot be part of a saved model; this module writes each
family's scaling as ``Rescaling``, ``Normalization`` and a frozen channel
permutation instead, which save in a ``.keras`` file with no custom objects
and load in safe mode.
"""

from ._validation import InvalidParameterError

# What each family's preprocess_input does to RGB values in [0, 255]
# (channels last), checked against Keras in tests/test_inputs.py.
_FAMILIES = {
    # Scaled to [-1, 1]: x / 127.5 - 1.
    "inception_resnet_v2": "tf",
    "inception_v3": "tf",
    "mobilenet": "tf",
    "mobilenet_v2": "tf",
    "nasnet": "tf",
    "resnet_v2": "tf",
    "xception": "tf",
    # RGB to BGR, then the ImageNet mean (in BGR) subtracted.
    "resnet": "caffe",
    "resnet50": "caffe",
    "vgg16": "caffe",
    "vgg19": "caffe",
    # Scaled to [0, 1], then standardised with the ImageNet mean and std.
    "densenet": "torch",
    # The models scale their inputs themselves (a preprocessing layer inside).
    "convnext": "none",
    "efficientnet": "none",
    "efficientnet_v2": "none",
    "mobilenet_v3": "none",
}
FAMILIES = tuple(sorted(_FAMILIES))
_MEAN_BGR = (103.939, 116.779, 123.68)
_MEAN_RGB = (0.485, 0.456, 0.406)
_STD_RGB = (0.229, 0.224, 0.225)


def check_preprocess(value):
    """Refuse a ``preprocess`` that is not None, a family name or a Keras layer."""
    import keras

    if value is None or isinstance(value, keras.layers.Layer):
        return value
    if isinstance(value, str) and value in _FAMILIES:
        return value
    raise InvalidParameterError(
        f"preprocess={value!r} is not valid: preprocess must be None, a Keras layer "
        f"(such as keras.layers.Rescaling) or the name of a Keras application family, "
        f"one of {list(FAMILIES)}"
    )


def _family_layers(family, channels):
    """``[(layer, weights or None), ...]`` for a family's scaling."""
    import keras
    import numpy as np

    mode = _FAMILIES[family]
    if mode == "none":
        return []
    if mode == "tf":
        return [(keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_scale"), None)]
    if channels != 3:
        raise ValueError(
            f"preprocess={family!r} scales RGB images, but the source input has "
            f"{channels} channel(s)"
        )
    if mode == "caffe":
        flip = keras.layers.Dense(3, use_bias=False, trainable=False, name="preprocess_rgb_to_bgr")
        mean = keras.layers.Normalization(
            mean=_MEAN_BGR, variance=(1.0,) * 3, name="preprocess_mean"
        )
        return [(flip, [np.eye(3, dtype="float32")[::-1]]), (mean, None)]
    variance = tuple(s * s for s in _STD_RGB)
    return [
        (keras.layers.Rescaling(1 / 255, name="preprocess_scale"), None),
        (
            keras.layers.Normalization(
                mean=_MEAN_RGB, variance=variance, name="preprocess_standardise"
            ),
            None,
        ),
    ]


def _copied(layer):
    """A copy of the user's layer, its weights set once it is built."""
    copy = type(layer).from_config(layer.get_config())
    weights = [w.copy() for w in layer.get_weights()] if layer.weights else None
    return copy, weights


def apply_preprocess(x, preprocess):
    """``x`` (a symbolic tensor in the source's input space) with ``preprocess`` applied."""
    if preprocess is None:
        return x
    if isinstance(preprocess, str):
        steps = _family_layers(preprocess, x.shape[-1])
    else:
        steps = [_copied(preprocess)]
    shape = tuple(x.shape[1:])
    for layer, weights in steps:
        x = layer(x)
        if weights is not None:
            layer.set_weights(weights)
        layer.trainable = False  # input scaling is the source's, not learned
    if tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"preprocess={preprocess!r} changes the shape of the source input from "
            f"{(None, *shape)} to {tuple(x.shape)}; it must keep it"
        )
    return x

"""Every private TensorFlow, Keras and scikit-learn API that sktransfer uses, in one place.

Each function here reaches into an internal that a release of the framework
may move. ``tests/test_compat.py`` has one test per function that fails
loudly, naming the installed versions, when that happens. At run time none of
them falls back silently: where an internal has moved, the caller gets an
error or a warning that names it, never quietly other numbers or another
speed.
"""

import contextlib
import functools
import warnings


def versions():
    """The framework versions, for messages about moved internals."""
    import keras
    import sklearn

    found = [f"keras {keras.__version__}", f"scikit-learn {sklearn.__version__}"]
    try:
        import tensorflow as tf

        found.insert(0, f"tensorflow {tf.__version__}")
    except ImportError:
        pass
    return ", ".join(found)


class MovedInternal(RuntimeError):
    """A private framework API that sktransfer relies on is no longer where it was."""

    def __init__(self, what):
        super().__init__(
            f"sktransfer relies on {what}, which this installation ({versions()}) no longer "
            "provides; please report this with the versions named here"
        )


@functools.cache
def _warn_moved(what, consequence):
    warnings.warn(f"{MovedInternal(what)}; {consequence}", RuntimeWarning, stacklevel=3)


# -- scikit-learn ---------------------------------------------------------------------


def check_sample_weight(sample_weight, X, dtype):
    """scikit-learn's ``_check_sample_weight``: one finite weight per row of ``X``."""
    from sklearn.utils.validation import _check_sample_weight

    return _check_sample_weight(sample_weight, X, dtype=dtype)


# The attributes ``sklearn.base.clone`` copies besides the parameters:
# metadata-routing requests and the ``set_output`` configuration.
SKLEARN_CLONED_STATE = ("_metadata_request", "_sklearn_output_config")


# -- Keras ----------------------------------------------------------------------------


def safe_mode_scope(safe_mode):
    """A scope in which Keras deserialises with ``safe_mode`` whatever the global flag says.

    ``keras.config.enable_unsafe_deserialization()`` sets a process-wide flag
    that overrides the ``safe_mode`` argument of ``load_model``; this scope
    sets the flag for the duration of a load and restores it after.
    """
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:
        what = "keras.src.saving.serialization_lib.SafeModeScope"
        if safe_mode:  # never load a file unsafely because an internal moved
            raise MovedInternal(what) from None
        _warn_moved(what, "in-memory source models with Lambda layers cannot be cloned")
        return contextlib.nullcontext()
    return SafeModeScope(safe_mode)


def keras_logits(output):
    """The pre-activation values Keras keeps on a softmax or sigmoid output, or None.

    The TensorFlow backend attaches them to the output tensor (its own
    cross-entropy losses read them there); other backends keep none. Losses
    computed from them are exact where probabilities underflow.
    """
    import keras

    logits = getattr(output, "_keras_logits", None)
    if logits is None and keras.backend.backend() == "tensorflow":
        _warn_moved(
            "the '_keras_logits' that Keras' TensorFlow backend attaches to softmax and "
            "sigmoid outputs",
            "distillation now computes log-probabilities from clipped probabilities, which "
            "differ where probabilities underflow",
        )
    return logits


def carry_initial_epoch(view, model):
    """Pass the epoch a callback asked ``view`` to resume from on to ``model``'s fit.

    Keras' ``BackupAndRestore`` sets the private ``_initial_epoch`` of its
    model in ``on_train_begin``, and ``fit`` reads it from the model it
    trains just after.
    """
    epoch = getattr(view, "_initial_epoch", None)
    if epoch is not None:
        if not hasattr(model, "_initial_epoch"):
            raise MovedInternal("keras.Model._initial_epoch (read by fit to resume training)")
        model._initial_epoch = epoch


def symbolic_build(model, data_batch):
    """Build ``model``'s variables (metrics, optimizer) for a batch, as ``fit`` does first.

    Returns False, warning once, where the internal has moved: the caller
    then trains through ``keras.Model.fit``.
    """
    build = getattr(model, "_maybe_symbolic_build", None)
    if build is None:
        _warn_moved(
            "keras.Model._maybe_symbolic_build",
            "training runs through keras.Model.fit, which is slower on small data",
        )
        return False
    build(data_batch=data_batch)
    return True


# -- TensorFlow -----------------------------------------------------------------------


def gradient_registry():
    """TensorFlow's process-wide registry of custom gradient functions (a dict).

    Returns None, warning once, where the internal has moved.
    """
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):
        _warn_moved(
            "the dict tensorflow.python.framework.ops._gradient_registry._registry",
            "each fit now keeps its traced graphs alive (memory grows by a few MiB per fit)",
        )
        return None
    return registry

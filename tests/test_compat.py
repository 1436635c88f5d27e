"""Every private framework API in ``sktransfer._compat`` is still where it was.

One test per use. When a TensorFlow, Keras or scikit-learn release moves an
internal, the test for it fails with the installed versions in its message;
at run time sktransfer then warns (or refuses, for safe loading) instead of
silently changing speed or numbers.
"""

import warnings

import numpy as np
import pytest

from sktransfer import _compat

keras = pytest.importorskip("keras")
VERSIONS = _compat.versions()
on_tensorflow = pytest.mark.tensorflow_only("a TensorFlow-backend internal")


def test_check_sample_weight():
    weights = _compat.check_sample_weight(None, np.zeros((3, 2)), dtype=np.float32)
    assert weights.dtype == np.float32 and weights.tolist() == [1, 1, 1], VERSIONS
    with pytest.raises(ValueError):
        _compat.check_sample_weight([1.0, 2.0], np.zeros((3, 2)), dtype=np.float32)


def test_sklearn_cloned_state_is_what_clone_copies():
    import sklearn
    from sklearn.base import clone
    from sklearn.preprocessing import StandardScaler

    with sklearn.config_context(enable_metadata_routing=True):
        scaler = StandardScaler().set_output(transform="pandas")
        scaler.set_fit_request(sample_weight=True)
        copied = clone(scaler)
    for name in _compat.SKLEARN_CLONED_STATE:
        assert name in vars(scaler) and name in vars(copied), f"{name} moved ({VERSIONS})"


def test_safe_mode_scope_lets_an_in_memory_lambda_model_clone():
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Lambda(lambda t: t * 2.0), keras.layers.Dense(1)]
    )
    with pytest.raises(ValueError):
        keras.models.clone_model(model)  # Keras refuses to rebuild the Lambda in safe mode
    with _compat.safe_mode_scope(False):
        assert keras.models.clone_model(model) is not None, VERSIONS


def test_safe_mode_scope_overrides_the_global_unsafe_flag():
    from keras.src.saving.serialization_lib import in_safe_mode

    with _compat.safe_mode_scope(False):  # what enable_unsafe_deserialization() sets
        with _compat.safe_mode_scope(True):
            assert in_safe_mode() is True, f"SafeModeScope no longer sets the flag ({VERSIONS})"
        assert in_safe_mode() is False


@on_tensorflow
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_keras_logits_are_kept_on_activation_outputs(activation):
    x = keras.ops.convert_to_tensor(np.array([[1.0, -2.0, 30.0]], dtype="float32"))
    out = getattr(keras.activations, activation)(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logits = _compat.keras_logits(out)
    assert logits is not None, f"_keras_logits moved ({VERSIONS})"
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(logits), keras.ops.convert_to_numpy(x)
    )


@on_tensorflow
def test_missing_logits_warn_instead_of_changing_numbers_silently():
    _compat._warn_moved.cache_clear()
    with pytest.warns(RuntimeWarning, match="_keras_logits"):
        assert _compat.keras_logits(keras.ops.ones((1, 2))) is None
    _compat._warn_moved.cache_clear()


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow", reason="the TensorFlow backend keeps logits"
)
def test_missing_logits_are_no_moved_internal_on_other_backends():
    # JAX keeps logits only on eager outputs, never inside a compiled step.
    _compat._warn_moved.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _compat.keras_logits(keras.ops.ones((1, 2))) is None


@pytest.mark.tensorflow_only("only the traced loop over epochs, a tf.function, uses it")
def test_symbolic_build_runs_the_step_fit_runs_first():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    x, y = np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _compat.symbolic_build(model, (x, y, None)), VERSIONS
    model.fit(x, y, epochs=1, verbose=0)  # and fit still works after it


@on_tensorflow
def test_gradient_registry_is_the_dict_tensorflow_registers_into():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry = _compat.gradient_registry()
    assert isinstance(registry, dict) and registry, f"gradient registry moved ({VERSIONS})"

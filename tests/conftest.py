import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis comes with the [test] extra
    pass
else:
    _slow = [HealthCheck.too_slow, HealthCheck.data_too_large]
    # "ci" keeps the suite inside its time budget; "thorough" is run on demand:
    # SKTRANSFER_HYPOTHESIS=thorough pytest tests/test_properties.py -s
    settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=_slow)
    settings.register_profile(
        "thorough", max_examples=2000, deadline=None, suppress_health_check=_slow
    )
    settings.load_profile(os.environ.get("SKTRANSFER_HYPOTHESIS", "ci"))


def pytest_runtest_setup(item):
    # Behaviour must hold on every Keras backend; a test of a mechanism that
    # only the TensorFlow backend has (a traced tf.function loop, a
    # TensorFlow internal) says so, and other backends skip it.
    marker = item.get_closest_marker("tensorflow_only")
    if marker is not None:
        import keras

        if keras.backend.backend() != "tensorflow":
            pytest.skip(f"TensorFlow backend only: {marker.args[0]}")

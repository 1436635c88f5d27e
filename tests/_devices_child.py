"""The processes of ``tests/test_devices.py``: fits on two devices, or two hosts.

The number of devices is fixed when the backend starts, so each check runs
in a process of its own, started with the backend and the devices set in
its environment::

    python tests/_devices_child.py devices tensorflow   # 2 logical CPU devices
    python tests/_devices_child.py devices jax          # XLA_FLAGS: 2 host devices
    python tests/_devices_child.py host 0 PORT          # one of 2 JAX processes

Each fits the same estimators on one device and under the distribution, and
prints one JSON line of what it measured (or ``{"skip": reason}`` where the
backend lacks the feature); the test asserts on it.
"""

import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_TARGET = 63  # batches of 16, 16, 16 and 15 rows: the last one splits unevenly


def _two_tensorflow_devices():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _task():
    sys.path.insert(0, str(Path(__file__).parent))
    from _tasks import shared_representation_task, train_source

    (xs, ys), (xt, yt), (xe, ye) = shared_representation_task(n_source=600, n_target=N_TARGET)
    return train_source(xs, ys, 10, epochs=5), (xt, yt), (xe, ye)


def _estimators(source, memory):
    """Configurations whose fits use what a distribution changes: uneven and
    weighted batches, the distillation term, the probe head, the cached
    frozen prefix with ``memory``, and early stopping's validation batches."""
    from sktransfer import TransferClassifier, TransferRegressor

    short = dict(batch_size=16, random_state=0)
    return {
        "classifier": TransferClassifier(
            source, alpha=0.3, source_loss="distill", class_weight="balanced", epochs=20, **short
        ),
        "regressor": TransferRegressor(
            source, freeze=1, memory=memory, early_stopping=True, epochs=8, **short
        ),
    }


def _outputs(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


def _gap(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))


def _compare(source, data, scope, folder):
    """Fit each configuration on one device, then under ``scope``; what differs."""
    import sktransfer

    (X, y), (X_test, y_test) = data
    report = {}
    for name, est in _estimators(source, os.path.join(folder, "memory")).items():
        target = y.astype(float) if name == "regressor" else y
        start = time.perf_counter()
        one = _clone(est).fit(X, target)
        one_s = time.perf_counter() - start
        with scope():
            start = time.perf_counter()
            spread = _clone(est).fit(X, target)
            spread_s = time.perf_counter() - start
            inside = _outputs(spread, X_test)
            score = float(spread.score(X_test, y_test if name != "regressor" else y_test * 1.0))
        path = os.path.join(folder, f"{name}.skt")
        spread.save(path)
        report[name] = {
            "gap": _gap(_outputs(one, X_test), inside),
            "history_gap": max(_gap(one.history_[k], spread.history_[k]) for k in one.history_),
            "epochs": [len(one.history_["loss"]), len(spread.history_["loss"])],
            "after_scope": _gap(inside, _outputs(spread, X_test)),
            "pickled": _gap(inside, _outputs(pickle.loads(pickle.dumps(spread)), X_test)),
            "loaded": _gap(inside, _outputs(sktransfer.load(path), X_test)),
            "shape": list(np.shape(inside)),
            "score": score,
            "seconds": [round(one_s, 2), round(spread_s, 2)],
        }
    return report


def _warm_start_refused(source, data, scope):
    """Whether a warm start under the distribution, of a network fitted on one
    device, stops with sktransfer's error (rather than one from deep in Keras)."""
    from sktransfer import TransferClassifier

    (X, y), _ = data
    est = TransferClassifier(source, epochs=2, head_init="random", warm_start=True).fit(X, y)
    try:
        with scope():
            est.fit(X, y)
    except ValueError as exc:
        return "warm_start=True" in str(exc)
    return False


def _clone(est):
    from sklearn.base import clone

    return clone(est)


def _keras_multi_step_runs(strategy):
    """Whether Keras' own multi-step loop (steps_per_execution > 1) now trains
    under ``strategy``; it failed with Keras 3.15 and TensorFlow 2.21, which
    is why sktransfer trains one step per call there."""
    import keras

    x = np.ones((32, 4), dtype="float32")
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse", steps_per_execution=2)
        try:
            model.fit(x, x[:, :1], batch_size=8, epochs=1, verbose=0)
        except Exception:  # the failure this watches for: any error of Keras' loop
            return False
    return True


def devices(backend):
    """Two devices of one process: a MirroredStrategy or a DataParallel distribution."""
    if backend == "tensorflow":
        strategy = _two_tensorflow_devices()
        scope = strategy.scope
    import keras

    if backend == "jax":
        import jax

        if len(jax.devices()) < 2:
            return {"skip": f"JAX shows {len(jax.devices())} device: XLA_FLAGS was not read"}
        scope = keras.distribution.DataParallel().scope  # every device, as users write it
    source, *data = _task()
    with tempfile.TemporaryDirectory() as folder:
        result = {"backend": keras.backend.backend(), **_compare(source, data, scope, folder)}
    result["warm_start_refused"] = _warm_start_refused(source, data, scope)
    if backend == "tensorflow":  # last: a failed collective can spoil later ones
        result["keras_multi_step"] = _keras_multi_step_runs(strategy)
    return result


def host(process_id, port):
    """One of two JAX processes on 127.0.0.1, each with one CPU device, forming one job."""
    import keras

    keras.distribution.initialize(
        job_addresses=f"127.0.0.1:{port}", num_processes=2, process_id=process_id
    )
    import jax

    source, (X, y), (X_test, _) = _task()
    from sktransfer import TransferClassifier

    est = TransferClassifier(source, epochs=20, batch_size=16, random_state=0)
    one = _outputs(_clone(est).fit(X, y), X_test)
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    spread = _clone(est).fit(X, y)
    inside = _outputs(spread, X_test)
    keras.distribution.set_distribution(None)
    return {
        "devices": len(jax.devices()),
        "local_devices": len(jax.local_devices()),
        "gap": _gap(one, inside),
        "after": _gap(inside, _outputs(spread, X_test)),
        "first_rows": np.round(inside[:3], 6).tolist(),
    }


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")  # ConvergenceWarning of the short fits
    mode, *args = sys.argv[1:]
    result = devices(*args) if mode == "devices" else host(int(args[0]), int(args[1]))
    print("RESULT " + json.dumps(result), flush=True)

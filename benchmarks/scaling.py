"""Scaling benchmarks: parallel search speed-up, and TensorFlow against JAX on CPU.

Run from the repository root::

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/scaling.py [--output FILE]

1. ``GridSearchCV`` of 4 candidates x 3 folds with ``n_jobs=2`` under the
   default (loky) and the threading backends, against ``n_jobs=1``, in one
   run. Each side runs once after a warm-up search; loky's figure includes
   starting its worker processes (and importing TensorFlow in them), as a
   user's first search does.
2. The same small fit on the TensorFlow and the JAX backend (CPU), each in a
   fresh process: the first fit (with the backend's start-up, and tracing
   or compiling), the median of three identical refits, the first fit of
   another configuration after them (tracing or compiling again), and the
   median of 50 predictions of 32 rows.
   ``--backends`` runs this part alone.
3. ``--devices`` (alone): one fit spread over CPU devices, on each backend in
   fresh processes: 1 device, then 2 (two logical CPU devices under a
   ``tf.distribute.MirroredStrategy``; two forced host devices under
   ``keras.distribution.DataParallel`` on JAX): the first fit, the median
   of three refits, and the largest difference of the predicted
   probabilities from the 1-device fit.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEARCH = """
import time, numpy as np, keras, joblib
from sklearn.model_selection import GridSearchCV
from sktransfer import TransferClassifier
rng = np.random.default_rng(0)
X = rng.normal(size=(600, 20)).astype("float32")
y = (X[:, :3].sum(1) > 0).astype(int) + (X[:, 3] > 1)
init = keras.initializers.GlorotUniform
src = keras.Sequential([keras.Input((20,)),
    keras.layers.Dense(64, activation="relu", kernel_initializer=init(0)),
    keras.layers.Dense(32, activation="relu", kernel_initializer=init(1)),
    keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2))])
grid = {"alpha": [0.0, 0.5], "freeze": [0, 1]}
def search(n_jobs, backend):
    est = TransferClassifier(src, epochs=40, random_state=0)
    start = time.perf_counter()
    with joblib.parallel_backend(backend, n_jobs=n_jobs):
        search = GridSearchCV(est, grid, cv=3, n_jobs=n_jobs).fit(X, y)
    return time.perf_counter() - start, search.cv_results_["mean_test_score"].tolist()
search(1, "loky")
out = {}
for name, n_jobs, backend in [("n_jobs=1", 1, "loky"), ("loky n_jobs=2", 2, "loky"),
                              ("threading n_jobs=2", 2, "threading")]:
    out[name] = search(n_jobs, backend)
print("RESULT", __import__("json").dumps(out))
"""

BACKEND = """
import time, numpy as np, keras
from sktransfer import TransferClassifier
rng = np.random.default_rng(0)
X = rng.normal(size=(200, 20)).astype("float32"); y = rng.integers(0, 3, 200)
init = keras.initializers.GlorotUniform
src = keras.Sequential([keras.Input((20,)),
    keras.layers.Dense(64, activation="relu", kernel_initializer=init(0)),
    keras.layers.Dense(32, activation="relu", kernel_initializer=init(1)),
    keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2))])
times = []
for _ in range(4):
    start = time.perf_counter()
    TransferClassifier(src, freeze=1, alpha=0.5, epochs=20, random_state=0).fit(X, y)
    times.append(time.perf_counter() - start)
start = time.perf_counter()  # a configuration not fitted before, in a started process
est = TransferClassifier(src, freeze=0, alpha=0.5, epochs=20, random_state=0).fit(X, y)
new = time.perf_counter() - start
predict = []
for _ in range(53):
    start = time.perf_counter()
    est.predict(X[:32])
    predict.append(time.perf_counter() - start)
print("RESULT", __import__("json").dumps(
    {"first": times[0], "refit": sorted(times[1:])[1], "new": new,
     "predict": sorted(predict[3:])[25]}))
"""

DEVICES = """
import contextlib, os, time, numpy as np
backend, n = os.environ["KERAS_BACKEND"], int(os.environ["SKT_DEVICES"])
scope = contextlib.nullcontext
if backend == "tensorflow" and n > 1:
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    scope = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)]).scope
import keras
from sktransfer import TransferClassifier
if backend == "jax" and n > 1:
    scope = keras.distribution.DataParallel(devices=keras.distribution.list_devices()).scope
rng = np.random.default_rng(0)
X = rng.normal(size=(4000, 20)).astype("float32")
y = (X[:, :3].sum(1) > 0).astype(int) + (X[:, 3] > 1)
init = keras.initializers.GlorotUniform
src = keras.Sequential([keras.Input((20,)),
    keras.layers.Dense(256, activation="relu", kernel_initializer=init(0)),
    keras.layers.Dense(256, activation="relu", kernel_initializer=init(1)),
    keras.layers.Dense(3, activation="softmax", kernel_initializer=init(2))])
times = []
with scope():
    for _ in range(4):
        start = time.perf_counter()
        est = TransferClassifier(src, epochs=10, batch_size=256, random_state=0).fit(X, y)
        times.append(time.perf_counter() - start)
proba = est.predict_proba(X[:500])
print("RESULT", __import__("json").dumps(
    {"first": times[0], "refit": sorted(times[1:])[1], "proba": proba.tolist()}))
"""


def _devices_table():
    import numpy as np

    lines = [
        "| backend (CPU) | devices | first fit | refit (median) "
        "| largest difference from 1 device |",
        "|---|---|---|---|---|",
    ]
    for backend in ("tensorflow", "jax"):
        reference = None
        for n in (1, 2):
            env = dict(KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", SKT_DEVICES=str(n))
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
            try:
                result = _run(DEVICES, **env)
            except subprocess.CalledProcessError as exc:
                lines.append(f"| {backend} | {n} | not run: {exc.stderr.strip()[-200:]} | | |")
                continue
            proba = np.asarray(result["proba"])
            reference = proba if reference is None else reference
            gap = f"{np.abs(proba - reference).max():.1e}" if n > 1 else "(the reference)"
            lines.append(
                f"| {backend} | {n} | {result['first']:.2f} s | {result['refit']:.2f} s | {gap} |"
            )
    return lines


def _run(code, **env):
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def _search_table():
    search = _run(SEARCH)
    base, base_scores = search["n_jobs=1"]
    lines = [
        "| search (4 candidates x 3 folds) | time | speed-up | same scores |",
        "|---|---|---|---|",
    ]
    for name, (seconds, scores) in search.items():
        lines.append(
            f"| {name} | {seconds:.1f} s | {base / seconds:.2f} | {scores == base_scores} |"
        )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="also write the results as markdown to this file")
    parser.add_argument("--backends", action="store_true", help="only compare the backends")
    parser.add_argument("--devices", action="store_true", help="only spread fits over devices")
    args = parser.parse_args(argv)
    command = "python benchmarks/scaling.py" + (" --backends" if args.backends else "")
    lines = [f"Machine: {os.cpu_count()} CPUs. Command: `{command}`.", ""]
    if args.devices:
        lines[0] = f"Machine: {os.cpu_count()} CPUs. Command: `{command} --devices`."
        _write(lines + _devices_table(), args.output)
        return
    if not args.backends:
        lines += _search_table() + [""]
    lines += [
        "| backend (CPU) | first fit in a process | refit (median) | new configuration "
        "| predict 32 rows (median) |",
        "|---|---|---|---|---|",
    ]
    for backend in ("tensorflow", "jax"):
        try:
            result = _run(BACKEND, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
        except subprocess.CalledProcessError as exc:
            lines.append(f"| {backend} | not run: {exc.stderr.strip().splitlines()[-1]} | | | |")
            continue
        lines.append(
            f"| {backend} | {result['first']:.2f} s | {result['refit'] * 1e3:.0f} ms "
            f"| {result['new']:.2f} s | {result['predict'] * 1e3:.2f} ms |"
        )
    _write(lines, args.output)


def _write(lines, output):
    text = "\n".join(lines) + "\n"
    print(text)
    if output:
        Path(output).write_text(text)


if __name__ == "__main__":
    main()

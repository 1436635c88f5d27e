"""Fits on several devices and hosts match the fit on one device.

Keras fixes the number of devices when its backend starts, so every check
runs in fresh processes (``tests/_devices_child.py``): two logical CPU
devices under a ``tf.distribute.MirroredStrategy`` on TensorFlow, two forced
host devices under ``keras.distribution.DataParallel`` on JAX, and a job of
two JAX processes on 127.0.0.1 joined by ``keras.distribution.initialize``.
The children set their own backend, so these checks do not depend on the
suite's.

The tolerance: 1e-5 on predicted probabilities and values, after 80
optimizer steps. The devices each sum the gradients of their rows and the
sums are then added, a float32 summation in another order than one
device's; measured, the fits differ by at most 4e-7 (``docs/scaling.md``).
Everything else (batches, seeds, the loss of each batch) is the same.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("_devices_child.py")
TOLERANCE = 1e-5
TIMEOUT = 300  # seconds per process: a start of TensorFlow or XLA and four short fits


def _environment(backend, devices=1):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _result(output):
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the child printed no result:\n{output[-3000:]}"
    result = json.loads(lines[-1][len("RESULT ") :])
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


def _run(args, env):
    try:
        done = subprocess.run(
            [sys.executable, str(CHILD), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(args)} ran past {TIMEOUT} s:\n{(exc.stderr or '')[-3000:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    return _result(done.stdout)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_devices_fit_as_one(backend):
    pytest.importorskip(backend)
    result = _run(["devices", backend], _environment(backend, devices=2))
    assert result["backend"] == backend
    for name in ("classifier", "regressor"):
        fit = result[name]
        # The same training: same epochs, same losses, the same network to
        # float32 summation order.
        assert fit["epochs"][0] == fit["epochs"][1], name
        assert fit["history_gap"] < TOLERANCE, name
        assert fit["gap"] < TOLERANCE, name
        # It predicts one output per row under the distribution, and the
        # same on one device afterwards, pickled, and saved then loaded.
        assert fit["shape"][0] == 1000, name
        assert fit["after_scope"] == 0.0, name
        assert fit["pickled"] < 1e-6, name
        assert fit["loaded"] < 1e-6, name
    # A network fitted on one device goes on training there only, and says so.
    assert result["warm_start_refused"]
    if backend == "tensorflow":
        assert not result["keras_multi_step"], (
            "Keras now trains with steps_per_execution > 1 under a MirroredStrategy: "
            "sktransfer._distribution.steps_per_execution can stop asking for one step per call"
        )


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_hosts_fit_as_one():
    """Two JAX processes, one CPU device each, run one fit together."""
    pytest.importorskip("jax")
    port, env = _free_port(), _environment("jax")
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "host", str(i), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for child in children:
            outputs.append(child.communicate(timeout=TIMEOUT))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the two-process job ran past {TIMEOUT} s")
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-3000:]
    results = [_result(out) for out, _ in outputs]
    for result in results:
        assert (result["devices"], result["local_devices"]) == (2, 1)
        assert result["gap"] < TOLERANCE
        assert result["after"] == 0.0
    # Both processes hold the one network they trained together.
    assert results[0]["first_rows"] == results[1]["first_rows"]

"""GPU benchmark: a real-size CNN body, sktransfer against hand-written Keras.

Run on a machine with a GPU, on any Keras backend (TensorFlow or JAX)::

    KERAS_BACKEND=jax python benchmarks/gpu.py --output gpu.md

The source is MobileNetV2 (2.3 M parameters, random weights: nothing is
downloaded) on 96x96x3 images. Two transfers are timed, each against the same
training written by hand in Keras on the same GPU: one untimed warm-up fit per
side (its time is reported too), then interleaved timed fits, the median of
each side:

- fine-tuning (``freeze=0``), where both sides train the whole network;
- feature extraction (``freeze="all"``), where sktransfer runs the frozen
  body once per fit and trains only the head.

The labels are random: the figures are times, not accuracies.

``--rows devices`` times data-parallel fits instead (``--rows all`` runs
both): the same fine-tuning by sktransfer on one device, and under a
distribution over every visible GPU (``keras.distribution.DataParallel`` on
JAX, ``tf.distribute.MirroredStrategy`` on TensorFlow), with the largest
difference between the two fits' predicted probabilities. With one GPU the
distribution spans that one GPU (the distributed code path, not a speed-up),
and the two-GPU row says it was skipped::

    KERAS_BACKEND=jax python benchmarks/gpu.py --rows devices --output gpu.md

Without a GPU, ``--cpu`` runs the devices rows over the CPU devices (with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` on JAX): a smoke run.
"""

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def source_model(shape, n_classes):
    import keras

    return keras.applications.MobileNetV2(
        input_shape=shape, weights=None, classes=n_classes, include_top=True
    )


def hand_written(source, X, y, *, freeze_all, epochs, batch_size, lr):
    """What a user writes in Keras for the same transfer: clone, cut, head, fit."""
    import keras

    clone = keras.models.clone_model(source)
    clone.set_weights(source.get_weights())
    body = keras.Model(clone.input, clone.layers[-2].output)
    inputs = keras.Input(source.input_shape[1:])
    if freeze_all:
        body.trainable = False
        features = body(inputs, training=False)
    else:
        features = body(inputs)
    outputs = keras.layers.Dense(int(y.max()) + 1, activation="softmax")(features)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    images = X.reshape((len(X), *source.input_shape[1:]))
    model.fit(images, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def transfer_rows(args, source, X, y, lr):
    """sktransfer against hand-written Keras: fine-tuning and feature extraction."""
    from sktransfer import TransferClassifier

    rows = []
    for label, freeze in (("fine-tuning (freeze=0)", 0), ("feature extraction", "all")):

        def ours(freeze=freeze):
            TransferClassifier(
                source,
                freeze=freeze,
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=lr,
                random_state=0,
            ).fit(X, y)

        def theirs(freeze=freeze):
            hand_written(
                source,
                X,
                y,
                freeze_all=freeze == "all",
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=lr,
            )

        first = (timed(ours), timed(theirs))  # untimed warm-up: first build and trace
        print(f"{label}: first fits: sktransfer {first[0]:.2f} s, Keras {first[1]:.2f} s")
        ours_t, theirs_t = [], []
        for _ in range(args.repeats):  # interleaved: A B A B ...
            ours_t.append(timed(ours))
            theirs_t.append(timed(theirs))
        a, b = statistics.median(ours_t), statistics.median(theirs_t)
        rows.append((label, a, b, a / b, len(ours_t), *first))
        print(f"{label}: sktransfer {a:.2f} s, hand-written Keras {b:.2f} s, ratio {a / b:.2f}")
    return [
        "| transfer | sktransfer | hand-written Keras | ratio | timed fits per side "
        "| first fits (untimed warm-up): sktransfer / Keras |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r[0]} | {r[1]:.2f} s | {r[2]:.2f} s | {r[3]:.2f} | {r[4]} "
            f"| {r[5]:.2f} s / {r[6]:.2f} s |"
            for r in rows
        ),
    ]


def _accelerators(cpu=False):
    """The visible GPUs of the Keras backend (CPU devices with ``cpu``, for a smoke run)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [d for d in jax.devices() if cpu or d.platform != "cpu"]
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices("CPU" if cpu else "GPU")]


def _distribution_scope(devices):
    """A scope in which ``fit`` spreads its batches over ``devices``."""
    import keras

    if keras.backend.backend() == "jax":
        return keras.distribution.DataParallel(devices=devices).scope()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices).scope()


def device_rows(args, source, X, y, lr):
    """Fine-tuning on one device, and under a distribution over every visible GPU.

    Two untimed fits per row: the first builds and compiles, the second
    builds sktransfer's traced worker for the configuration (and compiles
    it, on JAX); the timed fits after them reuse it, as a search's fits do.
    """
    from sktransfer import TransferClassifier

    def fit():
        return TransferClassifier(
            source,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=lr,
            random_state=0,
        ).fit(X, y)

    devices = _accelerators(args.cpu)
    kind = "CPU device" if args.cpu else "GPU"
    held_out = X[: min(len(X), 256)]
    rows, probabilities = [], []
    for label, scope in (
        ("one device, no distribution", contextlib.nullcontext),
        (f"distribution over {len(devices)} {kind}(s)", lambda: _distribution_scope(devices)),
    ):
        if probabilities and not devices:
            rows.append(f"| {label} | skipped: no {kind} visible | | |")
            continue
        with scope():
            first = [timed(fit), timed(fit)]
            times = [timed(fit) for _ in range(args.repeats)]
            probabilities.append(fit().predict_proba(held_out))
        gap = np.abs(probabilities[-1] - probabilities[0]).max()
        gap = f"{gap:.1e}" if len(probabilities) > 1 else "(the reference)"
        median = statistics.median(times)
        rows.append(f"| {label} | {median:.2f} s | {first[0]:.2f} s, {first[1]:.2f} s | {gap} |")
        print(rows[-1])
    if len(devices) < 2:
        rows.append(f"| distribution over 2 {kind}s | skipped: {len(devices)} visible | | |")
    return [
        "| data-parallel fine-tuning (freeze=0) | fit (median) | untimed first and second fits "
        "| largest difference of probabilities from one device |",
        "|---|---|---|---|",
        *rows,
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", choices=("transfer", "devices", "all"), default="transfer")
    parser.add_argument(
        "--cpu", action="store_true", help="devices rows over CPU devices (a smoke run)"
    )
    parser.add_argument("--output", help="also write the results as markdown to this file")
    args = parser.parse_args(argv)

    import keras
    from sklearn.exceptions import ConvergenceWarning

    from sktransfer import TransferClassifier

    # Random labels and a few epochs: the loss is still falling, as timed fits go.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    rng = np.random.default_rng(0)
    shape = (args.size, args.size, 3)
    X = rng.random((args.samples, int(np.prod(shape))), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    source = source_model(shape, 10)
    lr = 1e-3
    tables = []
    if args.rows in ("transfer", "all"):
        # Process warm-up, so that neither side pays the backend's first start-up.
        small = dict(epochs=1, batch_size=8, learning_rate=lr, random_state=0)
        TransferClassifier(source, **small).fit(X[:8], y[:8])
        hand_written(source, X[:8], y[:8], freeze_all=False, epochs=1, batch_size=8, lr=lr)
        tables.append(transfer_rows(args, source, X, y, lr))
    if args.rows in ("devices", "all"):
        tables.append(device_rows(args, source, X, y, lr))
    header = (
        f"MobileNetV2 body (random weights), {args.samples} images of {shape}, "
        f"{args.epochs} epochs, batch {args.batch_size}. Device: {_device()}. Keras "
        f"{keras.__version__} on {keras.backend.backend()}, Python {platform.python_version()}."
    )
    text = header + "\n\n" + "\n\n".join("\n".join(t) for t in tables) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)


def _device():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return ", ".join(str(d.device_kind) for d in jax.devices())
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return ", ".join(g.name for g in gpus) or "CPU"
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unknown")


if __name__ == "__main__":
    main()

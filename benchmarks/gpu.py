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
"""

import argparse
import os
import platform
import statistics
import sys
import time
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", help="also write the results as markdown to this file")
    args = parser.parse_args(argv)

    import keras

    from sktransfer import TransferClassifier

    rng = np.random.default_rng(0)
    shape = (args.size, args.size, 3)
    X = rng.random((args.samples, int(np.prod(shape))), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    source = source_model(shape, 10)
    lr = 1e-3
    # Process warm-up, so that neither side pays the backend's first start-up.
    small = dict(epochs=1, batch_size=8, learning_rate=lr, random_state=0)
    TransferClassifier(source, **small).fit(X[:8], y[:8])
    hand_written(source, X[:8], y[:8], freeze_all=False, epochs=1, batch_size=8, lr=lr)
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

    device = _device()
    lines = [
        "| transfer | sktransfer | hand-written Keras | ratio | timed fits per side "
        "| first fits (untimed warm-up): sktransfer / Keras |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r[0]} | {r[1]:.2f} s | {r[2]:.2f} s | {r[3]:.2f} | {r[4]} "
            f"| {r[5]:.2f} s / {r[6]:.2f} s |"
            for r in rows
        ),
    ]
    header = (
        f"MobileNetV2 body (random weights), {args.samples} images of {shape}, "
        f"{args.epochs} epochs, batch {args.batch_size}. Device: {device}. Keras "
        f"{keras.__version__} on {keras.backend.backend()}, Python {platform.python_version()}."
    )
    text = header + "\n\n" + "\n".join(lines) + "\n"
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

"""Transfer quality out of the box: each estimator at its defaults, against the alternatives.

Usage::

    python benchmarks/defaults.py                      # full run (about 15 minutes on 2 cores)
    python benchmarks/defaults.py --quick              # one draw per task (a smoke run)
    python benchmarks/defaults.py --output table.md    # also write the table as markdown
    python benchmarks/defaults.py --sweep              # budgets, rates, batch sizes, freeze

For every task pair and draw, the same source network is transferred by:

- ``TransferClassifier(src)`` / ``TransferRegressor(src)`` with every
  parameter at its default, and the other settings in ``SETTINGS``;
- ``make_pipeline(SourceFeatures(src), LogisticRegression())`` (or
  ``RidgeCV()``): a linear model on the source's penultimate features;
- ``LogisticRegression()`` (or ``RidgeCV()``) on the raw inputs;
- a hand-written Keras transfer: the cut source with a new softmax (or
  linear) head, fine-tuned with Adam at 1e-3 for 100 epochs of batch 32, as
  Keras' fine-tuning guide writes it;

and scored on held-out target rows (accuracy, or R^2). Tasks: the generated
pairs of ``sktransfer.datasets`` at several sizes and relatednesses, and
scikit-learn's bundled handwritten digits, split into a source and a target
task three ways.
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

# The sweep (--sweep): training budgets in optimizer steps, a lower learning
# rate, other batch sizes and a deeper freeze, each from the probe head.
SWEEP = {
    "100 steps": {"steps": 100},
    "300 steps": {"steps": 300},
    "1000 steps (auto)": {},
    "3000 steps": {"steps": 3000},
    "learning_rate=1e-4": {"learning_rate": 1e-4},
    "batch_size=8": {"batch_size": 8},
    "batch_size=128": {"batch_size": 128},
    "freeze=-1": {"freeze": -1},
}
# Other settings of the estimator, measured next to the defaults.
SETTINGS = {
    "defaults": {},
    "freeze='all'": {"freeze": "all"},
    "alpha=0.3 (distill)": {"alpha": 0.3},
    "head_init='random' (before)": {"head_init": "random", "epochs": 100},
}


def _mlp(n_in, n_out, activation, seed):
    import keras

    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(64, activation="relu", kernel_initializer=init(seed)),
            keras.layers.Dense(32, activation="relu", kernel_initializer=init(seed + 1)),
            keras.layers.Dense(n_out, activation=activation, kernel_initializer=init(seed + 2)),
        ]
    )


def _cnn(n_out, seed):
    import keras

    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(
                16, 3, padding="same", activation="relu", kernel_initializer=init(seed)
            ),
            keras.layers.Conv2D(
                32, 3, padding="same", activation="relu", kernel_initializer=init(seed + 1)
            ),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu", kernel_initializer=init(seed + 2)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(32, activation="relu", kernel_initializer=init(seed + 3)),
            keras.layers.Dense(n_out, activation="softmax", kernel_initializer=init(seed + 4)),
        ]
    )


def _train(model, X, y, loss, epochs, seed):
    import keras

    keras.utils.set_random_seed(seed)
    model.compile(keras.optimizers.Adam(3e-3), loss)
    model.fit(X.astype("float32"), y, epochs=epochs, batch_size=64, verbose=0)
    return model


def generated_pairs(quick):
    """(name, kind, source, X_pool, y_pool, n_train) for the generated pairs."""
    from sktransfer.datasets import make_transfer_classification, make_transfer_regression

    sizes = (30, 300) if quick else (30, 90, 300, 1000)
    for relatedness in (1.0, 0.5, 0.0):
        Xs, ys, Xt, yt = make_transfer_classification(
            n_source=3000, n_target=3000, relatedness=relatedness, random_state=0
        )
        src = _train(_mlp(20, 10, "softmax", 0), Xs, ys, "sparse_categorical_crossentropy", 40, 0)
        for n in sizes:
            yield f"generated, related {relatedness}, n={n}", "clf", src, Xt, yt, n
    Xs, ys, Xt, yt = make_transfer_regression(n_source=3000, n_target=3000, random_state=0)
    src = _train(_mlp(20, 4, "linear", 0), Xs, ys, "mse", 40, 0)
    for n in (30, 300):
        yield f"generated regression, n={n}", "reg", src, Xt, yt, n


def digits_pairs(quick):
    """scikit-learn's digits: classes 0-4 to 5-9, one half of the writers to the other, and
    upright to transposed images; a small CNN trained on the source part."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    low = y < 5
    half = np.arange(len(y)) < 900
    transposed = X.reshape(-1, 8, 8).transpose(0, 2, 1).reshape(-1, 64)
    pairs = [
        ("digits 0-4 to 5-9", X[low], y[low], X[~low], y[~low] - 5, 5),
        ("digits, other writers", X[half], y[half], X[~half], y[~half], 10),
        ("digits, transposed", X, y, transposed, y, 10),
    ]
    for name, Xs, ys, Xt, yt, n_classes in pairs[:1] if quick else pairs:
        src = _train(
            _cnn(n_classes, 0),
            Xs.reshape(-1, 8, 8, 1),
            ys,
            "sparse_categorical_crossentropy",
            40,
            0,
        )
        for shots in (5, 10) if quick else (5, 10, 30):
            yield f"{name}, {shots} per class", "clf", src, Xt, yt, shots * len(set(yt.tolist()))


def _hand_written(src, kind, n_outputs, X, y, seed):
    """Keras' fine-tuning guide, by hand: cut, new head, Adam 1e-3, 100 epochs."""
    import keras

    keras.utils.set_random_seed(seed)
    clone = keras.models.clone_model(src)
    clone.set_weights(src.get_weights())
    base = keras.Model(clone.inputs, clone.layers[-2].output)
    inputs = keras.Input((X.shape[1],))
    h = keras.layers.Reshape(src.input_shape[1:])(inputs)
    h = base(h)
    if kind == "clf":
        out = keras.layers.Dense(n_outputs, activation="softmax")(h)
        loss = "sparse_categorical_crossentropy"
    else:
        out = keras.layers.Dense(1)(h)
        loss = "mse"
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.Adam(1e-3), loss)
    model.fit(X.astype("float32"), y, epochs=100, batch_size=32, verbose=0)
    return model


def _hand_score(model, kind, X, y):
    from sklearn.metrics import r2_score

    out = model.predict(X.astype("float32"), verbose=0)
    return float(np.mean(out.argmax(1) == y)) if kind == "clf" else r2_score(y, out[:, 0])


def _with_steps(params, n):
    """``{"steps": s}`` becomes the ``epochs`` that make about s optimizer steps on n rows."""
    params = dict(params)
    steps = params.pop("steps", None)
    if steps is not None:
        per_epoch = -(-n // min(params.get("batch_size", 32), n))
        params["epochs"] = max(1, -(-steps // per_epoch))
    return params


def _estimators(src, kind, seed, n, settings):
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline

    from sktransfer import SourceFeatures, TransferClassifier, TransferRegressor

    cls = TransferClassifier if kind == "clf" else TransferRegressor
    linear = LogisticRegression if kind == "clf" else RidgeCV
    models = {
        name: cls(src, random_state=seed, **_with_steps(params, n))
        for name, params in settings.items()
    }
    models["SourceFeatures + linear"] = make_pipeline(SourceFeatures(src), linear())
    models["linear on X"] = linear()
    return models


def _draw(y, n, kind, seed):
    """Training rows: n per draw, stratified for classes; the rest is for testing."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    stratify = y if kind == "clf" else None
    return train_test_split(rows, train_size=n, random_state=seed, stratify=stratify)


def run(quick=False, draws=None, sweep=False):
    draws = draws or (1 if quick else 3)
    settings = SWEEP if sweep else SETTINGS
    results, seconds = {}, {}
    tasks = [*generated_pairs(quick), *digits_pairs(quick)]
    for name, kind, src, X, y, n in tasks:
        for seed in range(draws):
            train, test = _draw(y, n, kind, seed)
            for label, model in _estimators(src, kind, seed, n, settings).items():
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(X[train], y[train])
                seconds.setdefault(label, []).append(time.perf_counter() - start)
                results.setdefault((name, label), []).append(model.score(X[test], y[test]))
            n_out = len(set(y.tolist())) if kind == "clf" else 1
            model = _hand_written(src, kind, n_out, X[train], y[train], seed)
            results.setdefault((name, "hand-written Keras"), []).append(
                _hand_score(model, kind, X[test], y[test])
            )
        print(
            f"{name}: "
            + ", ".join(
                f"{label} {np.mean(v):.3f}" for (task, label), v in results.items() if task == name
            ),
            flush=True,
        )
    return results, seconds


def table(results, seconds):
    tasks = list(dict.fromkeys(task for task, _ in results))
    labels = list(dict.fromkeys(label for _, label in results))
    lines = ["| task | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for task in tasks:
        cells = []
        row = {label: np.mean(results[(task, label)]) for label in labels}
        best = max(row.values())
        for label in labels:
            text = f"{row[label]:.3f}"
            cells.append(f"**{text}**" if row[label] >= best - 0.005 else text)
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    timing = ", ".join(f"{label} {np.median(v) * 1000:.0f} ms" for label, v in seconds.items())
    notes = (
        "\n\nAccuracy (classification) or R^2 (regression) on held-out target rows, mean "
        "over draws; bold: within 0.005 of the best. *linear* is `LogisticRegression()` "
        "for classification and `RidgeCV()` for regression.\n\n"
    )
    return "\n".join(lines) + notes + f"Median fit time: {timing}.\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one draw per task, fewer tasks")
    parser.add_argument("--output", metavar="FILE", help="also write the table as markdown")
    parser.add_argument(
        "--sweep", action="store_true", help="other budgets, rates, batch sizes and freezes"
    )
    args = parser.parse_args(argv)
    results, seconds = run(args.quick, draws=2 if args.sweep else None, sweep=args.sweep)
    text = table(results, seconds)
    print(text)
    if args.output:
        command = " ".join(["python benchmarks/defaults.py", *(argv or sys.argv[1:])])
        Path(args.output).write_text(f"Produced by `{command}`.\n\n{text}")


if __name__ == "__main__":
    main()

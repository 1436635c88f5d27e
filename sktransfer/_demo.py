"""``sktransfer demo``: what transfer learning buys on a few-shot task, measured.

1. A source network is trained on a generated source task with plenty of
   data (``sktransfer.datasets.make_transfer_classification``), and cached
   under the user's cache directory so that the next run starts at once.
2. Its knowledge is transferred to a related target task with only a few
   labelled samples per class.
3. Transfer settings, the same network trained from scratch
   (``pretrained=False``) and logistic regression are cross-validated on
   repeated few-shot draws, each scored on the rest of the target pool.

Every number printed is measured in the run.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

N_SOURCE_CLASSES = 10


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sktransfer"


def _progress(done, total, label, stream=sys.stderr):
    width = 30
    filled = int(width * done / total)
    stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<40s}")
    if done == total:
        stream.write("\n")
    stream.flush()


def _source_model(X, y, seed, epochs, use_cache):
    import keras

    path = _cache_dir() / f"demo-source-seed{seed}-n{len(X)}-e{epochs}.keras"
    if use_cache and path.exists():
        try:
            return keras.saving.load_model(path, compile=False), f"loaded from {path}"
        except Exception:  # a damaged cache entry is rebuilt
            path.unlink(missing_ok=True)
    init = keras.initializers.GlorotUniform
    model = keras.Sequential(
        [
            keras.Input((X.shape[1],)),
            keras.layers.Dense(64, activation="relu", kernel_initializer=init(seed)),
            keras.layers.Dense(32, activation="relu", kernel_initializer=init(seed + 1)),
            keras.layers.Dense(
                N_SOURCE_CLASSES, activation="softmax", kernel_initializer=init(seed + 2)
            ),
        ],
        name="demo_source",
    )
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(X.astype("float32"), y, epochs=epochs, batch_size=64, verbose=0, shuffle=False)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        return model, f"trained and cached at {path}"
    return model, "trained (not cached: --no-cache)"


def _models(source, seed, epochs):
    from sklearn.linear_model import LogisticRegression

    from .estimators import TransferClassifier

    common = dict(epochs=epochs, learning_rate=3e-3, batch_size=16, random_state=seed)
    return {
        "transfer, frozen body (freeze='all')": TransferClassifier(source, freeze="all", **common),
        "transfer, fine-tune top (freeze=1)": TransferClassifier(source, freeze=1, **common),
        "transfer, fine-tune + distill (alpha=0.5)": TransferClassifier(
            source, freeze=1, alpha=0.5, **common
        ),
        "same network from scratch": TransferClassifier(
            source, freeze=0, pretrained=False, **common
        ),
        "logistic regression": LogisticRegression(max_iter=1000),
    }


def _score(model, X, y, train, test):
    from sklearn.base import clone

    return clone(model).fit(X[train], y[train]).score(X[test], y[test])


def _splits(y, shots, n_splits, seed):
    from sklearn.model_selection import StratifiedShuffleSplit

    n_classes = len(np.unique(y))
    splitter = StratifiedShuffleSplit(
        n_splits=n_splits, train_size=shots * n_classes, random_state=seed
    )
    return list(splitter.split(np.zeros(len(y)), y))


def _plot(sizes, curve, path):
    """Save the transfer-gain curve with ``TransferGainDisplay``, or None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import TransferGainDisplay

    transfer, scratch = curve
    fig, ax = plt.subplots(figsize=(6, 4))
    TransferGainDisplay(
        train_sizes=sizes,
        scores=curve,
        transfer_name=transfer,
        scratch_name=scratch,
        score_name="Test accuracy",
    ).plot(ax=ax)
    ax.set_xlabel("Labelled target samples")
    ax.set_title("Transfer gain on the few-shot target task")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(shots=10, seed=0, output=".", quick=False, use_cache=True, stream=sys.stdout):
    """Run the demo; returns the table rows ``(name, mean, std)``."""
    from .datasets import make_transfer_classification

    start = time.perf_counter()
    n_source, source_epochs = (1500, 25) if quick else (3000, 40)
    n_splits, epochs = (2, 60) if quick else (5, 100)
    curve_shots = [shots] if quick else sorted({max(2, shots // 2), shots, shots * 2, shots * 4})
    X_source, y_source, X_pool, y_pool = make_transfer_classification(
        n_source=n_source, n_target=1500, random_state=seed
    )
    print(
        f"source task: {n_source} samples, {N_SOURCE_CLASSES} classes; "
        f"target task: {shots} labelled samples per class, 3 classes",
        file=stream,
    )
    source, how = _source_model(X_source, y_source, seed, source_epochs, use_cache)
    print(f"source network {how}", file=stream)

    models = _models(source, seed, epochs)
    splits = _splits(y_pool, shots, n_splits, seed)
    curve_models = ["transfer, frozen body (freeze='all')", "same network from scratch"]
    total = len(models) * n_splits + len(curve_models) * len(curve_shots) * n_splits
    done = 0
    rows = []
    for name, model in models.items():
        scores = []
        for train, test in splits:
            scores.append(_score(model, X_pool, y_pool, train, test))
            done += 1
            _progress(done, total, name)
        rows.append((name, float(np.mean(scores)), float(np.std(scores))))
    curve = {}
    for name in curve_models:
        curve[name] = []
        for k in curve_shots:
            scores = []
            for train, test in _splits(y_pool, k, n_splits, seed):
                scores.append(_score(models[name], X_pool, y_pool, train, test))
                done += 1
                _progress(done, total, f"curve: {name} ({k} per class)")
            curve[name].append(scores)

    scratch = dict((name, mean) for name, mean, _ in rows)["same network from scratch"]
    print(
        f"\naccuracy over {n_splits} few-shot draws (mean ± std), gain over scratch:", file=stream
    )
    print(f"{'model':44s} {'accuracy':>15s} {'gain':>8s}", file=stream)
    for name, mean, std in rows:
        print(f"{name:44s} {mean:7.3f} ± {std:5.3f} {mean - scratch:+8.3f}", file=stream)
    Path(output).mkdir(parents=True, exist_ok=True)
    saved = _plot([k * 3 for k in curve_shots], curve, Path(output) / "transfer_gain.png")
    if saved is None:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=stream)
    else:
        print(f"transfer-gain curve saved to {Path(saved).resolve()}", file=stream)
    print(f"done in {time.perf_counter() - start:.0f} s", file=stream)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="sktransfer", description="Transfer learning from Keras models, for scikit-learn."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="measure what transfer buys on a generated few-shot task",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--shots", type=int, default=10, help="labelled target samples per class (default 10)"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of data, splits and models")
    demo.add_argument(
        "--output", default=".", help="folder for transfer_gain.png (default: current folder)"
    )
    demo.add_argument(
        "--quick", action="store_true", help="smaller source task and fewer draws (for CI)"
    )
    demo.add_argument(
        "--no-cache", action="store_true", help="train the source network again, do not cache it"
    )
    args = parser.parse_args(argv)
    if args.shots < 2:
        parser.error("--shots must be at least 2")
    run(args.shots, args.seed, args.output, args.quick, use_cache=not args.no_cache)
    return 0

"""sktransfer demo: what transfer learning buys on a few-shot task, measured.

1. A source network is trained on a generated source task with plenty of
   data (sktransfer.datasets.make_transfer_classification), and cached under
   ~/.cache/sktransfer (or $XDG_CACHE_HOME/sktransfer) for the next run.
2. Its knowledge is transferred to a related target task with only a few
   labelled samples per class.
3. Transfer settings, the same network trained from scratch
   (pretrained=False) and logistic regression are compared on repeated
   few-shot draws, each scored on the rest of the target pool; the run ends
   with a verdict, and saves the transfer-gain curve with matplotlib.

Every number printed is measured in the run. Progress goes to stderr, the
results to stdout.
"""

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_SOURCE_CLASSES = 10
N_TARGET = 3000
# The from-scratch twin: the baseline that tells transfer gain from negative transfer.
SCRATCH = "same network from scratch"

# TensorFlow's C++ start-up records: absl's (TensorFlow >= 2.17) and TensorFlow's own.
_RECORD = re.compile(
    r"(?:(?P<absl>[IWEF])\d{4} [\d:.]+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: (?P<tf>[IWEF]) )"
    r"\S+:\d+\] (?P<message>.*)"
)
# Error records that only say this machine has no usable GPU.
_NO_GPU = re.compile(r"failed call to cuInit|Unable to register cu\w+ factory")
# Lines that are not records: absl's notice, and the tail of the CPU-features record.
_PLAIN_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called",
    "To enable the following instructions:",
)


def _is_start_up_noise(line):
    """Whether ``line`` is a TensorFlow start-up record that says nothing is wrong.

    Info and warning records are noise, and so are the error records of a
    machine without a GPU; any other line (errors, Python warnings) is not.
    """
    if line.startswith(_PLAIN_NOISE):
        return True
    record = _RECORD.match(line)
    if record is None:
        return False
    severity = record["absl"] or record["tf"]
    return severity in "IW" or _NO_GPU.search(record["message"]) is not None


@contextlib.contextmanager
def _start_up_noise_filtered():
    """Capture file descriptor 2 in the block, then replay all but start-up noise.

    TensorFlow writes its start-up records from C++ straight to file
    descriptor 2 while it loads, before Python logging exists, so neither
    ``logging`` nor ``sys.stderr`` can filter them (``TF_CPP_MIN_LOG_LEVEL``
    drops only some). A temporary file, not a pipe, holds them: nobody reads
    a pipe during the import, and a full one would block TensorFlow. Only the
    command-line entry point uses this; the library never touches its users'
    file descriptors.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (pythonw): nothing to keep quiet
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _is_start_up_noise(line)))
            sys.stderr.flush()


def _load_keras():
    """Import Keras and TensorFlow and find TensorFlow's devices, without the start-up noise."""
    with _start_up_noise_filtered():
        import keras  # noqa: F401

        # On every backend: Keras imports TensorFlow, where it is installed,
        # the first time it serialises a layer (on JAX, in the first fit).
        import tensorflow as tf

        # Device discovery logs too: cuInit fails on a machine without a GPU.
        tf.config.list_physical_devices()
        # An application may set its libraries' log levels (the library never does):
        # TensorFlow's Python-side warnings, such as retracing notices, are for the
        # developers of the code that calls it, not for the demo's user. Errors still show.
        tf.get_logger().setLevel("ERROR")


class _Progress:
    """One ``keras.utils.Progbar`` per long step, written to ``stream``.

    On a terminal the bar is redrawn in place (Progbar pads over what it drew
    before) within 80 columns; anywhere else (a pipe, a file, a CI log) each
    step ends in one summary line, so captured output holds no redraws.
    """

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self._bar = None

    def start(self, label, total, unit):
        """Print ``label`` and start a bar of ``total`` units."""
        import keras

        print(label, file=self.stream, flush=True)
        verbose = 1 if self.live else 2
        self._bar = keras.utils.Progbar(
            total, width=25, verbose=verbose, unit_name=unit, stateful_metrics=["loss"]
        )

    def update(self, done, **values):
        """Show ``done`` units finished, and the current ``values``."""
        # Progbar writes to sys.stdout; the results own stdout.
        with contextlib.redirect_stdout(self.stream):
            self._bar.update(done, values=list(values.items()))


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sktransfer"


def _source_model(X, y, seed, epochs, use_cache, progress):
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
    progress.start(f"training the source network ({len(X)} samples)", epochs, "epoch")
    epoch_done = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: progress.update(epoch + 1, loss=logs["loss"])
    )
    model.fit(
        X.astype("float32"),
        y,
        epochs=epochs,
        batch_size=64,
        verbose=0,
        shuffle=False,
        callbacks=[epoch_done],
    )
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        return model, f"trained and cached at {path}"
    return model, "trained (not cached: --no-cache)"


def _models(source, seed):
    """The compared models: transfer settings, and the baselines they must beat.

    Returns
    -------
    settings : dict of str to estimator
        Transfer settings, by name.
    baselines : dict of str to estimator
        Baselines by name, the from-scratch twin under ``SCRATCH``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from .estimators import TransferClassifier
    from .features import SourceFeatures

    settings = {
        "transfer, defaults": TransferClassifier(source, random_state=seed),
        "transfer, frozen body (freeze='all')": TransferClassifier(
            source, freeze="all", random_state=seed
        ),
        "transfer + distill (alpha=0.3)": TransferClassifier(source, alpha=0.3, random_state=seed),
    }
    baselines = {
        SCRATCH: TransferClassifier(source, pretrained=False, random_state=seed),
        "logistic regression": LogisticRegression(max_iter=1000),
        "source features + logistic reg.": make_pipeline(
            SourceFeatures(source), LogisticRegression(max_iter=1000)
        ),
    }
    return settings, baselines


def _tasks(seed, quick):
    """The source task and the target pool: ``X_source, y_source, X_pool, y_pool``."""
    from .datasets import make_transfer_classification

    n_source = 1500 if quick else 3000
    return make_transfer_classification(
        n_source=n_source, n_target=N_TARGET, n_source_classes=N_SOURCE_CLASSES, random_state=seed
    )


def _max_shots(y):
    """The most labelled samples per class a draw may take: half the smallest class.

    The other half, at least, of every class stays in the test set.
    """
    return int(np.bincount(y).min()) // 2


def _draws(y, shots, n_draws, seed):
    """Few-shot draws: ``shots`` samples of each class to train on, the rest to test on.

    Draw ``i`` takes the first ``shots`` samples of a permutation of each
    class that does not depend on ``shots``, so the draws of a smaller size
    are nested in those of a larger one: the curve compares like with like.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    draws = []
    for _ in range(n_draws):
        train = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:shots] for c in classes])
        draws.append((np.sort(train), np.setdiff1d(np.arange(len(y)), train)))
    return draws


def _curve_shots(shots, quick, max_shots):
    """Labelled samples per class at each point of the curve: three or more, around ``shots``."""
    top = min(max_shots, shots * (2 if quick else 4))
    low = max(2, min(shots // 2, top - 2))
    points = {low, shots, top}
    if not quick and shots * 2 < top:
        points.add(shots * 2)
    if len(points) < 3:  # at 2 shots, or at the pool's limit, the doubling ladder collapses
        points.add((low + top) // 2)
    return sorted(points)


def _measure(models, X, y, draws, progress, done=0):
    """Test scores of each model on each draw; ``done`` counts fits for the bar."""
    from sklearn.base import clone

    scores = {}
    for name, model in models.items():
        scores[name] = []
        for train, test in draws:
            fitted = clone(model).fit(X[train], y[train])
            scores[name].append(fitted.score(X[test], y[test]))
            done += 1
            progress.update(done)
    return scores, done


def _verdict(means, settings, baselines):
    """One line: the best transfer setting and its gain over the best baseline, or a warning."""
    best = max(settings, key=means.get)
    rival = max(baselines, key=means.get)
    gain = round(means[best] - means[rival], 3)
    if gain > 0:
        return f"verdict: {best} is best, {gain:+.3f} over the best baseline ({rival})"
    warning = "negative transfer" if rival == SCRATCH else "no transfer gain"
    if gain == 0:
        return f"verdict: WARNING, {warning}: {rival} does as well as the best transfer setting"
    return (
        f"verdict: WARNING, {warning}: {rival} beats every transfer setting; "
        f"the best, {best}, scores {-gain:.3f} less"
    )


def _plot(sizes, curve, best, n_draws, path):
    """Save the transfer-gain curve; returns the display, or None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from .plotting import TransferGainDisplay

    fig, ax = plt.subplots(figsize=(7, 4.5))
    display = TransferGainDisplay(
        train_sizes=sizes,
        scores=curve,
        transfer_name=best,
        scratch_name=SCRATCH,
        score_name="Test accuracy",
    ).plot(ax=ax)
    # The sizes double from point to point: a log axis spaces them evenly.
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, labels=[str(k) for k in sizes])
    ax.minorticks_off()
    ax.set_xlabel("Labelled target samples per class")
    band = Patch(facecolor="0.5", alpha=0.3, label=f"shaded: ±1 std over {n_draws} draws")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*handles, band], loc="best", fontsize="small")
    ax.set_title("Transfer gain on the few-shot target task")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return display


def _print_table(scores, n_draws, stream):
    """Print each model's accuracy and gain over scratch; returns the mean accuracies."""
    means = {name: float(np.mean(values)) for name, values in scores.items()}
    print(f"\naccuracy on the rest of the pool, mean ± std over {n_draws} draws:", file=stream)
    print(f"{'model':44s} {'accuracy':>15s} {'vs scratch':>11s}", file=stream)
    for name, values in scores.items():
        # + 0.0 turns the -0.0 of a gain that rounds to zero into 0.0, printed "+0.000".
        gain = round(means[name] - means[SCRATCH], 3) + 0.0
        print(f"{name:44s} {means[name]:7.3f} ± {np.std(values):5.3f} {gain:+11.3f}", file=stream)
    return means


def _curve(models, X, y, sizes, shots, table, n_draws, seed, progress):
    """Scores of ``models`` at each size, shape (n_sizes, n_draws); ``table`` gives ``shots``."""
    others = [k for k in sizes if k != shots]
    progress.start(
        f"transfer-gain curve: {len(models)} models at {', '.join(map(str, others))} "
        "labelled samples per class",
        len(models) * len(others) * n_draws,
        "fit",
    )
    at, done = {shots: table}, 0
    for k in others:
        at[k], done = _measure(models, X, y, _draws(y, k, n_draws, seed), progress, done)
    return {name: [at[k][name] for k in sizes] for name in models}


def run(shots=10, seed=0, output=".", quick=False, use_cache=True, stream=None, progress=None):
    """Run the demo: train or load the source, compare, plot, and judge.

    Parameters
    ----------
    shots : int, default=10
        Labelled target samples per class in each draw.
    seed : int, default=0
        Seed of the tasks, the draws and the models.
    output : str or path, default="."
        Folder of ``transfer_gain.png``.
    quick : bool, default=False
        A smaller source task, 2 draws and a 3-point curve.
    use_cache : bool, default=True
        Load the source network from the cache, or train and cache it.
    stream : file, default=None
        Where the results go; None means ``sys.stdout``.
    progress : file, default=None
        Where the progress bars go; None means ``sys.stderr``.

    Returns
    -------
    verdict : str
        The last line printed.
    """
    stream = sys.stdout if stream is None else stream
    progress = _Progress(progress)
    start = time.perf_counter()
    source_epochs, n_draws = (25, 2) if quick else (40, 5)
    X_source, y_source, X_pool, y_pool = _tasks(seed, quick)
    print(
        f"source task: {len(X_source)} samples, {N_SOURCE_CLASSES} classes; target task: "
        f"{len(np.unique(y_pool))} classes, {shots} labelled samples per class",
        file=stream,
    )
    source, how = _source_model(X_source, y_source, seed, source_epochs, use_cache, progress)
    print(f"source network {how}", file=stream, flush=True)

    settings, baselines = _models(source, seed)
    models = {**settings, **baselines}
    progress.start(
        f"comparing {len(models)} models on {n_draws} draws of {shots} labelled samples per class",
        len(models) * n_draws,
        "fit",
    )
    table, _ = _measure(models, X_pool, y_pool, _draws(y_pool, shots, n_draws, seed), progress)
    means = _print_table(table, n_draws, stream)
    verdict = _verdict(means, settings, baselines)
    best = max(settings, key=means.get)
    sizes = _curve_shots(shots, quick, _max_shots(y_pool))
    curve_models = {best: settings[best], **baselines}
    curve = _curve(curve_models, X_pool, y_pool, sizes, shots, table, n_draws, seed, progress)
    Path(output).mkdir(parents=True, exist_ok=True)
    path = Path(output).resolve() / "transfer_gain.png"
    if _plot(sizes, curve, best, n_draws, path) is None:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=stream)
    else:
        per_class = ", ".join(map(str, sizes))
        print(f"transfer-gain curve ({per_class} per class) saved to {path}", file=stream)
    print(f"measured in {time.perf_counter() - start:.0f} s", file=stream)
    print(verdict, file=stream, flush=True)
    return verdict


def _parser():
    """The ``sktransfer`` parser, and that of its ``demo`` command."""
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
        "--shots",
        type=int,
        default=10,
        metavar="N",
        help="labelled target samples per class, at least 2 (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the data, the draws and the models (default: %(default)s)",
    )
    demo.add_argument(
        "--output",
        default=".",
        metavar="DIR",
        help="folder for transfer_gain.png (default: the current folder)",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a smaller source task, 2 draws and a 3-point curve (default: off)",
    )
    demo.add_argument(
        "--no-cache",
        action="store_true",
        help="train the source network again and do not cache it (default: off, the "
        "network is cached under ~/.cache/sktransfer)",
    )
    return parser, demo


def _check(args, parser):
    """Refuse out-of-range arguments, with ``parser.error``, before anything slow starts."""
    if not 0 <= args.seed < 2**32:
        parser.error(f"--seed must be between 0 and {2**32 - 1}; got {args.seed}")
    if args.shots < 2:
        parser.error(f"--shots must be at least 2; got {args.shots}")
    y_pool = _tasks(args.seed, args.quick)[3]
    if args.shots > _max_shots(y_pool):
        parser.error(
            f"--shots must be at most {_max_shots(y_pool)} with --seed {args.seed}"
            f"{' --quick' if args.quick else ''}; got {args.shots}: the smallest class of the "
            f"target pool has {np.bincount(y_pool).min()} samples, and at least half of each "
            "class is kept to measure accuracy"
        )
    if Path(args.output).exists() and not Path(args.output).is_dir():
        parser.error(f"--output must be a folder; {args.output!r} is a file")


def main(argv=None):
    """The ``sktransfer`` command; returns its exit status."""
    parser, demo = _parser()
    args = parser.parse_args(argv)
    _check(args, demo)
    print("loading Keras and TensorFlow", file=sys.stderr, flush=True)
    _load_keras()
    run(args.shots, args.seed, args.output, args.quick, use_cache=not args.no_cache)
    return 0

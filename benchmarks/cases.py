"""The benchmarks: each returns a ``Row`` comparing sktransfer with a baseline.

Every timing is the median over ``repeats`` interleaved runs (ABBA order),
after one untimed warm-up run of each side, and the figure is the ratio of
the two medians measured in the same run.
"""

import contextlib
import io
import shutil
import sys
import tempfile
import time

import _models
import numpy as np
from _bench import ROOT, Comparison, Row, interleaved, median, run_child

# Settings shared by quick and full mode (only the repeat counts differ).
FINETUNE = {"n_samples": 300, "n_classes": 3, "epochs": 20, "batch_size": 32}
FEATURES = {"n_samples": 500, "n_classes": 3, "epochs": 10, "batch_size": 32}
GRID = {
    "n_samples": 500,
    "n_classes": 3,
    "epochs": 10,
    "batch_size": 32,
    "param_grid": {"alpha": [0.0, 0.3, 0.7], "freeze": [-1, "all"]},
    "cv": 3,
    "dense": 64,
    "width": 2,
}
# Row 4b, for context: the plain CNN, where freeze=2 leaves a convolution to train.
GRID_CONV = {
    **GRID,
    "param_grid": {"alpha": [0.0, 0.3, 0.7], "freeze": [2, "all"]},
    "dense": None,
    "width": 1,
}
# Row 4c, for context: row 4's source with twice its channels again, so that the
# frozen convolutions are most of a fit.
GRID_WIDE = {**GRID, "width": 4}
PREDICT_ROWS = 32
REPEAT = {"n_samples": 200, "epochs": 10}
RSS = {"n_samples": 100, "epochs": 3}
COMPARE = {"n_target": 100, "epochs": 50, "batch_size": 32, "learning_rate": 1e-3}
# Rows 9 and 10: a frozen application backbone on images.
BACKBONE = {"n_samples": 2000, "size": 96, "n_classes": 10, "epochs": 20, "batch_size": 32}

# Repeat counts per mode.
MODES = {
    "full": {
        "fit": 5,
        "features": 5,
        "grid": 3,
        "predict": 41,
        "import": 6,
        "rss": (20, 180, 10, 60),
        "repeat": 5,
        "compare": 5,
        "backbone": 5,
    },
    "quick": {
        "fit": 2,
        "features": 2,
        "grid": 1,
        "predict": 21,
        "import": 2,
        "rss": (5, 20, 5, 15),
        "repeat": 3,
        "compare": 1,
        "backbone": 2,
    },
}


def _classifier(source, **params):
    from sktransfer import TransferClassifier

    return TransferClassifier(source, **params)


def _cut(model):
    """Clone ``model`` with its weights and cut off its output layer."""
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    if isinstance(clone, keras.Sequential):  # a cloned Sequential has no graph yet
        inputs = keras.Input(model.input_shape[1:])
        h = inputs
        for layer in clone.layers[:-1]:
            h = layer(h)
        return keras.Model(inputs, h)
    return keras.Model(clone.input, clone.layers[-2].output)


def _compile(model, learning_rate, loss="sparse_categorical_crossentropy", jit_compile=False):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss=loss, jit_compile=jit_compile
    )
    return model


def hand_finetune(
    source, X, y, n_classes, epochs, batch_size, learning_rate=1e-3, jit_compile=False
):
    """Fine-tuning written by hand in Keras: the baseline of benchmarks 1 and 1j."""
    import keras

    body = _cut(source)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(body.output)
    model = _compile(keras.Model(body.input, outputs), learning_rate, jit_compile=jit_compile)
    model.fit(X, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return model


def hand_features(source, images, y, n_classes, epochs, batch_size, learning_rate=1e-3):
    """Feature extraction written by hand: frozen base in inference mode, new head."""
    import keras

    base = _cut(source)
    base.trainable = False
    inputs = keras.Input(images.shape[1:])
    h = base(inputs, training=False)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(h)
    model = _compile(keras.Model(inputs, outputs), learning_rate)
    model.fit(images, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    return model


def _timing_row(row, times, sk="sktransfer", base="baseline"):
    row.sk, row.base = median(times[sk]), median(times[base])
    row.value = row.sk / row.base
    row.n = len(times[sk])
    return row.judge()


# -- 1. fine-tuning and 3. distillation -------------------------------------------

_MLP_TIMES = {}


def _mlp_times(repeats):
    """Interleaved fits of rows 1 and 3 (one set, shared by both rows).

    Hand-written Keras, sktransfer with alpha=0 and sktransfer with
    alpha=0.5 run in turn (ABC CBA ...), so the alpha=0 fits are the
    sktransfer side of row 1 and the baseline of row 3.
    """
    if repeats not in _MLP_TIMES:
        c = FINETUNE
        source = _models.mlp_source(20, (64, 32), 10, seed=0)
        X, y = _models.labelled_rows(c["n_samples"], 20, c["n_classes"], seed=1)

        def fit(alpha):
            return lambda i: _classifier(
                source,
                freeze=0,
                alpha=alpha,
                source_loss="distill",
                epochs=c["epochs"],
                batch_size=c["batch_size"],
                random_state=i,
            ).fit(X, y)

        variants = {
            "keras": lambda i: hand_finetune(
                source, X, y, c["n_classes"], c["epochs"], c["batch_size"]
            ),
            "alpha=0": fit(0.0),
            "alpha=0.5": fit(0.5),
        }
        _MLP_TIMES[repeats] = interleaved(variants, repeats)[0]
    return _MLP_TIMES[repeats]


def finetune(repeats):
    row = Row("1", "fine-tuning fit vs hand-written Keras", "<= 1.10", 1.10)
    times = _mlp_times(repeats)
    c = FINETUNE
    row.note = (
        f"MLP 20-64-32-10, {c['n_samples']} rows, {c['epochs']} epochs, "
        f"batch {c['batch_size']}, freeze=0, alpha=0, random_state = repeat index; "
        "fits interleaved with row 3's"
    )
    return _timing_row(row, {"sktransfer": times["alpha=0"], "baseline": times["keras"]})


def finetune_jax(repeats):
    """Row 1j: row 1 on the JAX backend, in a subprocess (Keras fixes its backend at import)."""
    row = Row("1j", "fine-tuning fit vs hand-written Keras, both on JAX", "<= 1.10", 1.10)
    c = FINETUNE
    result = run_child(
        "finetune", env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}, repeats=repeats, **c
    )
    if result["backend"] != "jax":
        raise RuntimeError(f"the child ran on {result['backend']!r}, not jax")
    row = _timing_row(row, result["times"])
    row.note = (
        "as row 1, in a subprocess with KERAS_BACKEND=jax (CPU); the baseline compiles with "
        "Keras' default jit_compile='auto' (XLA on JAX), so each of its fits compiles a new "
        "model. Not judged: sktransfer's first fit in that process, which compiles its "
        f"configuration, took {result['first']:.2f} s ({result['first'] / row.base:.2f} "
        "times the baseline's median)"
    )
    return row


def distill(repeats):
    row = Row("3", 'distillation fit (`alpha=0.5`, "distill") vs `alpha=0`', "<= 1.30", 1.3)
    times = _mlp_times(repeats)
    row.note = "same data and MLP as row 1; baseline is the same estimator with alpha=0"
    return _timing_row(row, {"sktransfer": times["alpha=0.5"], "baseline": times["alpha=0"]})


# -- 11. the probe head -------------------------------------------------------------


def probe(repeats):
    """Row 11: the linear-probe fit against the same probe assembled by hand."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from sktransfer import SourceFeatures

    row = Row("11", 'probe fit (`freeze="all"`) vs SourceFeatures + LogisticRegression', "<= 1.50")
    row.limit = 1.5
    c = FINETUNE
    source = _models.mlp_source(20, (64, 32), 10, seed=0)
    X, y = _models.labelled_rows(c["n_samples"], 20, c["n_classes"], seed=1)
    times, _ = interleaved(
        {
            "sktransfer": lambda i: _classifier(source, freeze="all", random_state=i).fit(X, y),
            "baseline": lambda i: make_pipeline(
                SourceFeatures(source), LogisticRegression(max_iter=1000)
            ).fit(X, y),
        },
        repeats,
    )
    row.note = (
        f"row 1's MLP and data ({c['n_samples']} rows): the whole fit is the exact probe "
        "(features once, the evidence-maximising penalty, lbfgs on standardised "
        "features); the baseline fits the same kind of model on the same features"
    )
    return _timing_row(row, times)


# -- 2. feature extraction -------------------------------------------------------


def features(repeats):
    row = Row("2", 'feature-extraction fit (`freeze="all"`) vs hand-written Keras', "<= 0.40", 0.4)
    c = FEATURES
    source = _models.cnn_source((32, 32, 3), 10, seed=0)
    X, y = _models.labelled_rows(c["n_samples"], 32 * 32 * 3, c["n_classes"], seed=2)
    images = X.reshape(-1, 32, 32, 3)
    times, _ = interleaved(
        {
            "sktransfer": lambda i: _classifier(
                source,
                freeze="all",
                epochs=c["epochs"],
                batch_size=c["batch_size"],
                random_state=i,
            ).fit(X, y),
            "baseline": lambda i: hand_features(
                source, images, y, c["n_classes"], c["epochs"], c["batch_size"]
            ),
        },
        repeats,
    )
    row.note = (
        f"CNN on 32x32x3 ({source.count_params()} params), {c['n_samples']} rows, "
        f"{c['epochs']} epochs, batch {c['batch_size']}"
    )
    return _timing_row(row, times)


# -- 4. grid search with memory --------------------------------------------------


def grid_search_conv(repeats):
    """Row 4b: the same search where the shallower depth trains a convolution."""
    row = grid_search(repeats, GRID_CONV)
    row.key, row.target, row.limit, row.status = "4b", "context (not judged)", None, "-"
    row.name = "GridSearchCV with memory, plain CNN, freeze [2, 'all'] (context)"
    row.note += (
        "; freeze=2 trains conv c3 every epoch, which no cache can save, and its frozen "
        "activations are larger than the images, so memory does not store them"
    )
    return row


def grid_search_wide(repeats):
    """Row 4c: the same search on a source whose frozen body dominates a fit."""
    row = grid_search(repeats, GRID_WIDE)
    row.key, row.target, row.limit, row.status = "4c", "context (not judged)", None, "-"
    row.name = "GridSearchCV with memory, 4x-wide CNN (context)"
    return row


def grid_search(repeats, c=GRID):
    from sklearn.model_selection import GridSearchCV

    row = Row("4", "GridSearchCV with `memory=<tempdir>` vs without", "<= 0.60", 0.6)
    n_fits = np.prod([len(v) for v in c["param_grid"].values()]) * c["cv"] + 1
    body = "row 2's CNN" + (f" with {c['width']}x the channels" if c["width"] > 1 else "")
    body += f" and a Dense({c['dense']}) before the output" if c["dense"] else ""
    row.note = (
        f"{body} as source, grid {c['param_grid']}, {c['cv']} folds ({n_fits} fits with "
        f"the refit), {c['n_samples']} rows, {c['epochs']} epochs; a fresh cache directory "
        "per search"
    )
    if "memory" not in _classifier(None).get_params():
        row.status = "n/a"
        row.note = "n/a (memory not implemented): TransferClassifier has no `memory` parameter"
        return row
    source = _models.cnn_source((32, 32, 3), 10, seed=0, dense=c["dense"], width=c["width"])
    X, y = _models.labelled_rows(c["n_samples"], 32 * 32 * 3, c["n_classes"], seed=3)
    directories = []

    def search(memory):
        def run(i):
            if memory:
                directories.append(tempfile.mkdtemp(prefix="sktransfer-bench-"))
            estimator = _classifier(
                source,
                epochs=c["epochs"],
                batch_size=c["batch_size"],
                random_state=0,
                memory=directories[-1] if memory else None,
            )
            GridSearchCV(estimator, c["param_grid"], cv=c["cv"], error_score="raise").fit(X, y)

        return run

    # Warm up with short fits per freeze depth, with and without a throwaway
    # cache, instead of two whole searches; any first-run cost left over falls
    # on the memory side, which runs first.
    directories.append(tempfile.mkdtemp(prefix="sktransfer-bench-warmup-"))
    for freeze in c["param_grid"]["freeze"]:
        for memory in (None, directories[0]):
            _classifier(
                source, freeze=freeze, alpha=0.3, epochs=1, random_state=0, memory=memory
            ).fit(X, y)
    try:
        times, _ = interleaved(
            {"sktransfer": search(True), "baseline": search(False)}, repeats, warmup=0
        )
    finally:
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
    return _timing_row(row, times)


# -- 5. predict latency ----------------------------------------------------------


def predict(repeats):
    name = f"predict on {PREDICT_ROWS} rows vs `model.predict(x, verbose=0)`"
    row = Row("5", name, "<= 0.05", 0.05)
    source = _models.mlp_source(20, (64, 32), 10, seed=0)
    X, y = _models.labelled_rows(300, 20, 3, seed=1)
    estimator = _classifier(source, epochs=2, random_state=0).fit(X, y)
    x = X[:PREDICT_ROWS]
    model = estimator.model_
    times, _ = interleaved(
        {
            "sktransfer": lambda i: estimator.predict(x),
            "baseline": lambda i: model.predict(x, verbose=0),
        },
        repeats,
        warmup=3,
        collect=False,
    )
    row.note = "fitted estimator; the baseline calls Keras' predict on the same est.model_"
    return _timing_row(row, times)


# -- 6. import time --------------------------------------------------------------


def import_time(repeats):
    name = "`from sktransfer import TransferClassifier` vs `import keras`"
    row = Row("6", name, "<= 0.30", 0.3)
    results = {"sktransfer": [], "baseline": []}

    def measure(module, key):
        def run(i):
            result = run_child("import", module=module)
            results[key].append(result)
            return result["seconds"]

        return run

    _, seconds = interleaved(
        {
            "sktransfer": measure("sktransfer", "sktransfer"),
            "baseline": measure("keras", "baseline"),
        },
        repeats,
    )
    row.sk, row.base = median(seconds["sktransfer"]), median(seconds["baseline"])
    row.value = row.sk / row.base
    row.n = repeats
    tf_loaded = any(r["tensorflow_loaded"] for r in results["sktransfer"])
    keras_loaded = any(r["keras_loaded"] for r in results["sktransfer"])
    row.note = (
        "fresh subprocess each, perf_counter around the import statement; "
        f"after the sktransfer import: tensorflow {'LOADED' if tf_loaded else 'not loaded'}, "
        f"keras {'loaded' if keras_loaded else 'not loaded'}"
    )
    row.judge(extra_ok=not tf_loaded)
    if tf_loaded:
        row.note += " (MISS: the import must not load tensorflow)"
    return row


# -- 7. memory growth ------------------------------------------------------------


def _slope(rss):
    return float(np.polyfit(np.arange(len(rss)), rss, 1)[0])


def rss_growth(counts):
    warmup, fits, keras_warmup, keras_fits = counts
    row = Row("7", "RSS growth per fit over sequential fits", "< 0.5 MiB", 0.5, strict=True)
    row.unit = "MiB/fit"
    result = run_child("rss", warmup=warmup, fits=fits, **RSS)
    rss = np.asarray(result["rss_mib"])
    row.value, row.n = _slope(rss), len(rss)
    row.note = (
        f"subprocess, {warmup} warm-up fits then {fits} measured; least-squares slope of RSS "
        f"({result['method']}) over the measured fits, {rss[0]:.0f} -> {rss[-1]:.0f} MiB; "
        "alternates freeze=0/alpha=0 and freeze=1/alpha=0.5, random_state varies, "
        f"{RSS['n_samples']} rows, {RSS['epochs']} epochs"
    )
    try:
        keras_rss = run_child(
            "rss", warmup=keras_warmup, fits=keras_fits, estimator="keras", **RSS
        )["rss_mib"]
        row.note += (
            f". For context (not judged), the same fine-tuning written by hand in Keras "
            f"grows {_slope(keras_rss):.2f} MiB/fit ({keras_warmup} + {keras_fits} fits)"
        )
    except RuntimeError as exc:
        row.note += f". (Keras context run failed: {exc})"
    return row.judge()


# -- 8. repeat fit ---------------------------------------------------------------


def repeat_fit(repeats):
    row = Row("8", "repeat fit of an identical configuration vs first fit", "<= 0.40", 0.4)
    result = run_child("repeat", repeats=repeats, **REPEAT)
    row.sk, row.base = median(result["repeats"]), result["first"]
    row.value, row.n = row.sk / row.base, repeats
    row.note = (
        f"fresh subprocess, keras imported and the source called before the first fit; "
        f"{REPEAT['n_samples']} rows, {REPEAT['epochs']} epochs, MLP 20-64-32-10; "
        "baseline is the first fit, sktransfer side the median of the identical refits"
    )
    return row.judge()


# -- 9 and 10. a frozen application backbone on images ------------------------------

_BACKBONE = {}


def _backbone_task():
    """MobileNetV3Small without its top (random weights: nothing is downloaded), images."""
    import keras

    if not _BACKBONE:
        c = BACKBONE
        shape = (c["size"], c["size"], 3)
        backbone = keras.applications.MobileNetV3Small(
            weights=None, include_top=False, pooling="avg", input_shape=shape
        )
        rng = np.random.default_rng(9)
        images = rng.uniform(0, 255, (c["n_samples"], *shape)).astype(np.float32)
        labels = rng.integers(0, c["n_classes"], c["n_samples"])
        _BACKBONE.update(backbone=backbone, images=images, labels=labels)
    return _BACKBONE["backbone"], _BACKBONE["images"], _BACKBONE["labels"]


def _backbone_fit(source, X, y, i, **params):
    c = BACKBONE
    return _classifier(
        source, epochs=c["epochs"], batch_size=c["batch_size"], random_state=i, **params
    ).fit(X, y)


def backbone_first_fit(repeats):
    """Row 9: a frozen backbone's fit against one predict pass plus the head's training."""
    import keras

    row = Row(
        "9",
        'frozen application backbone: `freeze="all"` fit vs its physical limit',
        "<= 1.20",
        1.2,
    )
    c = BACKBONE
    backbone, X, y = _backbone_task()
    # The head alone, as sktransfer trains it: a headless identity source on the features.
    features = keras.Sequential(
        [keras.Input(backbone.output_shape[1:]), keras.layers.Identity(name="features")]
    )

    def limit(i):
        pooled = backbone.predict(X, batch_size=256, verbose=0)
        _backbone_fit(features, pooled, y, i, freeze="all")

    times, _ = interleaved(
        {
            "sktransfer": lambda i: _backbone_fit(backbone, X, y, i, freeze="all"),
            "baseline": limit,
        },
        repeats,
    )
    row.note = (
        f"MobileNetV3Small(include_top=False, pooling='avg', weights=None) at "
        f"{c['size']}x{c['size']}x3 ({backbone.count_params()} params, transferred whole), "
        f"{c['n_samples']} images, {c['epochs']} epochs, batch {c['batch_size']}; the "
        "baseline is one `backbone.predict` pass over X plus the same head trained by "
        "sktransfer on those features (an identity source), so the ratio is what the "
        "image path adds: building the network and running its frozen copy. A head "
        "initialised by a solve (issue 13's probe) adds that solve to both sides"
    )
    return _timing_row(row, times)


def backbone_second_fit(repeats):
    """Row 10: the second fit of a search with ``memory`` against the first."""
    row = Row(
        "10",
        "frozen application backbone: second fit of a search with `memory` vs the first",
        "<= 0.20",
        0.2,
    )
    backbone, X, y = _backbone_task()
    times = {"sktransfer": [], "baseline": []}
    for i in range(repeats + 1):  # the first pair is an untimed warm-up
        directory = tempfile.mkdtemp(prefix="sktransfer-bench-")
        try:
            pair = []
            for learning_rate in (1e-3, 1e-2):  # two candidates of a search
                start = time.perf_counter()
                _backbone_fit(
                    backbone, X, y, i, freeze="all", learning_rate=learning_rate, memory=directory
                )
                pair.append(time.perf_counter() - start)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        if i:
            times["baseline"].append(pair[0])
            times["sktransfer"].append(pair[1])
    row.note = (
        "row 9's backbone and images; each repeat runs two candidates of a search "
        "(learning_rate 1e-3, then 1e-2, same random_state) with a fresh `memory` "
        "directory: the first computes and stores the frozen backbone's outputs, the "
        "second reads them; baseline is the first fit, sktransfer side the second"
    )
    return _timing_row(row, times)


# -- comparison with other libraries ---------------------------------------------


def _shared_task():
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from _tasks import shared_representation_task, train_source
    finally:
        sys.path.remove(str(ROOT / "tests"))
    (xs, ys), (xt, yt), (xe, ye) = shared_representation_task(n_target=COMPARE["n_target"])
    source = train_source(xs, ys, 10)
    return source, (xt, yt), (xe, ye)


def _wrapper_network(X, y, source, learning_rate):
    """The model callable of keras.wrappers.SKLearnClassifier: cut source + new head."""
    import keras

    body = _cut(source)
    outputs = keras.layers.Dense(y.shape[1], activation="softmax")(body.output)
    return _compile(keras.Model(body.input, outputs), learning_rate, "categorical_crossentropy")


def _adapt_model(source, X, y, seed):
    """ADAPT's FineTuning on the same network, fitted."""
    import keras
    from adapt.parameter_based import FineTuning

    c = COMPARE
    encoder = _cut(source)
    task = keras.Sequential(
        [keras.Input((encoder.output.shape[-1],)), keras.layers.Dense(3, activation="softmax")]
    )
    model = FineTuning(
        encoder=encoder,
        task=task,
        training=True,
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.Adam(c["learning_rate"]),
        random_state=seed,
        verbose=0,
    )
    model.fit(X, y, epochs=c["epochs"], batch_size=c["batch_size"], verbose=0)
    return model


def _timed_fit(fit, predict):
    """Seconds of ``fit()`` alone, and the accuracy from ``predict()`` (untimed)."""
    start = time.perf_counter()
    fitted = fit()
    seconds = time.perf_counter() - start
    return seconds, predict(fitted)


def compare(repeats):
    """Time and accuracy of sktransfer, keras.wrappers.SKLearnClassifier and ADAPT.

    Only the fit is timed; the accuracy on the test rows is computed after it.
    """
    import keras
    from keras.wrappers import SKLearnClassifier

    c = COMPARE
    source, (X, y), (Xe, ye) = _shared_task()
    common = {
        "epochs": c["epochs"],
        "batch_size": c["batch_size"],
        "learning_rate": c["learning_rate"],
    }

    def accuracy(fitted):
        with contextlib.redirect_stdout(io.StringIO()):  # the wrapper's progress bar
            return float(np.mean(np.ravel(fitted.predict(Xe)) == ye))

    def sk(pretrained):
        def run(i):
            est = _classifier(source, freeze=0, pretrained=pretrained, random_state=i, **common)
            return _timed_fit(lambda: est.fit(X, y), accuracy)

        return run

    def wrapper(i):
        keras.utils.set_random_seed(i)
        est = SKLearnClassifier(
            model=_wrapper_network,
            model_kwargs={"source": source, "learning_rate": c["learning_rate"]},
            fit_kwargs={"epochs": c["epochs"], "batch_size": c["batch_size"], "verbose": 0},
        )
        return _timed_fit(lambda: est.fit(X, y), accuracy)

    # The two sktransfer variants run next to each other in the interleaved
    # order: the first sktransfer fit after a keras.wrappers fit takes about
    # three times as long as the next (TensorFlow's caches are cold again),
    # and with the wrapper in the middle that fell on most scratch fits.
    variants = {
        "sktransfer": sk(True),
        "scratch": sk(False),
        "wrapper": wrapper,
    }
    adapt_error = None
    try:
        import adapt  # noqa: F401
        from adapt.parameter_based import FineTuning  # noqa: F401
    except Exception as exc:  # reported in the table
        adapt_error = f"{type(exc).__name__}: {exc}"
    if adapt_error is None:

        def adapt_run(i):
            return _timed_fit(
                lambda: _adapt_model(source, X, y, i),
                lambda model: float(np.mean(np.argmax(model.predict(Xe), axis=1) == ye)),
            )

        try:
            adapt_run(999)  # fails fast if ADAPT does not work with this Keras
            variants["adapt"] = adapt_run
        except Exception as exc:  # reported in the table
            adapt_error = f"fit failed: {type(exc).__name__}: {exc}"
    _, results = interleaved(variants, repeats)

    def summary(name, key, note):
        seconds = [r[0] for r in results[key]]
        return Comparison(name, median(seconds), [r[1] for r in results[key]], repeats, note)

    out = [
        summary(
            "sktransfer TransferClassifier",
            "sktransfer",
            f"freeze=0, alpha=0, {c['epochs']} epochs, batch {c['batch_size']}, "
            f"Adam lr {c['learning_rate']}",
        ),
        summary(
            "keras.wrappers.SKLearnClassifier",
            "wrapper",
            "callable building the cut source + softmax head, compiled; same fit settings",
        ),
    ]
    if adapt_error is None:
        out.append(
            summary(
                "adapt FineTuning",
                "adapt",
                "encoder = cut source, task = softmax head, training=True",
            )
        )
    else:
        out.append(Comparison("adapt FineTuning", note=f"not run: {adapt_error}"))
    out.append(
        summary(
            "reference: sktransfer pretrained=False (from scratch)",
            "scratch",
            "same architecture, re-initialised: what transfer must beat",
        )
    )
    task = (
        f"tests/_tasks.py shared_representation_task: source MLP trained on 3000 rows "
        f"(10 classes), target {c['n_target']} rows (3 classes), accuracy on 1000 test rows"
    )
    return out, task

"""Measurements that need a fresh interpreter; run by ``_bench.run_child``.

Usage: ``python benchmarks/_child.py MODE JSON_KWARGS``. Prints one JSON line.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def import_time(module):
    """Seconds to import ``module`` (``sktransfer`` or ``keras``) in this fresh process."""
    if module == "sktransfer":
        start = time.perf_counter()
        from sktransfer import TransferClassifier  # noqa: F401

        seconds = time.perf_counter() - start
    else:
        start = time.perf_counter()
        import keras  # noqa: F401

        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "tensorflow_loaded": "tensorflow" in sys.modules,
        "keras_loaded": "keras" in sys.modules,
    }


def _rss_mib():
    """Current resident set size in MiB, and how it was read."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20, "psutil"
    except ImportError:
        pass
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024, "/proc/self/status VmRSS"
    except OSError:
        pass
    import resource

    # Peak, not current, RSS: growth of the peak still reveals a leak.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "resource ru_maxrss (peak)"


def rss_growth(warmup, fits, epochs, n_samples, estimator="sktransfer"):
    """RSS after each of ``fits`` sequential fits that follow ``warmup`` fits.

    The fits alternate two configurations and vary ``random_state``, like a
    hyper-parameter search would. ``estimator="keras"`` runs the same
    fine-tuning written by hand in Keras instead (context for the figure).
    """
    import _models
    import cases

    from sktransfer import TransferClassifier

    source = _models.mlp_source(n_features=20, hidden=(32, 16), n_outputs=5, seed=0)
    X, y = _models.labelled_rows(n_samples, 20, 3, seed=1)
    configs = [{"freeze": 0, "alpha": 0.0}, {"freeze": 1, "alpha": 0.5}]
    rss = []
    method = None
    for i in range(warmup + fits):
        if estimator == "keras":
            cases.hand_finetune(source, X, y, 3, epochs, 32)
        else:
            TransferClassifier(
                source, epochs=epochs, batch_size=32, random_state=i, **configs[i % 2]
            ).fit(X, y)
        if i >= warmup:
            value, method = _rss_mib()
            rss.append(value)
    return {"rss_mib": rss, "method": method}


def repeat_fit(repeats, epochs, n_samples):
    """Seconds of a first fit in this process, then of ``repeats`` identical fits."""
    import _models
    import keras  # noqa: F401 - imported before timing: the import is not the fit

    from sktransfer import TransferClassifier

    source = _models.mlp_source(n_features=20, hidden=(64, 32), n_outputs=10, seed=0)
    X, y = _models.labelled_rows(n_samples, 20, 3, seed=1)
    source(X[:1])  # start the TensorFlow runtime outside the timed fit

    def fit():
        start = time.perf_counter()
        TransferClassifier(
            source, freeze=0, alpha=0.0, epochs=epochs, batch_size=32, random_state=0
        ).fit(X, y)
        return time.perf_counter() - start

    first = fit()
    return {"first": first, "repeats": [fit() for _ in range(repeats)]}


def finetune(repeats, n_samples, n_classes, epochs, batch_size):
    """Row 1's fits, interleaved, on this process's Keras backend (row 1j: JAX).

    The baseline compiles with Keras' default (``jit_compile="auto"``, which
    is XLA on JAX), as a user writes it, so each of its fits compiles a new
    model. One untimed baseline fit starts the backend and its compiler;
    then sktransfer's first fit in the process (which compiles its
    configuration) is timed on its own, before the interleaved repeats.
    """
    import _models
    import cases
    import keras
    from _bench import interleaved

    from sktransfer import TransferClassifier

    source = _models.mlp_source(20, (64, 32), 10, seed=0)
    X, y = _models.labelled_rows(n_samples, 20, n_classes, seed=1)
    variants = {
        "sktransfer": lambda i: TransferClassifier(
            source, freeze=0, alpha=0.0, epochs=epochs, batch_size=batch_size, random_state=i
        ).fit(X, y),
        "baseline": lambda i: cases.hand_finetune(
            source, X, y, n_classes, epochs, batch_size, jit_compile="auto"
        ),
    }
    variants["baseline"](1000)
    start = time.perf_counter()
    variants["sktransfer"](1000)
    first = time.perf_counter() - start
    times, _ = interleaved(variants, repeats, warmup=0)
    return {"backend": keras.backend.backend(), "times": times, "first": first}


MODES = {"import": import_time, "rss": rss_growth, "repeat": repeat_fit, "finetune": finetune}

if __name__ == "__main__":
    mode, kwargs = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(MODES[mode](**kwargs)), flush=True)

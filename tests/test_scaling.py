"""Scaling out: identical results sequentially, in processes, in threads, on dask and on JAX."""

import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV

from sktransfer import TransferClassifier

keras = pytest.importorskip("keras")
ROOT = Path(__file__).resolve().parents[1]


def source():
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(16, activation="relu", kernel_initializer=init(0), name="d1"),
            keras.layers.Dropout(0.2, seed=3, name="drop"),
            keras.layers.Dense(3, activation="softmax", kernel_initializer=init(1), name="out"),
        ]
    )


GRID = {"alpha": [0.0, 0.5], "freeze": [0, 1]}


def search_scores(n_jobs=None):
    X, y = load_iris(return_X_y=True)
    estimator = TransferClassifier(source(), epochs=5, learning_rate=0.01, random_state=0)
    search = GridSearchCV(estimator, GRID, cv=3, n_jobs=n_jobs).fit(X, y)
    return np.array([search.cv_results_[f"split{i}_test_score"] for i in range(3)])


@pytest.fixture(scope="module")
def sequential():
    return search_scores()


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_parallel_search_is_bit_identical(backend, sequential):
    with joblib.parallel_backend(backend, n_jobs=2):
        scores = search_scores(n_jobs=2)
    np.testing.assert_array_equal(scores, sequential)


def test_dask_local_cluster_search_is_bit_identical(sequential):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        with joblib.parallel_backend("dask"):
            scores = search_scores(n_jobs=2)
    np.testing.assert_array_equal(scores, sequential)


JAX_SMOKE = """
import numpy as np, pickle, keras
assert keras.backend.backend() == "jax"
from sklearn.datasets import load_iris
from sktransfer import SourceData, TransferClassifier, TransferRegressor
X, y = load_iris(return_X_y=True)
init = keras.initializers.GlorotUniform
src = keras.Sequential([keras.Input((4,)),
    keras.layers.Dense(16, activation="relu", kernel_initializer=init(0)),
    keras.layers.Dense(3, activation="softmax", kernel_initializer=init(1))])
results = []
for params in [dict(freeze=1, alpha=0.5), dict(source_loss="l2sp", alpha=0.5),
               dict(source_loss="joint", alpha=0.5, source_lr_scale=0.1, head_warmup=1)]:
    fit = dict(source_data=SourceData(X, y)) if params.get("source_loss") == "joint" else {}
    a = TransferClassifier(src, epochs=3, random_state=0, **params).fit(X, y, **fit)
    b = TransferClassifier(src, epochs=3, random_state=0, **params).fit(X, y, **fit)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X)), params
    assert np.array_equal(pickle.loads(pickle.dumps(a)).predict_proba(X), a.predict_proba(X))
    results.append(a.score(X, y))
reg = TransferRegressor(src, epochs=2, random_state=0).fit(X, X[:, 0])
assert reg.predict(X).shape == (150,)
print("jax ok", results)
"""


def test_estimators_run_on_the_jax_backend():
    pytest.importorskip("jax")
    if keras.backend.backend() == "jax":
        pytest.skip("this run is on JAX already: the whole suite checks the backend")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", JAX_SMOKE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "jax ok" in done.stdout

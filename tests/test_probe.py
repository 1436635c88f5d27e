"""Out of the box: the probe head, the training budget and the source term they make idle.

The estimators at their defaults are compared with what a user would
assemble by hand: a linear model on the source's features, and a linear
model on the raw inputs.
"""

import math
import warnings

import numpy as np
import pytest
from _tasks import train_source
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline

from sktransfer import SourceFeatures, TransferClassifier, TransferRegressor
from sktransfer.datasets import make_transfer_classification, make_transfer_regression

keras = pytest.importorskip("keras")
DRAWS = 5


@pytest.fixture(scope="module")
def related():
    Xs, ys, Xt, yt = make_transfer_classification(
        n_source=3000, n_target=1400, relatedness=1.0, random_state=0
    )
    return train_source(Xs.astype("float32"), ys, 10), Xt, yt


@pytest.fixture(scope="module")
def related_regression():
    import keras

    Xs, ys, Xt, yt = make_transfer_regression(n_source=3000, n_target=1400, random_state=0)
    init = keras.initializers.GlorotUniform
    src = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(64, activation="relu", kernel_initializer=init(0)),
            keras.layers.Dense(32, activation="relu", kernel_initializer=init(1)),
            keras.layers.Dense(4, kernel_initializer=init(2)),
        ]
    )
    src.compile(keras.optimizers.Adam(3e-3), "mse")
    src.fit(Xs.astype("float32"), ys, epochs=40, batch_size=64, verbose=0, shuffle=False)
    return src, Xt, yt


def mean_scores(models, X, y, n):
    """Mean held-out score of each model over DRAWS draws of n training rows."""
    scores = {name: [] for name in models}
    for draw in range(DRAWS):
        rows = np.random.default_rng(draw).permutation(len(y))
        train, test = rows[:n], rows[n:]
        for name, make in models.items():
            model = make(draw).fit(X[train], y[train])
            scores[name].append(model.score(X[test], y[test]))
    return {name: float(np.mean(values)) for name, values in scores.items()}


@pytest.mark.parametrize("n", [60, 300])
def test_defaults_match_or_beat_a_hand_assembled_linear_probe(related, n):
    source, X, y = related
    scores = mean_scores(
        {
            "defaults": lambda seed: TransferClassifier(source, random_state=seed),
            "frozen": lambda seed: TransferClassifier(source, freeze="all", random_state=seed),
            "pipeline": lambda seed: make_pipeline(
                SourceFeatures(source), LogisticRegression(max_iter=5000)
            ),
            "logistic": lambda seed: LogisticRegression(),
        },
        X,
        y,
        n,
    )
    assert scores["frozen"] >= scores["pipeline"] - 0.01, scores
    assert scores["defaults"] >= max(scores["pipeline"], scores["logistic"]) - 0.01, scores


@pytest.mark.parametrize("n", [30, 300])
def test_regressor_defaults_match_or_beat_ridge_on_source_features(related_regression, n):
    source, X, y = related_regression
    scores = mean_scores(
        {
            "defaults": lambda seed: TransferRegressor(source, random_state=seed),
            "frozen": lambda seed: TransferRegressor(source, freeze="all", random_state=seed),
            "pipeline": lambda seed: make_pipeline(SourceFeatures(source), RidgeCV()),
            "ridge": lambda seed: RidgeCV(),
        },
        X,
        y,
        n,
    )
    assert scores["frozen"] >= scores["pipeline"] - 0.01, scores
    assert scores["defaults"] >= max(scores["pipeline"], scores["ridge"]) - 0.01, scores


def test_frozen_single_layer_head_is_the_probe_itself(related):
    source, X, y = related
    clf = TransferClassifier(source, freeze="all", random_state=0).fit(X[:90], y[:90])
    assert clf.n_iter_ == 0 and clf.history_ == {"loss": [], "target_loss": [], "source_loss": []}
    # The probe is a logistic regression of the source features: its decision
    # function is linear in them.
    features = SourceFeatures(source).fit(X).transform(X[:90])
    proba = clf.predict_proba(X[:90])
    logits = np.log(proba) - np.log(proba).mean(axis=1, keepdims=True)
    design = np.column_stack([features, np.ones(len(features))])
    _, residual, *_ = np.linalg.lstsq(design, logits, rcond=None)
    assert np.all(residual < 1e-6)


def test_scratch_twin_gets_the_same_recipe_and_still_learns(related):
    source, X, y = related
    scratch = TransferClassifier(source, pretrained=False, random_state=0).fit(X[:300], y[:300])
    assert scratch.score(X[300:], y[300:]) > 0.5  # three classes: chance is about 1/3
    assert scratch.n_iter_ == math.ceil(1000 / math.ceil(300 / 32))


def test_probe_honours_class_and_sample_weights(related):
    source, X, y = related
    keep = np.r_[np.flatnonzero(y == 0)[:60], np.flatnonzero(y != 0)[:30]]
    X, y = X[keep], y[keep]
    params = dict(freeze="all", random_state=0)
    plain = TransferClassifier(source, **params).fit(X, y).predict_proba(X)[:, 0].mean()
    balanced = TransferClassifier(source, class_weight="balanced", **params).fit(X, y)
    assert balanced.predict_proba(X)[:, 0].mean() < plain
    weights = np.where(y == 0, 0.2, 1.0)
    weighted = TransferClassifier(source, **params).fit(X, y, sample_weight=weights)
    assert weighted.predict_proba(X)[:, 0].mean() < plain


def test_source_term_is_skipped_when_nothing_transferred_trains(related):
    source, X, y = related
    # A hidden head layer trains, so there are epochs; the body is frozen.
    params = dict(freeze="all", head=(8,), random_state=0)
    plain = TransferClassifier(source, **params).fit(X[:90], y[:90])
    distill = TransferClassifier(source, alpha=0.5, **params).fit(X[:90], y[:90])
    np.testing.assert_array_equal(plain.predict_proba(X), distill.predict_proba(X))
    assert distill.history_ == plain.history_
    assert distill.history_["source_loss"] == [0.0] * distill.n_iter_


def test_auto_budget_scales_with_the_data_and_warns_when_short(related):
    source, X, y = related
    for n, batch_size in ((30, 32), (500, 32), (500, 100)):
        clf = TransferClassifier(source, batch_size=batch_size, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            clf.fit(X[:n], y[:n])
        steps = math.ceil(n / min(batch_size, n))
        assert clf.n_iter_ == math.ceil(1000 / steps)
    short = TransferClassifier(source, head_init="random", epochs=3, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"still falling after 3 epochs"):
        short.fit(X[:60], y[:60])


def test_a_search_with_memory_solves_each_probe_once(related, tmp_path, monkeypatch):
    import sktransfer._probe as probe

    source, X, y = related
    solves = []
    real = probe.solve_output

    def counted(*args):
        solves.append(1)
        return real(*args)

    monkeypatch.setattr(probe, "solve_output", counted)
    params = dict(epochs=5, random_state=0)
    plain = [
        TransferClassifier(source, learning_rate=rate, **params).fit(X[:80], y[:80])
        for rate in (1e-3, 1e-2)
    ]
    assert len(solves) == 2
    stored = [
        TransferClassifier(source, learning_rate=rate, memory=str(tmp_path), **params).fit(
            X[:80], y[:80]
        )
        for rate in (1e-3, 1e-2)
    ]
    assert len(solves) == 3  # the second candidate reads the first one's solve
    for a, b in zip(plain, stored, strict=True):
        np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_a_flat_loss_curve_counts_as_converged():
    from sktransfer._trainer import _converged, _flattened

    # A head started at the optimum barely moves: no warning for noise.
    assert _flattened([0.7689, 0.7690, 0.7689, 0.7688, 0.7689, 0.7688])
    # Still falling steeply at the end: not converged.
    assert not _flattened([2.0, 1.8, 1.6, 1.4, 1.2, 1.0])
    # Fell and levelled off.
    assert _flattened([2.0, 1.0, 0.6, 0.51, 0.5, 0.5])
    # Too short to read: judged by its steps (one epoch of a large data set
    # under epochs="auto" makes at least 1000).
    assert not _converged([2.0, 1.0, 0.5], steps_per_epoch=2)
    assert _converged([0.9], steps_per_epoch=3125)


def test_head_init_is_validated(related):
    source, X, y = related
    with pytest.raises(ValueError, match="head_init='lp' is not valid"):
        TransferClassifier(source, head_init="lp").fit(X[:30], y[:30])
    with pytest.raises(ValueError, match="epochs='many' is not valid"):
        TransferClassifier(source, epochs="many").fit(X[:30], y[:30])

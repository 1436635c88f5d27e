"""Transferability scores (LogME, LEEP, H-score) and ranking source models with them."""

import math
import warnings

import numpy as np
import pytest
from _tasks import shared_representation_task, train_source

from sktransfer.selection import (
    RankedSource,
    SourceRanking,
    h_score,
    leep,
    logme,
    rank_sources,
)

# -- LEEP ----------------------------------------------------------------------


def test_leep_by_hand():
    # Source probabilities theta over 2 source classes, 3 samples, target y = [0, 0, 1].
    #   joint P(y, z) = (1/3) * sum of theta rows with that label:
    #     P(0, .) = (1/3) * ([.8, .2] + [.4, .6]) = [1.2, 0.8] / 3
    #     P(1, .) = (1/3) * [.1, .9]              = [0.1, 0.9] / 3
    #   marginal P(z) = [1.3, 1.7] / 3, so P(y | z):
    #     P(0 | z) = [12/13, 8/17],  P(1 | z) = [1/13, 9/17]
    #   per sample, sum_z P(y_i | z) theta_iz:
    #     .8 * 12/13 + .2 * 8/17 = 0.832579
    #     .4 * 12/13 + .6 * 8/17 = 0.651584
    #     .1 *  1/13 + .9 * 9/17 = 0.484163
    #   LEEP = mean(log(...)) = (-0.183227 - 0.428349 - 0.725334) / 3 = -0.445637
    theta = np.array([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]])
    expected = np.mean(np.log([0.8 * 12 / 13 + 0.2 * 8 / 17, 0.4 * 12 / 13 + 0.6 * 8 / 17,
                               0.1 / 13 + 0.9 * 9 / 17]))  # fmt: skip
    assert expected == pytest.approx(-0.445637, abs=1e-6)
    assert leep(theta, [0, 0, 1]) == pytest.approx(expected, rel=1e-12)
    # Labels are categories: their names and codes do not matter.
    assert leep(theta, ["cat", "cat", "dog"]) == pytest.approx(expected, rel=1e-12)


def test_leep_is_zero_when_source_classes_are_the_labels():
    theta = np.eye(3)[[0, 1, 2, 1, 0]]
    assert leep(theta, [5, 6, 7, 6, 5]) == pytest.approx(0.0, abs=1e-12)


def test_leep_of_an_uninformative_source_is_the_label_entropy():
    theta = np.full((4, 3), 1 / 3)
    # P(y | z) is the label frequency whatever z: LEEP = mean log p(y_i) = log(1/2).
    assert leep(theta, [0, 1, 0, 1]) == pytest.approx(math.log(0.5), rel=1e-12)


def test_leep_tolerates_a_source_class_with_no_mass():
    theta = np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]])
    assert np.isfinite(leep(theta, [0, 1]))


@pytest.mark.parametrize(
    "probs",
    [
        np.array([[0.5, 0.6], [0.5, 0.5]]),  # row sums to 1.1
        np.array([[1.5, -0.5], [0.5, 0.5]]),  # negative entry
        np.array([[1.0], [1.0]]),  # a single column
        np.array([2.0, 3.0]),  # 1-D
    ],
)
def test_leep_rejects_non_probabilities(probs):
    with pytest.raises(ValueError, match="source_probs"):
        leep(probs, [0, 1])


def test_leep_needs_class_labels():
    with pytest.raises(ValueError, match="leep needs class labels"):
        leep(np.full((3, 2), 0.5), [0.1, 0.7, 2.5])


# -- H-score --------------------------------------------------------------------


def test_h_score_by_hand():
    # Feature a = [0, 2, 4, 6]: mean 3, variance (9 + 1 + 1 + 9) / 4 = 5; class means
    # 1 and 5, so E[a | y] = [1, 1, 5, 5] has variance 4.
    # Feature b = [1, -1, -1, 1]: variance 1, uncorrelated with a, class means 0 and 0.
    # cov(f) = diag(5, 1), cov(E[f | y]) = diag(4, 0): H = 4/5 + 0/1 = 0.8.
    f = np.array([[0.0, 1.0], [2.0, -1.0], [4.0, -1.0], [6.0, 1.0]])
    y = [0, 0, 1, 1]
    assert h_score(f, y) == pytest.approx(0.8, rel=1e-12)
    assert h_score(f[:, :1], y) == pytest.approx(0.8, rel=1e-12)
    # A redundant copy of a feature adds nothing (the pseudo-inverse ignores it).
    assert h_score(np.hstack([f, f[:, :1]]), y) == pytest.approx(0.8, rel=1e-9)


def test_h_score_is_n_classes_minus_one_when_features_are_the_classes():
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    assert h_score(np.eye(3)[y], y) == pytest.approx(2.0, rel=1e-9)


def test_h_score_needs_class_labels():
    with pytest.raises(ValueError, match="h_score needs class labels"):
        h_score(np.ones((3, 2)), [0.1, 0.7, 2.5])


# -- LogME ----------------------------------------------------------------------


def reference_logme(features, targets, tol=1e-14, max_iter=100_000):
    """LogME straight from the definitions: explicit inverse and log-determinant of A.

    For each target column y: A = alpha I + beta F^T F, m = beta A^-1 F^T y;
    MacKay's updates gamma = sum(beta s / (alpha + beta s)) over the eigenvalues s of
    F^T F, alpha = gamma / |m|^2, beta = (N - gamma) / |y - F m|^2 until alpha / beta
    stops moving; then the log evidence
    D/2 log alpha + N/2 log beta - N/2 log 2 pi - beta/2 |y - F m|^2 - alpha/2 |m|^2
    - 1/2 log|A|, divided by N and averaged over the columns.
    """
    n, d = features.shape
    gram = features.T @ features
    eig = np.linalg.eigvalsh(gram)
    scores = []
    for y in targets.T:
        alpha = beta = 1.0
        for _ in range(max_iter):
            a_inv = np.linalg.inv(alpha * np.eye(d) + beta * gram)
            m = beta * a_inv @ features.T @ y
            gamma = np.sum(beta * eig / (alpha + beta * eig))
            new_alpha = gamma / (m @ m)
            new_beta = (n - gamma) / np.sum((y - features @ m) ** 2)
            moved = abs(new_alpha / new_beta - alpha / beta) > tol * alpha / beta
            alpha, beta = new_alpha, new_beta
            if not moved:
                break
        a = alpha * np.eye(d) + beta * gram
        m = beta * np.linalg.inv(a) @ features.T @ y
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - n / 2 * np.log(2 * np.pi)
            - beta / 2 * np.sum((y - features @ m) ** 2)
            - alpha / 2 * (m @ m)
            - 0.5 * np.linalg.slogdet(a)[1]
        )
        scores.append(evidence / n)
    return np.mean(scores)


def test_logme_matches_the_reference_on_class_labels():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(60, 6))
    y = np.argmax(f @ rng.normal(size=(6, 3)), axis=1)
    assert logme(f, y) == pytest.approx(reference_logme(f, np.eye(3)[y]), rel=1e-7)


def test_logme_matches_the_reference_on_regression_targets():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(40, 5))
    y = f @ rng.normal(size=(5, 2)) + 0.5 * rng.normal(size=(40, 2))
    assert logme(f, y) == pytest.approx(reference_logme(f, y), rel=1e-7)
    assert logme(f, y[:, 0]) == pytest.approx(reference_logme(f, y[:, :1]), rel=1e-7)


def test_logme_matches_the_reference_with_more_features_than_samples():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(15, 25))
    y = f @ rng.normal(size=(25, 1)) + 0.5 * rng.normal(size=(15, 1))
    assert logme(f, y) == pytest.approx(reference_logme(f, y), rel=1e-7)


def test_logme_matches_the_reference_with_redundant_features():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(40, 5))
    f = np.hstack([f, f[:, :2] + f[:, 2:4]])  # rank 5 in 7 columns
    y = f @ rng.normal(size=(7, 2)) + 0.5 * rng.normal(size=(40, 2))
    assert logme(f, y) == pytest.approx(reference_logme(f, y), rel=1e-7)


def test_logme_of_features_that_say_nothing_about_y():
    # Each feature sums to zero within each class, so it is orthogonal to every one-hot
    # column: the evidence is largest with no weights (alpha -> infinity), where each
    # column scores -1/2 log(2 pi e |y|^2 / N) = -1/2 log(2 pi e * 1/2).
    f = np.array([[1.0, 2.0], [-1.0, -2.0], [3.0, 1.0], [-3.0, -1.0]])
    y = [0, 0, 1, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score = logme(f, y)
    assert score == pytest.approx(-0.5 * math.log(math.pi * math.e), rel=1e-9)


def test_logme_prefers_features_that_determine_y_linearly():
    rng = np.random.default_rng(4)
    n = 300
    informative = rng.normal(size=(n, 8))
    y = np.argmax(informative @ rng.normal(size=(8, 4)), axis=1)
    noise = rng.normal(size=(n, 8))
    assert logme(informative, y) > logme(noise, y) + 0.1
    # Adding noise dimensions to informative features costs a little, not everything.
    assert logme(informative, y) > logme(np.hstack([informative, noise]), y) > logme(noise, y)


def test_logme_labels_may_be_strings():
    rng = np.random.default_rng(5)
    f = rng.normal(size=(30, 3))
    y = np.where(f[:, 0] > 0, "yes", "no")
    assert logme(f, y) == pytest.approx(logme(f, (f[:, 0] > 0).astype(int)), rel=1e-12)


def test_logme_is_fast_on_a_large_feature_matrix():
    import time

    rng = np.random.default_rng(6)
    f = rng.normal(size=(5000, 256)).astype(np.float32)
    y = rng.integers(0, 10, size=5000)
    start = time.perf_counter()
    assert np.isfinite(logme(f, y))
    assert time.perf_counter() - start < 5


def test_scores_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        logme(np.ones((4, 2)), [0, 1, 0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        h_score(np.ones((4, 2)), [0, 1, 0])


# -- SourceRanking ----------------------------------------------------------------


def test_ranking_is_sorted_indexable_iterable():
    ranking = SourceRanking(
        [("a", -0.9, 0.5), ("b", -0.2, 0.25), ("c", float("nan"), 0.1), ("d", -0.5, 1.0)],
        method="logme",
    )
    assert ranking.names == ["b", "d", "a", "c"]
    assert ranking[0] == RankedSource("b", -0.2, 0.25)
    assert ranking[0].score == -0.2 and ranking[-1].name == "c"
    assert [row.name for row in ranking] == ranking.names
    assert len(ranking) == 4
    assert ranking.scores[:3] == [-0.2, -0.5, -0.9]


def test_ranking_prints_as_a_table():
    ranking = SourceRanking([("small", 1.5, 0.125), ("a_long_name", 2.25, 3.0)], method="hscore")
    expected = (
        "SourceRanking by hscore (higher is better)\n"
        "rank  name          score  seconds\n"
        "   1  a_long_name  2.2500     3.00\n"
        "   2  small        1.5000     0.12"
    )
    assert str(ranking) == expected
    assert repr(ranking) == expected


def test_ranking_to_frame():
    pd = pytest.importorskip("pandas")
    frame = SourceRanking([("a", 0.1, 1.0), ("b", 0.3, 2.0)], method="leep").to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["name", "score", "seconds"]
    assert frame.index.name == "rank" and list(frame.index) == [1, 2]
    assert list(frame["name"]) == ["b", "a"]


# -- rank_sources ------------------------------------------------------------------


def _unrelated_labels(x, seed=5):
    """Labels read from a nonlinear map of X that the target task does not use."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(x.shape[1], 8)) / np.sqrt(x.shape[1])
    return np.argmax(np.sin(x @ w) @ rng.normal(size=(8, 10)), axis=1)


@pytest.fixture(scope="module")
def task():
    """A target task, a source trained on a related task, one on an unrelated task and
    an untrained one: all three share the architecture."""
    import keras

    (xs, ys), (xt, yt), _ = shared_representation_task(n_source=1500, n_target=300, n_test=0)
    related = train_source(xs, ys, 10, epochs=15, seed=0)
    unrelated = train_source(xs, _unrelated_labels(xs), 10, epochs=15, seed=0)
    untrained = keras.models.clone_model(related)
    return {"related": related, "unrelated": unrelated, "untrained": untrained}, xt, yt


@pytest.mark.parametrize("method", ["logme", "leep", "hscore"])
def test_related_source_ranks_first(task, method):
    sources, X, y = task
    ranking = rank_sources(sources, X, y, method=method)
    assert ranking.method == method
    assert ranking.names[0] == "related"
    assert set(ranking.names) == set(sources)
    assert all(np.isfinite(row.score) and row.seconds >= 0 for row in ranking)


def test_rank_sources_scores_what_the_score_functions_give(task):
    from sktransfer.features import SourceFeatures

    sources, X, y = task
    ranking = rank_sources(sources, X, y, method="logme")
    related = SourceFeatures(sources["related"]).fit_transform(X)
    by_name = {row.name: row.score for row in ranking}
    assert by_name["related"] == pytest.approx(logme(related, y), rel=1e-9)
    probs = SourceFeatures(sources["related"], layer=-1).fit_transform(X)
    leep_ranking = rank_sources({"r": sources["related"]}, X, y, method="leep")
    assert leep_ranking[0].score == pytest.approx(leep(probs, y), rel=1e-9)


def test_rank_sources_from_a_list_of_models_and_paths(task, tmp_path):
    sources, X, y = task
    path = tmp_path / "related.keras"
    sources["related"].save(path)
    models = [sources["unrelated"], str(path)]
    ranking = rank_sources(models, X[:100], y[:100])
    assert set(ranking.names) == {sources["unrelated"].name, str(path)}
    assert ranking.names[0] == str(path)
    print(ranking)


def test_rank_sources_regression_with_logme(task):
    sources, X, _ = task
    y = np.sin(X[:, 0]) + X[:, 1] ** 2
    ranking = rank_sources(sources, X[:100], y[:100], method="logme")
    assert len(ranking) == 3 and all(np.isfinite(ranking.scores))


def test_leep_needs_probability_outputs():
    import keras

    linear = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)], name="linear"
    )
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="method='leep': the outputs of source 'linear'"):
        rank_sources([linear], X, np.arange(10) % 2, method="leep")


def test_rank_sources_rejects_bad_arguments(task):
    sources, X, y = task
    with pytest.raises(ValueError, match=r"method='fisher'.*\['logme', 'leep', 'hscore'\]"):
        rank_sources(sources, X, y, method="fisher")
    with pytest.raises(ValueError, match="sources is empty"):
        rank_sources({}, X, y)
    with pytest.raises(TypeError, match="sources must be a list"):
        rank_sources(sources["related"], X, y)
    with pytest.raises(ValueError, match="batch_size=0"):
        rank_sources(sources, X, y, batch_size=0)
    with pytest.raises(ValueError, match="method='hscore' needs class labels"):
        rank_sources(sources, X, X[:, 0], method="hscore")
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        rank_sources(sources, X, y[:-1])


def test_logme_of_all_zero_features_is_the_no_information_score():
    y = np.array([0, 1, 1, 2])
    # One-hot columns with 1, 2 and 1 ones out of 4: -1/2 log(2 pi e |y|^2 / N) each.
    expected = np.mean([-0.5 * math.log(2 * math.pi * math.e * k / 4) for k in (1, 2, 1)])
    assert logme(np.zeros((4, 3)), y) == pytest.approx(expected, rel=1e-12)

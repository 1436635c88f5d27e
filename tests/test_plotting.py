"""Transfer-gain and history plots: what they compute, what they draw, how they fail."""

import sys

import matplotlib
import numpy as np
import pytest
from _tasks import shared_representation_task, train_source
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import HistoryDisplay, TransferClassifier, TransferGainDisplay

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def task():
    (xs, ys), (xt, yt), (xe, ye) = shared_representation_task(n_target=150, n_test=0, seed=1)
    return train_source(xs, ys, 10, epochs=30), xt, yt


def _legend_labels(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_transfer_gain_from_estimator_shows_gain_on_related_task(task):
    source, X, y = task
    clf = TransferClassifier(source, freeze="all", epochs=40, learning_rate=3e-3, random_state=0)
    display = TransferGainDisplay.from_estimator(
        clf,
        X,
        y,
        train_sizes=[0.2, 1.0],
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        baselines=[LogisticRegression()],
        shuffle=True,
        random_state=0,
    )
    assert list(display.scores) == ["transfer", "from scratch", "LogisticRegression"]
    assert all(s.shape == (2, 3) for s in display.scores.values())
    assert display.train_sizes.tolist() == [20, 100]
    means = {k: v.mean(axis=1) for k, v in display.scores.items()}
    np.testing.assert_allclose(display.gain_, means["transfer"] - means["from scratch"])
    # A source trained on the same representation must help when data is scarce.
    assert display.gain_[0] > 0.05
    assert display.ax_.get_ylabel() == "Accuracy"
    assert display.ax_.get_xlabel() == "Number of training samples"
    assert _legend_labels(display.ax_)[:3] == ["transfer", "from scratch", "LogisticRegression"]
    # The estimator passed in is left as it was: unfitted, still pretrained.
    assert clf.pretrained is True and not hasattr(clf, "model_")


def test_scratch_twin_found_inside_pipeline_and_search(task):
    source, X, y = task
    clf = TransferClassifier(source, freeze="all", epochs=5, random_state=0)
    pipe = make_pipeline(StandardScaler(), clf)
    display = TransferGainDisplay.from_estimator(
        pipe, X, y, train_sizes=[1.0], cv=2, scoring="balanced_accuracy"
    )
    assert display.ax_.get_ylabel() == "Balanced accuracy"
    # The two curves differ: the twin really was trained from scratch.
    assert not np.array_equal(display.scores["transfer"], display.scores["from scratch"])
    assert pipe.get_params()["transferclassifier__pretrained"] is True


def test_estimator_without_pretrained_is_refused(task):
    _, X, y = task
    with pytest.raises(ValueError, match="LogisticRegression has no 'pretrained' parameter"):
        TransferGainDisplay.from_estimator(LogisticRegression(), X, y)


def test_baselines_cannot_take_reserved_names(task):
    source, X, y = task
    clf = TransferClassifier(source, epochs=1)
    with pytest.raises(ValueError, match=r"may not use the names \['transfer'\]"):
        TransferGainDisplay.from_estimator(clf, X, y, baselines={"transfer": LogisticRegression()})


def test_negative_transfer_region_is_shaded_only_where_transfer_is_worse():
    sizes = [10, 20, 40, 80]
    worse_early = {
        "transfer": [[0.5, 0.5], [0.7, 0.7], [0.9, 0.9], [0.95, 0.95]],
        "from scratch": [[0.6, 0.6], [0.6, 0.6], [0.8, 0.8], [0.9, 0.9]],
    }
    display = TransferGainDisplay(train_sizes=sizes, scores=worse_early).plot()
    assert display.negative_transfer_ is not None
    assert "negative transfer" in _legend_labels(display.ax_)
    # The shaded polygon lies left of the crossing (between 10 and 20 samples).
    xs = np.concatenate([p.vertices[:, 0] for p in display.negative_transfer_.get_paths()])
    assert xs.min() == pytest.approx(10) and xs.max() < 20

    better = {"transfer": worse_early["transfer"], "from scratch": [[0.1, 0.1]] * 4}
    display = TransferGainDisplay(train_sizes=sizes, scores=better).plot()
    assert display.negative_transfer_ is None
    assert "negative transfer" not in _legend_labels(display.ax_)
    display = TransferGainDisplay(train_sizes=sizes, scores=worse_early).plot(
        negative_transfer=False
    )
    assert display.negative_transfer_ is None


def test_gain_display_readable_with_one_baseline_pair_and_with_five_curves(tmp_path):
    sizes = [10, 20, 40, 80, 160]
    rng = np.random.default_rng(0)
    scores = {
        name: np.clip(base + 0.3 * np.log(np.array(sizes))[:, None] / 5, 0, 1)
        + rng.normal(0, 0.02, (5, 4))
        for name, base in [
            ("transfer", 0.5),
            ("from scratch", 0.3),
            ("logistic regression", 0.35),
            ("random forest", 0.32),
            ("k-NN", 0.25),
        ]
    }
    two = {k: scores[k] for k in ("transfer", "from scratch")}
    for curves, n in ((two, 2), (scores, 5)):
        fig, ax = plt.subplots(figsize=(6, 4))
        display = TransferGainDisplay(train_sizes=sizes, scores=curves, score_name="Accuracy")
        display.plot(ax=ax)
        assert display.ax_ is ax and display.figure_ is fig
        assert len(display.lines_) == n
        # Every curve has its own colour and marker, so it can be told apart in print.
        styles = {(str(line.get_color()), line.get_marker()) for line in display.lines_.values()}
        assert len(styles) == n
        assert len(_legend_labels(ax)) == n
        fig.savefig(tmp_path / f"gain_{n}.png")
        assert (tmp_path / f"gain_{n}.png").stat().st_size > 10_000


def test_scores_must_hold_both_named_curves():
    with pytest.raises(ValueError, match="scratch_name='from scratch' is not a key of scores"):
        TransferGainDisplay(train_sizes=[1], scores={"transfer": [[1.0]]}).plot()


def test_history_display_draws_terms_validation_and_best_epoch(task):
    source, X, y = task
    clf = TransferClassifier(
        source, alpha=0.3, epochs=15, early_stopping=True, n_iter_no_change=3, random_state=0
    ).fit(X, y)
    display = HistoryDisplay.from_estimator(clf)
    assert set(display.lines_) == {
        "loss",
        "target_loss",
        "source_loss",
        "val_loss",
        "val_target_loss",
        "val_source_loss",
    }
    line = display.lines_["val_target_loss"]
    assert line.get_linestyle() == "--"
    assert line.get_color() == display.lines_["target_loss"].get_color()
    np.testing.assert_allclose(line.get_ydata(), clf.history_["val_target_loss"])
    best = int(np.argmin(clf.history_["val_target_loss"])) + 1
    assert f"best epoch ({best})" in _legend_labels(display.ax_)
    assert display.ax_.get_title() == "TransferClassifier"


def test_history_display_leaves_out_a_source_term_that_is_off(task):
    source, X, y = task
    clf = TransferClassifier(source, epochs=3, random_state=0).fit(X, y)
    display = HistoryDisplay.from_estimator(make_pipeline(StandardScaler(), clf).fit(X, y))
    assert set(display.lines_) == {"loss", "target_loss"}
    search = GridSearchCV(clf, {"alpha": [0.0]}, cv=2).fit(X, y)
    assert set(HistoryDisplay.from_estimator(search).lines_) == {"loss", "target_loss"}


def test_history_display_switches_to_log_scale_for_a_tiny_source_term():
    history = {"loss": [1.0, 0.5], "target_loss": [1.4, 0.7], "source_loss": [1e-6, 3e-6]}
    assert HistoryDisplay(history).plot().ax_.get_yscale() == "log"
    assert HistoryDisplay(history).plot(yscale="linear").ax_.get_yscale() == "linear"
    close = {"loss": [1.0, 0.5], "target_loss": [1.4, 0.7], "source_loss": [0.1, 0.2]}
    assert HistoryDisplay(close).plot().ax_.get_yscale() == "linear"
    with pytest.raises(ValueError, match="yscale must be None, 'linear' or 'log'; got 'symlog'"):
        HistoryDisplay(history).plot(yscale="symlog")


def test_history_display_needs_a_fitted_transfer_estimator(task):
    source, X, y = task
    with pytest.raises(NotFittedError):
        HistoryDisplay.from_estimator(TransferClassifier(source))
    with pytest.raises(ValueError, match="LogisticRegression holds no fitted transfer"):
        HistoryDisplay.from_estimator(LogisticRegression().fit(X, y))
    with pytest.raises(ValueError, match="history has none of the keys"):
        HistoryDisplay({"accuracy": [0.5]}).plot()
    probe = TransferClassifier(source, freeze="all", random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="ran no epoch: its fit was the linear probe"):
        HistoryDisplay.from_estimator(probe)


def test_plots_without_matplotlib_explain_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    display = TransferGainDisplay(
        train_sizes=[1], scores={"transfer": [[1.0]], "from scratch": [[0.5]]}
    )
    with pytest.raises(ImportError, match="plotting needs matplotlib: pip install matplotlib"):
        display.plot()

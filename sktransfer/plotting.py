"""Plots of transfer gain and training history, in scikit-learn's Display style.

Each display holds precomputed arrays, draws them with ``plot(ax=None)``
(which returns the display) and is built in one call with ``from_estimator``.
matplotlib is imported only when a plot is drawn; install it with
``pip install "sktransfer[plot]"``.
"""

import numpy as np

# As in scikit-learn's learning_curve; never written to.
_TRAIN_SIZES = np.linspace(0.1, 1.0, 5)
_TERMS = (
    ("loss", "objective"),
    ("target_loss", "target term"),
    ("source_loss", "source term"),
)


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install matplotlib (or sktransfer[plot])"
        ) from None
    return plt


def _axes(ax):
    if ax is None:
        _, ax = _pyplot().subplots()
    else:
        _pyplot()
    return ax


class TransferGainDisplay:
    """Learning curves of a transfer estimator against its from-scratch twin.

    Transfer pays off most when labelled target data is scarce. This display
    shows cross-validated scores against the number of training samples for
    the transfer estimator, for the same network trained from scratch
    (``pretrained=False``) and for any other baselines, each with a band of
    one standard deviation over the splits. Where the transfer curve falls
    below the from-scratch curve (negative transfer), the gap is shaded.

    Build it with :meth:`from_estimator`; the constructor takes precomputed
    scores.

    Parameters
    ----------
    train_sizes : array-like of shape (n_sizes,)
        Numbers of training samples.
    scores : dict of str to array-like of shape (n_sizes, n_splits)
        Test scores of each curve, keyed by its legend label. It holds the
        transfer curve under ``transfer_name`` and the from-scratch curve
        under ``scratch_name``; other keys are drawn as baselines.
    transfer_name : str, default="transfer"
        Key of the transfer estimator's scores.
    scratch_name : str, default="from scratch"
        Key of the from-scratch twin's scores.
    score_name : str, default=None
        Label of the y axis; None means ``"Score"``.

    Attributes
    ----------
    gain_ : ndarray of shape (n_sizes,)
        Mean transfer score minus mean from-scratch score at each size.
    ax_ : matplotlib Axes
        Axes with the curves.
    figure_ : matplotlib Figure
        Figure holding the axes.
    lines_ : dict of str to matplotlib Line2D
        The mean curve of each entry of ``scores``.
    fill_between_ : dict of str to matplotlib PolyCollection
        The standard-deviation band of each entry of ``scores``.
    negative_transfer_ : matplotlib PolyCollection or None
        The shaded region where transfer scores below scratch, or None if
        it never does (or shading was turned off).

    See Also
    --------
    HistoryDisplay : Training curves of one fit.
    sklearn.model_selection.LearningCurveDisplay : Learning curve of one estimator.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktransfer.plotting import TransferGainDisplay
    >>> display = TransferGainDisplay(
    ...     train_sizes=[20, 40, 80],
    ...     scores={
    ...         "transfer": [[0.80, 0.84], [0.86, 0.88], [0.90, 0.90]],
    ...         "from scratch": [[0.60, 0.66], [0.80, 0.84], [0.92, 0.90]],
    ...     },
    ...     score_name="Accuracy",
    ... ).plot()
    >>> display.gain_.round(2).tolist()
    [0.19, 0.05, -0.01]
    >>> display.negative_transfer_ is not None
    True
    """

    def __init__(
        self,
        *,
        train_sizes,
        scores,
        transfer_name="transfer",
        scratch_name="from scratch",
        score_name=None,
    ):
        self.train_sizes = train_sizes
        self.scores = scores
        self.transfer_name = transfer_name
        self.scratch_name = scratch_name
        self.score_name = score_name

    def _curves(self):
        sizes = np.asarray(self.train_sizes, dtype=float)
        curves = {}
        for name, values in self.scores.items():
            values = np.asarray(values, dtype=float).reshape(len(sizes), -1)
            curves[name] = values
        for role, name in (
            ("transfer_name", self.transfer_name),
            ("scratch_name", self.scratch_name),
        ):
            if name not in curves:
                raise ValueError(
                    f"{role}={name!r} is not a key of scores; the keys are {list(curves)}"
                )
        return sizes, curves

    def plot(self, ax=None, *, negative_transfer=True):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a new figure.
        negative_transfer : bool, default=True
            Shade the gap where the transfer curve is below the from-scratch
            curve.

        Returns
        -------
        display : TransferGainDisplay
            The display, with its matplotlib objects stored.
        """
        sizes, curves = self._curves()
        ax = _axes(ax)
        means = {name: np.nanmean(values, axis=1) for name, values in curves.items()}
        stds = {name: np.nanstd(values, axis=1) for name, values in curves.items()}
        self.gain_ = means[self.transfer_name] - means[self.scratch_name]

        baselines = [n for n in curves if n not in (self.transfer_name, self.scratch_name)]
        styles = {
            self.transfer_name: dict(color="C0", marker="o", linestyle="-", linewidth=2),
            self.scratch_name: dict(color="0.35", marker="s", linestyle="--"),
        }
        markers = "^vDP*Xph"
        for i, name in enumerate(baselines):
            styles[name] = dict(color=f"C{i + 1}", marker=markers[i % len(markers)], linestyle=":")
        self.lines_, self.fill_between_ = {}, {}
        for name in (self.transfer_name, self.scratch_name, *baselines):
            style = styles[name]
            (self.lines_[name],) = ax.plot(sizes, means[name], label=name, **style)
            self.fill_between_[name] = ax.fill_between(
                sizes,
                means[name] - stds[name],
                means[name] + stds[name],
                color=style["color"],
                alpha=0.15,
                linewidth=0,
            )
        self.negative_transfer_ = None
        worse = means[self.transfer_name] < means[self.scratch_name]
        if negative_transfer and np.any(worse):
            self.negative_transfer_ = ax.fill_between(
                sizes,
                means[self.transfer_name],
                means[self.scratch_name],
                where=worse,
                interpolate=True,
                facecolor="tab:red",
                edgecolor="tab:red",
                alpha=0.35,
                hatch="//",
                label="negative transfer",
            )
        ax.set_xlabel("Number of training samples")
        ax.set_ylabel(self.score_name or "Score")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        train_sizes=_TRAIN_SIZES,
        cv=None,
        baselines=None,
        scoring=None,
        n_jobs=None,
        shuffle=False,
        random_state=None,
        fit_params=None,
        negative_transfer=True,
        ax=None,
    ):
        """Cross-validate learning curves and plot the transfer gain.

        The estimator, its from-scratch twin (a clone with every
        ``pretrained`` parameter set to False) and each baseline are scored
        with :func:`sklearn.model_selection.learning_curve` on the same
        splits.

        Parameters
        ----------
        estimator : estimator
            A transfer estimator, or a meta-estimator (``Pipeline``,
            ``GridSearchCV``, ...) holding one. It is cloned, not fitted.
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.
        train_sizes : array-like of shape (n_sizes,), default=np.linspace(0.1, 1.0, 5)
            Training-set sizes, as fractions of the largest training set
            (floats) or as numbers of samples (ints).
        cv : int, cross-validation generator or iterable, default=None
            Splitting strategy, as in ``learning_curve`` (None: 5 folds,
            stratified for classifiers).
        baselines : dict of str to estimator or list of estimators, default=None
            Other estimators to compare, such as ``LogisticRegression()``;
            a list is labelled with the class names.
        scoring : str or callable, default=None
            Scorer; None uses each estimator's ``score`` method.
        n_jobs : int, default=None
            Parallel jobs of ``learning_curve``.
        shuffle : bool, default=False
            Shuffle the training rows before taking each prefix. Useful when
            rows are ordered by class, as small prefixes then miss classes.
        random_state : int, RandomState instance or None, default=None
            Seed of the shuffling.
        fit_params : dict, default=None
            Extra parameters of ``fit``.
        negative_transfer : bool, default=True
            Shade the gap where transfer scores below scratch.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a new figure.

        Returns
        -------
        display : TransferGainDisplay
            The display, with the scores and the matplotlib objects.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import keras
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sktransfer import TransferClassifier
        >>> from sktransfer.datasets import make_transfer_classification
        >>> from sktransfer.plotting import TransferGainDisplay
        >>> X_s, y_s, X, y = make_transfer_classification(
        ...     n_source=400, n_target=120, random_state=0)
        >>> source = keras.Sequential([
        ...     keras.Input((X_s.shape[1],)),
        ...     keras.layers.Dense(16, activation="relu"),
        ...     keras.layers.Dense(int(y_s.max()) + 1, activation="softmax"),
        ... ])
        >>> source.compile("adam", "sparse_categorical_crossentropy")
        >>> _ = source.fit(X_s, y_s, epochs=5, verbose=0)
        >>> clf = TransferClassifier(source, freeze="all", epochs=10, random_state=0)
        >>> display = TransferGainDisplay.from_estimator(
        ...     clf, X, y, train_sizes=[0.3, 1.0], cv=2,
        ...     baselines={"logistic regression": LogisticRegression()},
        ...     shuffle=True, random_state=0)
        >>> sorted(display.scores)
        ['from scratch', 'logistic regression', 'transfer']
        >>> display.gain_.shape
        (2,)
        """
        from sklearn.base import is_classifier
        from sklearn.model_selection import check_cv, learning_curve

        scratch = _from_scratch(estimator)
        if baselines is None:
            baselines = {}
        elif not isinstance(baselines, dict):
            baselines = _named(baselines)
        reserved = {"transfer", "from scratch"} & set(baselines)
        if reserved:
            raise ValueError(
                f"baselines may not use the names {sorted(reserved)}: they label the "
                "transfer estimator and its from-scratch twin"
            )
        # One materialised list of splits, so every curve sees the same folds.
        splits = list(check_cv(cv, y, classifier=is_classifier(estimator)).split(X, y))
        scores = {}
        for name, model in {"transfer": estimator, "from scratch": scratch, **baselines}.items():
            sizes, _, test_scores = learning_curve(
                model,
                X,
                y,
                train_sizes=train_sizes,
                cv=splits,
                scoring=scoring,
                n_jobs=n_jobs,
                shuffle=shuffle,
                random_state=random_state,
                params=fit_params,
            )
            scores[name] = test_scores
        display = cls(train_sizes=sizes, scores=scores, score_name=_score_name(estimator, scoring))
        return display.plot(ax=ax, negative_transfer=negative_transfer)


class HistoryDisplay:
    """Training curves of a fitted transfer estimator.

    Draws, per epoch, the full objective
    ``L = (1 - alpha) * L_target + alpha * L_source`` and its target and
    source terms from ``history_``; validation curves (under
    ``early_stopping=True``) are dashed in the colour of their term, and
    the restored best epoch is marked. Terms that stay exactly zero (the
    source term when ``alpha=0``) are left out.

    Parameters
    ----------
    history : dict of str to list of float
        Per-epoch values, as in ``history_``: ``loss``, ``target_loss``,
        ``source_loss`` and their ``val_`` versions.
    estimator_name : str, default=None
        Title of the plot.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the curves.
    figure_ : matplotlib Figure
        Figure holding the axes.
    lines_ : dict of str to matplotlib Line2D
        The curve of each key of ``history`` that was drawn.

    See Also
    --------
    TransferGainDisplay : Learning curves against the from-scratch twin.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktransfer.plotting import HistoryDisplay
    >>> history = {
    ...     "loss": [1.0, 0.7, 0.6],
    ...     "target_loss": [1.2, 0.8, 0.7],
    ...     "source_loss": [0.0, 0.2, 0.3],
    ... }
    >>> display = HistoryDisplay(history).plot()
    >>> sorted(display.lines_)
    ['loss', 'source_loss', 'target_loss']
    """

    def __init__(self, history, *, estimator_name=None):
        self.history = history
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, yscale=None):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a new figure.
        yscale : {"linear", "log"}, default=None
            Scale of the loss axis. None picks ``"log"`` when the drawn
            values span more than two orders of magnitude, so a small
            source term stays visible next to the target term.

        Returns
        -------
        display : HistoryDisplay
            The display, with its matplotlib objects stored.
        """
        if yscale not in (None, "linear", "log"):
            raise ValueError(f"yscale must be None, 'linear' or 'log'; got {yscale!r}")
        history = {key: np.asarray(values, dtype=float) for key, values in self.history.items()}
        drawn = [
            (key, label, color)
            for (key, label), color in zip(_TERMS, ("C0", "C1", "C2"), strict=True)
            if key in history and np.any(history[key] != 0)
        ]
        if not drawn:
            raise ValueError(
                f"history has none of the keys {[k for k, _ in _TERMS]} with non-zero "
                f"values; got keys {sorted(history)}"
            )
        ax = _axes(ax)
        self.lines_ = {}
        for key, label, color in drawn:
            for name, style, text in ((key, "-", label), (f"val_{key}", "--", f"{label} (val)")):
                if name in history and np.any(history[name] != 0):
                    values = history[name]
                    epochs = np.arange(1, len(values) + 1)
                    (self.lines_[name],) = ax.plot(
                        epochs, values, linestyle=style, color=color, label=text
                    )
        if "val_target_loss" in history and len(history["val_target_loss"]):
            best = int(np.argmin(history["val_target_loss"])) + 1
            ax.axvline(best, color="0.5", linestyle=":", label=f"best epoch ({best})")
        values = np.concatenate([line.get_ydata() for line in self.lines_.values()])
        positive = values[values > 0]
        if yscale is None:
            spread = positive.max() / positive.min() if len(positive) == len(values) else 0
            yscale = "log" if spread > 100 else "linear"
        ax.set_yscale(yscale)
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Loss")
        if self.estimator_name:
            ax.set_title(self.estimator_name)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, yscale=None, ax=None):
        """Plot the training history of a fitted estimator.

        Parameters
        ----------
        estimator : estimator
            A fitted transfer estimator, or a fitted ``Pipeline`` or search
            whose final (best) estimator is one.
        yscale : {"linear", "log"}, default=None
            Scale of the loss axis; None chooses from the values.
        ax : matplotlib Axes, default=None
            Axes to draw on; None creates a new figure.

        Returns
        -------
        display : HistoryDisplay
            The display, with its matplotlib objects stored.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import keras
        >>> from sklearn.datasets import load_iris
        >>> from sktransfer import TransferClassifier
        >>> from sktransfer.plotting import HistoryDisplay
        >>> source = keras.Sequential([
        ...     keras.Input((4,)),
        ...     keras.layers.Dense(8, activation="relu"),
        ...     keras.layers.Dense(3, activation="softmax"),
        ... ])
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = TransferClassifier(source, alpha=0.3, epochs=5, random_state=0).fit(X, y)
        >>> display = HistoryDisplay.from_estimator(clf)
        >>> len(display.lines_["loss"].get_xdata())
        5
        """
        fitted = _with_history(estimator)
        if not fitted.history_.get("loss"):
            raise ValueError(
                f"{type(fitted).__name__} ran no epoch: its fit was the linear probe alone "
                '(freeze="all" with a single output layer), so there is no history to '
                'plot; head_init="random" trains the head by gradient steps instead'
            )
        return cls(fitted.history_, estimator_name=type(fitted).__name__).plot(
            ax=ax, yscale=yscale
        )


def _with_history(estimator):
    """The fitted estimator holding ``history_`` inside ``estimator``."""
    from sklearn.utils.validation import check_is_fitted

    inner = estimator
    while not hasattr(inner, "history_"):
        if hasattr(inner, "best_estimator_"):
            inner = inner.best_estimator_
        elif hasattr(inner, "steps"):
            inner = inner.steps[-1][1]
        else:
            check_is_fitted(inner)
            raise ValueError(
                f"{type(estimator).__name__} holds no fitted transfer estimator with a "
                "history_ (a TransferClassifier or TransferRegressor, possibly inside a "
                "Pipeline or a search)"
            )
    return inner


def _from_scratch(estimator):
    """A clone of ``estimator`` with every ``pretrained`` parameter set to False."""
    from sklearn.base import clone

    keys = [k for k in estimator.get_params() if k == "pretrained" or k.endswith("__pretrained")]
    if not keys:
        raise ValueError(
            f"{type(estimator).__name__} has no 'pretrained' parameter: TransferGainDisplay "
            "compares a transfer estimator (or a Pipeline or search holding one) with its "
            "from-scratch twin"
        )
    return clone(estimator).set_params(**dict.fromkeys(keys, False))


def _named(estimators):
    """Label a list of estimators with their class names, numbered when repeated."""
    names = [type(e).__name__ for e in estimators]
    labelled = {}
    for name, estimator in zip(names, estimators, strict=True):
        label = name
        if names.count(name) > 1:
            label = f"{name} ({sum(1 for n in labelled if n.startswith(name)) + 1})"
        labelled[label] = estimator
    return labelled


def _score_name(estimator, scoring):
    from sklearn.base import is_classifier, is_regressor

    if isinstance(scoring, str):
        return scoring.replace("_", " ").capitalize()
    if scoring is None and is_classifier(estimator):
        return "Accuracy"
    if scoring is None and is_regressor(estimator):
        return "R²"
    return "Score"

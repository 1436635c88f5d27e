"""
=================================
Choosing a source model by search
=================================

With several candidate source models, which one should be fine-tuned? The
``source`` parameter of :class:`~sktransfer.TransferClassifier` is an
ordinary hyperparameter, so :class:`~sklearn.model_selection.GridSearchCV`
answers by cross-validation. :func:`~sktransfer.rank_sources` gives a cheap
first answer from one inference pass per source, with no training.

Three candidates are compared on one few-shot target task:

- a network trained on a source task related to the target,
- a network trained on an unrelated task of the same shape,
- the same architecture, untrained.
"""

# %%
# Three candidate sources
# -----------------------
# :func:`~sktransfer.datasets.make_transfer_classification` with another
# ``random_state`` draws a different hidden representation, hence a source
# task unrelated to our target.
import keras

from sktransfer.datasets import make_transfer_classification

X_related, y_related, X_target, y_target = make_transfer_classification(
    n_source=2000, n_target=1090, random_state=0
)
X_other, y_other, _, _ = make_transfer_classification(n_source=2000, random_state=1)


def make_source(name, seed, X=None, y=None):
    init = keras.initializers.GlorotUniform
    model = keras.Sequential(
        [
            keras.Input((X_related.shape[1],)),
            keras.layers.Dense(64, activation="relu", kernel_initializer=init(seed)),
            keras.layers.Dense(32, activation="relu", kernel_initializer=init(seed + 1)),
            keras.layers.Dense(10, activation="softmax", kernel_initializer=init(seed + 2)),
        ],
        name=name,
    )
    if X is not None:
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
        model.fit(X, y, epochs=15, batch_size=64, verbose=0, shuffle=False)
    return model


related = make_source("related", 0, X_related, y_related)
unrelated = make_source("unrelated", 10, X_other, y_other)
untrained = make_source("untrained", 20)
candidates = [related, unrelated, untrained]

# 90 labelled target samples (30 per class on average); 1000 more for testing.
X_train, y_train = X_target[:90], y_target[:90]
X_test, y_test = X_target[90:], y_target[90:]

# %%
# A cheap ranking first
# ---------------------
# LogME scores how well a linear model on each source's penultimate features
# explains the target labels (higher is better). It runs each source once on
# the 90 training samples.
from sktransfer import rank_sources

ranking = rank_sources(candidates, X_train, y_train, method="logme")
print(ranking)

# %%
# The search
# ----------
# The grid crosses the source with the freeze depth: ``"all"`` keeps the whole
# source body fixed (feature extraction), ``1`` fine-tunes its top layer.
# (The search copies each grid value for every fit; results are unaffected.)
from sklearn.model_selection import GridSearchCV

from sktransfer import TransferClassifier

clf = TransferClassifier(related, random_state=0)  # the other parameters at their defaults
search = GridSearchCV(clf, {"source": candidates, "freeze": ["all", 1]}, cv=3)
search.fit(X_train, y_train)

order = search.cv_results_["rank_test_score"].argsort()
print(f"{'source':>10s} {'freeze':>7s} {'cv accuracy':>12s}")
for i in order:
    params = search.cv_results_["params"][i]
    score = search.cv_results_["mean_test_score"][i]
    print(f"{params['source'].name:>10s} {params['freeze']!s:>7s} {score:12.3f}")
best = search.best_params_
print(f"best: source={best['source'].name!r}, freeze={best['freeze']!r}")
print(f"test accuracy of the refitted best model: {search.score(X_test, y_test):.3f}")

# %%
# Ranking and search side by side
# -------------------------------
# The search is the definitive (and expensive) answer; LogME took a fraction
# of its time. Comparing the two on your own candidates tells you whether the
# cheap score can stand in for the search.
import matplotlib.pyplot as plt
import numpy as np

names = [model.name for model in candidates]
best_cv = [
    max(
        score
        for params, score in zip(
            search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
        )
        if params["source"] is model
    )
    for model in candidates
]
logme_scores = [dict(zip(ranking.names, ranking.scores, strict=True))[name] for name in names]
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
axes[0].barh(names, logme_scores, color="tab:gray")
axes[0].set_xlabel("LogME (no training)")
axes[1].barh(names, best_cv, color="tab:blue")
axes[1].set_xlabel("best cross-validated accuracy")
axes[1].set_xlim(0, 1)
axes[1].set_yticks(np.arange(len(names)), [])
fig.tight_layout()

"""
==========================================
Source features in a scikit-learn pipeline
==========================================

The classic transfer recipe: freeze a network trained on a source task and
fit a simple model on its features. :class:`~sktransfer.SourceFeatures` is
that frozen network as a scikit-learn transformer, so it goes into a
:class:`~sklearn.pipeline.Pipeline` in front of any estimator, and the layer
it reads is a hyperparameter like any other.

The tasks come from :func:`~sktransfer.datasets.make_transfer_classification`:
a source task with plenty of labelled data and a related target task with
only 60 labelled samples.
"""

# %%
# A source network trained on the source task
# -------------------------------------------
# Both tasks read the same hidden representation of the inputs through
# different labelings (``relatedness=1.0``): a network that solves the source
# task has learned what the target task needs.
import keras

from sktransfer.datasets import make_transfer_classification

X_source, y_source, X_target, y_target = make_transfer_classification(
    n_source=3000, n_target=1060, relatedness=1.0, random_state=0
)
X_train, y_train = X_target[:60], y_target[:60]
X_test, y_test = X_target[60:], y_target[60:]

keras.utils.set_random_seed(0)
source = keras.Sequential(
    [
        keras.Input((X_source.shape[1],)),
        keras.layers.Dense(64, activation="relu", name="hidden1"),
        keras.layers.Dense(32, activation="relu", name="hidden2"),
        keras.layers.Dense(10, activation="softmax", name="output"),
    ],
    name="source",
)
source.compile(
    keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
)
source.fit(X_source, y_source, epochs=25, batch_size=64, verbose=0)
print(f"source accuracy (training data): {source.evaluate(X_source, y_source, verbose=0)[1]:.3f}")

# %%
# The pipeline
# ------------
# ``SourceFeatures`` runs the source in inference mode and returns the
# activations of ``layer`` (by default the layer before the output, here the
# 32 units of ``"hidden2"``) as a 2-D array. Logistic regression on those
# features is compared with logistic regression on the raw inputs.
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import SourceFeatures

pipe = make_pipeline(SourceFeatures(source), StandardScaler(), LogisticRegression())
raw = make_pipeline(StandardScaler(), LogisticRegression())
transfer_accuracy = pipe.fit(X_train, y_train).score(X_test, y_test)
raw_accuracy = raw.fit(X_train, y_train).score(X_test, y_test)
print(f"on source features: {transfer_accuracy:.3f}")
print(f"on raw inputs:      {raw_accuracy:.3f}")
print(f"gain:               {transfer_accuracy - raw_accuracy:+.3f}")

# %%
# Which layer?
# ------------
# Lower layers are more generic, higher ones more specific to the source
# labels. The layer is a parameter of the pipeline, so a grid search picks it
# by cross-validation on the 60 training samples alone.
from sklearn.model_selection import GridSearchCV

grid = {"sourcefeatures__layer": ["hidden1", "hidden2", "output"]}
search = GridSearchCV(pipe, grid, cv=3).fit(X_train, y_train)
for layer, score in zip(
    grid["sourcefeatures__layer"], search.cv_results_["mean_test_score"], strict=True
):
    print(f"layer {layer!r:10s} cross-validated accuracy {score:.3f}")
print(f"chosen: {search.best_params_}; test accuracy {search.score(X_test, y_test):.3f}")

# %%
# The features themselves
# -----------------------
# A two-dimensional PCA of the raw test inputs and of their source features,
# coloured by target class.
import matplotlib.pyplot as plt
from sklearn.decomposition import PCA

fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
for ax, (title, values) in zip(
    axes,
    [("raw inputs", X_test), ("source features", SourceFeatures(source).fit_transform(X_test))],
    strict=True,
):
    embedded = PCA(n_components=2, random_state=0).fit_transform(values)
    ax.scatter(*embedded.T, c=y_test, s=6, cmap="viridis")
    ax.set_title(f"PCA of the {title}")
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

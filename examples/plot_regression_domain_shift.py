"""
=================================
Regression under a shifted domain
=================================

How much does transfer help when the target task drifts away from the
source? :func:`~sktransfer.datasets.make_transfer_regression` generates a
source task and a target task whose outputs read a shared hidden
representation of the inputs; its ``relatedness`` knob moves the target away
from the source: at ``1.0`` the target reads exactly the source's
representation, at ``0.0`` an unrelated one.

For each relatedness, a :class:`~sktransfer.TransferRegressor` fine-tunes a
source network on 80 target samples, and is compared with the same network
trained from scratch (``pretrained=False``) and with ridge regression.
"""

# %%
# The source network
# ------------------
# The source task (3000 samples, 4 outputs) does not depend on
# ``relatedness`` for a fixed ``random_state``, so one source network serves
# every target below.
import keras
import numpy as np

from sktransfer.datasets import make_transfer_regression

X_source, y_source, _, _ = make_transfer_regression(n_source=3000, random_state=0)

keras.utils.set_random_seed(0)
source = keras.Sequential(
    [
        keras.Input((X_source.shape[1],)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(y_source.shape[1]),
    ],
    name="source",
)
source.compile(keras.optimizers.Adam(3e-3), "mse")
source.fit(X_source, y_source, epochs=25, batch_size=64, verbose=0)
source_r2 = 1 - np.mean((source.predict(X_source, verbose=0) - y_source) ** 2) / np.var(y_source)
print(f"source R^2 (training data): {source_r2:.3f}")

# %%
# Transfer, scratch and ridge at three relatedness levels
# -------------------------------------------------------
# The transfer model fine-tunes the top source layer (``freeze=1`` freezes the
# first one) with an L2-SP pull towards the source weights
# (``source_loss="l2sp"``, ``alpha=0.3``). Its from-scratch twin has the same
# architecture and freezing, with every weight re-initialised. Each model
# trains on 80 target samples and is scored (R^2) on 1000 others.
from sklearn.linear_model import RidgeCV

from sktransfer import TransferRegressor

params = dict(freeze=1, random_state=0)  # the rest at its defaults
models = {
    "transfer": TransferRegressor(source, alpha=0.3, source_loss="l2sp", **params),
    "from scratch": TransferRegressor(source, pretrained=False, **params),
    "ridge": RidgeCV(),
}
levels = [1.0, 0.6, 0.2]
results = {name: [] for name in models}
for relatedness in levels:
    _, _, X_target, y_target = make_transfer_regression(
        n_source=3000, n_target=1080, relatedness=relatedness, random_state=0
    )
    X_train, y_train = X_target[:80], y_target[:80]
    X_test, y_test = X_target[80:], y_target[80:]
    for name, model in models.items():
        results[name].append(model.fit(X_train, y_train).score(X_test, y_test))

print(f"{'relatedness':>12s}" + "".join(f"{name:>14s}" for name in models) + f"{'gain':>8s}")
for i, relatedness in enumerate(levels):
    row = "".join(f"{results[name][i]:14.3f}" for name in models)
    gain = results["transfer"][i] - results["from scratch"][i]
    print(f"{relatedness:12.1f}{row}{gain:+8.3f}")

# %%
# The gain over the from-scratch twin (the last column) is what the source
# contributes. It is largest when the target reads the source's
# representation and shrinks as the domain drifts; when it turns negative,
# transfer hurts (negative transfer) and the source should not be used as is.
# Ridge regression is the reminder that a network, transferred or not, must
# also beat the simple model before it is worth its cost.
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3.5))
for name, scores in results.items():
    ax.plot(levels, scores, marker="o", label=name)
ax.set_xlabel("relatedness of the target to the source")
ax.set_ylabel("test $R^2$ (80 training samples)")
ax.invert_xaxis()
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()

"""
==================================
Transfer to images of another size
==================================

A source network takes the images it was trained on: here 8x8 grey digits
with pixels in [0, 1]. The target images come from somewhere else: larger,
in colour, with pixels in 0-255. This example gives them to
:class:`~sktransfer.TransferClassifier` as they are, a 4-D array of shape
(n, 20, 20, 3). ``input_adapter="auto"`` resizes them to 8x8 and averages
the colour channels into one, and ``preprocess`` scales the pixels back to
[0, 1], all inside the fitted network, which then takes the raw images,
saves as a plain ``.keras`` file and reloads in Keras' safe mode.

The data are scikit-learn's bundled 8x8 digits: the source network learns
the digits 0-4; the target images are the digits 5-9, enlarged and tinted
to stand for a second collection of scans. Nothing is downloaded.
"""

# %%
# The source network
# ------------------
# A small CNN learns the digits 0-4 from the 8x8 images, pixels in [0, 1].
import keras
import numpy as np

from sktransfer.datasets import load_digits_transfer

X_source, y_source, X_target, y_target = load_digits_transfer("classes")
keras.utils.set_random_seed(0)
source = keras.Sequential(
    [
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(32, activation="relu", name="dense"),
        keras.layers.Dense(5, activation="softmax", name="output"),
    ],
    name="digits_0_to_4",
)
source.compile("adam", "sparse_categorical_crossentropy")
source.fit(X_source.reshape(-1, 8, 8, 1), y_source, epochs=15, batch_size=64, verbose=0)

# %%
# Target images of another size
# -----------------------------
# The digits 5-9 (relabelled 0-4), enlarged to 20x20 and drawn in a random
# colour per image, with pixels in 0-255: a 4-D array, as images come.
rng = np.random.default_rng(0)
grey = keras.ops.convert_to_numpy(
    keras.layers.Resizing(20, 20)(X_target.reshape(-1, 8, 8, 1).astype("float32"))
)
colour = rng.uniform(0.4, 1.0, (len(grey), 1, 1, 3))
images = np.round(255 * grey * colour).astype("float32")
print(f"target images: {images.shape}, pixels in [{images.min():.0f}, {images.max():.0f}]")

# %%
# Transfer, with the adapter in the network
# -----------------------------------------
# Ten labelled images per class. ``preprocess`` is the source's input scale:
# a ``Rescaling`` layer from 0-255 to [0, 1]. ``freeze=2`` keeps the two
# convolutions as the source learned them and fine-tunes the dense layer
# with a new head.
from sklearn.linear_model import LogisticRegression

from sktransfer import TransferClassifier

train = np.concatenate(
    [rng.choice(np.flatnonzero(y_target == c), 10, replace=False) for c in range(5)]
)
test = np.setdiff1d(np.arange(len(y_target)), train)
scale = keras.layers.Rescaling(1 / 255)  # each fit copies it into its network
settings = dict(freeze=2, epochs=100, learning_rate=3e-3, batch_size=16, random_state=0)
clf = TransferClassifier(source, preprocess=scale, **settings)
clf.fit(images[train], y_target[train])
print(f"input_adapter_ = {clf.input_adapter_!r}, input_shape_ = {clf.input_shape_}")
adapter = clf.model_.get_layer("sktransfer_adapter")
print("adapter layers:", [layer.name for layer in adapter.layers])

# %%
# How well does it do on the other 850 images? The same network trained from
# scratch (``pretrained=False``) and a logistic regression on the raw pixels
# see the same 50 images.
scratch = TransferClassifier(source, preprocess=scale, pretrained=False, **settings)
scratch.fit(images[train], y_target[train])
flat = images.reshape(len(images), -1) / 255
linear = LogisticRegression(max_iter=2000).fit(flat[train], y_target[train])
for name, score in [
    ("transfer (freeze=2)", clf.score(images[test], y_target[test])),
    ("from scratch", scratch.score(images[test], y_target[test])),
    ("logistic regression", linear.score(flat[test], y_target[test])),
]:
    print(f"{name:20s} accuracy {score:.3f}")

# %%
# On images this small, a network trained from scratch and a linear model on
# the pixels do about as well as the transferred network (the example
# :ref:`sphx_glr_auto_examples_plot_few_shot_digits.py` measures this over
# many splits): the point here is that the images reach the source as they
# come, with no resizing or rescaling by hand, and that the fitted network
# keeps doing it.
#
# What the source sees
# --------------------
# The adapter's output for a few target images: resized to 8x8, one channel,
# scaled to [0, 1], next to the 8x8 originals.
import matplotlib.pyplot as plt

seen = keras.ops.convert_to_numpy(adapter(images[test[:4]]))
fig, axes = plt.subplots(3, 4, figsize=(6, 4.6))
for i, index in enumerate(test[:4]):
    axes[0, i].imshow(images[index] / 255)
    axes[1, i].imshow(seen[i, :, :, 0], cmap="gray", vmin=0, vmax=1)
    axes[2, i].imshow(X_target[index].reshape(8, 8), cmap="gray", vmin=0, vmax=1)
for row, title in enumerate(["target (20x20 colour)", "what the source sees", "8x8 original"]):
    axes[row, 0].set_ylabel(title, fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

# %%
# One file, raw images in
# -----------------------
# ``model_`` holds the resizing, the channel average and the scaling as plain
# Keras layers, so it saves as a ``.keras`` file with no custom objects and
# reloads in safe mode, predicting from the raw 20x20 colour images.
import tempfile
from pathlib import Path

with tempfile.TemporaryDirectory() as directory:
    path = Path(directory) / "digits_5_to_9.keras"
    clf.model_.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    same = np.array_equal(
        keras.ops.convert_to_numpy(reloaded(images[test])),
        keras.ops.convert_to_numpy(clf.model_(images[test])),
    )
print(f"reloaded in safe mode, same predictions: {same}")

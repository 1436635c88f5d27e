"""
===============================
Few-shot transfer on the digits
===============================

A small convolutional network learns to read the digits 0-4; can it help to
tell the digits 5-9 apart from a handful of labelled images each? This
example fine-tunes it with :class:`~sktransfer.TransferClassifier`, measures
the transfer gain against the same network trained from scratch with
:class:`~sktransfer.TransferGainDisplay`, and looks inside one fit with
:class:`~sktransfer.HistoryDisplay`.

The data are scikit-learn's bundled 8x8 digits, split by class with
:func:`~sktransfer.datasets.load_digits_transfer`. Nothing is downloaded.
"""

# %%
# The source network
# ------------------
# Digits 0-4 form the source task, 5-9 (relabelled 0-4) the target task. Each
# row holds 64 pixel values in [0, 1]; the source network takes 8x8x1 images.
import keras

from sktransfer.datasets import load_digits_transfer

X_source, y_source, X_target, y_target = load_digits_transfer("classes")
print(f"source: {len(X_source)} images of 0-4; target: {len(X_target)} images of 5-9")

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
source.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
source.fit(X_source.reshape(-1, 8, 8, 1), y_source, epochs=15, batch_size=64, verbose=0)
accuracy = source.evaluate(X_source.reshape(-1, 8, 8, 1), y_source, verbose=0)[1]
print(f"source accuracy (training data): {accuracy:.3f}")

# %%
# The transfer estimator
# ----------------------
# ``X`` stays a 2-D array of 64 columns: ``input_adapter="auto"`` reshapes
# each row onto the source's (8, 8, 1) input. The output layer is cut off and
# replaced by a new 5-class head. Everything else is left at its default: the
# new head starts as the exact linear probe of the source's features
# (``head_init="probe"``), then the whole network fine-tunes for 1000
# optimizer steps (``epochs="auto"``).
from sktransfer import TransferClassifier

clf = TransferClassifier(source, random_state=0)

# %%
# Transfer gain on few labelled images
# ------------------------------------
# :meth:`TransferGainDisplay.from_estimator
# <sktransfer.TransferGainDisplay.from_estimator>` cross-validates learning
# curves of the estimator, of its from-scratch twin (same architecture and
# freezing, ``pretrained=False``) and of any baselines, on the same splits.
# Each split trains on at most 150 target images and tests on 300 others.
# Where transfer scores below scratch, the gap is shaded (negative transfer).
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit

from sktransfer import TransferGainDisplay

cv = StratifiedShuffleSplit(n_splits=3, train_size=150, test_size=300, random_state=0)
display = TransferGainDisplay.from_estimator(
    clf,
    X_target,
    y_target,
    train_sizes=[20, 50, 150],
    cv=cv,
    baselines={"logistic regression": LogisticRegression(max_iter=1000)},
    shuffle=True,
    random_state=0,
)
display.ax_.set_title("Digits 5-9 with a source trained on 0-4")

for size, gain in zip(display.train_sizes, display.gain_, strict=True):
    print(f"{size:4d} training images: transfer gain over scratch {gain:+.3f}")

# %%
# ``display.scores`` holds every split's score, keyed by curve:
for name, scores in display.scores.items():
    means = " ".join(f"{m:.3f}" for m in scores.mean(axis=1))
    print(f"{name:20s} mean accuracy per size: {means}")

# %%
# The gain is measured, not assumed: it is the difference between the
# transfer and from-scratch curves above, on the same splits. Compare with the
# logistic-regression curve too: on 8x8 images a linear model on raw pixels is
# a strong baseline, and a network, transferred or not, has to beat it to be
# worth its cost.
#
# Inside one fit
# --------------
# With ``alpha > 0``, training also keeps the network close to what the
# source knew: here ``source_loss="distill"`` pulls the source's own output
# head, kept on the fine-tuned body, towards the untouched source's outputs.
# :class:`~sktransfer.HistoryDisplay` draws ``history_``: the full objective
# ``loss = (1 - alpha) * target_loss + alpha * source_loss`` and its two terms.
from sktransfer import HistoryDisplay

X_few, y_few = X_target[:50], y_target[:50]
distilled = TransferClassifier(source, alpha=0.3, random_state=0).fit(X_few, y_few)
HistoryDisplay.from_estimator(distilled)
print(f"final losses: { {k: round(v[-1], 4) for k, v in distilled.history_.items()} }")

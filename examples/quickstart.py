"""Transfer a Keras model trained on one task to a related task with few samples.

Run with ``python examples/quickstart.py``. It generates a source task with
plenty of data and a related target task (``sktransfer.datasets``), trains a
small source network, then compares, on 60 target samples, the transferred
network with the same network trained from scratch and with logistic
regression. Every number is measured in the run.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from sktransfer import TransferClassifier  # noqa: E402
from sktransfer.datasets import make_transfer_classification  # noqa: E402


def train_source(X, y, n_classes, seed=0):
    init = keras.initializers.GlorotUniform
    model = keras.Sequential(
        [
            keras.Input((X.shape[1],)),
            keras.layers.Dense(64, activation="relu", kernel_initializer=init(seed)),
            keras.layers.Dense(32, activation="relu", kernel_initializer=init(seed + 1)),
            keras.layers.Dense(n_classes, activation="softmax", kernel_initializer=init(seed + 2)),
        ]
    )
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(X, y, epochs=40, batch_size=64, verbose=0, shuffle=False)
    return model


def main():
    X_source, y_source, X_target, y_target = make_transfer_classification(
        n_source=3000, n_target=1060, random_state=0
    )
    X_train, y_train, X_test, y_test = X_target[:60], y_target[:60], X_target[60:], y_target[60:]
    print(f"source task: {len(X_source)} samples, 10 classes; target task: 60 samples")
    source = train_source(X_source.astype("float32"), y_source, n_classes=10)
    seed = dict(random_state=0)
    rows = [
        ("transfer (defaults)", TransferClassifier(source, **seed)),
        ("transfer (frozen source body)", TransferClassifier(source, freeze="all", **seed)),
        ("same network from scratch", TransferClassifier(source, pretrained=False, **seed)),
        ("logistic regression", LogisticRegression()),
    ]
    print(f"{'model':32s} test accuracy")
    for name, model in rows:
        accuracy = model.fit(X_train, y_train).score(X_test, y_test)
        print(f"{name:32s} {accuracy:.3f}")


if __name__ == "__main__":
    main()

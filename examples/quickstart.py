"""Transfer a Keras model trained on one task to a related task with few samples.

Run with ``python examples/quickstart.py``. It trains a small source network on
plenty of generated data, then compares, on 60 target samples, the transferred
network with the same network trained from scratch and with logistic
regression. Every number is measured in the run.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from _tasks import shared_representation_task, train_source  # noqa: E402

from sktransfer import TransferClassifier  # noqa: E402


def main():
    (x_source, y_source), (x_target, y_target), (x_test, y_test) = shared_representation_task()
    print(
        f"source task: {len(x_source)} samples, 10 classes; target task: {len(x_target)} samples"
    )
    source = train_source(x_source, y_source, n_classes=10)
    params = dict(freeze="all", epochs=100, learning_rate=3e-3, batch_size=16, random_state=0)
    rows = [
        ("transfer (frozen source body)", TransferClassifier(source, **params)),
        ("same network from scratch", TransferClassifier(source, pretrained=False, **params)),
        ("logistic regression", LogisticRegression()),
    ]
    print(f"{'model':32s} test accuracy")
    for name, model in rows:
        accuracy = model.fit(x_target, y_target).score(x_test, y_test)
        print(f"{name:32s} {accuracy:.3f}")
    assert np.isfinite(accuracy)


if __name__ == "__main__":
    main()

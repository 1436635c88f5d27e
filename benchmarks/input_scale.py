"""Input scale on the digits: what a wrong scale costs, and when a StandardScaler helps.

The table of ``docs/user_guide/preparing_inputs.md``. A small CNN learns the
digits 0-4 (pixels in [0, 1], or standardised with a scaler fitted on the
source data); the target is the digits 5-9 from 10 labelled images per
class, scored on the others, over 5 draws. About 5 minutes on 2 cores::

    TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/input_scale.py
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DRAWS = 5
SHOTS = 10
SETTINGS = dict(epochs=100, learning_rate=3e-3, batch_size=16)


def cnn_source(X, y, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X.reshape(-1, 8, 8, 1), y, epochs=15, batch_size=64, verbose=0)
    return model


def conditions(plain, standardised, source_scaler):
    """``name -> (source, transform of X, estimator params, StandardScaler in front)``."""
    import keras

    def own(X):
        return source_scaler.transform(X)

    return {
        "[0, 1] source, X in [0, 1] (its scale)": (plain, None, {}, False),
        "[0, 1] source, X in 0-16 (raw)": (plain, lambda X: X * 16, {}, False),
        "[0, 1] source, X in 0-16, preprocess=Rescaling(1/16)": (
            plain,
            lambda X: X * 16,
            {"preprocess": keras.layers.Rescaling(1 / 16)},
            False,
        ),
        "[0, 1] source, StandardScaler fitted on the target": (plain, None, {}, True),
        "standardised source, X in [0, 1] (off its scale)": (standardised, None, {}, False),
        "standardised source, the source's own scaler": (standardised, own, {}, False),
        "standardised source, StandardScaler fitted on the target": (
            standardised,
            None,
            {},
            True,
        ),
    }


def main():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sktransfer import TransferClassifier
    from sktransfer.datasets import load_digits_transfer

    X_source, y_source, X_target, y_target = load_digits_transfer("classes")
    source_scaler = StandardScaler().fit(X_source)
    plain = cnn_source(X_source, y_source)
    standardised = cnn_source(source_scaler.transform(X_source), y_source)
    scores = {}
    for draw in range(DRAWS):
        rng = np.random.default_rng(draw)
        train = np.concatenate(
            [rng.choice(np.flatnonzero(y_target == c), SHOTS, replace=False) for c in range(5)]
        )
        test = np.setdiff1d(np.arange(len(y_target)), train)
        (Xa, ya), (Xb, yb) = (X_target[train], y_target[train]), (X_target[test], y_target[test])
        linear = LogisticRegression(max_iter=2000).fit(Xa, ya)
        scores.setdefault("logistic regression on the pixels", []).append(linear.score(Xb, yb))
        for name, (source, transform, params, scaler) in conditions(
            plain, standardised, source_scaler
        ).items():
            transform = transform or (lambda X: X)
            for freeze in ("all", 0):
                model = TransferClassifier(
                    source, freeze=freeze, random_state=draw, **SETTINGS, **params
                )
                if scaler:
                    model = make_pipeline(StandardScaler(), model)
                model.fit(transform(Xa), ya)
                score = model.score(transform(Xb), yb)
                scores.setdefault(f"{name}, freeze={freeze!r}", []).append(score)
        print(f"draw {draw + 1} of {DRAWS} done", flush=True)
    for name, values in scores.items():
        print(f"{np.mean(values):.3f} ± {np.std(values):.3f}  {name}")


if __name__ == "__main__":
    main()

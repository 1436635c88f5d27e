"""The transfer task generators and the digits split."""

import numpy as np
import pytest
from _tasks import train_source

from sktransfer import TransferClassifier
from sktransfer.datasets import (
    load_digits_transfer,
    make_transfer_classification,
    make_transfer_regression,
)


def test_shapes_and_seeds():
    a = make_transfer_classification(200, 50, 7, n_source_classes=4, random_state=0)
    b = make_transfer_classification(200, 50, 7, n_source_classes=4, random_state=0)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    Xs, ys, Xt, yt = a
    assert Xs.shape == (200, 7) and Xt.shape == (50, 7)
    assert set(ys) <= set(range(4)) and set(yt) <= set(range(3))
    c = make_transfer_classification(200, 50, 7, n_source_classes=4, random_state=1)
    assert not np.array_equal(a[0], c[0])
    Xs, ys, Xt, yt = make_transfer_regression(100, 30, 5, n_source_targets=2, random_state=0)
    assert ys.shape == (100, 2) and yt.shape == (30,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"relatedness": 1.5}, r"relatedness must be a number in \[0.0, 1.0\]"),
        ({"n_target": 0}, r"n_target must be an integer in \[1, inf\)"),
        ({"n_source_classes": 1}, "n_source_classes must be an integer in"),
        ({"n_features": "20"}, "n_features='20' is not valid: n_features must be an integer"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_transfer_classification(**kwargs)


def test_relatedness_controls_the_gain_of_transfer():
    params = dict(freeze="all", epochs=60, learning_rate=3e-3, batch_size=16, random_state=0)
    gains = {}
    for relatedness in (1.0, 0.0):
        Xs, ys, Xt, yt = make_transfer_classification(
            n_source=2000, n_target=560, relatedness=relatedness, random_state=0
        )
        source = train_source(Xs.astype("float32"), ys, 10, epochs=25)
        fit = dict(X=Xt[:60], y=yt[:60])
        transfer = TransferClassifier(source, **params).fit(**fit).score(Xt[60:], yt[60:])
        scratch = TransferClassifier(source, pretrained=False, **params).fit(**fit)
        gains[relatedness] = transfer - scratch.score(Xt[60:], yt[60:])
    assert gains[1.0] > 0.15
    assert gains[1.0] > gains[0.0] + 0.1


def test_digits_splits():
    Xs, ys, Xt, yt = load_digits_transfer("classes")
    assert set(ys) == set(yt) == set(range(5)) and len(Xs) + len(Xt) == 1797
    assert Xs.max() <= 1.0
    Xs, ys, Xt, yt = load_digits_transfer("transposed")
    np.testing.assert_array_equal(Xt[0].reshape(8, 8), Xs[0].reshape(8, 8).T)
    np.testing.assert_array_equal(ys, yt)
    with pytest.raises(ValueError, match="split must be"):
        load_digits_transfer("rotated")

"""Hostile and malformed files: saved estimators and .keras sources built to attack load.

Each test here failed before the rules of issue 17 (items 1 to 5) existed: a
file may not set a path or a cache, safe mode holds after
``keras.config.enable_unsafe_deserialization()``, decompression and dtypes are
bounded, every malformed file is a ``ValueError`` naming it, and the fitted
attributes must match the network.
"""

import io
import json
import struct
import traceback
import zipfile
import zlib

import numpy as np
import pytest
from sklearn.datasets import load_iris

import sktransfer
import sktransfer.persistence
from sktransfer import TransferClassifier, TransferRegressor

keras = pytest.importorskip("keras")

GiB = 2**30


def mlp(n_in=4, n_out=3, extra=()):
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(8, activation="relu", kernel_initializer=init(0)),
            *extra,
            keras.layers.Dense(n_out, activation="softmax", kernel_initializer=init(1)),
        ]
    )


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, iris):
    """Good files: a classifier (with source.keras), a 2-output regressor, a source."""
    X, y = iris
    folder = tmp_path_factory.mktemp("saved")
    TransferClassifier(mlp(), epochs=1, random_state=0).fit(X, y).save(folder / "clf.skt")
    Y = np.column_stack([X[:, 0], X[:, 1]])
    TransferRegressor(mlp(), epochs=1, random_state=0).fit(X, Y).save(folder / "reg.skt")
    mlp().save(folder / "source.keras")
    return {name: folder / name for name in ("clf.skt", "reg.skt", "source.keras")}


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path, files, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def with_header(source, target, change):
    """A copy of the saved estimator ``source`` whose header ``change(header)`` edits."""
    files = members(source)
    header = json.loads(files["estimator.json"])
    change(header)
    files["estimator.json"] = json.dumps(header).encode()
    return write_zip(target, files)


def raw_zip(path, entries):
    """A zip written byte by byte: ``entries`` of (name, raw data, method, size, crc).

    zipfile cannot write a member whose header disagrees with its data, which
    is exactly what a hostile file does.
    """
    out, central = io.BytesIO(), []
    for name, raw, method, size, crc in entries:
        offset, encoded = out.tell(), name.encode()
        fields = (20, 0, method, 0, 0x21, crc, len(raw), size, len(encoded), 0)
        out.write(struct.pack("<I5H3I2H", 0x04034B50, *fields) + encoded + raw)
        central.append(
            struct.pack("<IH5H3I5H2I", 0x02014B50, 20, *fields, 0, 0, 0, 0, offset) + encoded
        )
    directory, start, n = b"".join(central), out.tell(), len(entries)
    out.write(directory + struct.pack("<I4H2IH", 0x06054B50, 0, 0, n, n, len(directory), start, 0))
    with open(path, "wb") as f:
        f.write(out.getvalue())
    return path


def stored(files):
    return [(name, data, 0, len(data), zlib.crc32(data)) for name, data in files.items()]


def deflated(byte, size):
    """Raw deflate data for ``size`` copies of ``byte``, made from one compressed MiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = compressor.compress(byte * 2**20) + compressor.flush(zlib.Z_FULL_FLUSH)
    return unit * (size // 2**20) + compressor.flush()


def assert_clean_error(info, path, *fragments):
    """A ValueError that names the file, with no chained traceback from elsewhere."""
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None
    assert "sktransfer" in traceback.extract_tb(info.value.__traceback__)[-1].filename


# -- item 2: safe mode holds whatever Keras' global flag says ------------------------------


@pytest.fixture
def unsafe_keras():
    """Run the test after ``enable_unsafe_deserialization()``, restoring the flag after."""
    from keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(None):  # its exit restores this thread's flag as it was
        yield


def test_safe_mode_holds_after_enable_unsafe_deserialization(iris, tmp_path, unsafe_keras):
    X, y = iris
    lam = mlp(extra=[keras.layers.Lambda(lambda t: t * 2.0, name="double")])
    lam.save(tmp_path / "lam.keras")
    TransferClassifier(lam, epochs=1, random_state=0).fit(X, y).save(tmp_path / "lam.skt")
    keras.config.enable_unsafe_deserialization()

    with pytest.raises(ValueError) as info:
        TransferClassifier(str(tmp_path / "lam.keras"), epochs=1).fit(X, y)
    assert_clean_error(info, tmp_path / "lam.keras", "refused")
    with pytest.raises(ValueError) as info:
        sktransfer.load(tmp_path / "lam.skt")
    assert_clean_error(info, tmp_path / "lam.skt", "refused")
    # The caller's global choice still holds for their own Keras calls, and opting in works.
    assert keras.saving.load_model(tmp_path / "lam.keras").get_layer("double") is not None
    sktransfer.load(tmp_path / "lam.skt", safe_mode=False).predict(X)


def test_private_keras_safe_mode_scope_is_where_sktransfer_expects():
    """``_source._keras_safe_mode`` relies on keras.src; this fails loudly if it moves."""
    from keras.src.saving.serialization_lib import SafeModeScope, in_safe_mode

    from sktransfer._source import _keras_safe_mode

    with SafeModeScope(False):  # what enable_unsafe_deserialization() sets
        with _keras_safe_mode():
            assert in_safe_mode() is True
        assert in_safe_mode() is False

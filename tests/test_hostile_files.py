"""Hostile and malformed files: saved estimators and .keras sources built to attack load.

Each test here failed before the rules of issue 17 (items 1 to 5) existed: a
file may not set a path or a cache, safe mode holds after
``keras.config.enable_unsafe_deserialization()``, decompression and dtypes are
bounded, every malformed file is a ``ValueError`` naming it, and the fitted
attributes must match the network.
"""

import io
import json
import os
import random
import struct
import subprocess
import sys
import traceback
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from sklearn.datasets import load_iris

import sktransfer
import sktransfer.persistence
from sktransfer import TransferClassifier, TransferRegressor

keras = pytest.importorskip("keras")
pd = pytest.importorskip("pandas")

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


# -- item 1: a file never sets a path or a cache ------------------------------------------


def test_load_never_takes_memory_or_a_source_path_from_the_file(saved, iris, tmp_path):
    X, _ = iris
    cache = tmp_path / "planted"
    cache.mkdir()

    def plant(header):
        header["params"].update(memory=str(cache), source="/elsewhere/source.keras")

    path = with_header(saved["clf.skt"], tmp_path / "memory.skt", plant)
    with pytest.warns(UserWarning) as record:
        loaded = sktransfer.load(path)
    messages = " ".join(str(w.message) for w in record)
    assert "sets memory" in messages and "pickle" in messages
    assert "sets source" in messages and "path" in messages
    assert loaded.memory is None and loaded.source is None
    loaded.predict(X)
    assert list(cache.iterdir()) == []  # predict neither read nor wrote the file's cache


def test_save_writes_no_memory(iris, tmp_path):
    X, y = iris
    clf = TransferClassifier(mlp(), epochs=1, memory=str(tmp_path / "cache"), random_state=0)
    clf.fit(X, y)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        clf.save(tmp_path / "clf.skt")
        loaded = sktransfer.load(tmp_path / "clf.skt")
    assert not [w for w in record if "memory" in str(w.message)]
    assert json.loads(members(tmp_path / "clf.skt")["estimator.json"])["params"]["memory"] is None
    assert loaded.memory is None
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# -- item 2: safe mode holds whatever Keras' global flag says ------------------------------


@pytest.fixture
def unsafe_keras():
    """Run the test after ``enable_unsafe_deserialization()``, restoring the flag after."""
    from sktransfer._compat import safe_mode_scope

    with safe_mode_scope(None):  # its exit restores this thread's flag as it was
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


# -- item 3: bounded decompression and dtypes, under a memory cap -------------------------

_CHILD = r"""
import json, os, resource, sys
import numpy as np
import sktransfer
from sktransfer import TransferClassifier

good_skt, good_keras, *hostile = sys.argv[1:]
X, y = np.random.default_rng(0).normal(size=(30, 4)), np.arange(30) % 3
sktransfer.load(good_skt).predict(X)
TransferClassifier(good_keras, epochs=1).fit(X, y)
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

results = {}
for path in hostile:
    before = peak()
    try:
        if path.endswith(".skt"):
            sktransfer.load(path)
        else:
            TransferClassifier(path, epochs=1).fit(X, y)
        outcome = "loaded"
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    results[os.path.basename(path)] = [outcome, peak() - before]
print(json.dumps(results))
"""


def _bombs(saved, folder):
    """The hostile files of issue 17's table, plus headers that understate the size."""
    skt, keras_file = members(saved["clf.skt"]), members(saved["source.keras"])
    zeros, spaces = deflated(b"\0", 2 * GiB), deflated(b" ", GiB)
    lying = (deflated(b"\0", 2 * GiB), 8, 1000, zlib.crc32(b"\0" * 1000))
    without = {
        name: {k: v for k, v in files.items() if k != name}
        for name, files in (
            ("model.keras", skt),
            ("estimator.json", skt),
            ("config.json", keras_file),
        )
    }
    wide = {"__ndarray__": [""] * 5 * 10**5, "dtype": "<U9999"}  # 2 MiB of JSON, 19 GiB
    return {
        raw_zip(folder / "model_bomb.skt", stored(without["model.keras"])
                + [("model.keras", zeros, 8, 2 * GiB, 0)]): "MAX_EXPANSION",
        raw_zip(folder / "json_bomb.skt", stored(without["estimator.json"])
                + [("estimator.json", spaces, 8, GiB, 0)]): "MAX_JSON_BYTES",
        raw_zip(folder / "config_bomb.keras", stored(without["config.json"])
                + [("config.json", spaces, 8, GiB, 0)]): "MAX_JSON_BYTES",
        raw_zip(folder / "lying_json.skt", stored(without["estimator.json"])
                + [("estimator.json", *lying)]): "not JSON",
        raw_zip(folder / "lying_config.keras", stored(without["config.json"])
                + [("config.json", *lying)]): "could not load",
        with_header(saved["clf.skt"], folder / "dtype_bomb.skt", lambda h: h["fitted"].update(
            classes_={"__ndarray__": [0, 1, 2], "dtype": "(10000,10000)f8"})): "dtype",
        with_header(saved["clf.skt"], folder / "wide_bomb.skt", lambda h: h["fitted"].update(
            classes_=wide)): "too large",
    }  # fmt: skip


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_AS and /proc")
def test_bombs_are_refused_within_a_memory_cap(saved, tmp_path):
    bombs = _bombs(saved, tmp_path)
    assert max(os.path.getsize(path) for path in bombs) < 3 * 2**20
    command = [sys.executable, "-c", _CHILD, saved["clf.skt"], saved["source.keras"], *bombs]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    results = json.loads(child.stdout.strip().splitlines()[-1])
    for path, fragment in bombs.items():
        outcome, growth = results[path.name]
        print(f"{path.name}: +{growth:.0f} MiB, {outcome.split(str(path))[-1][:90]}")
        assert outcome.startswith("ValueError") and str(path) in outcome, outcome
        assert fragment in outcome, outcome
        assert growth < 100, f"{path.name} grew the peak RSS by {growth:.0f} MiB"


def test_caps_are_module_constants_and_deflated_keras_files_still_load(
    saved, iris, tmp_path, monkeypatch
):
    X, y = iris
    files = members(saved["source.keras"])
    rezipped = write_zip(tmp_path / "re.keras", files, zipfile.ZIP_DEFLATED)
    TransferClassifier(str(rezipped), epochs=1).fit(X, y)  # read through a stored copy
    monkeypatch.setattr(sktransfer.persistence, "MAX_ARCHIVE_BYTES", 2**10)
    with pytest.raises(ValueError) as info:
        sktransfer.load(saved["clf.skt"])
    assert_clean_error(info, saved["clf.skt"], "MAX_ARCHIVE_BYTES")


def test_only_plain_dtypes_are_read(saved, tmp_path):
    bad = ["(10000,10000)f8", "V8", "|S5", "<c16", "<M8[ns]", "i4,f8", "<U99999", "O", "<f16"]
    for dtype in bad:

        def change(header, dtype=dtype):
            header["fitted"]["classes_"] = {"__ndarray__": ["a", "b", "c"], "dtype": dtype}

        path = with_header(saved["clf.skt"], tmp_path / "dtype.skt", change)
        with pytest.raises(ValueError) as info:
            sktransfer.load(path)
        assert_clean_error(info, path, "'classes_'", "dtype")


# -- item 4: every malformed file is a ValueError that names it ---------------------------

_ARRAY = "__ndarray__"


def _array(values, dtype):
    return {_ARRAY: values, "dtype": dtype}


_HEADER_CASES = {
    "params missing": lambda h: h.pop("params"),
    "params a list": lambda h: h.update(params=[1, 2]),
    "fitted missing": lambda h: h.pop("fitted"),
    "fitted a string": lambda h: h.update(fitted="x"),
    "class a list": lambda h: h.update({"class": ["TransferClassifier"]}),
    "unknown class": lambda h: h.update({"class": "os.system"}),
    "unknown parameter": lambda h: h["params"].update(bogus=1),
    "unknown fitted attribute": lambda h: h["fitted"].update(model_=1),
    "ragged array": lambda h: h["fitted"].update(classes_=_array([[1], [2, 3]], "<i8")),
    "text in a float array": lambda h: h["fitted"].update(classes_=_array(["x"], "<f8")),
    "int8 overflow": lambda h: h["fitted"].update(classes_=_array([300], "|i1")),
    "array without dtype": lambda h: h["fitted"].update(classes_={_ARRAY: [1, 2]}),
    "array of dicts": lambda h: h["fitted"].update(classes_=_array([{}], "<i8")),
    "object array of lists": lambda h: h["fitted"].update(classes_=_array([[1, [2]]], "object")),
    "tuple of a number": lambda h: h["params"].update(head={"__tuple__": 5}),
    "nesting 40 deep": lambda h: h["params"].update(head=json.loads("[" * 40 + "]" * 40)),
    "dropped_params a dict": lambda h: h.update(dropped_params={}),
}


def test_malformed_headers_give_a_value_error_naming_the_file(saved, tmp_path):
    for case, change in _HEADER_CASES.items():
        path = with_header(saved["clf.skt"], tmp_path / "bad.skt", change)
        with pytest.raises(ValueError) as info:
            sktransfer.load(path)
        print(f"{case}: {info.value}")
        assert_clean_error(info, path)


def test_malformed_zips_give_a_value_error_naming_the_file(saved, tmp_path):
    files = members(saved["clf.skt"])
    header = files["estimator.json"]
    cases = {
        "no estimator.json": write_zip(
            tmp_path / "a.skt", {k: v for k, v in files.items() if k != "estimator.json"}
        ),
        "no model.keras": write_zip(
            tmp_path / "b.skt", {k: v for k, v in files.items() if k != "model.keras"}
        ),
        "no source.keras": write_zip(
            tmp_path / "c.skt", {k: v for k, v in files.items() if k != "source.keras"}
        ),
        "model.keras not a zip": write_zip(tmp_path / "d.skt", {**files, "model.keras": b"x"}),
        "bad CRC": raw_zip(tmp_path / "e.skt", [("estimator.json", header, 0, len(header), 1)]),
        "bad deflate data": raw_zip(
            tmp_path / "f.skt", [("estimator.json", b"\xff" * 64, 8, len(header), 0)]
        ),
        "bzip2 member": write_zip(tmp_path / "g.skt", files, zipfile.ZIP_BZIP2),
        "deep nesting": write_zip(
            tmp_path / "h.skt", {**files, "estimator.json": b"[" * 10**5 + b"]" * 10**5}
        ),
        "not UTF-8": write_zip(tmp_path / "i.skt", {**files, "estimator.json": b"\xff\xfe\xfa"}),
        "a 5000-digit number": write_zip(
            tmp_path / "j.skt", {**files, "estimator.json": b"9" * 5000}
        ),
    }
    for case, path in cases.items():
        with pytest.raises(ValueError) as info:
            sktransfer.load(path)
        print(f"{case}: {info.value}")
        assert_clean_error(info, path)


def test_random_damage_gives_a_value_error_or_a_working_estimator(saved, iris, tmp_path):
    """A small seeded fuzz: flipped bytes and truncations of stored and deflated files."""
    X, _ = iris
    files = members(saved["clf.skt"])
    originals = [
        write_zip(tmp_path / "stored.skt", files).read_bytes(),
        write_zip(tmp_path / "deflated.skt", files, zipfile.ZIP_DEFLATED).read_bytes(),
    ]
    rng = random.Random(0)
    path = tmp_path / "damaged.skt"
    for _ in range(100):
        data = bytearray(rng.choice(originals))
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            sktransfer.load(path).predict_proba(X)
        except ValueError as exc:
            assert str(path) in str(exc)


def test_bad_parameter_values_load_and_fail_at_fit(saved, iris, tmp_path):
    X, y = iris
    path = with_header(
        saved["clf.skt"], tmp_path / "alpha.skt", lambda h: h["params"].update(alpha="x")
    )
    loaded = sktransfer.load(path)
    loaded.predict(X)
    with pytest.raises(ValueError, match="alpha"):
        loaded.fit(X, y)


# -- item 5: the fitted state must match the network --------------------------------------


_CLASSIFIER_CASES = {
    "5 labels for 3 outputs": dict(classes_=_array(list("abcde"), "<U1")),
    "2 labels for 3 outputs": dict(classes_=_array(list("ab"), "<U1")),
    "a string": dict(classes_="abc"),
    "2-D labels": dict(classes_=_array([list("abc")], "<U1")),
    "repeated labels": dict(classes_=_array(list("aab"), "<U1")),
    "5 features for 4 inputs": dict(n_features_in_=5),
    "features as a string": dict(n_features_in_="4"),
    "2 feature names for 4 inputs": dict(feature_names_in_=_array(["a", "b"], "<U1")),
}
_REGRESSOR_CASES = {
    "3 outputs for 2": dict(n_outputs_=3),
    "1 mean for 2 outputs": dict(_y_mean=_array([0.0], "<f8")),
    "a zero scale": dict(_y_scale=_array([1.0, 0.0], "<f8")),
    "1-D targets for 2 outputs": dict(_y_ndim=1),
}


def test_fitted_state_that_does_not_match_the_network_is_refused(saved, tmp_path):
    cases = [("clf.skt", case, change) for case, change in _CLASSIFIER_CASES.items()]
    cases += [("reg.skt", case, change) for case, change in _REGRESSOR_CASES.items()]
    cases += [("clf.skt", "classes_ missing", None), ("reg.skt", "_y_scale missing", None)]
    for name, case, change in cases:

        def edit(header, change=change, case=case):
            if change is None:
                header["fitted"].pop(case.split()[0])
            else:
                header["fitted"].update(change)

        path = with_header(saved[name], tmp_path / name, edit)
        with pytest.raises(ValueError) as info:
            sktransfer.load(path)
        print(f"{case}: {info.value}")
        assert_clean_error(info, path, "consistent")


# -- issue 15, item 1: DataFrames and string or categorical labels save -------------------


def test_save_after_a_dataframe_and_string_or_categorical_labels(tmp_path):
    X, y = load_iris(return_X_y=True, as_frame=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    source = mlp()
    for target in (y, pd.Categorical(names), names.astype(object)):
        clf = TransferClassifier(source, epochs=2, random_state=0).fit(X, target)
        clf.save(tmp_path / "frame.skt")
        loaded = sktransfer.load(tmp_path / "frame.skt")
        for name in ("feature_names_in_", "classes_"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(clf, name))
            assert getattr(loaded, name).dtype == getattr(clf, name).dtype
        np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
        np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))

"""``sktransfer demo`` runs end to end, quietly, caches its source network, and explains itself."""

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sktransfer import _demo

ROOT = Path(__file__).resolve().parents[1]

# What TensorFlow prints while it loads: absl's records, TensorFlow's own, and their notices.
TF_NOISE = re.compile(
    r"^(?:[IWEF]\d{4} |\d{4}-\d\d-\d\d [\d:.]+: [IWEF] |WARNING:|To enable the following)"
    r"|absl|oneDNN|cuInit|cuda",
    re.M | re.I,
)
ROW = re.compile(r"^(.+?)\s+(\d\.\d{3}) ± (\d\.\d{3})\s+([+-]\d\.\d{3})$", re.M)


def demo(*args, cache):
    """Run the command as a new user does: TF_CPP_MIN_LOG_LEVEL unset."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "sktransfer", "demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quick_demo_is_quiet_measured_and_ends_with_a_verdict(tmp_path):
    out = tmp_path / "out"
    done = demo("--quick", "--seed", "1", "--output", str(out), cache=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert TF_NOISE.search(done.stdout + done.stderr) is None, done.stderr
    assert "\r" not in done.stderr and "\b" not in done.stderr
    assert all(len(line) <= 80 for line in done.stderr.splitlines()), done.stderr
    assert "training the source network" in done.stderr
    assert "trained and cached at" in done.stdout

    rows = ROW.findall(done.stdout)
    means = {name.strip(): float(mean) for name, mean, _, _ in rows}
    baselines = {_demo.SCRATCH, "logistic regression", "source features + logistic reg."}
    assert len(rows) >= 3 and baselines <= set(means)
    assert all(0.0 < mean <= 1.0 for mean in means.values())
    assert [gain for name, *_, gain in rows if name.strip() == _demo.SCRATCH] == ["+0.000"]

    verdict = done.stdout.splitlines()[-1]
    assert verdict.startswith("verdict: ")
    best = max(set(means) - baselines, key=means.get)
    gain = means[best] - max(means[name] for name in baselines)
    if gain > 0.001:
        assert f"verdict: {best} is best, +" in verdict
        assert float(re.search(r"([+-]\d\.\d{3}) over", verdict)[1]) == pytest.approx(
            gain, abs=2e-3
        )
    elif gain < -0.001:
        assert verdict.startswith("verdict: WARNING")

    sizes = re.search(
        r"transfer-gain curve \(([\d, ]+) per class\) saved to (.+)$", done.stdout, re.M
    )
    assert len(sizes[1].split(", ")) >= 3
    assert (out / "transfer_gain.png").exists()


def test_help_is_plain_and_shows_every_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        _demo.main(["demo", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text
    options = re.split(r"\n  (?=-)", text.split("options:")[1])[1:]
    assert [o.split()[0] for o in options] == [
        "-h,",
        "--shots",
        "--seed",
        "--output",
        "--quick",
        "--no-cache",
    ]
    for option in options[1:]:
        assert "default" in option, option


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shots", "1"], "--shots must be at least 2"),
        (["--shots", "5000", "--quick"], "--shots must be at most"),
        (["--seed", "-1"], "--seed must be between 0 and"),
        (["--shots", "ten"], "argument --shots: invalid int value"),
    ],
)
def test_out_of_range_arguments_get_an_argparse_error(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        _demo.main(["demo", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "sktransfer demo: error: " in err and message in err and "Traceback" not in err


def test_the_largest_number_of_shots_is_accepted_and_one_more_is_not(capsys):
    parser, demo = _demo._parser()
    y_pool = _demo._tasks(0, quick=True)[3]
    most = _demo._max_shots(y_pool)
    assert 2 <= most <= np.bincount(y_pool).min() // 2
    _demo._check(parser.parse_args(["demo", "--quick", "--shots", str(most)]), demo)
    with pytest.raises(SystemExit):
        _demo._check(parser.parse_args(["demo", "--quick", "--shots", str(most + 1)]), demo)
    assert f"at most {most}" in capsys.readouterr().err


def test_an_output_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        _demo.main(["demo", "--output", str(tmp_path / "file")])
    assert "--output must be a folder" in capsys.readouterr().err


def test_draws_train_on_exactly_shots_per_class_and_test_on_the_rest():
    y = np.repeat([0, 1, 2], [30, 50, 40])
    small, large = _demo._draws(y, 5, 3, seed=0), _demo._draws(y, 10, 3, seed=0)
    for (train, test), (train_large, _) in zip(small, large, strict=True):
        assert np.bincount(y[train]).tolist() == [5, 5, 5]
        assert sorted([*train, *test]) == list(range(len(y)))
        assert set(train) <= set(train_large)


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize(
    "shots, max_shots", [(2, 100), (3, 100), (10, 100), (60, 100), (100, 100)]
)
def test_the_curve_has_three_points_or_more_within_the_pool(shots, max_shots, quick):
    points = _demo._curve_shots(shots, quick, max_shots)
    assert len(points) >= 3 and shots in points
    assert points == sorted(set(points)) and 2 <= points[0] and points[-1] <= max_shots


@pytest.mark.parametrize(
    "scratch, logistic, expected",
    [
        (0.60, 0.75, "transfer A is best, +0.050 over the best baseline (logistic)"),
        (
            0.85,
            0.50,
            f"WARNING, negative transfer: {_demo.SCRATCH} beats every transfer setting; "
            "the best, transfer A, scores 0.050 less",
        ),
        (
            0.65,
            0.82,
            "WARNING, no transfer gain: logistic beats every transfer setting; "
            "the best, transfer A, scores 0.020 less",
        ),
        (0.65, 0.80, "WARNING, no transfer gain: logistic does as well as the best transfer"),
    ],
)
def test_the_verdict_names_the_best_setting_or_warns(scratch, logistic, expected):
    means = {"transfer A": 0.80, "transfer B": 0.70, _demo.SCRATCH: scratch, "logistic": logistic}
    settings = {"transfer A": None, "transfer B": None}
    verdict = _demo._verdict(means, settings, {_demo.SCRATCH: None, "logistic": None})
    assert verdict.startswith(f"verdict: {expected}") and "\n" not in verdict


def test_the_plot_counts_samples_per_class_and_explains_its_bands(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    curve = {name: rng.uniform(0.5, 0.9, (3, 2)) for name in ("a", _demo.SCRATCH, "lr")}
    display = _demo._plot([5, 10, 20], curve, "a", 2, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").exists()
    assert "per class" in display.ax_.get_xlabel()
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == ["5", "10", "20"]
    legend = [t.get_text() for t in display.ax_.get_legend().get_texts()]
    assert "shaded: ±1 std over 2 draws" in legend


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _screen(text):
    """The lines an 80-column terminal shows after ``text``: redraws applied."""
    lines, line, column = [], [], 0
    for char in re.sub(r"\x1b\[[\d;]*m", "", text):
        if char == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        elif char in "\r\b":
            column = 0 if char == "\r" else max(column - 1, 0)
        else:
            line[column : column + 1] = [char]
            column += 1
    return [*lines, "".join(line).rstrip()] if line else lines


@pytest.mark.parametrize("stream", [_Terminal(), io.StringIO()], ids=["terminal", "pipe"])
def test_progress_redraws_in_place_on_a_terminal_and_writes_one_line_elsewhere(stream):
    progress = _demo._Progress(stream)
    progress.start("training", 3, "epoch")
    for epoch, loss in enumerate([12345.678, 0.5, 0.25], start=1):
        time.sleep(0.06)  # Progbar draws at most every 50 ms
        progress.update(epoch, loss=loss)
    screen = _screen(stream.getvalue())
    assert screen[0] == "training" and len(screen) == 2
    assert screen[1].startswith("3/3") and screen[1].endswith("loss: 0.2500")
    assert all(len(line) <= 80 for line in screen)
    if not stream.isatty():
        assert "\r" not in stream.getvalue() and "\b" not in stream.getvalue()


def test_only_start_up_noise_is_filtered_and_real_errors_are_replayed(capfd):
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796012644.279857    6872 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1796012644.280322    6872 cudart_stub.cc:31] Could not find cuda drivers",
        "W0000 00:00:1796012644.3    6872 cpu_feature_guard.cc:227] This TensorFlow binary is",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow",
        "E0000 00:00:1796012647.673708    6872 cuda_platform.cc:52] failed call to cuInit: INTERN",
        "2024-03-08 10:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom operations",
    ]
    real = [
        "E0000 00:00:1796012647.6    6872 op_kernel.cc:1] Not found: libdevice not found",
        "/path/module.py:3: UserWarning: something the user must see",
        "F0000 00:00:1796012647.6    6872 check.cc:1] Check failed",
    ]
    assert not any(_demo._is_start_up_noise(line) for line in real)
    assert all(_demo._is_start_up_noise(line) for line in noise)
    with _demo._start_up_noise_filtered():
        os.write(2, "\n".join([*noise, *real, ""]).encode())
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "\n".join([*real, "after", ""])


def test_the_source_network_is_cached_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    X, y = _demo._tasks(0, quick=True)[:2]
    X, y = X[:200], y[:200]
    progress = _demo._Progress(io.StringIO())
    first, how = _demo._source_model(X, y, 0, 2, True, progress)
    assert how.startswith("trained and cached at")
    again, how = _demo._source_model(X, y, 0, 2, True, progress)
    assert how.startswith("loaded from")
    np.testing.assert_array_equal(first.predict_on_batch(X), again.predict_on_batch(X))
    (path,) = (tmp_path / "sktransfer").iterdir()
    path.write_bytes(b"not a model")
    assert _demo._source_model(X, y, 0, 2, True, progress)[1].startswith("trained and cached")

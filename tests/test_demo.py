"""``sktransfer demo`` runs end to end, caches its source network, and explains itself."""

import os
import re
import subprocess
import sys


def demo(*args, cache):
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "sktransfer", "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_explains_every_option(tmp_path):
    done = demo("--help", cache=tmp_path)
    assert done.returncode == 0
    for option in ("--shots", "--seed", "--output", "--quick", "--no-cache"):
        assert option in done.stdout


def test_quick_demo_prints_a_measured_table_and_reuses_its_cache(tmp_path):
    out = tmp_path / "out"
    first = demo("--quick", "--seed", "1", "--output", str(out), cache=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "trained and cached at" in first.stdout
    rows = re.findall(r"^(.+?)\s+(\d\.\d{3}) ± (\d\.\d{3})\s+([+-]\d\.\d{3})$", first.stdout, re.M)
    names = [name.strip() for name, *_ in rows]
    assert "same network from scratch" in names and "logistic regression" in names
    assert len(rows) == 5
    for name, mean, _, gain in rows:
        assert 0.0 < float(mean) <= 1.0
        if name.strip() == "same network from scratch":
            assert float(gain) == 0.0
    second = demo("--quick", "--seed", "1", "--output", str(out), cache=tmp_path)
    assert second.returncode == 0
    assert "loaded from" in second.stdout
    assert re.findall(r"(\d\.\d{3}) ±", second.stdout) == [mean for _, mean, _, _ in rows]


def test_bad_option_is_refused(tmp_path):
    done = demo("--shots", "1", cache=tmp_path)
    assert done.returncode == 2 and "--shots must be at least 2" in done.stderr

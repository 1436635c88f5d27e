"""Timing, subprocess, machine and report helpers of the benchmark suite."""

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# -- results ---------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table.

    ``value`` is the figure compared with the target: a ratio of medians
    (``sk / base``) for the timing rows, MiB per fit for the memory row.
    """

    key: str
    name: str
    target: str
    limit: float | None = None
    strict: bool = False  # value < limit instead of value <= limit
    unit: str = "x"
    sk: float | None = None
    base: float | None = None
    value: float | None = None
    n: int | None = None
    status: str = ""
    note: str = ""

    def judge(self, extra_ok=True):
        if self.value is None or self.limit is None:
            return self
        ok = self.value < self.limit if self.strict else self.value <= self.limit
        self.status = "PASS" if ok and extra_ok else "MISS"
        return self


@dataclass
class Comparison:
    """One line of the library comparison table (time and accuracy)."""

    name: str
    seconds: float | None = None
    accuracy: list = field(default_factory=list)
    n: int | None = None
    note: str = ""


# -- timing ----------------------------------------------------------------------


def interleaved(variants, repeats, warmup=1, collect=True):
    """Run the callables of ``variants`` (name -> fn(i)) interleaved, ABBA order.

    Each callable gets the repeat index (use it as a seed) and may return a
    value. Every variant first runs ``warmup`` untimed times. With ``collect``
    the garbage collector runs (untimed) before each timed call; leave it off
    for calls of a few milliseconds, where a full collection costs more than
    the call. Returns ``(times, values)``: per variant, the list of seconds
    and of returned values.
    """
    names = list(variants)
    for w in range(warmup):
        for name in names:
            variants[name](1000 + w)
    gc.collect()
    times = {name: [] for name in names}
    values = {name: [] for name in names}
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            if collect:
                gc.collect()
            start = time.perf_counter()
            value = variants[name](i)
            times[name].append(time.perf_counter() - start)
            values[name].append(value)
    return times, values


def median(values):
    return statistics.median(values)


# -- subprocesses ----------------------------------------------------------------


def child_env():
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def run_child(mode, timeout=600, env=None, **kwargs):
    """Run ``_child.py MODE`` in a fresh interpreter and return its JSON answer.

    ``env`` adds environment variables, such as ``KERAS_BACKEND``: Keras
    fixes its backend when it is first imported.
    """
    command = [sys.executable, str(HERE / "_child.py"), mode, json.dumps(kwargs)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**child_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"child {mode!r} failed (rc={done.returncode}): " + " | ".join(tail))
    return json.loads(lines[-1])


# -- machine ---------------------------------------------------------------------


def _version(module):
    try:
        return __import__(module).__version__
    except Exception as exc:  # reported, not raised
        return f"unavailable ({type(exc).__name__})"


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git():
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sktransfer"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"{head}{' + uncommitted changes in sktransfer/' if dirty else ''}" or "unknown"
    except OSError:
        return "unknown"


def machine():
    """Facts about this machine and the software versions, as (label, value) pairs."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return [
        ("date (UTC)", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("cpu", f"{_cpu_model()}, {os.cpu_count()} logical cores ({usable} usable)"),
        ("os", platform.platform()),
        ("python", platform.python_version()),
        ("tensorflow", _version("tensorflow")),
        ("keras", _version("keras")),
        ("scikit-learn", _version("sklearn")),
        ("numpy", _version("numpy")),
        ("sktransfer", f"{_version('sktransfer')} (git {_git()})"),
    ]


# -- formatting ------------------------------------------------------------------


def _seconds(value):
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _figure(row):
    if row.value is None:
        return "-"
    if row.unit == "x":
        return f"{row.value:.3f}"
    return f"{row.value:.3f} {row.unit}"


def _accuracy(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def rows_table(rows):
    header = ["#", "benchmark", "sktransfer", "baseline", "ratio", "target", "result", "n"]
    lines = [header]
    for row in rows:
        lines.append(
            [
                row.key,
                row.name,
                _seconds(row.sk) if row.unit == "x" else "-",
                _seconds(row.base) if row.unit == "x" else "-",
                _figure(row),
                row.target,
                row.status,
                "-" if row.n is None else str(row.n),
            ]
        )
    return lines


def comparison_table(comparisons, reference):
    header = ["estimator", "fit (median)", "sktransfer / this", "test accuracy", "n"]
    lines = [header]
    for item in comparisons:
        ratio = "-"
        if item.seconds and reference is not None and reference.seconds:
            ratio = f"{reference.seconds / item.seconds:.3f}"
        lines.append(
            [
                item.name,
                _seconds(item.seconds),
                ratio,
                _accuracy(item.accuracy),
                "-" if item.n is None else str(item.n),
            ]
        )
    return lines


def plain(table):
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    out = []
    for k, line in enumerate(table):
        out.append(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
        if k == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def markdown(table):
    def escape(cell):
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(escape(c) for c in table[0]) + " |"]
    out.append("|" + "|".join("---" for _ in table[0]) + "|")
    out.extend("| " + " | ".join(escape(c) for c in line) + " |" for line in table[1:])
    return "\n".join(out)

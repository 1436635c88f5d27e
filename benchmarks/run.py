"""Run the sktransfer benchmark suite and print (optionally write) the results.

Usage::

    python benchmarks/run.py                  # full run, about 5 minutes on 2 cores
    python benchmarks/run.py --quick          # smoke run, under 2 minutes
    python benchmarks/run.py --output docs/benchmarks.md
    python benchmarks/run.py --only 1,5,compare

Every figure is a ratio to a baseline measured in the same run (see
benchmarks/README.md). Missed targets do not change the exit status (the
table says PASS or MISS); it is 1 only when a benchmark could not run (ERROR).
"""

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Benchmark the checkout this script belongs to, even if another one is installed.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import _bench  # noqa: E402 - after the environment is set
import cases  # noqa: E402

QUICK_NOTE = " (fewer repeats and fits: a smoke run, noisier than the full run)"

BENCHMARKS = [
    ("1", "fine-tuning fit", cases.finetune, "fit"),
    ("1j", "fine-tuning fit on JAX", cases.finetune_jax, "fit"),
    ("2", "feature-extraction fit", cases.features, "features"),
    ("3", "distillation fit", cases.distill, "fit"),
    ("4", "GridSearchCV with memory", cases.grid_search, "grid"),
    ("4b", "GridSearchCV with memory, plain CNN (context)", cases.grid_search_conv, "grid"),
    ("4c", "GridSearchCV with memory, 4x-wide CNN (context)", cases.grid_search_wide, "grid"),
    ("5", "predict latency", cases.predict, "predict"),
    ("6", "import time", cases.import_time, "import"),
    ("7", "RSS growth per fit", cases.rss_growth, "rss"),
    ("8", "repeat fit", cases.repeat_fit, "repeat"),
    ("9", "frozen application backbone, first fit", cases.backbone_first_fit, "backbone"),
    ("10", "frozen application backbone, second fit", cases.backbone_second_fit, "backbone"),
    ("11", "probe fit", cases.probe, "fit"),
]


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and fits: a 1-2 minute smoke run"
    )
    parser.add_argument("--output", metavar="FILE", help="also write the results as markdown")
    parser.add_argument(
        "--only",
        metavar="KEYS",
        help="comma-separated benchmark numbers to run, 'compare' for the library comparison",
    )
    return parser.parse_args(argv)


def _command(argv):
    return " ".join(["python benchmarks/run.py", *argv])


def _error_row(key, name, exc):
    row = _bench.Row(key, name, "-", status="ERROR")
    row.note = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
    return row


def run(args):
    mode = "quick" if args.quick else "full"
    counts = cases.MODES[mode]
    only = None if args.only is None else {key.strip() for key in args.only.split(",")}
    rows, comparisons, task = [], [], ""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing warnings would drown the progress lines
    started = time.perf_counter()
    for key, name, function, count in BENCHMARKS:
        if only is not None and key not in only:
            continue
        print(f"[{time.perf_counter() - started:6.1f}s] {key}. {name} ...", flush=True)
        try:
            row = function(counts[count])
        except Exception as exc:  # a broken benchmark is a row, not a crash
            traceback.print_exc()
            row = _error_row(key, name, exc)
        print(f"         -> {row.status or '-'} {_bench._figure(row)}  {row.note}", flush=True)
        rows.append(row)
    if only is None or "compare" in only:
        print(f"[{time.perf_counter() - started:6.1f}s] library comparison ...", flush=True)
        try:
            comparisons, task = cases.compare(counts["compare"])
        except Exception as exc:
            traceback.print_exc()
            comparisons = [
                _bench.Comparison("comparison", note=f"ERROR {type(exc).__name__}: {exc}")
            ]
    elapsed = time.perf_counter() - started
    return mode, rows, comparisons, task, elapsed


def _notes(rows):
    return [f"{row.key}. {row.note}" for row in rows if row.note]


def render_text(mode, rows, comparisons, task, elapsed, command):
    out = [f"\nsktransfer benchmarks ({mode} mode, {elapsed:.0f} s): {command}\n"]
    for label, value in _bench.machine():
        out.append(f"  {label}: {value}")
    if rows:
        out += ["", _bench.plain(_bench.rows_table(rows)), ""]
        out += _notes(rows)
    if comparisons:
        reference = comparisons[0] if comparisons[0].seconds else None
        out += ["", f"Library comparison - {task}", ""]
        out.append(_bench.plain(_bench.comparison_table(comparisons, reference)))
        out += [""] + [f"{item.name}: {item.note}" for item in comparisons if item.note]
    return "\n".join(out)


def render_markdown(mode, rows, comparisons, task, elapsed, command):
    out = [
        "# Benchmarks",
        "",
        "Performance of sktransfer against baselines measured in the same run. Each",
        "timing is the median of interleaved repeats (ABBA order, after an untimed",
        "warm-up), and each figure is the ratio `sktransfer / baseline` of the two",
        "medians, so a noisy machine affects both sides alike. Row 7 is the only",
        "absolute figure (MiB of resident memory gained per fit). What each row",
        "measures is described in [benchmarks/README.md](../benchmarks/README.md).",
        "",
        "Produced by:",
        "",
        "```bash",
        f"TF_CPP_MIN_LOG_LEVEL=3 {command}",
        "```",
        "",
        f"Mode: **{mode}**{QUICK_NOTE if mode == 'quick' else ''}; total time {elapsed:.0f} s.",
        "",
        "## Machine",
        "",
    ]
    out += [f"- {label}: {value}" for label, value in _bench.machine()]
    if rows:
        passed = sum(row.status == "PASS" for row in rows)
        judged = sum(row.status in ("PASS", "MISS") for row in rows)
        out += [
            "",
            "## Targets",
            "",
            f"{passed} of {judged} judged rows meet their target.",
            "",
            _bench.markdown(_bench.rows_table(rows)),
            "",
            "Notes:",
            "",
        ]
        out += [f"- **{row.key}.** {row.note}" for row in rows if row.note]
    if comparisons:
        reference = comparisons[0] if comparisons[0].seconds else None
        out += [
            "",
            "## Comparison with other libraries",
            "",
            f"Task: {task}.",
            "",
            "Only the fit is timed. Accuracy is the mean ± standard deviation over the",
            "seeds of the repeats; `sktransfer / this` below 1 means sktransfer fits faster.",
            "These rows have no target.",
            "",
            _bench.markdown(_bench.comparison_table(comparisons, reference)),
            "",
        ]
        out += [f"- **{item.name}**: {item.note}" for item in comparisons if item.note]
    return "\n".join(out) + "\n"


COMMENTARY = "<!-- Hand-written commentary below: benchmarks/run.py --output keeps it. -->"


def _kept_commentary(path):
    """The hand-written part of an existing results file, from its marker on."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return ""
    at = text.find(COMMENTARY)
    return "" if at < 0 else "\n" + text[at:]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    command = _command(argv)
    result = run(args)
    print(render_text(*result, command))
    if args.output:
        kept = _kept_commentary(args.output)
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(render_markdown(*result, command) + kept)
        print(f"\nwrote {args.output}")
    _, rows, comparisons, _, _ = result
    broken = any(row.status == "ERROR" for row in rows) or any(
        item.note.startswith("ERROR") for item in comparisons
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

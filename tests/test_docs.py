"""The Markdown pages show their examples as code, and the README's first example runs."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILT = {"_build", "auto_examples", "generated"}
PAGES = sorted(
    [ROOT / "README.md"] + [p for p in (ROOT / "docs").rglob("*.md") if not BUILT & set(p.parts)]
)
FENCE = re.compile(r"^(`{3,}|~{3,})\s*(\S*)")


def _bare_prompts(text):
    """Line numbers of ``>>>`` lines outside a fenced ``pycon`` block."""
    bare, fence, language = [], None, None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence, language = opening[1], opening[2]
        elif fence is not None and line.strip().startswith(fence) and not line.strip(fence[0]):
            fence = None
        elif line.lstrip().startswith(">>>") and (fence is None or language != "pycon"):
            bare.append(number)
    return bare


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_are_in_pycon_fences(page):
    # MyST renders a bare ">>>" line as nested block quotes: the code can't be read.
    assert _bare_prompts(page.read_text(encoding="utf-8")) == []


def test_the_check_finds_bare_prompts_and_accepts_fenced_ones():
    assert _bare_prompts("text\n\n>>> 1 + 1\n2\n") == [3]
    assert _bare_prompts("```python\n>>> 1 + 1\n```\n") == [2]
    assert _bare_prompts("````pycon\n>>> 1 + 1\n2\n\n````\n>>> x\n") == [6]


def _ci_check():
    spec = importlib.util.spec_from_file_location(
        "check_rendered_docs", ROOT / ".ci" / "check_rendered_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check


def test_the_ci_check_of_the_built_html_tells_code_from_block_quotes(tmp_path):
    check = _ci_check()
    source, html = tmp_path / "docs", tmp_path / "html"
    source.mkdir()
    html.mkdir()
    (source / "page.md").write_text("```pycon\n>>> 1 + 1\n2\n\n```\n")
    # MyST's rendering of a bare prompt line, and of a fenced one.
    quoted = "<blockquote><div><blockquote><div><blockquote><div><p>1 + 1"
    code = '<div class="highlight"><pre><span class="gp">&gt;&gt;&gt; </span>1 + 1\n2</pre>'
    (html / "page.html").write_text(quoted)
    assert len(check(source, html)) == 2  # the block quotes, and the example not shown
    (html / "page.html").write_text(code + "<p>see &gt;&gt;&gt; here</p>")
    (problem,) = check(source, html)
    assert problem.endswith("'>>>' outside a code block")
    (html / "page.html").write_text(code + "<p>the prompt <code>&gt;&gt;&gt;</code></p>")
    assert check(source, html) == []


def _first_python_block(path):
    return re.search(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.M | re.S)[1]


def test_getting_started_shows_the_readme_example():
    readme = _first_python_block(ROOT / "README.md")
    assert _first_python_block(ROOT / "docs" / "getting_started.md") == readme


def test_the_readme_example_runs_as_written_and_leaves_the_environment_alone(tmp_path):
    # Saved after keras is imported: what TensorFlow does on import is not ours.
    state = (
        "(dict(os.environ), os.fstat(1).st_ino, os.fstat(2).st_ino, list(warnings.filters), "
        "logging.getLogger().handlers[:], logging.getLogger().level, "
        "logging.getLogger('tensorflow').level)"
    )
    script = (
        f"import logging, os, warnings\nimport keras\nbefore = {state}\n"
        f"{_first_python_block(ROOT / 'README.md')}\n"
        f"assert {state} == before, 'the example changed the environment'\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "target.keras").exists()
    assert re.match(r"0\.\d+\n\{.*\} [01]\.\d+\n$", done.stdout), done.stdout

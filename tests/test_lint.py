"""The code base stays ruff-clean (configuration in pyproject.toml)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "sktransfer", "tests", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _code_lines(source):
    """Line numbers that hold code (not comments or blank lines)."""
    import io
    import tokenize

    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT}
    skip |= {tokenize.DEDENT, tokenize.ENDMARKER}
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines


def test_functions_fit_on_one_screen():
    """No function of the package has more than 60 lines of code (docstrings aside)."""
    import ast

    long = []
    for path in sorted((ROOT / "sktransfer").glob("*.py")):
        source = path.read_text()
        code = _code_lines(source)
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = set()
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                doc = set(range(first.lineno, first.end_lineno + 1))
            lines = set(range(node.lineno, node.end_lineno + 1)) & code - doc
            if len(lines) > 60:
                long.append(f"{path.name}:{node.lineno} {node.name} ({len(lines)} lines)")
    assert not long, long

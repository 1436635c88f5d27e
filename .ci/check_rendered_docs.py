"""Fail when the built documentation shows a Python example outside a code block.

MyST reads a bare ``>>> code`` line of a Markdown page as three nested block
quotes: the prompts vanish and the lines run together, and Sphinx reports
nothing. So the built HTML is checked against the sources:

- every prompt line (``>>>``) of a Markdown page appears, prompt included,
  inside a ``<pre>`` block of the page built from it;
- no page shows ``>>>`` outside ``<pre>`` and inline ``<code>``, or block
  quotes nested three deep.

Usage: ``python .ci/check_rendered_docs.py [SOURCE_DIR [HTML_DIR]]`` (default
``docs`` and ``docs/_build/html``); exits with 1 and lists each problem.
"""

import sys
from html.parser import HTMLParser
from pathlib import Path

# Literal text: a prompt there is an example shown as code.
LITERAL = {"pre", "code"}
# Never rendered as text.
HIDDEN = {"script", "style"}


class _Page(HTMLParser):
    """The text of a page's ``<pre>`` blocks and what it shows outside them."""

    def __init__(self):
        super().__init__()
        self.open = dict.fromkeys([*LITERAL, *HIDDEN, "blockquote"], 0)
        self.pre_blocks = []
        self.problems = []

    def handle_starttag(self, tag, attrs):
        if tag in self.open:
            self.open[tag] += 1
            if tag == "pre" and self.open["pre"] == 1:
                self.pre_blocks.append("")
            if tag == "blockquote" and self.open["blockquote"] == 3:
                self.problems.append(f"line {self.getpos()[0]}: block quotes nested three deep")

    def handle_endtag(self, tag):
        if self.open.get(tag):
            self.open[tag] -= 1

    def handle_data(self, data):
        if self.open["pre"]:
            self.pre_blocks[-1] += data
        elif ">>>" in data and not any(self.open[tag] for tag in (*LITERAL, *HIDDEN)):
            self.problems.append(f"line {self.getpos()[0]}: '>>>' outside a code block")


def _parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def check(source_dir, html_dir):
    """Return the problems found, one message each."""
    source_dir, html_dir = Path(source_dir), Path(html_dir)
    problems = []
    pages = sorted(p for p in html_dir.rglob("*.html") if "_sources" not in p.parts)
    if not pages:
        return [f"{html_dir}: no HTML pages (build the documentation first)"]
    for path in pages:
        problems += [f"{path}: {problem}" for problem in _parse(path).problems]
    for source in sorted(source_dir.rglob("*.md")):
        if html_dir in source.parents:
            continue
        prompts = [
            line.strip()
            for line in source.read_text(encoding="utf-8").splitlines()
            if line.lstrip().startswith(">>>")
        ]
        built = html_dir / source.relative_to(source_dir).with_suffix(".html")
        if not prompts or not built.exists():
            continue
        shown = {line.strip() for block in _parse(built).pre_blocks for line in block.splitlines()}
        problems += [
            f"{built}: example line not shown as code: {line!r}"
            for line in prompts
            if line not in shown
        ]
    return problems


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    source_dir = args[0] if args else "docs"
    html_dir = args[1] if len(args) > 1 else str(Path(source_dir) / "_build" / "html")
    problems = check(source_dir, html_dir)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s): write examples in fenced ```pycon blocks")
        return 1
    print(f"rendered documentation in {html_dir}: every example is shown as code")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

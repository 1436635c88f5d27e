"""Sphinx configuration of the sktransfer documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
Nothing is downloaded at build time: no intersphinx, no remote assets, and
the gallery examples train their own small source models.
"""

import os
import re
import sys
from pathlib import Path

from docutils import nodes

# Keep TensorFlow's C++ start-up messages out of the gallery's captured output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import sktransfer  # noqa: E402

project = "sktransfer"
author = "sktransfer developers"
copyright = "sktransfer developers"  # noqa: A001
version = release = sktransfer.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/GALLERY_HEADER.rst"]
templates_path = ["_templates"]

# -- autodoc / autosummary / numpydoc ------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- MyST ------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# -- sphinx-gallery --------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # quickstart.py is a plain script run from the command line (see README).
    "ignore_pattern": r"quickstart\.py|__init__\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "show_memory": False,
    "min_reported_time": 1,
}

# -- HTML ------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sktransfer {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navbar_align": "left",
    "show_prev_next": True,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "getting_started": []}


# -- Hooks -------------------------------------------------------------------------
# Inherited methods (score, get_params, set_output, set_fit_request, ...) carry
# scikit-learn's docstrings, whose :ref: and :term: roles point into
# scikit-learn's own documentation. Without intersphinx (the build must not
# download), they become plain text.
_SKLEARN_ROLE = re.compile(r":(?:ref|term):`([^`<]*?)\s*(?:<[^`>]*>)?`")


def _plain_sklearn_roles(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", None) or ""
    if module.split(".")[0] == "sklearn":
        text = _SKLEARN_ROLE.sub(lambda m: m.group(1), "\n".join(lines))
        lines[:] = text.split("\n")


# A shape such as "(n_samples, n_features_in_)" in a numpydoc type reads as a
# reStructuredText reference to a target "n_features_in" (a name ending in
# "_"); quote such names, as scikit-learn's docstrings do by hand.
_SHAPE = re.compile(r"of shape \(([^)]*)\)")
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\w])([A-Za-z]\w*_)(?![`\w])")


def _quote_shape_attributes(app, what, name, obj, options, lines):
    if name.split(".")[0] == "sktransfer":
        for i, line in enumerate(lines):
            lines[i] = _SHAPE.sub(
                lambda m: "of shape (" + _TRAILING_UNDERSCORE.sub(r"``\1``", m.group(1)) + ")",
                line,
            )


# docs/benchmarks.md is written by benchmarks/run.py and links to
# benchmarks/README.md, which lies outside the documentation source; the site
# includes that README as its own page.
def _benchmarks_readme_link(app, docname, source):
    if docname == "benchmarks":
        source[0] = source[0].replace("(../benchmarks/README.md)", "(benchmarks_methodology.md)")


# A ```pycon block of a Markdown page ends with a blank line, so that doctest
# (pytest's --doctest-glob) stops reading the expected output before the
# closing fence; the page need not show that line.
def _trim_pycon_blocks(app, doctree):
    for node in doctree.findall(nodes.literal_block):
        text = node.astext()
        if node.get("language") == "pycon" and text.endswith("\n") and node.rawsource == text:
            node.rawsource = text.rstrip("\n")
            node[:] = [nodes.Text(node.rawsource)]


def setup(app):
    app.connect("doctree-read", _trim_pycon_blocks)
    app.connect("autodoc-process-docstring", _plain_sklearn_roles)
    app.connect("autodoc-process-docstring", _quote_shape_attributes, priority=400)
    app.connect("source-read", _benchmarks_readme_link)

# pytest collects docs/ for the doctests of the Markdown pages (testpaths in
# pyproject.toml). The Sphinx configuration and the build outputs are not
# tests: the gallery's copies of the examples would run every example when
# imported. (This file sits at the root, not in docs/: a second conftest.py
# outside a package would clash with tests/conftest.py under --doctest-modules.)
collect_ignore = ["docs/conf.py"]
collect_ignore_glob = ["docs/_build/*", "docs/auto_examples/*", "docs/generated/*"]

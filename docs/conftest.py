# pytest collects docs/ for the doctests of the Markdown pages. The Sphinx
# configuration and the build outputs (the gallery's copies of the examples,
# which would run every example on import) are not tests.
collect_ignore = ["conf.py"]
collect_ignore_glob = ["_build/*", "auto_examples/*", "generated/*"]

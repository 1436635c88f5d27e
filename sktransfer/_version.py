"""The version of sktransfer, in one place for the package and its saved files."""

__version__ = "0.1.0"

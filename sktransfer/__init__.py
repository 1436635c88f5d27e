"""Transfer learning from Keras models as scikit-learn estimators."""

from ._reuse import clear_caches
from ._version import __version__
from .estimators import SourceData, TransferClassifier, TransferRegressor
from .features import SourceFeatures
from .persistence import load
from .plotting import HistoryDisplay, TransferGainDisplay
from .selection import h_score, leep, logme, rank_sources

__all__ = [
    "HistoryDisplay",
    "SourceData",
    "SourceFeatures",
    "TransferClassifier",
    "TransferGainDisplay",
    "TransferRegressor",
    "__version__",
    "clear_caches",
    "h_score",
    "leep",
    "load",
    "logme",
    "rank_sources",
]

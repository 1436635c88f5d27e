"""Transfer learning from Keras models as scikit-learn estimators."""

from .estimators import SourceData, TransferClassifier, TransferRegressor
from .features import SourceFeatures
from .persistence import load
from .plotting import HistoryDisplay, TransferGainDisplay
from .selection import h_score, leep, logme, rank_sources

__version__ = "0.1.0"

__all__ = [
    "HistoryDisplay",
    "SourceData",
    "SourceFeatures",
    "TransferClassifier",
    "TransferGainDisplay",
    "TransferRegressor",
    "__version__",
    "h_score",
    "leep",
    "load",
    "logme",
    "rank_sources",
]

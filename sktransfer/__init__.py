"""Transfer learning from Keras models as scikit-learn estimators."""

from .estimators import SourceData, TransferClassifier, TransferRegressor
from .features import SourceFeatures
from .persistence import load
from .selection import h_score, leep, logme, rank_sources

__version__ = "0.1.0"

__all__ = [
    "SourceData",
    "SourceFeatures",
    "TransferClassifier",
    "TransferRegressor",
    "__version__",
    "h_score",
    "leep",
    "load",
    "logme",
    "rank_sources",
]

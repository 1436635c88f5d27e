"""Transfer learning from Keras models as scikit-learn estimators."""

from .estimators import TransferClassifier, TransferRegressor

__version__ = "0.1.0"

__all__ = ["TransferClassifier", "TransferRegressor", "__version__"]

"""Drop-in ``torch.optim.Optimizer`` classes. The math of each lives in :mod:`adamlab.functional`."""

from adamlab.optim.adagrad import Adagrad
from adamlab.optim.adam import Adam, Adamax
from adamlab.optim.averaging import TemporalAveraging
from adamlab.optim.base import AdamlabOptimizer
from adamlab.optim.dissected import MSSD, MSSDVA, MSVAG, SSD, SVAG, Dissected
from adamlab.optim.registry import make_optimizer
from adamlab.optim.rmsprop import RMSprop
from adamlab.optim.sgd import SGD

__all__ = [
    "MSSD", "MSSDVA", "MSVAG", "SGD", "SSD", "SVAG", "Adagrad", "Adam", "AdamlabOptimizer", "Adamax",
    "Dissected", "RMSprop", "TemporalAveraging", "make_optimizer",
]

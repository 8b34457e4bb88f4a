"""Models: Sequential, functional and subclassed, and the training loop."""
from kerasckpt.models.functional import Functional
from kerasckpt.models.model import Model
from kerasckpt.models.sequential import Sequential

__all__ = ["Model", "Sequential", "Functional"]

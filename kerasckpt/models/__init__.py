"""Models: Sequential, functional and subclassed, and the training loop."""
from kerasckpt.models.functional import Functional
from kerasckpt.models.model import Model
from kerasckpt.models.sequential import Sequential
from kerasckpt.saving.api import load_model

__all__ = ["Model", "Sequential", "Functional", "load_model"]

"""Models: Sequential, functional and subclassed, and the training loop."""
from kerasckpt._lazy import lazy_attributes
from kerasckpt.models.functional import Functional
from kerasckpt.models.model import Model
from kerasckpt.models.sequential import Sequential

__all__ = ["Model", "Sequential", "Functional", "load_model"]

__getattr__, __dir__ = lazy_attributes(__name__, globals(), {"load_model": "kerasckpt.saving.api"})

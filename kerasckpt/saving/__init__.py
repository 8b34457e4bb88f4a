"""Saving whole models and weights: `.keras`, `.weights.h5` and legacy `.h5`, interchangeable with Keras 3."""
from kerasckpt._registry import register_serializable
from kerasckpt.saving.api import load_model, load_weights, save_model, save_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "register_serializable"]

"""Saving whole models and weights: `.keras`, `.weights.h5` and legacy `.h5`, interchangeable with Keras 3."""
from kerasckpt._lazy import lazy_attributes
from kerasckpt._registry import register_serializable

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "register_serializable"]

# The formats (h5py, zipfile, json) load on the first save or load, not with `import kerasckpt`.
_SUBMODULES = ("api", "h5", "h5file", "keras_zip", "legacy_h5", "serialization")
__getattr__, __dir__ = lazy_attributes(__name__, globals(), {
    **{name: "kerasckpt.saving.api" for name in ("save_model", "load_model", "save_weights", "load_weights")},
    **{name: f"kerasckpt.saving.{name}" for name in _SUBMODULES}})

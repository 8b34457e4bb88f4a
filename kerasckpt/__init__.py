"""kerasckpt: a small NumPy deep-learning stack in the style of Keras 3, with checkpointing done right."""
from kerasckpt import (activations, callbacks, data, errors, initializers, layers, losses, metrics, models, ops,
                       optimizers, random, saving, utils)
from kerasckpt._lazy import lazy_attributes
from kerasckpt.autograd import GradientTape, Tensor
from kerasckpt.layers import Input
from kerasckpt.models import Model, Sequential
from kerasckpt.variables import Variable

__version__ = "0.1.0"

__all__ = ["Sequential", "Model", "Input", "Variable", "GradientTape", "Tensor", "Checkpoint", "CheckpointManager",
           "CheckpointOptions", "init_from_checkpoint", "latest_checkpoint", "list_variables", "load_checkpoint",
           "load_variable", "layers", "ops", "activations", "initializers", "losses", "metrics", "optimizers",
           "callbacks", "checkpoint", "models", "saving", "utils", "errors", "random", "data"]

# Loaded on first use: the tensor-bundle format and its file machinery, which a script that only trains never
# touches. Every subpackage that registers serializable classes (layers, losses, metrics, optimizers, models) is
# imported above, so the registry is complete after `import kerasckpt`.
__getattr__, __dir__ = lazy_attributes(__name__, globals(), {
    "checkpoint": "kerasckpt.checkpoint",
    **{name: "kerasckpt.checkpoint" for name in ("Checkpoint", "CheckpointManager", "CheckpointOptions",
                                                 "init_from_checkpoint", "latest_checkpoint", "list_variables",
                                                 "load_checkpoint", "load_variable")}})

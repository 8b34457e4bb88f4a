"""kerasckpt: a small NumPy deep-learning stack in the style of Keras 3, with checkpointing done right."""
from kerasckpt import activations, errors, initializers, layers, losses, metrics, ops, optimizers, random, utils
from kerasckpt import callbacks, checkpoint, models, saving
from kerasckpt.autograd import GradientTape, Tensor
from kerasckpt.checkpoint import (Checkpoint, CheckpointManager, CheckpointOptions, init_from_checkpoint,
                                  latest_checkpoint, list_variables, load_checkpoint, load_variable)
from kerasckpt.layers import Input
from kerasckpt.models import Model, Sequential
from kerasckpt.variables import Variable

__version__ = "0.1.0"

__all__ = ["Sequential", "Model", "Input", "Variable", "GradientTape", "Tensor", "Checkpoint", "CheckpointManager",
           "CheckpointOptions", "init_from_checkpoint", "latest_checkpoint", "list_variables", "load_checkpoint",
           "load_variable", "layers", "ops", "activations", "initializers", "losses", "metrics", "optimizers",
           "callbacks", "checkpoint", "models", "saving", "utils", "errors", "random"]

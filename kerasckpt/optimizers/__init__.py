"""Optimizers with Keras 3's arguments, variables and update rules: SGD, Adam, AdamW, RMSprop."""
from kerasckpt.optimizers import schedules
from kerasckpt.optimizers.adam import Adam, AdamW
from kerasckpt.optimizers.base import Optimizer, deserialize, get, serialize
from kerasckpt.optimizers.rmsprop import RMSprop
from kerasckpt.optimizers.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "schedules", "get", "serialize", "deserialize"]

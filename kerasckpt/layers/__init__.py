"""Layers: the building blocks of models."""
from kerasckpt.layers.base import KerasTensor, Layer
from kerasckpt.layers.core import Activation, Dense, Dropout, Flatten
from kerasckpt.layers.embedding import Embedding
from kerasckpt.layers.input_layer import Input, InputLayer
from kerasckpt.layers.normalization import BatchNormalization

__all__ = ["Layer", "InputLayer", "Input", "Dense", "Activation", "Dropout", "BatchNormalization", "Flatten",
           "KerasTensor", "Embedding"]

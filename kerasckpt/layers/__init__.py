"""Layers: the building blocks of models."""
from kerasckpt.layers.attention import MultiHeadAttention
from kerasckpt.layers.base import KerasTensor, Layer
from kerasckpt.layers.core import Activation, Dense, Dropout, Flatten
from kerasckpt.layers.einsum_dense import EinsumDense
from kerasckpt.layers.embedding import Embedding
from kerasckpt.layers.input_layer import Input, InputLayer
from kerasckpt.layers.normalization import BatchNormalization
from kerasckpt.layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from kerasckpt.layers.regularization import SpatialDropout1D
from kerasckpt.layers.wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "InputLayer", "Input", "Dense", "Activation", "Dropout", "BatchNormalization", "Flatten",
           "KerasTensor", "Embedding", "RNN", "SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell", "GRUCell",
           "Bidirectional", "TimeDistributed", "SpatialDropout1D",
           "EinsumDense", "MultiHeadAttention"]

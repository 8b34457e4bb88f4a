"""Layers: the building blocks of models."""
from kerasckpt.layers.activations import LeakyReLU, ReLU, Softmax
from kerasckpt.layers.base import KerasTensor, Layer
from kerasckpt.layers.convolution import Conv1D, Conv2D, Conv2DTranspose
from kerasckpt.layers.core import Activation, Dense, Dropout, Flatten
from kerasckpt.layers.embedding import Embedding
from kerasckpt.layers.input_layer import Input, InputLayer
from kerasckpt.layers.merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add, average,
                                      concatenate, maximum, minimum, multiply, subtract)
from kerasckpt.layers.normalization import BatchNormalization, LayerNormalization
from kerasckpt.layers.preprocessing import Rescaling
from kerasckpt.layers.reshaping import Permute, RepeatVector, Reshape, UpSampling2D, ZeroPadding2D
from kerasckpt.layers.pooling import (AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D,
                                      GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPooling1D,
                                      MaxPooling2D)

__all__ = ["Layer", "InputLayer", "Input", "Dense", "Activation", "Dropout", "BatchNormalization", "Flatten",
           "KerasTensor", "Embedding",
           # convolution
           "Conv1D", "Conv2D", "Conv2DTranspose",
           # reshaping and preprocessing
           "Reshape", "Permute", "RepeatVector", "ZeroPadding2D", "UpSampling2D", "Rescaling",
           # activations
           "ReLU", "LeakyReLU", "Softmax",
           # normalization
           "LayerNormalization",
           # pooling
           "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
           # merging
           "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "add", "subtract",
           "multiply", "average", "maximum", "minimum", "concatenate"]

"""get_config() of every layer: the keys and values Keras 3 writes, round trips, and Keras's configs read back."""
import json

import pytest

import kerasckpt
from kerasckpt import layers

# class name -> (constructor arguments, an input shape (a list of shapes for merges))
CASES = {
    "Conv1D": ({"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2, "activation": "relu"},
               (None, 9, 2)),
    "Conv2D": ({"filters": 6, "kernel_size": (3, 2), "strides": 2, "padding": "same", "groups": 2, "use_bias": False},
               (None, 8, 7, 4)),
    "Conv2DTranspose": ({"filters": 3, "kernel_size": 3, "strides": 2, "output_padding": 1, "padding": "same"},
                        (None, 4, 4, 2)),
    "MaxPooling1D": ({"pool_size": 3, "strides": 1, "padding": "same"}, (None, 7, 2)),
    "MaxPooling2D": ({"pool_size": (2, 3)}, (None, 6, 6, 2)),
    "AveragePooling1D": ({"pool_size": 2, "data_format": "channels_first"}, (None, 2, 7)),
    "AveragePooling2D": ({"pool_size": 2, "strides": (1, 2)}, (None, 6, 6, 2)),
    "GlobalMaxPooling1D": ({"keepdims": True}, (None, 7, 2)),
    "GlobalMaxPooling2D": ({}, (None, 5, 5, 2)),
    "GlobalAveragePooling1D": ({"data_format": "channels_first"}, (None, 2, 7)),
    "GlobalAveragePooling2D": ({"keepdims": True}, (None, 5, 5, 2)),
    "ZeroPadding2D": ({"padding": ((1, 2), (3, 0))}, (None, 5, 5, 2)),
    "UpSampling2D": ({"size": 3}, (None, 5, 5, 2)),
    "LayerNormalization": ({"axis": [-2, -1], "epsilon": 1e-5, "center": False}, (None, 5, 3)),
    "Softmax": ({"axis": 1}, (None, 4, 2)),
    "ReLU": ({"max_value": 6.0, "negative_slope": 0.1, "threshold": 0.5}, (None, 4)),
    "LeakyReLU": ({"negative_slope": 0.05}, (None, 4)),
    "Reshape": ({"target_shape": (2, -1)}, (None, 4)),
    "Permute": ({"dims": (2, 1)}, (None, 4, 3)),
    "RepeatVector": ({"n": 3}, (None, 4)),
    "Rescaling": ({"scale": 1 / 255.0, "offset": -1.0}, (None, 4)),
    "Concatenate": ({"axis": 1}, [(None, 4, 2), (None, 3, 2)]),
    "Add": ({}, [(None, 4), (None, 4)]),
    "Subtract": ({}, [(None, 4), (None, 4)]),
    "Multiply": ({}, [(None, 4), (None, 4)]),
    "Average": ({}, [(None, 4), (None, 4)]),
    "Maximum": ({}, [(None, 4), (None, 4)]),
    "Minimum": ({}, [(None, 4), (None, 4)]),
}


def _plain(config):
    """A config as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config))


def _make(lib, name, built):
    kwargs, shape = CASES[name]
    layer = getattr(lib.layers, name)(name=f"my_{name.lower()}", **kwargs)
    if built:
        layer.build(shape)
    return layer


@pytest.mark.parametrize("name", sorted(CASES))
def test_get_config_from_config_round_trip(name):
    layer = _make(kerasckpt, name, built=True)
    config = layer.get_config()
    clone = type(layer).from_config(_plain(config))
    assert _plain(clone.get_config()) == _plain(config)
    assert clone.name == layer.name


@pytest.mark.keras
@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "built"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_config_equals_kerass(name, built):
    keras = pytest.importorskip("keras")
    ours, theirs = _make(kerasckpt, name, built), _make(keras, name, built)
    assert _plain(ours.get_config()) == _plain(theirs.get_config())
    assert list(ours.get_config()) == list(theirs.get_config())  # the same key order, as files show it
    assert _plain(type(ours).from_config(_plain(theirs.get_config())).get_config()) == _plain(theirs.get_config())
    assert _plain(type(theirs).from_config(_plain(ours.get_config())).get_config()) == _plain(ours.get_config())
    assert ours.built == theirs.built  # pooling, activations and Reshape are built at construction, as in Keras
    assert (ours.get_build_config() is None) == (theirs.get_build_config() is None)

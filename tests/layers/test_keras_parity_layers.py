"""Each layer's outputs and gradients (inputs and weights) against Keras 3 on the torch backend, same weights."""
import numpy as np
import pytest

from .keras_oracle import compare_with_keras

keras = pytest.importorskip("keras")
pytest.importorskip("torch")
if keras.backend.backend() != "torch":
    pytest.skip("the gradient oracle needs Keras on the torch backend", allow_module_level=True)

CASES = [
    # convolution
    ("Conv1D", {"filters": 4, "kernel_size": 3}, [(2, 9, 3)]),
    ("Conv1D", {"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, [(2, 9, 3)]),
    ("Conv1D", {"filters": 6, "kernel_size": 2, "strides": 2, "padding": "same", "groups": 3}, [(2, 7, 3)]),
    ("Conv1D", {"filters": 3, "kernel_size": 3, "data_format": "channels_first", "activation": "relu"}, [(2, 2, 8)]),
    ("Conv2D", {"filters": 4, "kernel_size": 3, "activation": "relu"}, [(2, 7, 6, 3)]),
    ("Conv2D", {"filters": 5, "kernel_size": (3, 2), "strides": (2, 3), "padding": "same"}, [(2, 8, 7, 2)]),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "dilation_rate": (2, 1), "padding": "same", "use_bias": False},
     [(1, 9, 5, 3)]),
    ("Conv2D", {"filters": 4, "kernel_size": 2, "groups": 2, "data_format": "channels_first"}, [(2, 4, 5, 5)]),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3}, [(2, 4, 5, 2)]),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, [(2, 4, 5, 2)]),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": (2, 3), "strides": (3, 2)}, [(2, 3, 4, 2)]),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1, "padding": "same"},
     [(1, 3, 4, 2)]),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "data_format": "channels_first"},
     [(1, 3, 4, 5)]),
    # reshaping and preprocessing
    ("Reshape", {"target_shape": (3, -1)}, [(2, 12)]),
    ("Permute", {"dims": (2, 3, 1)}, [(2, 3, 4, 5)]),
    ("RepeatVector", {"n": 3}, [(2, 5)]),
    ("ZeroPadding2D", {}, [(2, 3, 4, 2)]),
    ("ZeroPadding2D", {"padding": ((1, 2), (0, 3)), "data_format": "channels_first"}, [(2, 2, 3, 4)]),
    ("UpSampling2D", {"size": (2, 3)}, [(2, 3, 4, 2)]),
    ("UpSampling2D", {"data_format": "channels_first"}, [(1, 2, 3, 3)]),
    ("Rescaling", {"scale": 1.0 / 255, "offset": -0.5}, [(2, 4, 3)]),
    # normalization
    ("LayerNormalization", {}, [(3, 5)]),
    ("LayerNormalization", {"axis": [1, 2], "epsilon": 1e-5}, [(2, 3, 4)]),
    ("LayerNormalization", {"axis": 1, "center": False}, [(2, 5)]),  # Keras-torch fails on inner axes
    ("LayerNormalization", {"scale": False}, [(2, 3, 4)]),
    # activations
    ("ReLU", {}, [(3, 7)]),
    ("ReLU", {"max_value": 0.8, "negative_slope": 0.1, "threshold": 0.3}, [(3, 7)]),
    ("ReLU", {"negative_slope": 0.2}, [(2, 3, 5)]),
    ("ReLU", {"max_value": 6.0}, [(2, 9)]),
    ("LeakyReLU", {}, [(4, 5)]),
    ("LeakyReLU", {"negative_slope": 0.01}, [(2, 3, 3)]),
    ("Softmax", {}, [(3, 5)]),
    ("Softmax", {"axis": 1}, [(2, 4, 3)]),
    ("Softmax", {"axis": [1, 2]}, [(2, 4, 3)]),
    # pooling
    ("MaxPooling1D", {}, [(2, 7, 3)]),
    ("MaxPooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, [(2, 8, 3)]),
    ("MaxPooling2D", {}, [(2, 5, 6, 3)]),
    ("MaxPooling2D", {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"}, [(2, 7, 5, 2)]),
    ("MaxPooling2D", {"pool_size": 2, "data_format": "channels_first"}, [(2, 3, 5, 4)]),
    ("AveragePooling1D", {"pool_size": 2}, [(2, 7, 3)]),
    ("AveragePooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}, [(2, 6, 2)]),
    ("AveragePooling2D", {"pool_size": 2}, [(2, 5, 7, 3)]),
    ("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, [(1, 7, 5, 2)]),
    ("GlobalAveragePooling1D", {}, [(3, 5, 4)]),
    ("GlobalAveragePooling1D", {"data_format": "channels_first", "keepdims": True}, [(3, 4, 5)]),
    ("GlobalAveragePooling2D", {}, [(2, 3, 5, 4)]),
    ("GlobalMaxPooling1D", {"keepdims": True}, [(3, 5, 4)]),
    ("GlobalMaxPooling2D", {"data_format": "channels_first"}, [(2, 4, 3, 5)]),
    # merging
    ("Add", {}, [(3, 4), (3, 4), (3, 4)]),
    ("Add", {}, [(2, 3, 4), (2, 4)]),
    ("Subtract", {}, [(3, 4), (3, 4)]),
    ("Multiply", {}, [(3, 1, 4), (3, 5, 4)]),
    ("Average", {}, [(3, 4), (3, 4)]),
    ("Maximum", {}, [(3, 4), (3, 4), (3, 4)]),
    ("Minimum", {}, [(2, 3, 4), (2, 3, 4)]),
    ("Concatenate", {}, [(3, 4), (3, 2)]),
    ("Concatenate", {"axis": 1}, [(2, 3, 4), (2, 1, 4), (2, 2, 4)]),
]


@pytest.mark.keras
@pytest.mark.parametrize("class_name, config, shapes", CASES, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_layer_matches_keras(class_name, config, shapes):
    compare_with_keras(keras, class_name, config, shapes)


@pytest.mark.keras
def test_global_average_pooling_1d_with_a_mask_matches_keras():
    mask = np.array([[True, True, False, True, False], [False, True, True, True, True], [True] * 5])
    compare_with_keras(keras, "GlobalAveragePooling1D", {}, [(3, 5, 4)], {"mask": mask})


@pytest.mark.keras
def test_softmax_with_a_mask_matches_keras():
    mask = np.array([[True, False, True, True, False], [False] * 5, [True] * 5])
    compare_with_keras(keras, "Softmax", {}, [(3, 5)], {"mask": mask})


def _masked_model(lib, merge):
    """Token ids -> Embedding(mask_zero) -> two Dense branches -> merge -> masked pooling, softmax, concat."""
    L = lib.layers
    tokens = L.Input((6,), dtype="int32")
    embedded = L.Embedding(7, 4, mask_zero=True)(tokens)
    left, right = L.Dense(4, name="left")(embedded), L.Dense(4, activation="tanh", name="right")(embedded)
    merged = getattr(L, merge)()([left, right])
    scores = L.Softmax()(L.Dense(1, name="score")(merged)[..., 0])  # an op node: the mask does not follow it
    pooled = L.GlobalAveragePooling1D()(L.LayerNormalization()(merged))
    joined = L.Concatenate()([pooled, scores])
    return lib.Model(tokens, joined)


@pytest.mark.keras
@pytest.mark.parametrize("merge", ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"])
def test_masks_through_merges_pooling_and_normalization_match_keras(merge):
    import kerasckpt
    ours, theirs = _masked_model(kerasckpt, merge), _masked_model(keras, merge)
    rng = np.random.default_rng(3)
    ours.set_weights([rng.normal(size=w.shape).astype("float32") for w in ours.get_weights()])
    theirs.set_weights(ours.get_weights())
    tokens = np.array([[1, 2, 0, 3, 0, 0], [0, 0, 4, 5, 6, 1], [2, 2, 2, 2, 2, 2]], "int32")
    np.testing.assert_allclose(ours.predict(tokens, verbose=0), theirs.predict(tokens, verbose=0), atol=2e-5)

"""Bad arguments and inputs of the new layers: the class Keras raises, with the value and what to do."""
import numpy as np
import pytest

from kerasckpt import layers

BAD = [
    (lambda: layers.Conv2D(0, 3), ValueError, "filters=0"),
    (lambda: layers.Conv2D(4, 3, groups=3), ValueError, "divisible by the number of groups"),
    (lambda: layers.Conv2D(4, (3, 3, 3)), ValueError, "kernel_size"),
    (lambda: layers.Conv2D(4, 3, padding="causal"), ValueError, "padding"),
    (lambda: layers.Conv1D(4, 3, strides=2, dilation_rate=2), ValueError, "dilation_rate > 1"),
    (lambda: layers.Conv2D(4, 3, data_format="NHWC"), ValueError, "data_format"),
    (lambda: layers.Conv2D(4, 3, kernel_regularizer="l2"), ValueError, "kernel_regularizer"),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=2), ValueError, "output_padding"),
    (lambda: layers.MaxPooling2D(pool_size=0), ValueError, "pool_size"),
    (lambda: layers.AveragePooling1D(2, padding="full"), ValueError, "padding"),
    (lambda: layers.ZeroPadding2D(padding=(1, 2, 3)), ValueError, "padding"),
    (lambda: layers.UpSampling2D(interpolation="bilinear"), ValueError, "nearest"),
    (lambda: layers.ReLU(max_value=-1.0), ValueError, "max_value"),
    (lambda: layers.LeakyReLU(negative_slope=-0.1), ValueError, "negative_slope"),
    (lambda: layers.LayerNormalization(axis="last"), TypeError, "axis"),
    (lambda: layers.Reshape((2, -1, -1)), ValueError, "target_shape"),
    (lambda: layers.Permute((1, 3)), ValueError, "dims"),
    (lambda: layers.RepeatVector(2.5), TypeError, "integer"),
    (lambda: layers.RepeatVector(0), ValueError, "n=0"),
]


@pytest.mark.parametrize("make, error, match", BAD)
def test_bad_arguments_are_refused_naming_them(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_conv_called_with_other_channels_than_it_was_built_for_names_the_layer():
    conv = layers.Conv2D(2, 3, name="features")
    conv(np.zeros((1, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match="'features' was built for inputs of rank 4 with 3 channels"):
        conv(np.zeros((1, 5, 5, 4), "float32"))


def test_merge_layers_need_a_list_of_compatible_shapes():
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Add()(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="incompatible shapes"):
        layers.Add()([np.zeros((2, 3), "float32"), np.zeros((2, 4), "float32")])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([np.zeros((2, 3), "float32")] * 3)
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate(axis=1)([np.zeros((2, 3, 4), "float32"), np.zeros((2, 3, 5), "float32")])


def test_reshape_to_a_different_size_names_both_shapes():
    with pytest.raises(ValueError, match=r"target shape \(5,\).*input shape \(6,\)"):
        layers.Reshape((5,))(np.zeros((2, 6), "float32"))

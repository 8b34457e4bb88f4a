"""kerasckpt.utils: to_categorical and snake_case as Keras's."""
import numpy as np
import pytest

from kerasckpt import utils


@pytest.mark.parametrize("labels, classes", [([0, 2, 1], None), ([[1], [0], [3]], 5), (np.array([[0, 1], [1, 0]]), 2)])
def test_to_categorical_matches_keras(labels, classes):
    expected = np.eye(classes or int(np.max(labels)) + 1)[np.asarray(labels).reshape(-1)]
    got = utils.to_categorical(labels, classes)
    assert got.dtype == np.float64 and got.reshape(-1, got.shape[-1]).tolist() == expected.tolist()
    keras = pytest.importorskip("keras")
    np.testing.assert_array_equal(got, keras.utils.to_categorical(labels, classes))


def test_to_categorical_names_labels_out_of_range():
    with pytest.raises(ValueError, match="num_classes > 3"):
        utils.to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="integer class labels"):
        utils.to_categorical([0.5, 1.0])


@pytest.mark.parametrize("name, snake", [("Conv2D", "conv2d"), ("Conv2DTranspose", "conv2d_transpose"),
                                         ("ReLU", "re_lu"), ("GlobalAveragePooling1D", "global_average_pooling1d"),
                                         ("RMSprop", "rm_sprop"), ("BatchNormalization", "batch_normalization")])
def test_snake_case_is_kerass_default_name_rule(name, snake):
    """Default layer names and the class-based keys of .weights.h5 files come from this rule."""
    assert utils.snake_case(name) == snake

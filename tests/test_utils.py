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


@pytest.mark.parametrize("kwargs", [{}, {"maxlen": 3}, {"maxlen": 3, "padding": "post", "truncating": "post"},
                                    {"maxlen": 6, "value": -1, "dtype": "float32"}])
def test_pad_sequences_matches_keras(kwargs):
    sequences = [[1, 2, 3, 4], [5], [], [6, 7]]
    got = utils.pad_sequences(sequences, **kwargs)
    if kwargs == {"maxlen": 3}:
        assert got.tolist() == [[2, 3, 4], [0, 0, 5], [0, 0, 0], [0, 6, 7]]
    keras = pytest.importorskip("keras")
    expected = keras.utils.pad_sequences(sequences, **kwargs)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_pad_sequences_keeps_sample_shapes_and_names_bad_arguments():
    got = utils.pad_sequences([np.ones((2, 3)), np.zeros((1, 3))], padding="post", dtype="float32")
    assert got.shape == (2, 2, 3) and got[1, 1].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match='Padding type "middle"'):
        utils.pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="different from expected shape"):
        utils.pad_sequences([np.ones((2, 3)), np.ones((2, 4))])

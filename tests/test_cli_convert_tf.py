"""`kerasckpt convert training_1/cp.ckpt model.weights.h5 --model arch.keras` (and to `.keras`): a tf.keras 2
checkpoint becomes files Keras 3 loads, predicting as tf_keras did, with the Adam state."""
import os

import numpy as np
import pytest

import kerasckpt
from kerasckpt import cli, layers

from tests.checkpoint.tf_fixtures import TF_DATA, decode, expected

keras = pytest.importorskip("keras")


def architecture(kind, path):
    """The tf.keras fixture's architecture built with kerasckpt, compiled as it was, saved as `.keras`."""
    if kind == "sequential":
        model = kerasckpt.Sequential([layers.Input((6,)), layers.Dense(8, activation="relu"), layers.Dropout(0.2),
                                      layers.Dense(3)])
    else:
        inputs = kerasckpt.Input((6,))
        model = kerasckpt.Model(inputs, layers.Dense(3)(layers.BatchNormalization()(layers.Dense(8)(inputs))))
    model.compile(optimizer="adam", loss=kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(path)
    return path


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_convert_tf_keras_checkpoint_for_keras3(tmp_path, capsys, kind):
    source = os.path.join(TF_DATA, "tf_keras", kind, "training_1", "cp.ckpt")
    arch = architecture(kind, str(tmp_path / "arch.keras"))
    weights, whole = str(tmp_path / "model.weights.h5"), str(tmp_path / "model.keras")
    for dst in (weights, whole):
        assert cli.main(["convert", source, dst, "--model", arch]) == 0
    assert "reloaded and checked equal" in capsys.readouterr().out
    record = expected("tf_keras")["models"][kind]
    x, want = decode(expected("tf_keras")["inputs"]["x"]), decode(record["predictions"])
    model = keras.saving.load_model(arch)  # Keras 3 from here on
    model.load_weights(weights)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    loaded = keras.saving.load_model(whole)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    theirs = {name.split(":")[0]: decode(value) for name, value in record["optimizer_variables"]}
    assert int(loaded.optimizer.iterations.numpy()) == int(theirs["iteration"])
    momentums = [v for v in loaded.optimizer.variables if v.name.endswith("_momentum")]
    first = record["weights"][0][0].split(":")[0]  # the first kernel's name in tf.keras
    assert np.array_equal(np.asarray(momentums[0]), theirs[f"Adam/m/{first}"])  # and its Adam m


def test_convert_without_an_architecture_names_the_option(tmp_path, capsys):
    source = os.path.join(TF_DATA, "tf_keras", "sequential", "training_1", "cp.ckpt")
    assert cli.main(["convert", source, str(tmp_path / "model.keras")]) == 2
    assert "Pass --model FILE" in capsys.readouterr().err

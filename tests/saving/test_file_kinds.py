"""load_weights picks the format from the name's ending, as Keras does; a file whose ending names no format
is never guessed at: the error names the format its first bytes show and the ending that loads it."""
import shutil

import numpy as np
import pytest

from kerasckpt.errors import CheckpointFormatError


@pytest.mark.parametrize("saved, ending", [
    ("w.weights.h5", "'.weights.h5'"), ("m.keras", "'.keras'"), ("legacy.h5", "'.h5'"), ("m.h5", "'.h5'")])
def test_a_file_without_a_known_ending_names_its_format(model, saved, ending, tmp_path):
    (model.save if saved.startswith("m.") else model.save_weights)(tmp_path / saved)
    shutil.copy(tmp_path / saved, tmp_path / "noext_file")
    with pytest.raises(CheckpointFormatError, match="noext_file") as info:
        model.load_weights(tmp_path / "noext_file")
    assert isinstance(info.value, ValueError)  # Keras: ValueError("File format not supported ...")
    assert f"end in {ending}" in str(info.value) and "not found" not in str(info.value)


def test_an_index_file_without_its_ending_and_other_files(model, tmp_path):
    model.save_weights(tmp_path / "ckpt")
    shutil.copy(tmp_path / "ckpt.index", tmp_path / "lonely")
    with pytest.raises(CheckpointFormatError, match=r"'[^']*lonely' is a checkpoint index.*\.index"):
        model.load_weights(tmp_path / "lonely")
    (tmp_path / "notes").write_text("hello")
    with pytest.raises(CheckpointFormatError, match=r"File format not supported: '[^']*notes'.*b'hello'"):
        model.load_weights(tmp_path / "notes")


def test_checkpoint_prefixes_still_load(kit, model, tmp_path):
    model.save_weights(tmp_path / "ckpt")
    (tmp_path / "also_a_file").write_text("a file beside its checkpoint files")
    model.save_weights(tmp_path / "also_a_file")  # a prefix that is also a file: its .index decides
    for prefix in ("ckpt", "also_a_file"):
        twin = kit.make_model("sequential")
        twin.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        twin.load_weights(tmp_path / prefix)
        for a, b in zip(twin.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)

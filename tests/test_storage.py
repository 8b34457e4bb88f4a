"""kerasckpt._storage without a server: URL names, the in-memory image an upload streams from, fsspec's
memory:// store for every file format, and the refusals (missing packages, unknown protocols, native URLs)
that keep a URL from ever being written to the local disk."""
import os
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kerasckpt
from kerasckpt import _storage, layers
from kerasckpt.errors import CheckpointDamagedError, CheckpointNotFoundError, StorageUnavailableError

fsspec = pytest.importorskip("fsspec")


def _model():
    model = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="relu"), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((16, 4), "float32"), np.zeros((16, 3), "float32"), epochs=1, verbose=0)
    return model


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights())) and \
        len(a.get_weights()) == len(b.get_weights())


# ------------------------------------------------------------------------------------------------ names
def test_urls_are_recognized_and_never_normalized_like_local_paths():
    assert _storage.is_url("s3://bucket/run/model.keras") and _storage.protocol("gs://b/x") == "gs"
    assert not _storage.is_url("run/model.keras") and not _storage.is_url("C:\\run\\model.keras")
    assert not _storage.is_url("file:///tmp/x.keras") and _storage.normalize("file:///tmp/x.keras") == "/tmp/x.keras"
    assert _storage.join("s3://bucket/run/", "ckpt", "model.keras") == "s3://bucket/run/ckpt/model.keras"
    assert _storage.split("s3://bucket/run/model.keras") == ("s3://bucket/run", "model.keras")
    assert _storage.split("s3://bucket") == ("s3://bucket", "")
    assert _storage.absolute("s3://bucket//x") == "s3://bucket//x"  # os.path.abspath would make it '/cwd/s3:/...'


# ------------------------------------------------------------------------------------------------ the image
@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, 3000), st.binary(min_size=0, max_size=700), st.booleans()),
    st.tuples(st.just("truncate"), st.integers(0, 3500))), max_size=25))
def test_image_file_holds_what_a_real_file_would(tmp_path_factory, ops):
    """Writes at any offsets (overlapping, borrowed or copied) and truncations: the same bytes as a file."""
    path = tmp_path_factory.mktemp("image") / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    image = _storage.ImageFile()
    old_min, _storage._BORROW_MIN = _storage._BORROW_MIN, 16  # borrow small writes too, to mix both kinds
    try:
        for op in ops:
            if op[0] == "write":
                _, offset, data, borrow = op
                os.pwrite(fd, data, offset) if data else None
                image.pwrite(memoryview(bytes(data)), offset, borrow=borrow)
            else:
                os.ftruncate(fd, op[1])
                image.truncate(op[1])
        expected = os.pread(fd, 1 << 20, 0)
        assert image.size() == len(expected)
        assert image.getvalue() == expected
        assert b"".join(bytes(p) for p in image.parts(97)) == expected
        buf = bytearray(len(expected) + 10)
        assert image.pread_into(buf, 0) == len(expected) and bytes(buf[:len(expected)]) == expected
        assert image.crc32() == _storage._fileio.checksum(expected)
    finally:
        _storage._BORROW_MIN = old_min
        os.close(fd)


def test_image_file_references_large_arrays_instead_of_copying_them():
    array = np.arange(1 << 18, dtype=np.float32)  # 1 MiB
    image = _storage.ImageFile()
    image.pwrite(b"header", 0)
    image.pwrite(memoryview(array).cast("B"), 4096, borrow=True)
    pieces = list(image.pieces())
    assert any(np.shares_memory(np.frombuffer(p, np.uint8), array) for p in pieces)  # streamed from the array
    assert max(len(p) for p in image.parts(1 << 16)) == 1 << 16  # an upload copies one part at a time


# ------------------------------------------------------------------------------------------------ memory://
@pytest.mark.parametrize("name", ["model.keras", "model.h5", "weights.weights.h5", "weights.h5"])
def test_every_file_format_round_trips_through_memory_urls(mem, name):
    model = _model()
    url = f"{mem}/run/{name}"
    if name.startswith("weights"):
        model.save_weights(url)
        restored = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="relu"), layers.Dense(3)])
        restored.load_weights(url)
    else:
        model.save(url)
        restored = kerasckpt.models.load_model(url)
        assert restored.optimizer.iterations.numpy() == model.optimizer.iterations.numpy()
    assert _same(model, restored)
    assert not os.path.exists("memory:")  # nothing written to the local disk


def test_a_failed_save_to_a_store_leaves_the_previous_object(mem, monkeypatch):
    model = _model()
    url = f"{mem}/best.keras"
    model.save(url)
    before = fsspec.filesystem("memory").cat_file(url)
    from kerasckpt.saving import h5file
    real = h5file.write_h5

    def half(file, entries, **kwargs):
        real(file, entries, **kwargs)
        raise OSError("disk full in the middle of the save")
    monkeypatch.setattr(h5file, "write_h5", half)
    model.layers[0].kernel.assign(np.zeros_like(model.layers[0].kernel.numpy()))
    with pytest.raises(OSError, match="disk full"):
        model.save(url)
    assert fsspec.filesystem("memory").cat_file(url) == before


def test_a_damaged_object_is_refused_naming_the_url(mem):
    model = _model()
    url = f"{mem}/model.weights.h5"
    model.save_weights(url)
    fs = fsspec.filesystem("memory")
    data = bytearray(fs.cat_file(url))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(url, bytes(data))
    with pytest.raises(CheckpointDamagedError, match="memory://"):
        model.load_weights(url)


def test_a_missing_object_names_the_url_and_nearby_objects(mem):
    model = _model()
    model.save(f"{mem}/model-01.keras")
    with pytest.raises(CheckpointNotFoundError, match=r"model-02\.keras.*model-01\.keras"):
        kerasckpt.models.load_model(f"{mem}/model-02.keras")


def test_csv_logger_writes_whole_rows_to_a_store(mem):
    model = _model()
    url = f"{mem}/log.csv"
    model.fit(np.ones((16, 4), "float32"), np.zeros((16, 3), "float32"), epochs=3, verbose=0,
              callbacks=[kerasckpt.callbacks.CSVLogger(url)])
    rows = fsspec.filesystem("memory").cat_file(url).decode().splitlines()
    assert rows[0] == "epoch,loss,val_loss" and [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]
    model.fit(np.ones((16, 4), "float32"), np.zeros((16, 3), "float32"), epochs=1, verbose=0,
              callbacks=[kerasckpt.callbacks.CSVLogger(url, append=True)])
    assert len(fsspec.filesystem("memory").cat_file(url).decode().splitlines()) == 5


def test_model_checkpoint_saves_and_prunes_on_a_store(mem):
    model = _model()
    callback = kerasckpt.callbacks.ModelCheckpoint(f"{mem}/ckpt/m.{{epoch:02d}}.weights.h5", monitor="loss",
                                                   max_to_keep=2)
    model.fit(np.ones((16, 4), "float32"), np.zeros((16, 3), "float32"), epochs=4, verbose=0, callbacks=[callback])
    names = sorted(p.rsplit("/", 1)[1] for p in fsspec.filesystem("memory").ls(f"{mem}/ckpt", detail=False))
    assert names == sorted({"m.03.weights.h5", "m.04.weights.h5", callback.best_filepath.rsplit("/", 1)[1]})
    restored = _model()
    restored.load_weights(callback.files[-1]["path"])
    assert _same(model, restored)


# ------------------------------------------------------------------------------------------------ refusals
def _no_local_trace(tmp_path):
    return [p for p in os.listdir(tmp_path) if ":" in p] == []


def test_a_missing_protocol_package_is_refused_in_one_line_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if it were not installed
    monkeypatch.setattr(_storage, "_stores", {})
    model = _model()
    for action in (lambda: model.save("gs://bucket/run/model.keras"),
                   lambda: kerasckpt.models.load_model("gs://bucket/run/model.keras"),
                   lambda: kerasckpt.callbacks.CSVLogger("gs://bucket/log.csv").on_train_begin()):
        with pytest.raises(StorageUnavailableError, match=r'gcsfs.*pip install "kerasckpt\[gcs\]"') as info:
            action()
        assert isinstance(info.value, ImportError) and "\n" not in str(info.value)
    assert _no_local_trace(tmp_path)


def test_without_fsspec_every_url_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "fsspec", None)
    monkeypatch.setattr(_storage, "_stores", {})
    with pytest.raises(StorageUnavailableError, match=r'need the package fsspec.*kerasckpt\[s3\]'):
        _model().save("s3://bucket/model.keras")
    assert _no_local_trace(tmp_path)


def test_an_unknown_protocol_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="'nosuchstore' is not a storage protocol"):
        _model().save("nosuchstore://bucket/model.keras")
    assert _no_local_trace(tmp_path)

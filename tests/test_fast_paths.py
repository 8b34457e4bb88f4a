"""Fast paths of saving and loading: bytes written straight from the arrays, one fsync per file, loads
from a memory map, checksums on two threads, no peak-memory doubling, and models built for loading
without computing random initial values (and without disturbing the random streams)."""
import json
import os
import subprocess
import sys
import zlib

import h5py
import numpy as np
import pytest

import kerasckpt
from kerasckpt import _fileio, initializers, layers
from kerasckpt import random as kc_random
from kerasckpt.errors import CheckpointDamagedError
from kerasckpt.saving import h5file
from conftest import MODEL_KINDS, make_model, tiny_data


# ----------------------------------------------------------------------------------------- checksums

@pytest.mark.parametrize("size", [0, 1, 5, 4096, 100_003])
def test_checksum_many_equals_crc32_in_pieces(size, monkeypatch):
    monkeypatch.setattr(_fileio, "PARALLEL_CHUNK", 1000)  # many pieces on the worker threads
    rng = np.random.default_rng(size)
    buffers = [rng.integers(0, 256, size, dtype=np.uint8), rng.standard_normal(size // 4 + 1).astype("float32"),
               b"abc" * size]
    expected = [zlib.crc32(memoryview(b).cast("B")) & 0xFFFFFFFF for b in buffers]
    assert _fileio.checksum_many(buffers, parallel_min=10) == expected
    assert _fileio.checksum_many(buffers) == expected


def test_crc32_combine_matches_zlib():
    rng = np.random.default_rng(0)
    a, b = rng.bytes(1234), rng.bytes(98765)
    assert _fileio.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert h5file.crc32_combine is _fileio.crc32_combine


# ----------------------------------------------------------------------------------------- streaming writes

def test_streaming_writer_writes_every_byte_and_checksums_it_while_starting_writeback(tmp_path, monkeypatch):
    monkeypatch.setattr(_fileio, "PARALLEL_CHUNK", 1000)  # buffers cut in pieces, some on the pool
    monkeypatch.setattr(_fileio, "POOL_MIN", 500)
    monkeypatch.setattr(_fileio, "WRITEBACK_EVERY", 2500)
    syncs = _count_syncs(monkeypatch)
    rng = np.random.default_rng(3)
    buffers = [rng.bytes(n) for n in (0, 1, 499, 1000, 1001, 7777)]
    tracked = rng.bytes(321)
    path = tmp_path / "stream.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        with _fileio.StreamingWriter(fd) as writer:
            offsets, at = [], 10
            indexes = []
            for b in buffers:
                offsets.append(at)
                indexes.append(writer.write(b, at))
                at += len(b) + 3
            indexes.append(writer.track(tracked))
            sums = writer.checksums()
    finally:
        os.close(fd)
    raw = path.read_bytes()
    for b, at in zip(buffers, offsets):
        assert raw[at:at + len(b)] == b
    assert [sums[i] for i in indexes] == [zlib.crc32(b) for b in buffers + [tracked]]
    assert 1 <= syncs.count("fdatasync") <= sum(len(b) for b in buffers) // 2500  # one in flight at a time


@pytest.mark.parametrize("name", ["w.weights.h5", "m.keras", "m.h5", "ckpt"])
def test_a_failed_writeback_fails_the_save_and_keeps_the_previous_file(tmp_path, name, monkeypatch):
    """Linux reports a writeback error to one sync only: the writer's own fdatasync must not swallow it."""
    model = _wide_model(2)
    path = str(tmp_path / name)
    save = model.save if name in ("m.keras", "m.h5") else model.save_weights
    save(path)
    before = [w.copy() for w in model.get_weights()]
    for w in model.weights:
        w.assign(w.value + 1)
    monkeypatch.setattr(_fileio, "WRITEBACK_EVERY", 1)

    def failing(fd):
        raise OSError(5, "Input/output error (injected)")
    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(OSError, match="injected"):
        save(path)
    monkeypatch.undo()
    assert not [n for n in os.listdir(tmp_path) if _fileio.TEMP_MARK in n]
    model.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


# ----------------------------------------------------------------------------------------- HDF5 writes

ODD_ARRAYS = {
    "scalar_int": np.array(7, dtype=np.int64),
    "scalar_float": np.array(0.5, dtype=np.float32),
    "empty": np.zeros((0, 3), np.float32),
    "bool": np.array([True, False, True]),
    "half": np.arange(6, dtype=np.float16).reshape(2, 3),
    "big_endian": np.arange(5, dtype=">f4"),
    "strided": np.arange(40, dtype=np.float64).reshape(5, 8)[:, ::2],
    "fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    "large": np.random.default_rng(0).standard_normal((300, 1000)).astype(np.float32),
}


def _write(path, arrays):
    entries = [("group", "g", {"name": "g"})] + [("dataset", f"g/{k}", v, None) for k, v in arrays.items()]
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        return h5file.write_h5(fd, entries)
    finally:
        os.close(fd)


def test_written_bytes_equal_the_arrays_for_h5py_and_for_the_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(_fileio, "WRITEBACK_EVERY", 1)  # take the writeback path too
    monkeypatch.setattr(_fileio, "PARALLEL_CHUNK", 1000)  # and arrays written and checksummed in pieces
    monkeypatch.setattr(_fileio, "POOL_MIN", 500)
    path = str(tmp_path / "odd.weights.h5")
    size, whole = _write(path, ODD_ARRAYS)
    raw = open(path, "rb").read()
    assert len(raw) == size and zlib.crc32(raw) & 0xFFFFFFFF == whole
    with h5py.File(path, "r") as f:  # what Keras sees: plain HDF5 with the right values
        for key, value in ODD_ARRAYS.items():
            got = f[f"g/{key}"][()]
            assert got.shape == value.shape and np.array_equal(got, value), key
            if value.size:
                assert int(f[f"g/{key}"].attrs[h5file.CHECKSUM_ATTR]) == zlib.crc32(np.ascontiguousarray(
                    value.astype(value.dtype.newbyteorder("<")))) & 0xFFFFFFFF
    fd = os.open(path, os.O_RDONLY)
    try:
        src = h5file.H5Source(repr(path), fd)
        assert src.verified
        got = src.read_many([f"g/{k}" for k in ODD_ARRAYS])
        src.close()
    finally:
        os.close(fd)
    for (key, value), arr in zip(ODD_ARRAYS.items(), got):
        assert np.array_equal(arr, value) and arr.shape == value.shape, key


def test_data_goes_straight_from_the_arrays_to_the_file(tmp_path, monkeypatch):
    """Each array is written by one pwrite of its own buffer (no copy), not through h5py."""
    big = np.random.default_rng(1).standard_normal(200_000).astype(np.float32)
    seen = []
    real = _fileio.pwrite_all

    def spy(fd, view, offset):
        seen.append(view)
        return real(fd, view, offset)

    monkeypatch.setattr(_fileio, "pwrite_all", spy)
    _write(str(tmp_path / "w.h5"), {"big": big})
    data_writes = [v for v in seen if len(v) == big.nbytes]
    assert len(data_writes) == 1 and np.shares_memory(np.asarray(data_writes[0]), big)


def _count_syncs(monkeypatch):
    calls = []
    for name in ("fsync", "fdatasync"):
        if hasattr(os, name):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, lambda fd, real=real, name=name: (calls.append(name), real(fd))[1])
    return calls


def _wide_model(n_layers):
    model = kerasckpt.Sequential([layers.Input(shape=(64,))] + [layers.Dense(64) for _ in range(n_layers)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_weights)
    return model


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5", "m.keras", "m.h5", "ckpt"])
def test_syncs_per_save_do_not_grow_with_the_variables(tmp_path, name, monkeypatch):
    """One fsync per file (plus the directory), whatever the variable count."""
    counts = []
    for n_layers in (1, 12):
        model = _wide_model(n_layers)
        path = str(tmp_path / f"{n_layers}-{name}")
        calls = _count_syncs(monkeypatch)
        model.save(path) if name in ("m.keras", "m.h5") else model.save_weights(path)
        monkeypatch.undo()
        counts.append(len(calls))
    assert counts[0] == counts[1] and counts[0] <= 5, counts


# ----------------------------------------------------------------------------------------- HDF5 reads

def test_loads_read_the_mapped_file_without_copies(tmp_path):
    model = _wide_model(2)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        src = h5file.H5Source(repr(path), fd)
        names = sorted(p for p in src.datasets if p.startswith("layers/"))
        first, second = src.read_many(names), src.read_many(names)
        src.close()
    finally:
        os.close(fd)
    for a, b in zip(first, second):
        assert not a.flags.writeable  # a view of the read-only mapping ...
        assert a.size == 0 or np.shares_memory(a, b)  # ... the same pages both times, never a fresh copy
    os.remove(path)  # the mapping outlives the file's name and descriptor
    assert sum(float(np.abs(a).sum()) for a in first) > 0


def test_loads_fall_back_to_reads_where_mapping_fails(tmp_path, monkeypatch):
    model = _wide_model(2)
    path = str(tmp_path / "m.keras")
    model.save(path)
    expected = [w.numpy() for w in model.weights]

    def refuse(*args, **kwargs):
        raise OSError("mmap not supported here")

    monkeypatch.setattr(h5file.mmap, "mmap", refuse)
    for w in model.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    model.load_weights(path)
    assert all(np.array_equal(w.value, e) for w, e in zip(model.weights, expected))


def test_damaged_dataset_is_refused_and_nothing_is_assigned(tmp_path):
    model = _wide_model(2)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    kernel = model.layers[-1].kernel
    with h5py.File(path, "r") as f:
        offset = f["layers/dense_1/vars/0"].id.get_offset()
    blob = bytearray(open(path, "rb").read())
    blob[offset + 10] ^= 0x40
    open(path, "wb").write(bytes(blob))
    before = [w.numpy() for w in model.weights]
    for w in model.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    with pytest.raises(CheckpointDamagedError, match="checksum mismatch"):
        model.load_weights(path)
    assert all(not np.any(w.value) for w in model.weights)  # all or nothing
    assert kernel.shape == before[2].shape


def test_truncated_file_is_refused_before_mapping(tmp_path):
    model = _wide_model(1)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(CheckpointDamagedError, match="truncated"):
        model.load_weights(path)


# ----------------------------------------------------------------------------------------- peak memory

PEAK_CHILD = r'''
import json, os, re, sys, gc, ctypes
import numpy as np
import kerasckpt
import kerasckpt.checkpoint, kerasckpt.saving.api  # the formats' code, which `import kerasckpt` leaves for first use
from kerasckpt import layers
def status(key):
    return int(re.search(rf"^{key}:\s+(\d+) kB", open("/proc/self/status").read(), re.M).group(1)) * 1024
kerasckpt.utils.set_random_seed(0)
model = kerasckpt.Sequential([layers.Input(shape=(1600,)), layers.Dense(1600), layers.Dense(1600)])
path = sys.argv[1]
gc.collect()
try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
except OSError:
    pass
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
model.save(path) if path.endswith((".keras", "m.h5")) else model.save_weights(path)
print(json.dumps({"added": status("VmHWM") - base, "bytes": sum(w.value.nbytes for w in model.weights)}))
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc peak-RSS reset")
@pytest.mark.parametrize("name", ["w.weights.h5", "m.keras", "m.h5", "ckpt"])
def test_a_save_adds_little_memory(tmp_path, name):
    """A foreground save writes from the live arrays: its peak adds far less than the model's 20 MB."""
    out = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(tmp_path / name)], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["added"] < 0.25 * result["bytes"], result


# ----------------------------------------------------------------------------------------- skip_initialization

def _mixed_model():
    return kerasckpt.Sequential([
        layers.Input(shape=(7,)), layers.Dense(5), layers.Dense(4, kernel_initializer="he_normal"),
        layers.Dropout(0.3), layers.BatchNormalization(),
        layers.Dense(3, kernel_initializer="random_uniform", bias_initializer="ones"),
        layers.Dense(3, kernel_initializer=initializers.GlorotNormal(seed=3)),
        layers.Dense(2, kernel_initializer=lambda shape, dtype: np.full(shape, 0.25, dtype))])


def _start(seed):
    kerasckpt.utils.set_random_seed(seed)
    kc_random.global_generator().integers(0, 9, dtype=np.uint32)  # leaves half a 64-bit draw buffered


def test_skip_initialization_leaves_the_random_stream_as_drawing_would():
    _start(5)
    drawn = _mixed_model()
    after_drawn = kc_random.get_global_state()
    _start(5)
    with initializers.skip_initialization():
        skipped = _mixed_model()
        assert initializers.skipping()
    assert not initializers.skipping()
    assert kc_random.get_global_state() == after_drawn
    skipped_at = {0, 8, 10}  # kernels: glorot_uniform and random_uniform (global draws advanced past), seeded
    for i, (a, b) in enumerate(zip(drawn.weights, skipped.weights)):
        if i in skipped_at:
            assert np.any(a.value) and not np.any(b.value), a.path
        else:  # normal draws, deterministic and custom initializers still run
            assert np.array_equal(a.value, b.value), a.path
    assert [d.seed_generator.seed for d in skipped.layers if isinstance(d, layers.Dropout)] == \
        [d.seed_generator.seed for d in drawn.layers if isinstance(d, layers.Dropout)]


def test_skip_initialization_falls_back_to_drawing_on_other_generators(monkeypatch):
    monkeypatch.setattr(kc_random, "_global", np.random.Generator(np.random.Philox(7)))
    with initializers.skip_initialization():
        model = _mixed_model()
    assert np.any(model.layers[0].kernel.value)  # no exact `advance` for Philox draws: values computed


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", ["m.keras", "m.h5"])
def test_load_model_without_initial_values_resumes_exactly(tmp_path, kind, name, monkeypatch):
    """load_model inside skip_initialization: same model, same random stream, same training after."""
    calls = []
    real = initializers._VarianceScaling.__call__
    monkeypatch.setattr(initializers._VarianceScaling, "__call__",
                        lambda self, *a, **k: (calls.append(1), real(self, *a, **k))[1])
    x, y = tiny_data()
    model = make_model(kind, dropout=0.25)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = str(tmp_path / name)
    model.save(path)
    results = []
    for skip in (False, True):
        kerasckpt.utils.set_random_seed(99)
        if skip:
            with initializers.skip_initialization():
                loaded = kerasckpt.models.load_model(path)
        else:
            loaded = kerasckpt.models.load_model(path)
        state = kc_random.get_global_state()
        assert bool(calls) != skip  # glorot_uniform kernels: computed only without the context
        calls.clear()
        assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights()))
        loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
        results.append((state, loaded.get_weights()))
    assert results[0][0] == results[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(results[0][1], results[1][1]))


@pytest.mark.parametrize("ending", [".keras", ".h5"])
def test_load_model_never_draws_random_initial_values(tmp_path, monkeypatch, ending):
    import kerasckpt
    from kerasckpt import layers

    model = kerasckpt.Sequential([layers.Input(shape=(5,)), layers.Dense(7), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    path = str(tmp_path / f"m{ending}")
    model.save(path)
    state = kerasckpt.random.get_global_state()

    def refuse(self, shape, dtype="float32"):
        raise AssertionError("load_model drew random initial values it then overwrote")

    monkeypatch.setattr(kerasckpt.initializers.GlorotUniform, "__call__", refuse)
    reloaded = kerasckpt.models.load_model(path)
    monkeypatch.undo()
    for a, b in zip(reloaded.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)
    kerasckpt.random.set_global_state(state)
    kerasckpt.initializers.GlorotUniform()((5, 7))  # what building the model without the context would draw
    kerasckpt.initializers.GlorotUniform()((7, 3))
    expected = kerasckpt.random.get_global_state()
    kerasckpt.random.set_global_state(state)
    kerasckpt.models.load_model(path)
    assert kerasckpt.random.get_global_state() == expected  # the stream advanced as if it had drawn them

"""Native checkpoints (tensor bundles: an index and data objects) on fsspec's memory:// store, without a server:
Checkpoint, CheckpointManager, the inspection functions, save_weights prefixes, ModelCheckpoint and
BackupAndRestore. Each object appears whole when its upload completes, so a checkpoint becomes visible when
its index does (data first, the index last); the manager's state object is replaced only if no other writer
replaced it since this manager read it. The same on a real S3 server: tests/test_storage_s3_native.py."""
import os

import numpy as np
import pytest

import kerasckpt
from kerasckpt import _storage, layers
from kerasckpt.callbacks import BackupAndRestore, ModelCheckpoint
from kerasckpt.checkpoint import (Checkpoint, CheckpointManager, CheckpointOptions, bundle, latest_checkpoint,
                                  list_variables, load_checkpoint, load_variable)
from kerasckpt.errors import (CheckpointDamagedError, CheckpointNotFoundError, CheckpointReplacedError,
                              StorageConflictError)
from kerasckpt.variables import Variable
from conftest import make_model, tiny_data
from crashing import Crash

fsspec = pytest.importorskip("fsspec")


def _names(url):
    fs = fsspec.filesystem("memory")
    return sorted(p.rsplit("/", 1)[1] for p in fs.ls(url, detail=False)) if fs.exists(url) else []


def _vars(gen):
    return {"a": Variable(np.full((3, 4), gen, np.float32)), "b": Variable(np.arange(5, dtype=np.int64) + gen)}


def _zeros():
    return {"a": Variable(np.zeros((3, 4), np.float32)), "b": Variable(np.zeros(5, np.int64))}


def _gen(vs):
    """The generation whose values `vs` hold, checked to be one whole generation."""
    gen = float(vs["a"].numpy()[0, 0])
    assert np.all(vs["a"].numpy() == gen) and np.array_equal(vs["b"].numpy(), np.arange(5) + int(gen))
    return int(gen)


def _no_local_trace(path):
    return [p for p in os.listdir(path) if ":" in p] == []


# ------------------------------------------------------------------------------------------------ Checkpoint
def test_checkpoint_save_restore_and_the_inspection_functions_on_a_store(mem, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = Checkpoint(**_vars(1))
    first = ckpt.save(f"{mem}/run/ckpt")
    assert first == f"{mem}/run/ckpt-1"
    ckpt.a.assign(np.full((3, 4), 2, np.float32))
    ckpt.b.assign(np.arange(5) + 2)
    second = ckpt.save(f"{mem}/run/ckpt")
    assert _names(f"{mem}/run") == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index",
                                    "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    assert latest_checkpoint(f"{mem}/run") == second
    targets = _zeros()
    Checkpoint(**targets).restore(latest_checkpoint(f"{mem}/run")).assert_consumed()
    assert _gen(targets) == 2
    Checkpoint(**targets).restore(first).assert_existing_objects_matched()
    assert _gen(targets) == 1
    assert ("a/.ATTRIBUTES/VARIABLE_VALUE", [3, 4]) in list_variables(f"{mem}/run")
    assert np.array_equal(load_variable(f"{mem}/run", "b"), np.arange(5) + 2)
    with load_checkpoint(first + ".index") as reader:  # the index, or a data file, names the prefix too
        assert reader.prefix == first and reader.get_variable_to_shape_map()["a/.ATTRIBUTES/VARIABLE_VALUE"] == [3, 4]
    path = Checkpoint(**_vars(7)).write(f"{mem}/plain/weights", CheckpointOptions(save_in_background=True))
    Checkpoint(**targets).read(path).assert_consumed()
    assert _gen(targets) == 7 and _names(f"{mem}/plain") == ["weights.data-00000-of-00001", "weights.index"]
    assert _no_local_trace(tmp_path)


def test_init_from_checkpoint_reads_a_store(mem):
    from kerasckpt.checkpoint import init_from_checkpoint
    Checkpoint(**_vars(4)).save(f"{mem}/run/ckpt")
    target = Variable(np.zeros(5, np.int64))
    init_from_checkpoint(f"{mem}/run", {"b/.ATTRIBUTES/VARIABLE_VALUE": target})  # a directory: its latest
    assert np.array_equal(target.numpy(), np.arange(5) + 4)


def test_overwriting_a_prefix_switches_at_the_index_and_removes_the_old_data(mem):
    prefix = f"{mem}/w"
    for gen, names in ((1, "00000-of-00001"), (2, "00000-of-00002"), (3, "00000-of-00001")):
        Checkpoint(**_vars(gen)).write(prefix)
        # the new data took names the previous index did not use; the previous data is gone
        assert [n for n in _names(mem) if ".data-" in n][0] == f"w.data-{names}"
        targets = _zeros()
        Checkpoint(**targets).read(prefix)
        assert _gen(targets) == gen
    assert _names(mem) == ["w.data-00000-of-00001", "w.index"]


def test_a_failed_upload_keeps_the_previous_checkpoint_and_leaves_no_data(mem, monkeypatch):
    prefix = f"{mem}/w"
    Checkpoint(**_vars(1)).write(prefix)
    before = _names(mem)
    real = _storage.write_bytes

    def index_fails(path, data, *args, **kwargs):
        if path.endswith(".index"):
            raise OSError("the store went away before the index")
        return real(path, data, *args, **kwargs)
    monkeypatch.setattr(_storage, "write_bytes", index_fails)
    with pytest.raises(OSError, match="before the index"):
        Checkpoint(**_vars(2)).write(prefix)
    assert _names(mem) == before  # the new data objects were deleted again: no index names them
    targets = _zeros()
    Checkpoint(**targets).read(prefix)
    assert _gen(targets) == 1


@pytest.mark.parametrize("saves", [1, 2])
def test_a_reader_of_an_overwritten_checkpoint_reads_it_again(mem, monkeypatch, saves):
    """The index was read, then other saves replaced the checkpoint: its data is gone (one save), or the name of
    its data file holds another checkpoint's bytes (two saves: names alternate)."""
    prefix = f"{mem}/best"
    Checkpoint(**_vars(1)).write(prefix)
    real, overwritten, gens = _storage.open_descriptor, [], iter(range(2, 100))

    def overwrite_first(path, storage_options=None):
        if not overwritten:
            overwritten.append(path)
            for _ in range(saves):
                Checkpoint(**_vars(next(gens))).write(prefix)
        return real(path, storage_options)
    monkeypatch.setattr(_storage, "open_descriptor", overwrite_first)
    targets = _zeros()
    Checkpoint(**targets).read(prefix).assert_consumed()
    assert overwritten and _gen(targets) == 1 + saves  # read again: the newest checkpoint, whole
    overwritten.clear()
    with bundle.CheckpointReader(prefix) as reader:  # without the retry: said, never a mix
        with pytest.raises(CheckpointReplacedError, match=r"best.*overwritten.*Read it again"):
            reader.read("a/.ATTRIBUTES/VARIABLE_VALUE")


def test_a_damaged_data_object_is_refused_naming_the_url_and_the_value(mem):
    prefix = f"{mem}/w"
    Checkpoint(**_vars(1)).write(prefix)
    fs = fsspec.filesystem("memory")
    data_url = f"{prefix}.data-00000-of-00001"
    with load_checkpoint(prefix) as reader:
        offset = reader.entry("b/.ATTRIBUTES/VARIABLE_VALUE").offset
    data = bytearray(fs.cat_file(data_url))
    data[offset + 3] ^= 0x40
    fs.pipe_file(data_url, bytes(data))
    targets = _zeros()
    with pytest.raises(CheckpointDamagedError, match=rf"'{data_url}' is damaged: checksum mismatch for 'b/"):
        Checkpoint(**targets).read(prefix)
    assert np.all(targets["a"].numpy() == 0)  # nothing assigned
    fs.rm_file(data_url)
    with pytest.raises(CheckpointNotFoundError, match=rf"'{data_url}' is missing"):
        load_variable(prefix, "a")


# ------------------------------------------------------------------------------------------------ the manager
def test_manager_keeps_max_to_keep_and_deletes_only_what_the_state_no_longer_names(mem):
    directory = f"{mem}/run"
    vs = _vars(1)
    Checkpoint(**_vars(9)).save(f"{directory}/other")  # another writer's checkpoint before this run: kept
    manager = CheckpointManager(Checkpoint(**vs), directory, max_to_keep=2)
    for gen in range(1, 5):
        vs["a"].assign(np.full((3, 4), gen, np.float32))
        vs["b"].assign(np.arange(5) + gen)
        manager.save()
    assert manager.checkpoints == [f"{directory}/ckpt-3", f"{directory}/ckpt-4"]
    assert _names(directory) == ["checkpoint", "ckpt-3.data-00000-of-00001", "ckpt-3.index",
                                 "ckpt-4.data-00000-of-00001", "ckpt-4.index",
                                 "other-1.data-00000-of-00001", "other-1.index"]
    again = CheckpointManager(Checkpoint(**_zeros()), directory, max_to_keep=2)
    assert again.checkpoints == manager.checkpoints and again.latest_checkpoint == f"{directory}/ckpt-4"
    targets = _zeros()
    CheckpointManager(Checkpoint(**targets), directory, max_to_keep=2).restore_or_initialize()
    assert _gen(targets) == 4
    assert again.save() == f"{directory}/ckpt-5"  # numbering continues after what is there


def test_a_second_manager_on_the_same_directory_is_refused(mem):
    directory = f"{mem}/run"
    first = CheckpointManager(Checkpoint(**_vars(1)), directory, max_to_keep=3)
    second = CheckpointManager(Checkpoint(**_vars(2)), directory, max_to_keep=3)
    first.save()
    with pytest.raises(StorageConflictError, match=rf"{directory}/checkpoint.*before writing anything"):
        second.save()
    assert _names(directory) == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]  # nothing of its
    assert first.save() == f"{directory}/ckpt-2"  # the first writer goes on
    third = CheckpointManager(Checkpoint(**_vars(3)), directory, max_to_keep=3)  # read what is there now
    assert third.save() == f"{directory}/ckpt-3" and latest_checkpoint(directory) == f"{directory}/ckpt-3"


def test_a_writer_that_slips_in_during_a_save_is_detected_at_the_state_write(mem, monkeypatch):
    """Between this manager's check and its state write, another writer replaced the state object: the
    state write is refused, the checkpoint this save wrote is deleted again, the other's is untouched."""
    directory = f"{mem}/run"
    mine = CheckpointManager(Checkpoint(**_vars(1)), directory, max_to_keep=3)
    other = CheckpointManager(Checkpoint(**_vars(2)), directory, max_to_keep=3, checkpoint_name="other")
    real = bundle.write_bundle

    def other_saves_meanwhile(prefix, *args, **kwargs):
        names = real(prefix, *args, **kwargs)
        if prefix.endswith("ckpt-1"):
            other.save()
        return names
    monkeypatch.setattr(bundle, "write_bundle", other_saves_meanwhile)
    with pytest.raises(StorageConflictError, match="after writing the checkpoint, which is deleted again"):
        mine.save()
    assert _names(directory) == ["checkpoint", "other-1.data-00000-of-00001", "other-1.index"]
    assert latest_checkpoint(directory) == f"{directory}/other-1" and mine.checkpoints == []


def test_a_new_numbered_checkpoint_never_replaces_one_that_exists(mem):
    prefix = f"{mem}/run/ckpt-1"
    Checkpoint(**_vars(1)).write(prefix)
    with pytest.raises(StorageConflictError, match="ckpt-1.*exists already"):  # before uploading anything
        bundle.write_bundle(prefix, [("x", np.zeros(3))], exclusive=True)
    targets = _zeros()
    Checkpoint(**targets).read(prefix)
    assert _gen(targets) == 1


def test_a_killed_save_is_adopted_and_its_leftovers_swept(mem):
    """Files a killed save left: a complete checkpoint the state never named (adopted as the newest) and data
    objects without an index (deleted by the next save)."""
    directory = f"{mem}/run"
    vs = _vars(1)
    manager = CheckpointManager(Checkpoint(**vs), directory, max_to_keep=1)
    manager.save()
    Checkpoint(**_vars(2)).write(f"{directory}/ckpt-2")  # complete, never recorded
    fsspec.filesystem("memory").pipe_file(f"{directory}/ckpt-3.data-00000-of-00001", b"half an upload")
    resumed = CheckpointManager(Checkpoint(**_zeros()), directory, max_to_keep=1)
    assert resumed.latest_checkpoint == f"{directory}/ckpt-2"
    targets = _zeros()
    Checkpoint(**targets).restore(resumed.restore_or_initialize())
    new = resumed.save()
    assert new == f"{directory}/ckpt-4"
    assert _names(directory) == ["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]


# ------------------------------------------------------------------------------------------------ models
def _model(seed=0):
    kerasckpt.utils.set_random_seed(seed)
    model = kerasckpt.Sequential([layers.Input(shape=(4,)), layers.Dense(8, activation="relu"), layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_save_weights_prefix_and_model_checkpoint_prefix_on_a_store(mem):
    model = _model()
    x, y = np.ones((16, 4), "float32"), np.zeros((16, 3), "float32")
    callback = ModelCheckpoint(f"{mem}/ckpt/w{{epoch:02d}}", monitor="loss", save_weights_only=True, max_to_keep=2)
    model.fit(x, y, epochs=4, verbose=0, callbacks=[callback])
    assert sorted({n.split(".")[0] for n in _names(f"{mem}/ckpt")}) == sorted(
        {"w03", "w04", callback.best_filepath.rsplit("/", 1)[1]})
    restored = _model(seed=1)
    restored.load_weights(callback.files[-1]["path"])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), restored.get_weights()))
    model.save_weights(f"{mem}/final")
    with pytest.raises(FileExistsError, match="final"):
        model.save_weights(f"{mem}/final", overwrite=False)
    restored.load_weights(f"{mem}/final")
    assert int(restored.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())


@pytest.mark.parametrize("background", [False, True])
def test_backup_and_restore_on_a_store_resumes_to_the_same_run(mem, background):
    x, y = tiny_data(48)

    def train(directory, crash=None):
        kerasckpt.utils.clear_session()
        kerasckpt.utils.set_random_seed(3)
        model = make_model("sequential", dropout=0.3)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        callbacks = [BackupAndRestore(directory, save_freq=2, save_in_background=background)]
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=callbacks + ([Crash(*crash)] if crash else []))
        return model

    straight = train(f"{mem}/straight")
    with pytest.raises(KeyboardInterrupt):
        train(f"{mem}/resumed", crash=(1, 2))
    kerasckpt._background.wait_all()
    assert "backup.index" in _names(f"{mem}/resumed")
    resumed = train(f"{mem}/resumed")
    assert all(np.array_equal(a, b) for a, b in zip(straight.get_weights(), resumed.get_weights()))
    assert _names(f"{mem}/resumed") == []  # delete_checkpoint=True: removed at the end


# ------------------------------------------------------------------------------------------------ the CLI
def test_the_command_line_tool_on_native_checkpoints_in_a_store(mem, capsys):
    from kerasckpt import cli

    def run(*argv):
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    vs = _vars(1)
    manager = CheckpointManager(Checkpoint(**vs), f"{mem}/run", max_to_keep=2)
    for gen in (1, 2, 3):
        vs["a"].assign(np.full((3, 4), gen, np.float32))
        manager.save()
    _model().save(f"{mem}/run/model.keras")
    Checkpoint(**_vars(5)).write(f"{mem}/run/sub/w")
    code, out, err = run("ls", f"{mem}/run")
    assert code == 0, err
    assert "ckpt-3" in out and "ckpt-2" in out and "ckpt-1" not in out and "model.keras" in out
    assert "subdirectories not listed: sub" in out
    assert run("ls", "--latest", f"{mem}/run")[1].strip() == f"{mem}/run/ckpt-3"
    code, out, err = run("verify", mem)
    assert code == 0 and "All 5 intact" in out, out + err  # the state file, two checkpoints, model.keras, sub/w
    code, out, err = run("inspect", f"{mem}/run")  # a directory: its latest checkpoint
    assert code == 0 and f"{mem}/run/ckpt-3" in out, err
    code, out, err = run("diff", f"{mem}/run/ckpt-2.index", f"{mem}/run/ckpt-3")
    assert code == 1 and "2 differ (largest |a-b| = 1 in a)" in out, err
    code, out, err = run("convert", f"{mem}/run/ckpt-3", f"{mem}/copy/ckpt")
    assert code == 0, err
    targets = _zeros()
    Checkpoint(**targets).read(f"{mem}/copy/ckpt").expect_partial()  # save_counter is in the copy too
    assert float(targets["a"].numpy()[0, 0]) == 3
    fs = fsspec.filesystem("memory")
    data_url = f"{mem}/run/ckpt-2.data-00000-of-00001"
    data = bytearray(fs.cat_file(data_url))
    data[0] ^= 0xFF
    fs.pipe_file(data_url, bytes(data))
    code, out, err = run("verify", f"{mem}/run")
    assert code == 1 and f"'{data_url}' is damaged" in out, out + err

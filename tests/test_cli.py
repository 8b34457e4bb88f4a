"""The `kerasckpt` command line tool: inspect, verify, diff, convert and ls on every format, damaged files and
wrong arguments. Most tests call `kerasckpt.cli.main(argv)`; a few run `python -m kerasckpt` in a subprocess."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import kerasckpt
from kerasckpt import cli, layers
from kerasckpt.cli.ls import _parse_name

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
FORMATS = {  # name -> (file name, kind the tool reports)
    "keras": ("model.keras", "keras"),
    "h5-model": ("model.h5", "h5-model"),
    "h5-weights": ("weights.h5", "h5-weights"),
    "weights.h5": ("model.weights.h5", "weights.h5"),
    "native": ("native/ckpt", "native"),
}


def run(capsys, *argv):
    """`(exit status, stdout, stderr)` of `kerasckpt argv...` run in this process."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "kerasckpt", *map(str, argv)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def make_model(units=8, extra=False, compile=True):
    stack = [layers.Input(shape=(4,)), layers.Dense(units, activation="relu"), layers.Dropout(0.1),
             layers.BatchNormalization()]
    stack += [layers.Dense(4, activation="relu")] if extra else []
    model = kerasckpt.Sequential(stack + [layers.Dense(2, activation="softmax")])
    if compile:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=48):
    x = np.random.default_rng(0).normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def trained(epochs=2):
    model = make_model()
    model.fit(*data(), epochs=epochs, batch_size=16, verbose=0)
    return model


def save_all(model, directory):
    """The model in every format, in `directory`; returns {format name: path}."""
    directory = pathlib.Path(directory)
    model.save(directory / "model.keras")
    model.save(directory / "model.h5")
    model.save_weights(directory / "weights.h5")
    model.save_weights(directory / "model.weights.h5")
    model.save_weights(directory / "native" / "ckpt")
    return {name: directory / file for name, (file, _) in FORMATS.items()}


@pytest.fixture
def files(tmp_path):
    model = trained()
    paths = save_all(model, tmp_path)
    paths["model"] = model
    paths["architecture"] = tmp_path / "untrained.keras"  # same architecture, other values: --model must not leak them
    make_model().save(paths["architecture"])
    return paths


def manager_dir(directory, saves=4, max_to_keep=3):
    model = trained(1)
    step = kerasckpt.Variable(0, dtype="int64", trainable=False)
    manager = kerasckpt.CheckpointManager(kerasckpt.Checkpoint(model=model, optimizer=model.optimizer, step=step),
                                          directory, max_to_keep=max_to_keep)
    for i in range(saves):
        step.assign(10 * (i + 1))
        manager.save()
    return manager


def data_file_of(path):
    """The file holding the values of a checkpoint path (the data shard of a native checkpoint)."""
    path = pathlib.Path(path)
    if path.suffix in (".keras", ".h5"):
        return path
    return next(path.parent.glob(path.name + ".data-*"))


def flip_inside(path, value):
    """Flip one byte in the middle of where `value`'s bytes are stored in the file."""
    raw = bytearray(path.read_bytes())
    at = raw.find(np.ascontiguousarray(value).tobytes())
    assert at >= 0, f"{value.shape} not found in {path}"
    raw[at + value.nbytes // 2] ^= 0x40
    path.write_bytes(bytes(raw))


def no_traceback(*texts):
    return all("Traceback" not in t for t in texts)


# ----------------------------------------------------------------------------------------- arguments and entry points

def test_version_and_help_through_python_dash_m():
    done = run_process("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"kerasckpt {kerasckpt.__version__}"
    done = run_process("--help")
    assert done.returncode == 0
    for command in ("inspect", "verify", "diff", "convert", "ls"):
        assert command in done.stdout


def test_console_script_entry_point_returns_the_exit_status(tmp_path):
    from kerasckpt import __main__
    assert __main__.main(["ls", str(tmp_path)]) == 0
    assert __main__.main(["inspect", str(tmp_path / "none.keras")]) == 2


@pytest.mark.parametrize("argv, message", [
    ([], "required: COMMAND"),
    (["frobnicate"], "invalid choice"),
    (["inspect"], "required: path"),
    (["verify"], "required: PATH"),
    (["diff", "a.keras"], "required: B"),
    (["convert", "a.keras"], "required: DST"),
    (["ls", "--mode", "sideways", "."], "invalid choice"),
    (["ls", ".", "--best", "--latest"], "not allowed with"),
    (["diff", "a", "b", "--atol", "abc"], "invalid float value"),
])
def test_wrong_arguments_are_usage_errors(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and "usage: kerasckpt" in err and no_traceback(out, err)


def test_wrong_arguments_in_a_subprocess_print_usage_without_traceback():
    done = run_process("convert", "only-one-argument")
    assert done.returncode == 2 and "usage: kerasckpt convert" in done.stderr and no_traceback(done.stderr)


@pytest.mark.parametrize("command", ["inspect", "verify", "convert", "diff"])
def test_missing_file_is_named_with_nearby_names(capsys, tmp_path, command):
    (tmp_path / "model.keras").write_bytes(b"")
    missing = tmp_path / "modle.keras"
    argv = {"inspect": [missing], "verify": [missing], "convert": [missing, tmp_path / "out.keras"],
            "diff": [missing, tmp_path / "model.keras"]}[command]
    code, out, err = run(capsys, command, *argv)
    assert code == 2 and out == ""  # bad input for every command, verify included
    assert str(missing) in err and "model.keras" in err and no_traceback(out, err)


def test_unknown_format_is_refused_with_the_formats_it_reads(capsys, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint")
    code, out, err = run(capsys, "inspect", notes)
    assert code == 2 and "unknown format" in err and ".keras" in err and ".weights.h5" in err and out == ""


def test_a_keras_file_that_is_not_a_zip_is_refused(capsys, tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_text("hello")
    code, out, err = run(capsys, "inspect", fake)
    assert code == 2 and "fake.keras" in err and "not a .keras archive" in err and no_traceback(err)


def test_traceback_flag_shows_the_exception(tmp_path):
    with pytest.raises(cli.CLIError):
        cli.main(["--traceback", "inspect", str(tmp_path / "none.keras")])


# ----------------------------------------------------------------------------------------- inspect

@pytest.mark.parametrize("name", list(FORMATS))
def test_inspect_every_format(capsys, files, name):
    code, out, err = run(capsys, "inspect", files[name])
    assert code == 0 and err == ""  # no progress bar when stderr is not a terminal
    assert cli.FORMAT_NAMES[FORMATS[name][1]] in out
    assert "CRC-32" in out and "optimizer" in out
    assert "Variables: " in out and "float32" in out and "(4, 8)" in out
    has_architecture = name in ("keras", "h5-model")
    assert ('Model: "sequential"' in out) == has_architecture
    assert ("Total params" in out) == has_architecture


def test_inspect_json_stats_match_the_model(capsys, files):
    model = files["model"]
    code, out, _ = run(capsys, "inspect", files["keras"], "--json", "--stats")
    report = json.loads(out)
    assert code == 0 and report["format"] == "keras" and report["metadata"]["keras_version"]
    assert report["metadata"]["optimizer step"] == str(int(model.optimizer.iterations.numpy()))
    assert "Total params" in report["model"]["summary"]
    rows = {r["variable"]: r for r in report["variables"] if "variable" in r}
    for weight in model.weights:
        row, value = rows[weight.path], weight.numpy()
        assert row["shape"] == list(value.shape) and row["dtype"] == str(value.dtype) and row["size"] == value.size
        assert row["min"] == float(value.min()) and row["max"] == float(value.max())
        assert row["mean"] == pytest.approx(float(value.astype(np.float64).mean()), rel=1e-12, abs=1e-15)
    assert len(report["variables"]) == len(model.weights) + len(model.optimizer.variables)


def test_inspect_native_checkpoint_shows_counters_and_sorted_keys(capsys, tmp_path):
    manager_dir(tmp_path / "run")
    code, out, _ = run(capsys, "inspect", tmp_path / "run")  # a directory means its latest checkpoint
    assert code == 0 and "ckpt-4" in out and "latest checkpoint of directory" in out
    assert "step" in out and " 40" in out and "save_counter" in out
    assert out.index("model/dense/kernel") < out.index("model/dense/kernel/.OPTIMIZER_SLOT/optimizer/momentum")


def test_inspect_backup_shows_the_epoch_and_batch(capsys, tmp_path):
    model = make_model()

    class Crash(kerasckpt.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 5:
                raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        model.fit(*data(), epochs=3, batch_size=16, verbose=0,
                  callbacks=[kerasckpt.callbacks.BackupAndRestore(tmp_path / "backup", save_freq=2), Crash()])
    code, out, _ = run(capsys, "inspect", tmp_path / "backup" / "backup")
    assert code == 0 and "BackupAndRestore" in out and "1 epochs done, 1 batches into the next" in out
    code, out, _ = run(capsys, "ls", tmp_path / "backup")
    assert code == 0 and "BackupAndRestore" in out and "1 +1 batches" in out


def test_inspect_keras_written_file_says_it_has_no_checksums(capsys):
    code, out, _ = run(capsys, "inspect", DATA / "seq_adam.keras")
    assert code == 0 and "none (written by Keras" in out and 'Model: "' in out


def test_inspect_unregistered_class_still_lists_variables(capsys):
    code, out, _ = run(capsys, "inspect", DATA / "unsupported_prelu.keras")
    assert code == 0 and "Model summary unavailable" in out and "PReLU" in out
    assert "Variables: 5" in out


def test_inspect_stats_on_damaged_value_exits_1_and_names_it(capsys, files):
    kernel = files["model"].layers[0].kernel.numpy()
    flip_inside(data_file_of(files["native"]), kernel)
    code, out, _ = run(capsys, "inspect", files["native"], "--stats")
    assert code == 1 and "DAMAGED" in out and "model/dense/kernel" in out and "kerasckpt verify" in out


# ----------------------------------------------------------------------------------------- verify

def test_verify_every_format_intact(capsys, files):
    paths = [files[name] for name in FORMATS]
    code, out, err = run(capsys, "verify", *paths)
    assert code == 0 and f"All {len(paths)} intact." in out and err == ""
    assert out.count("OK ") == len(paths)


@pytest.mark.parametrize("name", list(FORMATS))
def test_verify_names_the_damaged_variable_and_file(capsys, files, name):
    kernel = files["model"].layers[0].kernel.numpy()  # the first Dense layer's kernel
    damaged_file = data_file_of(files[name])
    flip_inside(damaged_file, kernel)
    code, out, _ = run(capsys, "verify", files[name])
    assert code == 1 and "DAMAGED" in out and "0 of 1 intact" in out
    assert damaged_file.name in out
    variable = {"native": "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE", "h5-model": "model_weights/dense/sequential/dense/kernel",
                "h5-weights": "dense/sequential/dense/kernel"}.get(name, "layers/dense/vars/0")
    assert f"'{variable}'" in out


@pytest.mark.parametrize("name", list(FORMATS))
def test_verify_truncated_file(capsys, files, name):
    target = data_file_of(files[name])
    os.truncate(target, target.stat().st_size - 100)
    code, out, err = run(capsys, "verify", files[name])
    assert code == 1 and "DAMAGED" in out and target.name in out and "truncated" in out and no_traceback(out, err)


def test_verify_in_a_subprocess_exits_1_on_damage_without_traceback(files):
    kernel = files["model"].layers[0].kernel.numpy()
    flip_inside(files["weights.h5"], kernel)
    done = run_process("verify", files["weights.h5"], files["keras"])
    assert done.returncode == 1 and no_traceback(done.stdout, done.stderr)
    assert "checksum mismatch in dataset 'layers/dense/vars/0'" in done.stdout and "1 of 2 intact" in done.stdout


def test_verify_checks_the_padding_no_checksum_covers(capsys, files):
    shard = data_file_of(files["native"])
    raw = bytearray(shard.read_bytes())
    raw[10] ^= 1  # the first value is an 8-byte scalar; bytes 8..63 are alignment padding
    shard.write_bytes(bytes(raw))
    code, out, _ = run(capsys, "verify", files["native"])
    assert code == 1 and "byte 10 lies between values" in out


def test_verify_missing_data_file_names_the_values_in_it(capsys, files):
    data_file_of(files["native"]).unlink()
    code, out, _ = run(capsys, "verify", files["native"])
    assert code == 1 and "is missing" in out and "model/" in out


def test_verify_manager_directory_lists_every_checkpoint_and_the_state_file(capsys, tmp_path):
    manager = manager_dir(tmp_path / "run")
    code, out, _ = run(capsys, "verify", tmp_path / "run")
    assert code == 0 and "state file, 3 checkpoints listed" in out and "All 4 intact." in out
    for prefix in manager.checkpoints:
        assert f"OK        {prefix}" in out
    with kerasckpt.checkpoint.load_checkpoint(manager.checkpoints[1]) as reader:
        kernel = reader.read("model/dense/kernel")
    flip_inside(data_file_of(manager.checkpoints[1]), kernel)
    code, out, _ = run(capsys, "verify", tmp_path / "run")
    assert code == 1 and f"DAMAGED   {manager.checkpoints[1]}" in out
    assert "'model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE'" in out
    assert "3 of 4 intact." in out


def test_verify_manager_directory_with_damaged_or_dangling_state_file(capsys, tmp_path):
    manager = manager_dir(tmp_path / "run")
    state = tmp_path / "run" / "checkpoint"
    state.write_text(state.read_text() + 'all_model_checkpoint_paths: "ckpt-9"\n')
    code, out, _ = run(capsys, "verify", tmp_path / "run")
    assert code == 1 and "DAMAGED" in out and str(state) in out and "3 timestamps" in out
    text = state.read_text().splitlines()
    state.write_text("\n".join(t for t in text if "timestamps" not in t) + "\n")
    code, out, _ = run(capsys, "verify", tmp_path / "run")
    assert code == 1 and "ckpt-9.index' is missing" in out
    for prefix in manager.checkpoints:
        assert f"OK        {prefix}" in out


def test_verify_directory_of_model_checkpoint_files(capsys, tmp_path):
    model = make_model()
    model.fit(*data(), epochs=3, batch_size=16, verbose=0, callbacks=[
        kerasckpt.callbacks.ModelCheckpoint(str(tmp_path / "w.{epoch:02d}.weights.h5"), monitor="loss")])
    code, out, _ = run(capsys, "verify", tmp_path)
    assert code == 0 and "All 3 intact." in out
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, "verify", tmp_path / "empty")
    assert code == 2 and out == "" and "nothing to verify" in err  # bad input, not damage


def test_verify_strict_refuses_files_without_checksums(capsys):
    code, out, _ = run(capsys, "verify", DATA / "seq_adam.keras", DATA / "seq_adam.weights.h5")
    assert code == 0 and "no checksums" in out
    code, out, _ = run(capsys, "verify", "--strict", DATA / "seq_adam.keras")
    assert code == 1 and "UNCHECKED" in out and "refused by --strict" in out


def test_verify_json(capsys, files):
    code, out, _ = run(capsys, "verify", "--json", files["keras"], files["native"])
    report = json.loads(out)
    assert code == 0 and report["intact"] and [r["format"] for r in report["results"]] == ["keras", "native"]


# ----------------------------------------------------------------------------------------- diff

def test_diff_of_a_file_with_itself_is_empty(capsys, files):
    code, out, _ = run(capsys, "diff", files["keras"], files["keras"])
    assert code == 0 and "0 differ" in out and "Same within atol=0." in out


def test_diff_reports_largest_difference_per_variable_and_uses_atol(capsys, tmp_path):
    model = trained()
    model.save_weights(tmp_path / "a.weights.h5")
    kernel = model.layers[0].kernel
    changed = kernel.numpy().copy()
    changed[1, 2] += 0.25
    changed[0, 0] -= 0.125
    kernel.assign(changed)
    model.save_weights(tmp_path / "b.weights.h5")
    code, out, _ = run(capsys, "diff", tmp_path / "a.weights.h5", tmp_path / "b.weights.h5", "--json")
    report = json.loads(out)
    assert code == 1 and not report["same"]
    rows = {r["key"]: r for r in report["common"]}
    row = rows["layers/dense/vars/0"]
    assert row["max_abs_diff"] == pytest.approx(0.25) and row["differing"] == 2 and row["at"] == [1, 2]
    assert all(r["max_abs_diff"] == 0 for k, r in rows.items() if k != "layers/dense/vars/0")
    code, out, _ = run(capsys, "diff", tmp_path / "a.weights.h5", tmp_path / "b.weights.h5", "--atol", "0.3")
    assert code == 0 and "layers/dense/vars/0" in out and "0.25" in out and "Same within atol=0.3." in out
    code, _, _ = run(capsys, "diff", tmp_path / "a.weights.h5", tmp_path / "b.weights.h5", "--atol", "0.2")
    assert code == 1


def test_diff_lists_variables_only_in_one_and_shape_changes(capsys, tmp_path):
    make_model(units=8).save_weights(tmp_path / "a" / "ckpt")
    make_model(units=16, extra=True).save_weights(tmp_path / "b" / "ckpt")
    code, out, _ = run(capsys, "diff", tmp_path / "a" / "ckpt", tmp_path / "b" / "ckpt", "--atol", "100")
    assert code == 1
    assert "only in B: model/dense_2/kernel" in out  # variable paths: TensorFlow's suffix left out
    assert "changed:   model/dense/kernel: (4, 8) float32 -> (4, 16) float32" in out


def test_diff_across_formats_lines_up_by_variable_path(capsys, files):
    code, out, _ = run(capsys, "diff", files["keras"], files["native"])
    assert code == 0 and "variable paths" in out and "0 differ" in out
    code, out, err = run(capsys, "diff", files["weights.h5"], files["native"])
    assert code == 2 and "--model" in err
    code, out, _ = run(capsys, "diff", files["weights.h5"], files["native"], "--model", files["architecture"])
    assert code == 0 and "0 differ" in out


def test_diff_negative_atol_is_refused(capsys, files):
    code, _, err = run(capsys, "diff", files["keras"], files["keras"], "--atol", "-1")
    assert code == 2 and "--atol must be a non-negative number" in err


# ----------------------------------------------------------------------------------------- convert

def assert_same_state(model, other):
    assert len(model.weights) == len(other.weights)
    for a, b in zip(model.weights, other.weights):  # by order: --model files may name their layers differently
        assert np.array_equal(a.numpy(), b.numpy()), (a.path, b.path)
    assert len(model.optimizer.variables) == len(other.optimizer.variables)
    for a, b in zip(model.optimizer.variables, other.optimizer.variables):
        assert np.array_equal(a.numpy(), b.numpy())


def reload(path, architecture_of):
    """The model at `path`, or `architecture_of`'s architecture with `path`'s weights and optimizer state."""
    with cli.open_source(path) as src:
        whole = src.has_architecture()
    if whole:
        return kerasckpt.models.load_model(path)
    model = kerasckpt.models.load_model(architecture_of)
    model.load_weights(path)
    return model


@pytest.mark.parametrize("src", list(FORMATS))
@pytest.mark.parametrize("dst", ["out.keras", "out.h5", "out.weights.h5", "out/ckpt"])
def test_convert_keeps_weights_and_optimizer_state(capsys, files, tmp_path, src, dst):
    model = files["model"]
    same_layout = (src, dst) in (("native", "out/ckpt"), ("weights.h5", "out.weights.h5"))
    weights_only = src not in ("keras", "h5-model")
    extra = ["--model", files["architecture"]] if weights_only and not same_layout else []
    target = tmp_path / "converted" / dst
    code, out, err = run(capsys, "convert", files[src], target, *extra)
    assert code == 0, err
    assert "reloaded and checked equal" in out
    assert_same_state(model, reload(target, files["architecture"]))
    code, _, _ = run(capsys, "verify", target)
    assert code == 0


def test_convert_to_keras_keeps_the_compile_configuration_and_predictions(capsys, files, tmp_path):
    code, _, _ = run(capsys, "convert", files["h5-model"], tmp_path / "m.keras")
    assert code == 0
    loaded = kerasckpt.models.load_model(tmp_path / "m.keras")
    x, y = data()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), files["model"].predict(x, verbose=0))
    assert loaded.loss == files["model"].loss
    loaded.fit(x, y, epochs=1, verbose=0)  # the optimizer state came along: training continues


def test_convert_weights_only_to_keras_needs_an_architecture(capsys, files, tmp_path):
    code, out, err = run(capsys, "convert", files["weights.h5"], tmp_path / "m.keras")
    assert code == 2 and "holds weights only" in err and "--model" in err and no_traceback(err)
    assert not (tmp_path / "m.keras").exists()
    done = run_process("convert", files["native"], tmp_path / "m.keras")
    assert done.returncode == 2 and "holds weights only" in done.stderr and no_traceback(done.stderr)
    code, _, err = run(capsys, "convert", files["weights.h5"], tmp_path / "ckpt")  # another weights layout
    assert code == 2 and "no architecture" in err and "--model" in err


def test_convert_refuses_to_overwrite_unless_asked(capsys, files):
    code, _, err = run(capsys, "convert", files["keras"], files["weights.h5"])
    assert code == 2 and "exists" in err and "--overwrite" in err
    code, _, _ = run(capsys, "convert", files["keras"], files["weights.h5"], "--overwrite")
    assert code == 0


def test_convert_onto_itself_is_refused(capsys, files):
    code, _, err = run(capsys, "convert", files["keras"], files["keras"], "--overwrite")
    assert code == 2 and "source and destination are the same" in err


@pytest.mark.parametrize("dst, message", [
    ("ckpt.index", "without '.index'"),
    ("weights.keras", "a .keras file holds a whole model"),
])
def test_convert_wrong_destinations(capsys, files, tmp_path, dst, message):
    extra = ["--weights-only"] if dst.endswith(".keras") else []
    code, _, err = run(capsys, "convert", files["keras"], tmp_path / dst, *extra)
    assert code == 2 and message in err


def test_convert_a_damaged_source_fails_and_writes_nothing(capsys, files, tmp_path):
    flip_inside(files["keras"], files["model"].layers[0].kernel.numpy())
    code, _, err = run(capsys, "convert", files["keras"], tmp_path / "out.h5")
    assert code == 2 and "damaged" in err and "layers/dense/vars/0" in err and no_traceback(err)
    assert not (tmp_path / "out.h5").exists()


def test_convert_manager_checkpoint_says_what_the_destination_cannot_hold(capsys, tmp_path, files):
    manager_dir(tmp_path / "run")
    code, out, _ = run(capsys, "convert", tmp_path / "run", tmp_path / "m.keras", "--model", files["architecture"])
    assert code == 0 and "not carried over" in out and "save_counter, step" in out
    code, out, _ = run(capsys, "convert", tmp_path / "run", tmp_path / "copy")  # native -> native keeps all
    assert code == 0 and "28 values, copied value by value" in out  # 26 + the object graph and kerasckpt's record
    code, _, _ = run(capsys, "diff", tmp_path / "run", tmp_path / "copy")
    assert code == 0


def test_convert_keras_written_weights_gain_checksums(capsys, tmp_path):
    code, _, _ = run(capsys, "convert", DATA / "seq_adam.weights.h5", tmp_path / "w.weights.h5")
    assert code == 0
    code, out, _ = run(capsys, "verify", "--strict", tmp_path / "w.weights.h5")
    assert code == 0 and "no checksums" not in out
    code, _, _ = run(capsys, "diff", DATA / "seq_adam.weights.h5", tmp_path / "w.weights.h5")
    assert code == 0


# ----------------------------------------------------------------------------------------- ls

TEMPLATE = "model.{epoch:02d}-{val_loss:.4f}.keras"


def fit_with_model_checkpoint(directory, template=TEMPLATE, monitor="val_loss", epochs=5):
    model = make_model()
    checkpoint = kerasckpt.callbacks.ModelCheckpoint(os.path.join(directory, template), monitor=monitor)
    model.fit(*data(), epochs=epochs, batch_size=16, validation_split=0.25, verbose=0, callbacks=[checkpoint])
    return checkpoint


def test_ls_model_checkpoint_files_newest_first_with_the_best(capsys, tmp_path):
    checkpoint = fit_with_model_checkpoint(tmp_path)
    code, out, _ = run(capsys, "ls", tmp_path, "--template", TEMPLATE, "--json")
    listing = json.loads(out)
    assert code == 0 and listing["monitor"] == "val_loss" and listing["mode"] == "min"
    assert [e["epoch"] for e in listing["entries"]] == [5, 4, 3, 2, 1]
    by_epoch = {f["epoch"]: f["value"] for f in checkpoint.files}
    for entry in listing["entries"]:
        assert entry["values"]["val_loss"] == pytest.approx(by_epoch[entry["epoch"]], abs=5e-5)
    assert listing["best"] == checkpoint.best_filepath and listing["latest"] == listing["entries"][0]["path"]
    code, out, _ = run(capsys, "ls", tmp_path, "--best")
    assert code == 0 and out.strip() == checkpoint.best_filepath  # the names alone are enough
    code, out, _ = run(capsys, "ls", tmp_path)
    assert code == 0 and "best" in out and "latest" in out and out.index("model.05") < out.index("model.01")


def test_ls_accuracy_is_best_when_highest(capsys, tmp_path):
    template = "w-<epoch:03d>-<val_accuracy:.5f>.weights.h5"  # the angle-bracket spelling works too
    checkpoint = fit_with_model_checkpoint(tmp_path, template, monitor="val_accuracy")
    code, out, _ = run(capsys, "ls", tmp_path, "--template", template, "--json")
    listing = json.loads(out)
    values = [e["values"]["val_accuracy"] for e in listing["entries"]]
    best = [e for e in listing["entries"] if e["path"] == listing["best"]][0]
    assert code == 0 and listing["mode"] == "max" and best["values"]["val_accuracy"] == max(values)
    assert best["epoch"] == max(e["epoch"] for e in listing["entries"] if e["values"]["val_accuracy"] == max(values))
    assert checkpoint.best == pytest.approx(max(values), abs=1e-5)


@pytest.mark.parametrize("name, expected", [  # no epochs without --template: see test_cli_gaps.py
    ("model.05-0.5710.keras", {"value": 0.571}),
    ("weights.12-0.31.hdf5", {"value": 0.31}),
    ("ep003-loss0.412-val_loss0.398.h5", {"loss": 0.412, "val_loss": 0.398}),
    ("model_epoch=7_val_acc=0.93.keras", {"val_acc": 0.93}),
    ("best.keras", {}),
])
def test_ls_reads_values_from_conventional_names(name, expected):
    assert _parse_name(name, None) == expected


def test_ls_template_parsing():
    regex = cli.template_regex("runs/ckpt-{epoch}-{batch}-{val/loss:.2e}")
    assert _parse_name("ckpt-3-40-1.25e-03", regex) == {"epoch": 3, "batch": 40, "val/loss": 1.25e-3}
    assert _parse_name("other.keras", regex) is None


def test_ls_manager_directory(capsys, tmp_path):
    manager = manager_dir(tmp_path / "run")
    (tmp_path / "run" / "ckpt-9.data-00000-of-00001").write_bytes(b"left by a crash")
    code, out, _ = run(capsys, "ls", tmp_path / "run")
    assert code == 0 and "CheckpointManager" in out and "latest" in out and "ckpt-9.data" in out
    lines = [line for line in out.splitlines() if line.startswith("ckpt-")]
    assert [line.split()[0] for line in lines] == ["ckpt-4", "ckpt-3", "ckpt-2"]
    assert lines[0].split()[3] == "40"  # the step variable
    code, out, _ = run(capsys, "ls", tmp_path / "run", "--latest")
    assert code == 0 and out.strip() == manager.latest_checkpoint
    code, out, err = run(capsys, "ls", tmp_path / "run", "--best")
    assert code == 1 and out == "" and "no best checkpoint" in err


def test_ls_wrong_inputs(capsys, tmp_path, files):
    code, _, err = run(capsys, "ls", tmp_path / "nowhere")
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, "ls", files["keras"])
    assert code == 2 and "not a directory" in err and "kerasckpt inspect" in err
    code, _, err = run(capsys, "ls", tmp_path, "--template", "model.{epoch:02d.keras")
    assert code == 2 and "not a valid filepath template" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, _ = run(capsys, "ls", empty)
    assert code == 0 and "0 checkpoint(s)" in out


def test_ls_in_a_subprocess(tmp_path):
    fit_with_model_checkpoint(tmp_path, epochs=2)
    shutil.copy(DATA / "seq_adam.keras", tmp_path / "imported.keras")
    done = run_process("ls", ".", cwd=tmp_path)
    assert done.returncode == 0 and "model.02-" in done.stdout and "imported.keras" in done.stdout
    assert done.stderr == ""


def test_convert_with_model_keeps_only_what_the_source_holds(capsys, tmp_path, files):
    model = make_model(compile=False)  # its files hold weights only, no optimizer state
    model.save_weights(tmp_path / "plain.weights.h5")
    code, out, _ = run(capsys, "convert", tmp_path / "plain.weights.h5", tmp_path / "plain.keras",
                       "--model", files["architecture"])
    assert code == 0 and "the source holds no optimizer state" in out
    loaded = kerasckpt.models.load_model(tmp_path / "plain.keras")
    assert loaded.optimizer is None  # nothing of the --model file's optimizer leaked in
    for a, b in zip(model.weights, loaded.weights):
        assert np.array_equal(a.numpy(), b.numpy())


def test_convert_with_an_uncompiled_model_file_cannot_place_optimizer_state(capsys, tmp_path, files):
    make_model(compile=False).save(tmp_path / "uncompiled.keras")
    code, _, err = run(capsys, "convert", files["weights.h5"], tmp_path / "out.keras", "--model",
                       tmp_path / "uncompiled.keras")
    assert code == 2 and "has no compile configuration" in err

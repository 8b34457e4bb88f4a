"""`kerasckpt` gaps found by an audit: exit status under a closed pipe, `verify` of directory trees and bad input,
`inspect --stats` on structural damage, `ls` epochs only from a template or the file, native index metadata."""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import kerasckpt
from kerasckpt import cli
from kerasckpt.checkpoint import bundle as native_files
from kerasckpt.cli import parser
from kerasckpt.cli.ls import _parse_name
from test_cli import REPO, data_file_of, flip_inside, make_model, manager_dir, no_traceback, run, trained


def popen(*argv, unbuffered=True):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen([sys.executable, "-m", "kerasckpt", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def closed_reader(*argv, unbuffered=True, lines=0):
    """Run `kerasckpt argv...` into a pipe whose reader takes `lines` lines and closes: `(exit status, stderr)`."""
    proc = popen(*argv, unbuffered=unbuffered)
    for _ in range(lines):
        proc.stdout.readline()
    proc.stdout.close()  # every later write of the child fails with EPIPE
    err = proc.stderr.read().decode()
    proc.stderr.close()
    return proc.wait(timeout=120), err


def many_values(prefix, n, shift=0.0):
    """A native checkpoint of `n` small values (diff --all prints more than a pipe buffer holds)."""
    values = [(f"v/{i:05d}", np.full(4, i + shift, dtype="float32")) for i in range(n)]
    native_files.write_bundle(str(prefix), values)
    return prefix


# ----------------------------------------------------------------------------------------- 1. closed pipes

@pytest.mark.parametrize("unbuffered", [True, False])
def test_diff_into_a_closed_pipe_keeps_the_answer(tmp_path, unbuffered):
    a, b = many_values(tmp_path / "a", 5), many_values(tmp_path / "b", 5, shift=0.5)
    code, err = closed_reader("diff", a, b, unbuffered=unbuffered)
    assert code == 1 and err == ""  # different, whatever happened to the output; no traceback, no "Exception ignored"
    code, err = closed_reader("diff", a, a, unbuffered=unbuffered)
    assert code == 0 and err == ""


@pytest.mark.parametrize("unbuffered", [True, False])
def test_diff_cut_off_after_the_first_line_like_head(tmp_path, unbuffered):
    a, b = many_values(tmp_path / "a", 3000), many_values(tmp_path / "b", 3000, shift=0.25)
    code, err = closed_reader("diff", "--all", a, b, unbuffered=unbuffered, lines=1)
    assert code == 1 and err == ""


def test_head_in_a_shell_pipeline_with_pipefail(tmp_path):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    a, b = many_values(tmp_path / "a", 3000), many_values(tmp_path / "b", 3000, shift=0.25)
    script = (f"set -o pipefail; {sys.executable} -m kerasckpt diff --all {a} {b} | head -3 >/dev/null")
    done = subprocess.run([bash, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1 and no_traceback(done.stderr) and "Exception ignored" not in done.stderr


def test_other_commands_into_a_closed_pipe_keep_their_status(tmp_path):
    good = tmp_path / "good.weights.h5"
    make_model().save_weights(good)
    bad = tmp_path / "bad.weights.h5"
    raw = bytearray(good.read_bytes())
    raw[40] ^= 0x40  # inside the checksummed header
    bad.write_bytes(bytes(raw))
    assert closed_reader("verify", good) == (0, "")
    assert closed_reader("verify", tmp_path)[0] == 1
    assert closed_reader("inspect", good) == (0, "")
    assert closed_reader("ls", tmp_path, "--latest") == (0, "")


def test_closed_pipe_before_an_answer_exits_141(monkeypatch, capsys):
    def cut_off(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(parser, "cmd_ls", cut_off)
    assert cli.main(["ls", "."]) == 141
    out, err = capsys.readouterr()
    assert err == ""

    def answered_then_cut_off(args):
        args.outcome = 1
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(parser, "cmd_ls", answered_then_cut_off)
    assert cli.main(["ls", "."]) == 1


# ----------------------------------------------------------------------------------------- 2. verify and inspect

def damaged_tree(root):
    """Intact files on top; a manager directory with a damaged value and a prefix with damaged padding below."""
    model = trained(1)
    model.save(root / "m.keras")
    model.save_weights(root / "pre" / "w")
    model.save_weights(root / "pre" / "w2")
    raw = bytearray(data_file_of(root / "pre" / "w2").read_bytes())
    raw[10] ^= 0x01  # between values: only the padding check sees it
    data_file_of(root / "pre" / "w2").write_bytes(bytes(raw))
    manager = manager_dir(root / "deep" / "mgr", saves=3)
    with native_files.CheckpointReader(manager.checkpoints[1]) as reader:
        kernel = np.array(reader.read("model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE"))
    flip_inside(data_file_of(manager.checkpoints[1]), kernel)
    return manager


def test_verify_directory_recurses_into_subdirectories(capsys, tmp_path):
    manager = damaged_tree(tmp_path)
    code, out, err = run(capsys, "verify", tmp_path)
    assert code == 1 and err == ""
    assert f"OK        {tmp_path / 'm.keras'}" in out and f"OK        {tmp_path / 'pre' / 'w'}  " in out
    assert f"DAMAGED   {tmp_path / 'pre' / 'w2'}" in out and "byte 10 lies between values" in out
    assert f"DAMAGED   {manager.checkpoints[1]}" in out and "'model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE'" in out
    assert f"OK        {tmp_path / 'deep' / 'mgr' / 'checkpoint'}" in out  # each manager's state file
    assert "5 of 7 intact." in out  # m.keras, w, w2, the state file, 3 checkpoints
    code, out, _ = run(capsys, "verify", tmp_path, tmp_path / "deep", "--json")
    results = json.loads(out)["results"]
    assert code == 1 and len(results) == 11


def test_verify_empty_directory_is_bad_input(capsys, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no checkpoints here")
    code, out, err = run(capsys, "verify", tmp_path / "empty")
    assert code == 2 and out == "" and "nothing to verify" in err and str(tmp_path / "empty") in err
    assert "DAMAGED" not in out + err and no_traceback(err)


def test_verify_missing_path_exits_2_and_still_verifies_the_others(capsys, tmp_path):
    good = tmp_path / "good.keras"
    make_model().save(good)
    code, out, err = run(capsys, "verify", tmp_path / "nope.keras")
    assert code == 2 and out == "" and "no such file or checkpoint" in err and "nope.keras" in err
    code, out, err = run(capsys, "verify", good, tmp_path / "nope.keras")
    assert code == 2 and f"OK        {good}" in out and "1 path(s) not verified" in out and "nope.keras" in err
    code, out, _ = run(capsys, "verify", good, tmp_path / "nope.keras", "--json")
    report = json.loads(out)
    assert code == 2 and not report["intact"] and report["errors"][0]["path"] == str(tmp_path / "nope.keras")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a checkpoint")
    code, _, err = run(capsys, "verify", notes)
    assert code == 2 and "unknown format" in err


def test_verify_missing_path_in_a_subprocess_exits_2():
    done = subprocess.run([sys.executable, "-m", "kerasckpt", "verify", "no/such/path.keras"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and "no such file" in done.stderr and no_traceback(done.stderr)


def test_inspect_stats_finds_damage_between_values_like_verify(capsys, tmp_path):
    damaged_tree(tmp_path)
    target = tmp_path / "pre" / "w2"
    code, out, _ = run(capsys, "verify", target)
    assert code == 1
    code, out, err = run(capsys, "inspect", target, "--stats")
    assert code == 1 and "DAMAGED" in out and "byte 10 lies between values" in out and no_traceback(err)
    code, out, _ = run(capsys, "inspect", target, "--stats", "--json")
    report = json.loads(out)
    assert code == 1 and report["damaged"] == [] and "byte 10" in report["problems"][0]
    code, out, _ = run(capsys, "inspect", tmp_path / "pre" / "w", "--stats", "--json")
    assert code == 0 and json.loads(out)["problems"] == []


def test_inspect_of_a_file_damaged_where_it_opens_exits_1_like_verify(capsys, tmp_path):
    target = tmp_path / "w.weights.h5"
    make_model().save_weights(target)
    raw = bytearray(target.read_bytes())
    raw[40] ^= 0x40
    target.write_bytes(bytes(raw))
    assert run(capsys, "verify", target)[0] == 1
    for extra in ([], ["--stats"]):
        code, out, err = run(capsys, "inspect", target, *extra)
        assert code == 1 and out == "" and "is damaged" in err and "w.weights.h5" in err and no_traceback(err)


# ----------------------------------------------------------------------------------------- 3. ls epochs

@pytest.mark.parametrize("name, expected", [
    ("m2.keras", {}),
    ("w2", {}),
    ("model.05-0.5710.keras", {"value": 0.571}),
    ("ep003-loss0.412-val_loss0.398.h5", {"loss": 0.412, "val_loss": 0.398}),
    ("model_epoch=7_val_acc=0.93.keras", {"val_acc": 0.93}),
    ("ckpt_step300.weights.h5", {}),
])
def test_ls_reads_no_epoch_from_a_name_without_a_template(name, expected):
    assert _parse_name(name, None) == expected


def test_ls_shows_epochs_only_from_the_template(capsys, tmp_path):
    model = make_model()
    for name in ("m.keras", "m2.keras", "model.03-0.5000.keras"):
        model.save(tmp_path / name)
    model.save_weights(tmp_path / "w2")
    code, out, _ = run(capsys, "ls", tmp_path, "--json")
    listing = json.loads(out)
    assert code == 0 and all(e["epoch"] is None and e["batch"] is None for e in listing["entries"])
    assert {e["name"]: e["values"] for e in listing["entries"]}["model.03-0.5000.keras"] == {"value": 0.5}
    code, out, _ = run(capsys, "ls", tmp_path)
    assert code == 0 and "epoch" not in out.splitlines()[1]  # no epoch column
    code, out, _ = run(capsys, "ls", tmp_path, "--template", "model.{epoch:02d}-{val_loss:.4f}.keras", "--json")
    epochs = {e["name"]: e["epoch"] for e in json.loads(out)["entries"]}
    assert code == 0 and epochs == {"model.03-0.5000.keras": 3, "m.keras": None, "m2.keras": None, "w2": None}


def test_ls_help_says_where_epochs_come_from(capsys):
    assert cli.main(["ls", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "never guessed from a number in a name" in out and "--template" in out


# ----------------------------------------------------------------------------------------- 4. native metadata

def rewrite_index(prefix, edit):
    """Rewrite the checkpoint `prefix` with `edit(record dict)` applied to kerasckpt's record, as a writer of that
    record would have."""
    with native_files.CheckpointReader(str(prefix)) as reader:
        record = json.loads(reader.raw_bytes(native_files.KERASCKPT_KEY))
        entries = [(k, reader.read(k)) for k in reader.keys() if k != native_files.KERASCKPT_KEY]
    edit(record)
    native_files.write_bundle(str(prefix), entries + [(native_files.KERASCKPT_KEY, json.dumps(record).encode())])


def metadata_rows(out):
    return dict(re.findall(r"^  (format version|kerasckpt version|saved at)\s+(.+)$", out, re.M))


def test_inspect_native_shows_the_format_version(capsys, tmp_path):
    prefix = tmp_path / "ckpt"
    make_model().save_weights(prefix)
    code, out, _ = run(capsys, "inspect", prefix)
    rows = metadata_rows(out)
    assert code == 0 and rows["format version"] == str(native_files.FORMAT_VERSION)
    with native_files.CheckpointReader(str(prefix)) as reader:
        recorded = getattr(reader, "file_metadata", None) or {}
    if recorded.get("kerasckpt_version"):  # written by a kerasckpt that records who wrote the index and when
        assert rows["kerasckpt version"] == str(recorded["kerasckpt_version"]) == kerasckpt.__version__
    if recorded.get("saved_at"):
        assert rows["saved at"] == str(recorded["saved_at"])


def test_inspect_native_shows_the_version_and_time_the_index_records(capsys, tmp_path):
    prefix = tmp_path / "ckpt"
    make_model().save_weights(prefix)
    recorded = {"kerasckpt_version": "9.8.7", "saved_at": "2031-01-02 03:04:05"}

    def record(payload):  # where the writer records them: `written_by`, or the metadata for a writer without it
        payload["written_by" if isinstance(payload.get("written_by"), dict) else "metadata"].update(recorded)

    rewrite_index(prefix, record)
    code, out, _ = run(capsys, "inspect", prefix)
    version = str(native_files.FORMAT_VERSION)
    assert code == 0 and metadata_rows(out) == {"format version": version, "kerasckpt version": "9.8.7",
                                                "saved at": "2031-01-02 03:04:05"}
    code, out, _ = run(capsys, "inspect", prefix, "--json")
    meta = json.loads(out)["metadata"]
    assert meta["kerasckpt version"] == "9.8.7" and meta["format version"] == version
    stamp = 1700000000.5
    recorded["saved_at"] = stamp
    rewrite_index(prefix, record)
    code, out, _ = run(capsys, "inspect", prefix)
    import datetime
    assert metadata_rows(out)["saved at"] == datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def test_inspect_native_index_without_the_new_fields_shows_none_of_them(capsys, tmp_path):
    prefix = tmp_path / "ckpt"
    make_model().save_weights(prefix)
    fields = ("kerasckpt_version", "format_version", "saved_at")

    def strip(payload):  # an index written before kerasckpt recorded who wrote it
        payload.pop("written_by", None)
        for key in fields:
            payload.pop(key, None)
            payload["metadata"].pop(key, None)
        payload["metadata"]["odd"] = {"nested": [1, 2]}  # what the tool does not know is not shown as a field

    rewrite_index(prefix, strip)
    code, out, err = run(capsys, "inspect", prefix)
    assert code == 0 and err == "" and metadata_rows(out) == {"format version": str(native_files.FORMAT_VERSION)}

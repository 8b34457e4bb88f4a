"""A save killed before its rename leaves `<name>.kctmp-<pid>-...`; the next save to that name removes
those of dead processes and never touches one a live process may still be writing."""
import os
import subprocess
import sys

import pytest

from kerasckpt import _fileio


def dead_pid():
    """The pid of a process that has finished (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("name", ["m.keras", "w.weights.h5", "m.h5", "w.h5"])
def test_a_save_removes_leftover_temp_files_of_dead_processes(kit, name, tmp_path):
    model = kit.make_model("sequential")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = tmp_path / name
    dead = tmp_path / f"{name}{_fileio.TEMP_MARK}{dead_pid()}-abcd"
    alive = tmp_path / f"{name}{_fileio.TEMP_MARK}{os.getppid()}-abcd"  # the parent: alive, may be writing
    other = tmp_path / f"other.keras{_fileio.TEMP_MARK}{dead_pid()}-abcd"  # another file's leftover: not ours
    for leftover in (dead, alive, other):
        leftover.write_bytes(b"half a file")
    (model.save if name.startswith("m.") else model.save_weights)(path)
    assert not dead.exists()
    assert alive.exists() and other.exists()
    assert sorted(os.listdir(tmp_path)) == sorted([name, alive.name, other.name])

"""Every code block in the README runs as written, in order, in one fresh directory.

```python blocks run as scripts, ```bash blocks with `bash -e -o pipefail`, so a later block can use the
files an earlier one wrote (the command-line examples read the checkpoints of the Python ones). `python`
and `kerasckpt` on the PATH are this interpreter and this checkout. Only the two install commands at the
top are not run here: CI runs exactly those. Blocks with `s3://` URLs run against the loopback S3 server
of the tests (tests/s3server.py), reached through the usual AWS_* environment variables, with the bucket
`my-bucket` created first; where that server cannot start they are skipped (failed in CI). The directory
starts with copies of checkpoints TensorFlow wrote (tests/data/tf), under the names its tutorials use:
`training_1/` (tf.keras 2 `save_weights`), `tf_ckpts/` (the "Training checkpoints" guide) and `tf1/` (a
TensorFlow 1 `Saver`).
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", flags=re.S | re.M)
BLOCKS = [(lang.strip(), code) for lang, code in FENCE.findall(README)]
INSTALL_COMMANDS = {'python -m pip install . && python examples/quickstart.py',
                    'python -m pip install -e ".[test]" && python -m pytest'}
RUN = [(i, lang, code) for i, (lang, code) in enumerate(BLOCKS) if code.strip() not in INSTALL_COMMANDS]
TF_CHECKPOINTS = {"training_1": "tf_keras/sequential/training_1", "tf_ckpts": "guide/tf_ckpts", "tf1": "tf1_saver/run"}


def test_the_readme_has_examples_in_python_and_shell():
    assert sum(lang == "python" for lang, _ in BLOCKS) >= 3
    assert sum(lang == "bash" and "kerasckpt" in code for lang, code in BLOCKS) >= 2


def test_the_install_commands_are_the_only_blocks_not_run():
    assert len(BLOCKS) - len(RUN) == len(INSTALL_COMMANDS)


def test_every_block_is_python_or_bash():
    assert [lang for lang, _ in BLOCKS if lang not in ("python", "bash")] == []


def _uses_s3(code):
    return "s3://" in code


@pytest.fixture(scope="module")
def s3_env(request):
    """The environment that points the README's s3:// blocks at the loopback server; None when it cannot start."""
    if not any(_uses_s3(code) for _, _, code in RUN):
        return None
    try:
        server = request.getfixturevalue("s3_server")
    except pytest.skip.Exception:
        return None
    server.make_bucket("my-bucket")
    return server.env()


@pytest.fixture(scope="module")
def session(tmp_path_factory, s3_env):
    """Runs the blocks in order on demand; remembers each result, so a failure is reported once."""
    workdir = tmp_path_factory.mktemp("readme")
    for name, source in TF_CHECKPOINTS.items():
        shutil.copytree(REPO / "tests" / "data" / "tf" / source, workdir / name)
    shims = tmp_path_factory.mktemp("bin")
    for name, command in (("python", f'exec "{sys.executable}" "$@"'),
                          ("kerasckpt", f'exec "{sys.executable}" -m kerasckpt "$@"')):
        (shims / name).write_text(f"#!/bin/sh\n{command}\n")
        (shims / name).chmod(0o755)
    env = {**os.environ, **(s3_env or {}), "OMP_NUM_THREADS": "1", "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    results = {}

    def run_through(position):
        for i, lang, code in RUN[:position + 1]:
            if i in results:
                continue
            if _uses_s3(code) and s3_env is None:
                results[i] = None  # skipped: no S3 server here
                continue
            script = workdir / f"block_{i}.{'py' if lang == 'python' else 'sh'}"
            script.write_text(code)
            argv = [sys.executable, str(script)] if lang == "python" else ["bash", "-e", "-o", "pipefail", str(script)]
            results[i] = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=600, env=env)
        return results[RUN[position][0]], [j for j, _, _ in RUN[:position] if results[j] and results[j].returncode != 0]

    return run_through


@pytest.mark.parametrize("position", range(len(RUN)), ids=[f"block{i}-{lang}" for i, lang, _ in RUN])
def test_readme_block_runs(session, position):
    done, failed_before = session(position)
    if done is None:
        pytest.skip("the loopback S3 server cannot start here (see tests/s3server.py)")
    assert not failed_before, f"README blocks {failed_before} failed before this one"
    assert done.returncode == 0, (RUN[position][2] + "\n--- stdout\n" + done.stdout[-3000:] + "\n--- stderr\n"
                                  + done.stderr[-3000:])
    assert "Traceback" not in done.stderr

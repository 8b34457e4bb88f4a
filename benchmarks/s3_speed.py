"""Saving to and loading from s3:// on a loopback S3 server, against s3fs moving the same bytes.

Starts moto's S3 server (`pip install "moto[server]" s3fs`) in a child process on 127.0.0.1, builds a model
of about `--params` float32 parameters (an input and four square Dense layers) and times, interleaved in
every repeat:
    save        `model.save_weights("s3://.../m.weights.h5")` and `model.save("s3://.../m.keras")`: the file
                laid out in memory and streamed from the arrays in a multipart upload, checksummed;
                `save_weights("s3://.../ckpt")` (a native prefix: data object, then the index) and
                `CheckpointManager(..., "s3://...", max_to_keep=2).save()` (also the state object, the
                retention and its lookups)
    put_file    the reference: s3fs `put_file` of a local file holding the same bytes (page cache, no fsync)
    load        `model.load_weights(url)` / `load_model(url)` / `load_weights(prefix)`: download checked
                against the upload's CRC-32, then every value's checksum
    cat_file    the reference: s3fs `cat_file` of the same object (bytes in memory, nothing checked)
and the training stall with `save_in_background=True` to s3:// (the whole time the training thread is held:
`ModelCheckpoint.on_epoch_end`, `CheckpointManager.save()`, a `BackupAndRestore` backup in `fit()`) against a
memory copy of the same arrays, with the foreground stall beside it.
Both sides talk to the same server over the same loopback, so the ratios say what kerasckpt adds.

    OMP_NUM_THREADS=1 python benchmarks/s3_speed.py [--params 1e7] [--repeats 5]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import _bench
import numpy as np

import kerasckpt
from kerasckpt.callbacks import BackupAndRestore, ModelCheckpoint
from kerasckpt.checkpoint import Checkpoint, CheckpointManager, CheckpointOptions


def start_server():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
            return proc, endpoint
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto's S3 server did not start: pip install 'moto[server]' s3fs")


def measure(params, repeats, endpoint, directory):
    import s3fs
    options = {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    fs.call_s3("create_bucket", Bucket="kc-bench")
    model = _bench.build_model(params)
    model.compile(optimizer="sgd", loss="mse")
    url = "s3://kc-bench/run"
    model.save_weights(f"{url}/m.weights.h5", storage_options=options)  # warm-up: connections, first upload
    local = os.path.join(directory, "same-bytes.weights.h5")
    with open(local, "wb") as f:
        f.write(fs.cat_file(f"{url}/m.weights.h5"))
    restored = _bench.build_model(params, seed=1)
    manager = CheckpointManager(Checkpoint(model=model), f"{url}/managed", max_to_keep=2, storage_options=options)
    cases = {
        "save .weights.h5": (lambda: model.save_weights(f"{url}/m.weights.h5", storage_options=options), None),
        "save .keras": (lambda: model.save(f"{url}/m.keras", storage_options=options), None),
        "save prefix": (lambda: model.save_weights(f"{url}/ckpt", storage_options=options), None),
        "CheckpointManager.save": (manager.save, None),
        "put_file": (lambda: fs.put_file(local, f"{url}/ref.weights.h5"), None),
        "load_weights": (lambda: restored.load_weights(f"{url}/m.weights.h5", storage_options=options), None),
        "load_model": (lambda: kerasckpt.models.load_model(f"{url}/m.keras", storage_options=options), None),
        "load prefix": (lambda: restored.load_weights(f"{url}/ckpt", storage_options=options), None),
        "cat_file": (lambda: fs.cat_file(f"{url}/ref.weights.h5"), None),
    }
    times = _bench.interleaved(cases, repeats)
    same = all(np.array_equal(a, b) for a, b in zip(model.get_weights(), restored.get_weights()))
    return {"params": model.count_params(), "bytes": os.path.getsize(local), "times": times, "restored_equal": same,
            "stall": stall(model, options, url, repeats), "native_stall": native_stall(model, options, url, repeats)}


def stall(model, options, url, repeats):
    arrays = [w.value for w in model.weights]
    copies = [np.zeros_like(a) for a in arrays]
    fg = ModelCheckpoint(f"{url}/fg.weights.h5", save_weights_only=True, storage_options=options)
    bg = ModelCheckpoint(f"{url}/bg.weights.h5", save_weights_only=True, save_in_background=True,
                         storage_options=options)
    for cb in (fg, bg):
        cb.set_model(model)
        cb.on_train_begin()
    logs = {"loss": 1.0}
    bg.on_epoch_end(0, logs)  # warm-up: allocates the snapshot buffers
    bg.wait_until_finished()
    t_copy, t_fg, t_bg, t_done = [], [], [], []
    for epoch in range(1, repeats + 1):
        start = time.perf_counter()
        for dst, src in zip(copies, arrays):
            np.copyto(dst, src)
        t_copy.append(time.perf_counter() - start)
        start = time.perf_counter()
        fg.on_epoch_end(epoch, logs)
        t_fg.append(time.perf_counter() - start)
        start = time.perf_counter()
        bg.on_epoch_end(epoch, logs)
        t_bg.append(time.perf_counter() - start)
        bg.wait_until_finished()
        t_done.append(time.perf_counter() - start)
    for cb in (fg, bg):
        cb.on_train_end()
    med = statistics.median
    return {"memcpy": med(t_copy), "foreground": med(t_fg), "background": med(t_bg), "background_complete": med(t_done)}


def native_stall(model, options, url, repeats):
    """Training stall of a background `CheckpointManager.save()` and of a `BackupAndRestore` backup in `fit()`
    to s3:// (the previous save complete first, so only the hold of the training thread is timed)."""
    weights = [w.value for w in model.weights]
    manager = CheckpointManager(Checkpoint(model=model), f"{url}/bg-managed", max_to_keep=2, storage_options=options,
                                options=CheckpointOptions(save_in_background=True))
    manager.save()  # warm-up: allocates the snapshot buffers
    t_copy, t_manager = [], []
    copies = [np.empty_like(a) for a in weights]
    for _ in range(repeats):
        manager.wait_until_finished()
        start = time.perf_counter()
        for dst, src in zip(copies, weights):
            np.copyto(dst, src)
        t_copy.append(time.perf_counter() - start)
        start = time.perf_counter()
        manager.save()
        t_manager.append(time.perf_counter() - start)
    manager.wait_until_finished()

    # BackupAndRestore holds the weights and the optimizer's variables (Adam: two slots per weight)
    model.compile(optimizer="adam", loss="mse")
    backup = BackupAndRestore(f"{url}/backup", save_freq=1, save_in_background=True, storage_options=options)
    real, t_backup = backup._at_consistent_point, []

    def timed(kind, epoch, batch):
        backup.wait_until_finished()  # the previous upload is done: time the hold of the training thread only
        start = time.perf_counter()
        real(kind, epoch, batch)
        if kind == "batch":
            t_backup.append(time.perf_counter() - start)
    backup._at_consistent_point = timed
    width = model.layers[0].kernel.shape[0]  # every layer is width x width
    x, y = np.ones((repeats + 2, width), np.float32), np.zeros((repeats + 2, width), np.float32)
    model.fit(x, y, batch_size=1, epochs=1, verbose=0, callbacks=[backup])
    state = [v.value for v in model.weights] + [v.value for v in model.optimizer.variables]
    t_state_copy = []
    for _ in range(repeats):
        copies = [np.empty_like(a) for a in state]
        for c in copies:
            c.fill(0)
        start = time.perf_counter()
        for dst, src in zip(copies, state):
            np.copyto(dst, src)
        t_state_copy.append(time.perf_counter() - start)
    med = statistics.median
    return {"memcpy weights": med(t_copy), "CheckpointManager.save": med(t_manager),
            "memcpy weights + optimizer": med(t_state_copy), "BackupAndRestore": med(t_backup[1:])}


def report(result):
    t, mb = result["times"], result["bytes"] / 1e6
    ms = lambda s: f"{s * 1e3:.0f} ms ({mb / s:.0f} MB/s)"  # noqa: E731
    label = _bench.params_label(result["params"])
    rows = [[label, "save .weights.h5", ms(t["save .weights.h5"]), "s3fs put_file " + ms(t["put_file"]),
             f"{t['put_file'] / t['save .weights.h5']:.2f}"],
            [label, "save .keras", ms(t["save .keras"]), "s3fs put_file " + ms(t["put_file"]),
             f"{t['put_file'] / t['save .keras']:.2f}"],
            [label, "load_weights", ms(t["load_weights"]), "s3fs cat_file " + ms(t["cat_file"]),
             f"{t['cat_file'] / t['load_weights']:.2f}"],
            [label, "load_model", ms(t["load_model"]), "s3fs cat_file " + ms(t["cat_file"]),
             f"{t['cat_file'] / t['load_model']:.2f}"],
            [label, "save_weights prefix", ms(t["save prefix"]), "s3fs put_file " + ms(t["put_file"]),
             f"{t['put_file'] / t['save prefix']:.2f}"],
            [label, "CheckpointManager.save", ms(t["CheckpointManager.save"]), "s3fs put_file " + ms(t["put_file"]),
             f"{t['put_file'] / t['CheckpointManager.save']:.2f}"],
            [label, "load_weights prefix", ms(t["load prefix"]), "s3fs cat_file " + ms(t["cat_file"]),
             f"{t['cat_file'] / t['load prefix']:.2f}"]]
    print(_bench.table(["params", "s3:// operation", "kerasckpt", "reference (same bytes, same run)",
                        "throughput ratio"], rows))
    s = result["stall"]
    print()
    print(_bench.table(["params", "memcpy (reference)", "stall, background (vs memcpy)", "stall, foreground",
                        "background upload complete after"],
                       [[label, f"{s['memcpy'] * 1e3:.1f} ms", f"{s['background'] * 1e3:.1f} ms "
                         f"({s['background'] / s['memcpy']:.2f}x)", f"{s['foreground'] * 1e3:.0f} ms",
                         f"{s['background_complete'] * 1e3:.0f} ms"]]))
    n = result["native_stall"]
    print()
    print(_bench.table(["params", "background save to s3://", "stall", "memcpy of the same arrays", "ratio"], [
        [label, "CheckpointManager.save()", f"{n['CheckpointManager.save'] * 1e3:.1f} ms",
         f"{n['memcpy weights'] * 1e3:.1f} ms", f"{n['CheckpointManager.save'] / n['memcpy weights']:.2f}x"],
        [label, "BackupAndRestore backup (Adam)", f"{n['BackupAndRestore'] * 1e3:.1f} ms",
         f"{n['memcpy weights + optimizer'] * 1e3:.1f} ms",
         f"{n['BackupAndRestore'] / n['memcpy weights + optimizer']:.2f}x"]]))
    print(f"# {mb:.1f} MB per file; loaded weights equal the saved ones: {result['restored_equal']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=1e7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    print(f"# s3:// on a loopback moto server, medians of {args.repeats} interleaved runs; {_bench.machine()}")
    proc, endpoint = start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="kerasckpt-bench-") as directory:
            result = measure(int(args.params), args.repeats, endpoint, directory)
    finally:
        proc.terminate()
        proc.wait()
    report(result)
    print(f"# after: {_bench.machine()}")
    _bench.save_json(args.json, {"benchmark": "s3_speed", "machine": _bench.machine(), "results": [result]})
    return result


if __name__ == "__main__":
    main()

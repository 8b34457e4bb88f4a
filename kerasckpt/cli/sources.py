"""Opening a checkpoint of any format by its path: `resolve`, `open_source` and the `Source` classes.

A `Source` lists variables with shape and dtype, reads verified values and describes its metadata.
"""
import json
import os
import re

from kerasckpt import _storage
from kerasckpt.errors import CheckpointError
from kerasckpt.cli.errors import CLIError
from kerasckpt.cli.output import _natural

MODEL_ENDINGS = (".keras", ".weights.h5", ".h5", ".hdf5")
FORMAT_NAMES = {
    "keras": ".keras archive (Keras 3 zip: architecture, weights, optimizer state)",
    "weights.h5": ".weights.h5 (Keras 3 weights layout)",
    "h5-model": "legacy .h5 (Keras 2 layout: architecture, weights, optimizer state)",
    "h5-weights": "legacy .h5 (Keras 2 weights layout)",
    "native": "checkpoint (TensorFlow tensor bundle: prefix.index + data shards)",
}
SHORT_NAMES = {"keras": ".keras", "weights.h5": ".weights.h5", "h5-model": ".h5 model", "h5-weights": ".h5 weights",
               "native": "checkpoint"}
DATA_FILE = re.compile(r"\.data-\d{5}-of-\d{5}(?:\.g\d+)?$")  # a checkpoint's data file (0.1's `.gN` too)
NUMBERED = re.compile(r"^(.*)-(\d+)$")  # a numbered checkpoint prefix: `ckpt-3`
STORAGE_OPTIONS = {}  # for fsspec URLs: `kerasckpt --storage-options JSON` (credentials come from the environment)


def _sniff(path):
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as err:
        raise CLIError(f"cannot read '{path}': {err.strerror}.") from None
    from kerasckpt.saving import h5file
    if head[:4] == b"PK\x03\x04":
        return "keras"
    if head[:8] == h5file.HDF5_SIGNATURE or head == h5file.MAGIC:
        return "h5"
    if head[:8] == b"KCKPTIDX" or _has_table_magic(path):
        return "index"
    return None


def _has_table_magic(path):
    from kerasckpt.checkpoint import sstable
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8))
            return f.read(8) == sstable.MAGIC.to_bytes(8, "little")
    except OSError:
        return False


def missing_error(path):
    parent = os.path.dirname(path) or "."
    base = os.path.basename(path)
    near = []
    if os.path.isdir(parent):
        names = sorted(n for n in os.listdir(parent) if not n.startswith("."))
        import difflib
        near = difflib.get_close_matches(base, names, n=3, cutoff=0.5) or [n for n in names if n[:3] == base[:3]][:3]
    hint = f" Similar names there: {', '.join(near)}." if near else ""
    return CLIError(f"no such file or checkpoint: '{path}'.{hint} Check the path; `kerasckpt ls DIR` lists the "
                    "checkpoints in a directory.")


def resolve(path):
    """`(kind, path)` of a checkpoint path: kind is "keras", "h5" (HDF5, layout decided on opening) or "native".

    A native checkpoint may be given as its prefix, its `.index` or one of its data files.
    """
    path = _storage.normalize(path)
    if _storage.is_url(path):
        return _resolve_url(path)
    if os.path.isdir(path) and not os.path.isfile(path + ".index"):
        return "native", _latest_in(path)
    lower = path.lower()
    if lower.endswith(".index") and os.path.isfile(path):
        return "native", path[:-len(".index")]
    if DATA_FILE.search(path) and os.path.isfile(path):
        return "native", path[:DATA_FILE.search(path).start()]
    if os.path.isfile(path + ".index"):
        return "native", path
    if not os.path.exists(path):
        raise missing_error(path)
    sniffed = _sniff(path)
    if lower.endswith(".keras"):
        return "keras", path  # the reader explains what is wrong with a .keras that is no zip
    if lower.endswith((".h5", ".hdf5")):
        return "h5", path
    if sniffed in ("keras", "h5"):
        return sniffed, path
    if sniffed == "index":
        raise CLIError(f"'{path}' looks like a checkpoint index with an unusual name. Checkpoint indexes end in "
                       "'.index'; pass the prefix (the path without '.index').")
    raise CLIError(f"'{path}': unknown format. kerasckpt reads .keras archives, .weights.h5 and legacy .h5/.hdf5 "
                   "files, and checkpoint prefixes (PREFIX.index + PREFIX.data-*). Pass one of those.")


def _resolve_url(url):
    """`(kind, url)` of a checkpoint on a store: a file by its ending; else a checkpoint prefix (or its .index or
    a data file), or a directory meaning its latest checkpoint."""
    lower = url.lower()
    kind = "keras" if lower.endswith(".keras") else "h5" if lower.endswith((".h5", ".hdf5")) else None
    if kind is None:
        data = DATA_FILE.search(url)
        prefix = url[:-len(".index")] if lower.endswith(".index") else url[:data.start()] if data else url
        if _storage.isfile(prefix + ".index", STORAGE_OPTIONS):
            return "native", prefix
        if _storage.isdir(url, STORAGE_OPTIONS):
            return "native", _latest_in(url)
    elif _storage.isfile(url, STORAGE_OPTIONS):
        return kind, url
    directory, name = _storage.split(url)
    near = [n for n in _storage.listdir(directory, STORAGE_OPTIONS) if n[:3] == name[:3]][:3]
    hint = f" Similar names there: {', '.join(near)}." if near else ""
    what = "file" if kind else "file or checkpoint"
    raise CLIError(f"no such {what}: '{url}'.{hint} Check the URL; `kerasckpt ls DIR` lists the checkpoints in a "
                   "directory.")


def _latest_in(directory):
    """The latest checkpoint a CheckpointManager recorded in `directory` (its state file)."""
    from kerasckpt.checkpoint import latest_checkpoint
    latest = latest_checkpoint(directory, storage_options=STORAGE_OPTIONS)
    if latest is None:
        raise CLIError(f"'{directory}' is a directory without a complete CheckpointManager checkpoint (no state file "
                       "naming one, and no complete numbered checkpoint). "
                       f"Pass a checkpoint file or prefix; `kerasckpt ls {directory}` lists what is in it.")
    return latest


class Source:
    """A checkpoint of any format opened for reading: its variables, metadata and verified values."""

    kind = None
    checksummed = True

    def variables(self):
        """`[(key, shape, dtype)]` in a stable order."""
        raise NotImplementedError

    def read(self, key):
        """The value under `key`, verified against its checksum when the file has one."""
        raise NotImplementedError

    def check(self, key):
        self.read(key)

    def check_structure(self):
        """Raise on structural damage that reading each value would not show."""

    def notes(self):
        """Remarks about the files that are not damage."""
        return []

    def info(self):
        """`[(label, value)]` of metadata, for display."""
        return []

    def has_architecture(self):
        return False

    def has_optimizer(self):
        return False

    def files(self):
        return [self.path]

    def normalized(self, key):
        """The key with layout-only prefixes removed, so that two files of one layout line up."""
        return key

    def comparable(self, key):
        """Whether `diff` compares the value of `key` (not the entries that describe a checkpoint)."""
        return True

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class NativeSource(Source):
    """A tensor-bundle checkpoint (TensorFlow's or kerasckpt's; kerasckpt 0.1's JSON index too)."""

    kind = "native"

    def __init__(self, prefix):
        from kerasckpt.checkpoint import bundle
        self.reader = bundle.CheckpointReader(prefix, STORAGE_OPTIONS)
        self.path = self.reader.prefix

    def variables(self):
        keys = sorted(self.reader.keys(), key=_natural)
        return [(k, tuple(self.reader.shape(k)), self.reader.tf_dtype(k)) for k in keys]

    def read(self, key):
        return self.reader.read(key)

    def readable(self, key):
        """Whether `key` can become an array (a variant, e.g. a tf.data iterator's state, cannot)."""
        return self.reader.tf_dtype(key).readable

    def comparable(self, key):
        """Values only: not the object graph or kerasckpt's record (they name when the file was written)."""
        from kerasckpt.checkpoint import bundle
        return self.readable(key) and key not in (bundle.GRAPH_KEY, bundle.KERASCKPT_KEY)

    def check(self, key):
        self.reader.verify([key])

    def check_structure(self):
        """Every data file long enough, and zeros where the writer put zeros (alignment padding)."""
        self.reader.check_complete()
        self.reader.check_gaps()

    def notes(self):
        from kerasckpt.checkpoint import bundle
        stale = sorted(set(bundle.data_files_on_disk(self.path, STORAGE_OPTIONS)) - set(self.reader.data_files()))
        return [f"data files the index does not name (an earlier save of this prefix, deleted by the next save): "
                f"{', '.join(stale)}"] if stale else []

    def files(self):
        return [self.reader.index_path] + [_storage.join(self.reader.directory, n) for n in self.reader.data_files()]

    def has_optimizer(self):
        return any(k.startswith("optimizer/") for k in self.reader.keys())

    def normalized(self, key):
        from kerasckpt.checkpoint import bundle
        return key[:-len(bundle.VALUE_SUFFIX)] if key.endswith(bundle.VALUE_SUFFIX) else key

    def info(self):
        from kerasckpt.checkpoint import bundle
        try:
            meta = self.reader.metadata if isinstance(self.reader.metadata, dict) else {}
        except CheckpointError as err:  # kerasckpt's record lives in a data file: it may be damaged too
            meta = {}
            record_error = str(err)
        else:
            record_error = None
        out = self._written_by(meta) if record_error is None else [("kerasckpt record", "(damaged)")]
        out.append(("data files", ", ".join(self.reader.data_files()) or "(none)"))
        if meta.get("format") == "kerasckpt.backup/1":
            loop = meta.get("loop") or {}
            out.append(("written by", f"BackupAndRestore (backup #{meta.get('sequence')})"))
            out.append(("epoch", f"{loop.get('epoch')} epochs done, {loop.get('step')} batches into the next"))
            fingerprint = loop.get("fingerprint") or {}
            if fingerprint:
                out.append(("fit arguments", ", ".join(f"{k}={v}" for k, v in sorted(fingerprint.items()))))
        elif meta.get("save_counter") is not None and "save_counter" not in self.reader.entries \
                and not self.reader.has_tensor("save_counter" + bundle.VALUE_SUFFIX):
            out.append(("save_counter", str(meta["save_counter"])))
        for key in self.reader.keys():
            dtype, shape, path = self.reader.tf_dtype(key), self.reader.shape(key), self.normalized(key)
            if shape == () and dtype.kind in "iu" and (path.count("/") == 0 or path == "optimizer/iterations"):
                try:
                    out.append((path, str(int(self.reader.read(key)))))
                except CheckpointError:
                    out.append((path, "(damaged)"))
        return out

    def _written_by(self, meta):
        """Format version, kerasckpt version and save time, each only where the checkpoint records it."""
        version = _index_field(self.reader, meta, "format_version")
        out = [("format version", str(version))] if version is not None else [
            ("written by", "TensorFlow (or another tensor-bundle writer)")]
        writer = _index_field(self.reader, meta, "kerasckpt_version")
        if writer is not None:
            out.append(("kerasckpt version", str(writer)))
        saved = _index_field(self.reader, meta, "saved_at")
        if saved is not None:
            out.append(("saved at", _fmt_time(saved)))
        return out


def _index_field(reader, meta, name):
    """`name` from the reader's `file_metadata` (who wrote the index, and when) or else the saver's metadata;
    None when absent or not a plain value, as in indexes written before kerasckpt recorded it."""
    recorded = getattr(reader, "file_metadata", None)  # read defensively: older readers lack it
    recorded = recorded if isinstance(recorded, dict) else {}
    for value in (recorded.get(name), meta.get(name)):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            return value
    return None


def _fmt_time(value):
    """A save time as written (text), or seconds since the epoch shown as local time."""
    if isinstance(value, str):
        return value
    import datetime
    try:
        return datetime.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(value)


class H5FileSource(Source):
    """`.weights.h5` or legacy `.h5`, or the weights member of a `.keras` archive."""

    def __init__(self, path, src=None):
        from kerasckpt.saving import h5, h5file
        self.path = path
        self._fd = None
        if src is None:
            self._fd = _storage.open_descriptor(path, STORAGE_OPTIONS)
            try:
                src = h5file.H5Source(repr(path), self._fd)  # verifies the header and the metadata
            except BaseException:
                os.close(self._fd)
                raise
        self.src = src
        self.checksummed = src.verified
        legacy = h5.is_legacy_layout(src)
        self.kind = ("h5-model" if "model_config" in src.file.attrs else "h5-weights") if legacy else "weights.h5"

    def variables(self):
        return [(p, tuple(self.src.shape(p)), self.src.file[p].dtype) for p in sorted(self.src.datasets, key=_natural)]

    def read(self, key):
        return self.src.read(key)

    def has_architecture(self):
        return self.kind == "h5-model"

    def has_optimizer(self):
        return any(p.startswith(("optimizer/", "optimizer_weights/")) for p in self.src.datasets)

    def normalized(self, key):
        return key[len("model_weights/"):] if key.startswith("model_weights/") else key

    def _attr(self, node, key):
        from kerasckpt.saving import h5file
        try:
            return h5file.read_attr(node, key, self.src.label)
        except CheckpointError:
            return None

    def info(self):
        out = []
        attrs = self.src.file.attrs
        for key in ("keras_version", "backend"):
            value = self._attr(self.src.file, key)
            if value is not None:
                out.append((key, str(value)))
        if self.kind == "h5-model":
            config = _parse(self._attr(self.src.file, "model_config"))
            if isinstance(config, dict):
                out.append(("model", f"{config.get('class_name')} '{(config.get('config') or {}).get('name')}'"))
            training = _parse(self._attr(self.src.file, "training_config"))
            if isinstance(training, dict):
                out += _compile_info(training.get("optimizer_config"), training.get("loss"))
        elif "layer_names" in attrs or "layer_names0" in attrs:
            names = self._attr(self.src.file, "layer_names") or []
            out.append(("layers", ", ".join(names) if isinstance(names, list) else str(names)))
        out += self._step_info()
        return out

    def _step_info(self):
        """The optimizer's iteration count: `optimizer/vars/0` (Keras 3) or `optimizer_weights/*/iteration`."""
        for path in self.src.datasets:
            last = path.rsplit("/", 1)[-1]
            if path != "optimizer/vars/0" and not (path.startswith("optimizer_weights/") and
                                                   last in ("iteration", "iter:0", "iterations")):
                continue
            if self.src.shape(path) == () and self.src.file[path].dtype.kind in "iu":
                try:
                    return [("optimizer step", str(int(self.src.read(path))))]
                except CheckpointError:
                    return [("optimizer step", "(damaged)")]
        return []

    def close(self):
        self.src.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class KerasSource(H5FileSource):
    """A `.keras` archive: `metadata.json`, `config.json` and the `model.weights.h5` member."""

    def __init__(self, path):
        from kerasckpt.saving import keras_zip
        fd, archive = _storage.open_descriptor(path, STORAGE_OPTIONS), None
        try:
            archive = keras_zip.Archive(path, fd)  # checks the zip directory and every member's name and size
            self.metadata = archive.read_json(keras_zip.METADATA) if archive.has(keras_zip.METADATA) else {}
            self.config = archive.read_json(keras_zip.CONFIG) if archive.has(keras_zip.CONFIG) else None
            src = archive.weights_source()
        except BaseException:
            if archive is not None:
                archive.close()
            os.close(fd)
            raise
        super().__init__(path, src=src)
        self._fd, self.archive, self.kind = fd, archive, "keras"

    def has_architecture(self):
        return isinstance(self.config, dict)

    def check_members(self):
        """Read every member but the weights to its end, so the zip CRC-32 of each is checked."""
        from kerasckpt.saving import keras_zip
        for info in self.archive.zip.infolist():
            if info.filename != keras_zip.WEIGHTS:
                self.archive.read_bytes(info.filename, max(info.file_size, 1))

    def info(self):
        out = []
        meta = self.metadata if isinstance(self.metadata, dict) else {}
        for key in ("keras_version", "kerasckpt_version", "date_saved"):
            if key in meta:
                out.append((key, str(meta[key])))
        if isinstance(self.config, dict):
            out.append(("model", f"{self.config.get('class_name')} '{(self.config.get('config') or {}).get('name')}'"))
            compile_config = self.config.get("compile_config") or {}
            out += _compile_info(compile_config.get("optimizer"), compile_config.get("loss"))
        return out + self._step_info()

    def close(self):
        self.src.close()
        self.archive.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _parse(text):
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _compile_info(optimizer, loss):
    out = []
    if isinstance(optimizer, dict):
        cfg = optimizer.get("config") or {}
        lr = cfg.get("learning_rate")
        lr_text = f", learning_rate={lr:.6g}" if isinstance(lr, (int, float)) else ""
        out.append(("optimizer", f"{optimizer.get('class_name')}{lr_text}"))
    elif isinstance(optimizer, str):
        out.append(("optimizer", optimizer))
    if loss is not None:
        out.append(("loss", loss if isinstance(loss, str) else json.dumps(loss, default=str)[:80]))
    return out


def open_source(path):
    """Open any checkpoint path as a `Source` (raises CLIError or CheckpointError on bad input)."""
    kind, path = resolve(path)
    if kind == "native":
        return NativeSource(path)
    if kind == "keras":
        return KerasSource(path)
    return H5FileSource(path)


def file_size(path):
    if _storage.is_url(path):
        info = _storage.store(path, STORAGE_OPTIONS).info(path)
        return (info or {}).get("size") or 0
    try:
        return os.path.getsize(path)
    except OSError:
        return 0

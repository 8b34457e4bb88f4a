"""The native checkpoint files: `prefix.index` and `prefix.data-0000k-of-0000n`.

`prefix.index`: a 32-byte header (magic `KCKPTIDX`, format version, payload length, CRC-32 of the
payload, CRC-32 of the header) followed by a UTF-8 JSON payload: the object graph, the data files,
and for every value its key, dtype, shape and chunks `[shard, offset, length, crc32]`.
`prefix.data-*`: raw little-endian bytes; every value starts at a multiple of 64 bytes so a reader
can map it without copying; a value larger than `max_shard_size` continues in the next shard.
Chunks are at most 16 MiB, so checksums run on two threads: on save while the next chunk is written
(`_fileio.StreamingWriter`), on restore before anything is assigned.

Overwriting: data files never replace data files. When `prefix.data-*` files exist already, the new
ones get a generation suffix (`prefix.data-00000-of-00001.g1`); the index names its data files, so an
old index can never point into new data. The index is renamed last (that makes the checkpoint
visible), then data files the new index does not name are deleted.

Renaming: the index stores each data file's suffix (`data_suffixes`: `.data-00000-of-00001[.gN]`) and
the reader joins it to the prefix it was opened with, as TensorFlow derives data names from the prefix,
so renaming every file of a checkpoint together keeps it readable. Indexes written before suffixes were
stored name their data files only in `shards`; those names are used, or the prefix's own if renamed.
The index also records who wrote it and when (`written_by`: see `CheckpointReader.file_metadata`).
"""
import concurrent.futures
import datetime
import json
import mmap
import os
import re
import struct

import numpy as np

from kerasckpt import _fileio, _storage
from kerasckpt.errors import (CheckpointDamagedError, CheckpointFormatError, CheckpointIsADirectoryError,
                              CheckpointNotFoundError)

MAGIC = b"KCKPTIDX"
FORMAT_VERSION = 1
ALIGNMENT = 64
CHUNK_SIZE = 16 << 20
_PARALLEL_MIN = 256 << 10  # checksum on the worker threads from this chunk size on
_HEADER = struct.Struct("<8sIIQII")  # magic, version, flags, payload length, payload crc32, header crc32
ADVICE = "Restore an earlier entry of CheckpointManager.checkpoints or delete this one."
_DATA_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})(?:\.g(\d+))?$")

_pool = _fileio.cpu_pool  # threads for checksums (zlib releases the GIL on large buffers)
_io_pool = _fileio.io_pool  # threads for fsync, so that flushing to disk overlaps checksumming


def data_file_name(base, shard, num_shards, generation=0):
    """`base.data-0000k-of-0000n`, with `.g<generation>` appended after an overwrite."""
    name = f"{base}.data-{shard:05d}-of-{num_shards:05d}"
    return f"{name}.g{generation}" if generation else name


def data_files_on_disk(prefix):
    """Names of the finished data files of `prefix` present in its directory (any generation)."""
    directory, base = os.path.split(prefix)
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    return [n for n in names if n.startswith(base + ".data-") and _DATA_RE.fullmatch(n[len(base):])]


def _generation(name):
    m = _DATA_RE.search(name)
    return int(m.group(3) or 0) if m else 0


def strip_suffix(path):
    """`ckpt-3` for `ckpt-3`, `ckpt-3.index` or `ckpt-3.data-00000-of-00001` (when that file exists)."""
    path = os.fspath(path)
    if path.endswith(".index") and os.path.isfile(path):
        return path[:-len(".index")]
    m = _DATA_RE.search(path)
    if m and os.path.isfile(path):
        return path[:m.start()]
    return path


def _written_by():
    """Who wrote an index and when: kerasckpt's version, the format version, the UTC time (ISO-8601)."""
    import kerasckpt  # at call time: kerasckpt imports this module while it is itself being imported
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    return {"kerasckpt_version": getattr(kerasckpt, "__version__", None), "format_version": FORMAT_VERSION,
            "saved_at": now.replace("+00:00", "Z")}


def _le_bytes(key, value):
    """The little-endian byte view (uint8, flat) of a value, and its dtype string."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"Cannot checkpoint '{key}': dtype {arr.dtype} is not numeric. Only numeric and bool "
                        "values are stored; keep other state out of Variables.")
    le = arr.dtype.newbyteorder("<")
    if arr.dtype.byteorder not in ("<", "|") and not (arr.dtype.byteorder == "=" and np.little_endian):
        arr = arr.astype(le)
    shape = arr.shape
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")
    return arr.reshape(-1).view(np.uint8), le.str, shape


def _layout(sizes, max_shard_size):
    """Place values: `[[(shard, offset, length), ...] per value]` and the size of each shard."""
    limit = max_shard_size if max_shard_size and max_shard_size > 0 else None
    shards, placed = [0], []
    for size in sizes:
        offset = -(-shards[-1] // ALIGNMENT) * ALIGNMENT
        if limit is not None and shards[-1] > 0 and offset + size > limit:
            shards.append(0)
            offset = 0
        pieces, remaining = [], size
        while True:
            room = remaining if limit is None else max(limit - offset, 0)
            take = min(remaining, room)
            if take or not pieces:
                pieces.append((len(shards) - 1, offset, take))
            shards[-1] = max(shards[-1], offset + take)
            remaining -= take
            if remaining == 0:
                break
            shards.append(0)
            offset = 0
        placed.append(pieces)
    return placed, shards


def write_checkpoint(prefix, values, graph, max_shard_size=None, metadata=None):
    """Write `prefix.index` and its data files crash-safely; returns the names of the data files.

    Args:
        prefix: the checkpoint path without suffix.
        values: `[(key, array)]`; arrays are read, never modified.
        graph: the JSON-ready object graph (`ObjectGraph.to_json()`).
        max_shard_size: bytes per data file; larger values continue in the next file. None: one file.
        metadata: optional JSON-ready dict stored in the index.
    """
    _storage.refuse_url(prefix, "write native checkpoints to")
    prefix = os.fspath(prefix)
    directory, base = os.path.split(prefix)
    if not base:
        raise ValueError(f"Checkpoint prefix {prefix!r} ends with a path separator. Pass a file prefix such as "
                         f"{os.path.join(prefix, 'ckpt')!r}.")
    if os.path.isdir(prefix + ".index"):
        raise CheckpointIsADirectoryError(f"Cannot write checkpoint '{prefix}': '{prefix}.index' is a directory. "
                                          "Choose another prefix or remove that directory.")
    _fileio.makedirs_for(prefix)
    _fileio.cleanup_temp_files(directory)
    views = [(key,) + _le_bytes(key, value) for key, value in values]
    placed, shard_sizes = _layout([v[1].nbytes for v in views], max_shard_size)
    existing = data_files_on_disk(prefix)
    generation = max((_generation(n) for n in existing), default=-1) + 1
    names = [data_file_name(base, k, len(shard_sizes), generation) for k in range(len(shard_sizes))]
    by_shard = [[] for _ in shard_sizes]
    for i, pieces in enumerate(placed):
        start = 0
        for shard, offset, length in pieces:
            by_shard[shard].append((offset, views[i][1][start:start + length], i))
            start += length
    chunks = [[] for _ in views]  # per value: [shard, offset, length, crc32]
    temps, fds, writers, syncs, index_tmp, active = [], [], [], [], None, []
    try:
        for k, items in enumerate(by_shard):
            tmp = _fileio.claim_temp(os.path.join(directory, names[k]))
            active.append(tmp)
            temps.append(tmp)
            fds.append(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
            writers.append(_fileio.StreamingWriter(fds[-1]))
            for offset, data, i in sorted(items, key=lambda t: t[0]):
                for c in range(0, len(data), CHUNK_SIZE):
                    part = data[c:c + CHUNK_SIZE]
                    # the CRC-32's index in the writer, until checksums() gives the value
                    chunks[i].append([k, offset + c, len(part), writers[k].write(part, offset + c)])
            os.ftruncate(fds[-1], shard_sizes[k])  # the gaps between values read as zeros
        sums = [writer.checksums() for writer in writers]
        for record in (record for value_chunks in chunks for record in value_chunks):
            record[3] = sums[record[0]][record[3]]  # the index in shard record[0]'s writer -> the CRC-32
        syncs = [_io_pool().submit(os.fsync, fd) for fd in fds]  # the writers started the disk already
        entries = {key: {"dtype": dtype, "shape": list(shape), "chunks": value_chunks}
                   for (key, _data, dtype, shape), value_chunks in zip(views, chunks)}
        payload = json.dumps({
            "format": "kerasckpt.checkpoint", "version": FORMAT_VERSION, "generation": generation,
            "alignment": ALIGNMENT, "checksum": "crc32",
            "shards": [{"file": n, "size": s} for n, s in zip(names, shard_sizes)],
            "data_suffixes": [n[len(base):] for n in names],  # what a renamed prefix resolves against
            "values": entries, "graph": graph, "metadata": metadata or {}, "written_by": _written_by()},
            separators=(",", ":")).encode("utf-8")
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(payload), _fileio.checksum(payload), 0)
        header = header[:-4] + struct.pack("<I", _fileio.checksum(header[:-4]))
        index_tmp = _fileio.claim_temp(prefix + ".index")
        active.append(index_tmp)
        with open(index_tmp, "xb") as f:
            f.write(header + payload)
            f.flush()
            os.fsync(f.fileno())  # meanwhile the data files are still being flushed
        for sync in syncs:
            sync.result()
        for writer in writers:
            writer.close()  # re-raises a failed writeback
        for fd in fds:
            os.close(fd)
        fds = []
        for k, name in enumerate(names):
            os.replace(temps[k], os.path.join(directory, name))
            temps[k] = None
        _fileio.fsync_dir(directory)  # data names durable before the index can be
        os.replace(index_tmp, prefix + ".index")
        index_tmp = None
        _fileio.fsync_dir(directory)
    except BaseException:
        concurrent.futures.wait(syncs)  # never close a file (and reuse its descriptor) under a running fsync
        for writer in writers:
            writer.wait()
        for fd in fds:
            os.close(fd)
        renamed = [os.path.join(directory, n) for n, t in zip(names, temps) if t is None]
        if index_tmp is None:
            renamed = []  # the index is in place: the checkpoint is complete and visible
        for tmp in temps + [index_tmp] + renamed:  # renamed data files: no index names them
            if tmp is not None:
                try:
                    os.remove(tmp)
                except OSError:
                    pass
        raise
    finally:
        _fileio.release_temp(*active)
    for stale in set(existing) - set(names):  # older generations: no index names them any more
        try:
            os.remove(os.path.join(directory, stale))
        except OSError:
            pass
    return names


def _hamming(a, b):
    return sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))


def resolve_prefix(path):
    """The checkpoint prefix for `path`, with the errors for missing files and directories."""
    _storage.refuse_url(path or "", "read native checkpoints from")
    if path is None:
        raise CheckpointNotFoundError("No checkpoint path given (None). Pass a path returned by save(), or "
                                      "latest_checkpoint(directory).")
    prefix = strip_suffix(path)
    if os.path.isdir(prefix) and not os.path.isfile(prefix + ".index"):
        from kerasckpt.checkpoint.manager import latest_checkpoint  # noqa: avoid a cycle at import
        latest = latest_checkpoint(prefix)
        hint = (f"Its latest checkpoint is '{latest}': pass that." if latest else
                "Pass a checkpoint prefix such as 'dir/ckpt-1' (the path save() returned).")
        raise CheckpointIsADirectoryError(f"'{prefix}' is a directory, not a checkpoint. {hint}")
    if not os.path.isfile(prefix + ".index"):
        directory, base = os.path.split(prefix)
        try:
            near = sorted(n[:-6] for n in os.listdir(directory or ".") if n.endswith(".index"))
        except OSError:
            near = []
        import difflib
        close = difflib.get_close_matches(base, near, n=3, cutoff=0.5)
        hint = (f" Checkpoints in that directory with similar names: {', '.join(close)}." if close else
                " You may be missing the checkpoint number (e.g. the '-1' in 'path/to/ckpt-1').")
        raise CheckpointNotFoundError(f"Checkpoint '{prefix}' not found: there is no file '{prefix}.index'.{hint}")
    return prefix


class CheckpointReader:
    """Read a checkpoint's index and map its data files; every value is checked against its CRC-32.

    Args:
        path: the checkpoint prefix (`dir/ckpt-3`), or its `.index` file.
    """

    def __init__(self, path):
        self.prefix = resolve_prefix(path)
        self.directory = os.path.dirname(self.prefix)
        self.index_path = self.prefix + ".index"
        self._maps = {}
        self._parse(self._read_index())

    # ------------------------------------------------------------------ index
    def _damaged(self, what):
        return CheckpointDamagedError(f"'{self.index_path}' is damaged: {what}. The index lists every value of the "
                                      f"checkpoint, so none can be read. {ADVICE}")

    def _read_index(self):
        try:
            with open(self.index_path, "rb") as f:
                blob = f.read()
        except IsADirectoryError:
            raise CheckpointIsADirectoryError(f"'{self.index_path}' is a directory, not a checkpoint index.") from None
        except FileNotFoundError:
            raise CheckpointNotFoundError(f"Checkpoint index '{self.index_path}' disappeared while opening it. "
                                          "Is another process deleting checkpoints in this directory?") from None
        if len(blob) < _HEADER.size:
            raise self._damaged(f"it is {len(blob)} bytes long, shorter than the {_HEADER.size}-byte header "
                                "(truncated, e.g. by a crash while it was copied)")
        magic, version, _flags, length, payload_crc, header_crc = _HEADER.unpack_from(blob)
        self._format_version = version
        if magic != MAGIC:
            if _hamming(magic, MAGIC) > 2:
                raise CheckpointFormatError(
                    f"'{self.index_path}' is not a kerasckpt checkpoint index (it starts with {magic!r}). "
                    "TensorFlow checkpoints cannot be read; load the weights into Keras and save them with "
                    "kerasckpt, or pass the path of a checkpoint kerasckpt wrote.")
            raise self._damaged("its header is corrupted (bad magic)")
        if _fileio.checksum(blob[:_HEADER.size - 4]) != header_crc:
            raise self._damaged("checksum mismatch in its header")
        if version > FORMAT_VERSION:
            raise CheckpointFormatError(
                f"'{self.index_path}' was written by a newer kerasckpt (format version {version}; this one reads "
                f"up to {FORMAT_VERSION}). Upgrade kerasckpt to read it.")
        payload = blob[_HEADER.size:]
        if len(payload) != length:
            raise self._damaged(f"it holds {len(payload)} bytes after the header but the header says {length} "
                                "(truncated or appended to)")
        if _fileio.checksum(payload) != payload_crc:
            raise self._damaged("checksum mismatch in the list of values")
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CheckpointFormatError(f"'{self.index_path}' has a valid checksum but unreadable contents ({e}). "
                                        "It was not written by kerasckpt; pass a checkpoint kerasckpt wrote.") from None

    def _parse(self, index):
        bad = lambda why: CheckpointFormatError(  # noqa: E731
            f"'{self.index_path}' is not a valid kerasckpt index: {why}. Pass a checkpoint kerasckpt wrote.")
        if not isinstance(index, dict) or index.get("format") != "kerasckpt.checkpoint":
            raise bad("the format name is missing")
        try:
            shards = [(str(s["file"]), int(s["size"])) for s in index["shards"]]
            suffixes = index.get("data_suffixes")
            values = index["values"]
            graph = index.get("graph") or {"nodes": [{"kind": "Checkpoint"}]}
            nodes = graph["nodes"]
        except (KeyError, TypeError, ValueError) as e:
            raise bad(f"missing or malformed field {e}") from None
        for name, _ in shards:
            if os.path.basename(name) != name or name in ("", ".", ".."):
                raise bad(f"data file name {name!r} is not a plain file name")
        if suffixes is None:  # written before the suffixes were stored
            suffixes = [None] * len(shards)
        elif not (isinstance(suffixes, list) and len(suffixes) == len(shards)
                  and all(isinstance(x, str) and _DATA_RE.fullmatch(x) for x in suffixes)):
            raise bad("the data file suffixes are malformed")
        self.written_shards = shards  # the data file names at the time of writing, for messages
        self.shards = [(self._data_name(name, suffix), size) for (name, size), suffix in zip(shards, suffixes)]
        self.entries = {}
        for key, e in values.items():
            try:
                dtype = np.dtype(str(e["dtype"]))
                shape = tuple(int(d) for d in e["shape"])
                chunks = [tuple(int(x) for x in c) for c in e["chunks"]]
            except (KeyError, TypeError, ValueError) as err:
                raise bad(f"value {key!r} has a malformed field ({err})") from None
            if dtype.kind not in "biufc" or any(d < 0 for d in shape):
                raise bad(f"value {key!r} has dtype {dtype} and shape {shape}")
            total = sum(c[2] for c in chunks)
            if total != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
                raise bad(f"value {key!r} has {total} bytes of data for shape {shape} and dtype {dtype}")
            for shard, offset, length, _crc in chunks:
                if not (0 <= shard < len(shards)) or offset < 0 or length < 0 or offset + length > shards[shard][1]:
                    raise bad(f"value {key!r} points outside its data file")
            self.entries[str(key)] = (dtype, shape, chunks)
        if not isinstance(nodes, list) or not nodes:
            raise bad("the object graph has no root")
        n = len(nodes)
        idx = lambda i: isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n  # noqa: E731
        for node in nodes:
            if not isinstance(node, dict):
                raise bad("an object graph node is not an object")
            children = node.get("children", [])
            slots = node.get("slots", [])
            if not isinstance(children, list) or not all(
                    isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and idx(c[1]) for c in children):
                raise bad("an object graph node has malformed children")
            if not isinstance(slots, list) or not all(
                    isinstance(s, list) and len(s) == 4 and (s[0] is None or idx(s[0])) and isinstance(s[2], str)
                    and idx(s[3]) and (s[1] is None or isinstance(s[1], str)) for s in slots):
                raise bad("an object graph node has malformed slots")
            if "key" in node and node["key"] not in self.entries:
                raise bad(f"the object graph names a value {node['key']!r} that the index does not hold")
        self.nodes = nodes
        self.metadata = index.get("metadata") or {}
        self.generation = index.get("generation", 0)
        written_by = index.get("written_by")
        written_by = written_by if isinstance(written_by, dict) else {}
        self._file_metadata = {"format_version": self._format_version,
                               "kerasckpt_version": written_by.get("kerasckpt_version"),
                               "saved_at": written_by.get("saved_at")}

    @property
    def file_metadata(self):
        """How the files were written: `{"format_version", "kerasckpt_version", "saved_at"}`.

        `saved_at` is the UTC time the index was written (ISO-8601, e.g. `2025-01-31T12:00:00.000Z`).
        Indexes written before these were recorded give None for `kerasckpt_version` and `saved_at`.
        What the saver itself attached (`save_counter`, a backup's loop state) is `metadata`.
        """
        return dict(self._file_metadata)

    def _data_name(self, written, suffix):
        """The data file's name: the suffix joined to the prefix this reader was opened with."""
        base = os.path.basename(self.prefix)
        if suffix is not None:
            return base + suffix
        m = _DATA_RE.search(written)  # an older index: its stored name, or the prefix's own when renamed
        if m is None or os.path.exists(os.path.join(self.directory, written)):
            return written
        derived = base + m.group(0)
        return derived if os.path.exists(os.path.join(self.directory, derived)) else written

    def _missing(self, shard):
        """The error for a data file that is not there; says so when the checkpoint looks renamed or moved."""
        path = self._shard_path(shard)
        holds = f"it holds {_some(self._keys_in(shard))} of checkpoint '{self.prefix}'"
        expected = ", ".join(f"'{n}'" for n, _ in self.shards)
        pairs = [(w, n) for (w, _), (n, _) in zip(self.written_shards, self.shards) if w != n]
        if not pairs:
            return CheckpointNotFoundError(f"'{path}' is missing: {holds} (its data files: {expected}). {ADVICE}")
        m = _DATA_RE.search(pairs[0][0])
        old_prefix = os.path.join(self.directory, pairs[0][0][:m.start()] if m else pairs[0][0])
        renames = ", ".join(f"'{w}' -> '{n}'" for w, n in pairs[:3]) + (", ..." if len(pairs) > 3 else "")
        old = os.path.join(self.directory, self.written_shards[shard][0])
        if os.path.exists(old):
            return CheckpointNotFoundError(
                f"'{path}' is missing: {holds}. The checkpoint seems renamed or moved without its data files: "
                f"it was written as '{old_prefix}', and '{old}' is still there. A checkpoint is its .index "
                f"file plus data files named after the same prefix ({expected}); rename them together "
                f"({renames}), or rename '{self.index_path}' back to '{old_prefix}.index'.")
        return CheckpointNotFoundError(
            f"'{path}' is missing: {holds} (its data files: {expected}). It was written as '{old_prefix}': if "
            f"you renamed or moved it, rename or move its data files with it ({renames}). Otherwise: {ADVICE}")

    # ------------------------------------------------------------------ values
    def keys(self):
        """Every value key, in the order they were saved."""
        return list(self.entries)

    def shape(self, key):
        return self.entries[key][1]

    def dtype(self, key):
        return self.entries[key][0]

    def _shard_path(self, shard):
        return os.path.join(self.directory, self.shards[shard][0])

    def _keys_in(self, shard):
        return [k for k, (_, _, chunks) in self.entries.items() if any(c[0] == shard for c in chunks)]

    def _map(self, shard):
        """The data file as a read-only uint8 array (memory-mapped), after checking its size."""
        m = self._maps.get(shard)
        if m is not None:
            return m
        path = self._shard_path(shard)
        expected = self.shards[shard][1]
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise self._missing(shard) from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if size != expected:
                keys = [k for k, (_, _, chunks) in self.entries.items()
                        if any(c[0] == shard and c[1] + c[2] > size for c in chunks)] or self._keys_in(shard)
                how = "truncated" if size < expected else "longer than written"
                raise CheckpointDamagedError(
                    f"'{path}' is damaged: it is {how} ({size} bytes, the index says {expected}); "
                    f"{_some(keys)} cannot be read. {ADVICE}")
            if size == 0:
                m = np.zeros(0, np.uint8)
            else:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                if hasattr(mm, "madvise") and hasattr(mmap, "MADV_WILLNEED"):
                    try:  # start reading it all now; verify and copy each touch it once more
                        mm.madvise(mmap.MADV_WILLNEED)
                    except OSError:
                        pass
                m = np.frombuffer(mm, dtype=np.uint8)
        self._maps[shard] = m
        return m

    def verify(self, keys):
        """Check the CRC-32 of every chunk of `keys` (two threads); raise on the first damaged value."""
        jobs = []
        for key in keys:
            for shard, offset, length, crc in self.entries[key][2]:
                jobs.append((key, shard, offset, length, crc))
        maps = {shard: self._map(shard) for _, shard, _, _, _ in jobs}
        compute = lambda j: _fileio.checksum(maps[j[1]][j[2]:j[2] + j[3]])  # noqa: E731
        big = [j for j in jobs if j[3] >= _PARALLEL_MIN]
        results = dict(zip(map(id, big), _pool().map(compute, big))) if len(big) > 1 else {}
        for job in jobs:
            got = results.get(id(job))
            if got is None:
                got = compute(job)
            if got != job[4]:
                key, shard, offset, length, crc = job
                raise CheckpointDamagedError(
                    f"'{self._shard_path(shard)}' is damaged: checksum mismatch for '{key}' (bytes {offset}.."
                    f"{offset + length} of the file: stored crc32 {crc:08x}, computed {got:08x}). {ADVICE}")

    def view(self, key):
        """The value as an array: a read-only view of the mapped file when it lies in one data file."""
        if key not in self.entries:
            raise KeyError(key)
        dtype, shape, chunks = self.entries[key]
        if not chunks:
            return np.zeros(shape, dtype)
        first = chunks[0]
        contiguous = all(c[0] == first[0] and c[1] == first[1] + sum(x[2] for x in chunks[:i])
                         for i, c in enumerate(chunks))
        if contiguous:
            m = self._map(first[0])
            total = sum(c[2] for c in chunks)
            return m[first[1]:first[1] + total].view(dtype).reshape(shape)
        out = np.empty(shape, dtype)
        flat = out.reshape(-1).view(np.uint8)
        pos = 0
        for shard, offset, length, _ in chunks:
            flat[pos:pos + length] = self._map(shard)[offset:offset + length]
            pos += length
        return out

    def read(self, key):
        """A verified copy of the value (native byte order)."""
        self.verify([key])
        return np.array(self.view(key), dtype=self.entries[key][0].newbyteorder("="))

    def check_complete(self):
        """Raise unless every data file is present with the size the index gives (no data is read)."""
        for shard in range(len(self.shards)):
            path = self._shard_path(shard)
            try:
                size = os.path.getsize(path)
            except FileNotFoundError:
                raise self._missing(shard) from None
            except OSError as e:
                raise CheckpointNotFoundError(f"'{path}' cannot be read ({e}): it holds "
                                              f"{_some(self._keys_in(shard))} of checkpoint '{self.prefix}'. "
                                              f"{ADVICE}") from None
            if size != self.shards[shard][1]:
                raise CheckpointDamagedError(f"'{path}' is damaged: {size} bytes, the index says "
                                             f"{self.shards[shard][1]}. {ADVICE}")

    def close(self):
        """Drop the mappings (arrays returned by `view` keep their file mapped until they are freed)."""
        self._maps.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _some(keys, n=3):
    if not keys:
        return "no values"
    shown = ", ".join(f"'{k}'" for k in keys[:n])
    return shown + (f" and {len(keys) - n} more values" if len(keys) > n else "")


def written_data_names(index_path):
    """The data file names an index was written with (empty when it cannot be read)."""
    try:
        prefix = index_path[:-len(".index")] if index_path.endswith(".index") else index_path
        return [name for name, _ in CheckpointReader(prefix).written_shards]
    except (OSError, ValueError):
        return []


def is_complete(prefix):
    """Whether `prefix` is a readable checkpoint: valid index, every data file present at its size."""
    try:
        reader = CheckpointReader(prefix)
        reader.check_complete()
        return True
    except (OSError, ValueError):
        return False

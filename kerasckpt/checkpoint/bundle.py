"""TensorFlow's tensor bundles, read and written: the files of every kerasckpt and TensorFlow checkpoint.

API (used by Checkpoint, CheckpointManager, BackupAndRestore, load_weights and the command-line tool); paths
may be fsspec URLs, with `storage_options`:
    CheckpointReader(path)   a checkpoint prefix (or its .index / a data file): `keys()` (TensorFlow's
        list, slice keys hidden), `entry(key)` -> Entry (dtype, shape, shard, offset, size, crc32c,
        slices), `read(key)` -> verified ndarray, `verify(keys)`, `view(key)` (zero-copy when it can),
        `raw_bytes(key)` (a verified string scalar, e.g. the object graph), `object_graph` (the bytes of
        `_CHECKPOINTABLE_OBJECT_GRAPH` or None), `nodes` / `metadata` (what kerasckpt wrote, else None / {}),
        `data_files()`, `check_complete()`. Also reads kerasckpt 0.1's JSON indexes (`legacy.py`).
    write_bundle(prefix, entries, max_shard_size=None) -> data file names: `entries` is an ordered list of
        `(key, value)` with numeric / bool arrays, or bytes / str / object arrays of bytes (DT_STRING);
        crash-safe (see below).
    delete(prefix), read_again_if_replaced(read), DType, data_file_name, data_files_on_disk, strip_suffix,
    is_complete, resolve_prefix.

Format (tensorflow/core/util/tensor_bundle): `PREFIX.index` is a sorted table (`sstable.py`) mapping "" to
a BundleHeaderProto (num_shards, endianness, version) and every tensor name to a BundleEntryProto (dtype,
shape, shard, offset, size, masked CRC-32C of the bytes, slices); `PREFIX.data-0000K-of-0000N` hold the raw
bytes (numbers little-endian in C order; strings as varint lengths, a masked CRC-32C of the lengths, then
the bytes). A sliced tensor's entry has only dtype, shape and `slices`; each slice is a normal entry whose
key is TensorFlow's OrderedCode encoding of name and extents.

bfloat16 values come back as float32 (exactly widened: NumPy has no bfloat16; `read(key, raw=True)` gives
the stored uint16 bits); the quantized types as their plain integer types; strings as object arrays of
bytes, as `tf.train.load_variable` returns them. Variant and resource entries are listed and refused by
name. Big-endian bundles are byte-swapped. Every block CRC of the index is checked on opening, and every
tensor's CRC-32C before its value is returned.

Crash safety of `write_bundle`: data file names derive from the prefix and the shard count N in the index
header, so a new checkpoint must not rename data over files that the index now at the prefix names. The
new one takes the smallest N >= the shards it needs whose names the current index does not use (adding
empty shards when needed: `-of-00002` after `-of-00001`). Its data files are written under temporary
names, fsynced, renamed into place (the old index and its data stay valid), then the index is renamed over
the old one (the switch), the directory fsynced, and only then the old data files are deleted. A crash at
any moment leaves the old checkpoint or the new one complete; never an index naming foreign data. On a store
without rename the same order holds with uploads, each object appearing whole (see `_write_to_store`). A
reader that finds a data file gone, or holding bytes of a later save (names come back every other save),
while the index changed since it read it raises CheckpointReplacedError: the checkpoint is read again.
"""
import concurrent.futures
import contextlib
import datetime
import json
import mmap
import os
import re
import struct

import numpy as np

from kerasckpt import _fileio, _storage
from kerasckpt.checkpoint import legacy, sstable
from kerasckpt.checkpoint import protowire as pw
from kerasckpt.errors import (CheckpointDamagedError, CheckpointFormatError, CheckpointIsADirectoryError,
                              CheckpointKeyError, CheckpointNotFoundError, CheckpointReplacedError,
                              StorageConflictError)

GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"  # TensorFlow's object graph (a serialized TrackableObjectGraph)
KERASCKPT_KEY = "_KERASCKPT_METADATA"  # kerasckpt's own record (JSON string): its graph, saver metadata
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"  # TensorFlow's key of a variable's value below its object path
FORMAT = "kerasckpt.bundle"
FORMAT_VERSION = 2  # 1: kerasckpt 0.1's JSON index
ALIGNMENT = 64  # kerasckpt starts each value at a multiple of this (zeros between), so reads can map it
ADVICE = "Restore an earlier entry of CheckpointManager.checkpoints or delete this one."
DATA_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})(?:\.g(\d+))?$")
_PARALLEL_MIN = 4 << 20  # values from this size on are checksummed in pieces on the CPU pool
_EMPTY_CRC = _fileio.mask_crc(0)  # what TensorFlow stores for a tensor without bytes
_TF_VERSION = 1  # the bundle format version this reader understands (TensorFlow's kTensorBundleVersion)
# A field of the index's header entry TensorFlow does not define (and skips): the prefix's file name when
# kerasckpt wrote it, so that an index renamed without its data files can say where they are.
_WRITTEN_AS_FIELD = 1000


# ---------------------------------------------------------------------------------------------- dtypes
class DType:
    """A TensorFlow dtype as kerasckpt reads it, with the attribute names of `tf.DType`.

    `name` is TensorFlow's ("float32", "bfloat16", "string", "variant"); `as_numpy_dtype` is the NumPy
    dtype of the values kerasckpt returns (float32 for bfloat16, object for strings, None for entries
    that cannot be read); `as_datatype_enum` is the number in the file. Compares equal to its name, to
    another DType of that name, and to the NumPy dtype of the same name.
    """

    __slots__ = ("name", "as_datatype_enum", "as_numpy_dtype", "_stored")

    def __init__(self, enum, name, stored, returned):
        self.as_datatype_enum, self.name = enum, name
        self._stored = None if stored is None else np.dtype(stored)  # the little-endian file layout
        self.as_numpy_dtype = None if returned is None else np.dtype(returned)

    @property
    def size(self):
        """Bytes per element in the file (None for strings, variants, resources)."""
        return None if self._stored is None else self._stored.itemsize

    @property
    def readable(self):
        return self.as_numpy_dtype is not None

    @property
    def kind(self):
        """NumPy's kind letter of the values returned ("f" for bfloat16, "O" for strings, "V" when unreadable)."""
        return self.as_numpy_dtype.kind if self.readable else "V"

    @property
    def itemsize(self):
        """Bytes per element in the file (0 for strings, variants and resources, whose sizes vary)."""
        return self.size or 0

    def __str__(self):
        return self.name

    def __eq__(self, other):
        if isinstance(other, DType):
            return other.name == self.name
        if isinstance(other, str):
            return other == self.name
        try:
            return np.dtype(other).name == self.name
        except TypeError:
            return NotImplemented

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f"<dtype: '{self.name}'>"


_DTYPE_TABLE = [  # enum, TensorFlow name, file layout (little-endian), returned dtype
    (1, "float32", "<f4", "float32"), (2, "float64", "<f8", "float64"), (3, "int32", "<i4", "int32"),
    (4, "uint8", "u1", "uint8"), (5, "int16", "<i2", "int16"), (6, "int8", "i1", "int8"),
    (7, "string", None, object), (8, "complex64", "<c8", "complex64"), (9, "int64", "<i8", "int64"),
    (10, "bool", "?", "bool"), (11, "qint8", "i1", "int8"), (12, "quint8", "u1", "uint8"),
    (13, "qint32", "<i4", "int32"), (14, "bfloat16", "<u2", "float32"), (15, "qint16", "<i2", "int16"),
    (16, "quint16", "<u2", "uint16"), (17, "uint16", "<u2", "uint16"), (18, "complex128", "<c16", "complex128"),
    (19, "float16", "<f2", "float16"), (20, "resource", None, None), (21, "variant", None, None),
    (22, "uint32", "<u4", "uint32"), (23, "uint64", "<u8", "uint64"),
    (24, "float8_e5m2", "u1", None), (25, "float8_e4m3fn", "u1", None), (26, "float8_e4m3fnuz", "u1", None),
    (27, "float8_e4m3b11fnuz", "u1", None), (28, "float8_e5m2fnuz", "u1", None), (29, "int4", "i1", None),
    (30, "uint4", "u1", None), (31, "int2", "i1", None), (32, "uint2", "u1", None), (33, "float4_e2m1fn", "u1", None),
]
DTYPES = {enum: DType(enum, name, stored, returned) for enum, name, stored, returned in _DTYPE_TABLE}
_BY_NUMPY = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6, "complex64": 8,
             "int64": 9, "bool": 10, "uint16": 17, "complex128": 18, "float16": 19, "uint32": 22, "uint64": 23}


def dtype_of(value_dtype):
    """The DType kerasckpt writes for a NumPy dtype (object / bytes / str: string); raises TypeError."""
    value_dtype = np.dtype(value_dtype)
    if value_dtype.kind in "OSU":
        return DTYPES[7]
    enum = _BY_NUMPY.get(value_dtype.name)
    if enum is None:
        raise TypeError(f"dtype {value_dtype} has no TensorFlow equivalent; checkpoints hold bool, integer, "
                        "float16/32/64, complex64/128 and string values.")
    return DTYPES[enum]


# ---------------------------------------------------------------------------------------------- entries
class Entry:
    """One tensor of a bundle: `dtype` (DType), `shape` (tuple), `shard`, `offset`, `size`, `crc32c` (as
    stored: masked), `slices` ([[(start, length or None)] per dim] of a sliced tensor, else [])."""

    __slots__ = ("key", "dtype", "shape", "shard", "offset", "size", "crc32c", "slices", "chunks")

    def __init__(self, key, dtype, shape, shard=0, offset=0, size=0, crc32c=_EMPTY_CRC, slices=(), chunks=None):
        self.key, self.dtype, self.shape = key, dtype, tuple(shape)
        self.shard, self.offset, self.size, self.crc32c = shard, offset, size, crc32c
        self.slices = list(slices)
        self.chunks = chunks  # kerasckpt 0.1 files: [(shard, offset, length, zlib crc32)]; else None

    @property
    def num_elements(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __repr__(self):
        where = f"slices={self.slices}" if self.slices else f"shard={self.shard} offset={self.offset} size={self.size}"
        return f"Entry({self.key!r}, {self.dtype.name}, {list(self.shape)}, {where})"


def _parse_shape(msg, key, bad):
    if msg.varint(3):
        raise bad(f"'{key}' has an unknown rank, which a saved tensor cannot have")
    shape = []
    for dim in msg.messages(2):
        size = pw.signed(dim.varint(1))
        if size < 0:
            raise bad(f"'{key}' has a dimension of size {size}")
        shape.append(size)
    return tuple(shape)


def _parse_slice(msg, rank, key, bad):
    extents = []
    for ext in msg.messages(1):
        start = pw.signed(ext.varint(1))
        length = pw.signed(ext.varint(2)) if 2 in ext else None
        if start < 0 or (length is not None and length < 0):
            raise bad(f"'{key}' has a slice extent ({start}, {length})")
        extents.append((start, length))
    if len(extents) != rank:
        raise bad(f"'{key}' has a slice of rank {len(extents)} for a tensor of rank {rank}")
    return extents


def encode_entry(entry):
    """The BundleEntryProto bytes of an Entry (proto3: zero fields omitted)."""
    dims = b"".join(pw.bytes_field(2, pw.varint_field(1, d)) for d in entry.shape)
    out = [pw.varint_field(1, entry.dtype.as_datatype_enum), pw.bytes_field(2, dims)]
    if entry.slices:
        for extents in entry.slices:
            body = b"".join(pw.bytes_field(1, pw.varint_field(1, s) + (b"" if n is None else
                                                                       pw.varint_field(2, n, skip_default=False)))
                            for s, n in extents)
            out.append(pw.bytes_field(7, body))
        return b"".join(out)
    out += [pw.varint_field(3, entry.shard), pw.varint_field(4, entry.offset), pw.varint_field(5, entry.size),
            pw.fixed32_field(6, entry.crc32c)]
    return b"".join(out)


def _ordered_unsigned(value):
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes((len(raw),)) + raw


def _ordered_signed(value):
    x = ~value if value < 0 else value
    if x < 64:
        return bytes(((0x80 ^ value) & 0xFF,))
    length = x.bit_length() // 7 + 1
    raw = bytearray((value & ((1 << 80) - 1)).to_bytes(10, "big")[10 - length:])
    header = {2: (0xC0, 0), 3: (0xE0, 0), 4: (0xF0, 0), 5: (0xF8, 0), 6: (0xFC, 0), 7: (0xFE, 0), 8: (0xFF, 0),
              9: (0xFF, 0x80), 10: (0xFF, 0xC0)}[length]
    raw[0] ^= header[0]
    raw[1] ^= header[1]
    return bytes(raw)


def slice_key(name, extents):
    """TensorFlow's key of one slice of `name` (EncodeTensorNameSlice; tensorflow/core/lib/strings/ordered_code)."""
    raw = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else name
    escaped = raw.replace(b"\x00", b"\x00\xff") if b"\xff" not in raw else \
        b"".join(b"\x00\xff" if c == 0 else b"\xff\x00" if c == 255 else bytes((c,)) for c in raw)
    out = [b"\x00", escaped, b"\x00\x01", _ordered_unsigned(len(extents))]
    for start, length in extents:
        out.append(_ordered_signed(start))
        out.append(_ordered_signed(-1 if length is None else length))
    return b"".join(out)


def _decode_key(raw):
    return raw.decode("utf-8", "surrogateescape")


# ---------------------------------------------------------------------------------------------- files
def data_file_name(prefix, shard, num_shards):
    """`PREFIX.data-0000K-of-0000N`, TensorFlow's name of data file K of N."""
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def data_files_on_disk(prefix, storage_options=None):
    """Names of the data files of `prefix` in its directory (any shard count; kerasckpt 0.1's `.gN` too)."""
    directory, base = _storage.split(_storage.normalize(prefix))
    try:
        names = _storage.listdir(directory or ".", storage_options)
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(base + ".data-") and DATA_RE.fullmatch(n[len(base):]))


def strip_suffix(path, storage_options=None):
    """`ckpt-3` for `ckpt-3`, `ckpt-3.index` or `ckpt-3.data-00000-of-00001` (when that file exists)."""
    path = _storage.normalize(path)
    if path.endswith(".index") and _storage.isfile(path, storage_options):
        return path[:-len(".index")]
    m = DATA_RE.search(path)
    if m and _storage.isfile(path, storage_options):
        return path[:m.start()]
    return path


def resolve_prefix(path, storage_options=None):
    """The checkpoint prefix for `path` (a prefix, its .index or a data file); raises for what is not there."""
    if path is None:
        raise CheckpointNotFoundError("No checkpoint path given (None). Pass a path returned by save(), or "
                                      "latest_checkpoint(directory).")
    prefix = strip_suffix(path, storage_options)
    if _storage.isfile(prefix + ".index", storage_options):
        return prefix
    if _storage.isdir(prefix, storage_options):
        try:
            found = _storage.listing(prefix, storage_options)
            indexes = [(mtime, n) for n, (_, mtime) in found.items() if n.endswith(".index")]
            newest = _storage.join(prefix, max(indexes)[1][:-len(".index")]) if indexes else None
        except OSError:
            newest = None
        hint = (f"The newest checkpoint in it is '{newest}': pass that, or latest_checkpoint(directory)." if newest
                else "Pass a checkpoint prefix such as 'dir/ckpt-1' (the path save() returned).")
        raise CheckpointIsADirectoryError(f"'{prefix}' is a directory, not a checkpoint. {hint}")
    directory, base = _storage.split(prefix)
    try:
        near = sorted(n[:-6] for n in _storage.listdir(directory or ".", storage_options) if n.endswith(".index"))
    except OSError:
        near = []
    import difflib
    close = difflib.get_close_matches(base, near, n=3, cutoff=0.5)
    hint = (f" Checkpoints in that directory with similar names: {', '.join(close)}." if close else
            " You may be missing the checkpoint number (e.g. the '-1' in 'path/to/ckpt-1').")
    raise CheckpointNotFoundError(f"Checkpoint '{prefix}' not found: there is no file '{prefix}.index'.{hint}")


def _some(keys, n=3):
    keys = list(keys)
    if not keys:
        return "no values"
    shown = ", ".join(f"'{k}'" for k in keys[:n])
    return shown + (f" and {len(keys) - n} more values" if len(keys) > n else "")


# ---------------------------------------------------------------------------------------------- reading
class CheckpointReader:
    """Read a checkpoint (TensorFlow's tensor bundle, or kerasckpt 0.1's format) without building anything.

    Every block of the index is checked when it opens; every value against its CRC before it is returned.

    On a store (an fsspec URL) the index is read in one request and each data file is downloaded when first
    needed, checked as it streams against the checksum recorded at upload; a data file that vanished
    because the checkpoint was overwritten since its index was read raises `CheckpointReplacedError`.

    Args:
        path: the checkpoint prefix (`dir/ckpt-3`), its `.index` file or one of its data files; a path or URL.
        storage_options: options of the store a URL names (credentials, endpoint; see fsspec).
    """

    def __init__(self, path, storage_options=None):
        self.storage_options = storage_options
        if path is None:
            resolve_prefix(None)  # raises: no path given
        prefix = strip_suffix(path, storage_options)
        blob, identity = self._read_index(prefix)
        if blob is None:  # not there: say what is (a directory, similar names), in the common case with no request
            prefix = resolve_prefix(path, storage_options)
            blob, identity = self._read_index(prefix)
            if blob is None:
                raise CheckpointNotFoundError(f"Checkpoint index '{prefix}.index' disappeared while opening it. Is "
                                              "another process deleting checkpoints in this directory?")
        self._load(prefix, blob, identity)

    @classmethod
    def from_index(cls, prefix, blob, identity, storage_options=None):
        """A reader of the index bytes `blob` of `prefix`, read already (with its `_storage.identity`)."""
        reader = cls.__new__(cls)
        reader.storage_options = storage_options
        reader._load(prefix, blob, identity)
        return reader

    def _load(self, prefix, blob, identity):
        self.prefix = prefix
        self.directory = _storage.dirname(prefix)
        self.index_path = prefix + ".index"
        self._index_identity = identity  # which version of the index this reader read
        self._maps, self._sizes, self._files, self._needed = {}, {}, {}, None
        self._record = None  # (nodes, metadata, file metadata): read on first use (see `_kerasckpt_record`)
        self._written_names = None  # the data file names when the files were written, when recorded
        if legacy.looks_like(blob[:8]):
            self._open_legacy(blob)
        else:
            self._open_bundle(blob)

    # ------------------------------------------------------------------ index
    def _damaged(self, what):
        return CheckpointDamagedError(f"'{self.index_path}' is damaged: {what}. The index lists every value of the "
                                      f"checkpoint, so none can be read. {ADVICE}")

    def _read_index(self, prefix):
        """`(bytes, identity)` of `prefix.index`, or `(None, None)` when there is none."""
        try:
            return _storage.read_versioned(prefix + ".index", self.storage_options)
        except IsADirectoryError:
            raise CheckpointIsADirectoryError(f"'{prefix}.index' is a directory, not a checkpoint index.") from None

    def _open_bundle(self, blob):
        self.format = "tensor_bundle"
        try:
            items = sstable.read_table(blob)
        except sstable.TableError as e:
            raise self._damaged(str(e)) from None
        if not items or items[0][0] != b"":
            raise self._damaged("its first entry is not the bundle header (the empty key)")

        def bad(why):
            return self._damaged(why)
        try:
            header = pw.parse(items[0][1])
            self.num_shards = pw.signed(header.varint(1), 32)
            self.big_endian = header.varint(2) == 1
            version = header.message(3)
            written_as = header.text(_WRITTEN_AS_FIELD, "")
            min_consumer, bad_consumers = version.varint(2), version.varints(3)
        except pw.ProtoError as e:
            raise bad(f"its header entry is malformed ({e})") from None
        if min_consumer > _TF_VERSION or _TF_VERSION in bad_consumers:
            raise CheckpointFormatError(
                f"'{self.index_path}' needs a reader of bundle format version {min_consumer} or later (this one reads "
                f"version {_TF_VERSION}): it was written by a newer TensorFlow. Re-save it with the TensorFlow that "
                "wrote it in an older format, or upgrade kerasckpt.")
        if self.num_shards < 0 or (self.num_shards == 0 and len(items) > 1):
            raise bad(f"its header says {self.num_shards} data files")
        self.entries, self._slice_entries = {}, {}  # {name: Entry}, {raw slice key: Entry}
        for raw_key, value in items[1:]:
            key = _decode_key(raw_key)
            try:
                entry = self._parse_entry(key, value, bad)
            except pw.ProtoError as e:
                raise bad(f"the entry of '{key}' is malformed ({e})") from None
            if raw_key[:1] == b"\x00":
                self._slice_entries[raw_key] = entry
            else:
                self.entries[key] = entry
        for entry in self.entries.values():
            for extents in entry.slices:
                if slice_key(entry.key, extents) not in self._slice_entries:
                    raise bad(f"'{entry.key}' is sliced, but the entry of its slice {extents} is missing")
        base = _storage.basename(self.prefix)
        self._data_names = [data_file_name(base, k, self.num_shards) for k in range(self.num_shards)]
        if written_as and os.path.basename(written_as) == written_as:
            self._written_names = [os.path.basename(data_file_name(written_as, k, self.num_shards))
                                   for k in range(self.num_shards)]

    def _parse_entry(self, key, value, bad):
        msg = pw.parse(value)
        enum = msg.varint(1)
        dtype = DTYPES.get(enum)
        if dtype is None:
            raise bad(f"'{key}' has dtype number {enum}, which TensorFlow does not define")
        shape = _parse_shape(msg.message(2), key, bad)
        entry = Entry(key, dtype, shape, shard=pw.signed(msg.varint(3), 32), offset=pw.signed(msg.varint(4)),
                      size=pw.signed(msg.varint(5)), crc32c=msg.fixed32(6, 0),
                      slices=[_parse_slice(s, len(shape), key, bad) for s in msg.messages(7)])
        if entry.slices:
            return entry
        if not 0 <= entry.shard < self.num_shards or entry.offset < 0 or entry.size < 0:
            raise bad(f"'{key}' points at data file {entry.shard} of {self.num_shards}, offset {entry.offset}, "
                      f"size {entry.size}")
        if dtype.size is not None and entry.size != entry.num_elements * dtype.size:
            raise bad(f"'{key}' holds {entry.size} bytes for shape {list(shape)} of {dtype.name} "
                      f"({entry.num_elements * dtype.size} expected)")
        if dtype.size is None and entry.size < (entry.num_elements + 4 if entry.num_elements else 0):
            raise bad(f"'{key}' holds {entry.size} bytes, too few for {entry.num_elements} {dtype.name} elements")
        return entry

    def _kerasckpt_record(self):
        """`(nodes, metadata, file metadata)` from kerasckpt's record (its object graph and saver metadata, in the
        data file), read when first needed: listing a checkpoint never reads its data files."""
        if self._record is None:
            self._record = self._read_kerasckpt_record()
        return self._record

    def _read_kerasckpt_record(self):
        unknown = (None, {}, {"format_version": None, "kerasckpt_version": None, "saved_at": None})
        entry = self.entries.get(KERASCKPT_KEY)
        if entry is None or entry.dtype.name != "string" or entry.shape:
            return unknown
        raw = self.raw_bytes(KERASCKPT_KEY)  # a damaged or missing data file raises here, as itself
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CheckpointFormatError(f"'{self.index_path}' holds an unreadable '{KERASCKPT_KEY}' entry ({e}). "
                                        "Pass a checkpoint kerasckpt wrote.") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            return unknown
        if int(record.get("version", 0)) > FORMAT_VERSION:
            raise CheckpointFormatError(f"'{self.index_path}' was written by a newer kerasckpt (format version "
                                        f"{record.get('version')}; this one reads up to {FORMAT_VERSION}). Upgrade "
                                        "kerasckpt to read it.")
        graph, nodes = record.get("graph"), None
        if isinstance(graph, dict) and "nodes" in graph:
            known = set(self.entries) | {k[:-len(VALUE_SUFFIX)] for k in self.entries if k.endswith(VALUE_SUFFIX)}
            nodes = legacy.check_nodes(graph["nodes"], known, self.index_path)
        metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
        written_by = record.get("written_by") if isinstance(record.get("written_by"), dict) else {}
        return nodes, metadata, {"format_version": record.get("version"),
                                 "kerasckpt_version": written_by.get("kerasckpt_version"),
                                 "saved_at": written_by.get("saved_at")}

    def _open_legacy(self, blob):
        self.format = "kerasckpt-0.1"
        index = legacy.LegacyIndex(self.index_path, blob, self._damaged)
        self.num_shards, self.big_endian = len(index.shards), False
        self._data_names = index.data_names(self.prefix)
        self._written_names = [name for name, _ in index.shards]
        self._sizes = {k: size for k, (_, size) in enumerate(index.shards)}
        self.entries, self._slice_entries = {}, {}
        for key, (dtype, shape, chunks) in index.entries.items():
            try:
                tf = dtype_of(dtype)
            except TypeError as e:
                raise CheckpointFormatError(f"'{self.index_path}' holds '{key}' of an unsupported dtype: {e}") from None
            self.entries[key] = Entry(key, tf, shape, shard=chunks[0][0] if chunks else 0,
                                      offset=chunks[0][1] if chunks else 0, size=sum(c[2] for c in chunks),
                                      crc32c=None, chunks=chunks)
        self._record = (index.nodes, index.metadata, index.file_metadata)

    @property
    def nodes(self):
        """kerasckpt's object graph (JSON-ready nodes) when kerasckpt wrote the checkpoint, else None."""
        return self._kerasckpt_record()[0]

    @property
    def metadata(self):
        """What the saver attached (`save_counter`, a backup's loop state); {} for other writers."""
        return self._kerasckpt_record()[1]

    @property
    def file_metadata(self):
        """How the files were written: `{"format_version", "kerasckpt_version", "saved_at"}` (None when unknown).

        `saved_at` is the UTC time the checkpoint was written (ISO-8601, e.g. `2025-01-31T12:00:00.000Z`).
        What the saver itself attached (`save_counter`, a backup's loop state) is `metadata`.
        """
        return dict(self._kerasckpt_record()[2])

    @property
    def object_graph(self):
        """The bytes of TensorFlow's `_CHECKPOINTABLE_OBJECT_GRAPH` entry (verified), or None without one."""
        entry = self.entries.get(GRAPH_KEY)
        if entry is None or entry.dtype.name != "string" or entry.shape or entry.slices:
            return None
        return self.raw_bytes(GRAPH_KEY)

    # ------------------------------------------------------------------ listing
    def keys(self):
        """Every tensor name, sorted (TensorFlow's `list_variables` order; slice keys hidden)."""
        return sorted(self.entries)

    def __contains__(self, key):
        return key in self.entries

    def entry(self, key):
        """The Entry of `key`; raises CheckpointKeyError (a KeyError) naming close keys.

        A variable's object path stands for its value's key too: `model/dense/kernel` for
        `model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE` (kerasckpt 0.1's keys; TensorFlow needs the full key).
        """
        entry = self.entries.get(key)
        if entry is None and isinstance(key, str):
            entry = self.entries.get(key + VALUE_SUFFIX)
        if entry is None:
            import difflib
            short = {k[:-len(VALUE_SUFFIX)] if k.endswith(VALUE_SUFFIX) and not str(key).endswith(VALUE_SUFFIX) else k: k
                     for k in self.entries}  # compare like with like: object paths, or full keys
            close = difflib.get_close_matches(str(key), list(short), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise CheckpointKeyError(f"Key {key!r} not found in checkpoint '{self.prefix}'.{hint} "
                                     "list_variables(path) shows every key.")
        return entry

    def shape(self, key):
        return self.entry(key).shape

    def dtype(self, key):
        """The NumPy dtype `read(key)` returns (float32 for bfloat16; object for strings; None when unreadable)."""
        return self.entry(key).dtype.as_numpy_dtype

    def tf_dtype(self, key):
        """TensorFlow's dtype of `key` (a DType)."""
        return self.entry(key).dtype

    # ------------------------------------------------------------------ TensorFlow's CheckpointReader names
    def has_tensor(self, name):
        """Whether the checkpoint holds `name` (the exact key, as TensorFlow's `has_tensor`)."""
        return name in self.entries

    def get_tensor(self, name):
        """The verified value of `name`: an ndarray, a NumPy scalar for a 0-d value (bytes for a string)."""
        return self.get(name)

    def get_variable_to_shape_map(self):
        """`{name: [dims]}` of every tensor (slice keys hidden), as TensorFlow's reader returns it."""
        return {key: list(entry.shape) for key, entry in self.entries.items()}

    def get_variable_to_dtype_map(self):
        """`{name: DType}`: TensorFlow's dtype of every tensor (`.name`, `.as_numpy_dtype`; see DType)."""
        return {key: entry.dtype for key, entry in self.entries.items()}

    def data_files(self):
        """The data file names (in the checkpoint's directory), shard by shard."""
        return list(self._data_names)

    # ------------------------------------------------------------------ data files
    def _shard_path(self, shard):
        return _storage.join(self.directory, self._data_names[shard])

    def _keys_in(self, shard):
        return [e.key for e in self._all_entries() if self._in_shard(e, shard)]

    def _all_entries(self):
        return list(self.entries.values()) + list(self._slice_entries.values())

    @staticmethod
    def _in_shard(entry, shard):
        if entry.chunks is not None:
            return any(c[0] == shard for c in entry.chunks)
        return not entry.slices and entry.shard == shard and entry.size > 0

    def _needed_size(self, shard):
        """How long data file `shard` must be for the values in it (computed once for every shard)."""
        if self._needed is None:
            needed = {}
            for shard_id, offset, length in self.regions():
                needed[shard_id] = max(needed.get(shard_id, 0), offset + length)
            self._needed = needed
        return self._needed.get(shard, 0)

    def _missing(self, shard):
        """The error for a data file that is not there; says so when the checkpoint looks renamed, moved or replaced."""
        path = self._shard_path(shard)
        if self._replaced():
            return self._replaced_error(path, "is gone")
        holds = f"it holds {_some(self._display(self._keys_in(shard)))} of checkpoint '{self.prefix}'"
        expected = ", ".join(f"'{n}'" for n in self._data_names)
        written = self._written_names
        pairs = [(w, n) for w, n in zip(written, self._data_names) if w != n] if written else []
        if not pairs:
            return CheckpointNotFoundError(f"'{path}' is missing: {holds} (its data files: {expected}). {ADVICE}")
        m = DATA_RE.search(pairs[0][0])
        old_prefix = _storage.join(self.directory, pairs[0][0][:m.start()] if m else pairs[0][0])
        renames = ", ".join(f"'{w}' -> '{n}'" for w, n in pairs[:3]) + (", ..." if len(pairs) > 3 else "")
        old = _storage.join(self.directory, written[shard])
        if _storage.isfile(old, self.storage_options):
            return CheckpointNotFoundError(
                f"'{path}' is missing: {holds}. The checkpoint seems renamed or moved without its data files: "
                f"it was written as '{old_prefix}', and '{old}' is still there. A checkpoint is its .index "
                f"file plus data files named after the same prefix ({expected}); rename them together "
                f"({renames}), or rename '{self.index_path}' back to '{old_prefix}.index'.")
        return CheckpointNotFoundError(
            f"'{path}' is missing: {holds} (its data files: {expected}). It was written as '{old_prefix}': if "
            f"you renamed or moved it, rename or move its data files with it ({renames}). Otherwise: {ADVICE}")

    def _replaced(self):
        """Whether the index is no longer the version this reader read (overwritten or deleted since)."""
        try:
            return _storage.identity(self.index_path, self.storage_options) != self._index_identity
        except OSError:
            return False

    def _replaced_error(self, path, what):
        return CheckpointReplacedError(
            f"'{path}' {what}: checkpoint '{self.prefix}' was overwritten (or deleted) by another save while it was "
            "being read, so this data file no longer belongs to the index read. Read it again.")

    def _data_damaged(self, path, message):
        """CheckpointDamagedError(message) about the data file `path`, unless the checkpoint was replaced meanwhile
        (a later save reused the file's name: its bytes belong to another checkpoint)."""
        if self._replaced():
            return self._replaced_error(path, "does not match its index")
        return CheckpointDamagedError(message)

    def _display(self, keys):
        """Slice keys shown as the name of the tensor they belong to."""
        out = []
        for key in keys:
            name = key
            if key.startswith("\x00"):
                name = next((e.key for e in self.entries.values() for ext in e.slices
                             if _decode_key(slice_key(e.key, ext)) == key), key)
            if name not in out:
                out.append(name)
        return out

    def _open(self, shard):
        """`(descriptor, size)` of a data file, opened once, after checking its size against its values."""
        opened = self._files.get(shard)
        if opened is not None:
            return opened
        path = self._shard_path(shard)
        try:
            fd = _storage.open_descriptor(path, self.storage_options)  # from a store: downloaded and checked
        except FileNotFoundError:
            raise self._missing(shard) from None
        except IsADirectoryError:
            raise CheckpointIsADirectoryError(f"'{path}' is a directory, not a data file of checkpoint "
                                              f"'{self.prefix}'.") from None
        try:
            size = os.fstat(fd).st_size
            self._check_size(shard, size)
        except BaseException:
            os.close(fd)
            raise
        self._files[shard] = (fd, size)
        return fd, size

    def _map(self, shard):
        """The data file as a read-only uint8 array (memory-mapped), after checking its size."""
        m = self._maps.get(shard)
        if m is not None:
            return m
        fd, size = self._open(shard)
        if size == 0:
            m = np.zeros(0, np.uint8)
        else:
            m = np.frombuffer(mmap.mmap(fd, 0, access=mmap.ACCESS_READ), dtype=np.uint8)
        self._maps[shard] = m
        return m

    def _read_bytes(self, entry):
        """A fresh uint8 array of an entry's bytes, read (not mapped: no page faults) from its data file."""
        fd, _ = self._open(entry.shard)
        out = np.empty(entry.size, np.uint8)
        view, done = memoryview(out), 0
        while done < entry.size:
            n = os.preadv(fd, [view[done:]], entry.offset + done) if hasattr(os, "preadv") else \
                len(_pread_into(fd, view[done:], entry.offset + done))
            if n <= 0:
                raise CheckpointDamagedError(f"'{self._shard_path(entry.shard)}' is damaged: it ended while reading "
                                             f"'{entry.key}' (it was cut short while open). {ADVICE}")
            done += n
        return out

    def _check_size(self, shard, size):
        path = self._shard_path(shard)
        expected = self._sizes.get(shard)
        needed = self._needed_size(shard)
        if size < needed or (expected is not None and size != expected):
            keys = [e.key for e in self._all_entries() if self._in_shard(e, shard) and (
                e.offset + e.size > size if e.chunks is None else any(c[1] + c[2] > size for c in e.chunks))]
            how = "truncated" if size < max(needed, expected or 0) else "longer than written"
            says = f"the index says {expected}" if expected is not None else f"its values need {needed}"
            raise self._data_damaged(path, f"'{path}' is damaged: it is {how} ({size} bytes, {says}); "
                                     f"{_some(self._display(keys or self._keys_in(shard)))} cannot be read. {ADVICE}")

    def check_complete(self):
        """Raise unless every data file is present and long enough for its values (no data is read)."""
        listed = _storage.listing(self.directory, self.storage_options) if _storage.is_url(self.prefix) else None
        for shard in range(self.num_shards):
            path = self._shard_path(shard)
            try:
                if listed is None:
                    size = os.path.getsize(path)
                elif self._data_names[shard] in listed:
                    size = listed[self._data_names[shard]][0]
                else:
                    raise FileNotFoundError(path)
            except FileNotFoundError:
                if not self._keys_in(shard):
                    continue  # TensorFlow never opens a data file without values either
                raise self._missing(shard) from None
            except OSError as e:
                raise CheckpointNotFoundError(f"'{path}' cannot be read ({e}): it holds "
                                              f"{_some(self._display(self._keys_in(shard)))} of checkpoint "
                                              f"'{self.prefix}'. {ADVICE}") from None
            self._check_size(shard, size)

    def check_gaps(self):
        """Raise CheckpointDamagedError when a byte between values is not zero (writers put zeros there)."""
        covered = {}
        for shard, offset, length in self.regions():
            covered.setdefault(shard, []).append((offset, offset + length))
        for shard in range(self.num_shards):
            if not covered.get(shard):
                continue  # a data file without values (check_complete let it pass)
            fd, _ = self._open(shard)
            position = 0
            for start, end in sorted(covered[shard]):
                if start > position:
                    gap = os.pread(fd, start - position, position)
                    if gap.strip(b"\0"):
                        first = position + len(gap) - len(gap.lstrip(b"\0"))
                        raise CheckpointDamagedError(
                            f"'{self._shard_path(shard)}' is damaged: byte {first} lies between values, where the "
                            f"writer puts zeros, and is not zero: the file was changed after it was written. {ADVICE}")
                position = max(position, end)

    # ------------------------------------------------------------------ values
    def _region(self, entry):
        return self._map(entry.shard)[entry.offset:entry.offset + entry.size]

    def _bad_crc(self, entry, shard, offset, length, stored, got, kind="crc32c"):
        name = self._display([entry.key])[0]
        part = f" (its slice {entry.key!r})" if name != entry.key else ""
        return self._data_damaged(
            self._shard_path(shard),
            f"'{self._shard_path(shard)}' is damaged: checksum mismatch for '{name}'{part} (bytes {offset}.."
            f"{offset + length} of the file: stored {kind} {stored:08x}, computed {got:08x}). {ADVICE}")

    def _leaves(self, key):
        """The stored entries holding `key`'s bytes (its slices for a sliced tensor)."""
        entry = self.entry(key)
        if entry.slices:
            return [self._slice_entries[slice_key(entry.key, ext)] for ext in entry.slices]
        return [entry]

    def verify(self, keys=None):
        """Check the CRC of every value of `keys` (all by default); raise on the first damaged one.

        Variant entries are checked too (their CRC covers their bytes), though they cannot be read.
        """
        keys = self.keys() if keys is None else keys
        numeric, other = [], []
        for key in keys:
            for leaf in self._leaves(key):
                if leaf.chunks is not None:
                    numeric += [(leaf, c[0], c[1], c[2], c[3], "crc32") for c in leaf.chunks]
                elif leaf.dtype.size is not None and leaf.size:
                    numeric.append((leaf, leaf.shard, leaf.offset, leaf.size, _fileio.unmask_crc(leaf.crc32c),
                                    "crc32c"))
                else:
                    other.append(leaf)
        for kind in ("crc32c", "crc32"):
            jobs = [j for j in numeric if j[5] == kind]
            views = [self._map(j[1])[j[2]:j[2] + j[3]] for j in jobs]
            for job, got in zip(jobs, _fileio.checksum_many(views, _PARALLEL_MIN, kind=kind)):
                leaf, shard, offset, length, stored, _ = job
                if got != stored:
                    raise self._bad_crc(leaf, shard, offset, length, stored, got, kind)
        for leaf in other:
            if leaf.dtype.name == "string":
                self._strings(leaf)
            elif leaf.dtype.name == "variant":
                self._check_variant(leaf)

    def _strings(self, entry):
        """The elements of a string entry (a list of bytes), every checksum verified."""
        n = entry.num_elements
        if entry.size == 0:  # TensorFlow writes 4 bytes (the checksum of no lengths) for an empty tensor
            if n:
                raise self._damaged(f"'{entry.key}' has {n} string elements but no bytes")
            return []
        region = self._region(entry)
        buf = region.tobytes()
        path = self._shard_path(entry.shard)
        where = f"the string tensor '{entry.key}' (bytes {entry.offset}..{entry.offset + entry.size} of the file)"
        damaged = lambda why: self._data_damaged(path, f"'{path}' is damaged: {why} in {where}. {ADVICE}")  # noqa: E731
        lengths, pos = [], 0
        try:
            for _ in range(n):
                length, pos = pw.decode_varint(buf, pos)
                lengths.append(length)
        except pw.ProtoError:
            raise damaged("a string length is malformed") from None
        if pos + 4 + sum(lengths) != len(buf):
            raise damaged(f"the string lengths add up to {pos + 4 + sum(lengths)} bytes, not {len(buf)}")
        order = ">" if self.big_endian else "<"
        if max(lengths, default=0) <= 0xFFFFFFFF:
            packed = np.asarray(lengths, dtype=f"{order}u4").tobytes()
        else:
            packed = b"".join(struct.pack(f"{order}I" if x <= 0xFFFFFFFF else f"{order}Q", x) for x in lengths)
        crc = _fileio.crc32c(packed)
        stored = struct.unpack_from(f"{order}I", buf, pos)[0]
        if _fileio.unmask_crc(stored) != crc:
            raise damaged(f"the checksum of the string lengths does not match (stored {_fileio.unmask_crc(stored):08x}, "
                          f"computed {crc:08x})")
        crc = _fileio.crc32c(buf[pos:pos + 4], crc)
        crc = _fileio.crc32c(memoryview(buf)[pos + 4:], crc)
        if crc != _fileio.unmask_crc(entry.crc32c):
            raise self._bad_crc(entry, entry.shard, entry.offset, entry.size, _fileio.unmask_crc(entry.crc32c), crc)
        out, start = [], pos + 4
        for length in lengths:
            out.append(buf[start:start + length])
            start += length
        return out

    def _check_variant(self, entry):
        buf = self._region(entry).tobytes()
        crc, pos = 0, 0
        try:
            for _ in range(entry.num_elements):
                length, pos = pw.decode_varint(buf, pos)
                crc = _fileio.crc32c(struct.pack("<Q", length), crc)
                if pos + length + 4 > len(buf):
                    raise pw.ProtoError("an element runs past the entry")
                crc = _fileio.crc32c(buf[pos:pos + length], crc)
                pos += length
                if _fileio.unmask_crc(struct.unpack_from("<I", buf, pos)[0]) != crc:
                    raise pw.ProtoError("an element's checksum does not match")
                crc = _fileio.crc32c(buf[pos:pos + 4], crc)
                pos += 4
        except pw.ProtoError as e:
            raise CheckpointDamagedError(f"'{self._shard_path(entry.shard)}' is damaged: {e} in the variant entry "
                                         f"'{entry.key}'. {ADVICE}") from None
        if crc != _fileio.unmask_crc(entry.crc32c):
            raise self._bad_crc(entry, entry.shard, entry.offset, entry.size, _fileio.unmask_crc(entry.crc32c), crc)

    def _refuse(self, entry):
        what = {"variant": "a variant (e.g. a tf.data iterator's state), which only TensorFlow can decode",
                "resource": "a resource handle, which holds no value"}.get(
            entry.dtype.name, f"of dtype {entry.dtype.name}, which has no NumPy equivalent")
        return CheckpointFormatError(f"'{entry.key}' in checkpoint '{self.prefix}' cannot be read as an array: it is "
                                     f"{what}. Every other value of the checkpoint can be read; leave this one out "
                                     "(Checkpoint.restore skips it; list_variables shows it).")

    def _stored(self, leaf, raw):
        """A leaf's value as stored (verified), converted to what `read` returns."""
        dtype = leaf.dtype
        if dtype.name == "string":
            out = np.empty(leaf.num_elements, dtype=object)
            out[:] = self._strings(leaf) if leaf.num_elements else []
            return out.reshape(leaf.shape)
        if not dtype.readable and not (raw and dtype.size is not None):
            raise self._refuse(leaf)
        if leaf.chunks is not None:
            self.verify([leaf.key])
            data = np.empty(leaf.size, np.uint8)
            pos = 0
            for shard, offset, length, _ in leaf.chunks:
                data[pos:pos + length] = self._map(shard)[offset:offset + length]
                pos += length
        else:
            data = self._read_bytes(leaf)
            got = _fileio.checksum_many([data], _PARALLEL_MIN, kind="crc32c")[0]
            if leaf.size and got != _fileio.unmask_crc(leaf.crc32c):  # checked on the copy: what is returned is what was checked
                raise self._bad_crc(leaf, leaf.shard, leaf.offset, leaf.size, _fileio.unmask_crc(leaf.crc32c), got)
        stored = dtype._stored.newbyteorder(">") if self.big_endian and dtype._stored.itemsize > 1 else dtype._stored
        value = data.view(stored).reshape(leaf.shape)
        if raw:
            return value.astype(stored.newbyteorder("="), copy=False)
        if dtype.name == "bfloat16":
            return (value.astype(np.uint32) << 16).view(np.float32)
        return value.astype(dtype.as_numpy_dtype, copy=False)

    def read(self, key, raw=False):
        """A verified copy of the value of `key` (an ndarray; sliced tensors assembled).

        Args:
            raw: return bfloat16 (and the other types NumPy lacks) as their stored bits (uint16 / uint8).
        """
        entry = self.entry(key)
        if not entry.slices:
            return self._stored(entry, raw)
        if not entry.dtype.readable and not raw:
            raise self._refuse(entry)
        leaves = self._leaves(key)
        first = self._stored(leaves[0], raw) if leaves else None
        out = np.empty(entry.shape, dtype=object if entry.dtype.name == "string" else (
            first.dtype if first is not None else entry.dtype.as_numpy_dtype))
        covered, boxes = 0, []
        for extents, leaf in zip(entry.slices, leaves):
            box = tuple((s, d if n is None else n) for (s, n), d in zip(extents, entry.shape))
            if any(s + n > d for (s, n), d in zip(box, entry.shape)):
                raise self._damaged(f"a slice {extents} of '{key}' lies outside its shape {list(entry.shape)}")
            if leaf.shape != tuple(n for _, n in box):
                raise self._damaged(f"the slice {extents} of '{key}' has shape {list(leaf.shape)}")
            for other in boxes:
                if all(a < c + m and c < a + n for (a, n), (c, m) in zip(box, other)) and box and all(
                        n for _, n in box):
                    raise self._damaged(f"two slices of '{key}' overlap")
            boxes.append(box)
            covered += leaf.num_elements
            value = first if leaf is leaves[0] else self._stored(leaf, raw)
            out[tuple(slice(s, s + n) for s, n in box)] = value
        if covered != entry.num_elements:
            raise self._damaged(f"the slices of '{key}' cover {covered} of its {entry.num_elements} elements")
        return out

    def get(self, key):
        """`read(key)`, with a NumPy scalar (or bytes) for a 0-d value, as `tf.train.load_variable` returns."""
        value = self.read(key)
        return value[()] if value.ndim == 0 else value

    def raw_bytes(self, key):
        """The bytes of a scalar string entry (e.g. `_CHECKPOINTABLE_OBJECT_GRAPH`), verified."""
        entry = self.entry(key)
        if entry.dtype.name != "string" or entry.shape or entry.slices:
            raise CheckpointFormatError(f"'{key}' in checkpoint '{self.prefix}' is a {entry.dtype.name} tensor of "
                                        f"shape {list(entry.shape)}, not a string scalar.")
        return self._strings(entry)[0]

    def view(self, key):
        """The value of `key` as an array: a read-only view of the mapped file when possible (native layout,
        one region), else a converted copy. Call `verify([key])` first: a view is not checked here."""
        entry = self.entry(key)
        if entry.slices or entry.dtype.size is None or self.big_endian or entry.dtype.name == "bfloat16" \
                or not entry.dtype.readable:
            return self.read(key)
        if entry.chunks is not None:
            dtype = entry.dtype._stored
            chunks = entry.chunks
            contiguous = all(c[0] == chunks[0][0] and c[1] == chunks[0][1] + sum(x[2] for x in chunks[:i])
                             for i, c in enumerate(chunks))
            if not chunks:
                return np.zeros(entry.shape, dtype)
            if not contiguous:
                return self.read(key)
            region = self._map(chunks[0][0])[chunks[0][1]:chunks[0][1] + entry.size]
            return region.view(dtype).reshape(entry.shape)
        if entry.size == 0:
            return np.zeros(entry.shape, entry.dtype.as_numpy_dtype)
        return self._region(entry).view(entry.dtype._stored).reshape(entry.shape)

    def regions(self):
        """`[(shard, offset, length)]` of every stored value's bytes (what the CRCs cover)."""
        out = []
        for entry in self._all_entries():
            if entry.chunks is not None:
                out += [(c[0], c[1], c[2]) for c in entry.chunks]
            elif not entry.slices and entry.size:
                out.append((entry.shard, entry.offset, entry.size))
        return out

    def close(self):
        """Close the data files and drop the mappings (arrays from `view` keep their file mapped until freed)."""
        self._maps.clear()
        files, self._files = self._files, {}
        for fd, _ in files.values():
            os.close(fd)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001  interpreter shutting down
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _pread_into(fd, view, offset):
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return data


def is_complete(prefix, storage_options=None):
    """Whether `prefix` is a readable checkpoint: valid index, every data file present and long enough."""
    try:
        with CheckpointReader(prefix, storage_options) as reader:
            reader.check_complete()
        return True
    except (OSError, ValueError):
        return False


def referenced_data_names(prefix, storage_options=None):
    """The data file names the index at `prefix` uses; None when it cannot be read (assume any)."""
    try:
        with CheckpointReader(prefix, storage_options) as reader:
            return _names_of(reader)
    except CheckpointNotFoundError:
        return set()
    except (OSError, ValueError):
        return None


def read_again_if_replaced(read, attempts=3):
    """`read()`, called again when the checkpoint it reads was overwritten meanwhile (CheckpointReplacedError)."""
    for attempt in range(attempts):
        try:
            return read()
        except CheckpointReplacedError:
            if attempt == attempts - 1:
                raise


def _names_of(reader):
    return set(reader.data_files()) | set(reader._written_names or ())


def delete(prefix, storage_options=None):
    """Delete the checkpoint `prefix`: its index first (it stops being readable), then its data files.

    A file that cannot be deleted is named in a warning; a missing one is no error.
    """
    directory = _storage.dirname(prefix)
    doomed = [prefix + ".index"] + [_storage.join(directory, n) for n in data_files_on_disk(prefix, storage_options)]
    for path in doomed:
        try:
            _storage.remove(path, storage_options)
        except FileNotFoundError:
            pass
        except OSError as e:
            import warnings
            warnings.warn(f"Could not delete old checkpoint file '{path}' ({e}). Delete it by hand.", UserWarning,
                          stacklevel=3)


# ---------------------------------------------------------------------------------------------- writing
def _written_by():
    """Who wrote a checkpoint and when: kerasckpt's version, the UTC time (ISO-8601)."""
    from kerasckpt import __version__  # at call time: kerasckpt imports this module while being imported
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    return {"kerasckpt_version": __version__, "saved_at": now.replace("+00:00", "Z")}


def kerasckpt_record(graph=None, metadata=None):
    """The `_KERASCKPT_METADATA` value: kerasckpt's object graph (JSON), the saver's metadata, who wrote it
    and when."""
    record = {"format": FORMAT, "version": FORMAT_VERSION, "written_by": _written_by(),
              "graph": graph, "metadata": metadata or {}}
    return json.dumps(record, separators=(",", ":")).encode("utf-8")


def _serialize_strings(key, value):
    """The stored bytes of a string tensor and its CRC-32C (TensorFlow's WriteStringTensor)."""
    flat = []
    for x in np.asarray(value, dtype=object).reshape(-1):
        if isinstance(x, str):
            x = x.encode("utf-8")
        if not isinstance(x, (bytes, bytearray, np.bytes_)):
            raise TypeError(f"Cannot checkpoint '{key}': a string tensor element is {type(x).__name__}, not bytes "
                            "or str.")
        flat.append(bytes(x))
    lengths = b"".join(pw.encode_varint(len(x)) for x in flat)
    crc = _fileio.crc32c(b"".join(struct.pack("<I" if len(x) <= 0xFFFFFFFF else "<Q", len(x)) for x in flat))
    length_crc = struct.pack("<I", _fileio.mask_crc(crc))
    crc = _fileio.crc32c(length_crc, crc)
    payload = b"".join(flat)
    crc = _fileio.crc32c(payload, crc)
    return lengths + length_crc + payload, crc


class _Item:
    """One entry to write: its key, DType, shape, and the bytes (a uint8 view, or serialized strings)."""

    __slots__ = ("key", "dtype", "shape", "data", "crc", "slices", "pieces")

    def __init__(self, key, value):
        self.key, self.slices, self.pieces = key, [], []
        if isinstance(value, (bytes, bytearray, str)):
            value = np.array(value if isinstance(value, bytes) else (value.encode("utf-8") if isinstance(value, str)
                                                                     else bytes(value)), dtype=object)
        arr = np.asarray(value)
        self.shape = arr.shape
        self.dtype = dtype_of(arr.dtype) if arr.dtype.kind != "V" else None
        if self.dtype is None:
            raise TypeError(f"Cannot checkpoint '{key}': dtype {arr.dtype} is not numeric.")
        if self.dtype.name == "string":
            self.data, self.crc = _serialize_strings(key, arr)
            return
        if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not np.little_endian):
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        self.data = arr.reshape(-1).view(np.uint8)
        self.crc = None  # computed while writing


def _split_rows(item, limit):
    """Row blocks of `item` (axis 0) of at most `limit` bytes each, or None when it cannot be split."""
    if item.dtype.name == "string" or len(item.shape) == 0 or item.shape[0] < 2 or len(item.data) <= limit:
        return None
    row = len(item.data) // item.shape[0]
    rows = max(1, limit // row) if row else item.shape[0]
    return [(start, min(rows, item.shape[0] - start)) for start in range(0, item.shape[0], rows)]


def _layout(items, max_shard_size, alignment):
    """`[(item or slice item, shard, offset)]` and the size of each shard."""
    limit = max_shard_size if max_shard_size and max_shard_size > 0 else None
    placed, shards = [], [0]

    def put(piece):
        size = len(piece.data)
        offset = -(-shards[-1] // alignment) * alignment if size else shards[-1]
        if limit is not None and shards[-1] > 0 and offset + size > limit:
            shards.append(0)
            offset = 0
        placed.append((piece, len(shards) - 1, offset))
        shards[-1] = max(shards[-1], offset + size)

    for item in items:
        rows = _split_rows(item, limit) if limit else None
        if rows is None or len(rows) < 2:
            put(item)
            continue
        row_bytes = len(item.data) // item.shape[0]
        for start, count in rows:
            extents = [(start, count)] + [(0, None)] * (len(item.shape) - 1)
            piece = _Item.__new__(_Item)
            piece.key, piece.dtype, piece.slices, piece.pieces = slice_key(item.key, extents), item.dtype, [], []
            piece.shape = (count,) + tuple(item.shape[1:])
            piece.data, piece.crc = item.data[start * row_bytes:(start + count) * row_bytes], None
            item.slices.append(extents)
            item.pieces.append(piece)
            put(piece)
    return placed, shards


def _choose_shard_count(base, needed, referenced):
    """The smallest N >= needed whose data file names (of the prefix named `base`) are not in `referenced`."""
    n = needed
    while any(data_file_name(base, k, n) in referenced for k in range(n)):
        n += 1
    return n


def _index_bytes(base, items, placed, num_shards, crcs):
    """The index of a bundle: the header, an entry per placed piece (`crcs`: id(piece) -> CRC-32C), sliced entries."""
    table = []
    for piece, shard, offset in placed:
        crc = piece.crc if piece.crc is not None else crcs.get(id(piece), 0)
        entry = Entry(piece.key, piece.dtype, piece.shape, shard=shard if len(piece.data) else 0,
                      offset=offset if len(piece.data) else 0, size=len(piece.data), crc32c=_fileio.mask_crc(crc))
        table.append((piece.key.encode("utf-8", "surrogateescape") if isinstance(piece.key, str) else piece.key,
                      encode_entry(entry)))
    for item in items:
        if item.slices:
            full = Entry(item.key, item.dtype, item.shape, slices=item.slices)
            table.append((item.key.encode("utf-8", "surrogateescape"), encode_entry(full)))
    header = (pw.varint_field(1, num_shards) + pw.bytes_field(3, pw.varint_field(1, _TF_VERSION))
              + pw.bytes_field(_WRITTEN_AS_FIELD, base))
    table.sort(key=lambda kv: kv[0])
    return sstable.build_table([(b"", header)] + table)


def write_bundle(prefix, entries, max_shard_size=None, alignment=ALIGNMENT, storage_options=None, exclusive=False):
    """Write `prefix.index` and its data files crash-safely (see the module docstring); returns the data file names.

    Args:
        prefix: the checkpoint path without suffix; a path or an fsspec URL.
        entries: `[(key, value)]` in data-file order: numeric / bool arrays (read, never modified), or bytes,
            str or object arrays of bytes (string tensors, e.g. the object graph).
        max_shard_size: bytes per data file; a larger value is split by rows into slices over several
            files (as TensorFlow's MaxShardSizePolicy does). None: one data file.
        alignment: each value starts at a multiple of this many bytes (zeros between values).
        storage_options: options of the store a URL names (see `_write_to_store`).
        exclusive: on a store, refuse (StorageConflictError) a prefix whose index exists or appears meanwhile:
            a new numbered checkpoint must not replace another writer's.
    """
    prefix = _storage.normalize(prefix)
    directory, base = _storage.split(prefix)
    if not base or prefix.endswith(("/", os.sep)):
        raise ValueError(f"Checkpoint prefix {prefix!r} ends with a path separator. Pass a file prefix such as "
                         f"{_storage.join(prefix, 'ckpt')!r}.")
    if _storage.is_directory_in_the_way(prefix + ".index", storage_options):
        raise CheckpointIsADirectoryError(f"Cannot write checkpoint '{prefix}': '{prefix}.index' is a directory. "
                                          "Choose another prefix or remove that directory.")
    items, seen = [], set()
    for key, value in entries:
        if not isinstance(key, str) or key in seen or key == "" or key.startswith("\x00"):
            raise ValueError(f"Cannot checkpoint the key {key!r}: keys are unique, non-empty strings that do not "
                             "start with a NUL character.")
        seen.add(key)
        items.append(_Item(key, value))
    placed, shard_sizes = _layout(items, max_shard_size, alignment)
    if _storage.is_url(prefix):
        return _write_to_store(prefix, items, placed, shard_sizes, storage_options, exclusive)
    _fileio.makedirs_for(prefix)
    _fileio.cleanup_temp_files(directory)
    existing = data_files_on_disk(prefix)
    referenced = referenced_data_names(prefix)
    if referenced is None:  # an index that cannot be read: keep clear of every data file on disk
        referenced = set(existing)
    num_shards = _choose_shard_count(base, len(shard_sizes), referenced)
    shard_sizes += [0] * (num_shards - len(shard_sizes))
    names = [data_file_name(base, k, num_shards) for k in range(num_shards)]
    temps, fds, writers, syncs, index_tmp, active = [], [], [], [], None, []
    try:
        crc_index = {}
        for k in range(num_shards):
            tmp = _fileio.claim_temp(os.path.join(directory, names[k]))
            active.append(tmp)
            temps.append(tmp)
            fds.append(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
            writers.append(_fileio.StreamingWriter(fds[-1], kind="crc32c"))
        for piece, shard, offset in placed:
            if len(piece.data):
                crc_index[id(piece)] = (shard, writers[shard].write(piece.data, offset))
        for k, fd in enumerate(fds):
            os.ftruncate(fd, shard_sizes[k])  # the gaps between values read as zeros
        sums = [writer.checksums() for writer in writers]
        syncs = [_fileio.io_pool().submit(os.fsync, fd) for fd in fds]  # the writers started the disk already
        crcs = {piece_id: sums[shard][n] for (piece_id, (shard, n)) in crc_index.items()}
        index = _index_bytes(base, items, placed, num_shards, crcs)
        index_tmp = _fileio.claim_temp(prefix + ".index")
        active.append(index_tmp)
        with open(index_tmp, "xb") as f:
            f.write(index)
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
        for tmp in temps + [index_tmp] + renamed:  # renamed data files: the old index does not name them
            if tmp is not None:
                try:
                    os.remove(tmp)
                except OSError:
                    pass
        raise
    finally:
        _fileio.release_temp(*active)
    for stale in set(existing) - set(names):  # the previous checkpoint's data: no index names it any more
        try:
            os.remove(os.path.join(directory, stale))
        except OSError:
            pass
    return names


def _write_to_store(prefix, items, placed, shard_sizes, storage_options, exclusive):
    """`write_bundle` on a store without rename, where each object appears whole when its upload completes.

    The data objects take names the index now at the prefix does not use (as on a disk) and are uploaded
    first, streamed from the arrays; then the index replaces the old one — the one step that makes the new
    checkpoint visible — conditionally on being the version read at the start, so a second writer of the same
    prefix is refused (StorageConflictError) rather than mixed in; then the data no index names any more
    is deleted. A failure before the switch deletes the new data objects, unless another index took the
    prefix meanwhile (they may be named by it, so they stay for the next save's sweep).
    """
    directory, base = _storage.split(prefix)
    if exclusive:  # a new checkpoint has nothing to replace; its index write also fails if one appears meanwhile
        if _storage.identity(prefix + ".index", storage_options) is not None:
            raise StorageConflictError(f"Cannot write checkpoint '{prefix}': it exists already, written by another "
                                       "writer of this directory. Give each run its own directory.")
        existing, blob, token = [], None, None
    else:
        existing = data_files_on_disk(prefix, storage_options)
        blob, token = _storage.read_versioned(prefix + ".index", storage_options)
    referenced = set()
    if blob is not None:
        try:
            with CheckpointReader.from_index(prefix, blob, token, storage_options) as reader:
                referenced = _names_of(reader)
        except (OSError, ValueError):  # an index that cannot be read: keep clear of every data object there
            referenced = set(existing)
    num_shards = _choose_shard_count(base, len(shard_sizes), referenced)
    shard_sizes += [0] * (num_shards - len(shard_sizes))
    names = [data_file_name(base, k, num_shards) for k in range(num_shards)]
    images = [_storage.ImageFile() for _ in range(num_shards)]
    writers = [_fileio.StreamingWriter(image, kind="crc32c") for image in images]  # arrays referenced, not copied
    crc_index = {}
    with contextlib.ExitStack() as stack:
        for writer in writers:
            stack.enter_context(writer)
        for piece, shard, offset in placed:
            if len(piece.data):
                crc_index[id(piece)] = (shard, writers[shard].write(piece.data, offset))
        for image, size in zip(images, shard_sizes):
            image.truncate(size)  # the gaps between values read as zeros
        sums = [writer.checksums() for writer in writers]
    crcs = {piece_id: sums[shard][n] for (piece_id, (shard, n)) in crc_index.items()}
    index = _index_bytes(base, items, placed, num_shards, crcs)
    uploaded = []
    try:
        for name, image in zip(names, images):
            _storage.write_bytes(_storage.join(directory, name), image, storage_options)
            uploaded.append(name)
        _storage.write_bytes(prefix + ".index", index, storage_options, if_match=None if exclusive else token,
                             if_none_match=exclusive or token is None)
    except BaseException:
        try:
            untouched = _storage.identity(prefix + ".index", storage_options) == token
        except Exception:  # noqa: BLE001  the store is away: leave the data objects to the next save's sweep
            untouched = False
        for name in uploaded if untouched else ():
            with contextlib.suppress(Exception):
                _storage.remove(_storage.join(directory, name), storage_options)
        raise
    for stale in set(existing) - set(names):  # the previous checkpoint's data: no index names it any more
        with contextlib.suppress(OSError):
            _storage.remove(_storage.join(directory, stale), storage_options)
    return names

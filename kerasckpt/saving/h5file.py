"""Checksummed HDF5 files: the byte layer under `.weights.h5`, legacy `.h5` and the `.keras` weights.

kerasckpt's files are verified before h5py parses them; any file is checked for unsafe HDF5 features.
"""
# Layout: an ordinary HDF5 file (h5py and Keras open it as is) behind a user block, which HDF5 reserves
# for applications and never reads. The user block holds
#     magic (16 bytes) | user block size (u32) | header length (u32) | CRC-32 of the user block (u32) | JSON
# and the JSON header lists the file size, the CRC-32 of every byte after the user block (`crc32`), the
# CRC-32 of the HDF5 metadata, i.e. every byte outside the datasets' raw data (`meta_crc32`), and the
# `[offset, length, crc32]` of each dataset's raw data (`extents`); each dataset also carries its CRC-32
# in the attribute `kerasckpt_crc32` (Keras ignores dataset attributes). Reading verifies the user block
# and the metadata before h5py sees a byte, and each dataset's bytes (mapped from its extent) before any
# is handed out, so a damaged file is refused before it is parsed and never yields different numbers.
# Files without a user block (as Keras writes them) are read through h5py without checksums; HDF5 crashes or
# hangs on some damage there, so every attribute header and global heap is checked before a value is read,
# and whatever HDF5 raises becomes a CheckpointDamagedError naming the file.
# The header also carries a structure index (`index`: every group and dataset with its attributes, as h5py
# would read them, and each dataset's shape, dtype and offset): loads of kerasckpt's own files take the
# structure from it and never open the file with h5py, whose walk cost more than reading a 12 MB model. The
# index and the HDF5 metadata come from the same entries in one write and are covered by the header's and the
# metadata's checksums, so they agree unless someone forges both (rewrites the header and recomputes its
# CRC-32); such a file yields the numbers its header points to, which are no less checked or safe than any
# others (plain arrays from the file, nothing HDF5 parses). Files without an index (older kerasckpt, or an
# attribute the index cannot carry) are walked as before; `H5Source.file` opens and walks on first use.
# Writing: h5py creates the structure with every dataset's storage placed at creation and never filled
# (datasets through HDF5's own calls: the same bytes as h5py's `create_dataset`, at a fraction of its cost);
# kerasckpt writes each array's bytes there itself with one pwrite from the array's own buffer.
import io
import json
import math
import mmap
import os
import struct

import h5py
import numpy as np

from kerasckpt import _fileio
from kerasckpt._fileio import checksum as crc32, crc32_combine  # noqa: F401 (crc32_combine: re-exported)
from kerasckpt.errors import CheckpointDamagedError, CheckpointError, CheckpointFormatError, UnsafeCheckpointError

MAGIC = b"KERASCKPT-HDF5\n\x00"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FORMAT_VERSION = 1
CHECKSUM_ATTR = "kerasckpt_crc32"
_FIXED = struct.Struct("<16sIII")  # magic, user block size, header length, CRC-32 of the user block
_MAX_USERBLOCK = 1 << 26
_MAX_DEPTH = 64
_MAX_OBJECTS = 1 << 20
_BOMB_MIN_BYTES = 64 << 20  # a dataset may declare more bytes than it stores only below this size ...
_BOMB_RATIO = 100  # ... or up to this compression ratio
_THREAD_MIN = 256 << 10  # on reads, arrays from this size on are checksummed on the worker threads
_SAFE_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32, 32000}  # 32000: LZF
# Attribute types Keras and kerasckpt write (strings, numbers; h5py writes bools as enums). Other types are
# never read: a bit flip can turn a string list into a variable-length sequence, which h5py reads into a
# segmentation fault.
_ATTR_CLASSES = {h5py.h5t.STRING: "string", h5py.h5t.INTEGER: "integer", h5py.h5t.FLOAT: "float",
                 h5py.h5t.ENUM: "enum"}
_TYPE_NAMES = {h5py.h5t.VLEN: "variable-length sequence", h5py.h5t.COMPOUND: "compound", h5py.h5t.OPAQUE: "opaque",
               h5py.h5t.REFERENCE: "reference", h5py.h5t.ARRAY: "array", h5py.h5t.BITFIELD: "bitfield",
               h5py.h5t.TIME: "time"}
_MAX_ATTR_BYTES = 64 << 20
ADVICE = "The file is damaged: restore it from a backup or save it again."


# ----------------------------------------------------------------------------------------- windows

class Window(io.RawIOBase):
    """A file-like view of `size` bytes of a random-access file from `base` on (h5py's fileobj driver).

    `file` is a descriptor or an object with `pread_into`/`pwrite`/`truncate`/`size` (`_fileio.FdFile`, or
    the in-memory `_storage.ImageFile` of an upload). Reads and writes are positioned, so several windows
    on one file never disturb each other; a read-only window never reads past its end.
    """

    def __init__(self, file, base=0, size=None, writable=False):
        super().__init__()
        self.file = file if hasattr(file, "pread_into") else _fileio.FdFile(file)
        self.base, self.size, self._writable, self.pos = base, size, writable, 0

    @property
    def fd(self):
        """The descriptor under the window, or None for an in-memory file."""
        return getattr(self.file, "fd", None)

    def readable(self):
        return True

    def writable(self):
        return self._writable

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        end = self.size if self.size is not None else self.file.size() - self.base
        self.pos = offset if whence == io.SEEK_SET else (self.pos + offset if whence == io.SEEK_CUR else end + offset)
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        if self.size is not None:
            view = view[:max(0, min(len(view), self.size - self.pos))]
        n = self.file.pread_into(view, self.base + self.pos)
        self.pos += n
        return n

    def write(self, data):
        view = memoryview(data).cast("B")
        self.file.pwrite(view, self.base + self.pos)
        self.pos += len(view)
        return len(view)

    def truncate(self, size=None):
        size = self.pos if size is None else size
        self.file.truncate(self.base + size)
        return size

    def flush(self):
        pass


def pread_into(fd, view, offset):
    """Read into `view` from `offset` until it is full or the file ends; returns the bytes read."""
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:done + (1 << 30)]], offset + done)
        if n == 0:
            break
        done += n
    return done


# ----------------------------------------------------------------------------------------- writing

def _userblock_size(n_datasets, index_size=0):
    need = _FIXED.size + 512 + 64 * n_datasets + index_size
    return max(512, 1 << math.ceil(math.log2(need)))


_MAX_INDEX = 1 << 20  # a bigger index (a huge config attribute) is left out: readers walk the file instead


def _index(entries, root_attrs, datasets):
    """What a reader learns by walking the file with h5py, as JSON: `{"groups": {path: attrs}, "datasets":
    {path: [shape, dtype, attrs]}}`, every group (also those created on the way to a path) with its attributes
    as `read_attr` returns them. None when an attribute has a type the index does not carry."""
    groups, index = {"": {}}, {}
    try:
        for key, value in (root_attrs or {}).items():
            groups[""][key] = _index_value(value)
        for entry in entries:
            if entry[0] == "group":
                attrs = groups.setdefault(entry[1].strip("/"), {})
                for key, value in (entry[2] or {}).items():
                    attrs[key] = _index_value(value)
        for path, arr, attrs in datasets:
            index[path.strip("/")] = [list(arr.shape), arr.dtype.str,
                                      {k: _index_value(v) for k, v in (attrs or {}).items()}, None]
    except TypeError:
        return None
    for path in list(groups) + list(index):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            groups.setdefault("/".join(parts[:depth]), {})
    if set(groups) & set(index):
        return None
    return {"groups": groups, "datasets": index}


def _index_size(index):
    """The JSON length of `index` once every dataset has its (at most 10-digit) checksum attribute."""
    text = json.dumps(index, separators=(",", ":"))
    per_dataset = len(f',"{CHECKSUM_ATTR}":4294967295') + len(str(1 << 62)) - len("null")
    return len(text) + per_dataset * len(index["datasets"]) + len(',"index":')


def _index_value(value):
    """An attribute value as h5py reads it back and `read_attr` decodes it; TypeError for other types."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("booleans are stored as HDF5 enums")
    if isinstance(value, str):
        value.encode("utf-8")
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 0:
        return []
    if isinstance(value, (list, tuple)) or isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        items = np.asarray(value).reshape(-1).tolist() if isinstance(value, np.ndarray) else list(value)
        if not all(isinstance(v, (str, bytes)) for v in items):
            raise TypeError("only lists of strings")
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in items]
    raise TypeError(f"attribute of type {type(value).__name__}")


def _native(array):
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Only numeric arrays can be saved; received dtype {array.dtype}.")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array if array.flags.c_contiguous else array.copy(order="C")  # keeps 0-d arrays 0-d


def _early_dcpl():
    """Contiguous storage placed when the dataset is created, never filled: kerasckpt writes the bytes."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


_LCPL = h5py.h5p.create(h5py.h5p.LINK_CREATE)
_LCPL.set_create_intermediate_group(True)  # as h5py's groups create links
_U32 = h5py.h5t.py_create(np.dtype("<u4"))
_SCALAR = h5py.h5s.create(h5py.h5s.SCALAR)


def _create_dataset(h5, path, arr, attrs):
    """`(dataset id, h5py dataset or None)` of a new dataset for `arr` at `path`.

    Arrays with at least one value and one dimension under an ASCII name are created through HDF5's own
    calls, with the properties `h5.create_dataset(path, shape, dtype, dcpl=_early_dcpl())` sets (the file
    is byte for byte the same; a test compares them) at a fraction of h5py's per-dataset cost; anything
    else goes through h5py.
    """
    if arr.nbytes and arr.ndim and not attrs and path.isascii():
        dcpl = _early_dcpl()
        dcpl.set_obj_track_times(False)  # h5py's default: no timestamps in the file
        space = h5py.h5s.create_simple(arr.shape, arr.shape)
        return h5py.h5d.create(h5.id, path.encode(), h5py.h5t.py_create(arr.dtype, logical=1), space,
                               dcpl=dcpl, lcpl=_LCPL), None
    dset = h5.create_dataset(path, shape=arr.shape, dtype=arr.dtype, dcpl=_early_dcpl() if arr.nbytes else None)
    for key, value in (attrs or {}).items():
        dset.attrs[key] = value
    return dset.id, dset


def _set_checksum(dsid, value):
    """`dset.attrs[CHECKSUM_ATTR] = np.uint32(value)`, through HDF5's own calls."""
    attr = h5py.h5a.create(dsid, CHECKSUM_ATTR.encode(), _U32, _SCALAR)
    attr.write(np.array(value, np.uint32))


def write_h5(file, entries, root_attrs=None, base=0):
    """Write a checksummed HDF5 file at `base` of `file`; returns (size, crc32).

    h5py lays out the groups, attributes and datasets (storage placed at creation, never filled); each
    array's bytes then go straight from its buffer to its extent with `pwrite` (no copy), checksummed
    on two threads and written back to disk while the next ones are written (`_fileio.StreamingWriter`);
    the CRC-32 attributes, the HDF5 metadata and the user block follow. The caller fsyncs the file
    once at the end.

    Args:
        file: a descriptor open for reading and writing, or an `_fileio.FdFile`-like file (see `Window`).
        entries: `("group", path, attrs)` and `("dataset", path, array, attrs)` tuples, in order.
        root_attrs: attributes of the root group.
        base: where the file starts in `fd` (a `.keras` archive member starts after its zip header).
    Returns the file's size and the CRC-32 of all its bytes (what a zip directory records).
    """
    datasets = [(e[1], _native(e[2]), e[3]) for e in entries if e[0] == "dataset"]
    index = _index(entries, root_attrs, datasets)
    index_size = 0 if index is None else _index_size(index)
    if index_size > _MAX_INDEX:
        index, index_size = None, 0
    userblock = _userblock_size(len(datasets), index_size)
    window = Window(file, base, writable=True)
    file = window.file
    file.truncate(base)
    extents, sums = [], []
    with _fileio.StreamingWriter(file) as writer, h5py.File(window, "w", userblock_size=userblock) as h5:
        for key, value in (root_attrs or {}).items():
            h5.attrs[key] = value
        for entry in entries:
            if entry[0] == "group":
                group = h5.require_group(entry[1])
                for key, value in (entry[2] or {}).items():
                    group.attrs[key] = value
        handles = [_create_dataset(h5, path, arr, attrs) for path, arr, attrs in datasets]
        crc_index, offsets = [], []
        for (dsid, dset), (path, arr, _) in zip(handles, datasets):
            data = memoryview(arr.reshape(-1)).cast("B")
            offsets.append(None)
            if not arr.nbytes:
                crc_index.append(writer.track(data))
                continue
            if dsid.get_storage_size() == arr.nbytes:  # placed: write the bytes ourselves
                crc_index.append(writer.write(data, base + dsid.get_offset()))
            else:  # HDF5 places scalars only when they are written
                dset.write_direct(arr)
                crc_index.append(writer.track(data))
            offset = dsid.get_offset()
            if offset is None or dsid.get_storage_size() != arr.nbytes:
                raise RuntimeError(f"kerasckpt bug: HDF5 gave '{path}' no contiguous storage.")
            extents.append([int(offset), int(arr.nbytes)])
            offsets[-1] = int(offset)
        crcs = writer.checksums()
        sums = [crcs[i] for i in crc_index]
        for (dsid, _), value in zip(handles, sums):
            _set_checksum(dsid, value)
    extents = [[offset, length, value] for (offset, length), value in
               zip(extents, [v for (_, arr, _), v in zip(datasets, sums) if arr.nbytes])]
    size = file.size() - base
    extents.sort()
    meta_crc, whole, gaps = _scan_gaps(window, userblock, size, extents)
    fields = {"format": "kerasckpt-hdf5", "version": FORMAT_VERSION, "size": size, "crc32": whole,
              "meta_crc32": meta_crc, "extents": extents}
    if index is not None:
        for (path, _, _), value, offset in zip(datasets, sums, offsets):
            entry = index["datasets"][path.strip("/")]
            entry[2][CHECKSUM_ATTR] = value
            entry[3] = offset
        fields["index"] = index
    header = json.dumps(fields, separators=(",", ":")).encode()
    if _FIXED.size + len(header) > userblock:
        raise RuntimeError(f"kerasckpt bug: HDF5 header of {len(header)} bytes does not fit the user block.")
    block = bytearray(userblock)
    block[_FIXED.size:_FIXED.size + len(header)] = header
    _FIXED.pack_into(block, 0, MAGIC, userblock, len(header), 0)
    struct.pack_into("<I", block, 24, crc32(block))
    file.pwrite(memoryview(block), base)
    return size, crc32_combine(crc32(block), whole, size - userblock)


def _scan_gaps(window, start, size, extents, whole=True, read=None):
    """Read the bytes outside `extents`; returns (their CRC-32, CRC-32 of [start, size) or None, gap count).

    `whole=False` leaves out the CRC of everything (a reader needs only the metadata's); `read(offset, n)`
    gives the bytes [offset, offset + n) (default: read from `window`).
    """
    meta, crc_all, pos, gaps = 0, 0, start, 0
    for offset, length, value in extents + [[size, 0, 0]]:
        if offset < pos or offset + length > size:
            raise CheckpointDamagedError(f"dataset extent [{offset}, {offset + length}) overlaps another or the "
                                         f"end of the file ({size} bytes)")
        if offset > pos:
            if read is not None:
                gap = read(pos, offset - pos)
            else:
                gap = bytearray(offset - pos)
                window.seek(pos)
                gap = gap[:window.readinto(gap)]
            if len(gap) != offset - pos:
                raise CheckpointDamagedError(f"file ends inside the HDF5 metadata at byte {pos}")
            meta = crc32(gap, meta)
            if whole:
                crc_all = crc32_combine(crc_all, crc32(gap), len(gap))
            gaps += 1
        if whole:
            crc_all = crc32_combine(crc_all, value, length)
        pos = offset + length
    return meta, crc_all if whole else None, gaps


# ----------------------------------------------------------------------------------------- reading

class H5Source:
    """An HDF5 file opened for reading; kerasckpt's files are verified before h5py parses them.

    Args:
        fd: an open descriptor (kept open by the caller until `close()`).
        label: how errors name the file, e.g. `'/runs/m.weights.h5'`.
        base, size: where the HDF5 file lies in `fd` (a `.keras` member); the whole file by default.
        data: the file's bytes, instead of `fd` (a compressed `.keras` member).
    """

    def __init__(self, label, fd=None, base=0, size=None, data=None):
        self.label = label
        self.verified = False
        self._extents = {}
        self._index = None
        self._file = None
        self._map = None
        if data is not None:
            self._io = io.BytesIO(data)
            size = len(data)
        else:
            self._io = Window(fd, base, size)
            size = self._io.file.size() - base if size is None else size
            self._io.size = size
        self.size = size
        head = self._read(0, min(size, _FIXED.size))
        if head[:8] == HDF5_SIGNATURE:
            pass  # no user block: a file written by Keras (or h5py), without checksums
        elif head[:16] == MAGIC:
            self._verify_header()
            self.verified = True
        else:
            self._refuse_unknown(head)
        if self._index is not None:
            self._load_index(self._index)  # kerasckpt's own file: HDF5 is opened only if `file` is asked for
        else:
            self._open_h5()

    @property
    def file(self):
        """The h5py file, opened (and every object checked) on first use when the structure came from the index."""
        if self._file is None:
            self._open_h5()
        return self._file

    def _open_h5(self):
        self._io.seek(0)
        try:
            self._file = h5py.File(self._io, "r")
        except Exception as err:  # h5py raises OSError, KeyError, ... for broken files
            raise self._damaged(f"HDF5 cannot open it ({err})") from None
        try:
            self._check_objects()
        except BaseException as err:
            self._file.close()
            self._file = None
            if isinstance(err, CheckpointError) or not isinstance(err, Exception):
                raise
            # A file without checksums (as Keras writes them) is only known to be damaged when HDF5 trips
            # over it: h5py raises RuntimeError, KeyError, OSError, ValueError, UnicodeDecodeError, ...
            raise self._damaged(f"its HDF5 structure cannot be read ({type(err).__name__}: {err})") from None
        self._index = None

    def _load_index(self, index):
        """The structure from the verified header's index: what `_check_objects` would find, without HDF5.

        Every dataset must be a little-endian number array whose bytes are exactly one checksummed extent
        of the header (or none, when it is empty), as kerasckpt writes them.
        """
        try:
            groups, datasets = index["groups"], index["datasets"]
            if not isinstance(groups, dict) or not isinstance(datasets, dict) or "" not in groups or \
                    len(groups) + len(datasets) > _MAX_OBJECTS:
                raise ValueError("bad index")
            self.children = {path: [] for path in groups}
            self.attr_names = {path: list(attrs) for path, attrs in groups.items()}
            self.datasets = {}
            used = set()
            for path, (shape, dtype, attrs, offset) in datasets.items():
                dtype = np.dtype(dtype)
                shape = tuple(int(n) for n in shape)
                if dtype.kind not in "biuf" or dtype.byteorder == ">" or any(n < 0 for n in shape) or \
                        not isinstance(attrs, dict):
                    raise ValueError(f"dataset '{path}'")
                nbytes = math.prod(shape) * dtype.itemsize
                extent = None
                if nbytes:  # exactly one extent of the header, with the checksum the attribute also has
                    length, crc = self._extents[int(offset)]
                    if length != nbytes or int(offset) in used or attrs.get(CHECKSUM_ATTR) != crc:
                        raise ValueError(f"dataset '{path}' does not match the extents")
                    used.add(int(offset))
                    extent = (int(offset), nbytes, crc)
                self.datasets[path] = (None, shape, dtype, extent)
                self.attr_names[path] = list(attrs)
            for path in list(groups) + list(datasets):
                if path:
                    parent, _, name = path.rpartition("/")
                    self.children[parent].append(name)
            for names in self.children.values():
                names.sort()
        except (KeyError, ValueError, TypeError) as err:
            raise self._damaged(f"the structure index in its header is corrupt ({err})") from None
        self._index = index

    def _index_attrs(self, path):
        groups, datasets = self._index["groups"], self._index["datasets"]
        return groups[path] if path in groups else datasets[path][2]

    # ------------------------------------------------------------------ verification
    def _read(self, offset, n):
        buf = bytearray(n)
        self._io.seek(offset)
        got = self._io.readinto(buf)
        return bytes(buf[:got])

    def _damaged(self, what):
        return CheckpointDamagedError(f"{self.label} is damaged: {what}. {ADVICE}")

    def _refuse_unknown(self, head):
        for offset in (512 << k for k in range(18)):
            if offset + 8 > self.size:
                break
            if self._read(offset, 8) == HDF5_SIGNATURE:
                raise self._damaged("its kerasckpt header (HDF5 user block) is unreadable")
        if head[:4] == b"PK\x03\x04":
            kind = "a zip archive (a .keras file?)"
        elif head[:8] == b"KCKPTIDX":
            kind = "a kerasckpt checkpoint index"
        elif not head:
            kind = "an empty file"
        else:
            kind = f"not an HDF5 file (it starts with {head[:8]!r})"
        raise CheckpointFormatError(f"{self.label} is {kind}; expected an HDF5 file (.h5, .weights.h5). "
                                    "Pass the file written by save_weights/save, or use the loader for its format.")

    def _verify_header(self):
        if self.size < _FIXED.size:
            raise self._damaged("it is truncated inside its header")
        _, userblock, length, stored = _FIXED.unpack(self._read(0, _FIXED.size))
        if not 512 <= userblock <= _MAX_USERBLOCK or userblock & (userblock - 1) or length > userblock - _FIXED.size:
            raise self._damaged("its header is corrupt")
        block = bytearray(self._read(0, userblock))
        if len(block) < userblock:
            raise self._damaged(f"it is truncated: {self.size} bytes, inside its {userblock}-byte header")
        struct.pack_into("<I", block, 24, 0)
        if crc32(block) != stored:
            raise self._damaged("checksum mismatch in its header")
        try:
            header = json.loads(bytes(block[_FIXED.size:_FIXED.size + length]))
            size, extents = int(header["size"]), header["extents"]
            meta_crc = int(header["meta_crc32"])
            if header.get("version", 0) > FORMAT_VERSION:
                raise CheckpointFormatError(
                    f"{self.label} was written by a newer kerasckpt (HDF5 format version {header['version']}; this "
                    f"one reads version {FORMAT_VERSION}). Upgrade kerasckpt to read it.")
            extents = [(int(o), int(n), int(c)) for o, n, c in extents]
            if any(n <= 0 or o < 0 for o, n, _ in extents):
                raise ValueError("negative extent")
        except CheckpointFormatError:
            raise
        except Exception:
            raise self._damaged("its header is unreadable") from None
        if self.size != size:
            raise self._damaged(f"it is {'truncated' if self.size < size else 'longer than written'}: "
                                f"{self.size} bytes, expected {size}")
        try:
            meta, _, _ = _scan_gaps(self._io, userblock, size, sorted(extents), whole=False, read=self._extent)
        except CheckpointDamagedError as err:
            raise self._damaged(str(err)) from None
        if meta != meta_crc:
            raise self._damaged("checksum mismatch in the HDF5 metadata (structure, names, attributes)")
        self._extents = {offset: (length, value) for offset, length, value in extents}
        self._index = header.get("index") if isinstance(header.get("index"), dict) else None

    # ------------------------------------------------------------------ safety
    def _check_objects(self):
        """Refuse links, external storage, virtual datasets, filter plugins, non-numeric data and bombs."""
        count, declared = 0, 0
        self.datasets, self.children = {}, {"": []}  # path -> (h5py dataset, shape, dtype); group -> names
        self._raw_extents = []  # (offset, length) of contiguous dataset storage, in files without checksums
        self.attr_names = {"": self._check_attrs(self.file, "")}  # object path -> its attribute names
        stack = [(self.file, "", 0)]
        while stack:
            group, prefix, depth = stack.pop()
            if depth > _MAX_DEPTH:
                raise UnsafeCheckpointError(f"{self.label}: refused: groups are nested more than {_MAX_DEPTH} deep "
                                            f"at '{prefix}'.")
            for key in group:
                path = f"{prefix}/{key}" if prefix else key
                count += 1
                if count > _MAX_OBJECTS:
                    raise UnsafeCheckpointError(f"{self.label}: refused: more than {_MAX_OBJECTS} HDF5 objects.")
                link = group.get(key, getlink=True)
                if isinstance(link, h5py.SoftLink):
                    raise UnsafeCheckpointError(
                        f"{self.label}: refused the soft link '{path}' -> '{link.path}': links could make one "
                        "variable's value appear under another name. Save the file again without links.")
                if isinstance(link, h5py.ExternalLink):
                    raise UnsafeCheckpointError(
                        f"{self.label}: refused the external link '{path}' -> '{link.filename}:{link.path}': "
                        "loading must not read other files.")
                if not isinstance(link, h5py.HardLink):
                    raise UnsafeCheckpointError(f"{self.label}: refused the user-defined link '{path}'.")
                obj = group[key]
                self.children[prefix].append(key)
                self.attr_names[path] = self._check_attrs(obj, path)
                if isinstance(obj, h5py.Group):
                    self.children[path] = []
                    stack.append((obj, path, depth + 1))
                elif isinstance(obj, h5py.Dataset):
                    declared += self._check_dataset(obj, path)
        if declared > _BOMB_MIN_BYTES and declared > _BOMB_RATIO * max(self.size, 1):
            raise UnsafeCheckpointError(
                f"{self.label}: refused: its datasets declare {declared} bytes in a file of {self.size} bytes "
                "(a decompression bomb).")
        if not self.verified:
            self._check_global_heaps()

    def _check_global_heaps(self):
        """Walk each global heap collection ('GCOL') the way HDF5 will, before any attribute value is read.

        Variable-length strings (Keras's configs and name lists) live in these collections, and HDF5
        loops forever on some damaged ones (an object that takes 0 bytes) or reads past them. Kerasckpt's
        own files are covered by their checksums; other files get this walk over every byte outside the
        datasets' raw data.
        """
        length_size = self.file.id.get_create_plist().get_sizes()[1]
        header = 8 + length_size  # signature, version, 3 reserved bytes, collection size
        object_header = 8 + length_size  # index, reference count, 4 reserved bytes, object size
        pos = 0
        for start, length in sorted(self._raw_extents) + [(self.size, 0)]:
            for at in self._find(b"GCOL\x01\x00\x00\x00", pos, start):
                head = self._read(at, header)
                size = int.from_bytes(head[8:header], "little")
                if len(head) < header or size < header or at + size > self.size:
                    raise self._damaged(f"the global heap collection at byte {at} has a corrupt size ({size})")
                heap = self._read(at, size)
                p = header
                while p + object_header <= size:
                    index = int.from_bytes(heap[p:p + 2], "little")
                    nbytes = int.from_bytes(heap[p + 8:p + object_header], "little")
                    need = object_header + (nbytes + 7) // 8 * 8 if index else nbytes
                    if need <= 0 or p + need > size:
                        raise self._damaged(f"object {index} of the global heap collection at byte {at} has a "
                                            f"corrupt size ({nbytes})")
                    p += need
            pos = max(pos, start + length)

    def _find(self, pattern, start, end, step=1 << 24):
        """Offsets of `pattern` in the bytes [start, end) of the HDF5 file, read a piece at a time."""
        pos = start
        while pos < end:
            stop = min(step, end - pos)  # matches starting here or later belong to the next piece
            piece = self._read(pos, stop + len(pattern) - 1)
            at = piece.find(pattern)
            while -1 < at < stop:
                yield pos + at
                at = piece.find(pattern, at + 1)
            pos += step

    def _check_attrs(self, obj, path):
        """The names of `obj`'s attributes, each one's header parsed (never its value) and its type checked.

        HDF5 reads some damaged attributes into a crash of the process; parsing type, shape and storage
        size first turns most damage into an error here, and values of other types are never read.
        """
        names = []
        for name in obj.attrs:
            _probe_attr(obj.attrs, name, path, self.label)
            names.append(name)
        return names

    def _check_dataset(self, dset, path):
        dtype = dset.dtype
        if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise UnsafeCheckpointError(
                f"{self.label}: refused the dataset '{path}' of type {dtype}: only numeric arrays are loaded "
                "(no objects, strings, opaque or pickled data).")
        plist = dset.id.get_create_plist()
        if plist.get_layout() == h5py.h5d.VIRTUAL:
            raise UnsafeCheckpointError(f"{self.label}: refused the virtual dataset '{path}': it reads other files.")
        if plist.get_external_count():
            raise UnsafeCheckpointError(
                f"{self.label}: refused the dataset '{path}': its data lives in an external file.")
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if code not in _SAFE_FILTERS:
                raise UnsafeCheckpointError(
                    f"{self.label}: refused the dataset '{path}': it needs HDF5 filter {code}, which would load a "
                    "plugin library. Only gzip, shuffle, fletcher32 and lzf are accepted.")
        nbytes = int(np.prod(dset.shape, dtype=np.float64)) * dtype.itemsize if dset.shape is not None else 0
        stored = dset.id.get_storage_size()
        if nbytes > _BOMB_MIN_BYTES and nbytes > _BOMB_RATIO * stored:
            raise UnsafeCheckpointError(
                f"{self.label}: refused the dataset '{path}': it declares {nbytes} bytes but stores {stored} "
                "(a decompression bomb).")
        extent = None
        if not self.verified and stored and plist.get_layout() == h5py.h5d.CONTIGUOUS:
            offset = dset.id.get_offset()
            if offset is not None:
                self._raw_extents.append((int(offset), int(stored)))
        if self.verified and nbytes:
            offset = dset.id.get_offset() if plist.get_layout() == h5py.h5d.CONTIGUOUS else None
            entry = self._extents.get(offset)
            if entry is None or entry[0] != nbytes or dtype.byteorder == ">":
                raise self._damaged(f"dataset '{path}' does not match the extents in its header")
            attr = dset.attrs.get(CHECKSUM_ATTR)
            if attr is None or int(attr) != entry[1]:
                raise self._damaged(f"the checksum attribute of dataset '{path}' does not match its header")
            extent = (offset, nbytes, entry[1])
        self.datasets[path] = (dset, tuple(dset.shape), dtype, extent)
        return nbytes

    # ------------------------------------------------------------------ structure
    def has_dataset(self, path):
        return path in self.datasets

    def shape(self, path):
        return self.datasets[path][1]

    def dataset_names(self, group):
        """The names of the datasets directly in `group` ('' is the root); [] if there is no such group."""
        prefix = f"{group}/" if group else ""
        return [k for k in self.children.get(group, []) if f"{prefix}{k}" in self.datasets]

    def has_group(self, path):
        return path in self.children

    def node(self, path):
        """The h5py group or dataset at `path` ('' is the root), found by the walk on opening."""
        if path and path not in self.children and path not in self.datasets:
            raise KeyError(f"kerasckpt bug: '{path}' is not in {self.label}")
        try:
            return self.file[path] if path else self.file
        except Exception as err:
            raise self._damaged(f"'{path}' cannot be opened ({type(err).__name__}: {err})") from None

    def has_attr(self, path, key):
        """Whether the object at `path` has the attribute `key` (or its split form `key0`, `key1`, ...)."""
        names = self.attr_names.get(path, ())
        return key in names or f"{key}0" in names

    def attr(self, path, key):
        """The string, string-list or number attribute `key` of the object at `path`; None if it has none."""
        if not self.has_attr(path, key):
            return None
        if self._index is None:
            return read_attr(self.node(path), key, self.label)
        attrs = self._index_attrs(path)
        if key in attrs:
            return attrs[key]
        parts, i = [], 0  # split as `key0`, `key1`, ...
        while f"{key}{i}" in attrs:
            value = attrs[f"{key}{i}"]
            parts.extend(value if isinstance(value, list) else [value])
            i += 1
        return parts

    # ------------------------------------------------------------------ data
    def read_many(self, paths):
        """The arrays at `paths` (dataset paths); in a kerasckpt file each is checked against its CRC-32.

        kerasckpt's files are memory-mapped and every array is a read-only view of its verified extent:
        the checksums read the page cache directly (two threads) and the caller's copy into the
        variables is the only copy. Other files are read through h5py.
        """
        out, checks = [], []
        for path in paths:
            dset, shape, dtype, extent = self.datasets[path]
            try:
                if extent is not None:
                    offset, nbytes, expected = extent
                    data = self._extent(offset, nbytes)
                    if len(data) != nbytes:
                        raise self._damaged(f"dataset '{path}' is cut short")
                    arr = data.view(dtype).reshape(shape)
                    checks.append((path, data, expected))
                elif self.verified:
                    arr = np.zeros(shape, dtype)  # an empty dataset has no bytes to check
                else:
                    arr = np.asarray(dset[()])
            except CheckpointDamagedError:
                raise
            except Exception as err:
                raise self._damaged(f"dataset '{path}' cannot be read ({err})") from None
            out.append(arr)
        sums = _fileio.checksum_many([data for _, data, _ in checks], _THREAD_MIN)
        for (path, _, expected), got in zip(checks, sums):
            if got != expected:
                raise self._damaged(f"checksum mismatch in dataset '{path}'")
        return out

    def _extent(self, offset, nbytes):
        """The bytes [offset, offset + nbytes) of the HDF5 file as a uint8 array (a view of the mapping)."""
        if isinstance(self._io, Window):
            if self._map is None:
                self._map = self._map_file()
            if self._map is not False:
                start = self._io.base + offset
                return self._map[start:start + nbytes]
        buf = np.empty(nbytes, np.uint8)
        return buf[:self._read_extent(offset, memoryview(buf))]

    def _map_file(self):
        """The file up to the end of this HDF5 file, mapped read-only; False where it cannot be mapped."""
        length = self._io.base + self.size
        try:
            mm = mmap.mmap(self._io.fd, length, access=mmap.ACCESS_READ)
        except (OSError, ValueError, OverflowError):  # e.g. shorter than its header says: pread reports it
            return False
        if hasattr(mm, "madvise") and hasattr(mmap, "MADV_WILLNEED"):
            try:  # start reading it all now; the checksums and the copies touch each page once more
                mm.madvise(mmap.MADV_WILLNEED)
            except OSError:
                pass
        return np.frombuffer(mm, dtype=np.uint8)

    def _read_extent(self, offset, view):
        if isinstance(self._io, Window):
            return self._io.file.pread_into(view, self._io.base + offset)
        data = self._io.getbuffer()[offset:offset + len(view)]
        view[:len(data)] = data
        return len(data)

    def read(self, path):
        return self.read_many([path])[0]

    def close(self):
        """Close the HDF5 file; arrays from `read_many` keep their mapping alive until they are freed."""
        self._map = None
        try:
            if self._file is not None:
                self._file.close()
        except Exception:
            pass


def _probe_attr(attrs, name, path, label):
    """Parse the header of one attribute (type, shape, storage size) without reading its value."""
    where = f"attribute '{name}' of '{path}'" if path else f"root attribute '{name}'"
    aid = attrs.get_id(name)
    kind = aid.get_type().get_class()
    if kind not in _ATTR_CLASSES:
        raise CheckpointDamagedError(
            f"{label} is damaged: {where} has an HDF5 {_TYPE_NAMES.get(kind, f'class-{kind}')} type, which neither "
            "Keras nor kerasckpt writes (a flipped bit can change a type; reading it can crash HDF5), so the file "
            "is not read. Restore it from a backup or save it again.")
    aid.dtype  # noqa: B018 (parses the type; raises on a damaged one)
    shape = aid.shape
    count = 0 if shape is None else int(np.prod(shape, dtype=np.float64))
    if count:
        stored = aid.get_storage_size()  # raises on a damaged header; is 0 for an empty attribute
        if stored < count or stored > _MAX_ATTR_BYTES:
            raise CheckpointDamagedError(f"{label} is damaged: {where} declares {count} values in {stored} bytes. "
                                         f"{ADVICE}")


def read_attr(node, key, label):
    """A string or string-list attribute (also split `key0`, `key1`, ... as Keras 2 wrote big ones).

    Any failure (HDF5 errors, bytes that are not UTF-8) raises CheckpointDamagedError naming `label`.
    """
    try:
        return _read_attr(node, key, label)
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointDamagedError(f"{label} is damaged: attribute '{key}' cannot be read "
                                     f"({type(err).__name__}: {err}). {ADVICE}") from None


def _read_attr(node, key, label):
    path = node.name.lstrip("/")
    if key in node.attrs:
        _probe_attr(node.attrs, key, path, label)
        value = node.attrs[key]
    elif f"{key}0" in node.attrs:
        parts, i = [], 0
        while f"{key}{i}" in node.attrs:
            _probe_attr(node.attrs, f"{key}{i}", path, label)
            parts.extend(np.atleast_1d(node.attrs[f"{key}{i}"]).tolist())
            i += 1
        value = parts
    else:
        return None
    return _decode(value, key, label)


def _decode(value, key, label):
    try:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if isinstance(value, str):
            value.encode("utf-8")  # h5py decodes invalid UTF-8 into lone surrogates, which nothing can print
            return value
    except UnicodeError:
        raise CheckpointDamagedError(f"{label} is damaged: attribute '{key}' is not UTF-8 text. {ADVICE}") from None
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return []
        if value.dtype.kind in "SUO":
            return [_decode(v, key, label) for v in value.tolist()]
    if isinstance(value, list):
        return [_decode(v, key, label) for v in value]
    if isinstance(value, (np.integer, np.floating, int, float)):
        return value
    raise CheckpointFormatError(f"{label}: attribute '{key}' has an unexpected type {type(value).__name__}.")

"""`.keras`: the zip archive Keras 3 writes (`metadata.json`, `config.json`, `model.weights.h5`)."""
# Members are stored uncompressed (ZIP_STORED) in Keras's order. The weights member is a checksummed
# `.weights.h5` (see `h5file`) written straight into the archive, so saving writes each byte once and
# loading reads it in place. The JSON members are protected by the zip's own CRC-32, which is checked
# before they are parsed. Nothing is ever extracted: members with absolute paths or `..`, duplicates,
# encrypted or oversized members and compression ratios of a decompression bomb are refused.
import struct
import time
import zipfile
import zlib

from kerasckpt import _storage
from kerasckpt._background import PreparedSave
from kerasckpt.errors import CheckpointDamagedError, CheckpointFormatError, UnsafeCheckpointError
from kerasckpt.saving import _files, h5, h5file, serialization

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
MAX_MEMBERS = 10_000
MAX_JSON_BYTES = serialization.MAX_CONFIG_BYTES
MAX_RATIO = 100  # uncompressed / compressed, for compressed members
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")
_U32 = 0xFFFFFFFF
ZIP64_FROM = _U32 - (1 << 24)  # sizes and offsets from here on use zip64 records (tests lower it)


def _dos_time(when):
    return ((when[3] << 11) | (when[4] << 5) | (when[5] // 2),
            ((when[0] - 1980) << 9) | (when[1] << 5) | when[2])


class _ZipWriter:
    """A minimal ZIP_STORED writer on a random-access file (zip64 when a member or offset needs it)."""

    def __init__(self, file):
        self.file, self.pos, self.members = file, 0, []

    def _local(self, name, crc, size, when, zip64):
        dos_time, dos_date = _dos_time(when)
        extra = struct.pack("<HHQQ", 1, 16, size, size) if zip64 else b""
        field = _U32 if zip64 else size
        return _LOCAL.pack(0x04034B50, 45 if zip64 else 20, 0, 0, dos_time, dos_date, crc, field, field,
                           len(name), len(extra)) + name + extra

    def add_bytes(self, name, data, when=(1980, 1, 1, 0, 0, 0)):
        name = name.encode()
        crc = zlib.crc32(data) & _U32
        header = self._local(name, crc, len(data), when, False)
        self.file.pwrite(memoryview(header + data), self.pos)
        self.members.append((name, crc, len(data), when, self.pos, False))
        self.pos += len(header) + len(data)

    def add_h5(self, name, entries, size_hint, when):
        """Write a checksummed HDF5 member in place: header, then the file, then the header's CRC/size."""
        name = name.encode()
        zip64 = size_hint >= ZIP64_FROM or self.pos >= ZIP64_FROM
        start = self.pos
        header_len = len(self._local(name, 0, 0, when, zip64))
        size, crc = h5file.write_h5(self.file, entries, base=start + header_len)
        if size >= _U32 and not zip64:
            raise RuntimeError("kerasckpt bug: zip64 needed for the weights member but not reserved.")
        self.file.pwrite(memoryview(self._local(name, crc, size, when, zip64)), start)
        self.members.append((name, crc, size, when, start, zip64))
        self.pos = start + header_len + size

    def finish(self):
        directory = bytearray()
        for name, crc, size, when, offset, zip64 in self.members:
            dos_time, dos_date = _dos_time(when)
            big = zip64 or offset >= ZIP64_FROM
            extra = struct.pack("<HHQQQ", 1, 24, size, size, offset) if big else b""
            directory += _CENTRAL.pack(0x02014B50, 0x0300 | (45 if big else 20), 45 if big else 20, 0, 0, dos_time,
                                       dos_date, crc, _U32 if big else size, _U32 if big else size, len(name),
                                       len(extra), 0, 0, 0, 0o600 << 16, _U32 if big else offset) + name + extra
        cd_offset, count = self.pos, len(self.members)
        tail = bytes(directory)
        if cd_offset + len(directory) >= ZIP64_FROM:
            eocd64_offset = cd_offset + len(directory)
            tail += _EOCD64.pack(0x06064B50, 44, 45, 45, 0, 0, count, count, len(directory), cd_offset)
            tail += _LOCATOR64.pack(0x07064B50, 0, eocd64_offset, 1)
            tail += _EOCD.pack(0x06054B50, 0, 0, count, count, _U32, _U32, 0)
        else:
            tail += _EOCD.pack(0x06054B50, 0, 0, count, count, len(directory), cd_offset, 0)
        self.file.pwrite(memoryview(tail), self.pos)
        self.pos += len(tail)


def prepare_save_model(model, filepath, overwrite=True, include_optimizer=True, storage_options=None):
    """A PreparedSave of `model` as a `.keras` archive: configs fixed now, weights read when written."""
    path = _files.check_writable(filepath, overwrite, storage_options)
    from kerasckpt import __version__
    config = serialization.to_json(serialization.serialize_model(model, include_compile=include_optimizer)).encode()
    now = time.localtime()
    metadata = serialization.to_json({
        "keras_version": serialization.KERAS_VERSION, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S", now),
        "kerasckpt_version": __version__}).encode()
    entries = h5.weights_entries(model, include_optimizer=include_optimizer)

    def write(arrays):
        hint = sum(a.nbytes for a in arrays) + (1 << 20) + 4096 * len(entries)
        with _storage.atomic_file(path, storage_options) as file:
            writer = _ZipWriter(file)
            writer.add_bytes(METADATA, metadata)
            writer.add_bytes(CONFIG, config)
            writer.add_h5(WEIGHTS, h5.fill(entries, arrays), hint, tuple(now)[:6])
            writer.finish()
        return path
    return PreparedSave([e[2] for e in entries if e[0] == "dataset"], write, [path])


def save_model(model, filepath, overwrite=True, include_optimizer=True, storage_options=None):
    """Write `model` as a `.keras` archive that Keras 3 loads with `keras.saving.load_model`."""
    prepare_save_model(model, filepath, overwrite, include_optimizer, storage_options).write()


# ----------------------------------------------------------------------------------------- reading

class Archive:
    """A `.keras` file opened for reading, its members checked before anything is parsed."""

    def __init__(self, path, fd):
        self.label = _files.label(path)
        self.fd = fd
        self._raw = open(fd, "rb", closefd=False)
        head = self._raw.read(8)
        self._raw.seek(0)
        if head[:4] != b"PK\x03\x04":
            if head == h5file.HDF5_SIGNATURE or head[:16] == h5file.MAGIC[:8]:
                raise CheckpointFormatError(f"{self.label} is an HDF5 file, not a .keras zip archive. Name it .h5 "
                                            "(whole model) or .weights.h5 (weights), or load it with load_weights.")
            raise CheckpointFormatError(f"{self.label} is not a .keras archive (it does not start like a zip file: "
                                        f"{head!r}). Pass a file written by model.save('....keras').")
        try:
            self.zip = zipfile.ZipFile(self._raw, "r")
            infos = self.zip.infolist()
        except Exception as err:  # BadZipFile, struct.error, ValueError, EOFError, ... on a damaged directory
            raise CheckpointDamagedError(f"{self.label} is damaged: its zip directory is unreadable ({err}). "
                                         f"{h5file.ADVICE}") from None
        self._check_members(infos)

    def _check_members(self, infos):
        if len(infos) > MAX_MEMBERS:
            raise UnsafeCheckpointError(f"{self.label}: refused: {len(infos)} members (limit {MAX_MEMBERS}).")
        names = set()
        for info in infos:
            name = info.orig_filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
                raise UnsafeCheckpointError(
                    f"{self.label}: refused the member {name!r}: absolute paths and '..' could write outside the "
                    "target directory if the archive were extracted.")
            if name in names:
                raise UnsafeCheckpointError(f"{self.label}: refused: the member {name!r} appears twice.")
            names.add(name)
            if info.flag_bits & 0x1:
                raise UnsafeCheckpointError(f"{self.label}: refused the encrypted member {name!r}.")
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_RATIO * max(info.compress_size, 1) \
                    and info.file_size > (1 << 20):
                raise UnsafeCheckpointError(
                    f"{self.label}: refused the member {name!r}: {info.file_size} bytes compressed into "
                    f"{info.compress_size} (ratio above {MAX_RATIO}: a decompression bomb).")

    def has(self, name):
        return name in self.zip.NameToInfo

    def read_bytes(self, name, limit):
        info = self.zip.getinfo(name)
        if info.file_size > limit:
            raise UnsafeCheckpointError(f"{self.label}: refused the member {name!r} of {info.file_size} bytes "
                                        f"(limit {limit}).")
        try:
            with self.zip.open(info) as member:
                data = member.read(limit + 1)  # the zip CRC-32 is checked when the member is read to its end
        except UnsafeCheckpointError:
            raise
        except Exception as err:
            raise CheckpointDamagedError(f"{self.label} is damaged: member {name!r} cannot be read ({err}). "
                                         f"{h5file.ADVICE}") from None
        if len(data) > limit:
            raise UnsafeCheckpointError(f"{self.label}: refused the member {name!r}: it inflates past {limit} bytes.")
        return data

    def read_json(self, name):
        return serialization.parse_json(self.read_bytes(name, MAX_JSON_BYTES), self.label, name)

    def weights_source(self):
        """An H5Source for `model.weights.h5`: in place when stored, else decompressed in memory."""
        if not self.has(WEIGHTS):
            extra = " (model.weights.npz is not supported)" if self.has("model.weights.npz") else ""
            raise CheckpointFormatError(f"{self.label} has no {WEIGHTS} member{extra}. Expected an archive written "
                                        "by model.save('....keras').")
        info = self.zip.getinfo(WEIGHTS)
        label = f"{self.label} (member {WEIGHTS})"
        if info.compress_type == zipfile.ZIP_STORED:
            local = self._read_at(info.header_offset, _LOCAL.size)
            fields = _LOCAL.unpack(local) if len(local) == _LOCAL.size else None
            if fields is None or fields[0] != 0x04034B50 or info.compress_size != info.file_size:
                raise CheckpointDamagedError(f"{self.label} is damaged: the zip header of {WEIGHTS} is corrupt. "
                                             f"{h5file.ADVICE}")
            start = info.header_offset + _LOCAL.size + fields[9] + fields[10]
            if self._read_at(info.header_offset + _LOCAL.size, fields[9]) != WEIGHTS.encode():
                raise CheckpointDamagedError(f"{self.label} is damaged: the zip header of {WEIGHTS} is corrupt. "
                                             f"{h5file.ADVICE}")
            if self._read_at(start, 16) == h5file.MAGIC:
                return h5file.H5Source(label, fd=self.fd, base=start, size=info.file_size)
        # Written by Keras (no kerasckpt checksums) or compressed: read it whole, so the zip CRC is checked
        # before HDF5 parses a byte of it.
        limit = max(info.file_size, 1)
        return h5file.H5Source(label, data=self.read_bytes(WEIGHTS, limit))

    def _read_at(self, offset, n):
        buf = bytearray(n)
        got = h5file.pread_into(self.fd, memoryview(buf), offset)
        return bytes(buf[:got])

    def close(self):
        try:
            self.zip.close()
        finally:
            self._raw.close()


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, storage_options=None):
    """Rebuild a model from a `.keras` archive (written by kerasckpt or by Keras 3)."""
    path = _files.check_readable(filepath, "model file", storage_options)
    with _storage.open_read(path, storage_options) as fd:
        return load_model_fd(path, fd, custom_objects, compile, safe_mode)


def load_model_fd(path, fd, custom_objects=None, compile=True, safe_mode=True):
    """`load_model` from a descriptor of the archive; `path` names it in errors."""
    archive = Archive(path, fd)
    try:
        if not archive.has(CONFIG):
            raise CheckpointFormatError(f"{archive.label} has no {CONFIG}: it is not a Keras model archive.")
        config = archive.read_json(CONFIG)
        ctx = serialization.Context(archive.label, custom_objects, safe_mode)
        with _files.rebuilding(archive.label, CONFIG):
            model = serialization.deserialize_model(config, ctx, CONFIG)
            compile_cfg = config.get("compile_config") if compile else None
            if compile_cfg:
                serialization.compile_from_config(model, compile_cfg, ctx, f"{CONFIG}.compile_config")
                if model.built:
                    model.optimizer.build(model.trainable_weights)
        src = archive.weights_source()
        try:
            if model.built:
                h5.load_weights_from(model, src)
            elif h5.has_layer_weights(src):
                raise CheckpointFormatError(
                    f"{archive.label}: the model in {CONFIG} has no input shape (no InputLayer, build_config or "
                    "build_input_shape), so the saved weights have nowhere to go. Save it again after building it.")
        finally:
            src.close()
        return model
    finally:
        archive.close()


def load_weights(model, filepath, skip_mismatch=False, storage_options=None):
    """Load the weights (and optimizer state) of a `.keras` archive into an existing model."""
    path = _files.check_readable(filepath, "model file", storage_options)
    with _storage.open_read(path, storage_options) as fd:
        load_weights_fd(model, path, fd, skip_mismatch)


def load_weights_fd(model, path, fd, skip_mismatch=False):
    """`load_weights` from a descriptor of the archive; `path` names it in errors."""
    archive = Archive(path, fd)
    try:
        src = archive.weights_source()
        try:
            h5.load_weights_from(model, src, skip_mismatch)
        finally:
            src.close()
    finally:
        archive.close()


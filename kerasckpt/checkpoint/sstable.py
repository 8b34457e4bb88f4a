"""LevelDB's sorted-table format, as TensorFlow's checkpoint `.index` files use it.

A table is `[data block + trailer]... [metaindex block + trailer] [index block + trailer] [footer]`.
A block is prefix-compressed entries (`varint shared, varint non_shared, varint value_len, key
suffix, value`), a restart array (u32 offsets of entries stored with `shared == 0`) and its u32
count; its trailer is a compression byte (0 none, 1 snappy) and the masked CRC-32C of block and
byte. The index block maps a separator key (>= every key of a block, < every key of the next) to
the block's handle (varint offset, varint size); the 48-byte footer holds the metaindex and index
handles and the magic number.

`read_table(data)` checks every block's CRC and every bound before it returns any entry (TensorFlow
checks a block when it reads it, so damage in a later block silently hides its keys from a listing);
`build_table(items)` writes what TensorFlow's TableBuilder writes, without compression.
"""
import struct

from kerasckpt import _fileio
from kerasckpt.checkpoint.protowire import ProtoError, decode_varint, encode_varint

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5
BLOCK_SIZE = 256 << 10  # TensorFlow's tensor bundles cut a block after the entry that reaches this
RESTART_INTERVAL = 16
_U32 = struct.Struct("<I")


class TableError(ValueError):
    """The bytes are not a valid (or not an intact) sorted table; the message says where."""


def _handle(data, pos, what):
    try:
        offset, pos = decode_varint(data, pos)
        size, pos = decode_varint(data, pos)
    except ProtoError as e:
        raise TableError(f"the {what} block handle is malformed ({e})") from None
    return offset, size, pos


def _block(data, offset, size, what):
    """The contents of the block at `offset` (CRC checked, decompressed)."""
    end = offset + size + TRAILER_SIZE
    if offset < 0 or end > len(data) - FOOTER_SIZE:
        raise TableError(f"the {what} block (bytes {offset}..{end}) lies outside the file's "
                         f"{len(data) - FOOTER_SIZE} bytes of blocks (truncated?)")
    contents = data[offset:offset + size]
    kind = data[offset + size]
    stored = _U32.unpack_from(data, offset + size + 1)[0]
    actual = _fileio.crc32c(data[offset:offset + size + 1])
    if _fileio.unmask_crc(stored) != actual:
        raise TableError(f"block checksum mismatch in the {what} block (bytes {offset}..{end}: stored "
                         f"{_fileio.unmask_crc(stored):08x}, computed {actual:08x})")
    if kind == 0:
        return bytes(contents)
    if kind == 1:
        return snappy_decompress(bytes(contents), what)
    raise TableError(f"the {what} block has compression type {kind}, which LevelDB tables do not define")


def _entries(block, what):
    """`[(key, value)]` of a block, keys rebuilt from their shared prefixes."""
    if len(block) < 4:
        raise TableError(f"the {what} block is {len(block)} bytes, too short for its restart count")
    num_restarts = _U32.unpack_from(block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if num_restarts == 0 or limit < 0:
        raise TableError(f"the {what} block has {num_restarts} restart points, which do not fit its "
                         f"{len(block)} bytes")
    restarts = set(struct.unpack_from(f"<{num_restarts}I", block, limit))
    out, key, pos = [], b"", 0
    try:
        while pos < limit:
            at = pos
            shared, pos = decode_varint(block, pos)
            non_shared, pos = decode_varint(block, pos)
            value_len, pos = decode_varint(block, pos)
            if shared > len(key) or pos + non_shared + value_len > limit or (at in restarts and shared):
                raise TableError(f"the {what} block has a malformed entry at byte {at}")
            key = key[:shared] + block[pos:pos + non_shared]
            pos += non_shared
            out.append((key, block[pos:pos + value_len]))
            pos += value_len
    except ProtoError as e:
        raise TableError(f"the {what} block has a malformed entry ({e})") from None
    if 0 not in restarts and out:
        raise TableError(f"the {what} block's restart array does not start at its first entry")
    return out


def read_table(data):
    """Every `(key, value)` of the table `data` (bytes), in key order; raises TableError."""
    if len(data) < FOOTER_SIZE:
        raise TableError(f"it is {len(data)} bytes long, shorter than the {FOOTER_SIZE}-byte footer of a "
                         "sorted table (truncated or empty)")
    footer = len(data) - FOOTER_SIZE
    magic = struct.unpack_from("<Q", data, len(data) - 8)[0]
    if magic != MAGIC:
        raise TableError(f"its last 8 bytes are not the sorted-table magic number (found {magic:016x}): "
                         "truncated, appended to, or not a TensorFlow checkpoint index")
    meta_offset, meta_size, pos = _handle(data, footer, "metaindex")
    index_offset, index_size, pos = _handle(data, pos, "index")
    if pos > len(data) - 8:
        raise TableError("its footer is malformed")
    _block(data, meta_offset, meta_size, "metaindex")  # filter names (none in checkpoints): its CRC is checked
    index = _entries(_block(data, index_offset, index_size, "index"), "index")
    out, previous_end = [], 0
    for n, (separator, handle) in enumerate(index):
        offset, size, end = _handle(handle, 0, f"data block {n}'s")
        if end != len(handle):
            raise TableError(f"the index entry of data block {n} is malformed")
        if offset < previous_end:
            raise TableError(f"data block {n} overlaps the block before it")
        previous_end = offset + size + TRAILER_SIZE
        entries = _entries(_block(data, offset, size, f"data block {n}"), f"data block {n}")
        if entries and entries[-1][0] > separator:
            raise TableError(f"data block {n} holds keys past its index separator")
        out.extend(entries)
    for (a, _), (b, _) in zip(out, out[1:]):
        if not a < b:
            raise TableError(f"its keys are not in strictly increasing order ({a!r} before {b!r})")
    return out


def _finish_block(entries, restart_interval):
    """The bytes of a block holding `entries` (sorted `(key, value)`)."""
    out, restarts, previous = bytearray(), [], b""
    for n, (key, value) in enumerate(entries):
        shared = 0
        if n % restart_interval == 0:
            restarts.append(len(out))
        else:
            limit = min(len(previous), len(key))
            while shared < limit and previous[shared] == key[shared]:
                shared += 1
        out += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        out += key[shared:]
        out += value
        previous = key
    if not restarts:
        restarts = [0]
    out += struct.pack(f"<{len(restarts)}I", *restarts) + _U32.pack(len(restarts))
    return bytes(out)


def _with_trailer(block):
    body = block + b"\x00"
    return body + _U32.pack(_fileio.mask_crc(_fileio.crc32c(body)))


def build_table(items, block_size=BLOCK_SIZE, restart_interval=RESTART_INTERVAL):
    """The bytes of a table holding `items` (`(key bytes, value bytes)`, keys strictly increasing).

    Blocks are cut after the entry that reaches `block_size`; each index separator is its block's
    last key (TensorFlow shortens it; any key between the blocks is valid).
    """
    out, index, pending, pending_size, previous = bytearray(), [], [], 0, None
    for key, value in items:
        if previous is not None and not previous < key:
            raise ValueError(f"sorted-table keys must be unique and increasing: {previous!r} then {key!r}")
        previous = key
        pending.append((key, value))
        pending_size += len(key) + len(value) + 6
        if pending_size >= block_size:
            index.append((key, len(out), _finish_block(pending, restart_interval)))
            out += _with_trailer(index[-1][2])
            pending, pending_size = [], 0
    if pending:
        index.append((pending[-1][0], len(out), _finish_block(pending, restart_interval)))
        out += _with_trailer(index[-1][2])
    handles = [(key, encode_varint(offset) + encode_varint(len(block))) for key, offset, block in index]
    meta = _finish_block([], 1)
    meta_offset = len(out)
    out += _with_trailer(meta)
    index_block = _finish_block(handles, 1)
    index_offset = len(out)
    out += _with_trailer(index_block)
    footer = (encode_varint(meta_offset) + encode_varint(len(meta)) + encode_varint(index_offset)
              + encode_varint(len(index_block)))
    out += footer + b"\x00" * (40 - len(footer)) + struct.pack("<Q", MAGIC)
    return bytes(out)


def snappy_decompress(data, what="a"):
    """Decompress a raw Snappy block (TensorFlow 1.1 wrote compressed indexes for a few weeks)."""
    try:
        length, pos = decode_varint(data, 0)
    except ProtoError:
        raise TableError(f"the {what} block's Snappy header is malformed") from None
    if length > 64 * len(data) + 64:  # Snappy expands at most ~64x; refuse absurd sizes before allocating
        raise TableError(f"the {what} block claims {length} uncompressed bytes from {len(data)}")
    out = bytearray()
    try:
        while pos < len(data):
            tag = data[pos]
            pos += 1
            kind = tag & 3
            if kind == 0:  # literal
                n = tag >> 2
                if n >= 60:
                    extra = n - 59
                    n = int.from_bytes(data[pos:pos + extra], "little")
                    pos += extra
                n += 1
                if pos + n > len(data):
                    raise IndexError
                out += data[pos:pos + n]
                pos += n
                continue
            if kind == 1:
                n = ((tag >> 2) & 7) + 4
                offset = ((tag >> 5) << 8) | data[pos]
                pos += 1
            elif kind == 2:
                n = (tag >> 2) + 1
                offset = int.from_bytes(data[pos:pos + 2], "little")
                pos += 2
            else:
                n = (tag >> 2) + 1
                offset = int.from_bytes(data[pos:pos + 4], "little")
                pos += 4
            if offset == 0 or offset > len(out):
                raise IndexError
            start = len(out) - offset
            if n <= offset:
                out += out[start:start + n]
            else:
                for i in range(n):  # the copy overlaps its own output
                    out.append(out[start + i])
    except IndexError:
        raise TableError(f"the {what} block's Snappy data is malformed") from None
    if len(out) != length:
        raise TableError(f"the {what} block's Snappy data gives {len(out)} bytes, its header says {length}")
    return bytes(out)

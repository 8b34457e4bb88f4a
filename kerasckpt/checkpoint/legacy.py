"""The index of kerasckpt 0.1's native checkpoints (read-only; `bundle.CheckpointReader` uses it).

`prefix.index` was a 32-byte header (magic `KCKPTIDX`, format version, payload length, CRC-32 of the
payload, CRC-32 of the header) and a UTF-8 JSON payload: the object graph, the data files, and for
every value its key, dtype, shape and chunks `[shard, offset, length, crc32]` (zlib's CRC-32).
Data files were `prefix.data-0000k-of-0000n`, with `.g<N>` appended after an overwrite; the index
stored each one's suffix (`data_suffixes`), joined to the prefix it is opened with.
"""
import json
import os
import re
import struct

import numpy as np

from kerasckpt import _fileio
from kerasckpt.errors import CheckpointFormatError

MAGIC = b"KCKPTIDX"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sIIQII")  # magic, version, flags, payload length, payload crc32, header crc32
DATA_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})(?:\.g(\d+))?$")


def _hamming(a, b):
    return sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))


def looks_like(head):
    """Whether the first bytes of an index are (a damaged copy of) the 0.1 header's magic."""
    return len(head) >= len(MAGIC) and _hamming(head[:len(MAGIC)], MAGIC) <= 2


class LegacyIndex:
    """A parsed 0.1 index: `entries` {key: (dtype, shape, chunks)}, `shards` [(written name, size)],
    `suffixes` (or None), `nodes`, `metadata`, `file_metadata`, `generation`."""

    def __init__(self, index_path, blob, damaged):
        self.index_path = index_path
        self._damaged = damaged  # (what) -> the CheckpointDamagedError to raise
        self._parse(self._payload(blob))

    def _payload(self, blob):
        if len(blob) < HEADER.size:
            raise self._damaged(f"it is {len(blob)} bytes long, shorter than the {HEADER.size}-byte header "
                                "(truncated, e.g. by a crash while it was copied)")
        magic, version, _flags, length, payload_crc, header_crc = HEADER.unpack_from(blob)
        self.format_version = version
        if magic != MAGIC:
            raise self._damaged("its header is corrupted (bad magic)")
        if _fileio.checksum(blob[:HEADER.size - 4]) != header_crc:
            raise self._damaged("checksum mismatch in its header")
        if version > FORMAT_VERSION:
            raise CheckpointFormatError(
                f"'{self.index_path}' was written by a newer kerasckpt (format version {version}; this one reads "
                f"up to {FORMAT_VERSION} of the JSON index). Upgrade kerasckpt to read it.")
        payload = blob[HEADER.size:]
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
        if suffixes is not None and not (isinstance(suffixes, list) and len(suffixes) == len(shards)
                                         and all(isinstance(x, str) and DATA_RE.fullmatch(x) for x in suffixes)):
            raise bad("the data file suffixes are malformed")
        self.shards, self.suffixes = shards, suffixes
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
        self.nodes = _checked_nodes(nodes, self.entries, bad)
        self.metadata = index.get("metadata") or {}
        self.generation = index.get("generation", 0)
        written_by = index.get("written_by")
        written_by = written_by if isinstance(written_by, dict) else {}
        self.file_metadata = {"format_version": self.format_version,
                              "kerasckpt_version": written_by.get("kerasckpt_version"),
                              "saved_at": written_by.get("saved_at")}

    def data_names(self, prefix):
        """The data file names, each joined to `prefix` (the prefix the reader was opened with)."""
        directory, base = os.path.split(prefix)
        suffixes = self.suffixes or [None] * len(self.shards)
        out = []
        for (written, _), suffix in zip(self.shards, suffixes):
            if suffix is not None:
                out.append(base + suffix)
                continue
            m = DATA_RE.search(written)  # written before suffixes were stored: its name, or the prefix's own
            if m is None or os.path.exists(os.path.join(directory, written)):
                out.append(written)
                continue
            derived = base + m.group(0)
            out.append(derived if os.path.exists(os.path.join(directory, derived)) else written)
        return out


def _checked_nodes(nodes, entries, bad):
    """The JSON object graph, each node's fields checked (the graph kerasckpt itself writes)."""
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
        if "key" in node and node["key"] not in entries:
            raise bad(f"the object graph names a value {node['key']!r} that the index does not hold")
    return nodes


def check_nodes(nodes, entries, index_path):
    """`_checked_nodes` for the graph a tensor bundle written by kerasckpt carries."""
    def bad(why):
        return CheckpointFormatError(f"'{index_path}' holds a malformed kerasckpt object graph: {why}. "
                                     "Pass a checkpoint kerasckpt wrote.")
    return _checked_nodes(nodes, entries, bad)


"""The protocol-buffer wire format: enough to read and write TensorFlow's checkpoint messages.

API (all pure functions over `bytes`; no schema, no code generation):
    encode_varint(n) -> bytes            decode_varint(data, pos) -> (n, next_pos)
    iter_fields(data) -> (number, wire_type, value), in file order: an int for VARINT / FIXED32 /
        FIXED64, a `bytes` for LEN (strings, bytes, sub-messages, packed repeated scalars)
    parse(data) -> Fields: `get(n, default)` (the last value, as proto3 does), `all(n)`,
        `message(n)` (a sub-message as Fields), `messages(n)`, `varints(n)` (packed or not), `text(n)`
    varint_field(n, v), bytes_field(n, b), fixed32_field(n, v), fixed64_field(n, v) -> encoded bytes;
        a message is the concatenation of its fields; proto3 omits zero / empty scalars (`skip_default`)
    signed(v, bits) -> a two's-complement reading of a varint (int32 / int64 fields)
Malformed input raises `ProtoError` (a ValueError) with the byte position; callers add the file name.
"""
import struct

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_MASK64 = (1 << 64) - 1


class ProtoError(ValueError):
    """Bytes that are not a valid protocol-buffer message."""


def encode_varint(value):
    """The base-128 varint of `value`; a negative int is its 64-bit two's complement (10 bytes), as
    protobuf encodes negative int32 / int64 fields."""
    value = int(value)
    if value < 0:
        value &= _MASK64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data, pos=0):
    """`(value, next position)` of the varint at `data[pos:]`; at most 10 bytes, unsigned 64-bit."""
    try:
        byte = data[pos]
    except IndexError:
        raise ProtoError(f"a varint runs past the end of the data (at byte {pos})") from None
    if byte < 0x80:
        return byte, pos + 1
    value, shift, start = 0, 0, pos
    while True:
        if pos >= len(data):
            raise ProtoError(f"a varint runs past the end of the data (at byte {start})")
        if pos - start >= 10:
            raise ProtoError(f"a varint is longer than 10 bytes (at byte {start})")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            if value > _MASK64:
                raise ProtoError(f"a varint exceeds 64 bits (at byte {start})")
            return value, pos
        shift += 7


def signed(value, bits=64):
    """`value` (an unsigned varint) read as a two's-complement int64 (or int32 when `bits=32`)."""
    value &= _MASK64
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32 and not -(1 << 31) <= value < (1 << 31):
        raise ProtoError(f"the int32 field holds {value}, outside the int32 range")
    return value


def iter_fields(data):
    """Yield `(field number, wire type, value)` for every field of the message `data`."""
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        key, pos = decode_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError(f"field number 0 (at byte {start})")
        if wire == VARINT:
            value, pos = decode_varint(data, pos)
        elif wire == LEN:
            length, pos = decode_varint(data, pos)
            if length > end - pos:
                raise ProtoError(f"field {number} claims {length} bytes but only {end - pos} remain "
                                 f"(at byte {start})")
            value = bytes(data[pos:pos + length])
            pos += length
        elif wire == FIXED32:
            if end - pos < 4:
                raise ProtoError(f"a fixed32 field runs past the end of the data (at byte {start})")
            value = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        elif wire == FIXED64:
            if end - pos < 8:
                raise ProtoError(f"a fixed64 field runs past the end of the data (at byte {start})")
            value = int.from_bytes(data[pos:pos + 8], "little")
            pos += 8
        else:  # 3/4 are the deprecated groups, 6/7 do not exist; no checkpoint message uses them
            raise ProtoError(f"field {number} has wire type {wire}, which checkpoint messages never use "
                             f"(at byte {start})")
        yield number, wire, value


class Fields:
    """A parsed message: field number -> values in file order (unknown fields kept, never interpreted)."""

    __slots__ = ("_values",)

    def __init__(self, data=b""):
        values = {}
        for number, wire, value in iter_fields(data):
            values.setdefault(number, []).append((wire, value))
        self._values = values

    def __contains__(self, number):
        return number in self._values

    def numbers(self):
        return list(self._values)

    def _typed(self, number, wires):
        out = []
        for wire, value in self._values.get(number, ()):
            if wire not in wires:
                raise ProtoError(f"field {number} has wire type {wire}, expected {' or '.join(map(str, wires))}")
            out.append(value)
        return out

    def all(self, number):
        """Every raw value of `number` (ints or bytes), in order."""
        return [value for _, value in self._values.get(number, ())]

    def get(self, number, default=None):
        """The last value of a scalar field (proto3: the last one wins), or `default` when absent."""
        values = self._values.get(number)
        return values[-1][1] if values else default

    def varint(self, number, default=0):
        values = self._typed(number, (VARINT,))
        return values[-1] if values else default

    def varints(self, number):
        """A repeated integer field, packed (one LEN value) or not."""
        out = []
        for wire, value in self._values.get(number, ()):
            if wire == VARINT:
                out.append(value)
            elif wire == LEN:
                pos = 0
                while pos < len(value):
                    n, pos = decode_varint(value, pos)
                    out.append(n)
            else:
                raise ProtoError(f"field {number} has wire type {wire}, expected a varint")
        return out

    def fixed32(self, number, default=None):
        values = self._typed(number, (FIXED32,))
        return values[-1] if values else default

    def fixed64s(self, number):
        """A repeated fixed64 / double field, packed or not, as raw unsigned ints."""
        out = []
        for wire, value in self._values.get(number, ()):
            if wire == FIXED64:
                out.append(value)
            elif wire == LEN and len(value) % 8 == 0:
                out.extend(int.from_bytes(value[i:i + 8], "little") for i in range(0, len(value), 8))
            else:
                raise ProtoError(f"field {number} has wire type {wire}, expected fixed64")
        return out

    def bytes(self, number, default=b""):
        values = self._typed(number, (LEN,))
        return values[-1] if values else default

    def text(self, number, default=""):
        """A string field decoded as UTF-8."""
        raw = self.bytes(number, None)
        if raw is None:
            return default
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtoError(f"string field {number} is not valid UTF-8") from None

    def texts(self, number):
        try:
            return [raw.decode("utf-8") for raw in self._typed(number, (LEN,))]
        except UnicodeDecodeError:
            raise ProtoError(f"string field {number} is not valid UTF-8") from None

    def message(self, number):
        """The sub-message `number` (an empty one when absent)."""
        return Fields(self.bytes(number))

    def messages(self, number):
        return [Fields(raw) for raw in self._typed(number, (LEN,))]


def parse(data):
    """The fields of the message `data` (bytes-like); raises ProtoError when it is malformed."""
    return Fields(data)


def _key(number, wire):
    return encode_varint((number << 3) | wire)


def varint_field(number, value, skip_default=True):
    """An int / enum / bool field (negative ints as 64-bit two's complement)."""
    if skip_default and not value:
        return b""
    return _key(number, VARINT) + encode_varint(int(value))


def bytes_field(number, data, skip_default=False):
    """A string (str is UTF-8 encoded), bytes or sub-message field."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if skip_default and not data:
        return b""
    return _key(number, LEN) + encode_varint(len(data)) + bytes(data)


def fixed32_field(number, value, skip_default=False):
    if skip_default and not value:
        return b""
    return _key(number, FIXED32) + struct.pack("<I", int(value) & 0xFFFFFFFF)


def fixed64_field(number, value, skip_default=False):
    if skip_default and not value:
        return b""
    return _key(number, FIXED64) + struct.pack("<Q", int(value) & _MASK64)


def double_field(number, value, skip_default=False):
    if skip_default and not value:
        return b""
    return _key(number, FIXED64) + struct.pack("<d", float(value))


def as_double(raw):
    """A fixed64 value (as `Fields` returns it) read as an IEEE double."""
    return struct.unpack("<d", struct.pack("<Q", raw))[0]

"""The protocol-buffer wire format against bytes TensorFlow wrote, round trips, and malformed input."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kerasckpt.checkpoint import protowire as pw


def test_varints_known_bytes():
    assert pw.encode_varint(0) == b"\x00"
    assert pw.encode_varint(1) == b"\x01"
    assert pw.encode_varint(127) == b"\x7f"
    assert pw.encode_varint(128) == b"\x80\x01"
    assert pw.encode_varint(300) == b"\xac\x02"
    assert pw.encode_varint(1068) == b"\xac\x08"  # the guide checkpoint's kernel offset
    assert pw.encode_varint(-1) == b"\xff" * 9 + b"\x01"  # int32/int64 -1: ten bytes
    assert pw.decode_varint(b"\xac\x02rest") == (300, 2)
    assert pw.decode_varint(b"xx\x05", 2) == (5, 3)


@given(st.integers(min_value=0, max_value=2 ** 64 - 1))
def test_varint_round_trip(n):
    data = pw.encode_varint(n)
    assert pw.decode_varint(data + b"\x00") == (n, len(data))


@given(st.integers(min_value=-2 ** 63, max_value=2 ** 63 - 1))
def test_signed_round_trip(n):
    value, _ = pw.decode_varint(pw.encode_varint(n))
    assert pw.signed(value) == n


def test_signed_int32_range():
    assert pw.signed(pw.decode_varint(pw.encode_varint(-5))[0], 32) == -5
    with pytest.raises(pw.ProtoError, match="int32"):
        pw.signed(1 << 40, 32)


@pytest.mark.parametrize("data, what", [
    (b"", "past the end"), (b"\x80", "past the end"), (b"\xff\xff", "past the end"),
    (b"\xff" * 10 + b"\x01", "longer than 10"), (b"\xff" * 9 + b"\x7f", "64 bits")])
def test_bad_varints(data, what):
    with pytest.raises(pw.ProtoError, match=what):
        pw.decode_varint(data)


def test_bundle_header_bytes_tensorflow_wrote():
    # BundleHeaderProto {num_shards: 1, version {producer: 1}} as TF 2.21 writes it
    header = pw.parse(b"\x08\x01\x1a\x02\x08\x01")
    assert header.varint(1) == 1 and header.varint(2) == 0
    assert header.message(3).varint(1) == 1
    assert pw.varint_field(1, 1) + pw.varint_field(2, 0) + pw.bytes_field(3, pw.varint_field(1, 1)) == \
        b"\x08\x01\x1a\x02\x08\x01"


def test_bundle_entry_bytes_tensorflow_wrote():
    # the guide checkpoint's net/l1/kernel entry: float32 [1, 5], offset 1068, size 20, crc
    raw = bytes.fromhex("0801" "12081202080112020805" "20ac08" "2814" "35fc044762")
    entry = pw.parse(raw)
    assert entry.varint(1) == 1
    assert [d.varint(1) for d in entry.message(2).messages(2)] == [1, 5]
    assert (entry.varint(3), entry.varint(4), entry.varint(5)) == (0, 1068, 20)
    assert entry.fixed32(6) == 0x624704FC
    dims = b"".join(pw.bytes_field(2, pw.varint_field(1, d)) for d in (1, 5))
    again = (pw.varint_field(1, 1) + pw.bytes_field(2, dims) + pw.varint_field(3, 0) + pw.varint_field(4, 1068)
             + pw.varint_field(5, 20) + pw.fixed32_field(6, 0x624704FC))
    assert again == raw


def test_iter_fields_order_and_types():
    data = (pw.varint_field(1, 7) + pw.bytes_field(2, "é") + pw.fixed32_field(3, 9) + pw.fixed64_field(4, 2 ** 40)
            + pw.varint_field(1, 8))
    assert list(pw.iter_fields(data)) == [(1, pw.VARINT, 7), (2, pw.LEN, "é".encode()), (3, pw.FIXED32, 9),
                                          (4, pw.FIXED64, 2 ** 40), (1, pw.VARINT, 8)]
    fields = pw.parse(data)
    assert fields.varint(1) == 8 and fields.all(1) == [7, 8]  # proto3: the last scalar wins
    assert fields.text(2) == "é" and fields.fixed32(3) == 9 and fields.fixed64s(4) == [2 ** 40]
    assert 5 not in fields and fields.varint(5, -1) == -1 and fields.message(5).numbers() == []


def test_packed_and_unpacked_repeated():
    packed = pw.bytes_field(3, b"".join(pw.encode_varint(v) for v in (1, 300, 2)))
    unpacked = b"".join(pw.varint_field(3, v, skip_default=False) for v in (1, 300, 2))
    assert pw.parse(packed).varints(3) == pw.parse(unpacked).varints(3) == [1, 300, 2]
    doubles = pw.double_field(3, 1.5) + pw.bytes_field(3, b"\x00" * 8)
    assert [pw.as_double(v) for v in pw.parse(doubles).fixed64s(3)] == [1.5, 0.0]


def test_proto3_defaults_are_omitted():
    assert pw.varint_field(1, 0) == b"" and pw.varint_field(1, False) == b""
    assert pw.varint_field(1, 0, skip_default=False) == b"\x08\x00"
    assert pw.bytes_field(2, b"") == b"\x12\x00" and pw.bytes_field(2, b"", skip_default=True) == b""


@given(st.lists(st.tuples(st.integers(1, 2 ** 29 - 1), st.one_of(
    st.integers(0, 2 ** 64 - 1), st.binary(max_size=40))), max_size=8))
def test_message_round_trip(fields):
    data = b"".join(pw.varint_field(n, v, skip_default=False) if isinstance(v, int) else pw.bytes_field(n, v)
                    for n, v in fields)
    assert [(n, v) for n, _, v in pw.iter_fields(data)] == fields


@pytest.mark.parametrize("data, what", [
    (b"\x12\x05abc", "claims 5 bytes"), (b"\x0b\x00", "wire type 3"), (b"\x00\x01", "field number 0"),
    (b"\x35\x01\x02", "fixed32"), (b"\x09\x01", "fixed64"), (b"\x08", "past the end")])
def test_malformed_messages(data, what):
    with pytest.raises(pw.ProtoError, match=what):
        pw.parse(data)


def test_wrong_wire_type_for_a_field():
    with pytest.raises(pw.ProtoError, match="wire type 2"):
        pw.parse(pw.bytes_field(1, b"x")).varint(1)
    with pytest.raises(pw.ProtoError, match="UTF-8"):
        pw.parse(pw.bytes_field(1, b"\xff")).text(1)

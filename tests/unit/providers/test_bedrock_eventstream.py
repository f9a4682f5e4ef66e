"""The event stream's framing, read by our reader, against botocore's parser (the reference the SDKs use), on frames
the emulator's encoder writes (typed headers built here: the emulator sends strings only)."""

from __future__ import annotations

import struct
from binascii import crc32

import pytest
from botocore.eventstream import EventStreamBuffer

from skyrelay.emulator.protocols.bedrock_eventstream import encode_frame as frame
from skyrelay.emulator.protocols.bedrock_eventstream import string_header as string
from skyrelay.providers.bedrock.eventstream import EventStreamReader, MalformedEventStream


def header(name: str, kind: int, value: bytes) -> bytes:
    return bytes([len(name)]) + name.encode() + bytes([kind]) + value


EVERY_TYPE = b"".join((
    header("t", 0, b""), header("f", 1, b""), header("byte", 2, struct.pack(">b", -7)),
    header("short", 3, struct.pack(">h", -300)), header("int", 4, struct.pack(">i", 70000)),
    header("long", 5, struct.pack(">q", -(2 ** 40))), header("bytes", 6, struct.pack(">H", 3) + b"\x00\xffa"),
    string("str", "ünï"), header("ts", 8, struct.pack(">q", 1_700_000_000_123)),
    header("uuid", 9, bytes(range(16))),
))
DELTA = string(":event-type", "contentBlockDelta") + string(":content-type", "application/json") + \
    string(":message-type", "event")
STREAM = b"".join((
    frame(DELTA, b'{"contentBlockIndex":0,"delta":{"text":"Hello"}}'),
    frame(EVERY_TYPE, b"\x00binary payload\xff"),
    frame(DELTA, b""),  # an empty payload
    frame(string(":message-type", "exception") + string(":exception-type", "throttlingException"),
          b'{"message":"slow down"}'),
    frame(DELTA, b'{"contentBlockIndex":0,"delta":{"text":" world"}}'),
))


def botocore_frames(data: bytes) -> list[tuple[dict, bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(message.headers, message.payload) for message in buffer]


def test_frames_read_as_botocore_reads_them_however_the_reads_split():
    expected = botocore_frames(STREAM)
    assert len(expected) == 5 and expected[1][0]["uuid"] == bytes(range(16))
    whole = EventStreamReader().feed(STREAM)
    assert whole == expected
    for cut in range(1, len(STREAM)):  # every split of the body into two reads
        reader = EventStreamReader()
        assert reader.feed(STREAM[:cut]) + reader.feed(STREAM[cut:]) == expected, cut
        assert reader.pending == 0
    reader = EventStreamReader()  # a byte at a time
    assert [f for i in range(len(STREAM)) for f in reader.feed(STREAM[i:i + 1])] == expected


@pytest.mark.parametrize("damage", ["prelude crc", "message crc", "header type", "header cut", "too long"])
def test_a_damaged_frame_is_refused_not_read(damage):
    good = frame(DELTA, b'{"x":1}')
    if damage == "prelude crc":
        bad = good[:8] + bytes([good[8] ^ 1]) + good[9:]
    elif damage == "message crc":
        bad = good[:-1] + bytes([good[-1] ^ 1])
    elif damage == "header type":
        bad = frame(header("x", 42, b""), b"{}")
    elif damage == "header cut":
        bad = frame(string(":event-type", "chunk")[:-2], b"{}")
    else:
        prelude = struct.pack(">II", 64 << 20, 0)
        bad = prelude + struct.pack(">I", crc32(prelude)) + b"\0" * 8
    with pytest.raises(MalformedEventStream):
        EventStreamReader().feed(bad)
    if damage != "header cut":  # botocore refuses the others too (a value cut short it reads short, silently)
        with pytest.raises(Exception):
            botocore_frames(bad)


def test_whole_takes_whole_frames_only_and_keeps_nothing_otherwise():
    """A pipe's reading (EventStreamReader.whole): whole frames, or None with the reader as it was, so the
    ordinary reading can take the same bytes."""
    one = frame(DELTA, b'{"delta":{"text":"a"}}')
    two = frame(string(":event-type", "messageStop"), b"{}")
    reader = EventStreamReader()
    assert [payload for _, payload in reader.whole(one + two)] == [b'{"delta":{"text":"a"}}', b"{}"]
    assert reader.whole(one + two[:9]) is None and reader.pending == 0  # a frame cut short: nothing held
    broken = one[:-1] + bytes([one[-1] ^ 1])
    assert reader.whole(broken) is None and reader.pending == 0
    assert reader.feed(two[:9]) == [] and reader.pending == 9
    assert reader.whole(two[9:]) is None  # something of an earlier read is pending: the ordinary reading's
    assert [payload for _, payload in reader.feed(two[9:])] == [b"{}"]

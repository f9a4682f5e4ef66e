"""AWS event-stream framing (`application/vnd.amazon.eventstream`), encoding side, from the public spec.

One message is: a prelude (total length u32, headers length u32, CRC32 of those 8 bytes), the headers, the
payload, and a CRC32 of everything before it. Each header is (name length u8, name, type u8, value); we only
need type 7, a UTF-8 string with a u16 length. Integers are big-endian; the CRC is the usual CRC-32 (zlib).
botocore's `eventstream` module decodes this and is the judge in the tests.
"""

from __future__ import annotations

import struct
import zlib

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


def string_header(name: str, value: str) -> bytes:
    raw_name = name.encode()
    raw_value = value.encode()
    return bytes((len(raw_name),)) + raw_name + struct.pack(">BH", _STRING, len(raw_value)) + raw_value


def encode_message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One event-stream message with string headers."""
    return encode_frame(b"".join(string_header(name, value) for name, value in headers), payload)


def encode_frame(head: bytes, payload: bytes) -> bytes:
    """One event-stream message around an encoded headers block (of any header types)."""
    total = _PRELUDE.size + _CRC.size + len(head) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(head))
    message = prelude + _CRC.pack(zlib.crc32(prelude)) + head + payload
    return message + _CRC.pack(zlib.crc32(message))


def event(event_type: str, payload: bytes) -> bytes:
    """A JSON event, e.g. `contentBlockDelta`."""
    return encode_message([(":event-type", event_type), (":content-type", "application/json"),
                           (":message-type", "event")], payload)


def exception(exception_type: str, payload: bytes) -> bytes:
    """A modelled error inside the stream, e.g. `throttlingException` with {"message": ...}."""
    return encode_message([(":exception-type", exception_type), (":content-type", "application/json"),
                           (":message-type", "exception")], payload)

"""An OpenAI stream passed through to an OpenAI client goes on in the bytes it came in, read only for its first
output, usage, finish_reason, end and errors; the byte searches that pick those events out are never fooled by
content that mentions them."""

from __future__ import annotations

import orjson
import pytest

from skyrelay import errors
from skyrelay.canonical import Usage
from skyrelay.protocols.openai import render_chunk
from skyrelay.providers.azure import AzureChunkEvents
from skyrelay.providers.openai import ChunkEvents
from skyrelay.providers.openai_passthrough import PassThroughChunks, forwards_unread

BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "gpt-4o"}


def chunk(delta: dict, finish: str | None = None, usage=None) -> dict:
    return {**BASE, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": usage}


USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 4}}
# Content that mentions every key the searches look for, as a model quoting JSON would.
TRICKY = '{"usage":{"prompt_tokens":999},"finish_reason":"stop","error":"x","id":""} [DONE]'
STREAM = ([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello"})]
          + [chunk({"content": f" word{i}"}) for i in range(6)] + [chunk({"content": TRICKY}), chunk({}, "stop"),
                                                                   {**BASE, "choices": [], "usage": USAGE}])


def sse(events, line_end=b"\n") -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events).replace(b"\n", line_end)


DONE = b"data: [DONE]\n\n"


def run(body: bytes, step: int, events=None) -> list:
    decoder = PassThroughChunks(events or ChunkEvents("gpt-a"))
    out = [c for i in range(0, len(body), step) for c in decoder.feed(body[i:i + step])]
    return out + decoder.finish()


def client_bytes(out) -> bytes:
    return b"".join(render_chunk(c) for c in out)


@pytest.mark.parametrize("step", [1, 7, 61, 100_000])
def test_the_stream_passes_byte_for_byte_however_it_is_cut(step):
    out = run(sse(STREAM) + DONE, step)
    assert client_bytes(out) == sse(STREAM)
    assert [c.content for c in out[:2]] == ["", "Hello"]  # read up to the first output
    assert [c.finish_reason for c in out if c.finish_reason] == ["stop"]
    assert [c.usage for c in out if c.usage] == [Usage(input_tokens=12, output_tokens=5, cached_tokens=4)]


def test_after_the_first_output_deltas_go_on_unread_one_chunk_per_read():
    decoder = PassThroughChunks(ChunkEvents("gpt-a"))
    head = list(decoder.feed(sse(STREAM[:2])))
    middle = list(decoder.feed(sse(STREAM[2:8])))
    assert head[-1].content == "Hello" and head[-1].raw is not None
    assert len(middle) == 1 and middle[0].content is None and middle[0].sse == sse(STREAM[2:8])
    assert middle[0].id == "chatcmpl-1"


def test_content_that_mentions_the_searched_keys_is_read_as_content():
    """The tricky chunk is parsed (its `[DONE]` is a false alarm) and is content, nothing more: the stream is not
    taken as finished, nor its usage as 999 tokens."""
    out = list(PassThroughChunks(ChunkEvents("gpt-a")).feed(sse(STREAM[:9])))
    assert out[-1].content == TRICKY and out[-1].usage is None and out[-1].finish_reason is None
    with pytest.raises(errors.UpstreamProtocolError, match="before \\[DONE\\]"):
        run(sse(STREAM[:9]), 7)
    mentions = sse([chunk({"content": TRICKY.replace("[DONE]", "")})])
    assert forwards_unread(mentions)  # escaped quotes never match a quoted key


def test_a_cut_stream_is_an_error_unless_it_finished():
    with pytest.raises(errors.UpstreamProtocolError, match="'gpt-a' ended the stream before \\[DONE\\]"):
        run(sse(STREAM[:8]), 100_000)
    assert run(sse(STREAM[:-1]), 100_000)[-1].finish_reason == "stop"  # no [DONE], but it finished


def test_an_error_event_after_output_raises_after_what_came_before():
    decoder = PassThroughChunks(ChunkEvents("gpt-a"))
    out = []
    error = {"error": {"message": "The server had an error", "type": "server_error"}}
    with pytest.raises(errors.UpstreamUnavailable, match="had an error"):
        for c in decoder.feed(sse(STREAM[:5] + [error])):
            out.append(c)
    assert client_bytes(out) == sse(STREAM[:5])


def test_events_after_done_are_neither_read_nor_forwarded():
    out = run(sse(STREAM) + DONE + b"data: not json\n\n", 100_000)
    assert client_bytes(out) == sse(STREAM)


def test_usage_and_finish_written_with_spaces_are_still_read():
    spaced = (b'data: {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}\n\n'
              b'data: {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}\n\n')
    out = run(sse(STREAM[:3]) + spaced, 100_000)
    assert out[-2].finish_reason == "length" and out[-1].usage == Usage(input_tokens=3, output_tokens=2)


def test_cr_line_ends_are_normalised():
    out = run(sse(STREAM, b"\r\n") + DONE.replace(b"\n", b"\r\n"), 13)
    assert client_bytes(out) == sse(STREAM)
    assert out[-1].usage.output_tokens == 5


def test_azures_prompt_filter_chunk_is_dropped_and_the_rest_passes():
    prompt_filter = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                     "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}
    out = run(sse([prompt_filter] + STREAM) + DONE, 100_000, AzureChunkEvents("azure-a"))
    assert client_bytes(out) == sse(STREAM)


def test_a_stream_in_one_read_goes_on_in_one_piece_between_what_is_read():
    out = run(sse(STREAM) + DONE, 100_000)
    assert [c.content for c in out[:2]] == ["", "Hello"]
    # the six words go on unread; the tricky chunk is read (its [DONE]); finish and usage are read
    assert out[2].sse == sse(STREAM[2:8]) and out[3].content == TRICKY
    assert out[4].finish_reason == "stop" and out[5].usage is not None and len(out) == 6


def test_sse_comments_are_no_chunks_and_never_fail_the_stream():
    """`: keep-alive` comments (sent by proxies and some servers) before and after the first output."""
    comment = b": keep-alive\n\n"
    body = comment + sse(STREAM[:1]) + comment + sse(STREAM[1:4]) + comment + sse(STREAM[4:]) + DONE
    for step in (1, 13, 100_000):
        out = run(body, step)
        assert client_bytes(out).replace(comment, b"") == sse(STREAM)
        assert [c.usage for c in out if c.usage] == [Usage(input_tokens=12, output_tokens=5, cached_tokens=4)]


def test_events_shaped_like_the_first_output_go_on_unread_and_any_other_is_searched():
    """After the first output, an event that is its bytes with another quote-free content (the usual delta) goes
    on unread without the searches; one that differs anywhere else, or whose content holds a quote or a line
    end, is searched as before."""
    decoder = PassThroughChunks(ChunkEvents("gpt-a"))
    list(decoder.feed(sse(STREAM[:2])))  # "Hello": the first output, whose shape is kept
    prefix, suffix = decoder.shape
    plain = sse([chunk({"content": " more words, ünïcode and \\\\ escapes"})])
    assert decoder._shaped(plain)
    quoted = sse([chunk({"content": 'say "hi"'})])
    finished = sse([chunk({}, "stop")])
    with_usage = sse([chunk({"content": "x"}, usage=USAGE)])
    forged = prefix + b"x\n\ndata: [DONE]\n\ny" + suffix  # no quote inside, but a line end: two events
    for other in (quoted, finished, with_usage, forged, plain + plain, prefix + suffix[1:]):
        assert not decoder._shaped(other), other
    out = [c for read in (plain, quoted, with_usage) for c in decoder.feed(read)]
    assert [c.sse for c in out[:2]] == [plain, quoted]  # both on unread: the quoted one after its searches
    assert out[2].usage is not None  # read
    out = list(decoder.feed(forged))
    assert out[0].sse == prefix + b"x\n\n" and decoder.events.done  # its [DONE] was found and read


def test_no_shape_is_kept_from_a_first_output_written_with_escapes_or_more_than_content():
    for first in (chunk({"content": 'a "quoted" word'}), chunk({"content": "line\nend"}),
                  chunk({"role": "assistant", "content": "Hi", "extra": {"content": "x"}}),
                  chunk({"content": "Hi"}, "stop")):
        decoder = PassThroughChunks(ChunkEvents("gpt-a"))
        list(decoder.feed(sse([first])))
        assert decoder.shape is None, first

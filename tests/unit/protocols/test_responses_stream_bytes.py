"""The Responses stream's exact bytes, event by event: a text stream, one with a reasoning summary, text and a tool
call, one cut at the output cap and one that failed. Pinned so that an encoder writing events from pre-encoded
pieces (rather than a dict per event) cannot drift by a byte. Ids and clocks are fixed; everything else is as a
client gets it."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from skyrelay import errors
from skyrelay.canonical import ChatChunk, ToolCallDelta, Usage
from skyrelay.protocols.responses import stream


@pytest.fixture(autouse=True)
def fixed_ids_and_clock(monkeypatch):
    monkeypatch.setattr(stream, "new_id", lambda: "r1")
    monkeypatch.setattr(time, "time", lambda: 1700000000.0)


def chunk(**fields) -> ChatChunk:
    return ChatChunk(id="c", model="m", created=1, **fields)


def render(chunks: list[ChatChunk], data: dict, failure: errors.GatewayError | None = None) -> list[bytes]:
    async def upstream():
        for c in chunks:
            yield c
        if failure is not None:
            raise failure

    async def collect():
        return [frame async for frame in stream.render_stream(upstream(), data, "chat")]

    return asyncio.run(collect())


def events(frames: list[bytes]) -> list[bytes]:
    """The stream's events, however they were grouped into writes."""
    return [event + b"\n\n" for event in b"".join(frames).split(b"\n\n") if event]


def assert_bytes(frames: list[bytes], expected: list[bytes]) -> None:
    assert all(frame.endswith(b"\n\n") for frame in frames)  # every write ends on a whole event
    assert events(frames) == expected
    assert b"".join(frames) == b"".join(expected)


def test_a_text_stream_is_these_bytes():
    frames = render([chunk(role="assistant"), chunk(content="Hel"), chunk(content='lo "w"\n\u00e9'),
                     chunk(finish_reason="stop"), chunk(usage=Usage(5, 2, 1))], {"model": "chat", "input": "hi"})
    assert_bytes(frames, TEXT)


def test_a_long_stream_numbers_its_deltas_past_the_precomputed_tails():
    frames = render([chunk(content=str(i)) for i in range(1100)], {"model": "chat", "input": "hi"})
    sent = events(frames)
    assert [orjson.loads(e.partition(b"data: ")[2])["sequence_number"] for e in sent] == list(range(len(sent)))
    # Four opening events, so delta 1019 is event 1023 (the last precomputed tail); the next two are formatted.
    assert sent[1023:1026] == [
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"msg_r1",'
        b'"output_index":0,"content_index":0,"delta":"%d","logprobs":[],"sequence_number":%d}\n\n' % (n - 4, n)
        for n in (1023, 1024, 1025)]


def test_reasoning_then_text_then_a_tool_call_is_these_bytes():
    frames = render([
        chunk(role="assistant"), chunk(reasoning="Think"), chunk(reasoning="ing."),
        chunk(thinking_block={"type": "thinking", "thinking": "Thinking.", "signature": "sig"}),
        chunk(content="Calling."), chunk(tool_calls=[ToolCallDelta(0, id="call_a", name="shell", arguments='{"cmd"')]),
        chunk(tool_calls=[ToolCallDelta(0, arguments=':"ls"}')]), chunk(finish_reason="tool_calls"),
        chunk(usage=Usage(9, 4))],
        {"model": "chat", "input": "hi", "reasoning": {"summary": "auto"}, "store": False,
         "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}}]})
    assert_bytes(frames, MIXED)


def test_a_stream_cut_at_the_cap_is_these_bytes():
    frames = render([chunk(content="Hal"), chunk(finish_reason="length")],
                    {"model": "chat", "input": "hi", "max_output_tokens": 1})
    assert_bytes(frames, CUT)


def test_a_stream_that_broke_is_these_bytes():
    frames = render([chunk(content="Hal")], {"model": "chat", "input": "hi"}, errors.UpstreamStreamBroken("cut short"))
    assert_bytes(frames, FAILED)


# The four events every one-message stream opens with (created, in_progress, the item and its part).
OPENING = [
    b'event: response.created\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"in_progress","completed_at":null,"error":null,'
    b'"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"chat","output":[],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},'
    b'"store":true,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],'
    b'"top_p":null,"truncation":"disabled","metadata":{}},"type":"response.created","sequence_number":0}\n\n',
    b'event: response.in_progress\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"in_progress","completed_at":null,"error":null,'
    b'"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"chat","output":[],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},'
    b'"store":true,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],'
    b'"top_p":null,"truncation":"disabled","metadata":{}},"type":"response.in_progress",'
    b'"sequence_number":1}\n\n',
    b'event: response.output_item.added\ndata: {"output_index":0,"item":{"id":"msg_r1","type":"message",'
    b'"role":"assistant","status":"in_progress","content":[]},"type":"response.output_item.added",'
    b'"sequence_number":2}\n\n',
    b'event: response.content_part.added\ndata: {"item_id":"msg_r1","output_index":0,"content_index":0,'
    b'"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]},'
    b'"type":"response.content_part.added","sequence_number":3}\n\n',
]
TEXT = [
    *OPENING,
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"msg_r1",'
    b'"output_index":0,"content_index":0,"delta":"Hel","logprobs":[],"sequence_number":4}\n\n',
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"msg_r1",'
    b'"output_index":0,"content_index":0,"delta":"lo \\"w\\"\\n\xc3\xa9","logprobs":[],"sequence_number":5}\n\n',
    b'event: response.output_text.done\ndata: {"item_id":"msg_r1","output_index":0,"content_index":0,'
    b'"text":"Hello \\"w\\"\\n\xc3\xa9","logprobs":[],"type":"response.output_text.done","sequence_number":6}\n\n',
    b'event: response.content_part.done\ndata: {"item_id":"msg_r1","output_index":0,"content_index":0,'
    b'"part":{"type":"output_text","text":"Hello \\"w\\"\\n\xc3\xa9","annotations":[],"logprobs":[]},'
    b'"type":"response.content_part.done","sequence_number":7}\n\n',
    b'event: response.output_item.done\ndata: {"output_index":0,"item":{"id":"msg_r1","type":"message",'
    b'"role":"assistant","status":"completed","content":[{"type":"output_text","text":"Hello \\"w\\"\\n\xc3\xa9",'
    b'"annotations":[],"logprobs":[]}]},"type":"response.output_item.done","sequence_number":8}\n\n',
    b'event: response.completed\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"completed","completed_at":1700000000,"error":null,'
    b'"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"chat",'
    b'"output":[{"id":"msg_r1","type":"message","role":"assistant","status":"completed",'
    b'"content":[{"type":"output_text","text":"Hello \\"w\\"\\n\xc3\xa9","annotations":[],"logprobs":[]}]}],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},'
    b'"store":true,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],'
    b'"top_p":null,"truncation":"disabled","metadata":{},"usage":{"input_tokens":5,'
    b'"input_tokens_details":{"cached_tokens":1,"cache_write_tokens":0},"output_tokens":2,'
    b'"output_tokens_details":{"reasoning_tokens":0},"total_tokens":7}},"type":"response.completed",'
    b'"sequence_number":9}\n\n',
]
MIXED = [
    b'event: response.created\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"in_progress","completed_at":null,"error":null,'
    b'"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"chat","output":[],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"summary":"auto"},"store":false,'
    b'"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[{"strict":null,'
    b'"parameters":{"type":"object"},"type":"function","name":"shell"}],"top_p":null,'
    b'"truncation":"disabled","metadata":{}},"type":"response.created","sequence_number":0}\n\n',
    b'event: response.in_progress\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"in_progress","completed_at":null,"error":null,'
    b'"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"chat","output":[],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"summary":"auto"},"store":false,'
    b'"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[{"strict":null,'
    b'"parameters":{"type":"object"},"type":"function","name":"shell"}],"top_p":null,'
    b'"truncation":"disabled","metadata":{}},"type":"response.in_progress","sequence_number":1}\n\n',
    b'event: response.output_item.added\ndata: {"output_index":0,"item":{"id":"rs_r1_0","type":"reasoning",'
    b'"summary":[],"encrypted_content":null},"type":"response.output_item.added","sequence_number":2}\n\n',
    b'event: response.reasoning_summary_part.added\ndata: {"item_id":"rs_r1_0","output_index":0,'
    b'"summary_index":0,"part":{"type":"summary_text","text":""},'
    b'"type":"response.reasoning_summary_part.added","sequence_number":3}\n\n',
    b'event: response.reasoning_summary_text.delta\ndata: {"item_id":"rs_r1_0","output_index":0,'
    b'"summary_index":0,"delta":"Think","type":"response.reasoning_summary_text.delta",'
    b'"sequence_number":4}\n\n',
    b'event: response.reasoning_summary_text.delta\ndata: {"item_id":"rs_r1_0","output_index":0,'
    b'"summary_index":0,"delta":"ing.","type":"response.reasoning_summary_text.delta",'
    b'"sequence_number":5}\n\n',
    b'event: response.reasoning_summary_text.done\ndata: {"item_id":"rs_r1_0","output_index":0,'
    b'"summary_index":0,"text":"Thinking.","type":"response.reasoning_summary_text.done",'
    b'"sequence_number":6}\n\n',
    b'event: response.reasoning_summary_part.done\ndata: {"item_id":"rs_r1_0","output_index":0,'
    b'"summary_index":0,"part":{"type":"summary_text","text":"Thinking."},'
    b'"type":"response.reasoning_summary_part.done","sequence_number":7}\n\n',
    b'event: response.output_item.done\ndata: {"output_index":0,"item":{"id":"rs_r1_0","type":"reasoning",'
    b'"summary":[{"type":"summary_text","text":"Thinking."}],'
    b'"encrypted_content":"sky1.eyJmIjoiYW50aHJvcGljIiwiYiI6W3sidHlwZSI6InRoaW5raW5nIiwidGhpbmtpbmciOiJUaG'
    b'lua2luZy4iLCJzaWduYXR1cmUiOiJzaWcifV19"},"type":"response.output_item.done","sequence_number":8}\n\n',
    b'event: response.output_item.added\ndata: {"output_index":1,"item":{"id":"msg_r1","type":"message",'
    b'"role":"assistant","status":"in_progress","content":[]},"type":"response.output_item.added",'
    b'"sequence_number":9}\n\n',
    b'event: response.content_part.added\ndata: {"item_id":"msg_r1","output_index":1,"content_index":0,'
    b'"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]},'
    b'"type":"response.content_part.added","sequence_number":10}\n\n',
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"msg_r1",'
    b'"output_index":1,"content_index":0,"delta":"Calling.","logprobs":[],"sequence_number":11}\n\n',
    b'event: response.output_text.done\ndata: {"item_id":"msg_r1","output_index":1,"content_index":0,'
    b'"text":"Calling.","logprobs":[],"type":"response.output_text.done","sequence_number":12}\n\n',
    b'event: response.content_part.done\ndata: {"item_id":"msg_r1","output_index":1,"content_index":0,'
    b'"part":{"type":"output_text","text":"Calling.","annotations":[],"logprobs":[]},'
    b'"type":"response.content_part.done","sequence_number":13}\n\n',
    b'event: response.output_item.done\ndata: {"output_index":1,"item":{"id":"msg_r1","type":"message",'
    b'"role":"assistant","status":"completed","content":[{"type":"output_text","text":"Calling.",'
    b'"annotations":[],"logprobs":[]}]},"type":"response.output_item.done","sequence_number":14}\n\n',
    b'event: response.output_item.added\ndata: {"output_index":2,"item":{"id":"fc_r1_2",'
    b'"type":"function_call","status":"in_progress","call_id":"call_a","name":"shell","arguments":""},'
    b'"type":"response.output_item.added","sequence_number":15}\n\n',
    b'event: response.function_call_arguments.delta\ndata: {"item_id":"fc_r1_2","output_index":2,'
    b'"delta":"{\\"cmd\\"","type":"response.function_call_arguments.delta","sequence_number":16}\n\n',
    b'event: response.function_call_arguments.delta\ndata: {"item_id":"fc_r1_2","output_index":2,'
    b'"delta":":\\"ls\\"}","type":"response.function_call_arguments.delta","sequence_number":17}\n\n',
    b'event: response.function_call_arguments.done\ndata: {"item_id":"fc_r1_2","output_index":2,'
    b'"name":"shell","arguments":"{\\"cmd\\":\\"ls\\"}","type":"response.function_call_arguments.done",'
    b'"sequence_number":18}\n\n',
    b'event: response.output_item.done\ndata: {"output_index":2,"item":{"id":"fc_r1_2",'
    b'"type":"function_call","status":"completed","call_id":"call_a","name":"shell",'
    b'"arguments":"{\\"cmd\\":\\"ls\\"}"},"type":"response.output_item.done","sequence_number":19}\n\n',
    b'event: response.completed\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"completed","completed_at":1700000000,"error":null,'
    b'"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"chat",'
    b'"output":[{"id":"rs_r1_0","type":"reasoning","summary":[{"type":"summary_text","text":"Thinking."}],'
    b'"encrypted_content":"sky1.eyJmIjoiYW50aHJvcGljIiwiYiI6W3sidHlwZSI6InRoaW5raW5nIiwidGhpbmtpbmciOiJUaG'
    b'lua2luZy4iLCJzaWduYXR1cmUiOiJzaWcifV19"},{"id":"msg_r1","type":"message","role":"assistant",'
    b'"status":"completed","content":[{"type":"output_text","text":"Calling.","annotations":[],'
    b'"logprobs":[]}]},{"id":"fc_r1_2","type":"function_call","status":"completed","call_id":"call_a",'
    b'"name":"shell","arguments":"{\\"cmd\\":\\"ls\\"}"}],"parallel_tool_calls":true,'
    b'"previous_response_id":null,"reasoning":{"summary":"auto"},"store":false,"temperature":null,'
    b'"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[{"strict":null,'
    b'"parameters":{"type":"object"},"type":"function","name":"shell"}],"top_p":null,'
    b'"truncation":"disabled","metadata":{},"usage":{"input_tokens":9,'
    b'"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":4,'
    b'"output_tokens_details":{"reasoning_tokens":0},"total_tokens":13}},"type":"response.completed",'
    b'"sequence_number":20}\n\n',
]
CUT = [
    b'event: response.created\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"in_progress","completed_at":null,"error":null,'
    b'"incomplete_details":null,"instructions":null,"max_output_tokens":1,"model":"chat","output":[],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},'
    b'"store":true,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],'
    b'"top_p":null,"truncation":"disabled","metadata":{}},"type":"response.created","sequence_number":0}\n\n',
    b'event: response.in_progress\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"in_progress","completed_at":null,"error":null,'
    b'"incomplete_details":null,"instructions":null,"max_output_tokens":1,"model":"chat","output":[],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},'
    b'"store":true,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],'
    b'"top_p":null,"truncation":"disabled","metadata":{}},"type":"response.in_progress",'
    b'"sequence_number":1}\n\n',
    b'event: response.output_item.added\ndata: {"output_index":0,"item":{"id":"msg_r1","type":"message",'
    b'"role":"assistant","status":"in_progress","content":[]},"type":"response.output_item.added",'
    b'"sequence_number":2}\n\n',
    b'event: response.content_part.added\ndata: {"item_id":"msg_r1","output_index":0,"content_index":0,'
    b'"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]},'
    b'"type":"response.content_part.added","sequence_number":3}\n\n',
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"msg_r1",'
    b'"output_index":0,"content_index":0,"delta":"Hal","logprobs":[],"sequence_number":4}\n\n',
    b'event: response.output_text.done\ndata: {"item_id":"msg_r1","output_index":0,"content_index":0,'
    b'"text":"Hal","logprobs":[],"type":"response.output_text.done","sequence_number":5}\n\n',
    b'event: response.content_part.done\ndata: {"item_id":"msg_r1","output_index":0,"content_index":0,'
    b'"part":{"type":"output_text","text":"Hal","annotations":[],"logprobs":[]},'
    b'"type":"response.content_part.done","sequence_number":6}\n\n',
    b'event: response.output_item.done\ndata: {"output_index":0,"item":{"id":"msg_r1","type":"message",'
    b'"role":"assistant","status":"completed","content":[{"type":"output_text","text":"Hal",'
    b'"annotations":[],"logprobs":[]}]},"type":"response.output_item.done","sequence_number":7}\n\n',
    b'event: response.incomplete\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"incomplete","completed_at":1700000000,"error":null,'
    b'"incomplete_details":{"reason":"max_output_tokens"},"instructions":null,"max_output_tokens":1,'
    b'"model":"chat","output":[{"id":"msg_r1","type":"message","role":"assistant","status":"completed",'
    b'"content":[{"type":"output_text","text":"Hal","annotations":[],"logprobs":[]}]}],'
    b'"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},'
    b'"store":true,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],'
    b'"top_p":null,"truncation":"disabled","metadata":{}},"type":"response.incomplete",'
    b'"sequence_number":8}\n\n',
]
FAILED = [
    *OPENING,
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"msg_r1",'
    b'"output_index":0,"content_index":0,"delta":"Hal","logprobs":[],"sequence_number":4}\n\n',
    b'event: response.failed\ndata: {"response":{"id":"resp_r1","object":"response",'
    b'"created_at":1700000000,"status":"failed","completed_at":null,"error":{"code":"server_error",'
    b'"message":"cut short"},"incomplete_details":null,"instructions":null,"max_output_tokens":null,'
    b'"model":"chat","output":[],"parallel_tool_calls":true,"previous_response_id":null,'
    b'"reasoning":{"effort":null,"summary":null},"store":true,"temperature":null,'
    b'"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,'
    b'"truncation":"disabled","metadata":{}},"type":"response.failed","sequence_number":5}\n\n',
]

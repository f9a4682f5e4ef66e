"""An OpenAI client's body goes to an OpenAI-compatible deployment as its own bytes with `model` swapped: the same
JSON that decoding it, swapping the field and encoding it again (chat_body) would send, or that path itself."""

from __future__ import annotations

import orjson
import pytest

from skyrelay.protocols.openai import parse_chat
from skyrelay.providers.openai import passthrough_body

MODEL = "gpt-4o-mini\u00e9"
HI = [{"role": "user", "content": "hi"}]


def expected(req, ask_usage: bool) -> dict:
    body = {**req.raw, "model": MODEL}
    if req.stream and ask_usage:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return body


@pytest.mark.parametrize("body", [
    {"model": "chat", "messages": [{"role": "user", "content": 'say "model": "x"'}], "max_tokens": 5},
    {"messages": HI, "model": "chat", "stream": True},
    {"model": "chat", "messages": HI, "stream": True, "stream_options": {"include_usage": True}},
])
@pytest.mark.parametrize("ask_usage", [True, False])
def test_the_body_is_the_clients_bytes_with_the_model_swapped(body, ask_usage):
    raw = orjson.dumps(body)
    req = parse_chat(raw)
    sent = passthrough_body(req, MODEL, ask_usage)
    if sent is None:  # stream_options the deployment must not get: chat_body's rules decide
        assert not ask_usage and "stream_options" in body
        return
    assert orjson.loads(sent) == expected(req, ask_usage)
    assert sent.replace(orjson.dumps(MODEL), b'"chat"').startswith(raw[:-1])  # nothing else re-encoded


def test_spacing_the_client_chose_is_kept():
    raw = b'{ "model" : "chat" ,\n "messages": [{"role": "user", "content": "hi"}] }'
    assert passthrough_body(parse_chat(raw), "m", False) == raw.replace(b'"chat"', b'"m"')


@pytest.mark.parametrize("raw", [
    # another "model" key (a tool's schema property): which one is top-level is not told by a search
    b'{"model":"chat","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":'
    b'{"name":"f","parameters":{"properties":{"model":{"type":"string"}}}}}]}',
    b'{"model":"ch\\u0061t","messages":[{"role":"user","content":"hi"}]}',  # escapes orjson would not write
    # a stream whose stream_options lack include_usage: merged by chat_body
    b'{"model":"chat","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{}}',
])
def test_bodies_a_byte_swap_cannot_be_sure_of_go_the_decoded_way(raw):
    assert passthrough_body(parse_chat(raw), MODEL, True) is None

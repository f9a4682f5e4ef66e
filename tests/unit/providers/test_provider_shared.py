"""What the providers share: JSON and integer reading, data: URLs, the table of best-effort extra fields, and the
streaming skeleton (decode as bytes arrive, always close the response)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from skyrelay import errors
from skyrelay.canonical import ChatRequest
from skyrelay.config.model import Deployment, Secret, Timeouts
from skyrelay.net.server import StreamResponse, start_server
from skyrelay.providers import build_provider
from skyrelay.providers.anthropic.request import build_request as anthropic_body
from skyrelay.providers.anthropic.response import parse_usage as anthropic_usage
from skyrelay.providers.base import as_int, load_json
from skyrelay.providers.bedrock.request import build_converse_body
from skyrelay.providers.content import read_data_url, split_data_url
from skyrelay.providers.anthropic.request import HONOURED_EXTRAS as ANTHROPIC_HONOURED
from skyrelay.providers.bedrock.request import HONOURED_EXTRAS as BEDROCK_HONOURED
from skyrelay.providers.extras import dropped, may_leave_out
from skyrelay.providers.gemini.request import HONOURED_EXTRAS as GEMINI_HONOURED
from skyrelay.providers.gemini.request import build_request as gemini_body
from skyrelay.providers.openai import ChunkEvents, parse_usage as openai_usage
from skyrelay.providers.sse import SSEChunks

# --- JSON and integers ----------------------------------------------------------------------------------------------


def test_load_json_names_the_deployment_and_what_was_not_json():
    assert load_json(b'{"a": 1}', "d1", "sent a stream event") == {"a": 1}
    with pytest.raises(errors.UpstreamProtocolError) as caught:
        load_json(b"<html>", "d1", "sent a stream event")
    assert caught.value.message == "deployment 'd1' sent a stream event that is not JSON"
    assert caught.value.deployment == "d1"


@pytest.mark.parametrize("value, expected", [(7, 7), (0, 0), (True, 0), (False, 0), (7.0, 0), ("7", 0), (None, 0)])
def test_as_int_takes_integers_only(value, expected):
    assert as_int(value) == expected


def test_a_json_true_is_not_a_token_count():
    """OpenAI and Anthropic usage used to count `true` as 1 token; Bedrock and Gemini already did not."""
    assert openai_usage({"prompt_tokens": True, "completion_tokens": 2}).input_tokens == 0
    assert anthropic_usage({"input_tokens": 3, "cache_read_input_tokens": True}).input_tokens == 3


# --- data: URLs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, expected", [
    ("data:image/png;base64,iVBORw0KGgo=", ("image/png", "iVBORw0KGgo=")),
    ("data:IMAGE/JPEG;BASE64,/9j/4AAQ", ("image/jpeg", "/9j/4AAQ")),  # media types and `base64` ignore case
    ("data:application/pdf;base64,JVBE\nRi0=", ("application/pdf", "JVBE\nRi0=")),
    ("data:image/png;base64,", None),  # no data
    ("data:;base64,AAAA", None),  # no media type
    ("data:image/png,raw", None),  # not base64
    ("data:text/plain;charset=utf-8;base64,aGk=", None),
    ("https://example.com/cat.png", None),
])
def test_split_data_url(url, expected):
    assert split_data_url(url) == expected


def test_a_malformed_data_url_is_the_clients_mistake():
    with pytest.raises(errors.InvalidRequest) as caught:
        read_data_url("data:image/png,raw", "messages[0].content[1]")
    assert caught.value.status == 400 and caught.value.param == "messages[0].content[1]"
    assert "data:<type>;base64,<data>" in caught.value.message


@pytest.mark.parametrize("build", ["anthropic", "bedrock", "gemini"])
def test_every_cloud_refuses_a_malformed_data_url_alike(build):
    req = chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,x"}}]}])
    with pytest.raises(errors.InvalidRequest) as caught:
        BUILDERS[build](req)
    assert caught.value.param == "messages[0].content[0]" and "data:<type>;base64,<data>" in caught.value.message


# --- extra fields ---------------------------------------------------------------------------------------------------


def chat(**fields) -> ChatRequest:
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    return ChatRequest(model="m", **fields)


BUILDERS = {
    "anthropic": lambda req: anthropic_body(req, "d1", "claude-sonnet-4-5"),
    "bedrock": lambda req: build_converse_body(req, "d1"),
    "gemini": lambda req: gemini_body(req, "d1", "gemini", "gemini-2.5-flash"),
}

# Best effort, or asking for nothing: every cloud leaves these out (Bedrock used to refuse the first five).
HARMLESS = [
    {"prompt_cache_key": "k1"}, {"safety_identifier": "s1"}, {"top_logprobs": 0}, {"logit_bias": {}},
    {"seed": None}, {"modalities": ["text"]}, {"logprobs": False, "n": 1, "store": False, "service_tier": "auto"},
]


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("extra", HARMLESS, ids=lambda e: ",".join(e))
def test_harmless_extras_are_left_out_by_every_cloud(build, extra):
    plain = BUILDERS[build](chat())
    assert BUILDERS[build](chat(extra=extra)) == plain


REFUSED_EVERYWHERE = [{"logprobs": True}, {"top_logprobs": 2}, {"logit_bias": {"50256": -100}}, {"frobnicate": 1},
                      {"modalities": ["text", "audio"]}, {"audio": {"voice": "alloy"}}, {"verbosity": "low"}]


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("extra", REFUSED_EVERYWHERE, ids=lambda e: ",".join(e))
def test_what_no_cloud_can_honour_is_refused_by_name(build, extra):
    with pytest.raises(errors.UnsupportedFeature) as caught:
        BUILDERS[build](chat(extra=extra))
    assert caught.value.param == next(iter(extra)) and "deployment 'd1'" in caught.value.message


HONOURED = {"anthropic": ANTHROPIC_HONOURED, "bedrock": BEDROCK_HONOURED, "gemini": GEMINI_HONOURED}
BEST_EFFORT = {"seed": 7, "user": "u1", "metadata": {"a": "b"}, "store": True, "service_tier": "flex",
               "prompt_cache_key": "k", "safety_identifier": "s", "prediction": {"type": "content", "content": "x"}}


@pytest.mark.parametrize("build", ["anthropic", "bedrock"])
def test_seed_is_left_out_where_there_is_none_and_named(build):
    assert BUILDERS[build](chat(extra={"seed": 7})) == BUILDERS[build](chat())
    assert dropped({"seed": 7, "n": 1}, HONOURED[build]) == ("seed",)


def test_seed_is_honoured_by_gemini():
    assert BUILDERS["gemini"](chat(extra={"seed": 7}))["generationConfig"] == {"seed": 7}
    assert dropped({"seed": 7}, GEMINI_HONOURED) == ()


@pytest.mark.parametrize("build", BUILDERS)
def test_what_a_cloud_leaves_out_is_what_it_names(build):
    """The builder and the header agree: every best-effort field either changes the body (honoured) or is named."""
    plain = BUILDERS[build](chat())
    named = set(dropped(BEST_EFFORT, HONOURED[build]))
    for key, value in BEST_EFFORT.items():
        left_out = BUILDERS[build](chat(extra={key: value})) == plain
        assert left_out is (key in named), key
    assert dropped({"seed": None, "logprobs": True}, HONOURED[build]) == ()  # null: not given; refused: not dropped


@pytest.mark.parametrize("build", ["bedrock", "gemini"])
def test_parallel_tool_calls_false_changes_the_answer_where_it_cannot_be_honoured(build):
    assert BUILDERS[build](chat(extra={"parallel_tool_calls": True})) == BUILDERS[build](chat())
    with pytest.raises(errors.UnsupportedFeature) as caught:
        BUILDERS[build](chat(extra={"parallel_tool_calls": False}))
    assert caught.value.param == "parallel_tool_calls"


@pytest.mark.parametrize("key, value, left_out", [
    ("user", "u1", True), ("seed", 3, True), ("n", 1, True), ("n", 2, False), ("presence_penalty", 0.0, True),
    ("presence_penalty", 0.1, False), ("anything", None, True), ("anything", 0, False),
    ("parallel_tool_calls", True, True), ("parallel_tool_calls", False, False), ("stream_options", {}, True),
])
def test_may_leave_out(key, value, left_out):
    assert may_leave_out(key, value) is left_out


# --- streams --------------------------------------------------------------------------------------------------------

CHUNK = b'data: {"id":"c1","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'


def test_events_after_done_are_read_but_not_decoded():
    stream = SSEChunks(ChunkEvents("d1"))
    assert [c.content for c in stream.feed(CHUNK + b"data: [DONE]\n\ndata: not json\n\n")] == ["hi"]
    assert list(stream.feed(b"data: still not json\n\n")) == [] and list(stream.finish()) == []


@pytest.mark.parametrize("kind", ["openai", "azure"])
async def test_an_abandoned_stream_closes_its_connection_at_once(kind):
    async def handler(request):
        async def body():
            yield CHUNK
            await asyncio.sleep(5)  # the client walks away long before this
            yield b"data: [DONE]\n\n"
        return StreamResponse(200, body(), [("content-type", "text/event-stream")])

    server = await start_server(handler, "127.0.0.1", 0)
    provider = build_provider(Deployment("d1", "g", kind, model="m", base_url=f"http://127.0.0.1:{server.port}",
                                         api_key=Secret("k"), timeouts=Timeouts(connect=2, first_byte=5, total=5)))
    try:
        stream = provider.chat_stream(chat(stream=True))
        assert (await stream.__anext__()).content == "hi"
        await stream.aclose()
        assert provider.http._open == 0  # closed by aclose itself, not later by a finaliser
    finally:
        await provider.aclose()
        await server.close(grace=0.1)

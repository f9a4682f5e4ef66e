"""The azure provider: Azure OpenAI URLs, credentials (key, static token, rotating token file) and error shapes."""

from __future__ import annotations

import os
import time

import orjson
import pytest

from skyrelay import errors
from skyrelay.canonical import ChatRequest, EmbeddingRequest
from skyrelay.config.model import Deployment, Secret, Timeouts
from skyrelay.net.server import Response, StreamResponse
from skyrelay.providers import PROVIDERS, build_provider
from skyrelay.providers.azure import AzureOpenAIProvider, TokenFile, azure_error
from tests.support.recording_upstream import RecordingUpstream


def deployment(url: str, *, api_key: str | None = "azure-key-secret", **options) -> Deployment:
    return Deployment("az-east", "gpt", "azure", model="gpt4o-prod", base_url=url,
                      api_key=Secret(api_key) if api_key else None,
                      timeouts=Timeouts(connect=2, first_byte=5, total=5), options=options)


def chat(**fields) -> ChatRequest:
    return ChatRequest(model="gpt", messages=[{"role": "user", "content": "Hello"}], **fields)


COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1727000000, "model": "gpt-4o-2024-08-06",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False,
                                                                                        "severity": "safe"}}}],
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "Hi there", "refusal": None},
                 "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12,
              "prompt_tokens_details": {"cached_tokens": 0}},
}


def json_reply(status: int, payload, headers=()):
    return lambda: Response(status, orjson.dumps(payload), [("content-type", "application/json"), *headers])


def test_registered():
    assert PROVIDERS["azure"] is AzureOpenAIProvider


# --- URLs and credentials ------------------------------------------------------------------------------------------

PATH_CASES = [
    ({}, "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
     "/openai/deployments/gpt4o-prod/embeddings?api-version=2024-10-21"),
    ({"api_version": "2025-01-01-preview"},
     "/openai/deployments/gpt4o-prod/chat/completions?api-version=2025-01-01-preview",
     "/openai/deployments/gpt4o-prod/embeddings?api-version=2025-01-01-preview"),
    ({"api_version": "v1"}, "/openai/v1/chat/completions", "/openai/v1/embeddings"),
]


@pytest.mark.parametrize("options, chat_path, embeddings_path", PATH_CASES)
def test_paths(options, chat_path, embeddings_path):
    provider = AzureOpenAIProvider(deployment("https://res.openai.azure.com", **options))
    assert provider.chat_path() == chat_path
    assert provider.embeddings_path() == embeddings_path


@pytest.mark.parametrize("version, asks_usage", [("2024-02-01", False), ("2024-10-21", True), ("v1", True),
                                                 ("2025-04-01-preview", True)])
def test_stream_usage_only_where_the_api_version_has_it(version, asks_usage):
    provider = AzureOpenAIProvider(deployment("https://r.openai.azure.com", api_version=version))
    body = provider.chat_body(chat(stream=True))
    assert ("stream_options" in body) is asks_usage


def test_api_key_header():
    headers = dict(AzureOpenAIProvider(deployment("https://r.openai.azure.com")).request_headers())
    assert headers["api-key"] == "azure-key-secret"
    assert "authorization" not in headers


def test_static_ad_token_header():
    provider = AzureOpenAIProvider(deployment("https://r.openai.azure.com", api_key=None,
                                              azure_ad_token=Secret("eyJ.static")))
    headers = dict(provider.request_headers())
    assert headers["authorization"] == "Bearer eyJ.static"
    assert "api-key" not in headers


def test_token_file_is_reread_when_it_changes(tmp_path):
    path = tmp_path / "token"
    path.write_text("tok-one\n")
    provider = AzureOpenAIProvider(deployment("https://r.openai.azure.com", api_key=None,
                                              azure_ad_token_file=str(path)))
    assert dict(provider.request_headers())["authorization"] == "Bearer tok-one"
    path.write_text("tok-two")
    later = time.time() + 5
    os.utime(path, (later, later))
    # Within a second of the last look the file is not even stat()ed ...
    assert dict(provider.request_headers())["authorization"] == "Bearer tok-one"
    # ... after it, the new mtime makes it read again.
    clock = time.monotonic() + 2
    provider._token_file.clock = lambda: clock
    assert dict(provider.request_headers())["authorization"] == "Bearer tok-two"


def test_token_file_keeps_last_token_while_missing(tmp_path):
    path = tmp_path / "token"
    path.write_text("tok-one")
    tokens = TokenFile(str(path))
    assert tokens.token("d") == "tok-one"
    path.unlink()
    tokens.clock = lambda: time.monotonic() + 10
    assert tokens.token("d") == "tok-one"


def test_missing_token_file_is_an_auth_failure_without_secrets(tmp_path):
    tokens = TokenFile(str(tmp_path / "absent"))
    with pytest.raises(errors.UpstreamAuthFailed) as info:
        tokens.token("az-east")
    assert info.value.retryable  # the operator's problem: another deployment may serve


# --- error mapping -------------------------------------------------------------------------------------------------

FILTERED = {"error": {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        "hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": True, "severity": "high"}}}}}

ERROR_CASES = [
    (400, {}, FILTERED, errors.UpstreamClientError, 400, "content_filter"),
    (400, {}, {"error": {"code": "BadRequest", "message": "x", "innererror": {
        "code": "ResponsibleAIPolicyViolation"}}}, errors.UpstreamClientError, 400, "content_filter"),
    (400, {}, {"error": {"code": "context_length_exceeded", "message": "too long"}},
     errors.UpstreamClientError, 400, "context_length_exceeded"),
    (429, {"retry-after": "10", "retry-after-ms": "2500"},
     {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded the call "
                                           "rate limit. Please retry after 10 seconds."}},
     errors.UpstreamRateLimited, 429, "rate_limit_exceeded"),
    (401, {}, {"error": {"code": "401", "message": "Access denied due to invalid subscription key"}},
     errors.UpstreamAuthFailed, 401, None),
    (404, {}, {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not "
                                                                  "exist."}}, errors.UpstreamUnavailable, 503, None),
    (500, {}, {"error": {"code": "InternalServerError", "message": "oops"}}, errors.UpstreamUnavailable, 503, None),
]


@pytest.mark.parametrize("status, headers, body, exc, gateway_status, code", ERROR_CASES,
                         ids=[f"{c[0]}-{c[5]}" for c in ERROR_CASES])
def test_error_mapping(status, headers, body, exc, gateway_status, code):
    err = azure_error(status, headers, orjson.dumps(body), "az-east")
    assert type(err) is exc
    assert err.status == gateway_status
    assert err.code == code


def test_content_filter_error_is_final_and_says_so():
    err = azure_error(400, {}, orjson.dumps(FILTERED), "az-east")
    assert not err.retryable and not err.cools_down
    assert err.type == "invalid_request_error"
    assert "filtered by Azure's content filter" in err.message


def test_retry_after_ms_wins():
    err = azure_error(429, {"retry-after": "10", "retry-after-ms": "2500"}, b'{"error":{"code":"429"}}', "d")
    assert err.retry_after == 2.5


# --- over HTTP -----------------------------------------------------------------------------------------------------


async def test_chat_fast_path_over_http():
    async with RecordingUpstream(json_reply(200, COMPLETION)) as up:
        provider = build_provider(deployment(up.url))
        try:
            raw = {"model": "gpt", "messages": [{"role": "user", "content": "Hello"}], "seed": 7}
            resp = await provider.chat(chat(raw=raw))
        finally:
            await provider.aclose()
        sent = up.requests[0]
        assert (sent.path, sent.query) == ("/openai/deployments/gpt4o-prod/chat/completions", "api-version=2024-10-21")
        assert sent.headers["api-key"] == "azure-key-secret"
        assert orjson.loads(sent.body)["seed"] == 7
        assert resp.choices[0].content == "Hi there" and resp.usage.input_tokens == 9


async def test_embeddings_over_http():
    payload = {"object": "list", "model": "text-embedding-3-small",
               "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
               "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    async with RecordingUpstream(json_reply(200, payload)) as up:
        provider = build_provider(deployment(up.url))
        try:
            resp = await provider.embed(EmbeddingRequest(model="emb", input="hi"))
        finally:
            await provider.aclose()
        assert up.requests[0].path == "/openai/deployments/gpt4o-prod/embeddings"
        assert resp.usage.input_tokens == 2


def _stream(*events: dict):
    async def chunks():
        for event in events:
            yield b"data: " + orjson.dumps(event) + b"\n\n"
        yield b"data: [DONE]\n\n"
    return lambda: StreamResponse(200, chunks(), [("content-type", "text/event-stream")])


async def test_stream_drops_prompt_filter_chunk_and_passes_content_filter_finish():
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    reply = _stream(
        {"id": "", "object": "", "created": 0, "model": "", "choices": [],
         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]},
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}},
    )
    async with RecordingUpstream(reply) as up:
        provider = build_provider(deployment(up.url))
        try:
            chunks = [c async for c in provider.chat_stream(chat(stream=True))]
        finally:
            await provider.aclose()
        body = orjson.loads(up.requests[0].body)
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        assert chunks[0].role == "assistant" and chunks[0].id == "chatcmpl-2"
        assert [c.finish_reason for c in chunks if c.finish_reason] == ["content_filter"]
        assert chunks[-1].usage.output_tokens == 1


async def test_content_filter_error_over_http_is_not_retried():
    async with RecordingUpstream(json_reply(400, FILTERED)) as up:
        provider = build_provider(deployment(up.url))
        try:
            with pytest.raises(errors.UpstreamClientError) as info:
                await provider.chat(chat())
        finally:
            await provider.aclose()
        assert info.value.code == "content_filter" and not info.value.retryable
        assert "azure-key-secret" not in info.value.message

"""The `azure` cloud through the official AzureOpenAI client, plus Azure's own errors and content filtering."""

from __future__ import annotations

import httpx2
import openai
import orjson
import pytest
from openai import AsyncAzureOpenAI

from tests.emulator.sdk_clients import track
from tests.support.openai_schema import validate

HI = [{"role": "user", "content": "hello there"}]
VERSION = "2024-10-21"


@pytest.fixture
async def azure_cloud(make_cloud):
    return await make_cloud(name="az", protocol="azure", api_key="az-key",
                            deployments=[{"name": "chat-prod", "model": "gpt-4o-2024-08-06"}, "embed"])


def client(cloud, deployment: str | None = "chat-prod", **kw) -> AsyncAzureOpenAI:
    kw.setdefault("api_key", "az-key")
    kw.setdefault("api_version", VERSION)
    return track(AsyncAzureOpenAI(azure_endpoint=cloud.base_url, azure_deployment=deployment, max_retries=0, **kw))


async def test_chat_has_azure_filter_annotations_and_the_deployment_model(azure_cloud):
    raw = await client(azure_cloud).chat.completions.with_raw_response.create(model="ignored", messages=HI)
    body = orjson.loads(raw.http_response.content)
    validate("CreateChatCompletionResponse", body)
    assert body["model"] == "gpt-4o-2024-08-06"
    assert body["prompt_filter_results"][0]["content_filter_results"]["hate"] == {"filtered": False,
                                                                                  "severity": "safe"}
    assert body["choices"][0]["content_filter_results"]["violence"]["filtered"] is False
    assert raw.http_response.headers["apim-request-id"]
    assert azure_cloud.base_url.count("/") == 2  # the endpoint, without a path


async def test_stream_opens_with_a_choiceless_prompt_filter_chunk(azure_cloud):
    url = f"{azure_cloud.base_url}/openai/deployments/chat-prod/chat/completions?api-version={VERSION}"
    async with httpx2.AsyncClient(timeout=5) as http:
        response = await http.post(url, headers={"api-key": "az-key"}, json={
            "messages": HI, "stream": True, "stream_options": {"include_usage": True}})
    events = response.content[:-2].split(b"\n\n")
    assert events[-1] == b"data: [DONE]"
    first = orjson.loads(events[0][6:])
    assert first["choices"] == [] and first["id"] == "" and first["prompt_filter_results"]
    for event in events[1:-1]:
        chunk = orjson.loads(event[6:])
        validate("CreateChatCompletionStreamResponse", chunk)
        assert "obfuscation" not in chunk
    # and the SDK copes with it
    text = ""
    async for chunk in await client(azure_cloud).chat.completions.create(model="x", messages=HI, stream=True):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    whole = await client(azure_cloud).chat.completions.create(model="x", messages=HI)
    assert text == whole.choices[0].message.content


async def test_embeddings_and_model_as_deployment(azure_cloud):
    api = client(azure_cloud, deployment=None)
    result = await api.embeddings.create(model="embed", input=["one", "two"])  # SDK default: base64
    assert len(result.data) == 2 and len(result.data[1].embedding) == 1536
    assert azure_cloud.recent_requests[-1]["path"] == "/openai/deployments/embed/embeddings"
    reply = await api.chat.completions.create(model="chat-prod", messages=HI)
    assert reply.model == "gpt-4o-2024-08-06"


async def test_entra_token_and_bad_key(azure_cloud):
    token_client = track(AsyncAzureOpenAI(azure_endpoint=azure_cloud.base_url, azure_deployment="chat-prod",
                                          api_version=VERSION, azure_ad_token="eyJ.fake.token", max_retries=0))
    assert (await token_client.chat.completions.create(model="x", messages=HI)).choices
    assert azure_cloud.recent_requests[-1]["headers"]["authorization"] == "<redacted>"
    with pytest.raises(openai.AuthenticationError) as info:
        await client(azure_cloud, api_key="wrong").chat.completions.create(model="x", messages=HI)
    assert info.value.body["code"] == "401" and "Access denied" in info.value.body["message"]


async def test_api_version_and_deployment_errors(azure_cloud):
    with pytest.raises(openai.BadRequestError) as info:
        await client(azure_cloud, api_version="2001-01-01").chat.completions.create(model="x", messages=HI)
    assert info.value.body == {"code": "BadRequest", "message": "API version not supported"}
    with pytest.raises(openai.NotFoundError) as info:
        await client(azure_cloud, deployment="nope").chat.completions.create(model="x", messages=HI)
    assert info.value.body["code"] == "DeploymentNotFound"
    async with httpx2.AsyncClient(timeout=5) as http:
        response = await http.post(f"{azure_cloud.base_url}/openai/deployments/chat-prod/chat/completions",
                                   headers={"api-key": "az-key"}, json={"messages": HI})
    assert response.status_code == 404 and response.json() == {"error": {"code": "404",
                                                                          "message": "Resource not found"}}


async def test_body_errors_pass_through_in_openai_shape(azure_cloud):
    with pytest.raises(openai.BadRequestError) as info:
        await client(azure_cloud).chat.completions.create(model="x", messages=[])
    validate("ErrorResponse", {"error": info.value.body})
    assert info.value.code == "empty_array"


async def test_content_filter_on_the_prompt(azure_cloud):
    azure_cloud.set_faults([{"kind": "content_filter", "at": [1]}])
    with pytest.raises(openai.BadRequestError) as info:
        await client(azure_cloud).chat.completions.create(model="x", messages=HI)
    body = info.value.body
    assert body["code"] == "content_filter" and body["param"] == "prompt" and body["status"] == 400
    assert body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert body["innererror"]["content_filter_result"]["violence"]["filtered"] is True


async def test_content_filter_on_the_output(azure_cloud):
    azure_cloud.set_faults([{"kind": "content_filter", "target": "output"}])
    reply = await client(azure_cloud).chat.completions.create(model="x", messages=HI)
    assert reply.choices[0].finish_reason == "content_filter"
    assert 0 < reply.usage.completion_tokens < 24
    chunks = [c async for c in await client(azure_cloud).chat.completions.create(
        model="x", messages=HI, stream=True)]
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    azure_cloud.clear_faults()
    full = await client(azure_cloud).chat.completions.create(model="x", messages=HI)
    assert full.choices[0].message.content.startswith(reply.choices[0].message.content)


async def test_throttling_in_azure_shape(azure_cloud):
    azure_cloud.set_faults([{"status": 429, "retry_after": 4}, ])
    with pytest.raises(openai.RateLimitError) as info:
        await client(azure_cloud).chat.completions.create(model="x", messages=HI)
    assert info.value.body["code"] == "429" and "retry after 4 seconds" in info.value.body["message"]
    assert info.value.response.headers["retry-after"] == "4"
    assert info.value.response.headers["retry-after-ms"] == "4000"


async def test_content_filter_fault_on_an_openai_cloud_means_finish_reason(openai_cloud):
    openai_cloud.set_faults([{"kind": "content_filter"}])
    api = track(openai.AsyncOpenAI(base_url=openai_cloud.base_url, api_key="sk-test", max_retries=0))
    raw = await api.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    body = orjson.loads(raw.http_response.content)
    validate("CreateChatCompletionResponse", body)
    assert body["choices"][0]["finish_reason"] == "content_filter"

"""Every client-supplied size is bounded as the real API bounds it, refused in that API's own error, judged by the SDKs.

One request must never be able to take the emulator down (the issue: `dimensions: 2147483648` grew it to 24 GB):
sizes that drive allocation, loops or time are refused at the API's documented limit, and what the caller may still
ask for within them (tool schemas, deep JSON) produces a bounded reply.
"""

from __future__ import annotations

import anthropic
import boto3
import httpx2
import openai
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from google import genai
from google.genai import errors, types
from openai import AsyncOpenAI

from skyrelay.emulator import CloudSpec, start_cloud
from tests.emulator.sdk_clients import track

HI = [{"role": "user", "content": "Say something nice."}]
BOUND = 10.0  # seconds: far more than any answer here needs, far less than what the unbounded requests took


def oai(cloud, **kw) -> AsyncOpenAI:
    return track(AsyncOpenAI(base_url=cloud.base_url, api_key="k", max_retries=0, timeout=BOUND, **kw))


def _tool(name: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


# --- openai ----------------------------------------------------------------------------------------------------------

async def test_the_issue_huge_dimensions_is_a_quick_400_and_the_cloud_keeps_serving(make_cloud):
    cloud = await make_cloud(name="oai", protocol="openai")
    api = oai(cloud)
    with pytest.raises(openai.BadRequestError) as caught:
        await api.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=2147483648)
    assert caught.value.body == {
        "message": "Invalid 'dimensions': integer above maximum value. Expected a value <= 1536, but got 2147483648 "
                   "instead.", "type": "invalid_request_error", "param": "dimensions",
        "code": "integer_above_max_value"}
    served = await api.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=8)
    assert len(served.data[0].embedding) == 8
    assert (await api.chat.completions.create(model="gpt-4o-mini", messages=HI)).choices[0].message.content


async def test_dimensions_up_to_each_models_native_size(make_cloud):
    api = oai(await make_cloud(name="oai", protocol="openai", embedding_dimensions=256))
    large = await api.embeddings.create(model="text-embedding-3-large", input="a", dimensions=3072)
    assert len(large.data[0].embedding) == 3072
    with pytest.raises(openai.BadRequestError, match="Expected a value <= 3072"):
        await api.embeddings.create(model="text-embedding-3-large", input="a", dimensions=3073)
    with pytest.raises(openai.BadRequestError, match="Expected a value <= 256"):  # unknown model: the cloud's size
        await api.embeddings.create(model="my-embedder", input="a", dimensions=257)
    with pytest.raises(openai.BadRequestError) as caught:
        await api.embeddings.create(model="text-embedding-ada-002", input="a", dimensions=8)
    assert caught.value.body["message"] == "This model does not support specifying dimensions."


async def test_azure_deployment_dimensions_bounded_by_its_model(make_cloud):
    cloud = await make_cloud(name="az", protocol="azure",
                             deployments=[{"name": "emb", "model": "text-embedding-3-small"}])
    api = track(openai.AsyncAzureOpenAI(azure_endpoint=cloud.base_url, azure_deployment="emb", api_version="2024-10-21",
                                        api_key="x", max_retries=0, timeout=BOUND))
    with pytest.raises(openai.BadRequestError) as caught:
        await api.embeddings.create(model="emb", input="a", dimensions=2147483648)
    assert caught.value.body["param"] == "dimensions" and caught.value.body["code"] == "integer_above_max_value"


@pytest.mark.parametrize("body, param, code, message", [
    ({"max_tokens": 16385}, "max_tokens", "invalid_value",
     "max_tokens is too large: 16385. This model supports at most 16384 completion tokens, whereas you provided "
     "16385."),
    ({"max_completion_tokens": 10**9}, "max_completion_tokens", "invalid_value", "max_completion_tokens is too large"),
    ({"tools": [_tool(f"t{i}", {"type": "object"}) for i in range(129)]}, "tools", "array_above_max_length",
     "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length 129 "
     "instead."),
    ({"seed": 2**63}, "seed", "integer_above_max_value", "Expected a value <= 9223372036854775807"),
    ({"n": 129}, "n", "integer_above_max_value", "Expected a value <= 128"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length", "maximum length 4"),
])
async def test_openai_chat_sizes_refused_as_openai_does(openai_cloud, body, param, code, message):
    api = track(AsyncOpenAI(base_url=openai_cloud.base_url, api_key="sk-test", max_retries=0, timeout=BOUND))
    with pytest.raises(openai.BadRequestError) as caught:
        await api.chat.completions.create(model="gpt-4o-mini", messages=HI, **body)
    error = caught.value.body
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == code
    assert message in error["message"]


async def test_too_many_tool_calls_in_one_assistant_message(openai_cloud):
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in range(129)]
    messages = HI + [{"role": "assistant", "tool_calls": calls}] + [
        {"role": "tool", "tool_call_id": f"c{i}", "content": "ok"} for i in range(129)]
    api = track(AsyncOpenAI(base_url=openai_cloud.base_url, api_key="sk-test", max_retries=0, timeout=BOUND))
    with pytest.raises(openai.BadRequestError) as caught:
        await api.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert caught.value.body["param"] == "messages[1].tool_calls"


async def test_unknown_model_takes_any_max_tokens_and_the_reply_stays_its_configured_length(make_cloud):
    api = oai(await make_cloud(name="oai", protocol="openai", output_tokens=12))
    reply = await api.chat.completions.create(model="my-model", messages=HI, max_tokens=2**31)
    assert reply.usage.completion_tokens == 12 and reply.choices[0].finish_reason == "stop"


async def test_n_choices_are_paced_side_by_side_not_one_after_another(make_cloud):
    # 128 choices of 24 tokens at 100 tokens/s: 0.24 s side by side, 31 s one after another (beyond the bound)
    api = oai(await make_cloud(name="oai", protocol="openai", ttft_ms=0, tokens_per_second=100))
    reply = await api.chat.completions.create(model="gpt-4o-mini", messages=HI, n=128)
    assert len(reply.choices) == 128 and reply.usage.completion_tokens == 128 * 24


async def test_a_tool_schema_asking_for_a_huge_value_gets_a_bounded_call(make_cloud):
    api = oai(await make_cloud(name="oai", protocol="openai", tokens_per_second=0))
    greedy = _tool("fill", {"type": "object", "properties": {"rows": {
        "type": "array", "minItems": 10**9, "items": {"type": "string", "minLength": 10**12}}}, "required": ["rows"]})
    node = {"type": "object", "properties": {k: {"$ref": "#/$defs/node"} for k in "abcdefghijklmnop"}}
    fan_out = _tool("tree", {"$defs": {"node": node}, **node})
    for tool in (greedy, fan_out):
        reply = await api.chat.completions.create(model="gpt-4o-mini", messages=HI, tools=[tool],
                                                  tool_choice="required")
        arguments = reply.choices[0].message.tool_calls[0].function.arguments
        assert 10 < len(arguments) < 200_000 and isinstance(orjson.loads(arguments), dict)


def _nested_schema(depth: int) -> str:
    return '{"type":"object","properties":{"x":' * depth + '{"type":"string"}' + "}}" * depth


@pytest.mark.parametrize("protocol, path, headers, body", [
    ("openai", "/chat/completions", {}, '{"model":"m","messages":[{"role":"user","content":"hi"}],'
     '"tools":[{"type":"function","function":{"name":"f","parameters":%s}}]}'),
    ("anthropic", "/v1/messages", {"anthropic-version": "2023-06-01"}, '{"model":"m","max_tokens":10,'
     '"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":%s}]}'),
    ("gemini", "/v1beta/models/m:generateContent", {}, '{"contents":[{"parts":[{"text":"hi"}]}],'
     '"tools":[{"functionDeclarations":[{"name":"f","parametersJsonSchema":%s}]}]}'),
    ("bedrock", "/model/m/converse", {}, '{"messages":[{"role":"user","content":[{"text":"hi"}]}],'
     '"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":%s}}}]}}'),
])
async def test_json_nested_deeper_than_orjson_writes_is_answered_not_a_500(make_cloud, protocol, path, headers, body):
    cloud = await make_cloud(name=protocol, protocol=protocol, tokens_per_second=0)
    async with httpx2.AsyncClient(base_url=cloud.base_url, timeout=BOUND) as http:
        response = await http.post(path, content=body % _nested_schema(300), headers=headers)
    assert response.status_code == 200, response.text


# --- anthropic, bedrock, gemini (sync SDKs against clouds on the background loop) -----------------------------------

@pytest.fixture(scope="module")
def clouds(bg):
    specs = {
        "anthropic": CloudSpec(name="claude", protocol="anthropic", api_key="k", ttft_ms=1, tokens_per_second=0),
        "bedrock": CloudSpec(name="aws", protocol="bedrock", ttft_ms=1, tokens_per_second=0),
        "gemini": CloudSpec(name="gem", protocol="gemini", api_key="k", ttft_ms=1, tokens_per_second=0),
    }
    started = {name: bg.run(start_cloud(spec)) for name, spec in specs.items()}
    yield started
    for cloud in started.values():
        bg.run(cloud.stop())


def test_anthropic_max_tokens_bounded_by_the_models_output_limit(clouds):
    with anthropic.Anthropic(base_url=clouds["anthropic"].base_url, api_key="k", max_retries=0, timeout=BOUND) as c:
        with pytest.raises(anthropic.BadRequestError) as caught:
            c.messages.create(model="claude-haiku-4-5", max_tokens=64001, messages=HI)
        assert caught.value.type == "invalid_request_error"
        assert caught.value.api_message == ("max_tokens: 64001 > 64000, which is the maximum allowed number of output "
                                            "tokens for claude-haiku-4-5")
        assert c.messages.create(model="claude-haiku-4-5", max_tokens=64000, messages=HI).content
        with pytest.raises(anthropic.BadRequestError, match="maximum allowed number of output tokens"):
            c.messages.create(model="claude-3-haiku-20240307", max_tokens=8192, messages=HI,
                              thinking={"type": "enabled", "budget_tokens": 4096})


def test_bedrock_max_tokens_bounded_by_the_models_output_limit(clouds):
    runtime = boto3.client("bedrock-runtime", endpoint_url=clouds["bedrock"].base_url, region_name="us-east-1",
                           aws_access_key_id="AKID", aws_secret_access_key="SECRET",
                           config=Config(retries={"total_max_attempts": 1}, read_timeout=BOUND))
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    with pytest.raises(ClientError) as caught:
        runtime.converse(modelId="us.anthropic.claude-3-haiku-20240307-v1:0", messages=messages,
                         inferenceConfig={"maxTokens": 4097})
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400 and error["Error"]["Code"] == "ValidationException"
    assert error["Error"]["Message"].startswith("The maximum tokens you requested exceeds the model limit of 4096.")
    assert runtime.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0", messages=messages,
                            inferenceConfig={"maxTokens": 4096})["output"]["message"]["content"]


def test_gemini_max_output_tokens_bounded_by_the_models_output_limit(clouds):
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=clouds["gemini"].base_url,
                                                                     timeout=int(BOUND * 1000)))
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi",
                                       config=types.GenerateContentConfig(max_output_tokens=65537))
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.message == ("Unable to submit request because it has a maxOutputTokens value of 65537 but the "
                                    "supported range is from 1 (inclusive) to 65537 (exclusive). Update the value "
                                    "and try again.")
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="hi",
                                           config=types.GenerateContentConfig(max_output_tokens=65536))
    assert reply.text

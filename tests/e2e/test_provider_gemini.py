"""The official openai SDK -> the gateway -> the Gemini / Vertex providers -> emulated Gemini API and Vertex AI:
non-stream, stream, tools (round trip), images, structured output, embeddings (batchEmbedContents), failover
between the two, and Google's errors mapped to the right OpenAI errors."""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest

from skyrelay.emulator.protocols import PROTOCOLS

from .harness import UPSTREAM_KEY, start_stack
from .throttling import assert_throttle_cools_down_briefly

if "gemini" not in PROTOCOLS or "vertex" not in PROTOCOLS:
    pytest.skip("the emulator does not speak gemini/vertex yet", allow_module_level=True)

MODEL = "gemini-2.5-flash"
EMBED_MODEL = "gemini-embedding-001"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIMEOUTS = {"connect": 1, "first_byte": 3, "total": 10}


def gemini_deployment(cloud, name="ai-studio", **extra) -> dict:
    return {"name": name, "kind": "gemini", "base_url": cloud.base_url, "api_key": UPSTREAM_KEY, "model": MODEL,
            "timeouts": TIMEOUTS, **extra}


def vertex_deployment(cloud, name="vertex-eu", **extra) -> dict:
    return {"name": name, "kind": "vertex", "base_url": cloud.base_url, "api_key": UPSTREAM_KEY, "model": MODEL,
            "project": "acme-prod", "location": "europe-west4", "timeouts": TIMEOUTS, **extra}


CLOUDS = [{"name": "gemini", "protocol": "gemini", "models": [MODEL, EMBED_MODEL], "embedding_dimensions": 768},
          {"name": "vertex", "protocol": "vertex", "models": [MODEL],
           "options": {"project": "acme-prod", "location": "europe-west4"}}]


def groups(clouds) -> dict:
    return {"flash": {"deployments": [gemini_deployment(clouds["gemini"])]},
            "flash-vertex": {"deployments": [vertex_deployment(clouds["vertex"])]},
            "embed": {"deployments": [gemini_deployment(clouds["gemini"], name="ai-studio-embed", model=EMBED_MODEL)]},
            "flash-any": {"strategy": "weighted", "deployments": [
                gemini_deployment(clouds["gemini"], name="any-gemini", weight=1000),
                vertex_deployment(clouds["vertex"], name="any-vertex", weight=0.001)]}}


@pytest.fixture(scope="module")
def google(bg):
    stack = start_stack(bg, CLOUDS, groups)
    yield stack
    stack.close()


@pytest.mark.parametrize("group, deployment", [("flash", "ai-studio"), ("flash-vertex", "vertex-eu")])
def test_chat(google, group, deployment):
    raw = google.openai().chat.completions.with_raw_response.create(
        model=group, messages=[{"role": "system", "content": "Be brief."}, *HELLO], max_tokens=60)
    assert raw.headers["x-skyrelay-deployment"] == deployment
    resp = raw.parse()
    assert resp.model.startswith(MODEL) and resp.id.startswith("chatcmpl-")
    assert resp.choices[0].message.content and resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0


def test_requests_reach_the_documented_paths(google):
    google.openai().chat.completions.create(model="flash", messages=HELLO)
    google.openai().chat.completions.create(model="flash-vertex", messages=HELLO)
    gemini = google.clouds["gemini"].recent_requests[-1]
    vertex = google.clouds["vertex"].recent_requests[-1]
    assert gemini["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert vertex["path"] == (f"/v1/projects/acme-prod/locations/europe-west4/publishers/google/models/{MODEL}"
                              ":generateContent")


@pytest.mark.parametrize("group", ["flash", "flash-vertex"])
def test_stream_with_usage(google, group):
    chunks = list(google.openai().chat.completions.create(
        model=group, messages=HELLO, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_stream_without_usage_request_has_no_usage_chunk(google):
    chunks = list(google.openai().chat.completions.create(model="flash", messages=HELLO, stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)


def test_tool_call_round_trip(google):
    client = google.openai()
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model="flash", messages=messages, tools=[WEATHER], tool_choice="required")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21, "sky": "clear"})}]
    second = client.chat.completions.create(model="flash", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content and second.choices[0].finish_reason in ("stop", "length")


def test_streamed_tool_call(google):
    chunks = list(google.openai().chat.completions.create(
        model="flash-vertex", messages=[{"role": "user", "content": "Weather in Rome?"}], tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream=True))
    deltas = [tc for c in chunks if c.choices and c.choices[0].delta.tool_calls for tc in c.choices[0].delta.tool_calls]
    assert deltas[0].id and deltas[0].function.name == "get_weather" and deltas[0].index == 0
    assert isinstance(json.loads("".join(d.function.arguments or "" for d in deltas if d.index == 0)), dict)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_an_image(google):
    content = [{"type": "text", "text": "What is in this picture?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    with_image = google.openai().chat.completions.create(model="flash", messages=[{"role": "user", "content": content}])
    text_only = google.openai().chat.completions.create(model="flash", messages=[{"role": "user",
                                                                                 "content": content[:1]}])
    assert with_image.choices[0].message.content
    assert with_image.usage.prompt_tokens > text_only.usage.prompt_tokens


def test_an_image_url_gemini_cannot_fetch_is_refused(google):
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as caught:
        google.openai().chat.completions.create(model="flash", messages=[{"role": "user", "content": content}])
    assert "ai-studio" in caught.value.message and "data: URL" in caught.value.message


def test_json_schema_output(google):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    resp = google.openai().chat.completions.create(
        model="flash-vertex", messages=[{"role": "user", "content": "A big city, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}})
    data = json.loads(resp.choices[0].message.content)
    assert set(data) == {"city", "population"} and isinstance(data["population"], int)


def test_embeddings_in_the_sdks_default_base64(google):
    raw = google.openai().embeddings.with_raw_response.create(model="embed", input=["a", "b"])
    assert raw.headers["x-skyrelay-deployment"] == "ai-studio-embed"
    sent = google.clouds["gemini"].recent_requests[-1]
    assert sent["path"] == f"/v1beta/models/{EMBED_MODEL}:batchEmbedContents"
    assert [r["content"] for r in sent["body"]["requests"]] == [{"parts": [{"text": "a"}]}, {"parts": [{"text": "b"}]}]
    wire = raw.http_response.json()["data"][0]["embedding"]
    assert isinstance(wire, str)  # the SDK asked for base64: little-endian float32s
    resp = raw.parse()
    assert [d.index for d in resp.data] == [0, 1] and resp.model == EMBED_MODEL
    first, second = (d.embedding for d in resp.data)
    assert len(first) == len(second) == 768 and first != second
    assert list(struct.unpack("<768f", base64.b64decode(wire))) == first
    assert abs(sum(v * v for v in first) - 1) < 1e-5 and resp.usage.prompt_tokens > 0


def test_embeddings_as_floats_with_fewer_dimensions(google):
    client = google.openai()
    full = client.embeddings.create(model="embed", input=["a", "b"])
    short = client.embeddings.create(model="embed", input=["a", "b"], encoding_format="float", dimensions=8)
    sent = google.clouds["gemini"].recent_requests[-1]["body"]["requests"]
    assert [r["outputDimensionality"] for r in sent] == [8, 8]
    assert [d.embedding for d in short.data] == [d.embedding[:8] for d in full.data]  # truncated, not renormalised
    single = client.embeddings.create(model="embed", input="a", encoding_format="float", dimensions=8)
    assert single.data[0].embedding == short.data[0].embedding


def test_embedding_errors(google):
    with pytest.raises(openai.BadRequestError) as caught:  # Google's own refusal, passed through
        google.openai().embeddings.create(model="embed", input="a", dimensions=5000)
    assert "output_dimensionality" in caught.value.message
    before = google.clouds["gemini"].stats["requests"]
    with pytest.raises(openai.BadRequestError) as caught:  # refused before any upstream call
        google.openai().embeddings.create(model="embed", input=[[1, 2, 3]])
    assert caught.value.body["param"] == "input" and google.clouds["gemini"].stats["requests"] == before


def test_unsupported_features_are_refused_before_any_upstream_call(google):
    with pytest.raises(openai.BadRequestError) as caught:
        google.openai().chat.completions.create(model="flash", messages=HELLO, logprobs=True)
    assert caught.value.body["param"] == "logprobs"


def test_googles_validation_errors_pass_through_as_400(google):
    with pytest.raises(openai.BadRequestError) as caught:
        google.openai().chat.completions.create(model="flash", messages=HELLO, temperature=2.5)
    assert "temperature" in caught.value.message


def test_failover_from_an_overloaded_gemini_to_vertex(make_stack):
    stack = make_stack(cloud_specs=CLOUDS, groups=groups)
    stack.set_faults("gemini", [{"kind": "status", "status": 503}])
    raw = stack.openai().chat.completions.with_raw_response.create(model="flash-any", messages=HELLO)
    assert raw.headers["x-skyrelay-deployment"] == "any-vertex" and raw.headers["x-skyrelay-attempts"] == "2"
    stream = stack.openai().chat.completions.create(model="flash-any", messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_quota_exhaustion_is_a_rate_limit_with_googles_retry_delay(make_stack):
    stack = make_stack(cloud_specs=CLOUDS, groups=groups)
    stack.set_faults("gemini", [{"kind": "status", "status": 429, "retry_after": 7}])
    with pytest.raises(openai.RateLimitError) as caught:
        stack.openai().chat.completions.create(model="flash", messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "7"  # from the RetryInfo detail
    with pytest.raises(openai.RateLimitError):  # a stream fails the same way, before any byte was sent
        list(stack.openai().chat.completions.create(model="flash", messages=HELLO, stream=True))


def test_resource_exhausted_without_a_retry_delay_cools_down_for_a_second_doubling(make_stack):
    """RESOURCE_EXHAUSTED without a RetryInfo detail: a throttle, not an outage (not the breaker's 30 s)."""
    stack = make_stack(cloud_specs=CLOUDS, groups=groups)
    assert_throttle_cools_down_briefly(stack, "gemini", "ai-studio", "flash", "RESOURCE_EXHAUSTED")


def test_a_wrong_key_is_an_operator_problem_that_names_no_key(bg):
    def wrong_keys(clouds):
        return {"flash": {"deployments": [gemini_deployment(clouds["gemini"], api_key="AIza-wrong-key")]},
                "flash-vertex": {"deployments": [vertex_deployment(clouds["vertex"], api_key="ya29.wrong-token")]}}

    stack = start_stack(bg, CLOUDS, wrong_keys)
    try:
        for group, secret in (("flash", "AIza-wrong-key"), ("flash-vertex", "ya29.wrong-token")):
            with pytest.raises(openai.APIStatusError) as caught:
                stack.openai().chat.completions.create(model=group, messages=HELLO)
            assert caught.value.status_code == 502 and secret not in caught.value.message
            assert "refused the gateway's credentials (40" in caught.value.message
    finally:
        stack.close()


def test_a_blocked_prompt_is_a_content_filter(make_stack):
    stack = make_stack(cloud_specs=CLOUDS, groups=groups)
    stack.set_faults("vertex", [{"kind": "content_filter", "target": "prompt"}])
    resp = stack.openai().chat.completions.create(model="flash-vertex", messages=HELLO)
    assert resp.choices[0].finish_reason == "content_filter" and not resp.choices[0].message.content
    stack.set_faults("vertex", [{"kind": "content_filter", "target": "output"}])
    chunks = list(stack.openai().chat.completions.create(model="flash-vertex", messages=HELLO, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"]

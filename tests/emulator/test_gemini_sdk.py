"""The official `google-genai` SDK against the emulator's `gemini` and `vertex` protocols.

The clouds run on a background event loop; sync clients call them from the test thread, `client.aio` from the
test's own loop, both over real sockets. Raw HTTP checks what the SDK hides (the JSON-array stream, field names).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import google.oauth2.credentials
import httpx2
import jsonschema
import pytest
from google import genai
from google.genai import errors, types

from skyrelay.emulator import CloudSpec, start_cloud

KEY = "gemini-test-key"
TOKEN = "ya29.test-token"
MODEL = "gemini-2.5-flash"
EMBED = "gemini-embedding-001"
MULTIMODAL_EMBED = "gemini-embedding-2"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cf"
                    "c0f01f00050001ff5a6b5d2a0000000049454e44ae426082")
WEATHER = types.FunctionDeclaration(
    name="get_weather", description="Get the current weather for a city",
    parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}, "unit": {
        "type": "STRING", "enum": ["c", "f"]}}, "required": ["city"]})
WEATHER_JSON_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {
    "type": "string", "enum": ["c", "f"]}}, "required": ["city"]}
HELLO = "Hello there, tell me something."


@pytest.fixture(scope="module")
def gemini(bg):
    spec = CloudSpec(name="gemini-test", protocol="gemini", api_key=KEY, models=[MODEL, EMBED, MULTIMODAL_EMBED],
                     ttft_ms=1, tokens_per_second=0, seed=3, embedding_dimensions=768)
    cloud = bg.run(start_cloud(spec))
    yield cloud
    bg.run(cloud.stop())


@pytest.fixture(scope="module")
def vertex(bg):
    spec = CloudSpec(name="vertex-test", protocol="vertex", api_key=TOKEN, models=[MODEL], ttft_ms=1,
                     tokens_per_second=0, seed=3, options={"project": "proj-1", "location": "us-central1"})
    cloud = bg.run(start_cloud(spec))
    yield cloud
    bg.run(cloud.stop())


@pytest.fixture(autouse=True)
def no_faults(bg, gemini, vertex):
    for cloud in (gemini, vertex):
        bg.call(cloud.clear_faults)
    yield
    for cloud in (gemini, vertex):
        bg.call(cloud.clear_faults)


_clients: list[genai.Client] = []


@pytest.fixture(autouse=True)
async def close_clients():
    """No connection outlives its test (a test's async clients belong to its own event loop)."""
    yield
    while _clients:
        client = _clients.pop()
        await client.aio.aclose()
        client.close()


def faults(bg, cloud, plan):
    bg.call(cloud.set_faults, plan)


def gemini_client(cloud, key: str = KEY, **options) -> genai.Client:
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=cloud.base_url, **options))
    _clients.append(client)
    return client


def vertex_client(cloud, token: str = TOKEN, project: str = "proj-1", **options) -> genai.Client:
    credentials = google.oauth2.credentials.Credentials(token=token)
    client = genai.Client(vertexai=True, project=project, location="us-central1", credentials=credentials,
                          http_options=types.HttpOptions(base_url=cloud.base_url, **options))
    _clients.append(client)
    return client


@pytest.fixture
def client(gemini):
    return gemini_client(gemini)


def raw_post(cloud, path: str, body: dict, headers: dict | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(cloud.base_url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], error.read()


# --- replies ------------------------------------------------------------------------------------------------------

def test_generate_content_returns_a_complete_response(client):
    response = client.models.generate_content(model=MODEL, contents=HELLO)
    assert response.text and response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.candidates[0].content.role == "model"
    usage = response.usage_metadata
    assert usage.prompt_token_count > 0 and usage.candidates_token_count == 24
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.model_version == MODEL and response.response_id


def test_stream_splits_text_and_ends_with_finish_and_usage(client):
    whole = client.models.generate_content(model=MODEL, contents=HELLO)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=HELLO))
    assert len(chunks) > 3 and "".join(c.text for c in chunks) == whole.text
    assert [c.candidates[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == whole.usage_metadata.candidates_token_count
    assert chunks[0].usage_metadata.candidates_token_count is None  # the Gemini API repeats only the prompt count


async def test_async_client_generates_streams_and_counts(gemini):
    client = gemini_client(gemini)
    response = await client.aio.models.generate_content(model=MODEL, contents=HELLO)
    text = "".join([c.text async for c in await client.aio.models.generate_content_stream(model=MODEL,
                                                                                          contents=HELLO)])
    counted = await client.aio.models.count_tokens(model=MODEL, contents=HELLO)
    assert text == response.text and counted.total_tokens == response.usage_metadata.prompt_token_count


def test_config_system_instruction_stop_max_tokens_candidates(client):
    base = types.GenerateContentConfig(system_instruction="Be brief.")
    full = client.models.generate_content(model=MODEL, contents=HELLO, config=base)
    word = full.text.split()[2]
    stopped = client.models.generate_content(model=MODEL, contents=HELLO, config=base.model_copy(
        update={"stop_sequences": [word]}))
    assert full.text.startswith(stopped.text) and word not in stopped.text
    short = client.models.generate_content(model=MODEL, contents=HELLO, config=base.model_copy(
        update={"max_output_tokens": 3}))
    assert short.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert short.usage_metadata.candidates_token_count == 3
    two = client.models.generate_content(model=MODEL, contents=HELLO, config=types.GenerateContentConfig(
        candidate_count=2, temperature=0.5, top_p=0.9, top_k=20, seed=1))
    assert [c.index for c in two.candidates] == [0, 1]


def test_inline_image_is_counted_as_image_tokens(client):
    response = client.models.generate_content(model=MODEL, contents=[
        types.Part.from_bytes(data=PNG, mime_type="image/png"), "What is in this picture?"])
    modalities = {d.modality: d.token_count for d in response.usage_metadata.prompt_tokens_details}
    assert modalities[types.MediaModality.IMAGE] > 0 and modalities[types.MediaModality.TEXT] > 0


def test_json_response_follows_the_schema(client):
    schema = {"type": "OBJECT", "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER"}},
              "required": ["name", "age"]}
    response = client.models.generate_content(model=MODEL, contents=HELLO, config=types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=schema))
    assert set(response.parsed) == {"name", "age"} and isinstance(response.parsed["age"], int)
    json_schema = {"type": "array", "items": {"type": "integer"}, "minItems": 1}
    listed = client.models.generate_content(model=MODEL, contents=HELLO, config=types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=json_schema))
    jsonschema.validate(json.loads(listed.text), json_schema)


# --- function calling ---------------------------------------------------------------------------------------------

def test_function_call_then_function_response(client):
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    ask = types.Content(role="user", parts=[types.Part.from_text(text="What is the weather in Paris?")])
    response = client.models.generate_content(model=MODEL, contents=[ask], config=config)
    call = response.function_calls[0]
    assert call.name == "get_weather"
    jsonschema.validate(call.args, WEATHER_JSON_SCHEMA)
    answer = types.Content(role="user", parts=[types.Part.from_function_response(
        name="get_weather", response={"temperature": 18})])
    reply = client.models.generate_content(
        model=MODEL, contents=[ask, response.candidates[0].content, answer], config=config)
    assert reply.text and not reply.function_calls


def test_function_calling_modes(client):
    tools = [types.Tool(function_declarations=[WEATHER, types.FunctionDeclaration(
        name="lookup", description="Look up a word", parameters_json_schema={
            "type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]})])]
    forced = client.models.generate_content(model=MODEL, contents=HELLO, config=types.GenerateContentConfig(
        tools=tools, tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode="ANY", allowed_function_names=["lookup"]))))
    assert [c.name for c in forced.function_calls] == ["lookup"]
    never = client.models.generate_content(model=MODEL, contents="Weather in Oslo?", config=types.GenerateContentConfig(
        tools=tools, tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="NONE"))))
    assert never.text and not never.function_calls
    streamed = list(client.models.generate_content_stream(model=MODEL, contents="Weather in Oslo?",
                                                          config=types.GenerateContentConfig(tools=tools)))
    assert streamed[-1].function_calls[0].name == "get_weather"


# --- validation ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, expected", [
    ({"contents": []}, "contents is not specified"),
    ({"contents": [{"role": "user", "parts": [{}]}]}, "required oneof field 'data' must have one initialized field"),
    ({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}, "Please use a valid role: user, model."),
    ({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"max_tokens": 5}},
     "Unknown name \"max_tokens\" at 'generation_config': Cannot find field."),
    ({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": "many"}},
     "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), \"many\""),
    ({"contents": [{"parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
        "type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "additionalProperties": False}}]}]},
     "Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters'"),
    ({"contents": [{"parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
        "type": "OBJECT", "properties": {}}}]}]}, "parameters.properties: should be non-empty for OBJECT type"),
    ({"contents": [{"parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
        "type": "OBJECT", "properties": {"a": {"type": "WORD"}}}}]}]},
     "Invalid value at 'tools[0].function_declarations[0].parameters.properties[0].value.type'"),
    ({"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "user", "parts": [{"functionResponse": {
        "name": "f", "response": {}}}]}]}, "function response turn comes immediately after a function call turn"),
    ({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}]},
     "function call turn comes immediately after a user turn"),
])
def test_invalid_requests_are_refused_like_google(gemini, body, expected):
    status, content_type, raw = raw_post(gemini, f"/v1beta/models/{MODEL}:generateContent", body,
                                         {"x-goog-api-key": KEY})
    error = json.loads(raw)["error"]
    assert status == 400 and error["status"] == "INVALID_ARGUMENT" and expected in error["message"]


def test_snake_case_fields_are_accepted_too(gemini):
    body = {"contents": [{"parts": [{"text": "hi"}, {"inline_data": {"mime_type": "image/png", "data": "iVBORw=="}}]}],
            "generation_config": {"max_output_tokens": 4}, "system_instruction": {"parts": [{"text": "Be brief."}]}}
    status, _, raw = raw_post(gemini, f"/v1beta/models/{MODEL}:generateContent?key={KEY}", body)
    assert status == 200 and json.loads(raw)["candidates"][0]["finishReason"] == "MAX_TOKENS"


def test_stream_without_alt_sse_is_one_json_array(gemini):
    status, content_type, raw = raw_post(gemini, f"/v1beta/models/{MODEL}:streamGenerateContent",
                                         {"contents": [{"parts": [{"text": "hi"}]}]}, {"x-goog-api-key": KEY})
    events = json.loads(raw)
    assert status == 200 and content_type.startswith("application/json") and len(events) > 1
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    status, _, raw = raw_post(gemini, f"/v1beta/models/{MODEL}:streamGenerateContent", {"contents": []},
                              {"x-goog-api-key": KEY})
    assert status == 400 and json.loads(raw)[0]["error"]["status"] == "INVALID_ARGUMENT"


def test_unknown_url_is_googles_html_404(gemini):
    status, content_type, raw = raw_post(gemini, f"/v1beta/model/{MODEL}:generateContent", {}, {})
    assert status == 404 and content_type.startswith("text/html") and b"Error 404" in raw


# --- auth and errors ----------------------------------------------------------------------------------------------

def test_wrong_key_missing_key_and_unknown_model(gemini, client):
    wrong = gemini_client(gemini, key="wrong")
    with pytest.raises(errors.ClientError) as caught:
        wrong.models.generate_content(model=MODEL, contents=HELLO)
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, _, raw = raw_post(gemini, f"/v1beta/models/{MODEL}:generateContent",
                              {"contents": [{"parts": [{"text": "hi"}]}]})
    assert status == 403 and json.loads(raw)["error"]["status"] == "PERMISSION_DENIED"
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-nope", contents=HELLO)
    assert caught.value.code == 404 and "models/gemini-nope is not found" in caught.value.message


def test_rate_limit_carries_retry_info_and_the_sdk_retries(bg, gemini, client):
    faults(bg, gemini, [{"status": 429, "at": [1], "retry_after": 2}])
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=HELLO)
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    assert caught.value.details["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]
    faults(bg, gemini, [{"status": 429, "at": [1]}])
    retrying = gemini_client(gemini, retry_options=types.HttpRetryOptions(attempts=2, initial_delay=0.01, jitter=0))
    assert retrying.models.generate_content(model=MODEL, contents=HELLO).text


@pytest.mark.parametrize("status, name", [(500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")])
def test_server_errors(bg, gemini, client, status, name):
    faults(bg, gemini, [{"status": status}])
    with pytest.raises(errors.ServerError) as caught:
        client.models.generate_content(model=MODEL, contents=HELLO)
    assert caught.value.code == status and caught.value.status == name


def test_hang_reset_cut_and_slow(bg, gemini):
    client = gemini_client(gemini, timeout=300)
    faults(bg, gemini, [{"kind": "hang"}])
    with pytest.raises(httpx2.ReadTimeout):  # the SDK lets the transport's errors through
        client.models.generate_content(model=MODEL, contents=HELLO)
    faults(bg, gemini, [{"kind": "reset"}])
    with pytest.raises(httpx2.TransportError):
        client.models.generate_content(model=MODEL, contents=HELLO)
    faults(bg, gemini, [{"kind": "cut_stream", "after_chunks": 2}])
    seen = []
    with pytest.raises(httpx2.TransportError):
        for chunk in client.models.generate_content_stream(model=MODEL, contents=HELLO):
            seen.append(chunk.text)
    assert len(seen) == 2
    faults(bg, gemini, [{"kind": "slow", "extra_ms": 300}])
    patient = gemini_client(gemini)
    started = time.monotonic()
    patient.models.generate_content(model=MODEL, contents=HELLO)
    assert time.monotonic() - started >= 0.28


def test_content_filter_blocks_the_prompt_or_cuts_the_reply(bg, gemini, client):
    faults(bg, gemini, [{"kind": "content_filter", "target": "prompt"}])
    blocked = client.models.generate_content(model=MODEL, contents=HELLO)
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY and not blocked.candidates
    faults(bg, gemini, [{"kind": "content_filter", "target": "output"}])
    cut = client.models.generate_content(model=MODEL, contents=HELLO)
    assert cut.candidates[0].finish_reason == types.FinishReason.SAFETY


# --- embeddings ---------------------------------------------------------------------------------------------------

def norm(values: list[float]) -> float:
    return sum(v * v for v in values) ** 0.5


def test_embed_content_sends_one_batch_with_a_request_per_input(gemini, client):
    reply = client.models.embed_content(model=EMBED, contents=["alpha", "beta"],
                                        config=types.EmbedContentConfig(output_dimensionality=8))
    sent = gemini.recent_requests[-1]
    assert sent["path"] == f"/v1/models/{EMBED}:batchEmbedContents" and sent["operation"] == "embeddings"
    assert sent["body"] == {"requests": [
        {"content": {"parts": [{"text": text}], "role": "user"}, "outputDimensionality": 8, "model": f"models/{EMBED}"}
        for text in ("alpha", "beta")]}
    first, second = (e.values for e in reply.embeddings)
    assert len(first) == len(second) == 8 and first != second
    assert reply.usage_metadata.prompt_token_count > 0
    again = client.models.embed_content(model=EMBED, contents=["alpha"],
                                        config=types.EmbedContentConfig(output_dimensionality=8))
    assert again.embeddings[0].values == first


def test_output_dimensionality_truncates_the_unit_vector_from_the_end(client):
    full = client.models.embed_content(model=EMBED, contents="alpha").embeddings[0].values
    cut = client.models.embed_content(model=EMBED, contents="alpha", config=types.EmbedContentConfig(
        output_dimensionality=16)).embeddings[0].values
    assert len(full) == 768 and abs(norm(full) - 1) < 1e-6
    assert cut == full[:16] and norm(cut) < 0.999  # Google's smaller vectors need normalising by the caller


def test_task_type_and_title_change_the_vector(client):
    def vector(**config):
        return client.models.embed_content(model=EMBED, contents="alpha", config=types.EmbedContentConfig(
            output_dimensionality=8, **config)).embeddings[0].values

    query, document = vector(task_type="RETRIEVAL_QUERY"), vector(task_type="RETRIEVAL_DOCUMENT")
    titled = vector(task_type="RETRIEVAL_DOCUMENT", title="Greek letters")
    assert len({tuple(query), tuple(document), tuple(titled), tuple(vector())}) == 4
    assert vector(task_type="RETRIEVAL_QUERY") == query


async def test_async_embed_content(gemini):
    client = gemini_client(gemini)
    reply = await client.aio.models.embed_content(model=EMBED, contents=["one", "two", "three"])
    assert [len(e.values) for e in reply.embeddings] == [768] * 3


def test_a_multimodal_embedding_model_gets_one_content_from_the_sdk(gemini, client):
    reply = client.models.embed_content(model=MULTIMODAL_EMBED, contents=["alpha", "beta"])
    assert gemini.recent_requests[-1]["body"]["requests"] == [{
        "content": {"parts": [{"text": "alpha"}, {"text": "beta"}], "role": "user"},
        "model": f"models/{MULTIMODAL_EMBED}"}]  # the SDK makes the strings parts of one content
    assert len(reply.embeddings) == 1


def test_embed_content_single_method(gemini, client):
    path = f"/v1beta/models/{EMBED}:embedContent"
    status, content_type, raw = raw_post(gemini, path, {"content": {"parts": [{"text": "alpha"}]},
                                                        "output_dimensionality": 8}, {"x-goog-api-key": KEY})
    assert status == 200 and content_type.startswith("application/json")
    batched = client.models.embed_content(model=EMBED, contents="alpha", config=types.EmbedContentConfig(
        output_dimensionality=8))
    assert json.loads(raw)["embedding"]["values"] == batched.embeddings[0].values
    status, _, raw = raw_post(gemini, path, {"content": {"parts": [{"text": "alpha"}]}, "embedContentConfig": {
        "outputDimensionality": 8}}, {"x-goog-api-key": KEY})
    assert status == 200 and json.loads(raw)["embedding"]["values"] == batched.embeddings[0].values


def _requests(n: int, **extra) -> dict:
    return {"requests": [{"model": f"models/{EMBED}", "content": {"parts": [{"text": "hi"}]}, **extra}] * n}


@pytest.mark.parametrize("method, body, expected", [
    ("batchEmbedContents", {"requests": []}, "* BatchEmbedContentsRequest.requests: requests is not specified"),
    ("batchEmbedContents", _requests(101), "* BatchEmbedContentsRequest.requests: at most 100 requests can be in "
                                           "one batch"),
    ("batchEmbedContents", {"requests": [{"model": "models/other", "content": {"parts": [{"text": "hi"}]}}]},
     "requests[0].model: the model of each request must match the batch's model"),
    ("batchEmbedContents", {"requests": [{"content": {"parts": [{"text": "hi"}]}}]},
     "requests[0].model: model is not specified"),
    ("batchEmbedContents", _requests(1, dimensions=8),
     "Invalid JSON payload received. Unknown name \"dimensions\" at 'requests[0]': Cannot find field."),
    ("batchEmbedContents", _requests(1, taskType="SEARCH"),
     "Invalid value at 'requests[0].task_type' (type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType)"),
    ("batchEmbedContents", _requests(1, outputDimensionality="eight"),
     "Invalid value at 'requests[0].output_dimensionality' (TYPE_INT32)"),
    ("batchEmbedContents", _requests(1, outputDimensionality=0),
     "requests[0].output_dimensionality: output_dimensionality must be between 1 and 768"),
    ("batchEmbedContents", {"requests": [{"model": f"models/{EMBED}", "content": {"parts": []}}]},
     "requests[0].content.parts: contents.parts must not be empty."),
    ("embedContent", {}, "* EmbedContentRequest.content: content is not specified"),
    ("embedContent", {"content": {"parts": [{}]}}, "content.parts[0].data: required oneof field 'data'"),
])
def test_invalid_embedding_requests_are_refused_like_google(gemini, method, body, expected):
    status, _, raw = raw_post(gemini, f"/v1beta/models/{EMBED}:{method}", body, {"x-goog-api-key": KEY})
    error = json.loads(raw)["error"]
    assert status == 400 and error["status"] == "INVALID_ARGUMENT" and expected in error["message"]


def test_embedding_auth_model_and_faults(bg, gemini, client):
    with pytest.raises(errors.ClientError) as caught:
        gemini_client(gemini, key="wrong").models.embed_content(model=EMBED, contents="hi")
    assert caught.value.code == 400 and caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    with pytest.raises(errors.ClientError) as caught:
        client.models.embed_content(model="text-embedding-nope", contents="hi")
    assert caught.value.code == 404 and "models/text-embedding-nope is not found" in caught.value.message
    faults(bg, gemini, [{"status": 429, "match": "embeddings", "retry_after": 2}])
    assert client.models.generate_content(model=MODEL, contents=HELLO).text  # chat is not matched
    with pytest.raises(errors.ClientError) as caught:
        client.models.embed_content(model=EMBED, contents="hi")
    assert caught.value.code == 429 and caught.value.details["error"]["details"][0]["retryDelay"] == "2s"
    faults(bg, gemini, [{"kind": "reset", "match": "embeddings"}])
    with pytest.raises(httpx2.TransportError):
        client.models.embed_content(model=EMBED, contents="hi")


def test_vertex_serves_no_gemini_embedding_routes(vertex):
    path = f"/v1/projects/proj-1/locations/us-central1/publishers/google/models/{MODEL}:batchEmbedContents"
    status, content_type, _ = raw_post(vertex, path, _requests(1), {"authorization": f"Bearer {TOKEN}"})
    assert status == 404 and content_type.startswith("text/html")


# --- Vertex AI ----------------------------------------------------------------------------------------------------

def test_vertex_generates_and_streams(vertex):
    client = vertex_client(vertex)
    response = client.models.generate_content(model=MODEL, contents=HELLO)
    assert response.text and response.create_time is not None
    assert response.usage_metadata.traffic_type == types.TrafficType.ON_DEMAND
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=HELLO))
    assert "".join(c.text for c in chunks) == response.text
    assert [c.usage_metadata is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]


async def test_vertex_async_and_function_calling(vertex):
    client = vertex_client(vertex)
    response = await client.aio.models.generate_content(
        model=MODEL, contents="What is the weather in Lima?",
        config=types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])]))
    assert response.function_calls[0].name == "get_weather"
    chunks = [c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents=HELLO)]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_vertex_auth_project_and_errors(bg, vertex):
    expired, elsewhere, client = (vertex_client(vertex, token="expired"),
                                  vertex_client(vertex, project="someone-else"), vertex_client(vertex))
    with pytest.raises(errors.ClientError) as caught:
        expired.models.generate_content(model=MODEL, contents=HELLO)
    assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
    with pytest.raises(errors.ClientError) as caught:
        elsewhere.models.generate_content(model=MODEL, contents=HELLO)
    assert caught.value.code == 403 and "aiplatform.endpoints.predict" in caught.value.message
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-nope", contents=HELLO)
    assert caught.value.code == 404 and "Publisher Model" in caught.value.message
    faults(bg, vertex, [{"status": 429, "at": [1]}])
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=HELLO)
    assert caught.value.code == 429 and "error-code-429" in caught.value.message
    path = f"/v1/projects/proj-1/locations/us-central1/publishers/google/models/{MODEL}:generateContent"
    status, _, raw = raw_post(vertex, path, {"contents": [{"parts": [{"text": "hi"}]}]})
    error = json.loads(raw)["error"]
    assert status == 401 and error["details"][0]["reason"] == "CREDENTIALS_MISSING"


def test_options_are_checked():
    from skyrelay.emulator import EmulatedCloud, EmulatorConfigError

    with pytest.raises(EmulatorConfigError, match="unknown key"):
        EmulatedCloud(CloudSpec(name="x", protocol="gemini", options={"project": "p"}))
    with pytest.raises(EmulatorConfigError, match="tokens_per_event"):
        EmulatedCloud(CloudSpec(name="x", protocol="vertex", options={"tokens_per_event": 0}))

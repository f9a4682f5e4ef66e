"""The official anthropic SDK against the running gateway, in front of emulated OpenAI clouds: an Anthropic user
reaches any model group without changing code."""

from __future__ import annotations

import anthropic
import httpx2 as httpx
import pytest

HELLO = [{"role": "user", "content": "hello"}]
WEATHER_TOOL = {
    "name": "get_weather", "description": "Get the current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def client(stack, **kw) -> anthropic.Anthropic:
    kw.setdefault("api_key", stack.key)
    return anthropic.Anthropic(base_url=stack.origin, max_retries=0, timeout=20, **kw)


def async_client(stack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)


def one_group(*names: str):
    from .harness import openai_deployment

    def groups(clouds):
        return {"chat": {"max_attempts": 3, "deployments": [openai_deployment(n, clouds[n]) for n in names]}}
    return groups


# --- happy paths ---------------------------------------------------------------------------------------------------


def test_create_sync(stack):
    raw = client(stack).messages.with_raw_response.create(model="chat", max_tokens=100, messages=HELLO)
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.model == "chat"
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["request-id"] == raw.headers["x-request-id"]  # one id: the ledger's record carries it
    assert raw.headers["x-skyrelay-model-group"] == "chat"


def test_max_tokens_and_system(stack):
    message = client(stack).messages.create(model="chat", max_tokens=5, system="Be brief.", messages=HELLO,
                                            stop_sequences=["zzz"], extra_body={"temperature": 0.2, "top_p": 0.9})
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5


async def test_create_async(stack):
    async with async_client(stack) as c:
        message = await c.messages.create(model="chat", max_tokens=100, messages=HELLO)
    assert message.content[0].text and message.stop_reason == "end_turn"


def test_stream_helper_sync(stack):
    with client(stack).messages.stream(model="chat", max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_create_stream_true_events(stack):
    events = list(client(stack).messages.create(model="chat", max_tokens=100, messages=HELLO, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert events[0].message.model == "chat"
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens > 0


async def test_stream_helper_async(stack):
    async with async_client(stack) as c:
        async with c.messages.stream(model="chat", max_tokens=100, messages=HELLO) as stream:
            text = "".join([t async for t in stream.text_stream])
            final = await stream.get_final_message()
    assert text and final.content[0].text == text


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(stack, stream):
    c = client(stack)
    args = dict(model="chat", max_tokens=200, tools=[WEATHER_TOOL], messages=WEATHER_QUESTION)
    if stream:
        with c.messages.stream(**args) as s:
            first = s.get_final_message()
    else:
        first = c.messages.create(**args)
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict) and isinstance(call.input["city"], str)
    # The answer goes back as Anthropic users write it; the emulated OpenAI cloud checks the tool message
    # answers the assistant's call (an unanswered or mismatched call is a 400 there).
    follow_up = c.messages.create(model="chat", max_tokens=100, tools=[WEATHER_TOOL], messages=[
        *WEATHER_QUESTION, first.to_param(),
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 degrees"}]},
    ])
    assert follow_up.stop_reason == "end_turn" and follow_up.content[0].text


def test_forced_tool_choice(stack):
    message = client(stack).messages.create(
        model="chat", max_tokens=200, messages=HELLO, tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"})
    assert [b.type for b in message.content] == ["tool_use"] and message.stop_reason == "tool_use"


def test_image(stack):
    message = client(stack).messages.create(model="chat", max_tokens=50, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is in this image?"}]}])
    assert message.content[0].text


def test_count_tokens(stack):
    c = client(stack)
    small = c.messages.count_tokens(model="chat", messages=HELLO)
    large = c.messages.count_tokens(model="chat", messages=HELLO, system="You are a helpful assistant. " * 20,
                                    tools=[WEATHER_TOOL])
    assert 0 < small.input_tokens < large.input_tokens


def test_x_api_key_header_is_accepted(stack):
    resp = httpx.post(f"{stack.origin}/v1/messages", timeout=10, headers={
        "x-api-key": stack.key, "anthropic-version": "2023-06-01"},
        json={"model": "chat", "max_tokens": 20, "messages": HELLO})
    assert resp.status_code == 200 and resp.json()["type"] == "message"


# --- errors --------------------------------------------------------------------------------------------------------


def test_missing_max_tokens_is_400(stack):
    with pytest.raises(anthropic.BadRequestError) as exc:
        client(stack).messages.create(model="chat", messages=HELLO, max_tokens=anthropic.NOT_GIVEN)
    assert exc.value.status_code == 400
    assert exc.value.body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert exc.value.request_id == exc.value.body["request_id"] == exc.value.response.headers["x-request-id"]


def test_unsupported_block_is_400(stack):
    with pytest.raises(anthropic.BadRequestError, match="document"):
        client(stack).messages.create(model="chat", max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hi"}}]}])


def test_bad_key_is_authentication_error(stack):
    with pytest.raises(anthropic.AuthenticationError) as exc:
        client(stack, api_key="sk-wrong").messages.create(model="chat", max_tokens=10, messages=HELLO)
    assert exc.value.body["error"]["type"] == "authentication_error"
    # Raised before the route's handler runs, it still carries Anthropic's request id, header and body alike.
    assert exc.value.request_id and exc.value.request_id == exc.value.body["request_id"]
    assert exc.value.request_id == exc.value.response.headers["x-request-id"]


def test_unknown_model_is_not_found(stack):
    with pytest.raises(anthropic.NotFoundError) as exc:
        client(stack).messages.create(model="claude-nope", max_tokens=10, messages=HELLO)
    assert exc.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        client(stack).messages.count_tokens(model="claude-nope", messages=HELLO)


def test_upstream_rejection_reaches_the_client_as_400(stack):
    """top_k goes to the upstream as is; an OpenAI cloud refuses it, and the client hears why."""
    with pytest.raises(anthropic.BadRequestError, match="top_k"):
        client(stack).messages.create(model="chat", max_tokens=10, messages=HELLO, extra_body={"top_k": 5})


def test_every_cloud_rate_limited_is_rate_limit_error(make_stack):
    s = make_stack(cloud_specs=[{"name": "cloud-a"}], groups=one_group("cloud-a"))
    s.set_faults("cloud-a", [{"status": 429, "rate": 1.0, "retry_after": 7}])
    with pytest.raises(anthropic.RateLimitError) as exc:
        client(s).messages.create(model="chat", max_tokens=10, messages=HELLO)
    assert exc.value.body["error"]["type"] == "rate_limit_error"
    assert exc.value.response.headers["retry-after"] == "7"


def test_every_cloud_down_is_overloaded(make_stack):
    s = make_stack(cloud_specs=[{"name": "cloud-a"}], groups=one_group("cloud-a"))
    s.set_faults("cloud-a", [{"status": 500, "rate": 1.0}])
    with pytest.raises(anthropic.InternalServerError) as exc:
        client(s).messages.create(model="chat", max_tokens=10, messages=HELLO, stream=True)
    assert exc.value.status_code == 503 and exc.value.body["error"]["type"] == "overloaded_error"


def test_stream_cut_mid_way_raises_in_the_sdk(make_stack):
    s = make_stack(cloud_specs=[{"name": "cloud-a", "output_tokens": 40}], groups=one_group("cloud-a"))
    s.set_faults("cloud-a", [{"kind": "cut_stream", "after_chunks": 3, "rate": 1.0}])
    received = []
    with pytest.raises(anthropic.APIStatusError) as exc:
        with client(s).messages.stream(model="chat", max_tokens=100, messages=HELLO) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert received, "the first deltas reached the client before the cut"
    assert exc.value.body["error"]["type"] == "api_error" and "cloud-a" in exc.value.body["error"]["message"]

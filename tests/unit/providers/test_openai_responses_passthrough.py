"""The Responses pass-through, table by table: the body each deployment receives, and what the gateway reads from
the cloud's answer and events (payloads in the shapes of OpenAI's API reference)."""

from __future__ import annotations

import orjson
import pytest

from skyrelay import errors
from skyrelay.canonical import ResponsesNative
from skyrelay.providers.openai_responses import ResponsesEvents, native_body, whole_response

HISTORY = [{"type": "message", "role": "user", "content": "My name is Ada."},
           {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello Ada."}]}]


@pytest.mark.parametrize("stream, deployment, expected", [
    (False, "producer", {"model": "gpt-4o", "input": "And?", "previous_response_id": "resp_1", "store": True}),
    (True, "producer", {"model": "gpt-4o", "input": "And?", "previous_response_id": "resp_1", "store": True,
                        "stream": True}),
    (False, "other", {"model": "gpt-4o", "store": True, "input": [
        *HISTORY, {"type": "message", "role": "user", "content": "And?"}]}),
])
def test_the_body_each_deployment_receives(stream, deployment, expected):
    native = ResponsesNative({"model": "chat", "input": "And?", "previous_response_id": "resp_1", "store": True,
                              "stream": not stream}, previous_deployment="producer", history=HISTORY)
    assert native_body(native, "gpt-4o", stream, deployment) == expected
    assert native.body["model"] == "chat"  # the client's own body is left as it came, for another attempt


def event(kind: str, **payload) -> bytes:
    return orjson.dumps({"type": kind, **payload})


COMPLETED = {"id": "resp_1", "output": [{"type": "message"}], "usage": {
    "input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 30,
    "output_tokens_details": {"reasoning_tokens": 12}}}


def test_events_before_the_first_output_ride_with_it_and_usage_comes_with_the_end():
    decoder = ResponsesEvents("d")
    assert decoder.decode("response.created", event("response.created", response={})) == ()
    assert decoder.decode("response.in_progress", event("response.in_progress", response={})) == ()
    (first,) = decoder.decode(None, event("response.output_text.delta", delta="Hel"))
    assert first.content == "Hel" and first.responses.count(b"\n\n") == 3
    assert first.responses.startswith(b"event: response.created\ndata: ")
    (done,) = decoder.decode(None, event("response.output_text.done", text="Hel"))
    assert done.content is None and done.responses.count(b"\n\n") == 1
    (last,) = decoder.decode(None, event("response.completed", response=COMPLETED))
    assert decoder.done and last.responses_data == COMPLETED and last.finish_reason == "stop"
    assert (last.usage.input_tokens, last.usage.cached_tokens, last.usage.output_tokens) == (1200, 1024, 30)
    assert decoder.finish() == ()


@pytest.mark.parametrize("payload, error", [
    (event("error", code="rate_limit_exceeded", message="slow down"), errors.UpstreamRateLimited),
    (event("response.failed", response={"error": {"code": "server_error", "message": "boom"}}),
     errors.UpstreamUnavailable),
    (event("response.failed", response={"error": {"code": "invalid_prompt", "message": "flagged"}}),
     errors.UpstreamClientError),
    (event("error", code="image_content_policy_violation", message="no"), errors.UpstreamClientError),
])
def test_a_failure_event_is_an_upstream_error(payload, error):
    """The request's own faults (invalid_prompt, an image's) are the client's: not charged to the deployment."""
    with pytest.raises(error) as caught:
        ResponsesEvents("d").decode(None, payload)
    assert caught.value.cools_down is (error is not errors.UpstreamClientError)


def test_a_stream_without_its_end_is_cut_short():
    decoder = ResponsesEvents("d")
    decoder.decode(None, event("response.output_text.delta", delta="x"))
    with pytest.raises(errors.UpstreamProtocolError, match="before response.completed"):
        decoder.finish()


def test_a_whole_response_is_forwarded_as_sent_with_its_usage_and_finish_read():
    body = {**COMPLETED, "output": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]}
    raw = orjson.dumps(body)
    resp = whole_response(raw, body, "d")
    assert resp.responses is raw and resp.responses_data is body
    assert resp.choices[0].finish_reason == "tool_calls" and resp.usage.cached_tokens == 1024
    incomplete = {**COMPLETED, "incomplete_details": {"reason": "max_output_tokens"}}
    assert whole_response(b"{}", incomplete, "d").choices[0].finish_reason == "length"
    with pytest.raises(errors.UpstreamProtocolError):
        whole_response(b"[]", [], "d")

"""What an OpenAI-compatible upstream says of its reasoning: `usage.completion_tokens_details.reasoning_tokens`
(OpenAI's o-series and gpt-5) and the thoughts a reasoning server shows beside the answer (vLLM, SGLang, DeepSeek:
`reasoning_content`; newer vLLM: `reasoning`), read only for clients of another protocol."""

from __future__ import annotations

import orjson
import pytest

from skyrelay.providers.openai import ChunkEvents, parse_response, parse_usage, read_thoughts


@pytest.mark.parametrize("usage, reasoning", [
    ({"prompt_tokens": 3, "completion_tokens": 40, "completion_tokens_details": {"reasoning_tokens": 32}}, 32),
    ({"prompt_tokens": 3, "completion_tokens": 40}, 0),
    ({"prompt_tokens": 3, "completion_tokens": 40, "completion_tokens_details": None}, 0),
    ({"prompt_tokens": 3, "completion_tokens": 40, "completion_tokens_details": [1]}, 0),  # not OpenAI's: ignored
])
def test_usage_reads_reasoning_tokens(usage, reasoning):
    parsed = parse_usage(usage)
    assert parsed.reasoning_tokens == reasoning and parsed.output_tokens == 40


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_thoughts_of_a_reasoning_server_become_a_thought(field):
    data = {"id": "c", "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "Hi", field: "Let me think."}}]}
    resp = parse_response(data, "d")
    assert resp.choices[0].thinking_blocks is None  # not read on the chat path: the body goes out as it came
    read_thoughts(resp, data)
    assert resp.choices[0].thinking_blocks == [{"type": "thought", "thinking": "Let me think."}]


def test_no_thoughts_no_blocks():
    data = {"id": "c", "choices": [{"message": {"role": "assistant", "content": "Hi", "reasoning_content": None}}]}
    resp = parse_response(data, "d")
    read_thoughts(resp, data)
    assert resp.choices[0].thinking_blocks is None


def chunk(delta: dict) -> bytes:
    return orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_stream_reasoning_deltas_are_read_only_when_asked(field):
    payload = chunk({field: "Hmm."})
    (read,) = ChunkEvents("d", thoughts=True).decode(None, payload)
    assert read.reasoning == "Hmm." and read.content is None and read.has_output()
    (unread,) = ChunkEvents("d").decode(None, payload)
    assert unread.reasoning is None and unread.raw == payload


def test_chat_stream_renders_nothing_for_a_chunk_of_thoughts_alone():
    from skyrelay.canonical import ChatChunk
    from skyrelay.protocols.openai import render_chunk
    assert render_chunk(ChatChunk(id="c", model="m", created=1, reasoning="Hmm.")) == b""
    assert render_chunk(ChatChunk(id="c", model="m", created=1, thinking_block={"type": "thinking"})) == b""
    with_text = render_chunk(ChatChunk(id="c", model="m", created=1, reasoning="Hmm.", content="Hi"))
    assert orjson.loads(with_text[6:])["choices"][0]["delta"] == {"content": "Hi"}


@pytest.mark.parametrize("error, charged, status", [
    ({"message": "boom", "type": "server_error"}, True, 503),
    ({"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded",
      "param": "messages"}, False, 400),
    ({"object": "error", "message": "max_tokens too large", "type": "BadRequestError", "param": None, "code": 400},
     False, 400),  # vLLM's
])
def test_an_error_chunk_about_the_request_is_the_clients_and_not_charged_to_the_deployment(error, charged, status):
    from skyrelay import errors
    from skyrelay.providers.openai import parse_chunk

    with pytest.raises(errors.UpstreamError) as caught:
        parse_chunk(orjson.dumps({"error": error}), "vllm-a")
    assert caught.value.cools_down is charged and caught.value.status == status
    if not charged:  # the cloud's own words, and its code when it is a name
        assert caught.value.message == error["message"]
        assert caught.value.code == (error["code"] if isinstance(error.get("code"), str) else None)


def test_a_streamed_refusal_is_the_chunks_text():
    """OpenAI streams a refusal in `delta.refusal`, not `delta.content`: an Anthropic client served by an OpenAI
    deployment got an empty message, where the whole answer's refusal was rendered."""
    from skyrelay.providers.openai import parse_chunk

    chunk = parse_chunk(orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                      "choices": [{"index": 0, "delta": {"refusal": "I can't help with that."},
                                                   "finish_reason": None}]}), "d")
    assert chunk.content == "I can't help with that." and chunk.has_output()


def test_an_answers_usage_names_the_reasoning_tokens_inside_completion_tokens():
    """A cloud that counts its thinking apart (Gemini's thoughtsTokenCount) has it shown as OpenAI shows it."""
    from skyrelay.canonical import Usage
    from skyrelay.protocols.openai import render_usage
    from tests.support.openai_schema import validate

    thinking = render_usage(Usage(input_tokens=12, output_tokens=40, reasoning_tokens=28))
    assert thinking["completion_tokens_details"] == {"reasoning_tokens": 28} and thinking["completion_tokens"] == 40
    validate("CompletionUsage", thinking)
    assert "completion_tokens_details" not in render_usage(Usage(input_tokens=12, output_tokens=40))

"""The Responses API request as the canonical core sees it: items become chat messages, flat tools nested ones,
text.format a response_format; what cannot be served is refused by name, what cannot change the answer is named."""

from __future__ import annotations

import orjson
import pytest

from skyrelay import errors
from skyrelay.canonical import ChatResponse, Choice, ToolCall, Usage
from skyrelay.protocols.responses import parse_responses, render_response

IMAGE = "data:image/png;base64,iVBORw0KGgo="


def parse(**body):
    return parse_responses(orjson.dumps({"model": "chat", "input": "hi", **body}))


def test_a_conversation_of_items_becomes_chat_messages():
    req, _, dropped = parse(instructions="Be brief.", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "Weather here?"},
                                     {"type": "input_image", "image_url": IMAGE, "detail": "low"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Lisbon"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "21C"},
        {"type": "function_call_output", "call_id": "c2", "output": "noon"},
    ])
    assert req.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                     {"type": "image_url", "image_url": {"url": IMAGE, "detail": "low"}}]},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "21C"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
    ]
    assert dropped == () and req.raw is None  # never the OpenAI pass-through: the body is not a chat body


def test_settings_map_onto_the_canonical_request():
    req, _, dropped = parse(
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        tool_choice={"type": "function", "name": "f"}, parallel_tool_calls=False, max_output_tokens=64,
        temperature=0.2, top_p=0.9, reasoning={"effort": "low", "summary": "auto"}, prompt_cache_key="k",
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        store=True, metadata={"a": "b"}, user="u1", stream=True)
    assert req.tools == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                                           "strict": True}}]
    assert req.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert (req.max_tokens, req.temperature, req.top_p, req.stream) == (64, 0.2, 0.9, True)
    assert req.response_format == {"type": "json_schema", "json_schema": {
        "name": "out", "schema": {"type": "object"}, "strict": True}}
    assert req.extra == {"parallel_tool_calls": False, "prompt_cache_key": "k", "user": "u1",
                         "metadata": {"a": "b"}, "reasoning_effort": "low"}
    assert dropped == ()  # stored by the gateway: store is honoured
    assert req.responses.anthropic_only == ("reasoning.summary",)  # shown where the cloud shows its thoughts


@pytest.mark.parametrize("body, param", [
    ({"previous_response_id": 1}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"background": True}, "background"),
    ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].image_url"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
    ({"input": [{"type": "computer_call"}]}, "input[0].type"),
    ({"input": None}, "input"),
    ({"top_logprobs": 3}, "top_logprobs"),
])
def test_what_cannot_be_served_names_its_parameter(body, param):
    with pytest.raises(errors.InvalidRequest) as raised:
        parse(**body)
    assert raised.value.param == param and raised.value.status == 400


def test_the_answer_is_a_response_with_message_and_function_call_items():
    resp = ChatResponse(id="x", model="upstream", created=5, usage=Usage(10, 4, 3), choices=[Choice(
        content="Checking.", tool_calls=[ToolCall("call_1", "get_weather", '{"city":"Lisbon"}')],
        finish_reason="tool_calls")])
    _, data, _ = parse(tools=[{"type": "function", "name": "get_weather"}])
    body = orjson.loads(render_response(resp, data))
    assert body["id"].startswith("resp_") and body["status"] == "completed" and body["model"] == "chat"
    assert [item["type"] for item in body["output"]] == ["message", "function_call"]
    assert body["output"][1]["call_id"] == "call_1" and body["output"][1]["arguments"] == '{"city":"Lisbon"}'
    assert body["usage"]["input_tokens_details"]["cached_tokens"] == 3 and body["usage"]["total_tokens"] == 14
    assert body["tools"] == [{"type": "function", "name": "get_weather", "strict": None, "parameters": None}]


def test_sealed_reasoning_items_become_the_thinking_of_the_assistant_turn_they_precede():
    from skyrelay.protocols.responses.reasoning import seal
    thought = {"type": "thinking", "thinking": "hmm", "signature": "c2ln"}
    items = [{"role": "user", "content": "weather?"},
             {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": seal([thought])},
             {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
             {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAAA-openai"}]
    req, _, dropped = parse(instructions="Be brief.", input=items)
    assert req.thinking == {2: [thought]}  # after the system message and the user's
    assert req.messages[2]["tool_calls"][0]["id"] == "c1"
    assert dropped == ("input.reasoning",)  # OpenAI's own encrypted_content: not ours to hand back
    assert req.responses.anthropic_only == ("input.reasoning",)


def test_a_reasoning_item_becomes_an_output_item_sealed_when_asked():
    thought = {"type": "thinking", "thinking": "hmm", "signature": "c2ln"}
    answer = ChatResponse(id="x", model="m", created=1, usage=Usage(1, 1), choices=[
        Choice(content="hi", thinking_blocks=[thought])])
    _, data, _ = parse(reasoning={"effort": "low", "summary": "auto"}, store=False)
    output = orjson.loads(render_response(answer, data))["output"]
    assert [i["type"] for i in output] == ["reasoning", "message"]
    assert output[0]["summary"] == [{"type": "summary_text", "text": "hmm"}]
    assert output[0]["encrypted_content"].startswith("sky1.")
    _, data, _ = parse(reasoning={"effort": "low"})
    reasoning = orjson.loads(render_response(answer, data))["output"][0]
    assert reasoning["summary"] == [] and reasoning["encrypted_content"] is None


def test_a_converse_signed_thought_is_sealed_and_comes_back_as_the_same_thought():
    from skyrelay.protocols.responses.reasoning import Shown, item, unseal
    from skyrelay.providers.bedrock.reasoning import handed_back, sealed_signature
    signature = sealed_signature("YmVkcm9jaw", "openai.gpt-oss-120b-1:0")
    streamed = {"type": "thought", "thinking": "", "signature": signature}  # a stream's closing block: no text
    _, data, _ = parse(store=False)
    sealed = item("rs_1", [streamed], Shown(data), "hmm")["encrypted_content"]
    thought = {"type": "thought", "thinking": "hmm", "signature": signature}
    assert unseal(sealed) == [thought]
    assert handed_back(thought, "openai.gpt-oss-120b-1:0") == {
        "reasoningContent": {"reasoningText": {"text": "hmm", "signature": "YmVkcm9jaw"}}}
    unsigned = {"type": "thought", "thinking": "hmm"}  # DeepSeek-R1's, Gemini's: no cloud takes them back
    assert item("rs_2", [unsigned], Shown(data))["encrypted_content"] is None
    req, _, dropped = parse(input=[{"role": "user", "content": "hi"},
                                   {"type": "reasoning", "summary": [], "encrypted_content": sealed},
                                   {"role": "assistant", "content": "hello"}, {"role": "user", "content": "again"}])
    assert req.thinking == {1: [thought]} and dropped == ()

"""tests/support/openai_schema.py itself: it must reject what OpenAI would not send, and accept nulls it marks."""

from __future__ import annotations

import pytest

from tests.support.openai_schema import SCHEMA_NAMES, validate, validator

CHUNK = {
    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
    "choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}],
    "usage": None,
}


def test_every_named_schema_loads():
    for name in SCHEMA_NAMES:
        assert validator(name) is validator(name)  # built once, cached


def test_nullable_fields_admit_null():
    validate("CreateChatCompletionStreamResponse", CHUNK)  # finish_reason and usage are `nullable: true`


@pytest.mark.parametrize("path, value, where", [
    (("choices", 0, "finish_reason"), "done", "$.choices[0].finish_reason"),
    (("object",), "chat.completion", "$.object"),
    (("choices", 0, "index"), "0", "$.choices[0].index"),
])
def test_mismatches_name_their_path(path, value, where):
    import copy

    chunk = copy.deepcopy(CHUNK)
    node = chunk
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(AssertionError) as info:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert where in str(info.value)


def test_error_response_requires_all_four_fields():
    validate("ErrorResponse", {"error": {"message": "m", "type": "t", "param": None, "code": None}})
    with pytest.raises(AssertionError, match="param"):
        validate("ErrorResponse", {"error": {"message": "m", "type": "t", "code": None}})


def test_unknown_schema_name():
    with pytest.raises(KeyError):
        validate("NoSuchSchema", {})

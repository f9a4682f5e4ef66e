"""A corpus of hostile bodies, sent through both inbound protocols to every provider kind: deep nesting where real
clients nest (metadata, tool schemas, embeddings input, tool_use input, JSON inside tool-call strings), numbers
JSON cannot hold, literals it does not have, broken UTF-8 and lone surrogates in every string, a wrong type in
every field, bodies that are not objects, and bodies over the size limit.

Every answer is a 4xx in the route's own error format, and after the whole run no deployment's health has been
charged: it used to take three deep-nested requests (2 KB) to open a model group's breakers for every client."""

from __future__ import annotations

import copy
from typing import Any, Iterator

import orjson
import pytest

from skyrelay.protocols.fields import MAX_NESTING

from .hostile import MAX_BODY_BYTES, assert_no_deployment_charged, chat_models, embed_models
from .test_malformed_inputs import ANTHROPIC_REQUEST, OPENAI_REQUEST, paths

EMBED_REQUEST = {"model": "embed", "input": ["one", "two"], "encoding_format": "float"}
CHAT, EMBED, MESSAGES, COUNT = "/v1/chat/completions", "/v1/embeddings", "/v1/messages", "/v1/messages/count_tokens"
DEPTHS = (MAX_NESTING + 1, 255, 300, 1000, 5000)
HOLE = "\x1e\x1ehole\x1e\x1e"  # a string no request holds: where raw bytes go in once the body is encoded

# Where clients nest deeply, per route: (path, whether the value there is an object, an array, or JSON text).
DEEP_PLACES = {
    CHAT: [(("metadata", "k"), "object"), (("tools", 0, "function", "parameters", "properties", "city"), "object"),
           (("response_format",), "json_schema"), (("messages", 2, "tool_calls", 0, "function", "arguments"), "text"),
           (("messages", 3, "content"), "text")],
    EMBED: [(("input",), "array"), (("input", 1), "array")],
    MESSAGES: [(("metadata", "k"), "object"), (("tools", 0, "input_schema", "properties", "city"), "object"),
               (("messages", 1, "content", 0, "input"), "object"),
               (("messages", 2, "content", 0, "content"), "text")],
}
DEEP_PLACES[COUNT] = DEEP_PLACES[MESSAGES]
NUMBER_LITERALS = [b"1e400", b"-1e400", b"1" + b"0" * 400, b"-0", b"-0.0", b"1e-400", b"NaN", b"Infinity",
                   b"-Infinity", b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809"]
NUMBER_FIELDS = {CHAT: ["max_tokens", "temperature", "top_p", "n", "seed", "presence_penalty"],
                 MESSAGES: ["max_tokens", "temperature", "top_p", "top_k"], EMBED: ["dimensions"]}
BAD_STRINGS = [b'"\xff"', b'"a\xc3("', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\\ud800"', b'"x\\udc00y"',
               b'"\\ud800\\u0041"']
WRONG_TYPES = [None, True, 0, -1, 2.5, "", "s", [], [None], {}, {"k": "v"}]
NOT_OBJECTS = [b"", b" ", b" \r\n\t ", b"1", b"-0", b'"text"', b"null", b"true", b"[]", b"[{}]",
               b'[{"model": "chat"}]', b"{", b"{}", b'{"model": "chat"', b"\xef\xbb\xbf{}", b"{}{}"]
SAMPLES = {CHAT: OPENAI_REQUEST, EMBED: EMBED_REQUEST, MESSAGES: ANTHROPIC_REQUEST, COUNT: ANTHROPIC_REQUEST}


def with_hole(sample: dict, path: tuple, model: str) -> bytes:
    """The sample, encoded, with HOLE at `path` (missing objects on the way are added)."""
    body = copy.deepcopy(sample)
    body["model"] = model
    parent: Any = body
    for key in path[:-1]:
        parent = parent.setdefault(key, {}) if isinstance(parent, dict) else parent[key]
    parent[path[-1]] = HOLE
    return orjson.dumps(body)


def fill(body: bytes, raw: bytes) -> bytes:
    return body.replace(orjson.dumps(HOLE), raw)


def deep(depth: int, kind: str) -> bytes:
    """Raw JSON nested `depth` levels below the place it goes (orjson will not write it: that is the point)."""
    if kind == "array":
        return b"[" * depth + b"1" + b"]" * depth
    value = b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "json_schema":
        return b'{"type":"json_schema","json_schema":{"name":"x","schema":' + value + b"}}"
    if kind == "text":
        return orjson.dumps(value.decode())
    return value


def models(path: str) -> list[str]:
    """Each deployment alone: a body reaches every provider kind's request builder, not one of them by chance."""
    if path == EMBED:
        return embed_models()
    if path == COUNT:
        return chat_models()[:1]  # answered by the gateway itself
    return chat_models()


def deep_bodies() -> Iterator[tuple[str, bytes]]:
    for path, places in DEEP_PLACES.items():
        for place, kind in places:
            for model in models(path):
                body = with_hole(SAMPLES[path], place, model)
                for depth in DEPTHS:
                    yield path, kind, fill(body, deep(depth, kind))


def test_deep_nesting_is_a_400_everywhere_and_charges_no_deployment(hostile):
    stack, poster = hostile
    for path, kind, body in deep_bodies():
        resp = poster.post(path, body)
        # JSON text inside a string is the body's own business only where a provider decodes it (to build a
        # cloud's tool-call object); elsewhere it is passed on as the string it is.
        if kind != "text":
            assert resp.status_code == 400, (path, body[:200], resp.text[:300])
    assert_no_deployment_charged(stack)


def test_nesting_within_the_bound_is_served_or_refused_cleanly(hostile):
    # 100 levels below the deepest place still leaves the body within the bound: it reaches every provider.
    stack, poster = hostile
    for path, places in DEEP_PLACES.items():
        for place, kind in places:
            for model in models(path):
                poster.post(path, fill(with_hole(SAMPLES[path], place, model), deep(MAX_NESTING - 10 - len(place),
                                                                                      kind)))
    assert_no_deployment_charged(stack)


def test_numbers_json_cannot_hold_and_literals_it_lacks(hostile):
    stack, poster = hostile
    for path, names in NUMBER_FIELDS.items():
        for name in names:
            for model in models(path):
                body = with_hole(SAMPLES[path], (name,), model)
                for literal in NUMBER_LITERALS:
                    poster.post(path, fill(body, literal))
        for literal in NUMBER_LITERALS:  # inside values passed through to the cloud as they are
            poster.post(path, fill(with_hole(SAMPLES[path], ("metadata", "n"), models(path)[0]), literal))
    assert_no_deployment_charged(stack)


def test_broken_utf8_and_lone_surrogates_in_every_string(hostile):
    stack, poster = hostile
    for path, sample in SAMPLES.items():
        places = [p for p in paths(sample) if isinstance(_at(sample, p), str)]
        assert len(places) > 1 or path == EMBED
        for place in places:
            body = with_hole(sample, place, models(path)[0])
            for raw in BAD_STRINGS:
                resp = poster.post(path, fill(body, raw))
                assert resp.status_code == 400, (path, place, raw, resp.text[:300])
        for raw in BAD_STRINGS:  # as an object key, too
            poster.post(path, orjson.dumps(sample).replace(b'"model"', raw + b':1,"model"', 1))
    assert_no_deployment_charged(stack)


def test_a_wrong_type_in_every_field(hostile):
    stack, poster = hostile
    for path, sample in SAMPLES.items():
        targets = models(path)
        for i, place in enumerate(p for p in paths(sample) if p != ("model",)):
            body = with_hole(sample, place, targets[i % len(targets)])  # each field reaches some provider kind
            for value in WRONG_TYPES:
                poster.post(path, fill(body, orjson.dumps(value)))
    assert_no_deployment_charged(stack)


@pytest.mark.parametrize("path", [CHAT, EMBED, MESSAGES, COUNT])
def test_bodies_that_are_not_one_json_object(hostile, path):
    stack, poster = hostile
    for body in NOT_OBJECTS:
        resp = poster.post(path, body)
        assert resp.status_code == 400, (body, resp.text)
    assert_no_deployment_charged(stack)


@pytest.mark.parametrize("path", [CHAT, EMBED, MESSAGES, COUNT])
def test_a_body_over_the_limit_is_a_413_in_the_routes_format(hostile, path):
    stack, poster = hostile
    body = fill(with_hole(SAMPLES[path], ("metadata", "k"), models(path)[0]), orjson.dumps("x" * MAX_BODY_BYTES))
    assert poster.post(path, body).status_code == 413


def _at(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def test_a_wrong_type_in_a_json_schema_format_or_in_a_responses_input(hostile):
    """Two places a wrong type reached a provider's request builder and answered 500: `response_format`'s
    `json_schema` (the Anthropic kind read it as an object) and `/v1/responses`'s `input` (a number or a boolean,
    read when the response is kept for `previous_response_id`)."""
    stack, poster = hostile
    for model in chat_models():
        for spec in (None, "x", 5, [], {"name": "n", "schema": "s"}, {"name": "n", "schema": 5}, {"schema": {}}):
            fmt = {"type": "json_schema"} if spec is None else {"type": "json_schema", "json_schema": spec}
            resp = poster.post(CHAT, orjson.dumps({**OPENAI_REQUEST, "model": model, "tools": None,
                                                   "tool_choice": None, "response_format": fmt}))
            assert resp.status_code == 400 and resp.json()["error"]["param"].startswith("response_format"), resp.text
        for value in (5, 1.5, True, {"k": "v"}):
            for stream in (False, True):
                resp = poster.post("/v1/responses", orjson.dumps({"model": model, "input": value, "stream": stream}))
                assert resp.status_code == 400 and resp.json()["error"]["param"] == "input", resp.text
    assert_no_deployment_charged(stack)

"""The fake model, without any server: determinism, lengths, stops, tool calls, embeddings."""

from __future__ import annotations

import base64
import math
import random
import struct

import jsonschema
import orjson
import pytest

from skyrelay.emulator.embeddings import as_base64, as_floats, embed
from skyrelay.emulator.generate import ChatInput, Message, ToolSpec, generate_chat, pick_tools
from skyrelay.emulator.text import prose_tokens
from skyrelay.emulator.tools import arguments_for, mentions

WEATHER = ToolSpec("get_weather", "Get the weather forecast for a city", {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
})
STOCKS = ToolSpec("lookup_stock", "Look up a stock price by ticker symbol", {
    "type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"],
})


def chat(text: str = "Tell me something.", **kw) -> ChatInput:
    return ChatInput(model="m", messages=[Message("user", text)], **kw)


def test_same_request_and_seed_give_the_same_reply_and_other_seeds_differ():
    a = generate_chat(chat(), seed=7, output_tokens=30)
    b = generate_chat(chat(), seed=7, output_tokens=30)
    c = generate_chat(chat(), seed=8, output_tokens=30)
    d = generate_chat(chat("Another question"), seed=7, output_tokens=30)
    assert a.choices[0].text == b.choices[0].text
    assert a.choices[0].text != c.choices[0].text
    assert a.choices[0].text != d.choices[0].text


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17, 40, 123])
def test_output_has_exactly_the_configured_token_count_and_reads_as_sentences(n):
    gen = generate_chat(chat(), seed=1, output_tokens=n)
    choice = gen.choices[0]
    assert choice.completion_tokens == len(choice.tokens) == n
    assert choice.finish == "stop"
    text = choice.text
    assert text[0].isupper() and "  " not in text
    if n > 1:
        assert text.endswith(".")


def test_prose_is_english_words_not_lorem_ipsum():
    text = "".join(prose_tokens(random.Random(3), 200))
    assert "lorem" not in text.lower()
    sentences = [s.strip() for s in text.split(".") if s.strip()]
    assert len(sentences) >= 10
    assert all(s[0].isupper() for s in sentences)


def test_output_tokens_range_is_drawn_per_reply():
    lengths = {generate_chat(chat(f"q{i}"), 0, (5, 50)).completion_tokens for i in range(20)}
    assert len(lengths) > 3 and all(5 <= n <= 50 for n in lengths)


def test_max_tokens_truncates_with_finish_length_and_is_a_prefix_of_the_full_reply():
    full = generate_chat(chat(), seed=2, output_tokens=40).choices[0]
    cut = generate_chat(chat(max_tokens=10), seed=2, output_tokens=40).choices[0]
    assert cut.finish == "length" and cut.completion_tokens == 10
    assert full.text.startswith(cut.text)
    roomy = generate_chat(chat(max_tokens=100), seed=2, output_tokens=40).choices[0]
    assert roomy.finish == "stop" and roomy.text == full.text


def test_stop_sequence_cuts_before_it_with_finish_stop():
    full = generate_chat(chat(), seed=4, output_tokens=40).choices[0].text
    word = full.split()[5]
    cut = generate_chat(chat(stop=["zzz", word]), seed=4, output_tokens=40).choices[0]
    assert cut.finish == "stop" and cut.stop_sequence == word
    assert cut.text == full[: full.index(word)]
    assert word not in cut.text


def test_n_choices_differ_and_usage_sums_them():
    gen = generate_chat(chat(n=3), seed=5, output_tokens=12)
    assert [c.index for c in gen.choices] == [0, 1, 2]
    assert len({c.text for c in gen.choices}) == 3
    assert gen.completion_tokens == 36
    assert gen.prompt_tokens > 0


def test_prompt_tokens_grow_with_the_prompt():
    short = generate_chat(chat("hi"), 0, 5).prompt_tokens
    long = generate_chat(chat("hi " * 400), 0, 5).prompt_tokens
    assert long - short == pytest.approx(300, abs=5)  # ~4 characters per token


# --- tool calls -----------------------------------------------------------------------------------------------------

def test_required_and_named_choices_always_call():
    assert [t.name for t in pick_tools(chat("hello", tools=[WEATHER, STOCKS], tool_choice="required"))] == [
        "get_weather"]
    named = chat("hello", tools=[WEATHER, STOCKS], tool_choice="function", forced_tool="lookup_stock")
    assert [t.name for t in pick_tools(named)] == ["lookup_stock"]


def test_auto_calls_only_when_the_user_mentions_the_tool():
    assert pick_tools(chat("What's the weather in Paris?", tools=[WEATHER, STOCKS]))[0].name == "get_weather"
    assert pick_tools(chat("Please run get_weather", tools=[WEATHER]))[0].name == "get_weather"
    assert pick_tools(chat("Write me a poem about cats.", tools=[WEATHER, STOCKS])) == []
    both = pick_tools(chat("weather in Oslo and the stock price of ACME", tools=[WEATHER, STOCKS]))
    assert [t.name for t in both] == ["get_weather", "lookup_stock"]
    single = chat("weather in Oslo and the stock price", tools=[WEATHER, STOCKS], parallel_tool_calls=False)
    assert len(pick_tools(single)) == 1


def test_never_a_tool_call_right_after_a_tool_result_and_none_means_text():
    after = ChatInput(model="m", messages=[Message("user", "weather in Oslo?"), Message("assistant", "get_weather"),
                                           Message("tool", '{"temp": 3}')], tools=[WEATHER])
    assert pick_tools(after) == []
    assert generate_chat(after, 0, 8).choices[0].finish == "stop"
    assert pick_tools(chat("weather in Oslo?", tools=[WEATHER], tool_choice="none")) == []


def test_tool_call_generation_is_deterministic_and_valid_json():
    inp = chat("weather in Oslo?", tools=[WEATHER])
    a = generate_chat(inp, 3, 10).choices[0]
    b = generate_chat(inp, 3, 10).choices[0]
    assert a.finish == "tool_calls" and a.tokens == []
    assert a.tool_calls[0].arguments == b.tool_calls[0].arguments
    assert "".join(a.tool_calls[0].fragments) == a.tool_calls[0].arguments
    jsonschema.validate(orjson.loads(a.tool_calls[0].arguments), WEATHER.parameters)


def test_mentions_ignores_common_description_words():
    assert not mentions("What would you return?", "x", "Returns the value that would be used")
    assert mentions("check my stocks", "lookup_stock", "")


NESTED = {
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "zip": {
        "type": "string", "minLength": 5, "maxLength": 5}}, "required": ["street", "zip"]}},
    "properties": {
        "name": {"type": "string"}, "age": {"type": "integer", "minimum": 18, "maximum": 99},
        "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1.5},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1},
        "home": {"$ref": "#/$defs/address"}, "email": {"type": "string", "format": "email"},
        "when": {"type": "string", "format": "date-time"}, "maybe": {"type": ["integer", "null"]},
        "choice": {"anyOf": [{"type": "null"}, {"type": "boolean"}]}, "fixed": {"const": "x"},
        "optional": {"type": "string"},
    },
    "required": ["name", "age", "score", "tags", "home", "email", "when", "maybe", "choice", "fixed"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("seed", range(25))
def test_arguments_satisfy_their_json_schema(seed):
    args = arguments_for(NESTED, random.Random(seed))
    jsonschema.validate(args, NESTED, format_checker=jsonschema.FormatChecker())
    assert "optional" not in args  # only required properties when `required` is given


def test_arguments_without_required_fill_every_property_and_tolerate_odd_schemas():
    args = arguments_for({"type": "object", "properties": {"a": {"type": "boolean"}, "b": {}}}, random.Random(1))
    assert set(args) == {"a", "b"}
    assert arguments_for(None, random.Random(1)) == {}
    assert arguments_for({"type": "object"}, random.Random(1)) == {}


def test_max_tokens_can_cut_a_tool_call_short():
    choice = generate_chat(chat("weather in Oslo?", tools=[WEATHER], max_tokens=3), 0, 10).choices[0]
    assert choice.finish == "length" and choice.completion_tokens == 3


# --- embeddings -----------------------------------------------------------------------------------------------------

def test_embeddings_are_deterministic_unit_vectors_of_the_asked_size():
    a = embed("m", "hello", 1536)
    assert len(a) == 1536
    assert math.isclose(math.sqrt(sum(v * v for v in a)), 1.0, rel_tol=1e-5)
    assert as_floats(embed("m", "hello", 1536)) == as_floats(a)
    assert as_floats(embed("m", "hello!", 1536)) != as_floats(a)
    assert len(embed("m", [1, 2, 3], 256)) == 256


def test_base64_form_carries_the_same_float32_values():
    vector = embed("m", "hello", 64)
    raw = base64.b64decode(as_base64(vector))
    assert list(struct.unpack("<64f", raw)) == as_floats(vector)


# --- timing ---------------------------------------------------------------------------------------------------------

def test_pacer_jitter_is_seeded_and_bounded():
    from skyrelay.emulator.timing import Pacer, Timing

    timing = Timing(ttft_ms=100, tokens_per_second=100, jitter=0.2)
    pacers = [Pacer(timing, random.Random(i)) for i in range(50)]
    assert all(0.08 <= p.ttft <= 0.12 and 1 / 120 <= p.token_interval <= 1 / 80 for p in pacers)
    assert len({p.ttft for p in pacers}) > 40
    assert Pacer(timing, random.Random(7)).ttft == Pacer(timing, random.Random(7)).ttft
    steady = Pacer(Timing(ttft_ms=20, tokens_per_second=0), random.Random(1), extra_ms=30)
    assert steady.ttft == pytest.approx(0.05) and steady.token_interval == 0

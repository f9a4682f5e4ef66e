"""The fake model: a protocol-neutral chat request in, a deterministic reply out.

Every wire protocol parses its own request format into a `ChatInput`, calls `generate_chat`, and renders the
`Generation` in its own format (OpenAI choices, Anthropic content blocks, Bedrock converse output, ...).
The reply depends only on the cloud's seed and the conversation (model, messages, tools, tool choice), not on
streaming, `max_tokens` or stop sequences: a streamed and a non-streamed call see the same text, and a
truncated call sees a prefix of it.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from .text import prose_tokens
from .tools import arguments_for, mentions

# Chat-format overheads in the spirit of OpenAI's published counting recipe: a few tokens per message, three
# to prime the reply, and a flat cost per image.
_TOKENS_PER_MESSAGE = 4
_REPLY_PRIMING = 3
_TOKENS_PER_IMAGE = 85
_JSON_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]+")


@dataclass(slots=True)
class Message:
    role: str  # "system" | "user" | "assistant" | "tool" (protocols map their own roles onto these)
    text: str = ""
    images: int = 0


@dataclass(slots=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


@dataclass(slots=True)
class ChatInput:
    model: str
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str = "auto"  # "auto" | "none" | "required" | "function" (then `forced_tool` names it)
    forced_tool: str | None = None
    parallel_tool_calls: bool = True
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1


@dataclass(slots=True)
class ToolCallOut:
    key: str  # random hex; each protocol adds its own prefix ("call_", "toolu_", ...)
    name: str
    arguments: str  # compact JSON text
    fragments: list[str]  # the arguments cut into token-sized pieces, for streaming


@dataclass(slots=True)
class ChoiceOut:
    index: int
    tokens: list[str]  # text pieces, one per streamed chunk; "".join(tokens) == text
    tool_calls: list[ToolCallOut]
    finish: str  # "stop" | "length" | "tool_calls" | "content_filter"
    stop_sequence: str | None  # the stop sequence that ended the text, if one did
    completion_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass(slots=True)
class Generation:
    choices: list[ChoiceOut]
    prompt_tokens: int
    cached_tokens: int = 0  # of prompt_tokens, those served from the prefix cache (emulator/prefix_cache.py)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.choices)

    @property
    def longest_choice_tokens(self) -> int:
        """What a non-streamed reply waits for: choices are generated side by side, as streams show them."""
        return max((c.completion_tokens for c in self.choices), default=0)


class _Raw(str):
    """JSON punctuation already written, as opposed to a string value still to encode."""


def json_text(value: Any) -> str:
    """Compact JSON of client-supplied data. orjson refuses nesting deeper than 255 levels while a request body
    may nest up to the 1024 its parser accepts, so deeper values are written without recursion instead."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        pass
    out: list[str] = []
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, _Raw):
            out.append(item)
        elif isinstance(item, dict):
            parts: list[Any] = [_Raw("{")]
            for i, (key, inner) in enumerate(item.items()):
                parts += [_Raw(("," if i else "") + orjson.dumps(str(key)).decode() + ":"), inner]
            todo += reversed(parts + [_Raw("}")])
        elif isinstance(item, list):
            parts = [_Raw("[")]
            for i, inner in enumerate(item):
                parts += [_Raw(",")] if i else []
                parts.append(inner)
            todo += reversed(parts + [_Raw("]")])
        else:
            out.append(orjson.dumps(item).decode())
    return "".join(out)


def estimate_tokens(text: str) -> int:
    """About four characters per token, as for English with OpenAI's tokenizers."""
    return (len(text) + 3) // 4


def prompt_tokens(inp: ChatInput) -> int:
    total = _REPLY_PRIMING
    for message in inp.messages:
        total += _TOKENS_PER_MESSAGE + estimate_tokens(message.text) + message.images * _TOKENS_PER_IMAGE
    for tool in inp.tools:
        total += estimate_tokens(tool.name + tool.description) + estimate_tokens(
            json_text(tool.parameters) if tool.parameters else ""
        )
    return total


def conversation_seed(seed: int, inp: ChatInput) -> int:
    """Same cloud seed + same conversation -> same number, in every process and on every machine."""
    material = orjson.dumps([
        seed, inp.model, [(m.role, m.text, m.images) for m in inp.messages],
        [t.name for t in inp.tools], inp.tool_choice, inp.forced_tool,
    ])
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big")


def generate_chat(
    inp: ChatInput, seed: int, output_tokens: int | tuple[int, int], content_filter: bool = False,
) -> Generation:
    """The reply to `inp`. `content_filter` cuts the text short with finish "content_filter"."""
    base = conversation_seed(seed, inp)
    choices = []
    for index in range(max(inp.n, 1)):
        rng = random.Random(base + index * 7919)
        choices.append(_one_choice(inp, rng, index, output_tokens, content_filter))
    return Generation(choices=choices, prompt_tokens=prompt_tokens(inp))


def _one_choice(inp: ChatInput, rng: random.Random, index: int, output_tokens, content_filter: bool) -> ChoiceOut:
    target = output_tokens if isinstance(output_tokens, int) else rng.randint(*output_tokens)
    tools = [] if content_filter else pick_tools(inp)
    if tools:
        return _tool_choice(inp, rng, index, tools)
    tokens = prose_tokens(rng, max(target, 1))
    finish = "stop"
    if content_filter:  # the output filter stops the reply part-way, as Azure's does
        tokens = tokens[: max(len(tokens) // 2, 1)]
        finish = "content_filter"
    if inp.max_tokens is not None and inp.max_tokens < len(tokens):
        tokens = tokens[: inp.max_tokens]
        finish = "length"
    tokens, stop_sequence = _apply_stop(tokens, inp.stop)
    if stop_sequence is not None:
        finish = "stop"
    return ChoiceOut(index, tokens, [], finish, stop_sequence, len(tokens))


def pick_tools(inp: ChatInput) -> list[ToolSpec]:
    """The tools this turn calls (empty: answer with text)."""
    if not inp.tools or inp.tool_choice == "none":
        return []
    if inp.tool_choice == "function":
        return [t for t in inp.tools if t.name == inp.forced_tool][:1]
    last = inp.messages[-1] if inp.messages else None
    mentioned = [t for t in inp.tools if mentions(last.text, t.name, t.description)] if (
        last is not None and last.role == "user") else []
    if inp.tool_choice == "required":
        mentioned = mentioned or inp.tools[:1]
    return mentioned[: 3 if inp.parallel_tool_calls else 1]


def _tool_choice(inp: ChatInput, rng: random.Random, index: int, tools: list[ToolSpec]) -> ChoiceOut:
    calls = []
    budget = inp.max_tokens
    finish = "tool_calls"
    used = 0
    for tool in tools:
        arguments = json_text(arguments_for(tool.parameters, rng))
        fragments = _JSON_PIECE.findall(arguments)
        if "".join(fragments) != arguments:
            fragments = [arguments[i:i + 4] for i in range(0, len(arguments), 4)]
        cost = len(fragments) + 1  # one more for the function name
        if budget is not None and used + cost > budget:  # out of tokens mid-call: a cut JSON text, as real
            fragments = fragments[: max(budget - used - 1, 0)]
            calls.append(ToolCallOut("%024x" % rng.getrandbits(96), tool.name, "".join(fragments), fragments))
            used = budget
            finish = "length"
            break
        calls.append(ToolCallOut("%024x" % rng.getrandbits(96), tool.name, arguments, fragments))
        used += cost
    return ChoiceOut(index, [], calls, finish, None, used)


def _apply_stop(tokens: list[str], stops: list[str]) -> tuple[list[str], str | None]:
    if not stops:
        return tokens, None
    text = "".join(tokens)
    found = [(text.find(s), s) for s in stops if s and s in text]
    if not found:
        return tokens, None
    cut, stop = min(found)
    kept: list[str] = []
    offset = 0
    for token in tokens:
        if offset + len(token) <= cut:
            kept.append(token)
        else:
            if cut > offset:
                kept.append(token[: cut - offset])  # the part of the token before the stop sequence
            break
        offset += len(token)
    return kept, stop

"""The Responses API's wire format, shared by the `openai` and `azure` protocols: the `Response` object and the
streamed event sequence, from OpenAI's public reference (Response, ResponseStreamEvent, ReasoningItem).

    response.created, response.in_progress,
    reasoning item (when the request asks to reason): output_item.added, [reasoning_summary_part.added,
        reasoning_summary_text.delta..., reasoning_summary_text.done, reasoning_summary_part.done], output_item.done
    web_search_call item (when it searches): output_item.added, web_search_call.in_progress,
        web_search_call.searching, web_search_call.completed, output_item.done
    message item: output_item.added, content_part.added, output_text.delta..., output_text.done,
        content_part.done, output_item.done
    each function_call item: output_item.added, function_call_arguments.delta..., function_call_arguments.done,
        output_item.done
    response.completed (or response.incomplete), usage included.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any, AsyncIterator

import orjson

from ..generate import ChoiceOut, Generation
from ..text import prose_tokens
from ..timing import Pacer
from .responses_request import ResponsesCall

REASONING_TOKENS = 24  # what one reasoning item costs, counted in output_tokens and reported as reasoning_tokens
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class ReplyMeta:
    """What the body and every event of one response share."""

    __slots__ = ("id", "key", "model", "created", "reasoning", "sealed")

    def __init__(self, request_key: int, model: str, call: ResponsesCall, seed: int, seal):
        self.key = hashlib.sha256(request_key.to_bytes(16, "big")).hexdigest()[:48]
        self.id = "resp_" + self.key
        self.model = model
        self.created = int(time.time())
        self.reasoning: list[str] = []  # the summary text pieces (the reasoning itself is never shown)
        self.sealed = ""  # the reasoning item's encrypted_content
        if call.reasoning:
            self.reasoning = prose_tokens(random.Random(seed), 12)
            self.sealed = seal(f"rs_{self.key}", "".join(self.reasoning))


def usage(gen: Generation, reasoning: bool) -> dict[str, Any]:
    thought = REASONING_TOKENS if reasoning else 0
    output = gen.completion_tokens + thought
    return {"input_tokens": gen.prompt_tokens, "input_tokens_details": {"cached_tokens": gen.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": thought},
            "total_tokens": gen.prompt_tokens + output}


def response_body(call: ResponsesCall, meta: ReplyMeta, status: str) -> dict[str, Any]:
    """Every field of a Response but its output and usage, the request's settings echoed."""
    data = call.body
    body: dict[str, Any] = {
        "id": meta.id, "object": "response", "created_at": meta.created, "status": status, "background": False,
        "completed_at": None, "error": None, "incomplete_details": None, "instructions": data.get("instructions"),
        "max_output_tokens": data.get("max_output_tokens"), "max_tool_calls": data.get("max_tool_calls"),
        "model": meta.model, "output": [], "parallel_tool_calls": data.get("parallel_tool_calls") is not False,
        "previous_response_id": data.get("previous_response_id"),
        "prompt_cache_key": data.get("prompt_cache_key"), "reasoning": _reasoning(data.get("reasoning")),
        "safety_identifier": data.get("safety_identifier"), "service_tier": "default", "store": call.store,
        "temperature": data.get("temperature", 1.0), "text": data.get("text") or {"format": {"type": "text"}},
        "tool_choice": data.get("tool_choice") or "auto", "tools": [_tool(t) for t in data.get("tools") or ()],
        "top_logprobs": data.get("top_logprobs") or 0, "top_p": data.get("top_p", 1.0),
        "truncation": data.get("truncation") or "disabled", "metadata": data.get("metadata") or {},
    }
    if data.get("user") is not None:
        body["user"] = data["user"]
    return body


def _reasoning(value: Any) -> dict[str, Any]:
    value = value or {}
    return {"effort": value.get("effort"), "summary": value.get("summary")}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool
    return {"description": None, "parameters": None, "strict": True, **tool}


def output_items(choice: ChoiceOut, meta: ReplyMeta, call: ResponsesCall) -> list[dict[str, Any]]:
    """The finished output items, in order."""
    items = []
    if call.reasoning:
        items.append(reasoning_item(meta, "".join(meta.reasoning), call.summary))
    if call.search is not None:
        items.append(search_item(meta, call))
    if choice.tokens or not choice.tool_calls:
        items.append(message_item(meta, choice.text, "completed"))
    for i, tool_call in enumerate(choice.tool_calls):
        items.append(call_item(meta, i, tool_call, call, tool_call.arguments, "completed"))
    return items


def reasoning_item(meta: ReplyMeta, summary: str, with_summary: bool) -> dict[str, Any]:
    parts = [{"type": "summary_text", "text": summary}] if with_summary else []
    return {"id": f"rs_{meta.key}", "type": "reasoning", "summary": parts, "encrypted_content": meta.sealed}


def search_item(meta: ReplyMeta, call: ResponsesCall, status: str = "completed") -> dict[str, Any]:
    action: dict[str, Any] = {"type": "search", "query": call.search, "queries": [call.search]}
    if call.sources:
        action["sources"] = [{"type": "url", "url": f"https://example.com/search/{meta.key[:12]}"}]
    return {"id": f"ws_{meta.key}", "type": "web_search_call", "status": status, "action": action}


def message_item(meta: ReplyMeta, text: str | None, status: str) -> dict[str, Any]:
    return {"id": f"msg_{meta.key}", "type": "message", "role": "assistant", "status": status,
            "content": [] if text is None else [text_part(text)]}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(meta: ReplyMeta, index: int, tool_call, call: ResponsesCall, arguments: str,
              status: str) -> dict[str, Any]:
    item = {"id": f"fc_{meta.key}_{index}", "type": "function_call", "status": status,
            "call_id": f"call_{tool_call.key}", "name": tool_call.name, "arguments": arguments}
    namespace = call.namespaces.get(tool_call.name)
    if namespace is not None:
        item["namespace"] = namespace
    return item


def finish(body: dict[str, Any], choice: ChoiceOut, gen: Generation, call: ResponsesCall) -> dict[str, Any]:
    reason = _INCOMPLETE.get(choice.finish)
    body["status"] = "incomplete" if reason else "completed"
    body["incomplete_details"] = {"reason": reason} if reason else None
    body["completed_at"] = int(time.time())
    body["usage"] = usage(gen, call.reasoning)
    return body


def whole(gen: Generation, meta: ReplyMeta, call: ResponsesCall) -> dict[str, Any]:
    choice = gen.choices[0]
    body = response_body(call, meta, "completed")
    body["output"] = output_items(choice, meta, call)
    return finish(body, choice, gen, call)


class _Events:
    __slots__ = ("seq",)

    def __init__(self):
        self.seq = 0

    def __call__(self, kind: str, **payload: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **payload}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


async def stream(gen: Generation, meta: ReplyMeta, call: ResponsesCall, pacer: Pacer,
                 on_done) -> AsyncIterator[bytes]:
    """One SSE event per yield, paced like a model; `on_done(body)` gets the finished response (to store)."""
    choice = gen.choices[0]
    event = _Events()
    body = response_body(call, meta, "in_progress")
    yield event("response.created", response=body)
    await pacer.first_token()
    yield event("response.in_progress", response=body)
    final = output_items(choice, meta, call)
    step = 0
    for index, item in enumerate(final):
        kind = item["type"]
        if kind == "reasoning":
            pieces = meta.reasoning if call.summary else []
            events = _reasoning_events(event, item, index, pieces)
        elif kind == "web_search_call":
            events = _search_events(event, item, index)
        elif kind == "message":
            events = _message_events(event, item, index, choice.tokens)
        else:
            events = _call_events(event, item, index, choice.tool_calls[index - (len(final) - len(choice.tool_calls))])
        for frame, paced in events:
            if paced:
                step += 1
                await pacer.token(step)
            yield frame
    body["output"] = final
    finish(body, choice, gen, call)
    on_done(body)
    yield event("response.completed" if body["status"] == "completed" else "response.incomplete", response=body)


def _reasoning_events(event, item, index, pieces):
    item_id = item["id"]
    yield event("response.output_item.added", output_index=index,
                item={**item, "summary": [], "encrypted_content": None}), False
    if pieces:
        text = "".join(pieces)
        where = {"item_id": item_id, "output_index": index, "summary_index": 0}
        yield event("response.reasoning_summary_part.added", **where, part={"type": "summary_text", "text": ""}), False
        for piece in pieces:
            yield event("response.reasoning_summary_text.delta", **where, delta=piece), True
        yield event("response.reasoning_summary_text.done", **where, text=text), False
        yield event("response.reasoning_summary_part.done", **where, part={"type": "summary_text", "text": text}), False
    yield event("response.output_item.done", output_index=index, item=item), False


def _search_events(event, item, index):
    where = {"output_index": index, "item_id": item["id"]}
    yield event("response.output_item.added", output_index=index,
                item={**item, "status": "in_progress", "action": {"type": "search"}}), False
    yield event("response.web_search_call.in_progress", **where), False
    yield event("response.web_search_call.searching", **where), True
    yield event("response.web_search_call.completed", **where), False
    yield event("response.output_item.done", output_index=index, item=item), False


def _message_events(event, item, index, tokens):
    item_id = item["id"]
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    yield event("response.output_item.added", output_index=index,
                item={**item, "status": "in_progress", "content": []}), False
    yield event("response.content_part.added", **where, part=text_part("")), False
    for token in tokens:
        yield event("response.output_text.delta", **where, delta=token, logprobs=[]), True
    text = "".join(tokens)
    yield event("response.output_text.done", **where, text=text, logprobs=[]), False
    yield event("response.content_part.done", **where, part=text_part(text)), False
    yield event("response.output_item.done", output_index=index, item=item), False


def _call_events(event, item, index, tool_call):
    where = {"item_id": item["id"], "output_index": index}
    yield event("response.output_item.added", output_index=index,
                item={**item, "status": "in_progress", "arguments": ""}), False
    for fragment in tool_call.fragments:
        yield event("response.function_call_arguments.delta", **where, delta=fragment), True
    yield event("response.function_call_arguments.done", **where, name=item["name"],
                arguments=item["arguments"]), False
    yield event("response.output_item.done", output_index=index, item=item), False

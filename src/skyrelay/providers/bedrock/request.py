"""Canonical chat request -> Bedrock Converse request body (pure: dict in, dict out).

Bedrock keeps system text apart from the turns, wants strict user/assistant alternation (consecutive turns of one
role are merged), carries tool results as user content, takes images only as inline bytes (it fetches no URLs),
and has no `n`, logprobs, penalties or response_format: those are refused, never dropped silently. It has no seed
either: that one, like every best-effort field (extras.py), is left out and named to the client. Prompt-cache
breakpoints (`cache_control` on a system part, a user part, a tool result or a tool, as Anthropic clients and some
OpenAI clients mark them) become `cachePoint` blocks after the block they mark, for models that cache on Bedrock
(`caches`: Claude and Nova); other models are served without them. `reasoning_effort` reaches the models that
reason through Converse (`reasons`: reasoning.py) in `additionalModelRequestFields`; every other model refuses it.
The signed reasoning of an earlier turn of the same model (ChatRequest.thinking) opens its assistant turn again.
"""

from __future__ import annotations

from typing import Any

import orjson

from ... import errors
from ...canonical import ChatRequest
from ..content import image_url, read_data_url, short_call_id, tool_call_id
from ..extras import may_leave_out
from ..sampling import sampling_fields
from .reasoning import handed_back, request_fields

HONOURED_EXTRAS: frozenset[str] = frozenset()  # Converse has a twin for no extra field
_CACHE_POINT = {"cachePoint": {"type": "default"}}
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}

TOOL_USE_ID_MAX = 64  # Converse's toolUseId: at most 64 characters


class _Ctx:
    """Who is asking, for error messages that name the deployment."""

    __slots__ = ("deployment", "caches", "reasons", "reasoning")

    def __init__(self, deployment: str, caches: bool = False, reasons: str | None = None):
        self.deployment = deployment
        self.caches = caches  # the model takes cachePoint blocks
        self.reasons = reasons  # the model's reasoning family (reasoning.py), when it reasons through Converse
        # The reasoningContent blocks handed back, by the index of the assistant message they open.
        self.reasoning: dict[int, list[dict[str, Any]]] = {}

    def cache_point(self, marked: Any) -> list[dict[str, Any]]:
        """A cachePoint after a block the client marked with cache_control (none where the model cannot cache)."""
        if self.caches and isinstance(marked, dict) and marked.get("cache_control") is not None:
            return [_CACHE_POINT]
        return []

    def refuse(self, feature: str, param: str, why: str = "") -> errors.UnsupportedFeature:
        detail = f": {why}" if why else ""
        return errors.UnsupportedFeature(
            f"{feature} is not supported by deployment '{self.deployment}' (bedrock){detail}", param=param)


def build_converse_body(req: ChatRequest, deployment: str, caches: bool = False,
                        reasons: str | None = None, model: str = "") -> dict[str, Any]:
    """The Converse / ConverseStream body for this request (the model id goes in the URL, not here; `model`
    names whose signed reasoning of earlier turns is handed back)."""
    ctx = _Ctx(deployment, caches, reasons)
    check_unsupported(req, ctx)
    if req.thinking and reasons is not None:
        ctx.reasoning = reasoning_handed_back(req.thinking, model)
    system, messages, has_tool_blocks = convert_messages(req.messages, ctx)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference = inference_config(req)
    if inference:
        body["inferenceConfig"] = inference
    tool_config = convert_tools(req.tools, req.tool_choice, has_tool_blocks, ctx)
    if tool_config is None and has_tool_blocks and req.tool_choice != "none":
        tool_config = history_tools(messages)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    fields = _reasoning_fields(req, ctx)
    if fields:
        body["additionalModelRequestFields"] = fields
    return body


def _reasoning_fields(req: ChatRequest, ctx: _Ctx) -> dict[str, Any] | None:
    effort = req.extra.get("reasoning_effort")
    if effort is None or ctx.reasons is None:
        return None
    try:
        return request_fields(effort, ctx.reasons)
    except ValueError as exc:
        raise ctx.refuse(str(exc), "reasoning_effort") from None


def reasoning_handed_back(thinking: dict[int, list[dict[str, Any]]], model: str) -> dict[int, list[dict[str, Any]]]:
    """The history's thoughts this model signed, as reasoningContent blocks by message index (the rest stays out,
    named as dropped: Provider.dropped_thinking)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for index, blocks in thinking.items():
        taken = [block for block in (handed_back(b, model) for b in blocks) if block is not None]
        if taken:
            out[index] = taken
    return out


def check_unsupported(req: ChatRequest, ctx: _Ctx) -> None:
    fmt = req.response_format
    if fmt is not None and fmt.get("type", "text") != "text":
        raise ctx.refuse(f"response_format '{fmt.get('type')}'", "response_format",
                         "Bedrock Converse has no JSON mode; describe the format in the prompt, or use a tool")
    for name, value in req.extra.items():
        if name == "reasoning_effort" and ctx.reasons is not None:
            continue  # mapped to the model's own field (_reasoning_fields)
        if not may_leave_out(name, value):  # Bedrock maps no extra field: all it cannot leave out, it refuses
            raise ctx.refuse(f"'{name}'", name)


def inference_config(req: ChatRequest) -> dict[str, Any]:
    return sampling_fields(req, max_tokens="maxTokens", top_p="topP", stop="stopSequences")


# --- messages --------------------------------------------------------------------------------------------------------


def convert_messages(messages: list[dict[str, Any]], ctx: _Ctx) -> tuple[list[dict], list[dict], bool]:
    """(system blocks, alternating turns, whether any turn carries toolUse/toolResult blocks)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    has_tool_blocks = False
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role in ("system", "developer"):
            system += _system_blocks(msg.get("content"), i, ctx)
            continue
        if role == "user":
            blocks = _user_blocks(msg.get("content"), i, ctx)
        elif role == "assistant":
            blocks = _assistant_blocks(msg, i, ctx)
            has_tool_blocks = has_tool_blocks or any("toolUse" in b for b in blocks)
        elif role == "tool":
            content = msg.get("content")
            marked = content[-1] if isinstance(content, list) and content else None
            blocks, role = [_tool_result(msg, i, ctx), *ctx.cache_point(marked)], "user"
            has_tool_blocks = True
        else:
            raise ctx.refuse(f"role '{role}'", f"messages[{i}].role", "use 'tool' messages for tool results")
        if not blocks:
            continue  # an empty turn: Bedrock rejects blank content, and merging keeps the alternation
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise errors.InvalidRequest("Bedrock needs at least one user message with content", param="messages")
    return system, turns, has_tool_blocks


def _system_blocks(content: Any, i: int, ctx: _Ctx) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"text": text} for text in _texts(content, i, ctx) if text]
    blocks: list[dict[str, Any]] = []
    for part, text in zip(content, _texts(content, i, ctx)):
        if text:
            blocks += [{"text": text}, *ctx.cache_point(part)]
    return blocks


def _texts(content: Any, i: int, ctx: _Ctx) -> list[str]:
    """The text of a system, developer or tool message (a string or text parts only)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ctx.refuse(f"content part '{kind}' in this message", f"messages[{i}].content[{j}]")
        texts.append(str(part.get("text", "")))
    return texts


def _user_blocks(content: Any, i: int, ctx: _Ctx) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not part.get("text"):
                continue
            blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"messages[{i}].content[{j}]", ctx))
        else:
            raise ctx.refuse(f"content part '{kind}'", f"messages[{i}].content[{j}]")
        blocks += ctx.cache_point(part)
    return blocks


def _image_block(image: Any, param: str, ctx: _Ctx) -> dict[str, Any]:
    url = image_url(image, param)
    if not url.startswith("data:"):
        raise ctx.refuse("an image by URL", param, "Bedrock fetches no URLs; send the image inline as a "
                                                   "data:image/...;base64 URL")
    mime, data = read_data_url(url, param)
    fmt = _IMAGE_FORMATS.get(mime)
    if fmt is None:
        raise ctx.refuse(f"image type '{mime}'", param, "use png, jpeg, gif or webp")
    # A blob travels as base64 text in Bedrock's JSON protocol: the client's base64 goes through untouched.
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _assistant_blocks(msg: dict[str, Any], i: int, ctx: _Ctx) -> list[dict[str, Any]]:
    content = msg.get("content")
    if isinstance(content, list):  # text and refusal parts
        texts = [p.get("text") or p.get("refusal") or "" for p in content if isinstance(p, dict)]
        content = "".join(texts)
    blocks: list[dict[str, Any]] = [*ctx.reasoning.get(i, ())]  # the turn's reasoning comes first, as it came
    if content:
        blocks.append({"text": content})
    for j, call in enumerate(msg.get("tool_calls") or ()):
        function = call.get("function") or {}
        blocks.append({"toolUse": {
            "toolUseId": short_call_id(call.get("id", ""), TOOL_USE_ID_MAX), "name": function.get("name", ""),
            "input": _arguments(function.get("arguments"), f"messages[{i}].tool_calls[{j}].function.arguments"),
        }})
    return blocks


def _arguments(arguments: Any, param: str) -> Any:
    if arguments is None or arguments == "":
        return {}
    if not isinstance(arguments, str):
        return arguments
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise errors.InvalidRequest(f"{param} is not valid JSON; Bedrock needs the tool input as a JSON object",
                                    param=param) from None


def _tool_result(msg: dict[str, Any], i: int, ctx: _Ctx) -> dict[str, Any]:
    call_id = short_call_id(tool_call_id(msg, i), TOOL_USE_ID_MAX)
    content = msg.get("content")
    if isinstance(content, dict):  # not OpenAI, but an object result is what Bedrock's json block is for
        blocks = [{"json": content}]
    else:
        blocks = [{"text": text} for text in _texts(content, i, ctx) if text]
    # Bedrock rejects an empty result; an empty string is still an answer from the tool.
    return {"toolResult": {"toolUseId": call_id, "content": blocks or [{"text": "(empty)"}]}}


# --- tools -----------------------------------------------------------------------------------------------------------


def convert_tools(tools: list[dict[str, Any]] | None, tool_choice: Any, has_tool_blocks: bool,
                  ctx: _Ctx) -> dict[str, Any] | None:
    if not tools:
        return None
    if tool_choice == "none":
        if has_tool_blocks:
            # Bedrock insists on toolConfig once the history holds tool blocks, and then the model may call.
            raise ctx.refuse("tool_choice 'none' with tool calls in the history", "tool_choice",
                             "Bedrock has no 'none' choice; omit tool_choice or use 'auto'")
        return None  # without tools the model cannot call one: that is 'none'
    specs = []
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
            raise ctx.refuse(f"tool type '{kind}'", f"tools[{k}]", "only function tools are supported")
        function = tool.get("function") or {}
        spec: dict[str, Any] = {
            "name": function.get("name", ""),
            "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs += [{"toolSpec": spec}, *ctx.cache_point(tool)]
    config: dict[str, Any] = {"tools": specs}
    choice = _tool_choice(tool_choice, ctx)
    if choice is not None:
        config["toolChoice"] = choice
    return config


def history_tools(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """A toolConfig naming the tools the history called, for a request that sends no `tools` (a closing turn that
    sums up: OpenAI takes it, Converse refuses tool blocks without a toolConfig). Their inputs are unknown, so
    any object; the model may call them again, as it could the first time."""
    names = dict.fromkeys(block["toolUse"]["name"] for turn in turns for block in turn["content"]
                          if "toolUse" in block and block["toolUse"].get("name"))
    return {"tools": [{"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object"}}}} for name in names]}


def _tool_choice(tool_choice: Any, ctx: _Ctx) -> dict[str, Any] | None:
    if tool_choice is None:
        return None
    if tool_choice == "auto":
        return {"auto": {}}
    if tool_choice == "required":
        return {"any": {}}
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"tool": {"name": name}}
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "allowed_tools":
        raise ctx.refuse("tool_choice 'allowed_tools'", "tool_choice")
    raise errors.InvalidRequest(f"tool_choice {orjson.dumps(tool_choice).decode()} is not understood",
                                param="tool_choice")

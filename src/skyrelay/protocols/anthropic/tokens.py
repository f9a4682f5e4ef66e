"""A cheap, deterministic input-token estimate for `count_tokens`.

Whatever model a group routes to, its tokenizer is unknown here (and most are not available offline), so this
counts characters: about four per token for English text and code, plus a small overhead per message and per
tool, and a fixed cost per image. It is an estimate for budgeting prompts, not a bill: the ledger records the
upstream's own counts.
"""

from __future__ import annotations

import orjson

from ...canonical import ChatRequest

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4  # role markers and separators around each message
REQUEST_OVERHEAD = 3  # the assistant turn's priming
TOOL_OVERHEAD = 8  # the framing of each tool definition
IMAGE_TOKENS = 1600  # what a full-size image costs on Anthropic's models (width * height / 750, capped)


def estimate_input_tokens(req: ChatRequest) -> int:
    chars = 0
    images = 0
    for message in req.messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif content:
            for part in content:
                if part.get("type") == "image_url":
                    images += 1
                else:
                    chars += len(part.get("text") or "")
        for call in message.get("tool_calls") or ():
            function = call["function"]
            chars += len(function["name"]) + len(function["arguments"])
    tools = req.tools or ()
    for tool in tools:
        chars += len(orjson.dumps(tool["function"]))
    tokens = -(-chars // CHARS_PER_TOKEN)  # ceiling division
    return tokens + MESSAGE_OVERHEAD * len(req.messages) + REQUEST_OVERHEAD + TOOL_OVERHEAD * len(tools) + (
        IMAGE_TOKENS * images)

"""Check a GenerateContentRequest the way the Gemini API and Vertex AI do, and turn it into the neutral `ChatInput`.

First the body is parsed against the proto (gemini_proto.py: unknown names, wrong types, bad enums, all at once);
then the request's meaning is checked: contents present, every part holding data, roles `user`/`model`, function
calls and responses in the right turns and numbers, function names and parameter schemas Gemini accepts, and
generation settings in range. Answers are 400 INVALID_ARGUMENT with Google's wording.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..generate import ChatInput, Message, ToolSpec, json_text
from ..model_limits import gemini_max_output
from .gemini_errors import GoogleError
from .gemini_proto import ProtoChecker, field, snake

_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                "codeExecutionResult")
_MIME_TYPES = ("text/plain", "application/json", "text/x.enum")
_MODES = {"MODE_UNSPECIFIED": "auto", "AUTO": "auto", "VALIDATED": "auto", "ANY": "required", "NONE": "none"}


class GenerateCall:
    """A validated request: the neutral input plus what only the Gemini rendering needs."""

    __slots__ = ("inp", "mime_type", "schema", "images", "thoughts")

    def __init__(self, inp: ChatInput, mime_type: str, schema: dict[str, Any] | None, images: int,
                 thoughts: bool = False):
        self.inp = inp
        self.thoughts = thoughts  # thinkingConfig.includeThoughts with thinking on: a thought summary part first
        self.mime_type = mime_type  # text/plain | application/json | text/x.enum
        self.schema = schema  # JSON Schema of the reply (converted from responseSchema when needed)
        self.images = images  # media parts in the prompt, for promptTokensDetails


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as exc:
        raise GoogleError(400, f"Invalid JSON payload received. {exc.args[0] if exc.args else 'Syntax error'}") \
            from None
    if not isinstance(data, dict):
        raise GoogleError(400, f"Invalid JSON payload received. Expected an object, got {type(data).__name__}.")
    return data


class Problems:
    """Semantic problems, reported together as "* <Message>.<path>: <reason>" lines."""

    def __init__(self, message: str = "GenerateContentRequest"):
        self.message = message
        self.lines: list[str] = []

    def add(self, path: str, reason: str) -> None:
        self.lines.append(f"* {self.message}.{path}: {reason}\n")

    def raise_if_any(self) -> None:
        if self.lines:
            raise GoogleError(400, "".join(self.lines))


def generate_request(data: dict[str, Any], model: str, package: str, *, count_only: bool = False) -> GenerateCall:
    if count_only and isinstance(field(data, "generateContentRequest"), dict):
        data = field(data, "generateContentRequest")  # countTokens can wrap a whole request
    elif count_only:
        data = {k: v for k, v in data.items() if k not in ("generateContentRequest", "generate_content_request")}
    checker = ProtoChecker(package)
    checker.check(data, "GenerateContentRequest")
    checker.raise_if_any()
    problems = Problems()
    contents = field(data, "contents") or []
    contents = contents if isinstance(contents, list) else [contents]
    if not contents:
        problems.add("contents", "contents is not specified")
    for i, content in enumerate(contents):
        check_content(content, f"contents[{i}]", problems)
    system = field(data, "systemInstruction")
    if system is not None:
        check_content(system, "system_instruction", problems, system=True)
    tools = _tools(field(data, "tools") or [], problems)
    choice, forced, tools = _tool_config(field(data, "toolConfig") or {}, tools, problems)
    config = field(data, "generationConfig") or {}
    mime_type, schema = _generation_config(config, problems)
    problems.raise_if_any()
    if not count_only:
        _check_output_limit(field(config, "maxOutputTokens"), model)
    _check_roles(contents)
    _check_function_turns(contents)
    messages, images = _messages(system, contents)
    inp = ChatInput(model=model, messages=messages, tools=tools, tool_choice=choice, forced_tool=forced,
                    max_tokens=_int(field(config, "maxOutputTokens")), stop=list(field(config, "stopSequences") or []),
                    n=_int(field(config, "candidateCount")) or 1)
    return GenerateCall(inp, mime_type, schema, images, _shows_thoughts(field(config, "thinkingConfig")))


def _shows_thoughts(thinking: Any) -> bool:
    """Thought summaries come back when asked for (`includeThoughts`) and the model thinks: a budget of 0 turns
    thinking off (the emulated models all think by default, as Gemini 2.5 and later do)."""
    if not isinstance(thinking, dict) or not field(thinking, "includeThoughts"):
        return False
    return _int(field(thinking, "thinkingBudget")) != 0


def _int(value: Any) -> int | None:
    return int(float(value)) if value is not None else None


def check_content(content: dict[str, Any], where: str, problems: Problems, system: bool = False) -> None:
    parts = field(content, "parts") or []
    parts = parts if isinstance(parts, list) else [parts]
    if not parts:
        problems.add(f"{where}.parts", "contents.parts must not be empty.")
    for j, part in enumerate(parts):
        present = [name for name in _DATA_FIELDS if field(part, name) is not None]
        if not present:
            problems.add(f"{where}.parts[{j}].data", "required oneof field 'data' must have one initialized field")
        elif len(present) > 1:
            problems.add(f"{where}.parts[{j}].data", f"oneof field 'data' is already set. Cannot set "
                                                     f"'{snake(present[1])}'")
        blob = field(part, "inlineData")
        if blob is not None and not field(blob, "mimeType"):
            problems.add(f"{where}.parts[{j}].inline_data.mime_type", "mime_type is required")
        call = field(part, "functionCall")
        if call is not None and not field(call, "name"):
            problems.add(f"{where}.parts[{j}].function_call.name", "Name cannot be empty.")
        answer = field(part, "functionResponse")
        if answer is not None and not field(answer, "name"):
            problems.add(f"{where}.parts[{j}].function_response.name", "Name cannot be empty.")
        if system and present and present[0] != "text":
            problems.add(f"{where}.parts[{j}]", "system_instruction may only contain text parts")


def _check_output_limit(asked: Any, model: str) -> None:
    limit = gemini_max_output(model)
    if asked is not None and limit is not None and int(float(asked)) > limit:
        raise GoogleError(400, f"Unable to submit request because it has a maxOutputTokens value of "
                               f"{int(float(asked))} but the supported range is from 1 (inclusive) to {limit + 1} "
                               f"(exclusive). Update the value and try again.")


def _check_roles(contents: list[dict[str, Any]]) -> None:
    for content in contents:
        role = field(content, "role") or "user"
        if role not in ("user", "model"):
            raise GoogleError(400, "Please use a valid role: user, model.")


def _calls(content: dict[str, Any], name: str) -> int:
    return sum(1 for part in field(content, "parts") or [] if field(part, name) is not None)


def _check_function_turns(contents: list[dict[str, Any]]) -> None:
    """Function calls follow a user turn (or a function response); each is answered in the very next turn."""
    for i, content in enumerate(contents):
        calls = _calls(content, "functionCall")
        answers = _calls(content, "functionResponse")
        previous = contents[i - 1] if i else None
        if calls:
            if previous is None or (field(previous, "role") or "user") != "user":
                raise GoogleError(400, "Please ensure that function call turn comes immediately after a user turn "
                                       "or after a function response turn.")
        if answers:
            asked = _calls(previous, "functionCall") if previous is not None else 0
            if not asked:
                raise GoogleError(400, "Please ensure that function response turn comes immediately after a "
                                       "function call turn.")
            if asked != answers:
                raise GoogleError(400, "Please ensure that the number of function response parts is equal to the "
                                       "number of function call parts of the function call turn.")


def _messages(system: Any, contents: list[dict[str, Any]]) -> tuple[list[Message], int]:
    out: list[Message] = []
    total_images = 0
    if system is not None:
        text = "\n".join(field(p, "text") or "" for p in field(system, "parts") or [])
        if text:
            out.append(Message("system", text))
    for content in contents:
        texts: list[str] = []
        images = 0
        answers = False
        for part in field(content, "parts") or []:
            if field(part, "text") is not None:
                texts.append(field(part, "text"))
            elif field(part, "inlineData") is not None or field(part, "fileData") is not None:
                images += 1
            elif field(part, "functionCall") is not None:
                call = field(part, "functionCall")
                texts.append(f"{field(call, 'name')}({json_text(field(call, 'args') or {})})")
            elif field(part, "functionResponse") is not None:
                answers = True
                texts.append(json_text(field(field(part, "functionResponse"), "response") or {}))
        role = "assistant" if field(content, "role") == "model" else "tool" if answers else "user"
        out.append(Message(role, "\n".join(texts), images))
        total_images += images
    return out, total_images


def _tools(raw: list[Any], problems: Problems) -> list[ToolSpec]:
    out: list[ToolSpec] = []
    for i, tool in enumerate(raw if isinstance(raw, list) else [raw]):
        declarations = field(tool, "functionDeclarations") or []
        for j, decl in enumerate(declarations if isinstance(declarations, list) else [declarations]):
            where = f"tools[{i}].function_declarations[{j}]"
            name = field(decl, "name") or ""
            if not _FUNCTION_NAME.match(name):
                problems.add(f"{where}.name", "Invalid function name. Must start with a letter or an underscore. "
                                              "Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and "
                                              "dashes, with a maximum length of 128.")
            params = field(decl, "parameters")
            json_schema = field(decl, "parametersJsonSchema")
            if params is not None and json_schema is not None:
                problems.add(f"{where}.parameters_json_schema", "parameters and parameters_json_schema cannot both "
                                                                "be set.")
            if params is not None:
                check_schema(params, f"{where}.parameters", problems)
                json_schema = to_json_schema(params)
            out.append(ToolSpec(name, field(decl, "description") or "", json_schema))
    return out


def _tool_config(config: dict[str, Any], tools: list[ToolSpec], problems: Problems):
    calling = field(config, "functionCallingConfig") or {}
    mode = str(field(calling, "mode") or "AUTO").upper()
    allowed = field(calling, "allowedFunctionNames") or []
    where = "tool_config.function_calling_config.allowed_function_names"
    if allowed and mode != "ANY":
        problems.add(where, "allowed_function_names should only be set when the function calling mode is ANY.")
    known = {t.name for t in tools}
    for name in allowed:
        if name not in known:
            problems.add(where, f"function '{name}' is not declared in tools.")
    choice = _MODES[mode]
    if choice == "required" and allowed:
        tools = [t for t in tools if t.name in allowed]
        if len(tools) == 1:
            return "function", tools[0].name, tools
    return choice, None, tools


def _generation_config(config: dict[str, Any], problems: Problems) -> tuple[str, dict[str, Any] | None]:
    ranges = (("temperature", 0.0, 2.0), ("topP", 0.0, 1.0), ("candidateCount", 1, 8), ("maxOutputTokens", 1, None),
              ("topK", 1, None))
    for name, low, high in ranges:
        value = field(config, name)
        if value is not None and (float(value) < low or (high is not None and float(value) > high)):
            bounds = f"[{low}, {high}]" if high is not None else f"at least {low}"
            problems.add(f"generation_config.{snake(name)}", f"{snake(name)} must be {bounds}.")
    stops = field(config, "stopSequences") or []
    if len(stops) > 5:
        problems.add("generation_config.stop_sequences", "stop_sequences must have at most 5 items.")
    mime_type = field(config, "responseMimeType") or "text/plain"
    if mime_type not in _MIME_TYPES:
        problems.add("generation_config.response_mime_type", "allowed mimetypes are `text/plain`, "
                                                             "`application/json`, and `text/x.enum`.")
    schema = field(config, "responseSchema")
    json_schema = field(config, "responseJsonSchema")
    if schema is not None and json_schema is not None:
        problems.add("generation_config.response_json_schema", "response_schema and response_json_schema cannot "
                                                               "both be set.")
    if (schema is not None or json_schema is not None) and mime_type == "text/plain":
        problems.add("generation_config.response_mime_type", "response_mime_type must be `application/json` or "
                                                             "`text/x.enum` when a response schema is set.")
    if schema is not None:
        check_schema(schema, "generation_config.response_schema", problems)
        json_schema = to_json_schema(schema)
    if mime_type == "text/x.enum" and not (isinstance(json_schema, dict) and json_schema.get("enum")):
        problems.add("generation_config.response_schema", "an enum schema is required for `text/x.enum`.")
    return mime_type, json_schema if isinstance(json_schema, dict) else None


def check_schema(schema: dict[str, Any], where: str, problems: Problems) -> None:
    """What Gemini refuses in an OpenAPI-subset Schema, beyond the proto's own field checks."""
    kind = str(field(schema, "type") or "").upper()
    props = field(schema, "properties")
    if kind == "OBJECT" and not props and where.endswith(".parameters"):
        problems.add(f"{where}.properties", "should be non-empty for OBJECT type")
    if field(schema, "enum") and kind not in ("STRING", ""):
        problems.add(f"{where}.enum", "only allowed for STRING type")
    names = list(props) if isinstance(props, dict) else []
    for k, name in enumerate(field(schema, "required") or []):
        if name not in names:
            problems.add(f"{where}.required[{k}]", "property is not defined")
    for k, name in enumerate(names):
        check_schema(props[name], f"{where}.properties[{k}].value", problems)
    items = field(schema, "items")
    if isinstance(items, dict):
        check_schema(items, f"{where}.items", problems)
    for k, option in enumerate(field(schema, "anyOf") or []):
        check_schema(option, f"{where}.any_of[{k}]", problems)


def to_json_schema(schema: Any) -> Any:
    """Gemini's Schema (upper-case types, `nullable`) as the JSON Schema the fake model samples from."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        name = key if key.startswith("$") else re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
        if name == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif name == "properties" and isinstance(value, dict):
            out["properties"] = {k: to_json_schema(v) for k, v in value.items()}
        elif name in ("items", "anyOf"):
            out[name] = to_json_schema(value)
        elif name not in ("nullable", "propertyOrdering", "example"):
            out[name] = value
    return out


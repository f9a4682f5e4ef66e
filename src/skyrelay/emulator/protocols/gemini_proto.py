"""Proto3-JSON checking for Google's GenerateContentRequest and embedding requests, as Google's front end parses them.

Google parses a request body against the proto message before the model sees it: field names may be lowerCamel
or snake_case, unknown names are rejected ("Invalid JSON payload received. Unknown name ..."), scalars and enums
must have the right type, and every problem of the body is reported at once, with paths in snake_case
(`tools[0].function_declarations[1].parameters.properties[2].value.type`: map entries by position).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from ..generate import json_text
from .gemini_errors import GoogleError

# A field's kind: a scalar name, "enum:<Name>", "msg:<Name>", "list:<kind>", "map:<kind>", "struct" (any JSON
# object), "any" (accepted unchecked: features the fake model does not use).
_SCHEMA_FIELDS = {
    "type": "enum:Type", "format": "string", "title": "string", "description": "string", "nullable": "bool",
    "enum": "list:string", "maxItems": "int64", "minItems": "int64", "properties": "map:msg:Schema",
    "required": "list:string", "minProperties": "int64", "maxProperties": "int64", "minLength": "int64",
    "maxLength": "int64", "pattern": "string", "example": "any", "anyOf": "list:msg:Schema",
    "propertyOrdering": "list:string", "default": "any", "items": "msg:Schema", "minimum": "double",
    "maximum": "double", "$ref": "string", "$defs": "map:msg:Schema",
}
MESSAGES: dict[str, dict[str, str]] = {
    "GenerateContentRequest": {
        "model": "string", "contents": "list:msg:Content", "systemInstruction": "msg:Content",
        "tools": "list:msg:Tool", "toolConfig": "msg:ToolConfig", "safetySettings": "list:msg:SafetySetting",
        "generationConfig": "msg:GenerationConfig", "cachedContent": "string", "labels": "map:string",
        "serviceTier": "any", "store": "bool", "continuationToken": "any", "modelArmorConfig": "any",
    },
    "Content": {"role": "string", "parts": "list:msg:Part"},
    "Part": {
        "text": "string", "inlineData": "msg:Blob", "fileData": "msg:FileData", "functionCall": "msg:FunctionCall",
        "functionResponse": "msg:FunctionResponse", "executableCode": "any", "codeExecutionResult": "any",
        "thought": "bool", "thoughtSignature": "bytes", "videoMetadata": "any", "mediaResolution": "any",
        "partMetadata": "struct",
    },
    "Blob": {"mimeType": "string", "data": "bytes", "displayName": "string"},
    "FileData": {"mimeType": "string", "fileUri": "string", "displayName": "string"},
    "FunctionCall": {"id": "string", "name": "string", "args": "struct", "partialArgs": "any", "willContinue": "bool"},
    "FunctionResponse": {"id": "string", "name": "string", "response": "struct", "parts": "any",
                         "willContinue": "bool", "scheduling": "any"},
    "Tool": {
        "functionDeclarations": "list:msg:FunctionDeclaration", "googleSearch": "any", "googleSearchRetrieval": "any",
        "codeExecution": "any", "urlContext": "any", "retrieval": "any", "computerUse": "any", "fileSearch": "any",
        "googleMaps": "any", "enterpriseWebSearch": "any", "mcpServers": "any",
    },
    "FunctionDeclaration": {
        "name": "string", "description": "string", "parameters": "msg:Schema", "parametersJsonSchema": "json",
        "response": "msg:Schema", "responseJsonSchema": "json", "behavior": "any",
    },
    "ToolConfig": {"functionCallingConfig": "msg:FunctionCallingConfig", "retrievalConfig": "any",
                   "includeServerSideToolInvocations": "any"},
    "FunctionCallingConfig": {"mode": "enum:Mode", "allowedFunctionNames": "list:string"},
    "SafetySetting": {"category": "string", "threshold": "string", "method": "string"},
    "GenerationConfig": {
        "stopSequences": "list:string", "responseMimeType": "string", "responseSchema": "msg:Schema",
        "responseJsonSchema": "json", "responseModalities": "list:string", "candidateCount": "int32",
        "maxOutputTokens": "int32", "temperature": "float", "topP": "float", "topK": "float", "seed": "int32",
        "presencePenalty": "float", "frequencyPenalty": "float", "responseLogprobs": "bool", "logprobs": "int32",
        "enableEnhancedCivicAnswers": "bool", "speechConfig": "any", "thinkingConfig": "msg:ThinkingConfig",
        "imageConfig": "any", "mediaResolution": "any", "audioTimestamp": "bool", "routingConfig": "any",
        "modelSelectionConfig": "any", "enableAffectiveDialog": "bool",
    },
    "ThinkingConfig": {"includeThoughts": "bool", "thinkingBudget": "int32", "thinkingLevel": "any"},
    "Schema": _SCHEMA_FIELDS,
    # models.embedContent / models.batchEmbedContents (the Gemini API only)
    "EmbedContentRequest": {
        "model": "string", "content": "msg:Content", "taskType": "enum:TaskType", "title": "string",
        "outputDimensionality": "int32", "embedContentConfig": "msg:EmbedContentConfig",
    },
    "EmbedContentConfig": {
        "taskType": "enum:TaskType", "title": "string", "outputDimensionality": "int32", "autoTruncate": "bool",
        "documentOcr": "bool", "audioTrackExtraction": "bool",
    },
    "BatchEmbedContentsRequest": {"model": "string", "requests": "list:msg:EmbedContentRequest"},
}
ENUMS = {
    "Type": ("TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"),
    "Mode": ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"),
    "TaskType": ("TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
                 "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"),
}
_SCALAR_NAMES = {"string": "TYPE_STRING", "bool": "TYPE_BOOL", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                 "float": "TYPE_FLOAT", "double": "TYPE_DOUBLE", "bytes": "TYPE_BYTES"}
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return _SNAKE.sub("_", name).lower()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def field(obj: dict[str, Any], name: str, default: Any = None) -> Any:
    """A field by its lowerCamel name, whichever spelling the client used."""
    if name in obj:
        return obj[name]
    return obj.get(snake(name), default)


class ProtoChecker:
    """Walks a JSON body against MESSAGES, collecting every problem before answering."""

    def __init__(self, package: str):
        self.package = package  # e.g. google.ai.generativelanguage.v1beta
        self.violations: list[tuple[str, str]] = []

    def check(self, value: Any, message: str, path: str = "") -> None:
        if not isinstance(value, dict):
            self._bad_value(path, f"type.googleapis.com/{self.package}.{message}", value)
            return
        fields = MESSAGES[message]
        for key, item in value.items():
            name = key if key in fields else camel(key)
            if name not in fields or (name != key and key != snake(name)):
                at = f" at '{path}'" if path else ""
                self.violations.append((path, f"Invalid JSON payload received. Unknown name \"{key}\"{at}: "
                                              f"Cannot find field."))
                continue
            if item is None:
                continue
            self._value(item, fields[name], f"{path}.{snake(name)}" if path else snake(name))

    def _value(self, value: Any, kind: str, path: str) -> None:
        if kind in ("any", "json"):
            return
        if kind == "struct":
            if not isinstance(value, dict):
                self._bad_value(path, "type.googleapis.com/google.protobuf.Struct", value)
            return
        if kind.startswith("list:"):
            items = value if isinstance(value, list) else [value]  # proto JSON accepts a lone value
            for i, item in enumerate(items):
                self._value(item, kind[5:], f"{path}[{i}]")
            return
        if kind.startswith("map:"):
            if not isinstance(value, dict):
                self._bad_value(path, "map", value)
                return
            for i, item in enumerate(value.values()):
                self._value(item, kind[4:], f"{path}[{i}].value")
            return
        if kind.startswith("msg:"):
            self.check(value, kind[4:], path)
            return
        if kind.startswith("enum:"):
            name = kind[5:]
            if not (isinstance(value, str) and value.upper() in ENUMS[name]):
                self._bad_value(path, f"type.googleapis.com/{self.package}.{_enum_owner(name)}", value)
            return
        if not _scalar_ok(kind, value):
            self._bad_value(path, _SCALAR_NAMES[kind], value)

    def _bad_value(self, path: str, type_name: str, value: Any) -> None:
        rendered = json_text(value) if not isinstance(value, str) else f"\"{value}\""
        if type_name == "TYPE_BYTES":
            rendered = f"Base64 decoding failed for {rendered}"
        self.violations.append((path, f"Invalid value at '{path}' ({type_name}), {rendered}"))

    def raise_if_any(self) -> None:
        if self.violations:
            raise violation_error(self.violations)


def violation_error(violations: list[tuple[str, str]]) -> GoogleError:
    details = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": f, "description": d} for f, d in violations]}]
    return GoogleError(400, "\n".join(d for _, d in violations), details)


def _enum_owner(name: str) -> str:
    return "FunctionCallingConfig.Mode" if name == "Mode" else name


def _scalar_ok(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("int32", "int64"):
        if isinstance(value, str):  # 64-bit integers travel as strings; proto JSON takes both
            return bool(re.fullmatch(r"-?\d+", value))
        return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
    if kind in ("float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bytes":
        return isinstance(value, str) and decode_bytes(value) is not None
    return False


def decode_bytes(value: str) -> bytes | None:
    """Proto JSON bytes: standard or URL-safe base64, padding optional."""
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None

"""Message content (OpenAI content parts) -> Gemini parts: text, inline data (base64) and file URIs."""

from __future__ import annotations

import mimetypes
from typing import Any

from ... import errors
from ..content import image_url, read_data_url

_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac", "aac": "audio/aac",
                "ogg": "audio/ogg", "opus": "audio/ogg", "pcm16": "audio/pcm"}
# Files uploaded through the Gemini API's Files service: the only https URIs Gemini reads.
_GEMINI_FILES = "https://generativelanguage.googleapis.com/"


def text_of(content: Any, where: str, param: str) -> str:
    """The text of a content that may only hold text (system prompts, assistant turns, tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("text", "refusal") and isinstance(part.get(kind), str):
                texts.append(part[kind])
            else:
                raise errors.InvalidRequest(
                    f"{param}: only text parts are allowed here (got {kind!r}){_by(where)}", param=param)
        return "".join(texts)
    raise errors.InvalidRequest(f"{param} must be a string or an array of content parts", param=param)


def content_parts(content: Any, where: str, param: str, kind: str = "gemini") -> list[dict[str, Any]]:
    """Gemini parts for a user message's content."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise errors.InvalidRequest(f"{param} must be a string or an array of content parts", param=param)
    parts = []
    for i, part in enumerate(content):
        converted = _part(part, where, f"{param}[{i}]", kind)
        if converted is not None:
            parts.append(converted)
    return parts


def _part(part: Any, where: str, param: str, kind: str) -> dict[str, Any] | None:
    part_type = part.get("type") if isinstance(part, dict) else None
    if part_type == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise errors.InvalidRequest(f"{param}.text must be a string", param=param)
        return {"text": text} if text else None
    if part_type == "image_url":
        return url_part(image_url(part.get("image_url"), param), where, param, kind, "image")
    if part_type == "input_audio":
        audio = part.get("input_audio") or {}
        mime = _AUDIO_TYPES.get(audio.get("format"))
        if mime is None or not isinstance(audio.get("data"), str):
            raise errors.UnsupportedFeature(f"{param}: audio format {audio.get('format')!r} is not supported{_by(where)}",
                                        param=param)
        return {"inlineData": {"mimeType": mime, "data": audio["data"]}}
    if part_type == "file":
        file = part.get("file") or {}
        data = file.get("file_data")
        if isinstance(data, str):
            if not data.startswith("data:"):  # OpenAI's own form: bare base64, typed by the file name
                mime = mimetypes.guess_type(str(file.get("filename") or ""))[0] or "application/pdf"
                return {"inlineData": {"mimeType": mime, "data": data}}
            return url_part(data, where, param, kind, "file")
        file_id = file.get("file_id")
        if isinstance(file_id, str):
            return url_part(file_id, where, param, kind, "file")
        raise errors.InvalidRequest(f"{param}: a file part needs file_data or file_id", param=param)
    raise errors.UnsupportedFeature(f"{param}: content parts of type {part_type!r} are not supported{_by(where)}",
                                param=param)


def url_part(url: str, where: str, param: str, kind: str, what: str) -> dict[str, Any]:
    """data: URLs -> inlineData; gs:// (and Gemini Files API) URIs -> fileData; other URLs are refused."""
    if url.startswith("data:"):
        mime, data = read_data_url(url, param)
        return {"inlineData": {"mimeType": mime, "data": data}}
    if url.startswith("gs://") or (kind == "gemini" and url.startswith(_GEMINI_FILES)):
        file_data = {"fileUri": url}
        mime = mimetypes.guess_type(url)[0]
        if mime:
            file_data = {"mimeType": mime, "fileUri": url}
        return {"fileData": file_data}
    scheme = url.split(":", 1)[0] if ":" in url else "plain"
    raise errors.UnsupportedFeature(
        f"{param}: {what} URLs of scheme '{scheme}' are not supported{_by(where)}: Gemini reads only inline data "
        f"and gs:// URIs; send the {what} as a base64 data: URL", param=param)


def _by(where: str) -> str:
    return f" by {where}" if where else ""

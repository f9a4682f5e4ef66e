"""The Gemini API's embeddings: POST /{v}/models/{model}:embedContent and :batchEmbedContents.

From the Gemini API reference: an EmbedContentRequest is {model, content, taskType, title, outputDimensionality,
embedContentConfig (the same settings)}; the model comes from the URL. A BatchEmbedContentsRequest is {requests:
[EmbedContentRequest]}, each naming `models/{the URL's model}`, at most 100 of them. Replies are {"embedding":
{"values"}} or {"embeddings": [{"values"}, ...]} in request order, with usageMetadata.promptTokenCount.

Vectors come from emulator/embeddings.py at the cloud's `embedding_dimensions` (the model's full size).
outputDimensionality truncates them from the end without renormalising, as Google documents: only the full-size
vector has unit length. The task type and title change the vector, as they do Google's.
"""

from __future__ import annotations

from typing import Any

from ..embeddings import embed
from ..generate import estimate_tokens
from .gemini_proto import ProtoChecker, field
from .gemini_request import Problems, check_content

EMBED_METHODS = frozenset({"embedContent", "batchEmbedContents"})
MAX_BATCH = 100  # "at most 100 requests can be in one batch", as Google words the refusal


class EmbedItem:
    """One input to embed: what the vector derives from, its size, and its tokens."""

    __slots__ = ("key", "dimensions", "tokens")

    def __init__(self, key: str, dimensions: int | None, tokens: int):
        self.key = key
        self.dimensions = dimensions  # None: the model's full size
        self.tokens = tokens


def embed_request(data: dict[str, Any], model: str, package: str, full: int, *, batch: bool) -> list[EmbedItem]:
    """The validated inputs of an embedContent (one) or batchEmbedContents (many) body; GoogleError if invalid."""
    checker = ProtoChecker(package)
    checker.check(data, "BatchEmbedContentsRequest" if batch else "EmbedContentRequest")
    checker.raise_if_any()
    if not batch:
        problems = Problems("EmbedContentRequest")
        items = [_item(data, "", full, problems)]
        problems.raise_if_any()
        return items
    problems = Problems("BatchEmbedContentsRequest")
    requests = field(data, "requests") or []
    requests = requests if isinstance(requests, list) else [requests]
    if not requests:
        problems.add("requests", "requests is not specified")
    elif len(requests) > MAX_BATCH:
        problems.add("requests", f"at most {MAX_BATCH} requests can be in one batch")
    items = []
    for i, request in enumerate(requests):
        name = field(request, "model")
        if not name:
            problems.add(f"requests[{i}].model", "model is not specified")
        elif name != f"models/{model}":
            problems.add(f"requests[{i}].model", f"the model of each request must match the batch's model "
                                                 f"(models/{model}), got {name}")
        items.append(_item(request, f"requests[{i}].", full, problems))
    problems.raise_if_any()
    return items


def _item(request: dict[str, Any], where: str, full: int, problems: Problems) -> EmbedItem:
    content = field(request, "content")
    texts: list[str] = []
    if content is None:
        problems.add(f"{where}content", "content is not specified")
    else:
        check_content(content, f"{where}content", problems)
        texts = [_part_text(part) for part in field(content, "parts") or [] if isinstance(part, dict)]
    config = field(request, "embedContentConfig") or {}
    dimensions = _setting(config, request, "outputDimensionality")
    if dimensions is not None:
        dimensions = int(float(dimensions))
        if not 1 <= dimensions <= full:
            problems.add(f"{where}output_dimensionality", f"output_dimensionality must be between 1 and {full}, "
                                                          f"got {dimensions}")
    text = "\n".join(texts)
    task = str(_setting(config, request, "taskType") or "TASK_TYPE_UNSPECIFIED").upper()
    title = _setting(config, request, "title") or ""
    key = text if task == "TASK_TYPE_UNSPECIFIED" and not title else f"{task}\x00{title}\x00{text}"
    return EmbedItem(key, dimensions, estimate_tokens(text))


def _setting(config: dict[str, Any], request: dict[str, Any], name: str) -> Any:
    """embedContentConfig's value, else the request's own (older) field."""
    value = field(config, name)
    return value if value is not None else field(request, name)


def _part_text(part: dict[str, Any]) -> str:
    """A part as the vector's input: its text, or a stand-in naming its media (still deterministic)."""
    if field(part, "text") is not None:
        return field(part, "text")
    blob = field(part, "inlineData") or field(part, "fileData") or {}
    return f"<{field(blob, 'mimeType') or 'media'}:{field(blob, 'data') or field(blob, 'fileUri') or ''}>"


def embeddings_body(items: list[EmbedItem], model: str, full: int, *, batch: bool) -> dict[str, Any]:
    vectors = [{"values": embed(model, item.key, full)[:item.dimensions or full].tolist()} for item in items]
    usage = {"promptTokenCount": sum(item.tokens for item in items)}
    if batch:
        return {"embeddings": vectors, "usageMetadata": usage}
    return {"embedding": vectors[0], "usageMetadata": usage}

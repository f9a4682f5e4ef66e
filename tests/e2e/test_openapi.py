"""The gateway's own OpenAPI document: served as it is in the file, naming every route the gateway serves and
nothing it does not, valid OpenAPI 3.1, and true to what the routes answer.

tests/support/oas-3.1-schema.json is the OpenAPI Initiative's published schema of OAS 3.1 documents
(https://spec.openapis.org/oas/3.1/schema/2022-10-07), kept here so the check needs no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml
from jsonschema import Draft202012Validator

from skyrelay.server.openapi_routes import OPENAPI_PATH

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "openapi.yaml"
PACKAGE_COPY = ROOT / "src" / "skyrelay" / "server" / "openapi.yaml"
OAS_SCHEMA = ROOT / "tests" / "support" / "oas-3.1-schema.json"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))


def operations(document):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_docs_copy_is_the_package_file():
    # The package data is the one file (an installed gateway serves it); docs/ links to it.
    assert DOC_PATH.is_symlink() and not Path(DOC_PATH.readlink()).is_absolute()
    assert DOC_PATH.resolve() == PACKAGE_COPY.resolve()


def test_the_served_document_is_the_file_and_needs_no_key(stack, document):
    resp = httpx.get(stack.origin + OPENAPI_PATH, timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json() == json.loads(json.dumps(document))


def test_every_route_the_gateway_registers_is_documented(stack, document):
    documented = set(document["paths"])
    # A prefix route serves every path under its prefix: the document names its one parameter (`{model}`, ...).
    # The shortest documented path under the prefix is the route's own (`/v1/responses/{response_id}`, not its
    # `/input_items`); the OpenAI routes are also served without /v1.
    def documented_under(prefix: str) -> str:
        for full in (prefix, "/v1" + prefix):  # as registered (/admin/keys/), or the OpenAI route's /v1 spelling
            found = min((p for p in documented if p.startswith(full + "{")), key=len, default=None)
            if found is not None:
                return found
        return prefix

    prefixed = [(documented_under(prefix), route) for prefix, route in stack.gateway.prefix_routes]
    for path, route in [*stack.gateway.routes.items(), *prefixed]:
        # The OpenAI routes are also served without /v1 (the document says so once, in its description).
        name = path if path in documented else "/v1" + path
        assert name in documented, path
        for method in (route.method, *route.other_methods):
            assert method.lower() in document["paths"][name], (path, method)


def test_every_documented_operation_is_served(stack, document):
    with httpx.Client(base_url=stack.origin, timeout=10, headers={"authorization": f"Bearer {stack.key}"}) as client:
        for path, method, _ in operations(document):
            path = path.replace("{model}", "chat").replace("{asset}", "dashboard.js")
            resp = client.request(method.upper(), path, json={} if method == "post" else None)
            served = not (resp.status_code == 404 and resp.json()["error"].get("code") == "unknown_url")
            served = served and resp.status_code != 405
            assert served, (method, path, resp.status_code, resp.text)


def test_the_document_is_valid_openapi_3_1(document):
    schema = json.loads(OAS_SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    for name, component in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(component)
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    for ref in _refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]


def test_the_security_schemes_are_the_three_ways_to_send_the_key(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert {(s["in"], s["name"]) for s in schemes.values() if s["type"] == "apiKey"} == {
        ("header", "x-api-key"), ("header", "api-key")}
    unauthenticated = {path for path, route in _gateway_routes(document) if not route}
    assert unauthenticated == {"/health/live", "/health/ready", "/openapi.json", "/ui", "/ui/{asset}"}


def test_answers_match_the_documented_schemas(stack, document):
    with httpx.Client(base_url=stack.origin, timeout=10, headers={"authorization": f"Bearer {stack.key}",
                                                                  "x-api-key": stack.key}) as client:
        checks = [
            (client.get("/v1/models"), "ModelList"),
            (client.post("/v1/chat/completions", json={"model": "chat", "messages": []}), "OpenAIError"),
            (client.post("/v1/embeddings", json={"model": "embed", "input": "hi"}), "EmbeddingList"),
            (client.post("/v1/chat/completions", json={"model": "chat", "max_tokens": 5,
                                                       "messages": [{"role": "user", "content": "hi"}]}),
             "ChatCompletion"),
            (client.post("/v1/responses", json={"model": "chat", "input": "hi", "max_output_tokens": 16}),
             "ResponseObject"),
            (client.post("/v1/responses", json={"model": "chat"}), "OpenAIError"),
            (client.post("/v1/messages", json={"model": "chat", "max_tokens": 5,
                                               "messages": [{"role": "user", "content": "hi"}]}), "Message"),
            (client.post("/v1/messages", json={"model": "chat"}), "AnthropicError"),
            (client.post("/v1/messages/count_tokens", content=b"[" * 200), "AnthropicError"),
            (client.get("/admin/stats"), "AdminStats"),
        ]
    for resp, name in checks:
        validator = Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})
        assert not list(validator.iter_errors(resp.json())), (name, resp.text)



def _gateway_routes(document):
    """Each documented operation and whether it asks for a key."""
    default = bool(document["security"])
    for path, _, op in operations(document):
        yield path, bool(op["security"]) if "security" in op else default


def _refs(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)

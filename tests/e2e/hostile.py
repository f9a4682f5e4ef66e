"""What the hostile-input suites share: a gateway over every provider kind, each deployment alone in a group of its
own (so a body can be aimed at one cloud's request builder), and the checks every answer must pass.

The checks are the rule for input the gateway did not expect: a 4xx in the route's own error format, never a
5xx, and never a mark against any deployment's health (a breaker one client opens is an outage for everyone)."""

from __future__ import annotations

import httpx2 as httpx

from skyrelay.routing.health import CLOSED

from . import test_multicloud as multicloud
from .harness import Stack, start_stack

FAST = {"ttft_ms": 0, "tokens_per_second": 100000, "output_tokens": 2}
EMBED_GEMINI = "gemini-embedding-001"
CLOUDS = [
    {**cloud, **FAST} for cloud in multicloud.CLOUDS if cloud["name"] not in ("azure", "google", "vertex")
] + [
    {"name": "azure", "protocol": "azure", **FAST, "deployments": [
        {"name": "gpt-4o", "model": "gpt-4o"}, {"name": "embed-small", "model": "text-embedding-3-small"}]},
    {"name": "google", "protocol": "gemini", **FAST},
    {"name": "vertex", "protocol": "vertex", **FAST, "options": {"project": "acme", "location": "europe-west4"}},
]
CHAT_DEPLOYMENTS = multicloud.DEPLOYMENTS
EMBED_DEPLOYMENTS = ("azure-embed", "gemini-embed", "vllm-embed")  # the kinds that embed
MAX_BODY_BYTES = 256 * 1024


def groups(clouds) -> dict:
    chat = multicloud.groups(clouds)["chat"]["deployments"]
    by_name = {d["name"]: d for d in chat}
    embed = [
        {**by_name["azure-eastus"], "name": "azure-embed", "model": "embed-small"},
        {**by_name["gemini-global"], "name": "gemini-embed", "model": EMBED_GEMINI},
        {**by_name["vllm-cluster"], "name": "vllm-embed", "model": "text-embedding-3-small"},
    ]
    alone = {f"chat-{d['name']}": {"deployments": [d]} for d in chat}
    alone.update({f"embed-{d['name']}": {"deployments": [d]} for d in embed})
    return alone


def chat_models() -> list[str]:
    return [f"chat-{name}" for name in CHAT_DEPLOYMENTS]


def embed_models() -> list[str]:
    return [f"embed-{name}" for name in EMBED_DEPLOYMENTS]


def start_hostile_stack(bg) -> Stack:
    return start_stack(bg, CLOUDS, groups, server={"max_body_bytes": MAX_BODY_BYTES})


class Poster:
    """Sends raw bodies over one keep-alive connection and checks each answer against the rule."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.client = httpx.Client(base_url=stack.origin, timeout=15, headers={
            "authorization": f"Bearer {stack.key}", "x-api-key": stack.key, "content-type": "application/json"})

    def close(self) -> None:
        self.client.close()

    def post(self, path: str, body: bytes) -> httpx.Response:
        resp = self.client.post(path, content=body)
        assert resp.status_code < 500, (path, body[:300], resp.status_code, resp.text[:500])
        if resp.status_code >= 400:
            check_error_format(path, resp)
        return resp


def check_error_format(path: str, resp: httpx.Response) -> None:
    body = resp.json()
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, resp.text
        assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str), resp.text
        assert resp.headers.get("request-id"), resp.headers
    else:
        error = body["error"]
        assert isinstance(error["message"], str) and isinstance(error["type"], str), resp.text
        assert {"param", "code"} <= set(error), resp.text


def assert_no_deployment_charged(stack: Stack) -> None:
    """No breaker open, no failure on any deployment's record, and every deployment still serves."""
    dispatcher = stack.gateway.dispatcher
    now = dispatcher.clock()
    names = CHAT_DEPLOYMENTS + EMBED_DEPLOYMENTS
    assert {name: dispatcher.health.state(name, now) for name in names} == dict.fromkeys(names, CLOSED)
    assert {name: record["failures"] for name, record in dispatcher.health.snapshot().items()
            if record["failures"]} == {}
    with httpx.Client(base_url=stack.base_url, timeout=15,
                      headers={"authorization": f"Bearer {stack.key}"}) as client:
        for model in chat_models():
            resp = client.post("/chat/completions", json={
                "model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
            assert resp.status_code == 200, (model, resp.text)
        for model in embed_models():
            resp = client.post("/embeddings", json={"model": model, "input": "hi"})
            assert resp.status_code == 200, (model, resp.text)

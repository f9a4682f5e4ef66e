"""A request feature a cloud cannot honour is a clear 400 naming the feature and the deployment, or, where the
model group says `on_unsupported: fail_over`, a reason to route elsewhere: never silently dropped."""

from __future__ import annotations

import openai
import pytest

from .harness import UPSTREAM_KEY, openai_deployment, start_stack

CLOUDS = [{"name": "claude", "protocol": "anthropic"}, {"name": "gpt", "protocol": "openai"}]
HELLO = [{"role": "user", "content": "hello"}]


def groups(policy: str):
    def build(clouds):
        claude = {"name": "anthropic-direct", "kind": "anthropic", "base_url": clouds["claude"].base_url,
                  "api_key": UPSTREAM_KEY, "model": "claude-3-5-haiku-latest"}
        return {
            "chat": {"on_unsupported": policy, "deployments": [claude], "fallbacks": ["gpt"]},
            "claude-only": {"on_unsupported": policy, "deployments": [dict(claude, name="anthropic-only")]},
            "gpt": {"deployments": [openai_deployment("openai-direct", clouds["gpt"])]},
        }
    return build


@pytest.fixture(scope="module")
def rejecting(bg):
    stack = start_stack(bg, CLOUDS, groups("reject"))
    yield stack
    stack.close()


@pytest.fixture(scope="module")
def failing_over(bg):
    stack = start_stack(bg, CLOUDS, groups("fail_over"))
    yield stack
    stack.close()


def test_reject_names_the_feature_and_the_deployment(rejecting):
    with pytest.raises(openai.BadRequestError) as exc:
        rejecting.openai().chat.completions.create(model="chat", messages=HELLO, logprobs=True)
    message = str(exc.value)
    assert "logprobs" in message and "anthropic-direct" in message
    assert rejecting.clouds["gpt"].stats["requests"] == 0  # not routed elsewhere: the group said reject


def test_supported_requests_still_go_to_the_first_choice(failing_over):
    raw = failing_over.openai().chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    assert raw.headers["x-skyrelay-deployment"] == "anthropic-direct"


@pytest.mark.parametrize("stream", [False, True])
def test_fail_over_routes_to_a_deployment_that_can(failing_over, stream):
    client = failing_over.openai()
    with client.chat.completions.with_streaming_response.create(
            model="chat", messages=HELLO, logprobs=True, stream=stream) as raw:
        assert raw.headers["x-skyrelay-deployment"] == "openai-direct"
        assert raw.headers["x-skyrelay-attempts"] == "1"  # a local refusal spends no attempt
        raw.parse()


def test_fail_over_with_nobody_able_is_still_a_400(failing_over):
    with pytest.raises(openai.BadRequestError) as exc:
        failing_over.openai().chat.completions.create(model="claude-only", messages=HELLO, logprobs=True)
    assert "can serve this request" in str(exc.value) and "logprobs" in str(exc.value)

"""What every cloud's throttling must do to its deployment's health, checked the same way for each cloud."""

from __future__ import annotations

import openai
import pytest

HELLO = [{"role": "user", "content": "Say hello."}]


def assert_throttle_cools_down_briefly(stack, cloud: str, deployment: str, model: str, cloud_words: str) -> None:
    """429s without Retry-After cool `deployment` down for 1 s, then 2 s, 4 s while they repeat, never count as
    breaker failures, and the first success clears them. The gateway's clock is frozen and moved by hand."""
    dispatcher = stack.gateway.dispatcher
    now = [1000.0]
    dispatcher.clock = lambda: now[0]
    health = dispatcher.health
    stack.set_faults(cloud, [{"kind": "status", "status": 429, "retry_after": None}])
    client = stack.openai()
    with pytest.raises(openai.RateLimitError, match=cloud_words):
        client.chat.completions.create(model=model, messages=HELLO)
    assert health.unavailable_reason(deployment, now[0]) == "cooling down"
    assert health.seconds_until_available(deployment, now[0]) == 1.0
    with pytest.raises(openai.RateLimitError) as caught:  # answered by the gateway: the cloud is left alone
        list(client.chat.completions.create(model=model, messages=HELLO, stream=True))
    assert caught.value.response.headers["retry-after"] == "1"
    assert stack.clouds[cloud].stats["requests"] == 1
    for doubled in (2.0, 4.0):  # throttled again once each cool-down is over
        now[0] += health.seconds_until_available(deployment, now[0])
        with pytest.raises(openai.RateLimitError):
            list(client.chat.completions.create(model=model, messages=HELLO, stream=True))
        assert health.seconds_until_available(deployment, now[0]) == doubled
    assert health.snapshot()[deployment]["failures"] == 0  # never counted towards the breaker
    stack.clear_faults(cloud)
    now[0] += 4.0
    assert client.chat.completions.create(model=model, messages=HELLO).choices[0].message.content
    assert health.snapshot() == {}  # the cloud accepts again: the throttle is forgotten

"""The failure mapping every provider shares: statuses, Retry-After, and what may reach a client."""

from __future__ import annotations

import pytest

from skyrelay import errors
from skyrelay.providers.base import MAX_RETRY_AFTER, error_for_status, retry_after_seconds
from skyrelay.server.app import error_response
from skyrelay.protocols.openai import render_error


@pytest.mark.parametrize("headers, expected", [
    ({}, None),
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after": "-3"}, 0.0),
    ({"retry-after-ms": "2500", "retry-after": "9"}, 2.5),
    ({"retry-after": "inf"}, MAX_RETRY_AFTER),
    ({"retry-after": "1e308"}, MAX_RETRY_AFTER),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
])
def test_retry_after_is_always_a_sane_number(headers, expected):
    assert retry_after_seconds(headers) == expected


def test_an_absurd_retry_after_still_renders_as_a_429():
    err = error_for_status(429, "slow down", "d1", retry_after_seconds({"retry-after": "inf"}))
    resp = error_response(err, render_error)
    assert resp.status == 429
    assert dict(resp.headers)["retry-after"] == str(int(MAX_RETRY_AFTER))


@pytest.mark.parametrize("status, kind", [
    (429, errors.UpstreamRateLimited), (401, errors.UpstreamAuthFailed), (403, errors.UpstreamAuthFailed),
    (404, errors.UpstreamUnavailable), (408, errors.UpstreamTimeout), (500, errors.UpstreamUnavailable),
    (503, errors.UpstreamUnavailable), (400, errors.UpstreamClientError), (422, errors.UpstreamClientError),
])
def test_status_table(status, kind):
    err = error_for_status(status, "upstream words", "d1")
    assert type(err) is kind
    assert err.retryable == (kind is not errors.UpstreamClientError)


def test_refused_credentials_never_echo_the_upstream_text():
    """OpenAI answers 'Incorrect API key provided: sk-proj-...abcd': that fragment must not reach a client or log."""
    err = error_for_status(401, "Incorrect API key provided: sk-proj-abcd1234", "east")
    assert "sk-proj" not in err.message
    assert "east" in err.message and "401" in err.message


async def test_a_body_the_cloud_cannot_encode_is_the_clients_mistake_and_is_never_sent():
    from skyrelay.config import Deployment
    from skyrelay.providers import build_provider

    # Port 1 has no listener: reaching the network would fail as a connect error instead.
    provider = build_provider(Deployment("d1", "g", "openai", model="m", base_url="http://127.0.0.1:1/v1"))
    deep: list = []
    for _ in range(300):
        deep = [deep]
    try:
        with pytest.raises(errors.InvalidRequest) as raised:
            await provider.post_json("/chat/completions", [], {"messages": deep})
        assert raised.value.status == 400 and "d1" in raised.value.message
    finally:
        await provider.aclose()

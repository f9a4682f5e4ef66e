"""`GET /v1/models` and `GET /v1/models/{id}` in Anthropic's shape for the anthropic SDK (which sends
anthropic-version), OpenAI's for the openai SDK, on the same paths."""

from __future__ import annotations

import anthropic
import pytest

from .harness import openai_deployment, start_stack

NAMES = ["claude", "haiku", "opus"]


@pytest.fixture(scope="module")
def models_stack(bg):
    stack = start_stack(bg, [{"name": "cloud-a"}],
                        lambda clouds: {n: {"deployments": [openai_deployment(n, clouds["cloud-a"])]} for n in NAMES})
    yield stack
    stack.close()


def client(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=10)


def test_list_and_retrieve_in_anthropic_shape(models_stack):
    page = client(models_stack).models.list()
    assert [m.id for m in page.data] == NAMES and page.has_more is False
    assert page.data[0].type == "model" and page.data[0].created_at.year >= 2024
    model = client(models_stack).models.retrieve("haiku")
    assert (model.id, model.type, model.display_name) == ("haiku", "model", "haiku")
    assert [m.id for m in models_stack.openai().models.list()] == NAMES  # the same path, OpenAI's shape


def test_pages_follow_the_sdk_auto_pagination(models_stack):
    assert [m.id for m in client(models_stack).models.list(limit=1)] == NAMES  # iterates page after page
    page = client(models_stack).models.list(limit=2, after_id="claude")
    assert [m.id for m in page.data] == ["haiku", "opus"] and page.last_id == "opus"
    page = client(models_stack).models.list(limit=1, before_id="opus")
    assert [m.id for m in page.data] == ["haiku"] and page.has_more is True


async def test_async_and_errors_in_anthropic_format(models_stack):
    async with anthropic.AsyncAnthropic(base_url=models_stack.origin, api_key=models_stack.key, max_retries=0) as c:
        assert (await c.models.retrieve("opus")).id == "opus"
        with pytest.raises(anthropic.NotFoundError) as caught:
            await c.models.retrieve("nope")
        assert caught.value.body["error"]["type"] == "not_found_error"
        with pytest.raises(anthropic.BadRequestError, match="limit"):
            await c.models.list(limit=0)


def test_an_anthropic_client_gets_anthropics_format_for_every_refusal_and_one_request_id(models_stack):
    """A bad key on /v1/models, and a URL the gateway does not serve, answered an anthropic SDK in OpenAI's
    format (no `type: error`, no request-id); a page's request-id was not the request's x-request-id."""
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic.Anthropic(base_url=models_stack.origin, api_key="sk-wrong", max_retries=0).models.list()
    assert refused.value.body["type"] == "error" and refused.value.body["error"]["type"] == "authentication_error"
    assert refused.value.response.headers["request-id"] == refused.value.response.headers["x-request-id"]
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client(models_stack).messages.batches.list()
    assert unknown.value.body["error"]["type"] == "not_found_error"
    page = client(models_stack).models.with_raw_response.list()
    assert page.headers["request-id"] == page.headers["x-request-id"]
    assert models_stack.openai().models.list().data  # an OpenAI client still gets OpenAI's format and shape

"""`GET /v1/models/{id}`: the openai SDK's `models.retrieve` answers for each model group, 404s in OpenAI's
format otherwise, and ids with `/`, `:` or percent-encoding mean what they say."""

from __future__ import annotations

import json

import httpx2 as httpx
import openai
import pytest

from tests.support.openai_schema import validate

from .harness import openai_deployment

SLASHED = "meta-llama/Llama-3.1-8B:instruct"


@pytest.fixture(scope="module")
def models_stack(bg):
    from .harness import start_stack

    def groups(clouds):
        cloud = clouds["cloud-a"]
        return {"chat": {"deployments": [openai_deployment("a", cloud)]},
                SLASHED: {"deployments": [openai_deployment("b", cloud)]}}

    stack = start_stack(bg, [{"name": "cloud-a"}], groups)
    yield stack
    stack.close()


def get(stack, path: str) -> httpx.Response:
    return httpx.get(f"{stack.origin}{path}", headers={"authorization": f"Bearer {stack.key}"}, timeout=10)


def test_retrieve_sync(models_stack):
    raw = models_stack.openai().models.with_raw_response.retrieve("chat")
    model = raw.parse()
    assert (model.id, model.object, model.owned_by) == ("chat", "model", "skyrelay")
    assert model.created == models_stack.gateway.started_at
    validate("Model", json.loads(raw.content))


async def test_retrieve_async(models_stack):
    model = await models_stack.async_openai().models.retrieve("chat")
    assert model.id == "chat" and model.object == "model"


def test_retrieve_an_id_with_slash_and_colon(models_stack):
    assert models_stack.openai().models.retrieve(SLASHED).id == SLASHED
    for path in (f"/v1/models/{SLASHED}", "/v1/models/meta-llama%2FLlama-3.1-8B%3Ainstruct", f"/models/{SLASHED}"):
        resp = get(models_stack, path)
        assert resp.status_code == 200 and resp.json()["id"] == SLASHED, path
        validate("Model", resp.json())


def test_percent_encoding_is_decoded_once(models_stack):
    assert get(models_stack, "/v1/models/ch%2561t").status_code == 404  # %25 -> "%", not decoded again to "a"


def test_unknown_model_is_openais_404(models_stack):
    with pytest.raises(openai.NotFoundError) as exc:
        models_stack.openai().models.retrieve("nope")
    assert exc.value.code == "model_not_found"
    resp = get(models_stack, "/v1/models/nope")
    assert resp.status_code == 404
    validate("ErrorResponse", resp.json())
    assert resp.json()["error"]["code"] == "model_not_found" and "nope" in resp.json()["error"]["message"]


def test_retrieve_needs_the_key_and_get(models_stack):
    assert httpx.get(f"{models_stack.base_url}/models/chat", timeout=10).status_code == 401
    resp = httpx.post(f"{models_stack.base_url}/models/chat", headers={"authorization": f"Bearer {models_stack.key}"},
                      timeout=10)
    assert resp.status_code == 405


def test_the_models_path_itself_still_lists(models_stack):
    assert get(models_stack, "/v1/models/").status_code == 404  # no id: not a model, not the list
    assert [m["id"] for m in get(models_stack, "/v1/models").json()["data"]] == ["chat", SLASHED]

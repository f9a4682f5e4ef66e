"""Stored Responses on SQLite and on PostgreSQL: `store: true` (OpenAI's default) keeps a response, whole or streamed,
in the gateway's database; GET /v1/responses/{id} returns it, input_items lists what it was asked, DELETE removes
it, and an unknown id is OpenAI's 404. `previous_response_id` continues a stored conversation: forwarded as is to
the deployment that produced it, and as the conversation itself to any other (another OpenAI deployment, or an
Anthropic one through the canonical core), as what reached each emulated cloud shows."""

from __future__ import annotations

import os
import uuid

import httpx2 as httpx
import openai
import pytest

from skyrelay.db import parse_url
from skyrelay.db.responses import ResponseStore
from tests.support.openai_schema import validate

from .harness import UPSTREAM_KEY, start_stack

GPT_ONLY = "sk-gpt-only"
POSTGRES = os.environ.get("SKYRELAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TIMEOUTS = {"connect": 1, "first_byte": 3, "total": 10}
CLOUDS = [{"name": "openai-a", "protocol": "openai"}, {"name": "openai-b", "protocol": "openai"},
          {"name": "anthropic", "protocol": "anthropic"}]


def groups(clouds) -> dict:
    def deployment(name, cloud, kind="openai", model="gpt-4o-mini"):
        return {"name": name, "kind": kind, "base_url": clouds[cloud].base_url, "model": model,
                "api_key": UPSTREAM_KEY, "timeouts": TIMEOUTS}
    return {"gpt": {"deployments": [deployment("oa", "openai-a")]},
            "gpt-b": {"deployments": [deployment("ob", "openai-b")]},
            "claude": {"deployments": [deployment("an", "anthropic", "anthropic", "claude-3-5-sonnet-latest")]}}


def _postgres_database():
    """A database of this run's own on the shared server, dropped afterwards; None when there is no server."""
    try:
        import psycopg
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=2)
    except Exception:
        return None, None
    name = f"skyrelay_responses_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return admin, POSTGRES.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, bg, tmp_path_factory):
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('responses')}/skyrelay.db"
    else:
        admin, url = _postgres_database()
        if admin is None:
            pytest.skip(f"no PostgreSQL at {POSTGRES}")
    keys = [{"name": "gpt-only", "key": GPT_ONLY, "models": ["gpt"]}]
    s = start_stack(bg, CLOUDS, groups, sections={"database": {"url": url}, "keys": keys})
    s.database_url = url
    yield s
    s.close()
    if admin is not None:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        admin.close()


def call(stack, method: str, path: str, body: dict | None = None, key: str | None = None) -> httpx.Response:
    return httpx.request(method, f"{stack.base_url}{path}", json=body, timeout=10,
                         headers={"authorization": f"Bearer {key or stack.key}"})


def seen(stack, cloud: str) -> dict:
    return stack.clouds[cloud].recent_requests[-1]["body"]


@pytest.mark.parametrize("group", ["gpt", "claude"])
def test_a_stored_response_is_fetched_listed_and_deleted(stack, group):
    created = call(stack, "POST", "/responses", {"model": group, "input": "My name is Ada."})
    assert created.status_code == 200, created.text
    response_id = created.json()["id"]
    assert created.json()["store"] is True
    fetched = call(stack, "GET", f"/responses/{response_id}")
    assert fetched.status_code == 200 and fetched.json() == created.json()
    validate("Response", fetched.json())
    items = call(stack, "GET", f"/responses/{response_id}/input_items").json()
    assert [item["content"][0]["text"] for item in items["data"]] == ["My name is Ada."]
    stack.gateway.responses_store.flush()
    later = ResponseStore(parse_url(stack.database_url))  # a fresh process's view: read from the database
    assert stack.bg.run(later.get(response_id)).body == created.json()
    assert call(stack, "DELETE", f"/responses/{response_id}").json()["deleted"] is True
    gone = call(stack, "GET", f"/responses/{response_id}")
    assert gone.status_code == 404
    validate("ErrorResponse", gone.json())
    assert gone.json()["error"]["message"] == f"Response with id '{response_id}' not found."


def test_a_streamed_response_is_stored_once_complete_and_store_false_is_not(stack):
    client = stack.openai()
    with client.responses.stream(model="claude", input="hello") as events:
        final = events.get_final_response()
    assert client.responses.retrieve(final.id).output_text == final.output_text
    unstored = client.responses.create(model="gpt", input="hello", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError, match="Previous response"):
        client.responses.create(model="gpt", input="hi", previous_response_id="resp_never_stored")


def test_previous_response_id_goes_as_is_to_its_producer_and_as_the_conversation_elsewhere(stack):
    client = stack.openai()
    first = client.responses.create(model="gpt", input="My name is Ada.")
    answer = first.output_text
    same = client.responses.create(model="gpt", input="What is my name?", previous_response_id=first.id)
    body = seen(stack, "openai-a")
    assert body["previous_response_id"] == first.id and body["input"] == "What is my name?"
    assert same.previous_response_id == first.id

    elsewhere = client.responses.create(model="gpt-b", input="What is my name?", previous_response_id=first.id)
    body = seen(stack, "openai-b")
    assert "previous_response_id" not in body
    assert body["input"][0] == {"type": "message", "role": "user", "content": "My name is Ada."}
    assert body["input"][1]["content"][0]["text"] == answer and body["input"][-1]["content"] == "What is my name?"
    assert elsewhere.output_text

    translated = client.responses.create(model="claude", input="What is my name?", previous_response_id=first.id)
    messages = seen(stack, "anthropic")["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "Ada" in str(messages[0]["content"]) and answer in str(messages[1]["content"])
    again = client.responses.create(model="gpt", input="And my age?", previous_response_id=translated.id)
    body = seen(stack, "openai-a")  # produced through the canonical core: no cloud knows that id
    assert "previous_response_id" not in body and len(body["input"]) == 5


def test_a_key_sees_and_continues_only_its_own_groups_responses(stack):
    claude = call(stack, "POST", "/responses", {"model": "claude", "input": "a secret"}).json()["id"]
    assert call(stack, "GET", f"/responses/{claude}", key=GPT_ONLY).status_code == 404
    refused = call(stack, "POST", "/responses", {"model": "gpt", "input": "go on", "previous_response_id": claude},
                   key=GPT_ONLY)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "previous_response_not_found"
    own = call(stack, "POST", "/responses", {"model": "gpt", "input": "mine"}, key=GPT_ONLY).json()["id"]
    assert call(stack, "GET", f"/responses/{own}", key=GPT_ONLY).status_code == 200

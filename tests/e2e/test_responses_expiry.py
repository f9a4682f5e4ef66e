"""Stored responses expire (`database.responses_retention_days`), on SQLite and PostgreSQL: within the retention
GET returns the response; past it GET is OpenAI's 404 (the openai SDK's NotFoundError), `previous_response_id`
is OpenAI's 400, and the row is deleted from the database by the store's own sweep, off the request path."""

from __future__ import annotations

import time

import openai
import pytest

from tests.support.openai_schema import validate

from .harness import start_stack
from .test_responses_stored import CLOUDS, _postgres_database, call, groups

RETENTION_S = 2


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, bg, tmp_path_factory):
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('expiry')}/skyrelay.db"
    else:
        admin, url = _postgres_database()
        if admin is None:
            pytest.skip("no PostgreSQL")
    database = {"url": url, "responses_retention_days": RETENTION_S / 86400}
    s = start_stack(bg, CLOUDS, groups, sections={"database": database})
    yield s
    s.close()
    if admin is not None:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        admin.close()


def rows(stack, response_id: str) -> int:
    store = stack.gateway.responses_store
    conn = store._connect()
    try:
        sql = store.database.sql("SELECT count(*) FROM skyrelay_responses WHERE id = ?")
        return conn.execute(sql, (response_id,)).fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("group", ["gpt", "claude"])
def test_a_response_past_its_retention_is_gone(stack, group):
    client = stack.openai()
    created = client.responses.create(model=group, input="My name is Ada.")
    assert client.responses.retrieve(created.id).id == created.id
    stack.gateway.responses_store.flush()
    assert rows(stack, created.id) == 1
    time.sleep(RETENTION_S + 1.2)  # created_at counts whole seconds
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    gone = call(stack, "GET", f"/responses/{created.id}")
    assert gone.status_code == 404
    validate("ErrorResponse", gone.json())
    assert gone.json()["error"]["message"] == f"Response with id '{created.id}' not found."
    follow = call(stack, "POST", "/responses", {"model": group, "input": "And?", "previous_response_id": created.id})
    assert follow.status_code == 400 and follow.json()["error"]["code"] == "previous_response_not_found"
    deadline = time.monotonic() + 5
    while rows(stack, created.id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rows(stack, created.id) == 0  # swept by the store's writer thread

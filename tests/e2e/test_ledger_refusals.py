"""Exactly one ledger record per client request, refused ones included, through the official SDKs: a bad key, an
unknown model, a malformed body, a body too large, a model the key may not use and a key over its rpm each leave
one record under the x-request-id the client got, on every inbound protocol, with no tokens and no cost; requests
that are not for a model (a listing, a token count) leave none."""

from __future__ import annotations

import anthropic
import httpx2 as httpx
import openai
import pytest

from .harness import HELLO, openai_deployment
from tests.support.ledger_rows import ledger_rows, wait_for_rows
from tests.support.postgres_service import ledger_database_url  # noqa: F401  (fixture)

KEYS = [{"name": "chat-only", "key": "sk-chat-only", "team": "research", "models": ["chat"]},
        {"name": "once", "key": "sk-once", "team": "research", "rpm": 1}]
MAX_BODY = 64 << 10


def groups(clouds):
    return {"chat": {"deployments": [openai_deployment("cloud-a", clouds["cloud-a"],
                                                       price={"input_per_mtok": 2.5, "output_per_mtok": 10.0})]},
            "embed": {"deployments": [openai_deployment("embed-a", clouds["cloud-b"],
                                                        model="text-embedding-3-small")]}}


@pytest.fixture
def stack(make_stack, tmp_path, ledger_database_url):
    return make_stack(groups=groups, server={"max_body_bytes": MAX_BODY}, sections={
        "teams": {"research": {}}, "keys": KEYS, "database": {"url": ledger_database_url},
        "ledger": {"spool_dir": str(tmp_path / "spool"), "fsync_interval_ms": 50}})


def request_id(call) -> str:
    """The x-request-id of the error answer `call` raises (an SDK's APIStatusError)."""
    with pytest.raises((openai.APIStatusError, anthropic.APIStatusError)) as raised:
        call()
    return raised.value.response.headers["x-request-id"]


def test_each_refused_request_leaves_exactly_one_record_under_the_id_the_client_got(stack, ledger_database_url):
    oai = stack.openai()
    bad_key = stack.openai(api_key="sk-nobody")
    claude = anthropic.Anthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)
    claude_bad_key = anthropic.Anthropic(base_url=stack.origin, api_key="sk-nobody", max_retries=0, timeout=20)
    chat_only = stack.openai(api_key="sk-chat-only")
    once = stack.openai(api_key="sk-once")
    unknown = "no-such-model-" + "x" * 5000  # never stored as is: the record's model group stays NULL
    expected = {  # request id -> (http status, error kind, key name, model group)
        request_id(lambda: bad_key.chat.completions.create(model="chat", messages=HELLO)):
            (401, "AuthenticationFailed", None, None),
        request_id(lambda: oai.chat.completions.create(model=unknown, messages=HELLO)):
            (404, "NotFound", None, None),
        request_id(lambda: oai.chat.completions.create(model="chat", messages="hello")):
            (400, "InvalidRequest", None, None),
        request_id(lambda: oai.embeddings.create(model=unknown, input="hi")): (404, "NotFound", None, None),
        request_id(lambda: oai.responses.create(model=unknown, input="hi")): (404, "NotFound", None, None),
        request_id(lambda: bad_key.responses.create(model="chat", input="hi")):
            (401, "AuthenticationFailed", None, None),
        request_id(lambda: claude_bad_key.messages.create(model="chat", max_tokens=5, messages=HELLO)):
            (401, "AuthenticationFailed", None, None),
        request_id(lambda: claude.messages.create(model=unknown, max_tokens=5, messages=HELLO)):
            (404, "NotFound", None, None),
        request_id(lambda: claude.messages.create(model="chat", max_tokens="five", messages=HELLO)):
            (400, "InvalidRequest", None, None),
        request_id(lambda: chat_only.embeddings.create(model="embed", input="hi")):
            (403, "PermissionDenied", "chat-only", "embed"),
    }
    served = once.chat.completions.with_raw_response.create(model="chat", messages=HELLO).headers["x-request-id"]
    expected[request_id(lambda: once.chat.completions.create(model="chat", messages=HELLO))] = (
        429, "KeyRateLimited", "once", "chat")
    too_large = httpx.post(f"{stack.base_url}/chat/completions", content=b"{" + b" " * MAX_BODY + b"}", timeout=20,
                           headers={"authorization": f"Bearer {stack.key}", "content-type": "application/json"})
    assert too_large.status_code == 413
    expected[too_large.headers["x-request-id"]] = (413, "PayloadTooLarge", None, None)
    broken = httpx.post(f"{stack.origin}/v1/messages", content=b"{not json", timeout=20,
                        headers={"x-api-key": stack.key, "content-type": "application/json"})
    assert broken.status_code == 400
    expected[broken.headers["x-request-id"]] = (400, "InvalidRequest", None, None)
    # Not requests for a model: no record.
    oai.models.list()
    claude.messages.count_tokens(model="chat", messages=HELLO)
    httpx.get(f"{stack.origin}/health/ready")

    requests = set(expected) | {served}
    rows = wait_for_rows(ledger_database_url,
                         lambda rows: {r["request_id"] for r in rows if r["attempt"] == 0} >= requests)
    assert len(requests) == len(expected) + 1
    own = [row for row in rows if row["attempt"] == 0]
    assert sorted(row["request_id"] for row in own) == sorted(requests)  # one each, and nothing else
    for row in own:
        if row["request_id"] == served:
            assert (row["status"], row["http_status"], row["key_name"]) == ("ok", 200, "once")
            continue
        status, kind, key, group = expected[row["request_id"]]
        assert (row["http_status"], row["error_kind"], row["key_name"], row["model_group"]) == (status, kind, key,
                                                                                                group), row
        assert row["status"] == "refused" and row["team"] == ("research" if key else None)
        assert row["input_tokens"] == row["output_tokens"] == 0 and row["billed_cost_usd"] == 0
        assert row["deployment"] is None and row["started_at"] > 0
    assert sum(1 for row in rows if row["attempt"] > 0) == 1  # only the served request reached a cloud
    assert len(ledger_rows(ledger_database_url)) == len(rows)

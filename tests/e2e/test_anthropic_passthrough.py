"""Anthropic in, Anthropic out: the official anthropic SDK through the gateway to an emulated Anthropic API and to
Claude on an emulated Bedrock (InvokeModel) keeps everything it sent (cache breakpoints, signed thinking,
context_management, betas), and the usage it gets back keeps cache reads and writes apart. The same request to an
OpenAI-kind cloud maps what it can and names the rest.
"""

from __future__ import annotations

import anthropic
import pytest

from .harness import UPSTREAM_KEY, openai_deployment, start_stack

MODEL = "claude-opus-4-5"
SYSTEM = [{"type": "text", "text": "You are Claude Code, a coding agent. " * 150,
           "cache_control": {"type": "ephemeral"}}]
THINKING = {"type": "enabled", "budget_tokens": 1024}
CONTEXT = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
BETAS = ["context-management-2025-06-27", "interleaved-thinking-2025-05-14"]
BEDROCK_MODEL = "us.anthropic.claude-opus-4-5-20251101-v1:0"
KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS = {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": "us-east-1"}


def turn(text: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]}


def groups(clouds):
    claude = {"name": "claude-a", "kind": "anthropic", "base_url": clouds["claude-a"].base_url,
              "api_key": UPSTREAM_KEY, "model": MODEL, "timeouts": {"connect": 1, "first_byte": 2, "total": 10}}
    bedrock = {"name": "aws-a", "kind": "bedrock", "base_url": clouds["aws-a"].base_url, "region": "us-east-1",
               "model": BEDROCK_MODEL, "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
               "timeouts": {"connect": 1, "first_byte": 2, "total": 10}}
    return {"claude": {"deployments": [claude]}, "bedrock": {"deployments": [bedrock]},
            "gpt": {"deployments": [openai_deployment("gpt-a", clouds["gpt-a"])]}}


@pytest.fixture(scope="module")
def relay(bg):
    clouds = [{"name": "claude-a", "protocol": "anthropic"}, {"name": "gpt-a"},
              {"name": "aws-a", "protocol": "bedrock", "api_key": None, "options": AWS}]
    stack = start_stack(bg, clouds, groups=groups)
    yield stack
    stack.close()


def client(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)


def async_client(stack) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=stack.origin, api_key=stack.key, max_retries=0, timeout=20)


def received(stack, cloud: str = "claude-a") -> dict:
    return stack.clouds[cloud].recent_requests[-1]


def claude_code_request(text: str, **extra) -> dict:
    return {"model": "claude", "max_tokens": 4096, "system": SYSTEM, "messages": [turn(text)],
            "thinking": THINKING, "metadata": {"user_id": "user_abc"}, **extra}


def test_the_body_passes_through_with_only_the_model_swapped(relay):
    request = claude_code_request("first question", context_management=CONTEXT)
    # Claude Code's SDK posts to /v1/messages?beta=true; this Python SDK's beta namespace only sets the header
    raw = client(relay).beta.messages.with_raw_response.create(**request, betas=BETAS,
                                                               extra_query={"beta": "true"})
    reply = raw.parse()
    sent = received(relay)
    assert sent["body"] == {**request, "model": MODEL}
    assert sent["query"] == "beta=true"
    assert sent["headers"]["anthropic-beta"] == ",".join(BETAS)
    assert "x-skyrelay-dropped-params" not in raw.headers
    assert reply.content[0].type == "thinking" and reply.content[0].signature
    assert reply.usage.cache_creation_input_tokens > 1000 and reply.usage.cache_read_input_tokens == 0


def test_cache_reads_and_signed_thinking_survive_the_next_turn(relay):
    first = client(relay).messages.create(**claude_code_request("second question"))
    history = [{"role": "user", "content": [{"type": "text", "text": "second question"}]},
               {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
               turn("and then?")]
    follow = client(relay).messages.create(**{**claude_code_request(""), "messages": history})
    assert follow.usage.cache_read_input_tokens >= first.usage.cache_creation_input_tokens
    assert received(relay)["body"]["messages"][1]["content"][0]["signature"] == first.content[0].signature
    history[1]["content"][0]["signature"] = "tampered"
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        client(relay).messages.create(**{**claude_code_request(""), "messages": history})


def test_a_stream_passes_through_with_thinking_and_cache_usage(relay):
    request = claude_code_request("streamed question")
    client(relay).messages.create(**request)  # writes the cache
    with client(relay).messages.stream(**request) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert "thinking" in [b.type for b in message.content] and message.content[0].signature
    assert kinds[0] == "message_start" and "content_block_delta" in kinds
    assert message.usage.cache_read_input_tokens > 1000


async def test_async_create_and_stream(relay):
    async with async_client(relay) as c:
        reply = await c.messages.create(**claude_code_request("async question"))
        assert reply.usage.cache_creation_input_tokens + reply.usage.cache_read_input_tokens > 1000
        async with c.messages.stream(**claude_code_request("async question")) as stream:
            message = await stream.get_final_message()
        assert message.usage.cache_read_input_tokens > 1000 and message.content[0].type == "thinking"


def test_documents_and_server_tools_pass_through(relay):
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The sky."},
                "citations": {"enabled": True}}
    reply = client(relay).messages.create(
        model="claude", max_tokens=100, messages=[{"role": "user", "content": [document,
                                                                               {"type": "text", "text": "Sky?"}]}],
        tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert reply.content
    assert received(relay)["body"]["messages"][0]["content"][0] == document


def test_another_cloud_maps_thinking_and_names_the_hints_it_drops(relay):
    request = claude_code_request("to gpt", context_management=CONTEXT)
    request["model"] = "gpt"
    raw = client(relay).beta.messages.with_raw_response.create(**request)
    assert raw.parse().content
    assert raw.headers["x-skyrelay-dropped-params"] == "context_management, cache_control"
    body = received(relay, "gpt-a")["body"]
    assert body["reasoning_effort"] == "low" and "thinking" not in body and "context_management" not in body
    assert body["messages"][0] == {"role": "system", "content": SYSTEM[0]["text"]}


def test_another_cloud_refuses_what_would_change_the_answer(relay):
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The sky."}}
    with pytest.raises(anthropic.BadRequestError, match="'document' are not supported on clouds other than"):
        client(relay).messages.create(model="gpt", max_tokens=100, messages=[{"role": "user", "content": [document]}])


# --- Claude on Bedrock, through InvokeModel ------------------------------------------------------------------------


def test_bedrock_gets_the_native_body_with_its_version_and_betas(relay):
    request = {**claude_code_request("bedrock question", context_management=CONTEXT), "model": "bedrock"}
    raw = client(relay).beta.messages.with_raw_response.create(**request, betas=BETAS)
    reply = raw.parse()
    sent = received(relay, "aws-a")
    assert sent["path"] == f"/model/{BEDROCK_MODEL.replace(':', '%3A')}/invoke"
    expected = {k: v for k, v in request.items() if k not in ("model", "metadata")}
    assert sent["body"] == {**expected, "anthropic_version": "bedrock-2023-05-31", "anthropic_beta": BETAS}
    assert raw.headers["x-skyrelay-dropped-params"] == "metadata"  # an end-user id: Bedrock's body has no place
    assert reply.content[0].type == "thinking" and reply.content[0].signature
    assert reply.usage.cache_creation_input_tokens > 1000


def test_bedrock_stream_keeps_thinking_signatures_and_cache_reads(relay):
    request = {**claude_code_request("bedrock stream"), "model": "bedrock"}
    client(relay).messages.create(**request)
    with client(relay).messages.stream(**request) as stream:
        message = stream.get_final_message()
    assert received(relay, "aws-a")["path"].endswith("/invoke-with-response-stream")
    assert message.content[0].type == "thinking" and message.usage.cache_read_input_tokens > 1000
    history = [{"role": "user", "content": "bedrock stream"},
               {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
               turn("next")]
    assert client(relay).messages.create(**{**request, "messages": history}).content


async def test_bedrock_async(relay):
    async with async_client(relay) as c:
        reply = await c.messages.create(**{**claude_code_request("bedrock async"), "model": "bedrock"})
        async with c.messages.stream(**{**claude_code_request("bedrock async"), "model": "bedrock"}) as stream:
            message = await stream.get_final_message()
    assert reply.usage.cache_creation_input_tokens + reply.usage.cache_read_input_tokens > 1000
    assert message.usage.cache_read_input_tokens > 1000


def test_bedrock_refuses_what_only_anthropic_runs(relay):
    with pytest.raises(anthropic.BadRequestError, match="'mcp_servers' is not supported by deployment 'aws-a'"):
        client(relay).beta.messages.create(
            model="bedrock", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
            mcp_servers=[{"type": "url", "url": "https://mcp.example.com", "name": "x"}])


# --- token counting ------------------------------------------------------------------------------------------------


def test_count_tokens_is_asked_of_the_cloud_that_would_serve(relay):
    prompt = {"system": SYSTEM, "messages": [turn("count me")], "thinking": THINKING}
    raw = client(relay).messages.with_raw_response.count_tokens(model="claude", **prompt)
    assert raw.headers["x-skyrelay-deployment"] == "claude-a"
    sent = received(relay)
    assert sent["path"] == "/v1/messages/count_tokens" and sent["body"] == {**prompt, "model": MODEL}
    anthropic_count = raw.parse().input_tokens
    raw = client(relay).messages.with_raw_response.count_tokens(model="bedrock", **prompt)
    assert raw.headers["x-skyrelay-deployment"] == "aws-a"
    assert received(relay, "aws-a")["path"] == f"/model/{BEDROCK_MODEL.replace(':', '%3A')}/count-tokens"
    assert raw.parse().input_tokens == anthropic_count > 1000  # the same prompt, counted the same way


def test_count_tokens_is_estimated_where_the_cloud_cannot_count(relay):
    raw = client(relay).messages.with_raw_response.count_tokens(model="gpt", messages=[turn("count me")])
    assert raw.headers["x-skyrelay-token-count"] == "estimate" and "x-skyrelay-deployment" not in raw.headers
    assert raw.parse().input_tokens > 0


def test_the_emulated_bedrock_counts_for_boto3(relay):
    import base64
    import json

    import boto3
    from botocore.config import Config

    runtime = boto3.client("bedrock-runtime", endpoint_url=relay.clouds["aws-a"].base_url, region_name="us-east-1",
                           aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                           config=Config(retries={"total_max_attempts": 1}))
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [turn("count me")]}
    answer = runtime.count_tokens(modelId=BEDROCK_MODEL, input={"invokeModel": {"body": json.dumps(body)}})
    assert answer["inputTokens"] > 0
    assert base64.b64decode(received(relay, "aws-a")["body"]["input"]["invokeModel"]["body"])


def test_count_tokens_passes_over_a_failing_cloud(make_stack):
    def two(clouds):
        base = {"kind": "anthropic", "api_key": UPSTREAM_KEY, "model": MODEL, "timeouts": {"connect": 1, "first_byte": 5, "total": 5}}
        return {"claude": {"deployments": [{**base, "name": "down", "base_url": clouds["down"].base_url,
                                            "weight": 1000},
                                           {**base, "name": "up", "base_url": clouds["up"].base_url, "weight": 1}]}}

    stack = make_stack(cloud_specs=[{"name": "down", "protocol": "anthropic"}, {"name": "up", "protocol": "anthropic"}],
                       groups=two)
    stack.set_faults("down", [{"status": 529, "every": 1}])
    raw = client(stack).messages.with_raw_response.count_tokens(model="claude", messages=[turn("count me")])
    assert raw.headers["x-skyrelay-deployment"] == "up" and raw.parse().input_tokens > 0
    stack.set_faults("up", [{"status": 503, "every": 1}])
    raw = client(stack).messages.with_raw_response.count_tokens(model="claude", messages=[turn("count me")])
    assert raw.headers["x-skyrelay-token-count"] == "estimate"

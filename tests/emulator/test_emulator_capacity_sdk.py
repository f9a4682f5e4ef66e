"""Capacity as the official SDKs see it: each cloud's rate-limit headers and throttling errors, serving slots with
a queue, provisioned throughput, the prefix cache in each cloud's usage fields, and the admin API.

Windows are shortened (`window_s`) and limits tiny so nothing waits for a minute; no test measures time.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import anthropic
import boto3
import httpx2
import openai
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from google import genai
from google.genai import errors, types
from openai import AsyncAzureOpenAI, AsyncOpenAI

from skyrelay.emulator import CloudSpec, start_cloud
from tests.emulator.sdk_clients import track

HI = [{"role": "user", "content": "hello"}]
SYSTEM = " ".join(f"Rule {i}: answer politely and briefly." for i in range(200))  # ~2000 tokens
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def oai(cloud) -> AsyncOpenAI:
    return track(AsyncOpenAI(base_url=cloud.base_url, api_key="k", max_retries=0))


def azure(cloud) -> AsyncAzureOpenAI:
    return track(AsyncAzureOpenAI(azure_endpoint=cloud.base_url, azure_deployment="chat", api_key="k",
                                  api_version="2024-10-21", max_retries=0))


def claude(cloud) -> anthropic.AsyncAnthropic:
    return track(anthropic.AsyncAnthropic(base_url=cloud.base_url, api_key="k", max_retries=0))


async def wait_until(predicate, bound: float = 5.0) -> None:
    for _ in range(int(bound / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


# --- quota signals --------------------------------------------------------------------------------------------------

async def test_openai_sends_ratelimit_headers_and_refuses_beyond_rpm(make_cloud):
    cloud = await make_cloud(protocol="openai", quota={"rpm": 2, "tpm": 100_000, "window_s": 2})
    raw = await oai(cloud).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert raw.headers["x-ratelimit-reset-requests"] == "1s"
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000
    stream = await oai(cloud).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI,
                                                                        stream=True)
    assert stream.headers["x-ratelimit-remaining-requests"] == "0"  # streamed answers carry them too
    async for _ in stream.parse():
        pass
    with pytest.raises(openai.RateLimitError) as info:
        await oai(cloud).chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert info.value.code == "rate_limit_exceeded" and info.value.type == "requests"
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "Limit 2" in info.value.message
    assert cloud.capacity_state["counters"]["total"]["throttled"] == {"requests": 1}


async def test_openai_refuses_beyond_tpm_with_type_tokens(make_cloud):
    cloud = await make_cloud(protocol="openai", quota={"tpm": 300, "window_s": 2})
    await oai(cloud).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=200)
    with pytest.raises(openai.RateLimitError) as info:
        await oai(cloud).chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=200)
    assert info.value.type == "tokens"


async def test_azure_enforces_rpm_per_second_with_retry_after_ms(make_cloud):
    cloud = await make_cloud(protocol="azure", deployments=[{"name": "chat", "model": "gpt-4o"}],
                             quota={"rpm": 120, "tpm": 100_000})  # 2 a second
    raw = await azure(cloud).chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert "x-ratelimit-remaining-tokens" in raw.headers
    # The third call within one second is refused; on a loaded machine a second may pass between calls (the
    # bucket refills), so call until refused: a per-minute window would never refuse within these few calls.
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(8):
            await azure(cloud).chat.completions.create(model="gpt-4o", messages=HI)
    headers = info.value.response.headers
    assert 0 < int(headers["retry-after-ms"]) <= 1000 and headers["retry-after"] == "1"
    assert info.value.code == "429" and "call rate limit" in info.value.message


async def test_azure_quota_belongs_to_the_deployment(make_cloud):
    cloud = await make_cloud(protocol="azure", deployments=[{"name": "chat", "model": "gpt-4o"}, "other"],
                             quota={"rpm": 60}, per_model={"other": {"quota": {"rpm": 600}}})
    await azure(cloud).chat.completions.create(model="gpt-4o", messages=HI)
    with pytest.raises(openai.RateLimitError):
        await azure(cloud).chat.completions.create(model="gpt-4o", messages=HI)
    other = track(AsyncAzureOpenAI(azure_endpoint=cloud.base_url, azure_deployment="other", api_key="k",
                                   api_version="2024-10-21", max_retries=0))
    assert (await other.chat.completions.create(model="other", messages=HI)).choices


async def test_azure_provisioned_fast_fails_above_full_utilisation(make_cloud):
    cloud = await make_cloud(protocol="azure", deployments=[{"name": "chat", "model": "gpt-4o"}],
                             provisioned={"tpm": 600}, output_tokens=700)
    await azure(cloud).chat.completions.create(model="gpt-4o", messages=HI, max_tokens=700)  # admitted at 0%
    with pytest.raises(openai.RateLimitError) as info:
        await azure(cloud).chat.completions.create(model="gpt-4o", messages=HI, max_tokens=10)
    assert int(info.value.response.headers["retry-after-ms"]) > 0
    assert cloud.capacity_state["counters"]["total"]["throttled"] == {"provisioned": 1}


async def test_anthropic_rate_limit_error_with_its_headers(make_cloud):
    cloud = await make_cloud(protocol="anthropic", quota={"rpm": 1, "itpm": 10_000, "otpm": 2_000, "window_s": 2})
    raw = await claude(cloud).messages.with_raw_response.create(model="claude-x", max_tokens=50, messages=HI)
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert raw.headers["anthropic-ratelimit-output-tokens-remaining"] == "1950"
    assert int(raw.headers["anthropic-ratelimit-input-tokens-remaining"]) < 10_000
    reset = dt.datetime.fromisoformat(raw.headers["anthropic-ratelimit-requests-reset"])
    assert reset > dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    with pytest.raises(anthropic.RateLimitError) as info:
        await claude(cloud).messages.create(model="claude-x", max_tokens=50, messages=HI)
    assert info.value.body["error"]["type"] == "rate_limit_error"
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


async def test_google_genai_gets_resource_exhausted(make_cloud):
    cloud = await make_cloud(protocol="gemini", quota={"rpm": 1, "window_s": 2})
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=cloud.base_url))
    await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hello")
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"


def test_boto3_converse_gets_throttling_exception(bg):
    cloud = bg.run(start_cloud(CloudSpec(protocol="bedrock", ttft_ms=1, tokens_per_second=0,
                                         quota={"rpm": 1, "window_s": 2}, prompt_cache={"ttl_s": 60})))
    try:
        client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=cloud.base_url,
                              config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
        messages = [{"role": "user", "content": [{"text": "hello"}]}]
        client.converse(modelId=BEDROCK_MODEL, messages=messages, system=[{"text": SYSTEM}])
        with pytest.raises(ClientError) as info:
            client.converse(modelId=BEDROCK_MODEL, messages=messages)
        assert info.value.response["Error"]["Code"] == "ThrottlingException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert "retry-after" not in info.value.response["ResponseMetadata"]["HTTPHeaders"]
        bg.call(cloud.set_capacity, {"prompt_cache": {"ttl_s": 60}})  # the cache starts afresh too
        client.converse(modelId=BEDROCK_MODEL, messages=messages, system=[{"text": SYSTEM}])
        usage = client.converse(modelId=BEDROCK_MODEL, messages=messages, system=[{"text": SYSTEM}])["usage"]
        assert usage["cacheReadInputTokens"] >= 1024
        assert usage["totalTokens"] == usage["inputTokens"] + usage["cacheReadInputTokens"] + usage["outputTokens"]
    finally:
        bg.run(cloud.stop())


# --- serving slots and the queue ------------------------------------------------------------------------------------

async def test_n_plus_m_concurrent_requests_are_served_and_the_next_is_refused(make_cloud):
    # ttft long enough that no request ends before the fourth arrives, even on a loaded machine
    cloud = await make_cloud(protocol="openai", concurrency=2, queue=1, ttft_ms=1500)
    lane_busy = lambda: (lane := cloud.capacity.lanes.get("m")) is not None and lane.gate.waiting == 1  # noqa: E731
    served = [asyncio.create_task(oai(cloud).chat.completions.create(model="m", messages=HI)) for _ in range(3)]
    await wait_until(lane_busy)
    with pytest.raises(openai.InternalServerError) as info:
        await oai(cloud).chat.completions.create(model="m", messages=HI)
    assert info.value.status_code == 503
    assert all(r.choices for r in await asyncio.gather(*served))
    counters = cloud.capacity_state["counters"]["total"]
    assert counters["served"] == 3 and counters["queued"] == 1 and counters["throttled"] == {"overloaded": 1}


async def test_anthropic_overload_is_529_and_a_stream_holds_its_slot(make_cloud):
    cloud = await make_cloud(protocol="anthropic", concurrency=1, tokens_per_second=20, output_tokens=40)  # 2 s
    async with claude(cloud).messages.stream(model="claude-x", max_tokens=50, messages=HI) as stream:
        await anext(aiter(stream))  # the stream has begun and is still going
        with pytest.raises(anthropic.OverloadedError) as info:
            await claude(cloud).messages.create(model="claude-x", max_tokens=50, messages=HI)
        assert info.value.status_code == 529
        await stream.get_final_message()
    await wait_until(lambda: cloud.capacity.lanes["claude-x"].gate.in_use == 0)
    assert (await claude(cloud).messages.create(model="claude-x", max_tokens=50, messages=HI)).content


async def test_azure_refuses_a_full_queue_with_429(make_cloud):
    cloud = await make_cloud(protocol="azure", concurrency=1, ttft_ms=1500)  # outlasts the second call under load
    first = asyncio.create_task(azure(cloud).chat.completions.create(model="gpt-4o", messages=HI))
    await wait_until(lambda: "chat" in cloud.capacity.lanes and cloud.capacity.lanes["chat"].gate.in_use == 1)
    with pytest.raises(openai.RateLimitError) as info:
        await azure(cloud).chat.completions.create(model="gpt-4o", messages=HI)
    assert "retry-after-ms" in info.value.response.headers
    assert (await first).choices


# --- the prefix cache -----------------------------------------------------------------------------------------------

async def test_a_shared_system_prompt_is_reported_cached_in_each_clouds_usage(make_cloud):
    cache = {"prompt_cache": {"ttl_s": 60}}
    openai_cloud = await make_cloud(protocol="openai", **cache)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "first question"}]
    first = await oai(openai_cloud).chat.completions.create(model="m", messages=messages)
    messages[-1]["content"] = "second question"
    second = await oai(openai_cloud).chat.completions.create(model="m", messages=messages)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0 and cached < second.usage.prompt_tokens

    anthropic_cloud = await make_cloud(protocol="anthropic", **cache)
    for question in ("first", "second"):
        reply = await claude(anthropic_cloud).messages.create(model="claude-x", max_tokens=20, system=SYSTEM,
                                                              messages=[{"role": "user", "content": question}])
    assert reply.usage.cache_read_input_tokens >= 1024 and reply.usage.input_tokens < 100

    gemini_cloud = await make_cloud(protocol="gemini", **cache)
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=gemini_cloud.base_url))
    config = types.GenerateContentConfig(system_instruction=SYSTEM)
    for question in ("first", "second"):
        reply = await client.aio.models.generate_content(model="gemini-2.5-flash", contents=question, config=config)
    usage = reply.usage_metadata
    assert usage.cached_content_token_count >= 1024 and usage.prompt_token_count > usage.cached_content_token_count
    counts = gemini_cloud.capacity_state["counters"]["total"]
    assert counts["cache_hits"] == 1 and counts["served"] == 2


async def test_the_cache_forgets_after_its_ttl_and_is_per_deployment(make_cloud):
    cloud = await make_cloud(protocol="openai", prompt_cache={"ttl_s": 60})
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "q"}]
    await oai(cloud).chat.completions.create(model="a", messages=messages)
    other = await oai(cloud).chat.completions.create(model="b", messages=messages)
    assert other.usage.prompt_tokens_details.cached_tokens == 0  # model b never saw it
    clock = cloud.capacity.clock
    cloud.capacity.clock = cloud.capacity.lanes["a"].clock = lambda: clock() + 61
    later = await oai(cloud).chat.completions.create(model="a", messages=messages)
    assert later.usage.prompt_tokens_details.cached_tokens == 0


# --- runtime control ------------------------------------------------------------------------------------------------

async def test_capacity_is_set_read_and_cleared_over_the_admin_api(make_cloud):
    cloud = await make_cloud(protocol="openai")
    admin = f"http://127.0.0.1:{cloud.port}/_emulator/capacity"
    async with httpx2.AsyncClient() as http:
        assert (await http.get(admin)).json() == {"settings": {}, "counters": {
            "total": {"served": 0, "queued": 0, "throttled": {}, "cache_hits": 0, "cached_tokens": 0,
                      "prompt_tokens": 0}, "by_model": {}}}
        bad = await http.put(admin, json={"quota": {"rpm": "many"}})
        assert bad.status_code == 400 and "capacity.quota.rpm" in bad.json()["error"]
        assert (await http.put(admin, json={"quota": {"rpm": 1, "window_s": 2}})).status_code == 200
        await oai(cloud).chat.completions.create(model="m", messages=HI)
        with pytest.raises(openai.RateLimitError):
            await oai(cloud).chat.completions.create(model="m", messages=HI)
        state = (await http.get(admin)).json()
        assert state["settings"] == {"quota": {"rpm": 1, "window_s": 2}}
        assert state["counters"]["by_model"]["m"]["throttled"] == {"requests": 1}
        assert (await http.delete(admin)).json()["settings"] == {}
        await oai(cloud).chat.completions.create(model="m", messages=HI)
        assert (await http.put(admin, json={"faults": []})).status_code == 400

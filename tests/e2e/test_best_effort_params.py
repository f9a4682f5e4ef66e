"""With the demo's own clouds (Azure, Bedrock, an OpenAI-compatible cluster): a best-effort field a cloud cannot
honour (`seed`, `user`) is left out and named in `x-skyrelay-dropped-params`, so the request succeeds whichever
deployment is picked; an answer-changing one (`logprobs`) fails over to a deployment that can honour it, and is a
400 naming it only when none can."""

from __future__ import annotations

import dataclasses

import openai
import pytest

from skyrelay.config import parse_config
from skyrelay.demo import CLOUDS, DEMO_KEY, demo_config
from skyrelay.emulator import start_cloud
from skyrelay.server import Gateway

from .harness import Stack

HELLO = [{"role": "user", "content": "hello"}]
BEDROCK = "aws-useast1"


@pytest.fixture(scope="module")
def demo(bg):
    async def start():
        clouds = {}
        for spec in CLOUDS:  # the demo's clouds, without its deliberate latency
            fast = dataclasses.replace(spec, port=0, ttft_ms=1, tokens_per_second=0, output_tokens=6)
            clouds[spec.name] = await start_cloud(fast)
        config = demo_config(clouds)
        chat = config["model_groups"]["chat"]["deployments"]
        for deployment in chat:  # each deployment of the demo's group on its own
            config["model_groups"][f"only-{deployment['name']}"] = {
                "deployments": [dict(deployment, name=f"{deployment['name']}-only")]}
        bedrock, cluster = chat[1], chat[2]
        config["model_groups"]["bedrock-first"] = {"deployments": [
            dict(bedrock, name="bedrock-first", weight=1e6), dict(cluster, name="cluster-second", weight=1e-6)]}
        gateway = Gateway(parse_config(config, env={}))
        await gateway.start()
        return clouds, gateway

    clouds, gateway = bg.run(start())
    stack = Stack(bg, clouds, gateway)
    stack.key = DEMO_KEY
    yield stack
    stack.close()


def create(stack, stream: bool = False, **kw):
    client = stack.openai()
    with client.chat.completions.with_streaming_response.create(messages=HELLO, stream=stream, **kw) as raw:
        answer = raw.parse()
        if stream:
            assert [chunk for chunk in answer]  # the stream runs to its end
        return raw.headers


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("deployment", ["azure-eastus", BEDROCK, "gpu-cluster"])
def test_seed_succeeds_on_every_deployment_and_is_named_where_dropped(demo, deployment, stream):
    headers = create(demo, stream, model=f"only-{deployment}", seed=7, user="u-1")
    assert headers["x-skyrelay-deployment"] == f"{deployment}-only"
    if deployment == BEDROCK:
        assert headers["x-skyrelay-dropped-params"] == "seed, user"
    else:  # OpenAI-compatible clouds forward both
        assert "x-skyrelay-dropped-params" not in headers


def test_the_demo_group_answers_seed_whichever_deployment_is_picked(demo):
    for _ in range(6):
        headers = create(demo, model="chat", seed=7)
        assert ("x-skyrelay-dropped-params" in headers) is (headers["x-skyrelay-deployment"] == BEDROCK)


def test_nothing_dropped_means_no_header(demo):
    assert "x-skyrelay-dropped-params" not in create(demo, model=f"only-{BEDROCK}")


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_fail_over_to_a_deployment_that_can(demo, stream):
    headers = create(demo, stream, model="bedrock-first", logprobs=True, seed=7)
    assert headers["x-skyrelay-deployment"] == "cluster-second"
    assert headers["x-skyrelay-attempts"] == "1"  # the local refusal spent no attempt
    assert "x-skyrelay-dropped-params" not in headers  # the cluster honours seed: nothing of the refusal is left


def test_logprobs_in_the_demo_group_never_land_on_bedrock(demo):
    for _ in range(6):
        assert create(demo, model="chat", logprobs=True)["x-skyrelay-deployment"] != BEDROCK


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_where_no_deployment_can_is_a_400_naming_it(demo, stream):
    with pytest.raises(openai.BadRequestError) as exc:
        create(demo, stream, model=f"only-{BEDROCK}", logprobs=True)
    assert exc.value.body["param"] == "logprobs" and "logprobs" in exc.value.message

"""`skyrelay demo`: the gateway in front of emulated clouds, in one process, with instructions that work as printed."""

from __future__ import annotations

import asyncio
import errno

from .runtime import tune_gc
from .config import parse_config
from .emulator import CloudSpec, start_cloud
from .server import Gateway

DEMO_KEY = "sk-skyrelay-demo"
DEMO_PORT = 4000
UPSTREAM_KEY = "sk-emulated-upstream"
AWS_KEY_ID, AWS_SECRET = "AKIDSKYRELAYDEMO", "emulated-aws-secret"  # the emulated Bedrock checks SigV4 with these
BEDROCK_MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
TIMEOUTS = {"connect": 2, "first_byte": 10, "total": 120}

# One model group over three clouds, as a team with capacity on several would have it: an Azure OpenAI resource,
# Bedrock, and its own GPU cluster serving an OpenAI-compatible API (vLLM, SGLang, ...).
CLOUDS = [
    CloudSpec(name="azure-eastus", protocol="azure", api_key=UPSTREAM_KEY, ttft_ms=120, tokens_per_second=90, seed=1,
              output_tokens=40, deployments=[{"name": "gpt-4o-mini", "model": "gpt-4o-mini"},
                                             {"name": "embed-small", "model": "text-embedding-3-small"}]),
    CloudSpec(name="aws-useast1", protocol="bedrock", ttft_ms=180, tokens_per_second=70, seed=2, output_tokens=40,
              options={"aws_access_key_id": AWS_KEY_ID, "aws_secret_access_key": AWS_SECRET, "region": "us-east-1"}),
    CloudSpec(name="gpu-cluster", protocol="openai", api_key=UPSTREAM_KEY, ttft_ms=60, tokens_per_second=150, seed=3,
              output_tokens=40),
]


async def run_demo(port: int | None, stop: asyncio.Event) -> int:
    clouds = {spec.name: await start_cloud(spec) for spec in CLOUDS}
    gateway = Gateway(parse_config(demo_config(clouds), env={}))
    try:
        server = await gateway.start("127.0.0.1", DEMO_PORT if port is None else port)
    except OSError as exc:
        if port is not None or exc.errno != errno.EADDRINUSE:
            raise
        server = await gateway.start("127.0.0.1", 0)  # 4000 is taken: any free port will do
    tune_gc()
    print(instructions(f"http://127.0.0.1:{server.port}", clouds), flush=True)
    try:
        await stop.wait()
    finally:
        print("\nstopping...", flush=True)
        await gateway.close()
        for cloud in clouds.values():
            await cloud.stop()
    return 0


def demo_config(clouds) -> dict:
    azure = {"name": "azure-eastus", "kind": "azure", "base_url": clouds["azure-eastus"].base_url,
             "api_key": UPSTREAM_KEY, "model": "gpt-4o-mini", "region": "eastus", "timeouts": TIMEOUTS,
             "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}}
    bedrock = {"name": "aws-useast1", "kind": "bedrock", "base_url": clouds["aws-useast1"].base_url,
               "region": "us-east-1", "model": BEDROCK_MODEL, "aws_access_key_id": AWS_KEY_ID,
               "aws_secret_access_key": AWS_SECRET, "timeouts": TIMEOUTS,
               "price": {"input_per_mtok": 0.80, "output_per_mtok": 4.00}}
    cluster = {"name": "gpu-cluster", "kind": "openai", "base_url": clouds["gpu-cluster"].base_url,
               "api_key": UPSTREAM_KEY, "model": "meta-llama/Llama-3.1-8B-Instruct", "region": "on-prem",
               "timeouts": TIMEOUTS, "tags": {"serving": "vllm"}}
    embed = [dict(azure, name="azure-eastus-embed", model="embed-small"),
             dict(cluster, name="gpu-cluster-embed", model="bge-small")]
    return {
        "server": {"host": "127.0.0.1", "port": 0, "master_key": DEMO_KEY},
        "model_groups": {
            "chat": {"strategy": "least_outstanding", "deployments": [azure, bedrock, cluster]},
            "embed": {"deployments": embed},
        },
    }


def instructions(base: str, clouds) -> str:
    where = ", ".join(f"{name} ({cloud.spec.protocol} at {cloud.base_url})" for name, cloud in clouds.items())
    return f"""
skyrelay demo: the gateway is up at {base}/v1
  model "chat" is served by emulated clouds: {where}
  model "embed" serves embeddings from azure-eastus and gpu-cluster
  the Anthropic SDK works too: anthropic.Anthropic(base_url="{base}", api_key="{DEMO_KEY}")
  Codex CLI: skyrelay agents codex-home --url {base}/v1 --model chat --force
    then: CODEX_HOME=~/.skyrelay/codex SKYRELAY_API_KEY={DEMO_KEY} codex
  the dashboard: {base}/ui (sign in with {DEMO_KEY})

Call it with curl:
  curl {base}/v1/chat/completions -H "Authorization: Bearer {DEMO_KEY}" -H "Content-Type: application/json" -d '{{"model": "chat", "messages": [{{"role": "user", "content": "hello"}}]}}'

Or with the openai SDK (pip install openai):
  from openai import OpenAI
  client = OpenAI(base_url="{base}/v1", api_key="{DEMO_KEY}")
  for chunk in client.chat.completions.create(model="chat", messages=[{{"role": "user", "content": "hello"}}], stream=True):
      print(chunk.choices[0].delta.content or "" if chunk.choices else "", end="", flush=True)
  print()

Press Ctrl-C to stop.
"""

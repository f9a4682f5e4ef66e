"""`skyrelay demo`: the gateway in front of emulated clouds, in one process, with instructions that work as printed."""

from __future__ import annotations

import asyncio
import errno

from .cli import tune_gc
from .config import parse_config
from .emulator import CloudSpec, start_cloud
from .server import Gateway

DEMO_KEY = "sk-skyrelay-demo"
DEMO_PORT = 4000
UPSTREAM_KEY = "sk-emulated-upstream"

# Two clouds serving the same model, as a team with capacity on two clouds would have it.
CLOUDS = [
    dict(name="azure-eastus", protocol="openai", region="eastus", ttft_ms=120, tokens_per_second=90, seed=1),
    dict(name="aws-useast1", protocol="openai", region="us-east-1", ttft_ms=180, tokens_per_second=70, seed=2),
]


async def run_demo(port: int | None, stop: asyncio.Event) -> int:
    clouds = []
    for cloud in CLOUDS:
        spec = CloudSpec(name=cloud["name"], protocol=cloud["protocol"], host="127.0.0.1", port=0,
                         api_key=UPSTREAM_KEY, ttft_ms=cloud["ttft_ms"],
                         tokens_per_second=cloud["tokens_per_second"], seed=cloud["seed"], output_tokens=40)
        clouds.append((cloud, await start_cloud(spec)))
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
        for _, cloud in clouds:
            await cloud.stop()
    return 0


def demo_config(clouds) -> dict:
    deployments = [
        {"name": spec["name"], "kind": "openai", "base_url": cloud.base_url, "api_key": UPSTREAM_KEY,
         "model": "gpt-4o-mini", "region": spec["region"], "timeouts": {"connect": 2, "first_byte": 10, "total": 120},
         "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}}
        for spec, cloud in clouds
    ]
    embed = [dict(d, name=f"{d['name']}-embed", model="text-embedding-3-small") for d in deployments]
    return {
        "server": {"host": "127.0.0.1", "port": 0, "master_key": DEMO_KEY},
        "model_groups": {
            "chat": {"strategy": "least_outstanding", "deployments": deployments},
            "embed": {"deployments": embed},
        },
    }


def instructions(base: str, clouds) -> str:
    where = ", ".join(f"{spec['name']} ({cloud.base_url})" for spec, cloud in clouds)
    return f"""
skyrelay demo: the gateway is up at {base}/v1
  model "chat" is served by emulated clouds: {where}
  model "embed" serves embeddings from the same clouds

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

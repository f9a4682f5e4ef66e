"""Runs emulated clouds and the real gateway on a background event loop, so that sync and async SDK clients
in the tests talk to them over real sockets, exactly as users' code would."""

from __future__ import annotations

import random
import shutil
import tempfile
from typing import Any, Callable

from skyrelay.config import parse_config
from skyrelay.emulator import CloudSpec, start_cloud
from skyrelay.server import Gateway
from tests.support.background import BackgroundLoop

GATEWAY_KEY = "sk-test-gateway"
UPSTREAM_KEY = "sk-test-upstream"


class Stack:
    """Emulated clouds + a gateway in front of them."""

    def __init__(self, bg: BackgroundLoop, clouds: dict[str, Any], gateway: Gateway, scratch: str | None = None):
        self.bg = bg
        self.scratch = scratch  # the ledger's spool and database, unless the test chose its own
        # What a test's own configuration file repeats to keep them (a reload).
        self.scratch_sections = self.scratch_of(scratch) if scratch is not None else {}
        self.clouds = clouds
        self.gateway = gateway
        self.origin = gateway.base_url
        self.base_url = f"{self.origin}/v1"
        self.key = GATEWAY_KEY

    @staticmethod
    def scratch_of(scratch: str) -> dict:
        return {"database": {"url": f"sqlite:///{scratch}/ledger.db"},
                "ledger": {"spool_dir": f"{scratch}/spool", "segment_bytes": 1 << 20}}

    def openai(self, **kw):
        import openai

        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 20)
        kw.setdefault("api_key", self.key)
        return openai.OpenAI(base_url=self.base_url, **kw)

    def async_openai(self, **kw):
        import openai

        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 20)
        kw.setdefault("api_key", self.key)
        return openai.AsyncOpenAI(base_url=self.base_url, **kw)

    def set_faults(self, cloud: str, faults: list[dict]) -> None:
        self.bg.call(self.clouds[cloud].set_faults, faults)

    def clear_faults(self, cloud: str) -> None:
        self.bg.call(self.clouds[cloud].clear_faults)

    def stop_cloud(self, cloud: str) -> None:
        self.bg.run(self.clouds[cloud].stop())

    def close(self) -> None:
        async def shutdown():
            await self.gateway.close()
            for cloud in self.clouds.values():
                await cloud.stop()

        self.bg.run(shutdown())
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


HELLO = [{"role": "user", "content": "hello"}]


def served(stack, count: int, **create) -> list[str]:
    """Send `count` chat requests one after another; the deployment that served each, in order."""
    client = stack.openai(max_retries=0)
    out = []
    for _ in range(count):
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO, **create)
        assert raw.parse().choices[0].message.content
        out.append(raw.headers["x-skyrelay-deployment"])
    return out


def openai_deployment(name: str, cloud: Any, **extra) -> dict:
    deployment = {"name": name, "kind": "openai", "base_url": cloud.base_url, "api_key": UPSTREAM_KEY,
                  "model": "gpt-4o-mini", "timeouts": {"connect": 1, "first_byte": 2, "total": 10}}
    deployment.update(extra)
    return deployment


def default_groups(clouds: dict[str, Any]) -> dict:
    chat = [openai_deployment(name, cloud) for name, cloud in clouds.items()]
    embed = [openai_deployment(f"{name}-embed", cloud, model="text-embedding-3-small") for name, cloud in clouds.items()]
    return {"chat": {"deployments": chat}, "embed": {"deployments": embed}}


def module_stack(cloud_specs: list[dict], groups: Any):
    """The `stack` fixture of a module whose tests share one: start_stack(bg, cloud_specs, groups), closed after
    the module's last test. Assign it: `stack = module_stack(CLOUDS, groups)`."""
    import pytest

    @pytest.fixture(scope="module")
    def stack(bg):
        s = start_stack(bg, cloud_specs, groups)
        yield s
        s.close()

    return stack


def start_stack(bg: BackgroundLoop, cloud_specs: list[dict] | None = None,
                groups: Callable[[dict], dict] = default_groups, server: dict | None = None,
                sections: dict | None = None) -> Stack:
    """`sections`: more top-level configuration (state:, teams:, keys:)."""
    cloud_specs = cloud_specs or [{"name": "cloud-a"}, {"name": "cloud-b"}]
    sections = dict(sections or {})
    scratch = None
    if "database" not in sections and "ledger" not in sections:
        scratch = tempfile.mkdtemp(prefix="skyrelay-ledger-")
        sections.update(Stack.scratch_of(scratch))

    async def start():
        clouds = {}
        for spec in cloud_specs:
            spec = {"protocol": "openai", "api_key": UPSTREAM_KEY, "ttft_ms": 5, "tokens_per_second": 2000,
                    "output_tokens": 12, "port": 0, **spec}
            clouds[spec["name"]] = await start_cloud(CloudSpec(**spec))
        config = parse_config({
            "server": {"host": "127.0.0.1", "port": 0, "master_key": GATEWAY_KEY, **(server or {})},
            "model_groups": groups(clouds),
            **(sections or {}),
        }, env={})
        gateway = Gateway(config)
        gateway.dispatcher.rng = random.Random(0)  # routing is random by design; tests want it repeatable
        await gateway.start()
        return clouds, gateway

    clouds, gateway = bg.run(start())
    return Stack(bg, clouds, gateway, scratch)

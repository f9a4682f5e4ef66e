"""Fixtures for the emulator's tests: clouds on OS-chosen ports, stopped after each test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:  # lets `tests.support.openai_schema` import however pytest was started
    sys.path.insert(0, _REPO)

from skyrelay.emulator import CloudSpec, EmulatedCloud, start_cloud  # noqa: E402
from tests.emulator.sdk_clients import close_all  # noqa: E402
from tests.support.background import BackgroundLoop  # noqa: E402

FAST = {"ttft_ms": 2.0, "tokens_per_second": 5000.0}  # keeps whole suites fast; timing tests set their own


@pytest.fixture(autouse=True)
async def _close_sdk_clients():
    yield
    await close_all()


@pytest.fixture
async def make_cloud():
    clouds: list[EmulatedCloud] = []

    async def make(**kwargs) -> EmulatedCloud:
        settings = {**FAST, **kwargs}
        cloud = await start_cloud(CloudSpec(**settings))
        clouds.append(cloud)
        return cloud

    yield make
    for cloud in clouds:
        await cloud.stop()


@pytest.fixture
async def openai_cloud(make_cloud):
    return await make_cloud(name="oai", protocol="openai", api_key="sk-test", models=["gpt-4o-mini",
                                                                                      "text-embedding-3-small"])


@pytest.fixture(scope="module")
def bg():
    """A loop on its own thread, for modules whose sync SDK clients talk to clouds served on it."""
    loop = BackgroundLoop("emulated-clouds")
    yield loop
    loop.close()

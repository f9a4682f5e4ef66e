"""Run every cloud of an emulator configuration until cancelled (`skyrelay emulate`, demos, load tests)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from .cloud import EmulatedCloud, start_cloud
from .config import CloudSpec, load_emulator_config


async def start_clouds(specs: list[CloudSpec]) -> list[EmulatedCloud]:
    """Start them all, or none: a cloud that cannot bind stops the ones already started."""
    clouds: list[EmulatedCloud] = []
    try:
        for spec in specs:
            clouds.append(await start_cloud(spec))
    except BaseException:
        await asyncio.gather(*(c.stop() for c in clouds), return_exceptions=True)
        raise
    return clouds


async def run_emulator(config_path: str | Path, out: TextIO | None = None) -> None:
    """Start the configured clouds, print one line per cloud (name, protocol, base URL), serve until cancelled."""
    out = out or sys.stdout
    clouds = await start_clouds(load_emulator_config(config_path))
    try:
        width = max(len(c.name) for c in clouds) if clouds else 0
        for cloud in clouds:
            print(f"{cloud.name:<{width}}  {cloud.spec.protocol:<8}  {cloud.base_url}", file=out, flush=True)
        await asyncio.Event().wait()
    finally:
        await asyncio.gather(*(c.stop() for c in clouds), return_exceptions=True)

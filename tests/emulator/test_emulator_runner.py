"""run_emulator: start every configured cloud, print where they are, serve until cancelled."""

from __future__ import annotations

import asyncio
import io
import sys

import httpx2
import pytest

from skyrelay.emulator import EmulatorConfigError, run_emulator
from skyrelay.emulator.__main__ import main
from tests.support.openai_schema import validate


async def test_run_emulator_prints_each_cloud_and_serves_until_cancelled(tmp_path):
    config = tmp_path / "emu.yaml"
    config.write_text(
        "clouds:\n"
        "  - {name: east, protocol: openai, port: 0, models: [m1]}\n"
        "  - {name: west-azure, protocol: azure, port: 0, deployments: [d1]}\n"
    )
    out = io.StringIO()
    task = asyncio.ensure_future(run_emulator(config, out=out))
    for _ in range(100):
        if out.getvalue().count("\n") == 2:
            break
        await asyncio.sleep(0.01)
    lines = out.getvalue().splitlines()
    assert [line.split()[:2] for line in lines] == [["east", "openai"], ["west-azure", "azure"]]
    east_url = lines[0].split()[2]
    assert east_url.startswith("http://127.0.0.1:") and east_url.endswith("/v1")
    async with httpx2.AsyncClient(timeout=5) as http:
        listing = (await http.get(f"{east_url}/models")).json()
    validate("ListModelsResponse", listing)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with httpx2.AsyncClient(timeout=2) as http:
        with pytest.raises(httpx2.ConnectError):
            await http.get(f"{east_url}/models")


async def test_bad_config_fails_before_listening(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("clouds: [{name: x, protocol: carrier-pigeon}]\n")
    with pytest.raises(EmulatorConfigError, match=r"clouds\[0\]\.protocol"):
        await run_emulator(config)


def test_module_entry_point_reports_config_errors(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("clouds: 3\n")
    assert main([str(config)]) == 2
    assert "clouds" in capsys.readouterr().err
    assert main([]) == 2
    assert sys.modules["skyrelay.emulator.__main__"]

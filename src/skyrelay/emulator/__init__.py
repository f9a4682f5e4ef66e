"""Local fake clouds that speak each real cloud's public wire protocol, with latency and fault injection.

    from skyrelay.emulator import CloudSpec, start_cloud
    cloud = await start_cloud(CloudSpec(name="east", protocol="openai", api_key="k", models=["gpt-4o-mini"]))
    client = AsyncOpenAI(base_url=cloud.base_url, api_key="k")
    cloud.set_faults([{"status": 429, "at": [1], "retry_after": 2}])
    await cloud.stop(); await cloud.start()   # dies, comes back on the same port

This package imports nothing from the gateway (protocols, providers, canonical, errors): it is written from the
clouds' public API references, so it can catch the gateway's mistakes instead of sharing them.
"""

from .cloud import EmulatedCloud, start_cloud
from .config import CloudSpec, EmulatorConfigError, load_emulator_config
from .faults import Fault, FaultConfigError, parse_fault
from .runner import run_emulator, start_clouds

__all__ = [
    "CloudSpec", "EmulatedCloud", "EmulatorConfigError", "Fault", "FaultConfigError", "load_emulator_config",
    "parse_fault", "run_emulator", "start_cloud", "start_clouds",
]

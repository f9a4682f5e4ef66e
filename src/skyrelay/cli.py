"""`skyrelay serve | demo | emulate | check-config`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Awaitable, Callable

import uvloop

from .runtime import tune_gc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skyrelay", description="A multi-cloud AI gateway.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway from a configuration file")
    serve.add_argument("--config", "-c", required=True, help="the YAML configuration file")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")

    demo = commands.add_parser("demo", help="run the gateway in front of emulated clouds, in one process")
    demo.add_argument("--port", type=int, default=None,
                      help="the gateway's port (default: 4000 when free, else any free port; 0: any free port)")

    emulate = commands.add_parser("emulate", help="run emulated clouds from an emulator configuration file")
    emulate.add_argument("--config", "-c", required=True, help="the emulator's YAML file (see examples/)")

    check = commands.add_parser("check-config", help="validate a configuration file and explain every mistake")
    check.add_argument("file")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "check-config":
        from .config import check

        return check.run(args.file)
    if args.command == "serve":
        return run(lambda stop: serve_command(args.config, args.host, args.port, stop))
    if args.command == "demo":
        from .demo import run_demo

        return run(lambda stop: run_demo(args.port, stop))
    if args.command == "emulate":
        from .emulator import run_emulator

        return run(lambda stop: _until(stop, run_emulator(args.config)))
    return 2


async def serve_command(path: str, host: str | None, port: int | None, stop: asyncio.Event) -> int:
    from .config import ConfigError, load_config
    from .server import Gateway

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    gateway = Gateway(config)
    server = await gateway.start(host, port)
    tune_gc()
    print(f"skyrelay gateway listening on http://{server.host}:{server.port}/v1", flush=True)
    await stop.wait()
    await gateway.close()
    return 0


async def _until(stop: asyncio.Event, work: Awaitable) -> int:
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not task.done():
        task.cancel()
    try:
        result = await task
    except asyncio.CancelledError:
        return 0
    return result if isinstance(result, int) else 0


def run(command: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run a command under uvloop until it returns or Ctrl-C / SIGTERM asks it to stop cleanly."""

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await command(stop)

    try:
        return uvloop.run(runner())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

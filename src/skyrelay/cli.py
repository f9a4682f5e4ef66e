"""`skyrelay serve | demo | emulate | check-config | simulate | keys | teams`, the ledger's `spend |
commitments | export` (cli_ledger) and `agents codex-home` (agents_cli)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from typing import Awaitable, Callable

import uvloop

from . import agents_cli, cli_ledger
from .ledger.core import LedgerUnavailable
from .net.server import CannotListen
from .runtime import tune_gc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skyrelay", description="A multi-cloud AI gateway.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway from a configuration file")
    serve.add_argument("--config", "-c", required=True, help="the YAML configuration file")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="override logging.level")
    serve.add_argument("--log-format", choices=("text", "json"), help="override logging.format")
    serve.add_argument("--workers", default="1",
                       help="gateway processes sharing the port (default 1; auto: one per core)")

    demo = commands.add_parser("demo", help="run the gateway in front of emulated clouds, in one process")
    demo.add_argument("--port", type=int, default=None,
                      help="the gateway's port (default: 4000 when free, else any free port; 0: any free port)")

    emulate = commands.add_parser("emulate", help="run emulated clouds from an emulator configuration file")
    emulate.add_argument("file", nargs="?", help="the emulator's YAML file (see examples/emulator.yaml)")
    emulate.add_argument("--config", "-c", help="the same file, given as an option")

    check = commands.add_parser("check-config", help="validate a configuration file and explain every mistake")
    check.add_argument("file")
    cli_ledger.add_commands(commands)  # spend, commitments, export focus
    agents_cli.add_commands(commands)  # agents codex-home

    from .admin_cli import add_commands

    add_commands(commands)  # keys, teams: clients of a running gateway's admin API

    simulate = commands.add_parser("simulate", help="run a capacity scenario against simulated clouds")
    _simulate_arguments(simulate)

    args = parser.parse_args(argv)
    if args.command in ("keys", "teams"):
        from .admin_cli import run as run_admin

        return run_admin(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if hasattr(args, "handler"):
        return args.handler(args)
    if args.command == "check-config":
        from .config import check

        return check.run(args.file)
    if args.command == "serve":
        from .workers import supervise, worker_count

        try:
            workers = worker_count(args.workers)
        except ValueError:
            serve.error(f"--workers: expected a number of at least 1 or auto, got {args.workers!r}")
        if workers > 1:
            extra = [flag for name in ("log_level", "log_format") if getattr(args, name)
                     for flag in (f"--{name.replace('_', '-')}", getattr(args, name))]
            return run(lambda stop: supervise(args.config, args.host, args.port, workers, stop, extra))
        return run(lambda stop: serve_command(args.config, args.host, args.port, stop, args.log_level,
                                              args.log_format))
    if args.command == "demo":
        from .demo import run_demo

        return run(lambda stop: run_demo(args.port, stop))
    if args.command == "simulate":
        try:
            from .sim.run import main as simulate_main
        except ModuleNotFoundError as exc:  # numpy and matplotlib are the `sim` extra, not the gateway's
            print(f"skyrelay simulate needs {exc.name}: pip install 'skyrelay[sim]'", file=sys.stderr)
            return 1
        return simulate_main(args)
    if args.command == "emulate":
        path = _emulator_file(emulate, args.file, args.config)
        return run(lambda stop: emulate_command(path, stop))
    return 2


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    from .sim.options import add_arguments  # argparse only: numpy and matplotlib load when a simulation runs

    add_arguments(parser)


def _emulator_file(parser: argparse.ArgumentParser, file: str | None, option: str | None) -> str:
    """`emulate FILE` and `emulate --config FILE` both work (the docs have shown both); exactly one file."""
    if file is None and option is None:
        parser.error("the emulator's configuration file is required: skyrelay emulate FILE")
    if file is not None and option is not None and file != option:
        parser.error(f"two different files given ({file} and --config {option}); give one")
    return file if file is not None else option


async def serve_command(path: str, host: str | None, port: int | None, stop: asyncio.Event,
                        log_level: str | None = None, log_format: str | None = None) -> int:
    from .config import ConfigError, load_config
    from .server import Gateway
    from .telemetry.logs import configure

    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    configure(log_level or config.logging.level, log_format or config.logging.format)
    from .workers import exit_with_parent, this_worker, worker_share

    worker = this_worker()
    if worker is not None:  # one of `--workers N`: its share of each routing quota, on the supervisor's port
        config = worker_share(config, *worker)
        asyncio.ensure_future(exit_with_parent(stop))
    gateway = Gateway(config, config_path=path)
    if worker is not None:  # a reloaded file is shared the same way; /metrics and /admin/stats add up every worker
        from .telemetry.peers import Peers

        gateway.adapt_config = lambda reloaded: worker_share(reloaded, *worker)
        gateway.metrics_peers = Peers.from_env(*worker)
    try:
        server = await gateway.start(host, port, reuse_port=worker is not None)
    except ConfigError as exc:  # found once the database was read (a declared key named as a stored one)
        print(exc, file=sys.stderr)
        return 1
    tune_gc()
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload_on_sighup, gateway, path)
    print(f"skyrelay gateway listening on http://{server.host}:{server.port}/v1", flush=True)
    await stop.wait()
    await drain(gateway)
    return 0


def _reload_on_sighup(gateway, path: str) -> None:
    from .server.reload import ReloadRefused, reload_file

    async def reload() -> None:
        try:
            await reload_file(gateway, path)
        except ReloadRefused:
            pass  # logged, with its problems; the running configuration stays
        except Exception:  # noqa: BLE001 - a reload's bug must not take the serving gateway down
            logging.getLogger("skyrelay.reload").exception("configuration reload failed")

    asyncio.ensure_future(reload())


async def drain(gateway) -> None:
    """Stop accepting, let requests in flight finish within server.drain_timeout_s, close, run the shutdown hooks."""
    from .runtime import run_shutdown_hooks

    timeout = gateway.config.server.drain_timeout_s
    server = gateway.server
    busy = len(server.connections) if server is not None else 0
    logging.getLogger("skyrelay").warning("shutting down: draining %d open connection(s) for up to %g s",
                                          busy, timeout)
    # A thread, not a loop timer: a step that blocks the loop (a database that does not answer) must be reported
    # too. It only reports; the service manager's own deadline still decides when to kill.
    done = threading.Event()
    threading.Thread(target=_watch_shutdown, args=(gateway, timeout, done), daemon=True).start()
    try:
        await gateway.close(grace=timeout)
        await run_shutdown_hooks()
    finally:
        done.set()


STUCK_STEP_S = 5.0  # a shutdown step (past the drain's own timeout) running this long is reported, stacks and all


def _watch_shutdown(gateway, drain_timeout: float, done: threading.Event) -> None:
    import faulthandler
    import time

    from .server.app import DRAIN_STEP

    step, since = None, time.monotonic()
    while not done.wait(0.25):
        now, current = time.monotonic(), gateway.closing or "the shutdown hooks"
        if current != step:
            step, since = current, now
        elif now - since > STUCK_STEP_S + (drain_timeout if step == DRAIN_STEP else 0):
            _say(f"shutdown is stuck in {step} (for {now - since:.0f} s); every thread's stack follows")
            faulthandler.dump_traceback(sys.stderr, all_threads=True)
            return


async def emulate_command(path: str, stop: asyncio.Event) -> int:
    from .emulator import run_emulator
    from .emulator.config import EmulatorConfigError

    try:
        return await _until(stop, run_emulator(path))
    except EmulatorConfigError as exc:
        print(f"skyrelay: {exc}", file=sys.stderr)
        return 1


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


def _say(message: str) -> None:
    """One line to stderr in one write: the ledger's thread may log at the same moment, and print() writes the
    line and its newline apart."""
    sys.stderr.write(f"skyrelay: {message}\n")
    sys.stderr.flush()


def run(command: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run a command under uvloop until it returns or Ctrl-C / SIGTERM asks it to stop cleanly."""

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # Service managers send SIGHUP to mean "reload" (serve replaces this handler with its reload); the default
        # action would kill the process silently.
        loop.add_signal_handler(signal.SIGHUP, _ignore_sighup)
        return await command(stop)

    try:
        return uvloop.run(runner())
    except CannotListen as exc:  # a port in use is the operator's to fix: one line, not a traceback
        _say(exc.strerror)
        return 1
    except LedgerUnavailable as exc:
        _say(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130


def _ignore_sighup() -> None:
    logging.getLogger("skyrelay").warning("SIGHUP ignored: this command has no configuration file to reload")


if __name__ == "__main__":
    sys.exit(main())

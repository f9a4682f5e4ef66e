"""A shutdown that drags says where: the drain names what its connections are doing, a slow step is logged with
its duration, and a step stuck past its allowance is reported with every thread's stack."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from skyrelay import cli, runtime
from skyrelay.net.server import Response, start_server
from skyrelay.server import app


async def test_a_drain_that_waits_names_what_its_connections_are_doing(caplog):
    release = asyncio.Event()

    async def handler(request):
        await release.wait()
        return Response(200, b"{}")

    server = await start_server(handler, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    with caplog.at_level(logging.WARNING, logger="skyrelay.server"):
        closing = asyncio.ensure_future(server.close(grace=3))
        await asyncio.sleep(1.3)
        release.set()
        await closing
    assert "draining: 1 connection(s) still answering (answering)" in caplog.text
    assert (await reader.read()).startswith(b"HTTP/1.1 200")
    writer.close()


class _Gateway:
    """What Gateway.close's steps run over, with one step that takes its time."""

    closing = None
    server = metrics_peers = ledger = None
    _closing_steps = app.Gateway._closing_steps

    def __init__(self, slow_s: float):
        self.slow_s = slow_s
        self.health_checker = self.dispatcher = self.governor = self.telemetry = self.responses_store = self
        self.shared = None

    async def close(self):
        pass

    async def aclose(self):
        await asyncio.sleep(self.slow_s)


async def test_a_slow_shutdown_step_is_logged_with_its_duration(caplog, monkeypatch):
    monkeypatch.setattr(app, "SLOW_CLOSE_S", 0.05)
    gateway = _Gateway(slow_s=0.1)
    with caplog.at_level(logging.WARNING, logger="skyrelay.server"):
        await app.Gateway.close(gateway)
    assert "shutdown: closing the key store and the state backend took 0.1 s" in caplog.text
    assert gateway.closing is None


def _watched_for_a_second(monkeypatch, capfd, step: str) -> str:
    """What the shutdown watchdog prints while `step` stays under way for a second (its allowance: 0.3 s)."""
    monkeypatch.setattr(cli, "STUCK_STEP_S", 0.3)
    gateway = _Gateway(slow_s=0)
    gateway.closing = step
    done = threading.Event()
    watcher = threading.Thread(target=cli._watch_shutdown, args=(gateway, 30.0, done))
    watcher.start()
    time.sleep(1.0)
    done.set()
    watcher.join()
    return capfd.readouterr().err


def test_a_step_stuck_past_its_allowance_is_reported_with_the_stacks(monkeypatch, capfd):
    err = _watched_for_a_second(monkeypatch, capfd, "shipping and closing the ledger")
    assert "shutdown is stuck in shipping and closing the ledger" in err
    assert "Thread 0x" in err and "_watch_shutdown" in err  # faulthandler's dump of every thread


def test_the_drain_has_the_drain_timeout_on_top_of_the_allowance(monkeypatch, capfd):
    assert "stuck" not in _watched_for_a_second(monkeypatch, capfd, app.DRAIN_STEP)


async def _waits_forever(gate: asyncio.Event) -> None:
    await gate.wait()


async def _swallows_one_cancel(gate: asyncio.Event) -> None:
    """What a client library that turns a cancellation into one of its own errors, caught by a retry loop, does."""
    while True:
        try:
            await gate.wait()
        except asyncio.CancelledError:
            continue


async def test_background_writes_that_never_end_do_not_hang_a_shutdown(caplog):
    gate = asyncio.Event()
    stuck = asyncio.ensure_future(_waits_forever(gate))
    with caplog.at_level(logging.WARNING, logger="skyrelay.test"):
        await runtime.finish_within({stuck}, "settle(s) to Redis", logging.getLogger("skyrelay.test"), 0.2)
    assert stuck.cancelled()
    assert "1 settle(s) to Redis still running after 0.2 s, cancelled (waiting in _waits_forever:" in caplog.text
    assert "> wait:" in caplog.text  # the whole chain of awaits, down to asyncio.Event.wait


async def test_a_task_that_swallows_its_cancel_still_lets_the_shutdown_end():
    gate = asyncio.Event()
    stubborn = asyncio.ensure_future(_swallows_one_cancel(gate))
    await asyncio.sleep(0)
    stubborn.cancel()  # swallowed, as the refresher's and heartbeat's first cancel may be
    await runtime.finish_within([stubborn], "heartbeat", logging.getLogger("skyrelay.test"), 0.2)
    assert not stubborn.done()  # it is left behind; the shutdown went on
    stubborn.get_coro().close()

"""An event loop on its own thread, so sync SDK clients in a test can talk to servers (emulated clouds, the
gateway) served on it over real sockets, exactly as users' code would."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

import uvloop


class BackgroundLoop:
    def __init__(self, name: str = "servers"):
        self.loop = uvloop.new_event_loop()  # what production runs on
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 15.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable, *args) -> Any:
        """Run a plain function on the servers' loop (their state is not thread-safe)."""

        async def wrapper():
            return fn(*args)

        return self.run(wrapper())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

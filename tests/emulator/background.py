"""An event loop on its own thread, so sync SDK clients in a test can talk to clouds served on it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable


class Background:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="emulated-clouds", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable, *args) -> Any:
        """Run a plain function on the loop (the clouds' state is not thread-safe)."""

        async def wrapper():
            return fn(*args)

        return self.run(wrapper())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

"""SDK clients made by the emulator tests, closed after each test so no socket outlives it."""

from __future__ import annotations

import inspect
from typing import TypeVar

T = TypeVar("T")
_open: list[object] = []


def track(client: T) -> T:
    _open.append(client)
    return client


async def close_all() -> None:
    while _open:
        result = _open.pop().close()
        if inspect.isawaitable(result):
            await result

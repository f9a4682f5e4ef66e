"""Run an async test body once per event loop: asyncio (the tests' and the emulator's) and uvloop (production's),
whose transports differ in buffering, flow control and close behaviour. Each run is bounded in time."""

from __future__ import annotations

import asyncio
import inspect

import pytest
import uvloop

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
TIME_LIMIT = 3.0


def on_each_loop(test):
    """Parametrize `test` over LOOPS; pytest fixtures still reach it."""

    def run(loop_name, **fixtures):
        with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
            runner.run(asyncio.wait_for(test(**fixtures), TIME_LIMIT))

    signature = inspect.signature(test)
    loop_param = inspect.Parameter("loop_name", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    run.__signature__ = signature.replace(parameters=[loop_param, *signature.parameters.values()])
    run.__name__, run.__qualname__, run.__doc__ = test.__name__, test.__qualname__, test.__doc__
    return pytest.mark.parametrize("loop_name", list(LOOPS))(run)

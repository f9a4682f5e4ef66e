"""The workers' sockets (telemetry/peers.py): a request line names what is asked for; a worker that is not there, or
does not offer what is asked, is left out of the answer."""

from __future__ import annotations

from skyrelay.telemetry.peers import METRICS, STATS, Peers


async def test_each_worker_answers_what_it_is_asked_and_an_absent_one_is_left_out(tmp_path):
    zero, one = Peers(str(tmp_path), 0, 3), Peers(str(tmp_path), 1, 3)  # worker 2 never starts
    await zero.start({STATS: lambda: b'{"worker": 0}', METRICS: lambda: b"skyrelay_up 1\n"})
    await one.start({STATS: lambda: b'{"worker": 1}'})  # metrics disabled on this one
    try:
        assert await zero.ask(STATS) == {1: b'{"worker": 1}'}
        assert await one.ask(STATS) == {0: b'{"worker": 0}'}
        assert await one.ask(METRICS) == {0: b"skyrelay_up 1\n"}
        assert await zero.ask(METRICS) == {}
        assert await zero.ask("anything else") == {}
    finally:
        await zero.close()
        await one.close()

"""The supervisor's state process as its workers reach it (state/local.py): what one event-loop turn sends goes
out in one write and is answered in one; a refusal inside such a batch refuses that reserve alone; a settle is
applied before the reserves sent after it; a cancelled reserve and a worker gone give back what they held.
The generic cases (limits, all or nothing, settle) run on this backend in test_state.py."""

from __future__ import annotations

import asyncio

import pytest

from skyrelay.state import GAUGE, PERIOD, WINDOW, Item
from skyrelay.state.local import SocketState, StateServer, _Peer

NOW = 1_800_000_000.0


@pytest.fixture
async def server(tmp_path):
    server = StateServer(str(tmp_path / "state.sock"))
    await server.start()
    yield server
    await server.close()


async def worker_of(server: StateServer) -> SocketState:
    worker = SocketState(server.path, workers=2)
    assert await worker.connect()
    worker.start()
    return worker


@pytest.fixture
def reads(monkeypatch) -> list[bytes]:
    """Every read the supervisor's side of a connection took."""
    seen: list[bytes] = []
    original = _Peer.data_received

    def spy(self, data):
        seen.append(data)
        original(self, data)

    monkeypatch.setattr(_Peer, "data_received", spy)
    return seen


async def test_reserves_of_one_turn_go_in_one_write_and_each_gets_its_own_answer(server, reads):
    worker = await worker_of(server)
    rpm = Item("k:rpm", 3, WINDOW)
    results = await asyncio.gather(*(worker.reserve([rpm], [1], NOW) for _ in range(5)))
    assert len(reads) == 1 and reads[0].count(b"\n") == 6  # the counter's definition, then 5 reserves
    assert [reservation is not None for reservation, *_ in results] == [True, True, True, False, False]
    assert [refused for _, _, refused in results] == [-1, -1, -1, 0, 0]
    assert results[2][0].levels == [3] and results[3][1] > 0  # what the headers report; a Retry-After
    await worker.aclose()


async def test_a_refusal_in_the_middle_of_a_batch_refuses_that_reserve_alone(server, reads):
    worker = await worker_of(server)
    key_rpm, team_rpm, other = Item("k:rpm", 10, WINDOW), Item("t:rpm", 1, WINDOW), Item("o:rpm", 10, WINDOW)
    first, refused, last = await asyncio.gather(worker.reserve([key_rpm, team_rpm], [1, 1], NOW),
                                                worker.reserve([key_rpm, team_rpm], [1, 1], NOW),
                                                worker.reserve([other], [1], NOW))
    assert len(reads) == 1
    assert first[0] is not None and last[0] is not None
    assert refused[0] is None and refused[2] == 1  # the team's counter refused it
    assert await worker.total("k:rpm", WINDOW, NOW) == 1  # all or nothing: the key's count was taken back
    await worker.aclose()


async def test_a_settle_is_applied_before_the_reserves_sent_after_it(server, reads):
    worker = await worker_of(server)
    in_flight = Item("k:parallel", 1, GAUGE)
    held, *_ = await worker.reserve([in_flight], [1], NOW)
    worker.settle(held, [0], NOW)  # the request ended: its slot is free ...
    again, *_ = await worker.reserve([in_flight], [1], NOW)  # ... for the next, sent in the same write
    assert again is not None
    assert reads[-1].count(b"\n") == 2  # the settle rode along with the reserve
    await worker.aclose()


async def test_a_reserve_cancelled_while_waiting_gives_back_what_it_took(server):
    worker = await worker_of(server)
    in_flight = Item("k:parallel", 1, GAUGE)
    waiting = asyncio.ensure_future(worker.reserve([in_flight], [1], NOW))
    await asyncio.sleep(0)  # sent, not yet answered
    waiting.cancel()
    await asyncio.sleep(0.05)
    assert await worker.total("k:parallel", GAUGE, NOW) == 0
    await worker.aclose()


async def test_a_worker_gone_frees_its_requests_in_flight_for_the_others(server):
    leaving, staying = await worker_of(server), await worker_of(server)
    in_flight, rpm = Item("k:parallel", 1, GAUGE), Item("k:rpm", 10, WINDOW)
    held, *_ = await leaving.reserve([in_flight, rpm], [1, 1], NOW)
    assert held is not None and (await staying.reserve([in_flight], [1], NOW))[0] is None
    await leaving.aclose()
    await asyncio.sleep(0.05)
    assert (await staying.reserve([in_flight], [1], NOW))[0] is not None
    assert await staying.total("k:rpm", WINDOW, NOW) == 1  # what it sent still counts
    await staying.aclose()


async def test_a_worker_whose_supervisor_is_gone_serves_on_its_share(server):
    worker = await worker_of(server)
    await server.close()  # no longer listening (in the supervisor: it is restarting) ...
    worker._link.close()  # ... and its end of the connection gone
    await asyncio.sleep(0.05)
    assert not worker.shared and worker.status()["shared"] is False
    rpm = Item("k:rpm", 4, WINDOW)
    results = [await worker.reserve([rpm], [1], NOW) for _ in range(3)]
    assert [reservation is not None for reservation, *_ in results] == [True, True, False]  # 4 / 2 workers
    await worker.aclose()


async def test_workers_seed_a_budget_in_the_supervisor_once_with_the_largest_figure(server):
    """Each worker seeds after shipping the spools it adopted: the figures differ, the counter holds the largest
    once (governance/seeding.py), and every worker reserves against it."""
    first, second = await worker_of(server), await worker_of(server)
    born = await first.birth()
    assert born == await second.birth() == server.state.born
    budget = Item("k:spender:usd:d2027-01-15", 1000, PERIOD, NOW + 3600)
    first.seed(budget.name, 600)
    second.seed(budget.name, 900)
    first.seed(budget.name, 700)  # a smaller figure read earlier adds nothing
    reservation, _, refused = await second.reserve([budget], [100], NOW)
    assert reservation is not None and reservation.levels == [1000]
    reservation, _, refused = await first.reserve([budget], [1], NOW)
    assert reservation is None and refused == 0
    await first.aclose()
    await second.aclose()
    assert await SocketState(server.path, workers=2).birth() is None  # never connected: nothing to seed into

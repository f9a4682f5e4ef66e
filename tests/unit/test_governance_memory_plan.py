"""Governance's memory-backend shortcuts keep the behaviour of the generic path: a presented key resolved once still
meets revocation and expiry, a new set of stored keys is resolved afresh, the headers read off the plan's cells are
those the levels would give, and a budget period that rolls gets new cells."""

from __future__ import annotations

import pytest

from skyrelay import errors
from skyrelay.config import parse_config
from skyrelay.context import RequestContext
from skyrelay.governance import Governor
from skyrelay.governance.admission import Admission
from skyrelay.governance.headers import rate_limit_headers
from skyrelay.state import MemoryState, Reservation

NOW = 1_800_000_030.0
KEY = "sk-plan-test-0001"


def governor(clock=lambda: NOW, **key) -> Governor:
    config = parse_config({
        "model_groups": {"chat": {"deployments": [{"name": "d", "kind": "openai", "model": "m",
                                                   "base_url": "http://127.0.0.1:1/v1",
                                                   "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}]}},
        "teams": {"t": {"rpm": 50, "tpm": 100_000}},
        "keys": [{"name": "k", "team": "t", "key": KEY, "rpm": 5, "tpm": 1_000_000,
                  "budget": {"usd": 10, "period": "day"}, **key}]}, env={})

    def input_tokens(deployment, body_bytes):
        return body_bytes // 4

    gov = Governor(config, MemoryState(), input_tokens, clock=clock)
    gov.group = config.model_groups["chat"]
    return gov


def admitted(gov: Governor, path: str = "/v1/chat/completions") -> RequestContext:
    ctx = RequestContext("r", body_bytes=400, principal=gov.keys.resolve(KEY), path=path)
    ctx.max_output = 100
    assert gov.admit(ctx, gov.group) is None  # the memory backend reserves on the spot
    return ctx


def test_a_resolved_key_is_remembered_yet_revocation_still_refuses_it():
    gov = governor()
    first = gov.keys.resolve(KEY)
    assert gov.keys.resolve(KEY) is first
    gov.keys.set_flagged(frozenset({"k"}))
    with pytest.raises(errors.AuthenticationFailed, match="revoked"):
        gov.keys.resolve(KEY)
    assert gov.keys.resolve("sk-unknown") is None


def test_a_remembered_key_that_expires_is_refused():
    gov = governor(expires_at="2020-01-01T00:00:00Z")
    for _ in range(2):  # the second time from the remembered Principal
        with pytest.raises(errors.AuthenticationFailed, match="expired"):
            gov.keys.resolve(KEY)


def test_new_stored_keys_are_resolved_afresh():
    gov = governor()
    gov.keys.resolve(KEY)
    gov.keys.set_stored(b"secret", {}, frozenset())
    assert KEY not in gov.keys.seen  # a revised stored key must not keep its old Principal


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_headers_from_the_plan_are_those_of_the_levels(path):
    gov = governor()
    for _ in range(3):
        ctx = admitted(gov, path)
        anthropic = path == "/v1/messages"
        fast = header_lines(rate_limit_headers(ctx, anthropic))
        as_another_process_says(ctx)
        assert fast == header_lines(rate_limit_headers(ctx, anthropic))  # what another process's figures would show
        names = [name for name, _ in fast]
        assert len(names) == 6 and len(set(names)) == 6
    assert dict(fast)[names[0]] == "5"  # the key's rpm of 5 is tighter than the team's 50


def test_a_reset_under_a_second_away_is_spelt_in_milliseconds_on_both_paths():
    now = [NOW]
    gov = governor(clock=lambda: now[0])
    admitted(gov)
    now[0] = NOW + 59.6  # the first request's second leaves the minute in 0.4 s
    ctx = admitted(gov)
    fast = header_lines(rate_limit_headers(ctx))
    as_another_process_says(ctx)
    assert fast == header_lines(rate_limit_headers(ctx))
    assert dict(fast)["x-ratelimit-reset-requests"] == dict(fast)["x-ratelimit-reset-tokens"] == "400ms"
    assert dict(fast)["x-ratelimit-remaining-requests"] == "3"


def as_another_process_says(ctx: RequestContext) -> None:
    """The planned admission replaced by the figures another process would report of its marks (the levels path)."""
    planned = ctx.admission
    items = ctx.principal.items
    levels, oldest = MemoryState.figures(Reservation(items, planned.values, planned.marks))
    reservation = Reservation(items, planned.values, planned.marks, levels=levels, oldest=oldest)
    ctx.admission = Admission(planned.governor, reservation, planned.now, items, None, planned.values)


def header_lines(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers as the wire has them, in name order: an entry whose value carries further lines (the memory
    backend's OpenAI ones) split."""
    wire = "\r\n".join(f"{name}: {value}" for name, value in headers)
    return sorted(tuple(line.split(": ", 1)) for line in wire.split("\r\n")) if headers else []


def test_a_budget_period_that_rolls_gets_new_cells():
    now = [NOW]
    gov = governor(clock=lambda: now[0])
    ctx = admitted(gov)
    principal = ctx.principal
    plan = principal.plan
    ctx.close()
    now[0] = NOW + 86_400  # the next day: a new budget counter
    admitted(gov)
    assert principal.plan is not plan
    budget = [i for i, limit in enumerate(principal.limits) if limit.metric == 3][0]
    assert principal.plan.cells[budget] is not plan.cells[budget]
    assert principal.plan.cells[0] is plan.cells[0]  # the rpm window is the same counter


def test_the_counters_of_budget_periods_a_day_over_are_dropped_so_a_year_of_days_keeps_two(monkeypatch):
    """Each day's budget counter has its own name: the memory backend (and the supervisor of --workers) drops a
    period's counter a day after the period ended, as Redis expires it, instead of keeping one per key per day."""
    from skyrelay.state import memory

    now = [NOW]
    monkeypatch.setattr(memory.time, "time", lambda: now[0])
    gov = governor(clock=lambda: now[0])
    for _ in range(365):
        admitted(gov).close()
        now[0] += 86_400
    admitted(gov).close()
    budgets = sorted(name for name in gov.state._cells if name.startswith("k:k:usd:"))
    assert len(budgets) == 2  # today's and yesterday's (a late settle may still land there)
    items = gov.keys.principals()[0].items
    assert gov.state.reserve_now(items, [1] * len(items), now[0])[0] is not None  # today's still counts


def test_a_budget_counter_seeded_at_a_restart_and_never_reserved_is_dropped_a_day_after_its_period(monkeypatch):
    """A restart seeds each budget counter with the ledger's spend; a key that then sends nothing in that period has
    no reserve to say when the counter ends, so the seed says it (seeding.py passes the period's end)."""
    from skyrelay.governance.seeding import _expiry
    from skyrelay.state import memory

    now = [NOW]
    monkeypatch.setattr(memory.time, "time", lambda: now[0])
    gov = governor(clock=lambda: now[0])
    for day in range(30):  # a month of restarts, one a day, each seeding today's counter of a key that sends nothing
        gov.state.seed(f"k:k:usd:day{day}", 1_000, _expiry(now[0] + 3_600))  # (its period ends in an hour)
        now[0] += 86_400
    admitted(gov).close()  # a newer counter is made: the sweep runs
    seeded = [name for name in gov.state._cells if name.startswith("k:k:usd:")]
    assert len(seeded) <= 2, seeded

async def test_a_memory_reservation_split_in_two_settles_each_part_on_its_own():
    """A key's and a deployment's counters reserved in one call (the Redis fallback's memory reserve), then settled
    by each owner apart: each part's window marks are its own."""
    from skyrelay.state import GAUGE, PERIOD, WINDOW, Item
    from skyrelay.state.base import split

    state = MemoryState()
    items = [Item("k:tpm", 10_000, WINDOW), Item("k:usd", 100, PERIOD, NOW + 100), Item("d:tpm", 1000, WINDOW),
             Item("d:parallel", 5, GAUGE)]
    for _ in range(2):  # the second time from the kept plan
        reservation, _, _ = state.reserve_now(items, [300, 20, 300, 1], NOW)
        key, deployment = split(reservation, 2)
        state.settle(deployment, [0, 0], NOW)  # the deployment's part refunded
        state.settle(key, [120, 5], NOW)
    assert [await state.total(item.name, item.kind, NOW) for item in items] == [240, 10, 0, 0]
    refused, _, which = state.reserve_now(items, [1, 91, 1, 1], NOW)
    assert refused is None and which == 1  # the budget: 10 + 91 > 100, and nothing was kept of the attempt
    assert [await state.total(item.name, item.kind, NOW) for item in items] == [240, 10, 0, 0]


@pytest.mark.parametrize("first_output, statuses, kept", [
    (5.0, ["failed"], True),  # a stream that broke after output: the cloud charged what it produced
    (None, ["ok"], True),  # an answer from a cloud that reports no usage
    (None, ["abandoned"], True),  # the client left
    (None, ["failed", "failed"], False),  # failed everywhere before any output: refunded
])
def test_a_request_without_a_usage_report_keeps_its_estimate_when_the_cloud_produced_something(first_output,
                                                                                              statuses, kept):
    """The ledger records the estimate for these; the budget refunded every one that was not abandoned, so a key
    could spend without limit on streams that break after output or clouds that report no usage."""
    from types import SimpleNamespace

    from skyrelay.governance.admission import REFUNDED, settled_values

    ctx = SimpleNamespace(usage=None, first_output=first_output, served=None,
                          attempts=[SimpleNamespace(status=status, deployment="d") for status in statuses])
    reserved = (1, 300, 1, 4_000)
    assert settled_values(None, ctx, reserved) == ((1, 300, 0, 4_000) if kept else REFUNDED)


def test_a_deployment_a_reload_removed_keeps_its_price_for_the_requests_still_in_flight():
    """Its cloud still bills the requests in flight when the reload lands: they settled at $0 (and the ledger
    recorded $0)."""
    from skyrelay.ledger.core import Ledger

    gov = governor()
    before = gov.served_prices["d"]
    assert before is not None
    emptied = parse_config({"model_groups": {"other": {"deployments": [{
        "name": "e", "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"}]}}}, env={})
    gov.reprice(emptied)
    assert gov.served_prices["d"] is before and "e" in gov.served_prices
    ledger = Ledger.__new__(Ledger)
    ledger.deployments, ledger.recorder = {"d": "the old deployment"}, None
    ledger.reprice(emptied)
    assert ledger.deployments["d"] == "the old deployment" and ledger.deployments["e"].name == "e"

"""Budgets seeded from the ledger (governance/seeding.py): each budget counter of the current periods gets the
billed cost of its owner's attempts that began in its period before the counters were born, read from a real
ledger table (SQLite and PostgreSQL); the memory backend adds a counter's seed once, and the largest figure when
seeded again. A budget added while the gateway runs is seeded the same way, for its own counter's birth."""

from __future__ import annotations

import asyncio
import datetime
import threading

from skyrelay.config import parse_config
from skyrelay.db import parse_url
from skyrelay.governance.principals import KeyBook
from skyrelay.governance import seeding
from skyrelay.governance.seeding import added_counters, budget_counters, seed_added, seed_budgets, seeds
from skyrelay.ledger.schema import COLUMN_NAMES
from skyrelay.ledger.sinks import Sink
from skyrelay.ledger.store import LedgerStore
from skyrelay.state import PERIOD, Item, MemoryState
from tests.support.postgres_service import ledger_database_url  # noqa: F401  (a fixture)

BORN = datetime.datetime(2027, 3, 17, 12, 0, tzinfo=datetime.timezone.utc).timestamp()  # a Wednesday
DAY = 86400.0
CONFIG = {
    "model_groups": {"chat": {"deployments": [{"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"}]}},
    "teams": {"research": {"budget": {"usd": 100, "period": "month"}}},
    "keys": [{"name": "ci-bot", "key": "sk-ci", "team": "research", "budget": {"usd": 10, "period": "day"}},
             {"name": "notebook", "key": "sk-nb", "team": "research"},
             {"name": "forever", "key": "sk-forever", "budget": {"usd": 5, "period": "total"}}],
}


def row(request_id: str, attempt: int, started_at: float, key: str | None, team: str | None, billed: float,
        deployment: str = "gone", listed: float = 0.0) -> list:
    values = dict.fromkeys(COLUMN_NAMES, 0)
    values.update(request_id=request_id, attempt=attempt, started_at=started_at, ended_at=started_at + 1,
                  key_name=key, team=team, deployment=deployment, status="ok", list_cost_usd=listed,
                  billed_cost_usd=billed, commitment=None, error_kind=None)
    return [values[name] for name in COLUMN_NAMES]


class Price:
    discount = 0.2


PRICES = {"committed": Price()}  # the configured deployments' prices (the others are gone from the configuration)


def ledger(url: str) -> LedgerStore:
    database = parse_url(url)
    sink = Sink(database)
    sink.write([
        row("r1", 1, BORN - 3600, "ci-bot", "research", 1.25),  # today, before the start: counted
        row("r1", 0, BORN - 3600, "ci-bot", "research", 1.25),  # its request record repeats it: not counted again
        row("r2", 1, BORN - 1.5 * DAY, "ci-bot", "research", 2.0),  # yesterday: this month's, not today's
        row("r3", 1, BORN - 60, "notebook", "research", 0.5),
        row("r4", 1, BORN + 5, "ci-bot", "research", 9.0),  # after the counters began: they counted it
        row("r5", 1, BORN - 20 * DAY, "notebook", "research", 7.0),  # last month
        row("r6", 1, BORN - 400 * DAY, "forever", None, 3.0),  # a total budget: every record before the start
        row("r7", 2, BORN - 10, "forever", None, 0.000_000_4),  # a failover's attempt: its cost counts too
        # A configured deployment: its list price less its discount, as budgets count it, whatever a commitment
        # made of the bill (2.0 listed, 0.5 billed under a reserved commitment): 1.6.
        row("r8", 1, BORN - 7200, "ci-bot", "research", 0.5, deployment="committed", listed=2.0),
    ])
    sink.close()
    return LedgerStore(database)


def test_each_budget_counter_gets_its_owners_spend_in_its_period_before_the_counters_began(ledger_database_url):
    principals = KeyBook(parse_config(CONFIG).keys, parse_config(CONFIG).teams).principals()
    counters = budget_counters(principals, BORN + 10)
    assert sorted(counters) == ["k:ci-bot:usd:d2027-03-17", "k:forever:usd:total", "t:research:usd:m2027-03-01"]
    with ledger(ledger_database_url) as store:
        assert seeds(counters, store, BORN, PRICES) == {
            "k:ci-bot:usd:d2027-03-17": 2_850_000,  # 1.25 + 1.6
            "t:research:usd:m2027-03-01": 5_350_000,  # ci-bot's 2.85 today and 2.0 yesterday, notebook's 0.5
            "k:forever:usd:total": 3_000_001,  # whole micro-dollars, rounded up as budgets count them
        }
    later = budget_counters(principals, BORN + 2 * DAY)  # a period that began after the counters did: nothing
    with LedgerStore(parse_url(ledger_database_url)) as store:
        assert "k:ci-bot:usd:d2027-03-19" not in seeds(later, store, BORN, PRICES)


def test_the_memory_backend_adds_a_seed_once_and_the_largest_figure_when_seeded_again():
    state = MemoryState()
    budget = Item("k:ci-bot:usd:d2027-03-17", 10_000_000, PERIOD, BORN + DAY)
    assert state.reserve_now([budget], [2_000_000], BORN)[0] is not None  # counted before the seed arrives
    state.seed(budget.name, 7_000_000)
    state.seed(budget.name, 6_000_000)  # read earlier, by a worker that adopted less: adds nothing
    state.seed(budget.name, 7_500_000)  # read later: adds the difference
    assert asyncio.run(state.total(budget.name, PERIOD, BORN)) == 9_500_000
    reservation, wait, refused = state.reserve_now([budget], [600_000], BORN)
    assert reservation is None and refused == 0 and wait == DAY


async def test_seeding_waits_until_the_adopted_spools_are_in_the_ledger(tmp_path, monkeypatch):
    monkeypatch.setattr(seeding.time, "time", lambda: BORN + 10)  # the periods of test 1
    config = parse_config(CONFIG)
    store = ledger(f"sqlite:///{tmp_path}/ledger.db")
    store.close()

    class Governor:  # what seed_budgets reads of one
        state = MemoryState()
        keys = KeyBook(config.keys, config.teams)
        served_prices = PRICES

    Governor.state.born = BORN
    adopted = threading.Event()
    task = asyncio.get_running_loop().create_task(seed_budgets(Governor, adopted, store.db))
    await asyncio.sleep(0.2)
    assert not task.done()  # the shipper has not committed what dead processes left: nothing read yet
    adopted.set()
    assert await task == 3
    assert await Governor.state.total("t:research:usd:m2027-03-01", PERIOD, BORN) == 5_350_000


def test_the_budgets_a_change_of_keys_adds_are_new_counters_only():
    """A key or team given a budget, or another period, adds a counter; a key joining a team whose budget other
    keys already count adds none (its counter counts already), nor does a period that rolls over."""
    config = parse_config(CONFIG)
    before = KeyBook(config.keys, config.teams).principals()
    changed = dict(CONFIG, keys=[*CONFIG["keys"][:2], {"name": "new-in-team", "key": "sk-new", "team": "research"},
                                 {"name": "forever", "key": "sk-forever", "budget": {"usd": 5, "period": "week"}},
                                 {"name": "fresh", "key": "sk-fresh", "budget": {"usd": 1, "period": "day"}}])
    after = KeyBook(parse_config(changed).keys, parse_config(changed).teams).principals()
    assert sorted(added_counters(before, after, BORN)) == ["k:forever:usd:w2027-03-15", "k:fresh:usd:d2027-03-17"]
    assert added_counters(before, before, BORN) == {}


async def test_a_budget_added_while_running_is_seeded_for_its_counters_birth_once_its_spend_is_shipped(
        tmp_path, monkeypatch):
    """The counter's birth is the first time anyone asked (every worker asks the same state): its owner's spend
    before then is added once the shipper has committed what was spooled before it; what began later is the
    counter's own. A second seeder of the same counter (another worker) adds nothing more."""
    clock = [BORN + 3600]  # an hour after the start: r4 (BORN + 5) began before this budget did
    monkeypatch.setattr(seeding.time, "time", lambda: clock[0])
    monkeypatch.setattr(seeding, "ADOPTION_POLL_S", 0.01)
    store = ledger(f"sqlite:///{tmp_path}/ledger.db")
    store.close()
    state = MemoryState()
    state.born = BORN
    monkeypatch.setattr("skyrelay.state.memory.time.time", lambda: clock[0])

    class Governor:  # what seed_added reads of one
        served_prices = PRICES

    Governor.state = state

    class Shipper:
        caught_up_at = BORN  # behind the counter's birth: the seed waits

    counters = budget_counters(KeyBook(parse_config(CONFIG).keys, parse_config(CONFIG).teams).principals(), clock[0])
    added = {name: meta for name, meta in counters.items() if name.startswith("k:ci-bot")}
    task = asyncio.get_running_loop().create_task(seed_added(Governor, added, Shipper, store.db))
    await asyncio.sleep(0.1)
    assert not task.done()
    clock[0] += 30  # later than the birth, which stays the first asker's
    Shipper.caught_up_at = BORN + 3600
    assert await task == 1
    assert await state.total("k:ci-bot:usd:d2027-03-17", PERIOD, clock[0]) == 11_850_000  # 2.85 + r4's 9.0
    assert await seed_added(Governor, added, Shipper, store.db) == 1  # another worker: the same figure again
    assert await state.total("k:ci-bot:usd:d2027-03-17", PERIOD, clock[0]) == 11_850_000

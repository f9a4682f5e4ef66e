"""Keys, teams, rate limits and budgets, through the official SDKs: which models a key may use, its rpm, a
budget that concurrent requests cannot overshoot and that a restart does not refill, and one key's rpm counted once
across two replicas on Redis."""

from __future__ import annotations

import asyncio
import time

import anthropic
import httpx2 as httpx
import openai
import pytest

from skyrelay.emulator import CloudSpec, start_cloud
from skyrelay.state import PERIOD

from .harness import GATEWAY_KEY, UPSTREAM_KEY, openai_deployment
from .replicas import serve_replicas
from tests.support.postgres_service import fresh_database, needs_postgres
from tests.support.redis_service import REDIS_URL, RedisRelay, delete_prefix, fresh_prefix, needs_redis

# $/Mtok high enough that a few requests spend a budget: ~25 input tokens x 1000 + 50 output x 2000 ~ $0.125
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
HELLO = [{"role": "user", "content": "hello"}]


def priced_groups(clouds):
    # In the EU: the research team's residency (a key's residency fences routing like the group's) lets them serve.
    chat = [openai_deployment(name, cloud, price=PRICE, geo="eu") for name, cloud in clouds.items()]
    embed = [openai_deployment(f"{name}-embed", cloud, model="text-embedding-3-small") for name, cloud in clouds.items()]
    return {"chat": {"deployments": chat}, "embed": {"deployments": embed}}


TEAMS = {"research": {"models": ["chat"], "residency": ["eu"], "rpm": 5}}
KEYS = [
    {"name": "chat-only", "key": "sk-chat-only", "models": ["chat"]},
    {"name": "slow", "key": "sk-slow", "rpm": 3},
    {"name": "spender", "key": "sk-spender", "budget": {"usd": 0.5, "period": "day"}},
    {"name": "expired", "key": "sk-expired", "expires_at": "2020-01-01T00:00:00Z"},
    {"name": "team-a", "key": "sk-team-a", "team": "research"},
    {"name": "team-b", "key": "sk-team-b", "team": "research"},
]


@pytest.fixture
def governed(make_stack):
    return make_stack(groups=priced_groups, sections={"teams": TEAMS, "keys": KEYS})


def client(stack, key, **kw):
    return stack.openai(api_key=key, **kw)


def anthropic_client(stack, key):
    return anthropic.Anthropic(base_url=stack.origin, api_key=key, max_retries=0, timeout=20)


def test_a_key_uses_its_models_and_is_refused_the_others_in_each_protocols_format(governed):
    chat_only = client(governed, "sk-chat-only")
    assert chat_only.chat.completions.create(model="chat", messages=HELLO, max_tokens=5).choices
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat_only.embeddings.create(model="embed", input="hi")
    assert refused.value.status_code == 403 and "'embed'" in refused.value.message
    assert refused.value.code == "model_not_allowed"
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        anthropic_client(governed, "sk-chat-only").messages.create(model="embed", max_tokens=5, messages=HELLO)
    assert "'embed'" in refused.value.message
    assert anthropic_client(governed, "sk-chat-only").messages.create(model="chat", max_tokens=5, messages=HELLO)


def test_unknown_and_expired_keys_get_401_and_the_master_key_still_works(governed):
    for key in ("sk-nobody", "sk-expired"):
        with pytest.raises(openai.AuthenticationError):
            client(governed, key).chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
    with pytest.raises(openai.AuthenticationError) as refused:
        client(governed, "sk-expired").models.list()
    assert "expired" in refused.value.message and "sk-expired" not in refused.value.message  # never echoed
    assert client(governed, governed.key).embeddings.create(model="embed", input="hi").data


def test_a_keys_rpm_answers_429_with_retry_after_in_each_protocols_format(governed):
    slow = client(governed, "sk-slow")
    for _ in range(3):
        slow.chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
    with pytest.raises(openai.RateLimitError) as refused:
        slow.chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
    error = refused.value
    assert error.code == "rate_limit_exceeded" and error.type == "requests"
    assert "key 'slow'" in error.message and "3 requests per minute" in error.message
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    with pytest.raises(anthropic.RateLimitError) as refused:
        anthropic_client(governed, "sk-slow").messages.create(model="chat", max_tokens=5, messages=HELLO)
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert "retry-after" in refused.value.response.headers
    # Another key is not affected.
    assert client(governed, "sk-chat-only").chat.completions.create(model="chat", messages=HELLO, max_tokens=5)


def test_a_team_limit_is_shared_by_its_keys(governed):
    answers = []
    for n in range(8):
        try:
            client(governed, "sk-team-a" if n % 2 else "sk-team-b").chat.completions.create(
                model="chat", messages=HELLO, max_tokens=5)
            answers.append("ok")
        except openai.RateLimitError as exc:
            assert "team 'research'" in exc.message
            answers.append("429")
    assert answers == ["ok"] * 5 + ["429"] * 3


def test_concurrent_requests_cannot_overshoot_a_budget(governed):
    async def run():
        spender = governed.async_openai(api_key="sk-spender")

        async def one(stream: bool):
            try:
                if stream:
                    chunks = await spender.chat.completions.create(model="chat", messages=HELLO, max_tokens=50,
                                                                   stream=True)
                    async for _ in chunks:
                        pass
                else:
                    await spender.chat.completions.create(model="chat", messages=HELLO, max_tokens=50)
                return "ok"
            except openai.RateLimitError as exc:
                assert exc.code == "insufficient_quota" and "budget of key 'spender'" in exc.message
                assert "resets at" in exc.message
                return "refused"

        first = await asyncio.gather(*(one(n % 2 == 0) for n in range(24)))
        rest = [await one(False) for _ in range(20)]  # sequential, until the budget is spent
        await spender.close()
        return first, rest

    first, rest = asyncio.run(run())
    assert "ok" in first and "refused" in first and rest[-1] == "refused"
    spent = governed.bg.run(_spent(governed.gateway, "k:spender:usd:", "day"))
    governor = governed.gateway.governor
    assert spent <= 500_000  # every request held its estimate, which is above what it really cost
    assert spent > 500_000 - 125_000 - 1  # and the budget was used, not refused early: the rest < one estimate
    assert governor.state.status()["shared"]


async def _spent(gateway, counter: str, period: str) -> float:
    from skyrelay.governance import periods

    period_id, _ = periods.current(period, time.time())
    return await gateway.governor.state.total(counter + period_id, PERIOD, time.time())


def test_a_key_lists_only_its_models_and_health_ready_names_the_state(governed):
    assert [m.id for m in client(governed, "sk-chat-only").models.list()] == ["chat"]
    assert [m.id for m in client(governed, "sk-slow").models.list()] == ["chat", "embed"]
    ready = httpx.get(f"{governed.origin}/health/ready").json()
    assert ready["state"] == {"backend": "memory", "shared": True}


def test_the_context_carries_the_keys_name_team_models_and_residency(governed):
    seen = []
    dispatcher = governed.gateway.dispatcher
    original = dispatcher.governor.admit

    def spy(ctx, group):  # admit returns what to await, or None when it reserved on the spot (memory)
        seen.append((ctx.key_name, ctx.team, ctx.allowed_models, ctx.key_residency))
        return original(ctx, group)

    dispatcher.governor.admit = spy
    try:
        client(governed, "sk-team-a").chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
    finally:
        dispatcher.governor.admit = original
    assert seen == [("team-a", "research", frozenset({"chat"}), frozenset({"eu"}))]


def test_an_unknown_model_names_only_the_groups_the_key_may_use(governed):
    """/v1/models hides the groups a key may not use: the 404 for an unknown model must not list them either."""
    with pytest.raises(openai.NotFoundError) as limited:
        client(governed, "sk-chat-only").chat.completions.create(model="nope", messages=HELLO, max_tokens=5)
    assert "known models: chat" in limited.value.message and "embed" not in limited.value.message
    with pytest.raises(openai.NotFoundError) as anyone:
        client(governed, "sk-slow").chat.completions.create(model="nope", messages=HELLO, max_tokens=5)
    assert "known models: chat, embed" in anyone.value.message


# --- Redis: revocation seen by every replica, and an outage --------------------------------------------------


@pytest.fixture
def redis_prefix(bg):
    prefix = fresh_prefix()
    yield prefix
    bg.run(delete_prefix(prefix))


@needs_redis
def test_a_revocation_flag_written_by_one_replica_is_refused_by_another_within_a_second(make_stack, redis_prefix):
    sections = {"state": {"backend": "redis", "url": REDIS_URL, "prefix": redis_prefix}, "teams": TEAMS, "keys": KEYS}
    one, other = make_stack(sections=sections), make_stack(sections=sections)
    assert client(other, "sk-slow").models.list()
    one.bg.run(one.gateway.governor.state.set_flag("revoked:slow"))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            client(other, "sk-slow").models.list()
        except openai.AuthenticationError as exc:
            assert "revoked" in exc.message
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the revoked key was still accepted")
    assert client(other, "sk-chat-only").models.list()


@needs_redis
def test_with_redis_gone_requests_flow_on_local_limits_and_shared_ones_resume_when_it_returns(make_stack, bg,
                                                                                              redis_prefix):
    relay = RedisRelay()
    bg.run(relay.restore())
    stack = make_stack(sections={"state": {"backend": "redis", "url": relay.url, "prefix": redis_prefix},
                                 "keys": [{"name": "bot", "key": "sk-bot", "rpm": 4}]})
    bot = client(stack, "sk-bot")

    def ask() -> str:
        try:
            bot.chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
            return "ok"
        except openai.RateLimitError:
            return "429"

    def shared() -> bool:
        return httpx.get(f"{stack.origin}/health/ready").json()["state"]["shared"]

    try:
        assert [ask(), ask()] == ["ok", "ok"]  # counted in Redis
        bg.run(relay.cut())
        assert [ask() for _ in range(5)] == ["ok"] * 4 + ["429"]  # this lone replica's share: the whole 4
        assert shared() is False
        bg.run(relay.restore())
        deadline = time.monotonic() + 5
        while not shared() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert shared() is True
        assert [ask() for _ in range(3)] == ["ok", "ok", "429"]  # the shared count again: 2 of 4 were used
    finally:
        bg.run(relay.cut())


# --- two replicas on one Redis ---------------------------------------------------------------------------------

GATEWAY = """server: {{host: 127.0.0.1, port: 0, master_key: sk-master}}
state: {{backend: redis, url: "{redis}", prefix: "{prefix}"}}
model_groups:
  chat:
    deployments: [{{kind: openai, base_url: "{cloud}", api_key: {upstream}, model: gpt-4o-mini}}]
keys:
  - {{name: shared-bot, key: sk-shared-bot, rpm: 10}}
"""


@needs_redis
def test_two_replicas_on_one_redis_count_a_keys_rpm_once(tmp_path, bg):
    cloud = bg.run(start_cloud(CloudSpec(name="up", protocol="openai", api_key=UPSTREAM_KEY, ttft_ms=1, port=0)))
    prefix = fresh_prefix()
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY.format(redis=REDIS_URL, prefix=prefix, cloud=cloud.base_url, upstream=UPSTREAM_KEY))
    try:
        with serve_replicas(config, 2) as urls:
            clients = [openai.OpenAI(base_url=f"{url}/v1", api_key="sk-shared-bot", max_retries=0, timeout=20)
                       for url in urls]
            served = {0: 0, 1: 0}
            refused = 0
            for n in range(30):
                try:
                    clients[n % 2].chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
                    served[n % 2] += 1
                except openai.RateLimitError as exc:
                    assert exc.response.headers.get("retry-after")
                    refused += 1
            assert sum(served.values()) == 10 and refused == 20  # one count across both, not 10 per replica
            assert served[0] and served[1]
            ready = httpx.get(f"{urls[0]}/health/ready").json()
            assert ready["state"]["backend"] == "redis" and ready["state"]["shared"] is True
    finally:
        bg.run(cloud.stop())
        bg.run(delete_prefix(prefix))


def test_a_spent_budget_stays_spent_when_the_gateway_restarts(make_stack, tmp_path):
    """The memory backend's counters begin empty with the process: the new one seeds them from the ledger (what
    the old one spent today), so a restart does not hand out the day's budget a second time. The team budget is
    seeded from the same records as its key's."""
    keys = [{"name": "spender", "key": "sk-spender", "team": "thrifty", "budget": {"usd": 0.2, "period": "day"}},
            {"name": "colleague", "key": "sk-colleague", "team": "thrifty"}]
    sections = {"teams": {"thrifty": {"budget": {"usd": 0.2, "period": "month"}}}, "keys": keys,
                "database": {"url": f"sqlite:///{tmp_path}/ledger.db"}, "ledger": {"spool_dir": f"{tmp_path}/spool"}}

    def spend(stack) -> list[str]:
        answers = []
        for _ in range(8):
            try:
                client(stack, "sk-spender").chat.completions.create(model="chat", messages=HELLO, max_tokens=50)
                answers.append("ok")
            except openai.RateLimitError as exc:
                assert exc.code == "insufficient_quota" and "budget of" in exc.message
                answers.append("429")
        return answers

    first = make_stack(groups=priced_groups, sections=sections)
    spent = spend(first)
    served = spent.count("ok")
    assert served and spent == ["ok"] * served + ["429"] * (8 - served)
    first.close()  # ships the ledger

    second = make_stack(groups=priced_groups, sections=sections)
    assert second.bg.run(second.gateway.governor.seeded()) == 2  # the key's daily and the team's monthly budget
    assert spend(second) == ["429"] * 8
    with pytest.raises(openai.RateLimitError) as refused:  # the team's budget: its other key is refused too
        client(second, "sk-colleague").chat.completions.create(model="chat", messages=HELLO, max_tokens=50)
    assert "budget of team 'thrifty'" in refused.value.message


def spend_with_a_new_key(stack, admin, requests: int) -> dict:
    """A key made through the admin API (`admin`: a client of any replica), with no budget, and `requests` served
    with it by `stack` (~$0.033 each) once `stack` knows it (another replica reads the store every 0.5 s)."""
    made = admin.post("/admin/keys", json={"name": "spender", "team": "lab"}).json()
    deadline = time.monotonic() + 5
    while True:
        try:
            client(stack, made["key"]).models.list()
            break
        except openai.AuthenticationError:
            assert time.monotonic() < deadline, "the key never reached the replica"
            time.sleep(0.05)
    for _ in range(requests):
        client(stack, made["key"]).chat.completions.create(model="chat", messages=HELLO, max_tokens=50)
    return made


def test_a_budget_added_through_the_admin_api_counts_what_its_key_and_team_spent_earlier_in_its_period(
        make_stack, tmp_path):
    """A budget given to a key (or its team) that already spent today starts from that spend, read from the
    ledger, not from zero: a $0.20 daily budget added after ~$0.10 was spent refuses the next request (estimated at
    ~$0.125), where an empty counter would let it through; so does a team budget for the team's other key."""
    stack = make_stack(groups=priced_groups, sections={
        "database": {"url": f"sqlite:///{tmp_path}/skyrelay.db"}, "ledger": {"spool_dir": f"{tmp_path}/spool"}})
    admin = httpx.Client(base_url=stack.origin, headers={"authorization": "Bearer " + GATEWAY_KEY}, timeout=20)
    assert admin.post("/admin/teams", json={"name": "lab"}).status_code == 201
    colleague = admin.post("/admin/keys", json={"name": "colleague", "team": "lab"}).json()
    spender = spend_with_a_new_key(stack, admin, 3)

    patched = admin.patch(f"/admin/keys/{spender['id']}", json={"budget": {"usd": 0.2, "period": "day"}})
    assert patched.status_code == 200, patched.text
    assert stack.bg.run(stack.gateway.governor.seeded_added()) == 1
    with pytest.raises(openai.RateLimitError) as refused:
        client(stack, spender["key"]).chat.completions.create(model="chat", messages=HELLO, max_tokens=50)
    assert refused.value.code == "insufficient_quota" and "budget of key 'spender'" in refused.value.message

    client(stack, colleague["key"]).chat.completions.create(model="chat", messages=HELLO, max_tokens=50)
    assert admin.patch("/admin/teams/lab", json={"budget": {"usd": 0.2, "period": "month"}}).status_code == 200
    assert stack.bg.run(stack.gateway.governor.seeded_added()) == 1  # the team's, from four requests' spend
    with pytest.raises(openai.RateLimitError) as refused:
        client(stack, colleague["key"]).chat.completions.create(model="chat", messages=HELLO, max_tokens=50)
    assert "budget of team 'lab'" in refused.value.message
    admin.close()


@needs_postgres
@needs_redis
def test_a_budget_added_on_one_replica_counts_the_spend_served_by_another_once(make_stack, bg, tmp_path):
    """Two replicas on one Redis and one PostgreSQL (keys and ledger): the spend was served by the second, the
    budget is added through the first. Both seed the counter for the same birth (the first to ask), each once its
    own ledger is shipped; Redis keeps the largest figure, added once, and both replicas refuse the next request."""
    prefix = fresh_prefix()
    with fresh_database() as url:
        sections = {"database": {"url": url}, "state": {"backend": "redis", "url": REDIS_URL, "prefix": prefix}}
        first, second = (make_stack(groups=priced_groups, sections={
            **sections, "ledger": {"spool_dir": f"{tmp_path}/spool-{n}"}}) for n in (1, 2))
        admin = httpx.Client(base_url=first.origin, headers={"authorization": "Bearer " + GATEWAY_KEY}, timeout=20)
        try:
            assert admin.post("/admin/teams", json={"name": "lab"}).status_code == 201
            spender = spend_with_a_new_key(second, admin, 3)
            assert admin.patch(f"/admin/keys/{spender['id']}",
                               json={"budget": {"usd": 0.2, "period": "day"}}).status_code == 200
            counter = f"{prefix}k:spender:usd:d{time.strftime('%Y-%m-%d', time.gmtime())}"
            assert bg.run(redis_value_within(counter, 99_000, 5.0)) == 99_000  # three requests' spend, once
            for stack in (first, second):
                with pytest.raises(openai.RateLimitError) as refused:
                    client(stack, spender["key"]).chat.completions.create(model="chat", messages=HELLO,
                                                                          max_tokens=50)
                assert "budget of key 'spender'" in refused.value.message
        finally:
            admin.close()
            first.close()
            second.close()
            bg.run(delete_prefix(prefix))


async def redis_value_within(key: str, expected: float, seconds: float) -> float:
    """The number at `key` in the shared Redis once it reaches `expected` (or whatever it is after `seconds`)."""
    import redis.asyncio as aioredis

    connection = aioredis.Redis.from_url(REDIS_URL)
    try:
        deadline = time.monotonic() + seconds
        while True:
            value = float(await connection.get(key) or 0)
            if value >= expected or time.monotonic() > deadline:
                return value
            await asyncio.sleep(0.05)
    finally:
        await connection.aclose()

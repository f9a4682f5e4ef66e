"""Three replicas on one Redis share the routing state: a deployment's rpm and tpm, a group's vendor shares
under a concentration cap, and the breakers. The replicas are `skyrelay serve` processes in front of emulated
clouds: only Redis joins them; what each cloud served is read from the emulator's own counters."""

from __future__ import annotations

import asyncio
import time

import httpx2 as httpx
import openai
import pytest

from skyrelay.emulator import CloudSpec, start_cloud

from .harness import HELLO, UPSTREAM_KEY
from .replicas import serve_replicas, storm
from tests.support.redis_service import REDIS_URL, delete_prefix, fresh_prefix, redis_reachable

CLOUDS = ("ptu", "spill", "solo", "tok", "tok-spill", "big", "small", "flaky", "steady")
TPM = 3000
MAX_TOKENS = 50


def gateway_yaml(redis: str, prefix: str, clouds: dict, rpm: int = 100) -> str:
    def deployment(name: str, **extra) -> str:
        fields = {"name": name, "kind": "openai", "base_url": clouds[name], "api_key": UPSTREAM_KEY,
                  "model": "gpt-4o-mini", **extra}
        return "      - {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"

    def group(name: str, *deployments: str, extra: str = "") -> str:
        return f"  {name}:\n{extra}    deployments:\n" + "\n".join(deployments)

    return "\n".join([
        "server: {host: 127.0.0.1, port: 0, master_key: sk-master}",
        f'state: {{backend: redis, url: "{redis}", prefix: "{prefix}"}}',
        "ledger: {enabled: false}",
        "health: {failure_threshold: 2, cooldown_s: 6, error_rate: false}",
        "model_groups:",
        group("tiered", deployment("ptu", rpm=rpm), deployment("spill", tier=1)),
        group("alone", deployment("solo", rpm=rpm)),
        group("tokens", deployment("tok", tpm=TPM), deployment("tok-spill", tier=1)),
        group("capped", deployment("big", vendor="azure", weight=9), deployment("small", vendor="aws", weight=1),
              extra="    concentration: {max_share: 0.5, window_s: 300}\n"),
        group("fragile", deployment("flaky"), deployment("steady")),
        "",
    ])


@pytest.fixture(scope="module")
def clouds(bg):
    started = {name: bg.run(start_cloud(CloudSpec(name=name, protocol="openai", api_key=UPSTREAM_KEY, ttft_ms=1,
                                                  output_tokens=5, port=0)))
               for name in CLOUDS}
    yield started
    for cloud in started.values():
        bg.run(cloud.stop())


@pytest.fixture(scope="module")
def three(clouds, bg, tmp_path_factory):
    """Three `skyrelay serve` processes on the shared Redis; their base URLs."""
    if not redis_reachable():
        pytest.skip("Redis is not running at 127.0.0.1:6379 (.ci/services starts it)")
    prefix = fresh_prefix()
    config = tmp_path_factory.mktemp("routing-replicas") / "gateway.yaml"
    config.write_text(gateway_yaml(REDIS_URL, prefix, {n: c.base_url for n, c in clouds.items()}))
    try:
        with serve_replicas(config, 3) as urls:
            yield urls
    finally:
        bg.run(delete_prefix(prefix))


def requests_to(cloud) -> int:
    return cloud.stats["by_status"].get("200", 0)


def test_a_deployments_rpm_of_100_holds_across_three_replicas_and_the_rest_spills(three, clouds):
    served, refused = asyncio.run(storm(three, ["sk-master"], 300, model="tiered"))
    assert served == 300 and not refused  # no 429 reaches a client while tier 1 has room
    assert 100 <= requests_to(clouds["ptu"]) <= 103, clouds["ptu"].stats
    assert requests_to(clouds["ptu"]) + requests_to(clouds["spill"]) == 300


def test_without_a_next_tier_the_rest_is_a_429_with_retry_after(three, clouds):
    served, refused = asyncio.run(storm(three, ["sk-master"], 300, model="alone"))
    assert 100 <= served <= 103 and requests_to(clouds["solo"]) == served, clouds["solo"].stats
    assert all(e.status_code == 429 and float(e.response.headers["retry-after"]) >= 1 for e in refused)


def test_a_deployments_tpm_holds_across_three_replicas_within_an_estimate_per_replica(three, clouds):
    served, refused = asyncio.run(storm(three, ["sk-master"], 150, max_tokens=MAX_TOKENS, model="tokens"))
    assert served == 150 and not refused
    tok = requests_to(clouds["tok"])
    per_request = _prompt_tokens(three[0]) + MAX_TOKENS  # what the quota counts: input plus the output cap
    # Never past the tpm by more than an estimate per replica; and used, not refused early (how much of it depends
    # on how many estimates, larger than the usage they settle to, were held at once).
    assert TPM // per_request // 2 <= tok and tok * per_request <= TPM + 3 * per_request, (tok, per_request)


def _prompt_tokens(url: str) -> int:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-master", max_retries=0)
    return client.chat.completions.create(model="fragile", messages=HELLO, max_tokens=1).usage.prompt_tokens


def test_a_half_concentration_cap_holds_over_three_replicas(three, clouds):
    served, refused = asyncio.run(storm(three, ["sk-master"], 300, model="capped", concurrency=6))
    assert served == 300 and not refused
    big, small = requests_to(clouds["big"]), requests_to(clouds["small"])
    assert big + small == 300
    # 9:1 weights: 90% without the cap. With it, each replica decides on a snapshot up to 200 ms old (docs/routing.md),
    # so a burst passes the cap by what the other replicas send in that time: more when a loaded machine delays
    # the snapshots (56.7% seen once in a full parallel run).
    assert 0.4 <= big / 300 <= 0.6, (big, small)


def _breaker(url: str, deployment: str = "flaky") -> str:
    return httpx.get(f"{url}/health/ready", timeout=10).json()["model_groups"]["fragile"][deployment]


def _ask(url: str, count: int) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-master", max_retries=0, timeout=10)
    for _ in range(count):
        client.chat.completions.create(model="fragile", messages=HELLO, max_tokens=5)  # fails over: no error


def _until(condition, timeout: float) -> float:
    """Seconds until `condition()` held (polled); fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "not within the time allowed"
        time.sleep(0.05)
    return time.monotonic() - start


def test_a_breaker_opened_on_one_replica_is_open_on_the_others_within_a_second_and_closes_likewise(
        three, clouds, bg):
    a, b, c = three
    flaky = clouds["flaky"]
    bg.call(flaky.set_faults, [{"status": 500, "rate": 1.0}])
    try:
        deadline = time.monotonic() + 10
        while _breaker(a) != "open":
            assert time.monotonic() < deadline
            _ask(a, 1)
        assert _until(lambda: _breaker(b) == "open" and _breaker(c) == "open", 2.0) < 1.0
        bg.call(flaky.reset_stats)
        for url in (b, c):
            _ask(url, 10)
        assert flaky.stats["requests"] == 0  # B and C never sent it a request after A opened the breaker
    finally:
        bg.call(flaky.clear_faults)
    # After the cool-down A's next request is its probe; it answers: A closes, and so do B and C, unprobed.
    _until(lambda: _breaker(a) == "half_open", 10.0)
    deadline = time.monotonic() + 10
    while _breaker(a) != "closed":
        assert time.monotonic() < deadline
        _ask(a, 1)
    assert _until(lambda: _breaker(b) == "closed" and _breaker(c) == "closed", 2.0) < 1.0


def test_redis_stopped_mid_run_requests_flow_on_local_shares_and_sharing_resumes(clouds, own_redis, tmp_path, bg):
    prefix = fresh_prefix()
    config = tmp_path / "gateway.yaml"
    config.write_text(gateway_yaml(own_redis.url, prefix, {n: c.base_url for n, c in clouds.items()}, rpm=30))

    def shared(url: str) -> bool:
        return httpx.get(f"{url}/health/ready", timeout=10).json()["state"]["shared"]

    with serve_replicas(config, 2) as urls:
        for cloud in (clouds["ptu"], clouds["spill"]):
            bg.call(cloud.reset_stats)
        assert asyncio.run(storm(urls, ["sk-master"], 20, model="tiered"))[0] == 20
        own_redis.stop()
        served, refused = asyncio.run(storm(urls, ["sk-master"], 60, model="tiered", concurrency=10))
        assert served == 60 and not refused  # nothing fails: each replica counts its share of the rpm alone
        assert not any(shared(url) for url in urls)
        own_redis.start()  # an empty Redis: the new minute starts from nothing
        _until(lambda: all(shared(url) for url in urls), 5.0)
        time.sleep(0.5)  # a snapshot or two
        for cloud in (clouds["ptu"], clouds["spill"]):
            bg.call(cloud.reset_stats)
        served, refused = asyncio.run(storm(urls, ["sk-master"], 120, model="tiered"))
        assert served == 120 and not refused
        assert 30 <= requests_to(clouds["ptu"]) <= 32, clouds["ptu"].stats  # counted once again, in Redis

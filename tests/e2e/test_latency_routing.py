"""Latency-, cost- and prefix-aware routing against emulated clouds, through the official openai SDK.

Nothing here times anything: the clouds are made slower by the emulator's own knobs, and the tests count where the
requests went (and, for affinity, how many prompt tokens the clouds report cached).
"""

from __future__ import annotations

from collections import Counter

from .harness import openai_deployment


def group_of(strategy: str, prices: dict[str, float] | None = None, **settings):
    def groups(clouds):
        deployments = [openai_deployment(name, cloud, **({"price": {"input_per_mtok": prices[name],
                                                                      "output_per_mtok": prices[name]}}
                                                          if prices else {}))
                       for name, cloud in clouds.items()]
        return {"chat": {"strategy": strategy, "deployments": deployments, **settings}}
    return groups


def served(stack, count: int, *, stream: bool = False, messages=None, client=None) -> list[str]:
    client = client or stack.openai(max_retries=0)
    out = []
    for i in range(count):
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=messages or [{"role": "user", "content": f"question {i}"}], stream=stream)
        answer = raw.parse()
        if stream:
            assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
        else:
            assert answer.choices[0].message.content
        out.append(raw.headers["x-skyrelay-deployment"])
    return out


def test_fastest_moves_traffic_off_a_cloud_that_became_5x_slower(make_stack):
    s = make_stack(cloud_specs=[{"name": "a", "ttft_ms": 10}, {"name": "b", "ttft_ms": 10}],
                   groups=group_of("fastest"))
    busiest = Counter(served(s, 10)).most_common(1)[0][0]
    other = "b" if busiest == "a" else "a"
    s.set_faults(busiest, [{"kind": "slow", "extra_ms": 40}])  # 10 ms to first token becomes 50 ms
    after = served(s, 30)
    assert after.count(other) >= 27, after  # the slow answer that showed it, and at most a probe or two more
    assert s.clouds[busiest].stats["faults"].get("slow", 0) <= 3


def test_cheapest_within_keeps_the_cheap_cloud_while_it_meets_the_objective_then_leaves_it(make_stack):
    s = make_stack(cloud_specs=[{"name": "cheap", "ttft_ms": 10}, {"name": "dear", "ttft_ms": 10}],
                   groups=group_of("cheapest_within", {"cheap": 1.0, "dear": 10.0},
                                   latency_objective={"ttft_ms": 150, "percentile": 95}))
    assert served(s, 5, stream=True) == ["cheap"] * 5  # streams: TTFT is when the first token arrives
    s.set_faults("cheap", [{"kind": "slow", "extra_ms": 400}])  # now its p95 TTFT is far above 150 ms
    after = served(s, 10, stream=True)
    assert after[0] == "cheap" and after[1:] == ["dear"] * 9, after


SYSTEM_PROMPTS = [f"You are assistant number {i}. " + "Answer politely and cite your sources. " * 150
                  for i in range(4)]  # ~5,800 characters each: well past the 1,024 tokens clouds start caching at


def cache_share(strategy: str, make_stack) -> tuple[float, int]:
    s = make_stack(cloud_specs=[{"name": n, "prompt_cache": {}} for n in ("a", "b", "c")],
                   groups=group_of(strategy))
    client = s.openai(max_retries=0)
    for i in range(36):
        served(s, 1, client=client, messages=[{"role": "system", "content": SYSTEM_PROMPTS[i % 4]},
                               {"role": "user", "content": f"question {i}"}])
    totals = [cloud.capacity_state["counters"]["total"] for cloud in s.clouds.values()]
    cached, prompt = sum(t["cached_tokens"] for t in totals), sum(t["prompt_tokens"] for t in totals)
    return cached / prompt, sum(t["cache_hits"] for t in totals)


def test_affinity_raises_the_clouds_cached_token_share_over_weighted(make_stack):
    weighted_share, weighted_hits = cache_share("weighted", make_stack)
    affinity_share, affinity_hits = cache_share("affinity", make_stack)
    assert affinity_hits == 36 - 4  # each system prompt misses once, on its one deployment, then always hits
    assert weighted_hits < affinity_hits - 3 and affinity_share > weighted_share + 0.05

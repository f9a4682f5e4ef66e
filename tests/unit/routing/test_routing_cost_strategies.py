"""fastest, cheapest, cheapest_within and affinity: each one's order, with given latencies and a seeded rng."""

import random
from collections import Counter
from dataclasses import dataclass

from skyrelay.canonical import ChatRequest
from skyrelay.config.model import LatencyObjective, Price
from skyrelay.context import RequestContext
from skyrelay.routing import RoutingView
from skyrelay.routing.affinity import prefix_hash, prefix_key
from skyrelay.routing.latency import LatencyBook
from skyrelay.routing.strategies import STRATEGIES

NOW = 1000.0


@dataclass(frozen=True, slots=True)
class Dep:
    name: str
    weight: float = 1.0
    price: Price = Price()


@dataclass(frozen=True, slots=True)
class Group:
    latency_objective: LatencyObjective | None = None


def names(order):
    return [d.name for d in order]


def view_with(ttft: dict[str, float], outstanding=None) -> RoutingView:
    book = LatencyBook()
    for name, seconds in ttft.items():
        book.observe_first_token(name, NOW, seconds)
    return RoutingView(outstanding=outstanding or {}, latencies=book)


def request(body_bytes=4000, max_output=None, messages=None, **extra) -> RequestContext:
    ctx = RequestContext(body_bytes=body_bytes)
    ctx.max_output = max_output
    ctx.prompt = ChatRequest(model="chat", messages=messages or [{"role": "user", "content": "hi"}], extra=extra)
    return ctx


def order(strategy, deployments, view, rng=None, req=None, group=None):
    return names(STRATEGIES[strategy](deployments, view, rng or random.Random(0), NOW, req, group))


def test_fastest_puts_the_lowest_expected_time_first_and_the_unmeasured_before_all():
    group = (Dep("slow"), Dep("fast"), Dep("mid"))
    assert order("fastest", group, view_with({"slow": 0.5, "fast": 0.1, "mid": 0.2})) == ["fast", "mid", "slow"]
    assert order("fastest", group + (Dep("new"),), view_with({"slow": 0.5, "fast": 0.1, "mid": 0.2}))[0] == "new"


def test_fastest_counts_time_per_token_for_the_expected_output():
    book = LatencyBook()
    book.observe_first_token("quick-start", NOW, 0.1)
    book.observe_tokens("quick-start", NOW, 1.0, 100)  # 10 ms a token
    book.observe_first_token("quick-tokens", NOW, 0.3)
    book.observe_tokens("quick-tokens", NOW, 0.1, 100)  # 1 ms a token
    view = RoutingView(latencies=book)
    group = (Dep("quick-start"), Dep("quick-tokens"))
    assert order("fastest", group, view, req=request(max_output=5)) == ["quick-start", "quick-tokens"]
    assert order("fastest", group, view, req=request(max_output=500)) == ["quick-tokens", "quick-start"]


def test_fastest_weighs_latency_by_load_so_the_fastest_does_not_take_everything():
    view = view_with({"a": 0.1, "b": 0.15}, outstanding={"a": 2})
    assert order("fastest", (Dep("a"), Dep("b")), view) == ["b", "a"]  # 0.1 x 3 > 0.15 x 1


def test_fastest_and_cheapest_keep_standbys_last():
    view = view_with({"standby": 0.01, "a": 0.5})
    group = (Dep("standby", weight=0), Dep("a"))
    assert order("fastest", group, view) == ["a", "standby"]
    assert order("cheapest", (Dep("standby", 0, Price(0, 0)), Dep("a", 1, Price(9, 9))), view) == ["a", "standby"]


def test_cheapest_prices_the_requests_input_and_output():
    cheap_in = Dep("cheap-in", price=Price(input_per_mtok=1.0, output_per_mtok=20.0))
    cheap_out = Dep("cheap-out", price=Price(input_per_mtok=5.0, output_per_mtok=5.0))
    long_prompt = request(body_bytes=400_000, max_output=10)  # ~100k input tokens
    assert order("cheapest", (cheap_out, cheap_in), RoutingView(), req=long_prompt) == ["cheap-in", "cheap-out"]
    long_answer = request(body_bytes=400, max_output=4000)
    assert order("cheapest", (cheap_in, cheap_out), RoutingView(), req=long_answer) == ["cheap-out", "cheap-in"]


def test_cheapest_ties_follow_the_weights():
    group = (Dep("a", 1.0), Dep("b", 3.0))
    rng = random.Random(5)
    first = Counter(order("cheapest", group, RoutingView(), rng, request())[0] for _ in range(4000))
    assert abs(first["b"] / 4000 - 0.75) < 0.03


def test_cheapest_within_prefers_the_cheap_one_while_it_meets_the_objective():
    cheap = Dep("cheap", price=Price(1.0, 1.0))
    dear = Dep("dear", price=Price(10.0, 10.0))
    group = Group(LatencyObjective(ttft_ms=800, percentile=95))
    meets = view_with({"cheap": 0.5, "dear": 0.1})
    assert order("cheapest_within", (dear, cheap), meets, req=request(), group=group) == ["cheap", "dear"]
    misses = view_with({"cheap": 1.5, "dear": 0.1})
    assert order("cheapest_within", (dear, cheap), misses, req=request(), group=group) == ["dear", "cheap"]
    none_meet = view_with({"cheap": 2.0, "dear": 1.2})  # then fastest first
    assert order("cheapest_within", (cheap, dear), none_meet, req=request(), group=group) == ["dear", "cheap"]
    unmeasured = view_with({"dear": 0.1})  # no samples yet: taken to meet it, so it is measured
    assert order("cheapest_within", (dear, cheap), unmeasured, req=request(), group=group) == ["cheap", "dear"]


def test_affinity_sends_one_prefix_to_one_deployment_and_spreads_many():
    group = tuple(Dep(f"d{i}") for i in range(4))
    firsts = {}
    for k in range(200):
        req = request(prompt_cache_key=f"tenant-{k}")
        picks = {order("affinity", group, RoutingView(), random.Random(k), req)[0] for _ in range(3)}
        assert len(picks) == 1  # whatever the rng
        firsts[k] = picks.pop()
    spread = Counter(firsts.values())
    assert set(spread) == {"d0", "d1", "d2", "d3"} and min(spread.values()) > 25


def test_affinity_moves_only_the_keys_of_a_deployment_that_left():
    group = tuple(Dep(f"d{i}") for i in range(4))
    before = {k: order("affinity", group, RoutingView(), req=request(user=f"u{k}"))[0] for k in range(200)}
    after = {k: order("affinity", group[:3], RoutingView(), req=request(user=f"u{k}"))[0] for k in range(200)}
    for k in before:
        if before[k] != "d3":
            assert after[k] == before[k]
        else:
            assert after[k] == order("affinity", group, RoutingView(), req=request(user=f"u{k}"))[1]


def test_affinity_skips_a_deployment_over_its_bounded_load():
    group = tuple(Dep(f"d{i}") for i in range(4))
    req = request(user="hot")
    owner, successor = order("affinity", group, RoutingView(), req=req)[:2]
    busy = RoutingView(outstanding={owner: 3})  # capacity ceil(1.25 x 4 / 4) = 2: full
    assert order("affinity", group, busy, req=req)[:1] == [successor]
    assert order("affinity", group, busy, req=req)[-1] == owner


def test_affinity_weights_own_more_of_the_ring():
    group = (Dep("light", 1.0), Dep("heavy", 3.0))
    firsts = Counter(order("affinity", group, RoutingView(), req=request(user=f"u{k}"))[0] for k in range(2000))
    assert 0.65 < firsts["heavy"] / 2000 < 0.85


def test_the_prefix_key_is_the_system_prompt_and_first_question_cut_at_the_cacheable_size():
    system = {"role": "system", "content": "s" * 5000}
    short = {"role": "system", "content": "be brief"}
    q1, q2 = {"role": "user", "content": "one"}, {"role": "user", "content": "two"}
    chat = lambda *messages, **extra: ChatRequest(model="m", messages=list(messages), extra=extra)  # noqa: E731
    assert prefix_hash(chat(system, q1)) == prefix_hash(chat(system, q2))  # a long system prompt keys alone
    assert prefix_hash(chat(short, q1)) != prefix_hash(chat(short, q2))
    assert prefix_hash(chat(short, q1)) == prefix_hash(chat(short, q1, {"role": "assistant", "content": "x"}, q2))
    parts = {"role": "system", "content": [{"type": "text", "text": "be brief"}]}
    assert prefix_hash(chat(parts, q1)) == prefix_hash(chat(short, q1))
    assert prefix_hash(chat(short, q1, prompt_cache_key="k")) == prefix_hash(chat(short, q2, user="k"))


def test_the_prefix_key_is_computed_once_and_kept_on_the_context():
    req = request(user="u")
    first = prefix_key(req)
    req.prompt = None  # a second read does not hash again
    assert prefix_key(req) == first == req.prefix_key
    assert prefix_key(RequestContext()) is None and prefix_key(None) is None


def test_affinity_without_a_prompt_is_weighted():
    group = (Dep("a", 1.0), Dep("b", 3.0))
    rng = random.Random(2)
    first = Counter(order("affinity", group, RoutingView(), rng, RequestContext())[0] for _ in range(4000))
    assert abs(first["b"] / 4000 - 0.75) < 0.03

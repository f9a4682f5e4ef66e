"""The body every inbound protocol reads: JSON objects only, nested at most MAX_NESTING levels deep."""

from __future__ import annotations

import orjson
import pytest

from skyrelay import errors
from skyrelay.protocols.fields import MAX_NESTING, load_body, nested_too_deeply


def nested(depth: int, opener: str) -> bytes:
    """A body `depth` levels deep in total (the body object is level 1), nesting through objects or arrays."""
    inner = "1"
    for _ in range(depth - 1):
        inner = f'{{"a":{inner}}}' if opener == "{" else f"[{inner}]"
    return f'{{"model":"m","x":{inner}}}'.encode()


@pytest.mark.parametrize("opener", ["{", "["])
def test_the_bound_is_exact(opener):
    assert load_body(nested(MAX_NESTING, opener))["model"] == "m"
    with pytest.raises(errors.InvalidRequest, match=f"more than {MAX_NESTING} levels"):
        load_body(nested(MAX_NESTING + 1, opener))


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 254, 255, 300, 1000, 1024, 1025, 5000])
def test_every_depth_past_the_bound_is_a_400(depth):
    with pytest.raises(errors.InvalidRequest) as raised:
        load_body(nested(depth, "["))
    assert raised.value.status == 400


def test_what_the_bound_admits_every_provider_can_encode_with_room_to_spare():
    # Providers wrap the client's values in a few levels of their own before orjson (254 at most) writes them.
    wrapped = orjson.loads(nested(MAX_NESTING, "{"))
    for _ in range(254 - MAX_NESTING):
        wrapped = [wrapped]
    assert orjson.dumps(wrapped)


def test_brackets_inside_strings_never_refuse_a_shallow_body():
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "[{" * 5000}]})
    assert load_body(body)["model"] == "m"


def test_a_wide_body_with_many_containers_is_probed_and_admitted():
    body = orjson.dumps({"model": "m", "tools": [{"type": "function", "function": {"parameters": {}}}] * 500})
    assert body.count(b"{") > MAX_NESTING
    assert load_body(body)["model"] == "m"


def test_the_probe_leaves_nothing_behind():
    value = orjson.loads(nested(MAX_NESTING + 1, "{"))
    assert nested_too_deeply(value) and not nested_too_deeply({"a": [1]}) and not nested_too_deeply(value["model"])

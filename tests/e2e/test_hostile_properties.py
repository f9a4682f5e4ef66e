"""Property tests: generated JSON bodies (any JSON value, and valid requests with a field replaced by one) posted
to both inbound protocols over every provider kind. Whatever the body, the answer is never a 5xx, an error is in
the route's own format, and no deployment's health is charged. Bounded and derandomized: the same examples run
every time, in a few seconds."""

from __future__ import annotations

import copy

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .hostile import assert_no_deployment_charged, chat_models, embed_models
from .test_hostile_inputs import CHAT, COUNT, EMBED, MESSAGES, SAMPLES
from .test_malformed_inputs import paths

SETTINGS = settings(max_examples=100, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ROUTES = [CHAT, EMBED, MESSAGES, COUNT]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=25)


def model_for(route: str, index: int) -> str:
    models = embed_models() if route == EMBED else chat_models()
    return models[index % len(models)]


@SETTINGS
@given(route=st.sampled_from(ROUTES), value=json_values)
def test_any_json_value_as_the_body(hostile, route, value):
    _, poster = hostile
    poster.post(route, orjson.dumps(value))


@SETTINGS
@given(route=st.sampled_from(ROUTES), data=st.data())
def test_a_valid_request_with_fields_replaced(hostile, route, data):
    _, poster = hostile
    body = copy.deepcopy(SAMPLES[route])
    body["model"] = model_for(route, data.draw(st.integers(0, 5), label="deployment"))
    places = list(paths(body))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        place = data.draw(st.sampled_from(places), label="place")
        parent = body
        try:
            for key in place[:-1]:
                parent = parent[key]
            parent[place[-1]]  # still there: an earlier mutation may have replaced what this path went through
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(parent, (dict, list)):
            continue
        parent[place[-1]] = data.draw(json_values, label="value")
    if data.draw(st.booleans(), label="stream") and route in (CHAT, MESSAGES):
        body["stream"] = True
    poster.post(route, orjson.dumps(body))


def test_no_deployment_was_charged_by_the_generated_bodies(hostile):
    stack, _ = hostile
    assert_no_deployment_charged(stack)

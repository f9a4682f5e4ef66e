"""`routing:`, a group's residency/concentration/context_fallbacks, a deployment's vendor/geo/context_window."""

import pytest

from skyrelay.config import parse_config
from skyrelay.config.model import Concentration, Hedge
from tests.unit.test_config import assert_problem, base, edit, problems_of

G = "model_groups.chat"
D0 = f"{G}.deployments[0]"


def test_defaults_when_absent():
    config = parse_config(base(), env={})
    chat = config.model_groups["chat"]
    assert (chat.residency, chat.concentration, chat.context_fallbacks) == (None, None, ())
    a = config.deployments()[0]
    assert (a.vendor, a.geo, a.context_window) == ("openai", None, None)


def test_values_reach_the_config():
    data = edit(base(), f"{D0}.vendor", "Acme")
    data = edit(data, f"{D0}.geo", "EU")
    data = edit(data, f"{D0}.context_window", 128000)
    data = edit(data, f"{G}.residency", ["eu", "WestEurope"])
    data = edit(data, f"{G}.context_fallbacks", ["small"])
    data = edit(data, f"{G}.concentration", {"max_share": 0.5, "window_s": 300, "measure": "cost",
                                             "on_breach": "refuse"})
    config = parse_config(data, env={})
    chat = config.model_groups["chat"]
    assert chat.residency == {"eu", "westeurope"} and chat.context_fallbacks == ("small",)
    assert chat.concentration == Concentration(0.5, 300.0, "cost", "refuse")
    a = config.deployments()[0]
    assert (a.vendor, a.geo, a.context_window) == ("acme", "eu", 128000)


def test_the_gateway_wide_concentration_applies_where_a_group_has_none_of_its_own():
    data = edit(base(), "routing", {"concentration": {"max_share": 0.6}})
    data = edit(data, f"{G}.concentration", {"max_share": 0.4, "on_breach": "refuse"})
    config = parse_config(data, env={})
    assert config.model_groups["chat"].concentration == Concentration(0.4, 600.0, "requests", "refuse")
    assert config.model_groups["small"].concentration == Concentration(0.6)
    assert config.routing.concentration == Concentration(0.6)


@pytest.mark.parametrize("path, value, where, fragment", [
    ("routing", {"concentraton": {}}, "routing.concentraton", "did you mean 'concentration'?"),
    ("routing", {"concentration": {}}, "routing.concentration.max_share", "required"),
    ("routing", {"concentration": {"max_share": 1.5}}, "routing.concentration.max_share", "<= 1"),
    (f"{G}.concentration", {"max_share": 0}, f"{G}.concentration.max_share", "> 0"),
    (f"{G}.concentration", {"max_share": 0.5, "measure": "tokens"}, f"{G}.concentration.measure", "unknown"),
    (f"{G}.concentration", {"max_share": 0.5, "on_breach": "fail"}, f"{G}.concentration.on_breach", "unknown"),
    (f"{G}.concentration", {"max_share": 0.5, "window_s": -1}, f"{G}.concentration.window_s", "> 0"),
    (f"{G}.residency", "eu", f"{G}.residency", "expected a list"),
    (f"{G}.residency", [], f"{G}.residency", "is empty"),
    (f"{G}.context_fallbacks", ["nope"], f"{G}.context_fallbacks[0]", "unknown model group"),
    (f"{G}.context_fallbacks", ["chat"], f"{G}.context_fallbacks[0]", "cannot fall back to itself"),
    (f"{D0}.context_window", 0, f"{D0}.context_window", "> 0"),
    (f"{D0}.geo", 5, f"{D0}.geo", "expected a string"),
    (f"{D0}.vendor", "", f"{D0}.vendor", "is empty"),
])
def test_mistakes_name_their_path(path, value, where, fragment):
    assert_problem(problems_of(edit(base(), path, value)), where, fragment)


S = "model_groups.small"


def test_hedge_reaches_the_group_and_is_off_when_absent():
    assert parse_config(base(), env={}).model_groups["chat"].hedge is None
    config = parse_config(edit(base(), f"{G}.hedge", {"after_ms": 1500}), env={})
    assert config.model_groups["chat"].hedge == Hedge(after_ms=1500)
    config = parse_config(edit(base(), f"{G}.hedge", {"after_percentile": 95}), env={})
    assert config.model_groups["chat"].hedge == Hedge(after_percentile=95)


@pytest.mark.parametrize("path, value, where, fragment", [
    (f"{G}.hedge", {}, f"{G}.hedge", "exactly one of after_ms or after_percentile"),
    (f"{G}.hedge", {"after_ms": 100, "after_percentile": 95}, f"{G}.hedge", "not both"),
    (f"{G}.hedge", {"after_ms": 0}, f"{G}.hedge.after_ms", "> 0"),
    (f"{G}.hedge", {"after_ms": "fast"}, f"{G}.hedge.after_ms", "expected a number"),
    (f"{G}.hedge", {"after_percentile": 101}, f"{G}.hedge.after_percentile", "<= 100"),
    (f"{G}.hedge", {"after": 100}, f"{G}.hedge.after", "did you mean"),
    (f"{G}.hedge", 1500, f"{G}.hedge", "expected a mapping"),
    (f"{S}.hedge", {"after_ms": 100}, f"{S}.hedge", "could never be sent"),  # one vendor, no fallbacks
])
def test_hedge_mistakes_name_their_path(path, value, where, fragment):
    assert_problem(problems_of(edit(base(), path, value)), where, fragment)

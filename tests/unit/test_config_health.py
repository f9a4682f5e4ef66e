"""The `health:` section and a deployment's `health_check:`: values reach the typed config, mistakes name their path."""

import pytest

from skyrelay.config import parse_config
from skyrelay.routing.health import BreakerPolicy, ErrorRate
from tests.unit.test_config import assert_problem, base, edit, problems_of

D0 = "model_groups.chat.deployments[0]"


def test_defaults_when_absent():
    config = parse_config(base(), env={})
    assert config.health == BreakerPolicy()
    assert config.deployments()[0].health_check is None


def test_values_reach_the_policy_and_the_deployment():
    data = edit(base(), "health", {"failure_threshold": 5, "cooldown_s": 10, "max_cooldown_s": 60,
                                   "repeat_memory_s": 120,
                                   "error_rate": {"threshold": 0.25, "window_s": 60, "min_requests": 20}})
    data = edit(data, f"{D0}.health_check", {"interval_s": 2, "timeout_s": 1})
    config = parse_config(data, env={})
    assert config.health == BreakerPolicy(failure_threshold=5, cooldown=10.0, max_cooldown=60.0,
                                          repeat_memory=120.0, error_rate=ErrorRate(0.25, 60.0, 20))
    check = config.deployments()[0].health_check
    assert (check.interval_s, check.timeout_s) == (2.0, 1.0)
    assert config.deployments()[1].health_check is None


def test_error_rate_off():
    config = parse_config(edit(base(), "health", {"error_rate": False}), env={})
    assert config.health.error_rate is None


def test_health_check_defaults():
    check = parse_config(edit(base(), f"{D0}.health_check", {}), env={}).deployments()[0].health_check
    assert (check.interval_s, check.timeout_s) == (10.0, 5.0)


CASES = [
    ("health", 3, "health", "expected a mapping"),
    ("health", {"threshold": 3}, "health.threshold", "unknown key"),
    ("health", {"failure_threshold": 0}, "health.failure_threshold", "must be >= 1"),
    ("health", {"cooldown_s": 0}, "health.cooldown_s", "must be > 0"),
    ("health", {"cooldown_s": 60, "max_cooldown_s": 30}, "health.max_cooldown_s", "shorter than cooldown_s"),
    ("health", {"repeat_memory_s": -1}, "health.repeat_memory_s", "must be >= 0"),
    ("health", {"error_rate": {"threshold": 0}}, "health.error_rate.threshold", "must be > 0"),
    ("health", {"error_rate": {"threshold": 1.5}}, "health.error_rate.threshold", "must be <= 1"),
    ("health", {"error_rate": {"window_s": 0}}, "health.error_rate.window_s", "must be > 0"),
    ("health", {"error_rate": {"min_requests": 0.5}}, "health.error_rate.min_requests", "integer"),
    ("health", {"error_rate": {"window": 30}}, "health.error_rate.window", "did you mean 'window_s'?"),
    ("health", {"error_rate": "high"}, "health.error_rate", "expected a mapping"),
    (f"{D0}.health_check", {"interval_s": 0}, f"{D0}.health_check.interval_s", "must be > 0"),
    (f"{D0}.health_check", {"interval": 10}, f"{D0}.health_check.interval", "did you mean 'interval_s'?"),
    (f"{D0}.health_check", {"interval_s": 2, "timeout_s": 5}, f"{D0}.health_check.timeout_s", "longer than"),
    (f"{D0}.health_check", True, f"{D0}.health_check", "expected a mapping"),
]


@pytest.mark.parametrize("path, value, problem_path, fragment", CASES, ids=[f"{c[0]}={c[1]!r}" for c in CASES])
def test_each_mistake_is_reported_at_its_path(path, value, problem_path, fragment):
    assert_problem(problems_of(edit(base(), path, value)), problem_path, fragment)

"""The `metrics:` and `logging:` sections: values reach the typed config, mistakes name their path."""

import pytest

from skyrelay.config import parse_config
from skyrelay.config.model import LoggingConfig, MetricsConfig
from tests.unit.test_config import assert_problem, base, edit, problems_of


def test_defaults_when_absent():
    config = parse_config(base(), env={})
    assert config.metrics == MetricsConfig(enabled=True, public=False)
    assert config.logging == LoggingConfig(access=False, file=None, level="info", format="text")


def test_values_reach_the_config():
    data = edit(base(), "metrics", {"enabled": False, "public": True})
    data = edit(data, "logging", {"access": True, "file": "/var/log/skyrelay.jsonl", "level": "debug",
                                  "format": "json"})
    config = parse_config(data, env={})
    assert config.metrics == MetricsConfig(enabled=False, public=True)
    assert config.logging == LoggingConfig(access=True, file="/var/log/skyrelay.jsonl", level="debug",
                                           format="json")


@pytest.mark.parametrize("section, value, path, fragment", [
    ("metrics", {"public": "yes"}, "metrics.public", "expected true or false"),
    ("metrics", {"pubic": True}, "metrics.pubic", "did you mean 'public'"),
    ("metrics", [1], "metrics", "expected a mapping"),
    ("logging", {"level": "loud"}, "logging.level", "one of: debug, info, warning, error"),
    ("logging", {"format": "xml"}, "logging.format", "one of: text, json"),
    ("logging", {"access": 1}, "logging.access", "expected true or false"),
    ("logging", {"file": ""}, "logging.file", "is empty"),
])
def test_mistakes_name_their_path(section, value, path, fragment):
    assert_problem(problems_of(edit(base(), section, value)), path, fragment)


def test_otlp_values_reach_the_config():
    pytest.importorskip("opentelemetry.sdk")
    data = edit(base(), "telemetry", {"otlp": {"endpoint": "http://127.0.0.1:4318/v1/traces",
                                               "headers": {"Authorization": "Bearer t"}, "sample_ratio": 0.25}})
    otlp = parse_config(data, env={}).otlp
    assert (otlp.endpoint, otlp.headers, otlp.sample_ratio) == (
        "http://127.0.0.1:4318/v1/traces", {"Authorization": "Bearer t"}, 0.25)
    assert parse_config(base(), env={}).otlp is None
    assert "Bearer t" not in repr(otlp)


@pytest.mark.parametrize("value, path, fragment", [
    ({"otlp": {}}, "telemetry.otlp.endpoint", "required"),
    ({"otlp": {"endpoint": "127.0.0.1:4318"}}, "telemetry.otlp.endpoint", "http:// or https://"),
    ({"otlp": {"endpoint": "http://c/v1/traces", "sample_ratio": 2}}, "telemetry.otlp.sample_ratio", "between"),
    ({"otlp": {"endpoint": "http://c/v1/traces", "headers": {"bad name": "x"}}},
     "telemetry.otlp.headers.'bad name'", "not a valid header name"),
    ({"otel": {}}, "telemetry.otel", "did you mean 'otlp'"),
])
def test_otlp_mistakes_name_their_path(value, path, fragment):
    assert_problem(problems_of(edit(base(), "telemetry", value)), path, fragment)

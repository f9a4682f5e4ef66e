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

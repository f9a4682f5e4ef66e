"""The state:, teams: and keys: sections: what they accept, what they refuse (by YAML path), and that a key's
secret never reaches the typed Config or a message."""

from __future__ import annotations

import hashlib

import pytest

from skyrelay.config import parse_config
from skyrelay.config.model import Budget

from tests.unit.test_config import assert_problem, base, problems_of


def with_sections(**sections) -> dict:
    data = base()
    data["server"]["master_key"] = "sk-master"
    data.update(sections)
    return data


def test_teams_and_keys_are_read_and_keys_kept_only_as_digests():
    config = parse_config(with_sections(
        state={"backend": "redis", "url": "redis://127.0.0.1:6379/0", "prefix": "gw:"},
        teams={"research": {"models": ["chat"], "residency": ["eu"], "rpm": 1000, "tpm": 2000000,
                            "budget": {"usd": 500, "period": "month"}}},
        keys=[{"name": "ci-bot", "team": "research", "key": "${CI_BOT_KEY}", "rpm": 60, "max_parallel": 2,
               "budget": {"usd": 10, "period": "day"}, "expires_at": "2030-01-01T00:00:00Z", "role": "admin",
               "metadata": {"owner": "ci"}}],
    ), env={"CI_BOT_KEY": "sk-ci-bot-secret"})
    assert config.state.backend == "redis" and config.state.prefix == "gw:"
    team = config.teams["research"]
    assert team.models == {"chat"} and team.residency == {"eu"} and team.budget == Budget(500.0, "month")
    (digest, key), = config.keys.items()
    assert digest == hashlib.sha256(b"sk-ci-bot-secret").hexdigest()
    assert key.name == "ci-bot" and key.team == "research" and key.rpm == 60 and key.max_parallel == 2
    assert key.expires_at == 1893456000.0 and key.role == "admin" and key.metadata == {"owner": "ci"}
    assert "sk-ci-bot-secret" not in repr(config)


def test_the_default_state_is_memory():
    assert parse_config(base()).state.backend == "memory"


@pytest.mark.parametrize("sections, path, fragment", [
    ({"state": {"backend": "etcd"}}, "state.backend", "unknown backend"),
    ({"state": {"backend": "redis"}}, "state.url", "required with backend: redis"),
    ({"state": {"backend": "redis", "url": "http://x"}}, "state.url", "redis://"),
    ({"state": {"url": "redis://x"}}, "state.url", "only used with backend: redis"),
    ({"state": {"bakend": "redis"}}, "state.bakend", "did you mean 'backend'"),
    ({"teams": {"t": {"models": ["chta"]}}}, "teams.t.models[0]", "unknown model group"),
    ({"teams": {"t": {"budget": {"usd": -1, "period": "day"}}}}, "teams.t.budget.usd", "between 0 and"),
    ({"teams": {"t": {"budget": {"usd": 1e308, "period": "day"}}}}, "teams.t.budget.usd", "between 0 and"),
    ({"keys": [{"name": "a", "key": "sk-a", "expires_at": "0999-06-01T00:00:00Z"}]}, "keys[0].expires_at", "between 1970"),
    ({"teams": {"t": {"budget": {"usd": 1, "period": "year"}}}}, "teams.t.budget.period", "unknown period"),
    ({"teams": {"t": {"budget": {"usd": 1}}}}, "teams.t.budget.period", "required"),
    ({"teams": {"t": {"rpm": 0}}}, "teams.t.rpm", "must be > 0"),
    ({"keys": {"name": "a"}}, "keys", "expected a list"),
    ({"keys": [{"name": "a"}]}, "keys[0].key", "required"),
    ({"keys": [{"key": "sk-a"}]}, "keys[0].name", "required"),
    ({"keys": [{"name": "a", "key": "sk-a", "team": "nope"}]}, "keys[0].team", "unknown team"),
    ({"keys": [{"name": "a", "key": "sk-a"}, {"name": "a", "key": "sk-b"}]}, "keys[1].name", "already used"),
    ({"keys": [{"name": "a", "key": "sk-a"}, {"name": "b", "key": "sk-a"}]}, "keys[1].key", "same secret"),
    ({"keys": [{"name": "a", "key": "sk-master"}]}, "keys[0].key", "is the master key"),
    ({"keys": [{"name": "a", "key": "sk a"}]}, "keys[0].key", "whitespace"),
    ({"keys": [{"name": "a", "key": "sk-a", "expires_at": "soon"}]}, "keys[0].expires_at", "ISO 8601"),
    ({"keys": [{"name": "a", "key": "sk-a", "role": "root"}]}, "keys[0].role", "unknown role"),
    ({"keys": [{"name": "a", "key": "sk-a", "max_parallel": 0}]}, "keys[0].max_parallel", ">= 1"),
    ({"keys": [{"name": "a", "key": "sk-a", "rmp": 1}]}, "keys[0].rmp", "did you mean 'rpm'"),
    ({"keys": [{"name": "a", "key": "sk-a", "residency": []}]}, "keys[0].residency", "is empty"),
    ({"teams": {"t": {"residency": []}}}, "teams.t.residency", "is empty"),
])
def test_mistakes_are_reported_at_their_path(sections, path, fragment):
    assert_problem(problems_of(with_sections(**sections)), path, fragment)


def test_a_team_or_keys_residency_is_case_insensitive_as_a_groups_is():
    """Deployments' geos and regions are compared in lower case: a key's `[EU]` kept as written matched nothing,
    and every request of the key was refused for its residency."""
    from skyrelay.governance.principals import Principal
    from skyrelay.governance.records import key_record

    config = parse_config(with_sections(teams={"t": {"residency": ["EU", "US-East-1"]}},
                                        keys=[{"name": "a", "key": "sk-a", "team": "t", "residency": [" Eu "]}]))
    (key,) = config.keys.values()
    assert config.teams["t"].residency == {"eu", "us-east-1"} and key.residency == {"eu"}
    assert Principal(key, config.teams["t"]).residency == {"eu"}
    stored = key_record("b", "0" * 64, {"residency": ["EU"]})  # written by the admin API before it lower-cased
    assert stored.residency == {"eu"}


def test_no_message_shows_a_keys_secret():
    problems = problems_of(with_sections(keys=[{"name": "a", "key": "sk-very-secret"},
                                               {"name": "b", "key": "sk-very-secret"}]))
    assert problems and all("sk-very-secret" not in str(p) for p in problems)

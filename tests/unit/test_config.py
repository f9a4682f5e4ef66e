"""Configuration loading and validation: every documented check, secrecy, env substitution, the examples."""

from __future__ import annotations

import copy
import dataclasses
import io
import pickle
import random
import re
from pathlib import Path

import pytest
import yaml

from skyrelay.config import (Config, ConfigError, Deployment, ModelGroup, Price, Problem, Secret, Timeouts,
                             check_config, load_config, parse_config)
from skyrelay.config.check import run as run_check

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MULTICLOUD_ENV = {
    "SKYRELAY_MASTER_KEY": "mk-secret-1", "AZURE_OPENAI_API_KEY": "az-secret-2", "AWS_ACCESS_KEY_ID": "AKIDSECRET3",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-4", "ANTHROPIC_API_KEY": "ant-secret-5", "GEMINI_API_KEY": "gem-secret-6",
}
class _Delete:
    def __repr__(self) -> str:  # stable test ids, so pytest-xdist workers collect the same tests
        return "DELETE"


DELETE = _Delete()


def base() -> dict:
    """A small valid configuration that each table case breaks in one place."""
    return {
        "server": {"port": 4000},
        "model_groups": {
            "chat": {
                "fallbacks": ["small"],
                "deployments": [
                    {"name": "a", "kind": "openai", "base_url": "http://127.0.0.1:9001/v1", "model": "m"},
                    {"name": "b", "kind": "openai", "base_url": "http://127.0.0.1:9002/v1", "model": "m"},
                ],
            },
            "small": {"deployments": [{"kind": "openai", "base_url": "http://127.0.0.1:9003/v1", "model": "m"}]},
        },
    }


def edit(data: dict, path: str, value: object) -> dict:
    """Set (or DELETE) the value at a path like `model_groups.chat.deployments[1].base_url`."""
    data = copy.deepcopy(data)
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    node = data
    for part in parts[:-1]:
        node = node[part]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return data


def problems_of(data: object, env: dict | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env=env or {})
    return caught.value.problems


def assert_problem(problems: list[Problem], path: str, fragment: str) -> Problem:
    for problem in problems:
        if problem.path == path and fragment in str(problem):
            return problem
    raise AssertionError(f"no problem at {path!r} containing {fragment!r} in:\n" + "\n".join(map(str, problems)))


D0 = "model_groups.chat.deployments[0]"
D1 = "model_groups.chat.deployments[1]"

# (edit path, new value, problem path, fragment of the problem's text)
CASES = [
    ("surprise", 1, "surprise", "unknown key"),
    ("model_groups_", {}, "model_groups_", "did you mean 'model_groups'?"),
    ("server.prot", 4000, "server.prot", "did you mean 'port'?"),
    ("server.port", "abc", "server.port", "expected an integer, got 'abc'"),
    ("server.port", "4000", "server.port", "remove the quotes"),
    ("server.port", True, "server.port", "expected an integer, got true"),
    ("server.port", 70000, "server.port", "must be between 0 and 65535, got 70000"),
    ("server.port", -1, "server.port", "must be between 0 and 65535"),
    ("server.port", 1.5, "server.port", "expected an integer"),
    ("server.max_body_bytes", 0, "server.max_body_bytes", "must be > 0"),
    ("server.max_connections", 0, "server.max_connections", "must be >= 1"),
    ("server.max_connections", 1.5, "server.max_connections", "expected an integer"),
    ("server.head_timeout", 0, "server.head_timeout", "must be > 0"),
    ("server.head_timeout", "10s", "server.head_timeout", "expected a number"),
    ("server.body_timeout", -1, "server.body_timeout", "must be > 0"),
    ("server.body_timeout", 7200, "server.body_timeout", "must be <= 3600"),
    ("server.drain_timeout_s", -1, "server.drain_timeout_s", "must be between 0 and 3600"),
    ("server.drain_timeout_s", "30s", "server.drain_timeout_s", "expected a number"),
    ("server.host", "http://0.0.0.0", "server.host", "expected a host name"),
    ("server.host", ["x"], "server.host", "expected a string, got a list"),
    ("server.master_key", "", "server.master_key", "is empty"),
    ("server", [1, 2], "server", "expected a mapping, got a list"),
    ("model_groups", DELETE, "model_groups", "required"),
    ("model_groups", {}, "model_groups", "no model groups"),
    ("model_groups", ["chat"], "model_groups", "expected a mapping"),
    ("model_groups.chat.strategy", "weightd", "model_groups.chat.strategy", "did you mean 'weighted'?"),
    ("model_groups.chat.strategy", "quickest", "model_groups.chat.strategy", "weighted, least_outstanding, fastest"),
    ("model_groups.chat.strategy", "cheapest_within", "model_groups.chat.latency_objective", "needs a latency"),
    ("model_groups.chat.latency_objective", {"percentile": 95}, "model_groups.chat.latency_objective.ttft_ms",
     "required"),
    ("model_groups.chat.latency_objective", {"ttft_ms": 800, "percentile": 101},
     "model_groups.chat.latency_objective.percentile", "must be <= 100"),
    ("model_groups.chat.latency_objective", {"ttft_ms": 800, "p": 9}, "model_groups.chat.latency_objective.p",
     "unknown key"),
    ("model_groups.chat.max_attempts", 0, "model_groups.chat.max_attempts", "must be >= 1"),
    ("model_groups.chat.retries", 2, "model_groups.chat.retries", "unknown key"),
    ("model_groups.chat.fallbacks", ["smal"], "model_groups.chat.fallbacks[0]", "did you mean 'small'?"),
    ("model_groups.chat.fallbacks", ["chat"], "model_groups.chat.fallbacks[0]", "fall back to itself"),
    ("model_groups.chat.fallbacks", ["small", "small"], "model_groups.chat.fallbacks[1]", "listed twice"),
    ("model_groups.chat.fallbacks", "small", "model_groups.chat.fallbacks", "write a list: fallbacks: [small]"),
    ("model_groups.chat.fallbacks", [3], "model_groups.chat.fallbacks[0]", "expected a non-empty string"),
    ("model_groups.chat.deployments", [], "model_groups.chat.deployments", "at least one deployment"),
    ("model_groups.chat.deployments", DELETE, "model_groups.chat.deployments", "at least one deployment"),
    ("model_groups.chat.deployments", {"a": 1}, "model_groups.chat.deployments", "expected a list"),
    ("model_groups.chat.deployments[0]", "openai", D0, "expected a mapping"),
    ("model_groups.chat", None, "model_groups.chat", "needs at least one deployment"),
    ("model_groups.chat", "x", "model_groups.chat", "expected a mapping"),
    (f"{D0}.kind", DELETE, f"{D0}.kind", "required"),
    (f"{D0}.kind", "azur", f"{D0}.kind", "did you mean 'azure'?"),
    (f"{D0}.kind", "watson", f"{D0}.kind", "openai, azure, bedrock, anthropic, gemini, vertex"),
    (f"{D0}.model", DELETE, f"{D0}.model", "required"),
    (f"{D0}.model", 4, f"{D0}.model", 'quote it: "4"'),
    (f"{D0}.modle", "m", f"{D0}.modle", "did you mean 'model'?"),
    (f"{D1}.base_url", "localhost:9001", f"{D1}.base_url", "not a URL"),
    (f"{D1}.base_url", "ftp://host/v1", f"{D1}.base_url", "http:// or https://"),
    (f"{D1}.base_url", "http:///v1", f"{D1}.base_url", "no host"),
    (f"{D1}.base_url", "http://h:99999/v1", f"{D1}.base_url", "port"),
    (f"{D1}.base_url", "http://h/v1?x=1", f"{D1}.base_url", "query"),
    (f"{D1}.base_url", "http://h /v1", f"{D1}.base_url", "spaces"),
    (f"{D1}.base_url", "http://u:p@h/v1", f"{D1}.base_url", "must not contain credentials"),
    (f"{D1}.base_url", DELETE, f"{D1}.base_url", "required for kind openai"),
    (f"{D1}.name", "a", f"{D1}.name", f"already used by {D0}"),
    (f"{D1}.name", "small-0", f"model_groups.small.deployments[0].name", "already used"),
    (f"{D1}.name", "has space", f"{D1}.name", "must not contain spaces"),
    (f"{D0}.weight", 0, f"{D0}.weight", "must be > 0"),
    (f"{D0}.weight", float("nan"), f"{D0}.weight", "finite"),
    (f"{D0}.weight", "heavy", f"{D0}.weight", "expected a number"),
    (f"{D0}.rpm", 0, f"{D0}.rpm", "must be > 0"),
    (f"{D0}.tpm", 1.5, f"{D0}.tpm", "expected an integer"),
    (f"{D0}.max_connections", 0, f"{D0}.max_connections", "must be >= 1"),
    (f"{D0}.max_concurrency", 0, f"{D0}.max_concurrency", "must be >= 1"),
    (f"{D0}.tier", -1, f"{D0}.tier", "must be >= 0"),
    (f"{D0}.tier", 0.5, f"{D0}.tier", "expected an integer"),
    ("model_groups.chat.queue_timeout_ms", -5, "model_groups.chat.queue_timeout_ms", "must be >= 0"),
    (f"{D0}.timeouts", {"connect": 0}, f"{D0}.timeouts.connect", "must be > 0"),
    (f"{D0}.timeouts", {"read": 3}, f"{D0}.timeouts.read", "unknown key"),
    (f"{D0}.timeouts", {"first_byte": 900}, f"{D0}.timeouts.first_byte", "longer than total"),
    (f"{D0}.timeouts", 30, f"{D0}.timeouts", "expected a mapping"),
    (f"{D0}.price", {"input_per_mtok": -1}, f"{D0}.price.input_per_mtok", "must be >= 0"),
    (f"{D0}.price", {"input": 1}, f"{D0}.price.input", "did you mean 'input_per_mtok'?"),
    (f"{D0}.headers", {"Bad Header": "x"}, f"{D0}.headers.'Bad Header'", "not a valid header name"),
    (f"{D0}.headers", {"Content-Length": "1"}, f"{D0}.headers.Content-Length", "set by the gateway"),
    (f"{D0}.headers", {"X-A": "a\r\nX-B: b"}, f"{D0}.headers.X-A", "line breaks"),
    (f"{D0}.headers", {"X-A": ["a"]}, f"{D0}.headers.X-A", "expected a string, got a list"),
    (f"{D0}.headers", {"X-A": "1", "x-a": "2"}, f"{D0}.headers.x-a", "repeats a header"),
    (f"{D0}.tags", {"tier": {"x": 1}}, f"{D0}.tags.tier", "expected a string, number or boolean"),
    (f"{D0}.tags", ["gold"], f"{D0}.tags", "expected a mapping"),
    (f"{D0}.region", True, f"{D0}.region", "booleans"),
    (f"{D0}.api_version", "2024-10-21", f"{D0}.api_version", "only allowed for kind azure"),
    (f"{D0}.aws_profile", "p", f"{D0}.aws_profile", "only allowed for kind bedrock"),
    (f"{D0}.project", "p", f"{D0}.project", "only allowed for kinds vertex, vertex_anthropic, but this deployment is kind openai"),
    (f"{D0}.anthropic_version", "x", f"{D0}.anthropic_version", "only allowed for kind anthropic"),
    (f"{D0}.api_key", 12345, f"{D0}.api_key", "expected a string, got an integer"),
    (f"{D0}.api_key", "  ", f"{D0}.api_key", "is empty"),
    (f"{D0}.api_key", "sk-1\n", f"{D0}.api_key", "whitespace or a line break"),
]


@pytest.mark.parametrize("path, value, problem_path, fragment", CASES, ids=[f"{c[0]}={c[1]!r}" for c in CASES])
def test_each_mistake_is_reported_at_its_path(path, value, problem_path, fragment):
    assert_problem(problems_of(edit(base(), path, value)), problem_path, fragment)


def deployment(**fields) -> dict:
    return edit(base(), D0, {"name": "x", "model": "m", **fields})


KIND_CASES = [
    ({"kind": "azure", "base_url": "https://r.openai.azure.com", "api_key": "k", "azure_ad_token": "t"},
     f"{D0}.azure_ad_token", "give one Azure credential"),
    ({"kind": "azure", "base_url": "https://r.openai.azure.com", "api_version": "2025-01-01-preview"}, None, None),
    ({"kind": "azure"}, f"{D0}.base_url", "required for kind azure"),
    ({"kind": "anthropic", "api_key": "k"}, None, None),  # base_url defaults to https://api.anthropic.com
    ({"kind": "bedrock"}, f"{D0}.region", "required for kind bedrock"),
    ({"kind": "bedrock", "region": "us-east-1", "aws_access_key_id": "AK"}, f"{D0}.aws_secret_access_key",
     "required together with aws_access_key_id"),
    ({"kind": "bedrock", "region": "us-east-1", "aws_session_token": "ST"}, f"{D0}.aws_session_token",
     "needs aws_access_key_id"),
    ({"kind": "bedrock", "region": "us-east-1", "aws_access_key_id": "AK", "aws_secret_access_key": "SK",
      "aws_profile": "p"}, f"{D0}.aws_profile", "conflicts with explicit AWS keys"),
    ({"kind": "bedrock", "region": "US East 1"}, f"{D0}.region", "not a region name"),
    ({"kind": "vertex"}, f"{D0}.project", "required for kind vertex"),
    ({"kind": "vertex", "project": "p", "location": "Europe/West"}, f"{D0}.location", "not a Google Cloud location"),
    ({"kind": "gemini", "api_key": "k"}, None, None),
    ({"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "stream_usage": False}, None, None),
    ({"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "stream_usage": "no"}, f"{D0}.stream_usage",
     "expected true or false"),
    ({"kind": "gemini", "api_key": "k", "stream_usage": False}, f"{D0}.stream_usage", "only allowed for kind openai"),
]


@pytest.mark.parametrize("fields, problem_path, fragment", KIND_CASES)
def test_kind_specific_rules(fields, problem_path, fragment):
    data = deployment(**fields)
    if problem_path is None:
        parse_config(data, env={})
    else:
        assert_problem(problems_of(data), problem_path, fragment)


YAML_CASES = [
    ("", "the configuration is empty"),
    ("   \n# only a comment\n", "the configuration is empty"),
    ("- a\n- b\n", "the top level must be a mapping"),
    ("just text", "the top level must be a mapping"),
    ("model_groups:\n  chat: {deployments: [\n", "YAML syntax error at line"),
    ("server:\n\tport: 1\n", "tabs"),
    ("server:\n  port: 1\n  port: 2\nmodel_groups: {}\n", "line 3: key 'port' appears twice"),
    ("server: {port: 1, port: 2}\nmodel_groups: {}\n", "key 'port' appears twice"),
    ("a: 1\n---\nb: 2\n", "YAML syntax error"),
    ("a: *nope\n", "YAML syntax error"),
    ("? [a, b]\n: 1\n", "YAML syntax error"),
]


@pytest.mark.parametrize("text, fragment", YAML_CASES)
def test_yaml_level_problems_are_problems_not_exceptions(text, fragment):
    problems = check_config(text, env={})
    assert any(fragment in str(p) for p in problems), problems


def test_anchors_merge_keys_and_x_sections():
    text = """
x-common: &common
  kind: openai
  model: gpt-4o-mini
  timeouts: {total: 30, first_byte: 10}
model_groups:
  chat:
    deployments:
      - <<: *common
        base_url: http://127.0.0.1:9001/v1
      - <<: *common
        base_url: http://127.0.0.1:9002/v1
        model: gpt-4o
"""
    assert check_config(text, env={}) == []
    first, second = parse_config(yaml.safe_load(text), env={}).model_groups["chat"].deployments
    assert first.timeouts == Timeouts(5, 10, 30) and (first.model, second.model) == ("gpt-4o-mini", "gpt-4o")


def test_yaml_syntax_error_names_line_and_column_but_not_the_line_text():
    text = "server:\n  master_key: sk-live-TOPSECRET: oops\nmodel_groups: {}\n"
    [problem] = check_config(text, env={})
    assert "line 2, column" in problem.message
    assert "TOPSECRET" not in str(problem)


def test_all_problems_are_collected_in_one_pass():
    data = edit(edit(edit(base(), "server.port", "abc"), f"{D0}.kind", "azur"), f"{D1}.weight", -1)
    paths = {p.path for p in problems_of(data)}
    assert {"server.port", f"{D0}.kind", f"{D1}.weight"} <= paths


def test_problem_and_error_rendering():
    problem = Problem(f"{D1}.base_url", "not a URL", "use http://host:port/v1")
    assert str(problem) == f"{D1}.base_url: not a URL (hint: use http://host:port/v1)"
    assert str(Problem("", "the configuration is empty")) == "the configuration is empty"
    error = ConfigError([problem, Problem("server.port", "bad")], source="g.yaml")
    assert str(error).splitlines() == ["2 problems in g.yaml:", f"  - {problem}", "  - server.port: bad"]
    copied = pickle.loads(pickle.dumps(error))
    assert copied.problems == error.problems and str(copied) == str(error)


# --- environment substitution -------------------------------------------------------------------------------


def test_env_substitution_whole_partial_escaped_and_numeric():
    data = edit(edit(edit(base(), "server.port", "${PORT}"), f"{D0}.headers", {"X-Team": "team-${TEAM}-x"}),
                f"{D0}.tags", {"literal": "$${HOME} and $5"})
    config = parse_config(data, env={"PORT": "4100", "TEAM": "infra"})
    assert config.server.port == 4100
    d0 = config.model_groups["chat"].deployments[0]
    assert d0.headers == {"X-Team": "team-infra-x"}
    assert d0.tags == {"literal": "${HOME} and $5"}


def test_unset_env_var_names_path_and_variable():
    problem = assert_problem(problems_of(edit(base(), f"{D0}.api_key", "${AZURE_KEY}")), f"{D0}.api_key",
                             "environment variable AZURE_KEY is not set")
    assert problem.hint


@pytest.mark.parametrize("template", ["${}", "${1X}", "${A-B}", "${OPEN"])
def test_malformed_env_reference(template):
    assert_problem(problems_of(edit(base(), f"{D0}.model", template)), f"{D0}.model", "malformed environment")


def test_bad_number_from_env_shows_the_template_not_the_value():
    problem = assert_problem(problems_of(edit(base(), "server.port", "${PORT}"), env={"PORT": "leaky-value"}),
                             "server.port", "expected an integer")
    assert "${PORT}" in problem.message and "leaky-value" not in str(problem)


def test_empty_secret_from_env_is_a_problem():
    problems = problems_of(edit(base(), "server.master_key", "${MK}"), env={"MK": ""})
    assert_problem(problems, "server.master_key", "set the variable")


# --- secrets --------------------------------------------------------------------------------------------------


def test_secret_never_prints_its_value():
    secret = Secret("sk-123")
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('***')"
    assert secret.reveal() == "sk-123"
    assert secret == Secret("sk-123") and secret != Secret("other") and secret != "sk-123"
    assert bool(secret) and not Secret("")
    assert secret.matches("sk-123") and not secret.matches("sk-124")
    assert len({secret, Secret("sk-123")}) == 1


def test_secrets_are_wrapped_and_absent_from_reprs():
    config = load_config(EXAMPLES / "multicloud.yaml", env=MULTICLOUD_ENV)
    text = repr(config)
    for value in MULTICLOUD_ENV.values():
        assert value not in text
    bedrock = config.deployment("bedrock-useast1")
    assert bedrock.options["aws_secret_access_key"].reveal() == "aws-secret-4"
    assert isinstance(bedrock.options["aws_access_key_id"], Secret)
    assert config.server.master_key.reveal() == "mk-secret-1"


SECRET_LEAKS = [
    (f"{D0}.api_key", ["sk-LEAK"]),
    (f"{D0}.api_key", {"sk-LEAK": 1}),
    (f"{D0}.api_key", "${sk-LEAK"),
    ("server.master_key", 987654321),
    (f"{D0}.headers", {"Authorization": "Bearer sk-LEAK\n"}),
    (f"{D0}.headers", {"Authorization": ["Bearer sk-LEAK"]}),
    (f"{D0}.base_url", "https://user:sk-LEAK@host/v1"),
    (f"{D0}.azure_ad_token", "sk-LEAK"),
]


@pytest.mark.parametrize("path, value", SECRET_LEAKS)
def test_invalid_secrets_are_not_echoed(path, value):
    text = str(ConfigError(problems_of(edit(base(), path, value))))
    assert "LEAK" not in text and "987654321" not in text


def test_check_command_output_holds_no_secret(tmp_path):
    out = io.StringIO()
    assert run_check(str(EXAMPLES / "multicloud.yaml"), env=MULTICLOUD_ENV, out=out) == 0
    assert "OK, 1 model group, 4 deployments" in out.getvalue()
    for value in MULTICLOUD_ENV.values():
        assert value not in out.getvalue()
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  master_key: [sk-LEAK]\n  port: abc\n")
    out = io.StringIO()
    assert run_check(str(bad), env={}, out=out) == 1
    assert "server.port: expected an integer" in out.getvalue() and "LEAK" not in out.getvalue()


# --- typed result and defaults --------------------------------------------------------------------------------


def test_defaults():
    config = parse_config({"model_groups": {"g": {"deployments": [
        {"kind": "openai", "base_url": "http://h:1/v1/", "model": "m"},
        {"kind": "azure", "base_url": "https://r.openai.azure.com", "model": "d"},
        {"kind": "anthropic", "base_url": "https://api.anthropic.com", "model": "c"},
        {"kind": "vertex", "project": "p", "region": "europe-west4", "model": "g"},
        {"kind": "gemini", "model": "g"},
        {"kind": "bedrock", "region": "us-east-1", "model": "b"},
    ]}}}, env={})
    assert config.server.host == "127.0.0.1" and config.server.port == 4000
    assert config.server.max_body_bytes == 32 * 1024 * 1024 and config.server.master_key is None
    assert (config.server.max_connections, config.server.head_timeout, config.server.body_timeout) == (10_000, 10, 30)
    assert config.server.drain_timeout_s == 30
    group = config.model_groups["g"]
    assert (group.strategy, group.max_attempts, group.fallbacks) == ("weighted", 3, ())
    assert group.on_unsupported == "fail_over"  # a mixed group must not answer 400 by the luck of the pick
    openai, azure, anthropic, vertex, gemini, bedrock = group.deployments
    assert openai.name == "g-0" and openai.group == "g" and openai.base_url == "http://h:1/v1"
    assert openai.weight == 1.0 and openai.timeouts == Timeouts(5, 60, 600) and openai.price == Price()
    assert (openai.rpm, openai.tpm, openai.api_key, openai.region) == (None, None, None, None)
    assert (openai.max_concurrency, openai.tier, group.queue_timeout_ms, group.tiers) == (None, 0, 0, ())
    assert openai.max_connections == 100 and openai.headers == {} and openai.tags == {}
    assert openai.options == {"responses": "native"}
    assert azure.options == {"api_version": "2024-10-21", "responses": "native"}
    assert anthropic.options == {"anthropic_version": "2023-06-01"}
    assert vertex.options == {"project": "p", "location": "europe-west4"}
    assert gemini.base_url is None and bedrock.base_url is None and bedrock.name == "g-5"


def test_typed_objects_are_immutable_and_hashable():
    config = parse_config(base(), env={})
    d = config.model_groups["chat"].deployments[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.weight = 2  # type: ignore[misc]
    assert {d: 1}[d] == 1 and {config.model_groups["chat"]}
    assert list(config.model_groups) == ["chat", "small"]
    assert [x.name for x in config.deployments()] == ["a", "b", "small-0"]
    assert config.deployment("b").base_url == "http://127.0.0.1:9002/v1" and config.deployment("zz") is None


def test_types_can_be_built_directly_for_tests_and_the_simulator():
    d = Deployment("d1", "chat", "openai", model="m", base_url="http://h/v1")
    config = Config(model_groups={"chat": ModelGroup("chat", deployments=(d,))})
    assert config.deployment("d1") is d and "headers" not in repr(d)


# --- examples and files ---------------------------------------------------------------------------------------


def test_gateway_example_round_trip():
    config = load_config(EXAMPLES / "gateway.yaml", env={"SKYRELAY_MASTER_KEY": "sk-dev"})
    assert list(config.model_groups) == ["chat", "embed"]
    chat = config.model_groups["chat"]
    assert [d.name for d in chat.deployments] == ["azure-eastus", "aws-useast1"]
    assert [d.base_url for d in chat.deployments] == ["http://127.0.0.1:9101/v1", "http://127.0.0.1:9102/v1"]
    assert all(d.kind == "openai" for d in config.deployments())
    assert chat.deployments[0].price.cached_input_per_mtok == 0.075
    assert config.server.master_key == Secret("sk-dev")
    assert check_config(EXAMPLES / "gateway.yaml", env={"SKYRELAY_MASTER_KEY": "sk-dev"}) == []


def test_gateway_example_needs_the_master_key():
    problems = check_config(str(EXAMPLES / "gateway.yaml"), env={})
    assert [p.path for p in problems] == ["server.master_key"]


def test_multicloud_example_round_trip():
    config = load_config(EXAMPLES / "multicloud.yaml", env=MULTICLOUD_ENV)
    [group] = config.model_groups.values()
    assert [d.kind for d in group.deployments] == ["azure", "bedrock", "anthropic", "gemini"]
    assert group.strategy == "least_outstanding"


def test_file_problems(tmp_path):
    assert "no such file" in str(check_config(str(tmp_path / "missing.yaml"))[0])
    assert "is a directory" in str(check_config(tmp_path)[0])
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"server:\n  host: \xff\xfe\n")
    assert "not UTF-8" in str(check_config(binary)[0])
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yaml")
    assert str(tmp_path / "missing.yaml") in str(caught.value)


def test_check_config_accepts_text_and_paths(tmp_path):
    text = (EXAMPLES / "gateway.yaml").read_text()
    assert check_config(text, env={"SKYRELAY_MASTER_KEY": "k"}) == []
    copy_path = tmp_path / "g.yml"
    copy_path.write_text(text)
    assert check_config(str(copy_path), env={"SKYRELAY_MASTER_KEY": "k"}) == []


def test_mangled_files_only_ever_give_problems():
    """Random damage to a real file must yield problems, never an exception or an internal error."""
    text = (EXAMPLES / "multicloud.yaml").read_text()
    rng = random.Random(7)
    for _ in range(300):
        chars = list(text)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(chars))
            action = rng.random()
            if action < 0.4:
                del chars[at]
            elif action < 0.7:
                chars.insert(at, rng.choice(" :-[]{}#\n\t'\"$&*!|>0"))
            else:
                chars[at] = rng.choice("xyz 1-:")
        problems = check_config("".join(chars), env=MULTICLOUD_ENV)
        assert all(isinstance(p, Problem) and "internal error" not in p.message for p in problems)
        assert all(value not in str(p) for p in problems for value in MULTICLOUD_ENV.values())


def test_odd_structures_only_ever_give_problems():
    shapes = [None, 0, "", [], {}, [None], {"x": None}, {1: 2}, [[]], True]
    for path in ["server", "model_groups", "model_groups.chat", "model_groups.chat.deployments",
                 f"{D0}", f"{D0}.timeouts", f"{D0}.price", f"{D0}.headers", f"{D0}.tags", f"{D0}.kind",
                 "model_groups.chat.fallbacks", f"{D0}.base_url", f"{D0}.region"]:
        for shape in shapes:
            try:
                parse_config(edit(base(), path, shape), env={})
            except ConfigError as error:
                assert all("internal error" not in p.message for p in error.problems), (path, shape, error)


def test_tiers_group_the_deployments_by_ascending_tier_in_file_order():
    data = edit(base(), f"{D1}.tier", 1)
    data = edit(data, f"{D0}.max_concurrency", 8)
    data = edit(data, "model_groups.chat.queue_timeout_ms", 1500)
    group = parse_config(data, env={}).model_groups["chat"]
    assert [[d.name for d in tier] for tier in group.tiers] == [["a"], ["b"]]
    assert group.queue_timeout_ms == 1500 and group.deployments[0].max_concurrency == 8


def test_responses_mode_is_native_or_translate_on_openai_and_azure_only():
    from skyrelay.config import ConfigError

    def config(**extra):
        return parse_config({"model_groups": {"g": {"deployments": [
            {"name": "d", "kind": "openai", "base_url": "http://h:1/v1", "model": "m", **extra}]}}}, env={})
    assert config(responses="translate").model_groups["g"].deployments[0].options["responses"] == "translate"
    with pytest.raises(ConfigError, match="expected one of native, translate"):
        config(responses="sometimes")

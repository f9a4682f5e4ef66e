"""URLs and values that may hold a password: a configuration mistake is reported without quoting any of it.

A password with an unescaped '/', '?', '#', '@' or '%' made the drivers split the URL elsewhere, and their errors
(a startup traceback, the ledger's log) then quoted part of it as a port, a host or an escape; a string written
where a section belongs, or a base URL both malformed and carrying credentials, was quoted in the problem itself
(also in the 400 of POST /admin/reload)."""

from __future__ import annotations

import pytest

from skyrelay.config import parse_config

from tests.unit.test_config import assert_problem, base, problems_of

SECRET = "hunter2"


def with_(**sections) -> dict:
    data = base()
    data.update(sections)
    return data


@pytest.mark.parametrize("sections, path", [
    ({"state": {"backend": "redis", "url": f"redis://:{SECRET}/x@127.0.0.1:6379/0"}}, "state.url"),
    ({"state": {"backend": "redis", "url": f"redis://:{SECRET}?x@127.0.0.1:6379/0"}}, "state.url"),
    ({"state": {"backend": "redis", "url": f"redis://:/{SECRET}@127.0.0.1:6379/0"}}, "state.url"),
    ({"database": {"url": f"postgresql://u:{SECRET}%zz@127.0.0.1/db"}}, "database.url"),
    ({"database": {"url": f"postgresql://u:{SECRET}@x@127.0.0.1/db"}}, "database.url"),
    ({"database": {"url": f"postgresql://u:{SECRET}/x@127.0.0.1/db"}}, "database.url"),
    ({"database": f"postgresql://u:{SECRET}@127.0.0.1/db"}, "database"),
    ({"state": f"redis://:{SECRET}@127.0.0.1"}, "state"),
])
def test_a_url_with_a_password_the_drivers_would_misread_is_refused_without_quoting_it(sections, path):
    problems = problems_of(with_(**sections))
    assert_problem(problems, path, "")
    assert all(SECRET not in str(problem) for problem in problems), problems


def test_a_base_url_with_credentials_is_refused_as_such_even_when_malformed_too():
    data = base()
    data["model_groups"]["chat"]["deployments"][0]["base_url"] = f"https://u:{SECRET}/x@127.0.0.1/v1"
    problems = problems_of(data)
    assert_problem(problems, "model_groups.chat.deployments[0].base_url", "must not contain credentials")
    assert all(SECRET not in str(problem) for problem in problems)


@pytest.mark.parametrize("url", ["postgresql://u:p%40ss%2Fw@127.0.0.1:5432/db?options=-csearch_path%3Dledger",
                                 "postgresql://postgres@127.0.0.1/test", "postgresql://127.0.0.1/test"])
def test_percent_encoded_passwords_and_plain_urls_are_accepted(url):
    assert parse_config(with_(database={"url": url})).database.url == url


def test_the_state_sections_repr_hides_its_url():
    config = parse_config(with_(state={"backend": "redis", "url": f"redis://:{SECRET}@127.0.0.1:6379/0"}))
    assert config.state.url.endswith("6379/0") and SECRET not in repr(config.state) and SECRET not in repr(config)

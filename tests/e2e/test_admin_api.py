"""The admin API (/admin/keys, /admin/teams) and the `skyrelay keys|teams` CLI, on the embedded SQLite and on
PostgreSQL: keys made through it work with every protocol's SDK, are stored only as a keyed hash, survive a
restart, and carry their limits and rate-limit headers; bad input gets a 400 naming the field."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import anthropic
import httpx2 as httpx
import openai
import pytest

from skyrelay.config import ConfigError, parse_config
from skyrelay.server import Gateway

from .harness import GATEWAY_KEY, HELLO
from .test_cli import run_cli
from tests.support.postgres_service import fresh_database, needs_postgres
from tests.support.redis_service import REDIS_URL, delete_prefix, fresh_prefix, needs_redis

TEAMS = {"research": {"models": ["chat"], "rpm": 50}}
KEYS = [{"name": "ci-bot", "key": "sk-declared-ci-bot", "team": "research"},
        {"name": "ops", "key": "sk-declared-ops-admin", "role": "admin"}]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/skyrelay.db"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
def admin_stack(make_stack, database_url):
    return make_stack(sections={"database": {"url": database_url}, "teams": TEAMS, "keys": KEYS})


@pytest.fixture
def sqlite_stack(make_stack, tmp_path):
    """For what does not depend on the database (validation, the CLI's parsing): the embedded default only."""
    return make_stack(sections={"database": {"url": f"sqlite:///{tmp_path}/skyrelay.db"}, "teams": TEAMS,
                                "keys": KEYS})


def admin(stack, key: str = GATEWAY_KEY) -> httpx.Client:
    return httpx.Client(base_url=stack.origin, headers={"authorization": f"Bearer {key}"}, timeout=20)


def create_key(stack, **body) -> dict:
    with admin(stack) as client:
        resp = client.post("/admin/keys", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_key_made_through_the_admin_api_works_with_every_protocol_and_is_shown_once(admin_stack):
    made = create_key(admin_stack, name="app-1", models=["chat"], metadata={"owner": "web"})
    secret = made["key"]
    assert made["id"].startswith("key_") and made["source"] == "api" and made["models"] == ["chat"]
    reply = admin_stack.openai(api_key=secret).chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
    assert reply.choices[0].message.content
    claude = anthropic.Anthropic(base_url=admin_stack.origin, api_key=secret, max_retries=0, timeout=20)
    assert claude.messages.create(model="chat", max_tokens=5, messages=HELLO).content
    azure_style = httpx.get(f"{admin_stack.origin}/v1/models", headers={"api-key": secret}, timeout=20)
    assert [m["id"] for m in azure_style.json()["data"]] == ["chat"]
    with pytest.raises(openai.PermissionDeniedError):  # its models apply as a declared key's do
        admin_stack.openai(api_key=secret).embeddings.create(model="embed", input="hi")
    with admin(admin_stack) as client:
        listed = client.get("/admin/keys").json()["data"]
        shown = client.get(f"/admin/keys/{made['id']}").json()
    assert {k["name"] for k in listed} == {"ci-bot", "ops", "app-1"}
    assert all("key" not in k for k in listed) and "key" not in shown and shown["metadata"] == {"owner": "web"}
    teams, keys = admin_stack.bg.run(admin_stack.gateway.governor.registry.store.call("load"))
    stored = json.dumps(keys)
    assert secret not in stored and hashlib.sha256(secret.encode()).hexdigest() not in stored  # a keyed hash only


BAD_KEYS = [
    ({"name": "x", "colour": "red"}, "colour", "unknown field"),
    ({"name": "x", "rpm": "10"}, "rpm", "expected an integer"),
    ({"name": "x", "rpm": 1.5}, "rpm", "expected an integer"),
    ({"name": "x", "budget": {"usd": -1, "period": "day"}}, "budget.usd", "must be between 0 and"),
    ({"name": "x", "budget": {"usd": 5, "period": "fortnight"}}, "budget.period", "unknown period"),
    ({"name": "x", "models": ["nope"]}, "models[0]", "unknown model group"),
    ({"name": "x", "team": "nope"}, "team", "unknown team"),
    ({"name": "x", "expires_at": "soon"}, "expires_at", "ISO 8601"),
    ({"name": "x", "budget": {"usd": 1e308, "period": "day"}}, "budget.usd", "must be between 0 and"),
    ({"name": "x", "expires_at": "0999-06-01T00:00:00Z"}, "expires_at", "between 1970"),
    ({"name": "x", "role": "root"}, "role", "unknown role"),
    ({"name": "ci-bot"}, "name", "already exists"),
    ({"name": "has space"}, "name", "not a usable name"),
    ({"rpm": 3}, "name", "required"),
    ([1, 2], None, "must be a JSON object"),
]


def test_bad_input_to_create_a_key_is_a_400_naming_the_field(sqlite_stack):
    with admin(sqlite_stack) as client:
        for body, param, words in BAD_KEYS:
            resp = client.post("/admin/keys", json=body)
            error = resp.json()["error"]
            assert resp.status_code == 400 and error["type"] == "invalid_request_error", resp.text
            assert error["param"] == param and words in error["message"], error
        assert [k["name"] for k in client.get("/admin/keys").json()["data"]] == ["ci-bot", "ops"]


def test_bad_input_to_change_a_key_or_a_team_is_a_400_and_nothing_changes(sqlite_stack):
    made = create_key(sqlite_stack, name="app-2", rpm=5)
    with admin(sqlite_stack) as client:
        for body, param in (({"name": "other"}, "name"), ({"tpm": -3}, "tpm"), ({"key": "sk-mine"}, "key"),
                            ({"max_parallel": True}, "max_parallel")):
            resp = client.patch(f"/admin/keys/{made['id']}", json=body)
            assert resp.status_code == 400 and resp.json()["error"]["param"] == param, resp.text
        assert client.get(f"/admin/keys/{made['id']}").json()["rpm"] == 5
        assert client.post("/admin/teams", json={"name": "research"}).json()["error"]["code"] == "duplicate_name"
        assert client.post("/admin/teams", json={"name": "t", "role": "admin"}).json()["error"]["param"] == "role"
        not_json = client.post("/admin/keys", content=b"name=x", headers={"content-type": "text/plain"})
        assert not_json.status_code == 415
        broken = client.post("/admin/keys", content=b"{", headers={"content-type": "application/json"})
        assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
        assert client.get("/admin/keys/key_nothere").status_code == 404


def test_declared_keys_are_read_only_and_only_admins_may_call(sqlite_stack):
    admin_stack = sqlite_stack
    with admin(admin_stack) as client:
        for method in ("PATCH", "DELETE"):
            resp = client.request(method, "/admin/keys/config:ci-bot", json={"rpm": 1} if method == "PATCH" else None)
            assert resp.status_code == 409 and resp.json()["error"]["code"] == "read_only"
            assert "configuration file" in resp.json()["error"]["message"]
        assert client.patch("/admin/teams/research", json={"rpm": 1}).status_code == 409
    with admin(admin_stack, "sk-declared-ci-bot") as user:
        refused = user.get("/admin/keys")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    with admin(admin_stack, "sk-nobody") as stranger:
        assert stranger.get("/admin/keys").status_code == 401
    assert httpx.get(f"{admin_stack.origin}/admin/keys", timeout=20).status_code == 401
    with admin(admin_stack, "sk-declared-ops-admin") as ops:  # role: admin
        assert ops.post("/admin/keys", json={"name": "by-ops"}).status_code == 201


def test_keys_and_teams_survive_a_restart_and_revoked_ones_stay_refused(make_stack, database_url):
    sections = {"database": {"url": database_url}}
    first = make_stack(sections=sections)
    with admin(first) as client:
        assert client.post("/admin/teams", json={"name": "web", "rpm": 100}).status_code == 201
    kept = create_key(first, name="kept", team="web")
    gone = create_key(first, name="gone")
    with admin(first) as client:
        assert client.delete(f"/admin/keys/{gone['id']}").json()["revoked_at"]
    first.close()
    again = make_stack(sections=sections)
    assert again.openai(api_key=kept["key"]).models.list().data
    with pytest.raises(openai.AuthenticationError) as refused:
        again.openai(api_key=gone["key"]).models.list()
    assert "revoked" in refused.value.message
    with admin(again) as client:
        shown = client.get("/admin/keys/kept").json()
        assert shown["team"] == "web" and shown["revoked_at"] is None
        still_used = client.delete("/admin/teams/web")
        assert still_used.status_code == 409 and still_used.json()["error"]["code"] == "team_in_use"


def test_a_declared_key_named_as_a_stored_one_is_refused_at_start_and_never_shares_its_counters(make_stack, bg,
                                                                                               tmp_path):
    sections = {"database": {"url": f"sqlite:///{tmp_path}/skyrelay.db"}}
    plain = make_stack(sections=sections)  # declares no key: it may make one named "twin"
    create_key(plain, name="twin", rpm=5)
    declared = {**sections, "keys": [{"name": "twin", "key": "sk-declared-twin"}]}

    async def start():
        gateway = Gateway(parse_config({"server": {"host": "127.0.0.1", "port": 0, "master_key": GATEWAY_KEY},
                                        "model_groups": {"chat": {"deployments": [
                                            {"name": "d", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                                             "model": "m"}]}}, **declared}, env={}))
        await gateway.start()
        await gateway.close()

    with pytest.raises(ConfigError) as refused:  # a new file naming a stored key: the gateway does not serve
        bg.run(start())
    assert "twin" in str(refused.value) and "rename the declared key" in str(refused.value)
    # Made after a replica with the declared key started (by one that does not declare it): not accepted there.
    plain.close()
    first = make_stack(sections={**sections, "database": {"url": f"sqlite:///{tmp_path}/other.db"}})
    with_declared = make_stack(sections={**declared, "database": {"url": f"sqlite:///{tmp_path}/other.db"}})
    made = create_key(first, name="twin")
    assert _within(1.5, lambda: with_declared.gateway.governor.registry.clashes == ["twin"])
    assert _works(with_declared, "sk-declared-twin")
    assert not _works(with_declared, made["key"]) and _works(first, made["key"])


def test_an_api_keys_limits_apply_and_every_answer_carries_rate_limit_headers(admin_stack):
    made = create_key(admin_stack, name="slow", rpm=2, team="research")
    client = admin_stack.openai(api_key=made["key"])
    remaining = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO, max_tokens=5)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"  # the key's 2 is tighter than the team's 50
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="chat", messages=HELLO, max_tokens=5)
    headers = refused.value.response.headers
    assert headers["x-ratelimit-remaining-requests"] == "0" and int(headers["retry-after"]) >= 1
    claude = anthropic.Anthropic(base_url=admin_stack.origin, api_key=made["key"], max_retries=0, timeout=20)
    with pytest.raises(anthropic.RateLimitError) as refused:
        claude.messages.create(model="chat", max_tokens=5, messages=HELLO)
    headers = refused.value.response.headers
    assert headers["anthropic-ratelimit-requests-limit"] == "2"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    with admin(admin_stack) as admin_client:  # raised through the API: the next minute's requests see it
        assert admin_client.patch(f"/admin/keys/{made['id']}", json={"rpm": 10}).json()["rpm"] == 10
    assert client.chat.completions.create(model="chat", messages=HELLO, max_tokens=5).choices


def test_a_team_made_through_the_api_limits_its_keys_together(sqlite_stack):
    admin_stack = sqlite_stack
    with admin(admin_stack) as client:
        assert client.post("/admin/teams", json={"name": "pair", "rpm": 3}).status_code == 201
    keys = [create_key(admin_stack, name=f"pair-{n}", team="pair")["key"] for n in range(2)]
    answers = []
    for n in range(5):
        try:
            admin_stack.openai(api_key=keys[n % 2]).chat.completions.create(model="chat", messages=HELLO,
                                                                            max_tokens=5)
            answers.append("ok")
        except openai.RateLimitError as exc:
            assert "team 'pair'" in exc.message
            answers.append("429")
    assert answers == ["ok"] * 3 + ["429"] * 2


# --- many replicas: one PostgreSQL, one Redis ------------------------------------------------------------------


@needs_postgres
@needs_redis
def test_keys_made_changed_and_revoked_through_one_replica_apply_on_the_others_within_a_second(make_stack, bg):
    prefix = fresh_prefix()
    with fresh_database() as url:
        sections = {"database": {"url": url}, "state": {"backend": "redis", "url": REDIS_URL, "prefix": prefix}}
        replicas = [make_stack(sections=sections) for _ in range(3)]
        try:
            made = create_key(replicas[0], name="roaming")
            for other in replicas[1:]:
                assert _within(1.5, lambda: _works(other, made["key"])), "a new key was not seen by a replica"
            with admin(replicas[1]) as client:
                assert client.delete(f"/admin/keys/{made['id']}").status_code == 200
            for other in (replicas[0], replicas[2]):
                assert _within(1.5, lambda: not _works(other, made["key"])), "a revoked key still worked"
        finally:
            for stack in replicas:
                stack.close()
            bg.run(delete_prefix(prefix))


def test_a_stored_row_that_cannot_be_read_is_left_out_and_stops_nothing_else(sqlite_stack):
    """A row no version of the admin API would write now (a budget of 1e308 made an OverflowError when its
    counters were built) once made every later rebuild fail: admin writes answered 500 and revocations went
    unseen. Now the row alone is left out (its key refused), and everything else goes on."""
    good, bad = create_key(sqlite_stack, name="good"), create_key(sqlite_stack, name="bad")
    store = sqlite_stack.gateway.governor.registry.store
    sqlite_stack.bg.run(store.call("update_key", bad["id"], {"budget": {"usd": 1e308, "period": "day"}}, time.time()))
    assert _within(3, lambda: not _works(sqlite_stack, bad["key"])), "the unreadable key was still accepted"
    assert _works(sqlite_stack, good["key"])
    third = create_key(sqlite_stack, name="third")
    assert _within(3, lambda: _works(sqlite_stack, third["key"]))
    with admin(sqlite_stack) as client:
        assert client.delete(f"/admin/keys/{good['id']}").status_code == 200
    assert _within(3, lambda: not _works(sqlite_stack, good["key"])), "a revocation went unseen"
    assert sqlite_stack.gateway.governor.registry.unreadable == {"key 'bad'": "OverflowError"}


def _works(stack, key: str) -> bool:
    try:
        stack.openai(api_key=key).models.list()
        return True
    except openai.AuthenticationError:
        return False


def _within(seconds: float, check) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


# --- the CLI ---------------------------------------------------------------------------------------------------


def in_process_cli(stack, capsys, monkeypatch):
    """`skyrelay ...` run in this process (a new interpreter per call costs a second): the same argument parsing,
    the same HTTP calls to the running gateway, the same exit codes."""
    from skyrelay.cli import main

    monkeypatch.setenv("SKYRELAY_MASTER_KEY", GATEWAY_KEY)
    monkeypatch.setenv("SKYRELAY_URL", stack.origin)

    def cli(*args):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's refusals
            code = exc.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)
    return cli


def test_the_cli_creates_lists_changes_and_revokes_keys_and_teams(sqlite_stack, capsys, monkeypatch):
    admin_stack = sqlite_stack
    cli = in_process_cli(admin_stack, capsys, monkeypatch)

    made = cli("teams", "create", "cli-team", "--rpm", "20", "--budget", "5/week")
    assert made.returncode == 0 and "cli-team" in made.stdout and "$5/week" in made.stdout, made.stderr
    made = cli("keys", "create", "cli-bot", "--team", "cli-team", "--rpm", "7", "--models", "chat")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.split("key: ")[1].split()[0]
    assert admin_stack.openai(api_key=secret).models.list().data
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert {"ci-bot", "cli-bot"} <= {k["name"] for k in listed} and all("key" not in k for k in listed)
    assert "NAME" in cli("keys", "list").stdout and "cli-bot" in cli("keys", "show", "cli-bot").stdout
    changed = json.loads(cli("keys", "update", "cli-bot", "--clear", "rpm", "--tpm", "1000", "--json").stdout)
    assert changed["rpm"] is None and changed["tpm"] == 1000
    revoked = cli("keys", "revoke", "cli-bot")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert not _within(0, lambda: _works(admin_stack, secret))


BAD_CLI = [
    (["keys", "create", "dup", "--budget=-1/day"], "budget.usd: must be between 0 and"),
    (["keys", "create", "ci-bot"], "already exists"),
    (["keys", "create", "x", "--budget", "lots"], "expected USD/PERIOD"),
    (["keys", "create", "x", "--rpm", "many"], "invalid int value"),
    (["keys", "update", "config:ci-bot", "--rpm", "3"], "read-only"),
    (["keys", "update", "nobody", "--rpm", "3"], "no key with id or name"),
    (["keys", "update", "ci-bot"], "nothing to change"),
    (["teams", "create", "t", "--clear", "rpm"], "--clear is for update"),
]


def test_the_cli_explains_bad_input_and_exits_2(sqlite_stack, capsys, monkeypatch):
    cli = in_process_cli(sqlite_stack, capsys, monkeypatch)
    for args, words in BAD_CLI:
        done = cli(*args)
        assert done.returncode == 2 and words in done.stderr, (args, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr


def test_the_cli_without_a_key_or_a_gateway_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SKYRELAY_MASTER_KEY"}
    done = run_cli("keys", "list", env=env)
    assert done.returncode == 2 and "SKYRELAY_MASTER_KEY" in done.stderr
    done = run_cli("keys", "list", "--url", "http://127.0.0.1:9", env={**env, "SKYRELAY_MASTER_KEY": "sk-x"})
    assert done.returncode == 1 and "cannot reach the gateway" in done.stderr

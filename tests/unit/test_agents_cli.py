"""`skyrelay agents codex-home`: the config.toml it writes for Codex CLI, and what it refuses."""

from __future__ import annotations

import tomllib

import pytest

from skyrelay.agents_cli import codex_config
from skyrelay.cli import main


def test_the_config_is_a_provider_of_its_own_reading_the_key_from_the_environment():
    config = tomllib.loads(codex_config("http://127.0.0.1:4000/v1", model="chat"))
    assert config["model_provider"] == "skyrelay" and config["model"] == "chat"
    assert config["model_providers"]["skyrelay"] == {
        "name": "skyrelay", "base_url": "http://127.0.0.1:4000/v1", "env_key": "SKYRELAY_API_KEY",
        "wire_api": "responses"}
    assert "web_search" not in config


def test_web_search_off_and_odd_model_names_stay_valid_toml():
    config = tomllib.loads(codex_config("https://gw.example/v1", model='a "quoted" \\ ñame', web_search=False))
    assert config["model"] == 'a "quoted" \\ ñame' and config["web_search"] == "disabled"


def test_it_writes_the_home_and_prints_the_two_variables(tmp_path, capsys):
    home = tmp_path / "codex"
    assert main(["agents", "codex-home", "--dir", str(home), "--url", "http://127.0.0.1:4100/v1"]) == 0
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["model_providers"]["skyrelay"]["base_url"] == "http://127.0.0.1:4100/v1"
    out = capsys.readouterr().out
    assert f"export CODEX_HOME={home}" in out and "export SKYRELAY_API_KEY=" in out


def test_an_existing_config_is_kept_unless_forced(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text('[projects."/src"]\ntrust_level = "trusted"\n')
    assert main(["agents", "codex-home", "--dir", str(tmp_path)]) == 1
    assert "--force" in capsys.readouterr().err and "trusted" in config.read_text()
    assert main(["agents", "codex-home", "--dir", str(tmp_path), "--force"]) == 0
    assert "trusted" not in config.read_text()


@pytest.mark.parametrize("url", ["127.0.0.1:4000/v1", "ftp://host/v1", "http://host:99999/v1", "http://h/\n"])
def test_a_bad_url_is_one_line_naming_it(tmp_path, capsys, url):
    assert main(["agents", "codex-home", "--dir", str(tmp_path), "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("skyrelay: --url") and err.count("\n") == 1
    assert not (tmp_path / "config.toml").exists()

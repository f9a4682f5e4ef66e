"""What other parts of the gateway (the ledger) publish through the telemetry: metric families read at scrape time
and sections of /admin/stats; and /admin/stats without metrics."""

from __future__ import annotations

from skyrelay.config import parse_config
from skyrelay.dispatch import Dispatcher
from skyrelay.telemetry import Telemetry

CONFIG = {"model_groups": {"chat": {"deployments": [
    {"name": "a", "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9"}]}}}


def telemetry(**sections) -> Telemetry:
    config = parse_config({**CONFIG, **sections}, env={})
    return Telemetry(config, Dispatcher.from_config(config))


def test_a_registered_gauge_family_is_rendered_at_each_scrape():
    t = telemetry()
    backlog = {"records": 3}
    t.gauge_sources.append(lambda: [("skyrelay_ledger_spool_records", "Records written ahead, not yet shipped.",
                                     "gauge", (), {(): backlog["records"]})])
    assert "skyrelay_ledger_spool_records 3" in t.exposition().decode()
    backlog["records"] = 0
    text = t.exposition().decode()
    assert "# TYPE skyrelay_ledger_spool_records gauge" in text and "skyrelay_ledger_spool_records 0" in text


def test_a_registered_section_replaces_the_stand_in_and_others_are_added():
    t = telemetry()
    assert t.stats()["commitments"]["source"] == "config"
    t.stats_sources["commitments"] = lambda: {"source": "ledger", "commitments": []}
    t.stats_sources["ledger"] = lambda: {"spool_records": 0}
    body = t.stats()
    assert body["commitments"]["source"] == "ledger" and body["ledger"] == {"spool_records": 0}


def test_stats_without_metrics_still_show_the_routing_state():
    t = telemetry(metrics={"enabled": False})
    body = t.stats()
    assert body["deployments"][0]["health"]["breaker"] == "closed"
    assert body["series"]["deployments"]["a"]["ok"] == [0] and body["spend"]["teams"] == []

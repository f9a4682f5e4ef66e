"""Merging the workers' expositions: counters and histograms add up, gauges stay per worker, families and series
only one worker has are kept whole, and promtool accepts the result."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from skyrelay.telemetry.merge import merge

FIRST = b"""# HELP skyrelay_requests_total Requests.
# TYPE skyrelay_requests_total counter
skyrelay_requests_total{model_group="chat",code_class="2xx"} 3
# HELP skyrelay_cost_usd_total Billed.
# TYPE skyrelay_cost_usd_total counter
skyrelay_cost_usd_total{model_group="chat",deployment="east west"} 0.25
# HELP skyrelay_request_duration_seconds Durations.
# TYPE skyrelay_request_duration_seconds histogram
skyrelay_request_duration_seconds_bucket{model_group="chat",le="0.1"} 1
skyrelay_request_duration_seconds_bucket{model_group="chat",le="+Inf"} 3
skyrelay_request_duration_seconds_sum{model_group="chat"} 0.5
skyrelay_request_duration_seconds_count{model_group="chat"} 3
# HELP skyrelay_deployment_in_flight In flight.
# TYPE skyrelay_deployment_in_flight gauge
skyrelay_deployment_in_flight{deployment="east west"} 2
# HELP skyrelay_ledger_spool_bytes Spool.
# TYPE skyrelay_ledger_spool_bytes gauge
skyrelay_ledger_spool_bytes 100
"""
SECOND = b"""# HELP skyrelay_requests_total Requests.
# TYPE skyrelay_requests_total counter
skyrelay_requests_total{model_group="chat",code_class="2xx"} 4
skyrelay_requests_total{model_group="chat",code_class="5xx"} 1
# HELP skyrelay_cost_usd_total Billed.
# TYPE skyrelay_cost_usd_total counter
skyrelay_cost_usd_total{model_group="chat",deployment="east west"} 0.5
# HELP skyrelay_request_duration_seconds Durations.
# TYPE skyrelay_request_duration_seconds histogram
skyrelay_request_duration_seconds_bucket{model_group="chat",le="0.1"} 0
skyrelay_request_duration_seconds_bucket{model_group="chat",le="+Inf"} 5
skyrelay_request_duration_seconds_sum{model_group="chat"} 2.25
skyrelay_request_duration_seconds_count{model_group="chat"} 5
# HELP skyrelay_deployment_in_flight In flight.
# TYPE skyrelay_deployment_in_flight gauge
skyrelay_deployment_in_flight{deployment="east west"} 0
# HELP skyrelay_ledger_spool_bytes Spool.
# TYPE skyrelay_ledger_spool_bytes gauge
skyrelay_ledger_spool_bytes 40
# HELP skyrelay_time_to_first_token_seconds TTFT.
# TYPE skyrelay_time_to_first_token_seconds histogram
skyrelay_time_to_first_token_seconds_bucket{model_group="chat",le="+Inf"} 1
skyrelay_time_to_first_token_seconds_sum{model_group="chat"} 0.1
skyrelay_time_to_first_token_seconds_count{model_group="chat"} 1
"""


def test_counters_and_histograms_add_up_and_gauges_keep_their_worker():
    text = merge([("0", FIRST), ("1", SECOND)]).decode()
    got = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines()
           if line and not line.startswith("#")}
    assert got['skyrelay_requests_total{model_group="chat",code_class="2xx"}'] == "7"
    assert got['skyrelay_requests_total{model_group="chat",code_class="5xx"}'] == "1"
    assert got['skyrelay_cost_usd_total{model_group="chat",deployment="east west"}'] == "0.75"
    assert got['skyrelay_request_duration_seconds_bucket{model_group="chat",le="+Inf"}'] == "8"
    assert got['skyrelay_request_duration_seconds_sum{model_group="chat"}'] == "2.75"
    assert got['skyrelay_deployment_in_flight{deployment="east west",worker="0"}'] == "2"
    assert got['skyrelay_deployment_in_flight{deployment="east west",worker="1"}'] == "0"
    assert got['skyrelay_ledger_spool_bytes{worker="1"}'] == "40"
    assert got['skyrelay_time_to_first_token_seconds_count{model_group="chat"}'] == "1"
    assert text.count("# TYPE skyrelay_requests_total counter") == 1


def test_promtool_accepts_the_merged_text():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install --no-install-recommends prometheus)")
    body = merge([("0", FIRST), ("1", SECOND)])
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()

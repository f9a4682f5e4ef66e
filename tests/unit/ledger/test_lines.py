"""What the request path writes and the reader makes of it: a one-attempt request's short "k" line joined with its
attempt's "o" line gives both records in full (latencies derived off the path); a "k" line without its "o" line
(already committed, in an adopted spool) is skipped; a refusal's "x" line is a refused record with no cost."""

from __future__ import annotations

import time

from skyrelay.canonical import Usage
from skyrelay.config import parse_config
from skyrelay.context import Attempt, RequestContext
from skyrelay.ledger.lines import read_lines
from skyrelay.ledger.record import Recorder, header
from skyrelay.ledger.schema import COLUMN_NAMES

PRICE = {"input_per_mtok": 2.5, "output_per_mtok": 10.0, "discount": 0.2}


def recorder():
    config = parse_config({"model_groups": {"chat": {"deployments": [
        {"name": "d", "kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9", "region": "eu-west-1",
         "tier": 2, "price": PRICE}]}}}, env={})
    written: list[bytes] = [header("test")]
    deployment = config.deployments()[0]
    rec = Recorder(written.append, {"d": deployment}, (), time.monotonic)
    rec.offset = 1000.0
    return rec, written, deployment


def one_attempt_request(rec, deployment, *, status="ok", error=None, first_output=None):
    ctx = RequestContext("req_1", 1.0)
    ctx.group, ctx.key_name, ctx.team, ctx.streamed = "chat", "k", "t", first_output is not None
    attempt = Attempt(deployment, 1.25, 300)
    ctx.attempts.append(attempt)
    rec.attempt_opened(ctx, attempt, deployment.tier)
    attempt.finish(2.0, status, error)
    if status == "ok":
        attempt.usage = ctx.usage = Usage(100, 20)
    ctx.first_output = first_output
    ctx.error = error
    rec.request_closed(ctx, 200 if error is None else error.status)
    return ctx


def rows_of(written) -> dict[int, dict]:
    rows, _ = read_lines(b"".join(written), {})
    return {row[1]: dict(zip(COLUMN_NAMES, row)) for row in rows}


def test_a_served_request_is_two_full_records_from_its_o_and_k_lines():
    rec, written, deployment = recorder()
    ctx = one_attempt_request(rec, deployment, first_output=1.5)
    assert len(written) == 3  # the header, the "o" line, the "k" line
    rows = rows_of(written)
    request, attempt = rows[0], rows[1]
    assert (request["started_at"], attempt["started_at"], attempt["ended_at"]) == (1001.0, 1001.25, 1002.0)
    for row in (request, attempt):
        assert (row["key_name"], row["team"], row["model_group"], row["vendor"], row["deployment"], row["region"],
                row["tier"], row["status"], row["streamed"]) == ("k", "t", "chat", "openai", "d", "eu-west-1", 2,
                                                                 "ok", 1)
        assert (row["input_tokens"], row["output_tokens"], row["estimated"]) == (100, 20, 0)
        assert row["billed_cost_usd"] == ctx.cost_usd == (100 * 2.5 + 20 * 10.0) / 1e6 * 0.8
    assert (request["http_status"], attempt["http_status"]) == (200, None)
    assert attempt["latency_ms"] == 750.0 and attempt["ttft_ms"] == 250.0
    assert request["ttft_ms"] == 500.0 and request["latency_ms"] > 0


def test_a_request_whose_one_attempt_failed_has_no_cloud_and_no_cost():
    from skyrelay import errors

    rec, written, deployment = recorder()
    one_attempt_request(rec, deployment, status="failed", error=errors.UpstreamUnavailable("down"))
    rows = rows_of(written)
    assert (rows[1]["status"], rows[1]["error_kind"], rows[1]["deployment"]) == ("failed", "UpstreamUnavailable", "d")
    assert (rows[0]["status"], rows[0]["http_status"], rows[0]["deployment"]) == ("failed", 503, None)
    assert rows[0]["billed_cost_usd"] == rows[1]["billed_cost_usd"] == 0


def test_a_k_line_without_its_o_line_was_committed_already_and_is_skipped():
    rec, written, deployment = recorder()
    one_attempt_request(rec, deployment)
    assert read_lines(written[0] + written[2], {}) == ([], [])


def test_a_refusal_is_one_refused_record_without_cloud_or_cost():
    rec, written, _ = recorder()
    rec.refused("req_2", None, "AuthenticationFailed", 401)
    (row,), _ = read_lines(b"".join(written), {})
    row = dict(zip(COLUMN_NAMES, row))
    assert (row["request_id"], row["attempt"], row["status"], row["error_kind"], row["http_status"]) == (
        "req_2", 0, "refused", "AuthenticationFailed", 401)
    assert row["model_group"] is None and row["deployment"] is None and row["billed_cost_usd"] == 0
    assert len(written[1]) < 100

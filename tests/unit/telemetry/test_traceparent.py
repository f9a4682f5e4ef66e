"""The W3C traceparent the gateway accepts from clients and sends to each upstream call."""

import pytest

from skyrelay.telemetry.tracing import CURRENT, RequestTrace, parse_traceparent, upstream_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_valid_header_gives_its_ids_and_sampled_flag():
    assert parse_traceparent(f"00-{TRACE}-00f067aa0ba902b7-01") == (int(TRACE, 16), 0x00F067AA0BA902B7, True)
    assert parse_traceparent(f"00-{TRACE.upper()}-00f067aa0ba902b7-00")[2] is False


@pytest.mark.parametrize("value", [
    None, "", "garbage", f"01-{TRACE}-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01",
    f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE}-00f067aa0ba902b7-01-extra", f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",
])
def test_anything_else_is_ignored(value):
    assert parse_traceparent(value) is None


def test_each_upstream_call_gets_its_own_span_in_the_request_trace():
    assert upstream_traceparent("a") is None  # not traced
    trace = RequestTrace("req_1", int(TRACE, 16), None)
    token = CURRENT.set(trace)
    try:
        first, second = upstream_traceparent("a"), upstream_traceparent("b")
    finally:
        CURRENT.reset(token)
    assert first.startswith(f"00-{TRACE}-") and first.endswith("-01") and first != second
    assert [(name, f"{span:016x}") for name, span in trace.calls] == [("a", first[36:52]), ("b", second[36:52])]

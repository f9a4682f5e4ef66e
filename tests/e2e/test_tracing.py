"""OpenTelemetry traces: received by a small OTLP/HTTP collector on 127.0.0.1, decoded with the exporter's protos."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("opentelemetry.sdk", reason="tracing is the optional extra skyrelay[otlp]")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from .harness import openai_deployment  # noqa: E402

HELLO = [{"role": "user", "content": "hello"}]
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Collector:
    """Keeps every span POSTed to /v1/traces (and the headers it came with)."""

    def __init__(self):
        self.spans, self.headers = [], []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                export = ExportTraceServiceRequest.FromString(body)
                collector.headers.append(dict(self.headers))
                for resource in export.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1/traces"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = value.string_value if value.HasField("string_value") else value.int_value
    return out


def failing_first(clouds):
    """cloud-a is always tried first (tier 0), cloud-b takes what it fails (tier 1)."""
    return {"chat": {"max_attempts": 2, "deployments": [
        openai_deployment("cloud-a", clouds["cloud-a"]), openai_deployment("cloud-b", clouds["cloud-b"], tier=1)]}}


def test_a_failover_is_a_server_span_with_two_client_children(collector, make_stack):
    s = make_stack(groups=failing_first, sections={"telemetry": {"otlp": {
        "endpoint": collector.endpoint, "headers": {"x-collector-token": "tok-123"}}}})
    s.set_faults("cloud-a", [{"status": 503, "rate": 1.0}])
    client = s.openai(default_headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    assert raw.headers["x-skyrelay-attempts"] == "2"
    s.gateway.telemetry.tracer.provider.force_flush(10_000)

    spans = {span.span_id.hex(): span for span in collector.spans}
    servers = [span for span in spans.values() if span.kind == span.SPAN_KIND_SERVER]
    assert len(servers) == 1
    server = servers[0]
    assert server.trace_id.hex() == CALLER_TRACE and server.parent_span_id.hex() == CALLER_SPAN
    assert attrs(server)["gen_ai.operation.name"] == "chat"
    assert attrs(server)["gen_ai.request.model"] == "chat"
    assert attrs(server)["http.response.status_code"] == 200
    assert attrs(server)["gen_ai.usage.output_tokens"] > 0
    children = sorted((span for span in spans.values() if span.parent_span_id == server.span_id),
                      key=lambda span: span.start_time_unix_nano)
    assert [attrs(c)["skyrelay.deployment"] for c in children] == ["cloud-a", "cloud-b"]
    assert all(c.kind == c.SPAN_KIND_CLIENT and c.trace_id.hex() == CALLER_TRACE for c in children)
    failed, served = (attrs(c) for c in children)
    assert failed["error.type"] == "UpstreamUnavailable" and failed["skyrelay.attempt.result"] == "failed"
    assert served["gen_ai.system"] == "openai" and served["gen_ai.request.model"] == "gpt-4o-mini"
    assert served["gen_ai.usage.input_tokens"] > 0 and served["gen_ai.usage.output_tokens"] > 0
    assert children[0].status.code == children[0].status.STATUS_CODE_ERROR
    assert collector.headers[0]["x-collector-token"] == "tok-123"

    # Each cloud was called with a traceparent naming its own attempt's span.
    for cloud, child in (("cloud-a", children[0]), ("cloud-b", children[1])):
        sent = s.clouds[cloud].recent_requests[-1]["headers"]["traceparent"]
        assert sent == f"00-{CALLER_TRACE}-{child.span_id.hex()}-01"


def test_sample_ratio_zero_sends_no_span_and_no_traceparent(collector, make_stack):
    s = make_stack(sections={"telemetry": {"otlp": {"endpoint": collector.endpoint, "sample_ratio": 0}}})
    s.openai().chat.completions.create(model="chat", messages=HELLO)
    s.gateway.telemetry.tracer.provider.force_flush(10_000)
    assert collector.spans == []
    assert all("traceparent" not in r["headers"] for c in s.clouds.values() for r in c.recent_requests)


def test_tracing_is_off_without_its_section(make_stack):
    s = make_stack()
    assert s.gateway.telemetry.tracer is None
    s.openai().chat.completions.create(model="chat", messages=HELLO)
    assert all("traceparent" not in r["headers"] for c in s.clouds.values() for r in c.recent_requests)

"""The `bedrock` emulator protocol, judged by the official SDK: boto3's bedrock-runtime client talks to it directly.

The clouds run on a background event loop so that boto3, which is synchronous, uses real sockets as users' code does.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.error
import urllib.request

import boto3
import jsonschema
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError, HTTPClientError, ReadTimeoutError
from urllib3.exceptions import ProtocolError

from skyrelay.emulator import CloudSpec, start_cloud
from skyrelay.emulator.protocols import bedrock_eventstream as es
from skyrelay.emulator.protocols.bedrock_sigv4 import AwsCredentials, verify
from skyrelay.emulator.protocols.bedrock_wire import BedrockError

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"  # a ':' travels as %3A
KEY_ID, SECRET, REGION = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1"
FAST = {"ttft_ms": 2.0, "tokens_per_second": 5000.0}
HI = [{"role": "user", "content": [{"text": "Hello there"}]}]
WEATHER = {"toolSpec": {"name": "get_weather", "description": "Current weather for a city",
                        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"},
                                                                                  "days": {"type": "integer"}},
                                                 "required": ["city"]}}}}
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
                       "AAAABJRU5ErkJggg==")  # a 1x1 pixel


@pytest.fixture
def make_cloud(bg):
    clouds = []

    def make(**kw):
        options = kw.pop("options", {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": REGION})
        spec = CloudSpec(**{"name": "bedrock-test", "protocol": "bedrock", "models": [MODEL], **FAST, **kw},
                         options=options)
        clouds.append(bg.run(start_cloud(spec)))
        return clouds[-1]

    yield make
    for cloud in clouds:
        bg.run(cloud.stop())


@pytest.fixture(scope="module")
def shared(bg):
    spec = CloudSpec(name="bedrock-shared", protocol="bedrock", models=[MODEL], **FAST,
                     options={"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "region": REGION})
    cloud = bg.run(start_cloud(spec))
    yield cloud
    bg.run(cloud.stop())


@pytest.fixture
def cloud(shared, bg):
    yield shared
    bg.call(shared.clear_faults)


def client(cloud, secret=SECRET, key_id=KEY_ID, **config):
    return boto3.client("bedrock-runtime", endpoint_url=cloud.base_url, region_name=REGION, aws_access_key_id=key_id,
                        aws_secret_access_key=secret,
                        config=Config(retries={"total_max_attempts": 1}, **config))


def faults(bg, cloud, *plan):
    bg.call(cloud.set_faults, list(plan))


def error_of(call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value


def post(cloud, body: bytes, headers: dict | None = None) -> tuple[int, dict, dict]:
    """A raw Converse call (no SDK): status, lower-case headers, JSON body."""
    req = urllib.request.Request(f"{cloud.base_url}/model/{MODEL.replace(':', '%3A')}/converse", data=body,
                                 headers={"content-type": "application/json", **(headers or {})}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, json.loads(err.read())


def events(stream_response) -> list[dict]:
    return list(stream_response["stream"])


def streamed_text(evs: list[dict]) -> str:
    return "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in evs if "contentBlockDelta" in e)


# --- success paths ----------------------------------------------------------------------------------------------------

def test_converse_answers_text_usage_and_metrics(cloud):
    reply = client(cloud).converse(modelId=MODEL, messages=HI, system=[{"text": "Be brief."}])
    message = reply["output"]["message"]
    assert message["role"] == "assistant" and message["content"][0]["text"].strip()
    assert reply["stopReason"] == "end_turn"
    usage = reply["usage"]
    assert usage["outputTokens"] == 24 and usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert reply["metrics"]["latencyMs"] >= 0
    assert reply["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_converse_stream_events_in_order_and_same_text(cloud):
    c = client(cloud)
    whole = c.converse(modelId=MODEL, messages=HI)
    evs = events(c.converse_stream(modelId=MODEL, messages=HI))
    kinds = [next(iter(e)) for e in evs]
    assert kinds[0] == "messageStart" and evs[0]["messageStart"] == {"role": "assistant"}
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert set(kinds[1:-3]) == {"contentBlockDelta"}
    assert streamed_text(evs) == whole["output"]["message"]["content"][0]["text"]
    assert evs[-2]["messageStop"]["stopReason"] == "end_turn"
    assert evs[-1]["metadata"]["usage"] == whole["usage"] and "latencyMs" in evs[-1]["metadata"]["metrics"]


def test_model_id_with_colon_and_arn_travel_encoded(cloud, bg):
    c = client(cloud)
    c.converse(modelId=MODEL, messages=HI)
    assert bg.call(lambda: cloud.recent_requests[-1]["path"]) == f"/model/{MODEL.replace(':', '%3A')}/converse"
    arn = f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL}"
    assert c.converse(modelId=arn, messages=HI)["stopReason"] == "end_turn"


def test_tool_use_then_tool_result(cloud):
    c = client(cloud)
    ask = [{"role": "user", "content": [{"text": "What is the weather in Paris?"}]}]
    reply = c.converse(modelId=MODEL, messages=ask, toolConfig={"tools": [WEATHER]})
    assert reply["stopReason"] == "tool_use"
    use = reply["output"]["message"]["content"][-1]["toolUse"]
    assert use["name"] == "get_weather" and use["toolUseId"].startswith("tooluse_")
    jsonschema.validate(use["input"], WEATHER["toolSpec"]["inputSchema"]["json"])

    evs = events(c.converse_stream(modelId=MODEL, messages=ask, toolConfig={"tools": [WEATHER]}))
    start = next(e["contentBlockStart"] for e in evs if "contentBlockStart" in e)
    assert start["start"]["toolUse"] == {"toolUseId": use["toolUseId"], "name": "get_weather"}
    fragments = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in evs if "contentBlockDelta" in e]
    assert json.loads("".join(fragments)) == use["input"]
    assert evs[-2]["messageStop"]["stopReason"] == "tool_use"

    follow = ask + [reply["output"]["message"], {"role": "user", "content": [
        {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"temp_c": 21}}], "status": "success"}}]}]
    answer = c.converse(modelId=MODEL, messages=follow, toolConfig={"tools": [WEATHER]})
    assert answer["stopReason"] == "end_turn" and answer["output"]["message"]["content"][0]["text"]


def test_tool_choice_any_and_named_tool(cloud):
    c = client(cloud)
    other = {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}
    tools = {"tools": [WEATHER, other]}
    forced = c.converse(modelId=MODEL, messages=HI, toolConfig={**tools, "toolChoice": {"tool": {"name": "lookup"}}})
    assert forced["output"]["message"]["content"][-1]["toolUse"]["name"] == "lookup"
    anyone = c.converse(modelId=MODEL, messages=HI, toolConfig={**tools, "toolChoice": {"any": {}}})
    assert anyone["stopReason"] == "tool_use"


def test_image_counts_in_input_tokens(cloud):
    c = client(cloud)
    plain = c.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Describe this"}]}])
    with_image = c.converse(modelId=MODEL, messages=[{"role": "user", "content": [
        {"text": "Describe this"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]}])
    assert with_image["usage"]["inputTokens"] > plain["usage"]["inputTokens"]
    assert with_image["stopReason"] == "end_turn"


def test_stop_sequence_and_max_tokens(cloud):
    c = client(cloud)
    text = c.converse(modelId=MODEL, messages=HI)["output"]["message"]["content"][0]["text"]
    stop = text.split()[4]
    cut = c.converse(modelId=MODEL, messages=HI, inferenceConfig={"stopSequences": [stop]})
    assert cut["stopReason"] == "stop_sequence"
    assert cut["output"]["message"]["content"][0]["text"] == text[: text.index(stop)]
    short = c.converse(modelId=MODEL, messages=HI, inferenceConfig={"maxTokens": 5, "temperature": 0.2})
    assert short["stopReason"] == "max_tokens" and short["usage"]["outputTokens"] == 5
    evs = events(c.converse_stream(modelId=MODEL, messages=HI, inferenceConfig={"maxTokens": 5}))
    assert evs[-2]["messageStop"]["stopReason"] == "max_tokens" and evs[-1]["metadata"]["usage"]["outputTokens"] == 5


# --- authentication ---------------------------------------------------------------------------------------------------

def test_wrong_secret_is_invalid_signature(cloud):
    error = error_of(client(cloud, secret="not-the-secret").converse, modelId=MODEL, messages=HI)
    assert error.response["Error"]["Code"] == "InvalidSignatureException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Message"].startswith("The request signature we calculated does not match")
    assert SECRET not in str(error.response)


def test_unknown_key_and_missing_auth(cloud):
    error = error_of(client(cloud, key_id="AKIDUNKNOWN").converse, modelId=MODEL, messages=HI)
    assert error.response["Error"] == {"Code": "UnrecognizedClientException",
                                       "Message": "The security token included in the request is invalid."}
    unsigned = client(cloud, signature_version=UNSIGNED)
    error = error_of(unsigned.converse, modelId=MODEL, messages=HI)
    assert error.response["Error"]["Code"] == "AccessDeniedException"
    assert error.response["Error"]["Message"] == "Authorization header is missing"


def test_region_scope_and_stale_signature():
    creds = AwsCredentials(KEY_ID, SECRET, None, REGION)

    def signed(region: str) -> AWSRequest:
        req = AWSRequest("POST", "http://127.0.0.1:9/model/m%3A0/converse", data=b"{}",
                         headers={"content-type": "application/json", "host": "127.0.0.1:9"})
        SigV4Auth(Credentials(KEY_ID, SECRET), "bedrock", region).add_auth(req)
        return req

    def check(req: AWSRequest, now=None):
        headers = {k.lower(): v for k, v in req.headers.items()}
        verify(creds, "POST", "/model/m%3A0/converse", "", headers, b"{}", now)

    check(signed(REGION))  # a good one passes
    with pytest.raises(BedrockError, match="scoped to a valid region"):
        check(signed("eu-west-1"))
    with pytest.raises(BedrockError, match="Signature expired"):
        check(signed(REGION), dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=6))


def test_bedrock_api_key_as_bearer_token(make_cloud):
    # boto3 sends bearer tokens only over HTTPS, so this one speaks HTTP by hand.
    cloud = make_cloud(api_key="ABSKgoodkey", options={})
    body = json.dumps({"messages": HI}).encode()
    assert post(cloud, body, {"authorization": "Bearer ABSKgoodkey"})[0] == 200
    for token, message in (("ABSKwrong", "Authentication failed: Please make sure your API Key is valid."),
                           ("sk-wrong", "Invalid API Key format: Must start with pre-defined prefix")):
        status, headers, answer = post(cloud, body, {"authorization": f"Bearer {token}"})
        assert (status, answer) == (403, {"Message": message})
        assert headers["x-amzn-errortype"].startswith("AccessDeniedException:")
    error = error_of(client(cloud).converse, modelId=MODEL, messages=HI)  # SigV4 with no IAM key configured
    assert error.response["Error"]["Code"] == "UnrecognizedClientException"


def test_session_token_must_match(make_cloud):
    cloud = make_cloud(options={"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
                                "aws_session_token": "token-1", "region": REGION})

    def session(token: str):
        return boto3.client("bedrock-runtime", endpoint_url=cloud.base_url, region_name=REGION,
                            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, aws_session_token=token,
                            config=Config(retries={"total_max_attempts": 1}))

    assert session("token-1").converse(modelId=MODEL, messages=HI)["stopReason"] == "end_turn"
    error = error_of(session("token-2").converse, modelId=MODEL, messages=HI)
    assert error.response["Error"]["Code"] == "UnrecognizedClientException"


def test_no_credentials_configured_accepts_any_signature(make_cloud):
    cloud = make_cloud(options={})
    assert client(cloud, key_id="anything", secret="at-all").converse(modelId=MODEL, messages=HI)["output"]


# --- validation -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"modelId": "anthropic.unknown-model"}, "The provided model identifier is invalid."),
    ({"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}, "A conversation must start with a user"),
    ({"messages": HI + HI}, "A conversation must alternate between user and assistant roles"),
    ({"messages": [{"role": "user", "content": []}]}, "The content field in the Message object at messages.0 is empty"),
    ({"messages": [{"role": "user", "content": [{"text": " "}]}]}, "messages.0.content.0 is blank"),
    ({"messages": HI + [{"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather",
                                                                        "input": {}}}]}] + HI},
     "The toolConfig field must be defined"),
    ({"inferenceConfig": {"temperature": 1.5}}, "1 validation error detected: Value '1.5' at "
                                                "'inferenceConfig.temperature' failed to satisfy constraint"),
])
def test_validation_errors(cloud, kwargs, message):
    call = {"modelId": MODEL, "messages": HI, **kwargs}
    error = error_of(client(cloud).converse, **call)
    assert error.response["Error"]["Code"] == "ValidationException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert message in error.response["Error"]["Message"]


def test_tool_results_must_pair_with_tool_uses(cloud):
    c = client(cloud)
    use = {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather",
                                                         "input": {"city": "Oslo"}}}]}
    missing = [HI[0], use, {"role": "user", "content": [{"text": "go on"}]}]
    error = error_of(c.converse, modelId=MODEL, messages=missing, toolConfig={"tools": [WEATHER]})
    assert error.response["Error"]["Message"] == ("Expected toolResult blocks at messages.2.content for the "
                                                  "following Ids: tooluse_a")
    extra = [{"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_x", "content": [{"text": "1"}]}}]}]
    error = error_of(c.converse, modelId=MODEL, messages=extra, toolConfig={"tools": [WEATHER]})
    assert "exceeds the number of toolUse blocks of previous turn" in error.response["Error"]["Message"]


def test_raw_body_errors_without_the_sdk(make_cloud):
    cloud = make_cloud(options={})
    status, headers, body = post(cloud, b"{not json")
    assert status == 400 and headers["x-amzn-errortype"].startswith("SerializationException:")
    status, headers, body = post(cloud, json.dumps({"messages": [{"role": "bot", "content": [{"text": "x"}]}],
                                                    "inferenceConfig": {"maxTokens": 0}}).encode())
    assert status == 400 and headers["x-amzn-errortype"].split(":")[0] == "ValidationException"
    assert body["message"].startswith("2 validation errors detected: Value 'bot' at 'messages.1.member.role'")
    assert headers["x-amzn-requestid"]


# --- faults -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, code", [(429, "ThrottlingException"), (500, "InternalServerException"),
                                          (503, "ServiceUnavailableException"), (400, "ValidationException")])
def test_status_faults_use_bedrock_error_types(cloud, bg, status, code):
    faults(bg, cloud, {"status": status, "at": [1]})
    error = error_of(client(cloud).converse, modelId=MODEL, messages=HI)
    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if status == 429:
        assert error.response["Error"]["Message"] == "Too many requests, please wait before trying again."
        assert "retry-after" not in error.response["ResponseMetadata"]["HTTPHeaders"]  # Bedrock sends none


def test_throttling_on_stream_is_an_http_error(cloud, bg):
    faults(bg, cloud, {"status": 429, "at": [1]})
    error = error_of(client(cloud).converse_stream, modelId=MODEL, messages=HI)
    assert error.response["Error"]["Code"] == "ThrottlingException"


def test_stream_errors_as_exception_frames(make_cloud, bg):
    cloud = make_cloud(options={"stream_errors": "frame", "retry_after_header": True})
    faults(bg, cloud, {"status": 429, "at": [1]}, {"status": 500, "at": [2]}, {"status": 429, "at": [3]})
    for expected in ("throttlingException", "internalServerException"):
        stream = client(cloud).converse_stream(modelId=MODEL, messages=HI)["stream"]
        seen = []
        with pytest.raises(EventStreamError) as caught:
            for event in stream:
                seen.append(event)
        assert seen == [{"messageStart": {"role": "assistant"}}]
        assert caught.value.response["Error"]["Code"] == expected
    error = error_of(client(cloud).converse, modelId=MODEL, messages=HI)  # not a stream: a plain HTTP error
    assert error.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"


def test_hang_and_slow(cloud, bg):
    faults(bg, cloud, {"kind": "hang", "at": [1]})
    with pytest.raises(ReadTimeoutError):
        client(cloud, read_timeout=0.5).converse(modelId=MODEL, messages=HI)
    faults(bg, cloud, {"kind": "hang", "seconds": 0.3, "at": [1]}, {"kind": "slow", "extra_ms": 300, "at": [2]})
    for _ in range(2):
        began = time.monotonic()
        assert client(cloud).converse(modelId=MODEL, messages=HI)["stopReason"] == "end_turn"
        assert time.monotonic() - began >= 0.3


def test_reset_drops_the_connection(cloud, bg):
    faults(bg, cloud, {"kind": "reset", "at": [1]})
    with pytest.raises(HTTPClientError):
        client(cloud).converse(modelId=MODEL, messages=HI)


def test_cut_stream_after_k_frames(cloud, bg):
    faults(bg, cloud, {"kind": "cut_stream", "after_chunks": 3, "at": [1]})
    seen = []
    with pytest.raises((HTTPClientError, ProtocolError)):  # boto3 lets urllib3's error through mid-stream
        for event in client(cloud).converse_stream(modelId=MODEL, messages=HI)["stream"]:
            seen.append(event)
    assert len(seen) == 3 and "messageStart" in seen[0]


def test_content_filter_prompt_and_output(cloud, bg):
    faults(bg, cloud, {"kind": "content_filter", "at": [1]}, {"kind": "content_filter", "target": "output",
                                                              "at": [2]})
    error = error_of(client(cloud).converse, modelId=MODEL, messages=HI)
    assert error.response["Error"] == {"Code": "ValidationException",
                                       "Message": "This request has been blocked by our content filters."}
    assert client(cloud).converse(modelId=MODEL, messages=HI)["stopReason"] == "content_filtered"


# --- the framing itself -----------------------------------------------------------------------------------------------

def test_event_stream_frames_decode_with_botocore():
    buffer = EventStreamBuffer()
    payload = json.dumps({"delta": {"text": "héllo"}, "contentBlockIndex": 0, "p": "abc"}).encode()
    frames = es.event("contentBlockDelta", payload) + es.exception("throttlingException", b'{"message":"slow"}')
    buffer.add_data(frames[:7])  # split across reads, as a socket would
    assert list(buffer) == []
    buffer.add_data(frames[7:])
    first, second = list(buffer)
    assert first.headers == {":event-type": "contentBlockDelta", ":content-type": "application/json",
                             ":message-type": "event"}
    assert first.payload == payload
    assert second.headers[":message-type"] == "exception" and second.headers[":exception-type"] == "throttlingException"

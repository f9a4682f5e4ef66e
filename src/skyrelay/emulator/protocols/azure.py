"""`protocol: azure` — Azure OpenAI's data-plane inference API, as https://RESOURCE.openai.azure.com serves it.

Routes: POST /openai/deployments/{deployment}/chat/completions?api-version=... and .../embeddings; the Responses
API (responses.py) at /openai/v1/responses (the v1 API: no api-version, or `preview`) and at
/openai/responses?api-version=2025-03-01-preview or later, the deployment named by the body's `model`, with
GET / DELETE .../responses/{id} and GET .../responses/{id}/input_items.
Auth: `api-key: KEY`, or `authorization: Bearer TOKEN` (Entra ID; any token is accepted when the cloud has a key,
since the emulator cannot check Entra signatures). Bodies are OpenAI's plus Azure's content-filter annotations
(`prompt_filter_results`, per-choice `content_filter_results`, a choice-less first stream chunk). Azure's own
errors (auth, api-version, deployment, throttling) use its {"error": {"code", "message"}} shape; errors about
the body itself are OpenAI's, passed through, as Azure does.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, unquote

from skyrelay.net.server import Request, Response, StreamResponse

from ..config import CloudSpec
from . import openai_wire as wire
from .base import Call, CallContext
from .openai import OpenAIProtocol, _client_host, body_call, responses_call, retry_headers, status_error
from .responses import route as responses_route

# Data-plane inference versions Azure has published (GA and preview); a cloud may narrow or extend the list.
KNOWN_API_VERSIONS = (
    "2022-12-01", "2023-05-15", "2023-06-01-preview", "2023-07-01-preview", "2023-08-01-preview",
    "2023-09-01-preview", "2023-10-01-preview", "2023-12-01-preview", "2024-02-01", "2024-02-15-preview",
    "2024-03-01-preview", "2024-04-01-preview", "2024-05-01-preview", "2024-06-01", "2024-07-01-preview",
    "2024-08-01-preview", "2024-09-01-preview", "2024-10-01-preview", "2024-10-21", "2024-12-01-preview",
    "2025-01-01-preview", "2025-02-01-preview", "2025-03-01-preview", "2025-04-01-preview",
)
_PREFIX = "/openai/deployments/"
_V1_PREFIX = "/openai/v1"
_V1_VERSIONS = ("preview", "latest")  # what the v1 API accepts as api-version, when one is sent at all
_RESPONSES_SINCE = "2025-03-01-preview"  # the first dated api-version with the Responses API
_OPERATIONS = {"chat/completions": "chat", "embeddings": "embeddings"}
_STATUS_ERRORS = {  # Azure's own codes and wording for each status, when a fault gives no message
    400: ("BadRequest", "The request is invalid."),
    401: ("401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                 "key for an active subscription and use a correct regional API endpoint for your resource."),
    403: ("403", "Access denied."),
    404: ("404", "Resource not found"),
    408: ("Timeout", "The operation was timeout."),
    413: ("RequestEntityTooLarge", "The request entity is too large."),
    503: ("ServiceUnavailable", "The service is temporarily unable to process your request. Please try again later."),
}
_CONTENT_FILTER_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify "
    "your prompt and retry. To learn more about our content filtering policies please read our documentation: "
    "https://go.microsoft.com/fwlink/?linkid=2198766"
)


class AzureError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class AzureProtocol:
    name = "azure"

    def __init__(self, spec: CloudSpec):
        self.spec = spec
        self.openai = OpenAIProtocol(spec)  # the body formats are OpenAI's
        self.api_versions = set(spec.api_versions or KNOWN_API_VERSIONS)
        self.deployments: dict[str, str] = {}
        for item in spec.deployments:
            name, model = (item, item) if isinstance(item, str) else (item["name"], item.get("model") or item["name"])
            self.deployments[name] = model

    def base_url(self, host: str, port: int) -> str:
        return f"http://{_client_host(host)}:{port}"  # the "azure_endpoint": clients add /openai/deployments/...

    def inspect(self, request: Request) -> Call:
        responses = _responses_route(request.path)
        if responses is not None:
            return responses_call(request, responses)
        route = _route(request)
        if route is None or request.method != "POST":
            return Call("other")
        return body_call(route[1], request.body)

    def error_response(self, status: int, message: str | None = None, retry_after: float | None = None) -> Response:
        if status == 429:
            wait = f"{retry_after:g}" if retry_after is not None else "a few"
            return self.render(AzureError(429, "429", message or (
                "Requests to the Azure OpenAI API have exceeded call rate limit of your current OpenAI S0 pricing "
                f"tier. Please retry after {wait} seconds. Please go here: https://aka.ms/oai/quotaincrease if you "
                "would like to further increase the default rate limit.")), retry_after)
        if status in _STATUS_ERRORS:
            code, default = _STATUS_ERRORS[status]
            return self.render(AzureError(status, code, message or default), retry_after)
        # Other 5xx come from the model service behind Azure, in OpenAI's shape.
        return self.render(status_error(status, message), retry_after)

    def render(self, error: AzureError | wire.ApiError, retry_after: float | None = None) -> Response:
        if isinstance(error, wire.ApiError):
            body = error.body()
        else:
            body = {"error": {"code": error.code, "message": error.message}}
        return wire.json_response(error.status, body, retry_headers(retry_after, with_ms=True) + _azure_headers())

    async def serve(self, request: Request, call: Call, ctx: CallContext) -> Response | StreamResponse:
        try:
            if call.operation.startswith("responses"):
                return await self.serve_responses(request, call, ctx)
            route = _route(request)
            if route is None or request.method != "POST":
                raise AzureError(404, "404", "Resource not found")
            deployment, operation = route
            self.authenticate(request)
            self.check_api_version(request)
            model = self.model_of(deployment)
            ctx.deployment = deployment  # Azure's quota and capacity belong to the deployment
            if ctx.content_filter == "prompt" and operation == "chat":
                return self.content_filter_error()
            if operation == "chat":  # a content_filter fault on "output" cuts the reply short instead
                return await self.openai.chat(call.payload, ctx, azure=True, model_name=model,
                                              headers=_azure_headers())
            return await self.openai.embeddings(call.payload, ctx, model_name=model, headers=_azure_headers())
        except (AzureError, wire.ApiError) as error:
            return self.render(error)

    async def serve_responses(self, request: Request, call: Call, ctx: CallContext) -> Response | StreamResponse:
        self.authenticate(request)
        versions = parse_qs(request.query).get("api-version")
        if request.path.startswith(_V1_PREFIX):
            if versions and versions[0] not in _V1_VERSIONS:
                raise AzureError(400, "BadRequest", "API version not supported")
        else:
            if not versions:
                raise AzureError(404, "404", "Resource not found")
            if versions[0] not in self.api_versions or versions[0] < _RESPONSES_SINCE:
                raise AzureError(400, "BadRequest", "API version not supported")
        model = None
        if call.operation == "responses" and isinstance(call.payload, dict):
            deployment = call.payload.get("model")
            if not isinstance(deployment, str):
                raise wire.ApiError(400, "Missing required parameter: 'model'.", param="model",
                                    code="missing_required_parameter")
            model = self.model_of(deployment)
            ctx.deployment = deployment
        return await self.openai.serve_responses(request, call, ctx, _azure_headers(), model_name=model)

    def authenticate(self, request: Request) -> None:
        if self.spec.api_key is None:
            return
        key = request.headers.get("api-key")
        if key is not None:
            if key != self.spec.api_key:
                raise AzureError(401, "401", _STATUS_ERRORS[401][1])
            return
        if request.headers.get("authorization", "").startswith("Bearer ") and len(request.headers["authorization"]) > 7:
            return  # an Entra ID token: the emulator cannot verify one, so any bearer token passes
        raise AzureError(401, "401", _STATUS_ERRORS[401][1])

    def check_api_version(self, request: Request) -> None:
        versions = parse_qs(request.query).get("api-version")
        if not versions:
            # Azure answers a missing api-version as an unknown route, not as a bad request.
            raise AzureError(404, "404", "Resource not found")
        if versions[0] not in self.api_versions:
            raise AzureError(400, "BadRequest", "API version not supported")

    def model_of(self, deployment: str) -> str:
        if not self.deployments:
            return deployment
        if deployment not in self.deployments:
            raise AzureError(404, "DeploymentNotFound", "The API deployment for this resource does not exist. If you "
                             "created the deployment within the last 5 minutes, please wait a moment and try again.")
        return self.deployments[deployment]

    def content_filter_error(self) -> Response:
        result = wire.prompt_filter_results()[0]["content_filter_results"]
        result["violence"] = {"filtered": True, "severity": "medium"}
        body = {"error": {
            "message": _CONTENT_FILTER_MESSAGE, "type": None, "param": "prompt", "code": "content_filter",
            "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": result},
        }}
        return wire.json_response(400, body, _azure_headers())


def _route(request: Request) -> tuple[str, str] | None:
    """(deployment, operation) for a deployments URL, else None."""
    path = request.path
    if not path.startswith(_PREFIX):
        return None
    deployment, _, rest = path[len(_PREFIX):].partition("/")
    operation = _OPERATIONS.get(rest.rstrip("/"))
    if not deployment or operation is None:
        return None
    return unquote(deployment), operation


def _responses_route(path: str) -> tuple[str, str | None] | None:
    return responses_route(path, _V1_PREFIX) or responses_route(path, "/openai")


def _azure_headers() -> list[tuple[str, str]]:
    request_id = str(uuid.uuid4())
    return [("apim-request-id", request_id), ("x-request-id", request_id), ("x-ms-region", "East US")]

"""Scripted misbehaviour (faults) and the error bodies Azure answers with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .quota import _rate_limit_body, _retry_headers


@dataclass(frozen=True)
class Fault:
    """A scripted misbehaviour for the next ``count`` requests (optionally only prompts containing ``match``).

    ``status``: answer with this error status (Azure-shaped body). ``delay``: wait this long first
    (then the status, or a normal answer). ``drop``: close the connection without a response.
    ``count=None`` keeps the fault until ``clear_faults()``.
    """

    status: int | None = None
    count: int | None = 1
    delay: float = 0.0
    drop: bool = False
    retry_after_ms: int | None = None
    match: str | None = None
    body: Mapping[str, Any] | None = None  # overrides the error body
    # Servers that are not Azure: a body sent as it is (not JSON), and the Content-Type ("" sends none).
    text: str | None = None
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        if self.status is None and not self.delay and not self.drop:
            raise ValueError("a Fault needs a status, a delay or drop=True")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"fault status must be 4xx/5xx, got {self.status}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1 (or None for every matching request)")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")


_RESOURCE_NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}
_DEPLOYMENT_NOT_FOUND = {
    "error": {
        "code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again.",
    }
}
_ACCESS_DENIED = {
    "error": {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
        "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    }
}
# A key sent to a resource whose key authentication is disabled (disableLocalAuth), as Azure answers it.
_AUTHENTICATION_TYPE_DISABLED = {
    "error": {"code": "AuthenticationTypeDisabled",
              "message": "Key based authentication is disabled for this resource."}
}
_INVALID_TOKEN = {
    "error": {"code": "401", "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
              "(https://cognitiveservices.azure.com), or have expired."}
}
_V1_API_VERSION_NOT_ALLOWED = {
    "error": {"code": "BadRequest", "message": "api-version query parameter is not allowed when using /v1 path"}
}


def _databricks_denied() -> dict[str, Any]:
    return {"error_code": "401", "message": "Credential was not sent or was of an unsupported type for this API."}


def _not_found(shape: str, name: str) -> dict[str, Any]:
    """The 404 for an unknown deployment, serving endpoint or model, in each provider's own words."""
    if shape == "databricks":
        return {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Endpoint with name '{name}' does not exist."}
    if shape == "openai":
        return {"error": {"message": f"The model `{name}` does not exist or you do not have access to it.",
                          "type": "invalid_request_error", "param": None, "code": "model_not_found"}}
    return _DEPLOYMENT_NOT_FOUND


_BAD_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)
_CONTENT_FILTER_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read "
    "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_STATUS_ERRORS: dict[int, dict[str, Any]] = {
    400: {"message": "Bad request.", "type": "invalid_request_error", "param": None, "code": None},
    403: {"code": "403", "message": "Public access is disabled. Please configure private endpoint."},
    404: _RESOURCE_NOT_FOUND["error"],
    408: {"code": "Timeout", "message": "The operation was timeout."},
    500: {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    },
    502: {"code": "BadGateway", "message": "Bad gateway."},
    503: {
        "code": "ServiceUnavailable",
        "message": "The service is temporarily unable to process your request. Please try again later.",
    },
    504: {"code": "GatewayTimeout", "message": "The operation timed out."},
}


def _safe_filter_results() -> dict[str, Any]:
    return {name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")}


def _choice_filter_results() -> dict[str, Any]:
    results = _safe_filter_results()
    results["protected_material_code"] = {"filtered": False, "detected": False}
    results["protected_material_text"] = {"filtered": False, "detected": False}
    return dict(sorted(results.items()))


def _prompt_filter_results() -> list[dict[str, Any]]:
    results = _safe_filter_results()
    results["jailbreak"] = {"filtered": False, "detected": False}
    return [{"prompt_index": 0, "content_filter_results": dict(sorted(results.items()))}]


def _content_filter_error() -> dict[str, Any]:
    result = _safe_filter_results()
    result["hate"] = {"filtered": True, "severity": "high"}
    result["jailbreak"] = {"filtered": False, "detected": False}
    return {
        "error": {
            "message": _CONTENT_FILTER_MESSAGE,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": dict(sorted(result.items())),
            },
        }
    }


def _invalid_request(message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}




@dataclass
class _Reply:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None                 # sent as it is instead of the JSON payload
    content_type: str = "application/json"  # "": no Content-Type header


def fault_reply(fault: Fault, api_version: str | None) -> _Reply:
    """The reply an injected error fault stands for (Azure's body for its status unless given)."""
    headers: dict[str, str] = {}
    retry_after_ms = fault.retry_after_ms
    if fault.status == 429 and retry_after_ms is None:
        retry_after_ms = 1000  # Azure always advertises a wait on 429
    if retry_after_ms is not None:
        headers.update(_retry_headers(retry_after_ms))
    if fault.body is not None:
        payload: Any = dict(fault.body)
    elif fault.status == 429:
        payload = _rate_limit_body(api_version, int(headers["retry-after"]), "token")
    else:
        assert fault.status is not None
        error = _STATUS_ERRORS.get(fault.status) or {"code": str(fault.status), "message": "Injected failure."}
        payload = {"error": dict(error)}
    assert fault.status is not None
    return _Reply(fault.status, payload, headers, text=fault.text, content_type=fault.content_type)


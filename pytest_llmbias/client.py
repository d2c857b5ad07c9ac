"""The one place that builds the openai client and sends chat requests."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .cassettes import CassetteLibrary, TransportNotIntercepted, is_cassette_miss, make_transport
from .throttle import rate_limit_kind, retry_after
from .wire import (UNSET_MAX_TOKENS_QUOTA, RECORDED_HEADER, ChatRequest, Completion,  # noqa: F401 (the client's types)
                   categories, completion_from_body, replayed_completion, request_key)

DEFAULT_DEPLOYMENT = "gpt-35-turbo"
# The newest GA data-plane version at the time of writing; the lab's "2023-03-15-preview" still works.
DEFAULT_API_VERSION = "2024-06-01"
# Replay never reaches the network; the SDK still needs a syntactically valid endpoint and key.
REPLAY_ENDPOINT = "https://replay.invalid/"
REPLAY_KEY = "replay-no-key"


class ConfigError(Exception):
    """A setting the user has to fix (missing variable, bad value); shown as one line."""


class RequestFailed(Exception):
    """A chat request that did not produce answers; the message never contains the key."""


class RunStopped(RequestFailed):
    """A failure every request of the run would meet (credentials, a model refusing the case file's
    settings): the run stops at the first request with this one line."""


PROVIDERS = ("azure", "openai", "databricks")
# Entra ID scope of Azure OpenAI in the public cloud; other clouds have their own (ini llmbias_token_scope).
DEFAULT_TOKEN_SCOPE = "https://cognitiveservices.azure.com/.default"
# A callable api_key (a token provider for the plain OpenAI client) arrived in openai 1.106.0.
CALLABLE_API_KEY_OPENAI = (1, 106)
# Local OpenAI-compatible servers take any key; the SDK insists on one.
NO_KEY = "no-key"
_KEYLESS_HOW = ("sign in with Entra ID instead: unset AZURE_OPENAI_API_KEY and install pytest-llmbias[azure] "
                "(DefaultAzureCredential: az login, a managed identity or a service principal), or set "
                "AZURE_OPENAI_AD_TOKEN; the identity needs the role Cognitive Services OpenAI User")


@dataclass(frozen=True)
class Settings:
    """Where requests go and with which credential; repr never shows a secret."""

    endpoint: str                     # azure_endpoint (classic) or the base URL (every other shape)
    api_key: str = field(repr=False)  # "" when a token authenticates
    api_version: str | None           # None: the v1, OpenAI and Databricks shapes take none
    timeout: float = 300.0            # seconds per request (--llm-timeout): reasoning models take minutes
    shape: str = "classic"            # "classic", "v1" (Azure), "openai", "databricks"
    auth: str = "key"                 # "key", "token" (static Entra ID), "entra" (DefaultAzureCredential)
    ad_token: str = field(default="", repr=False)
    token_provider: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, *, needs_network: bool, environ: dict[str, str] | None = None,
                 api_key: str | None = None, provider: str | None = None,
                 token_scope: str | None = None) -> Settings:
        """Settings from each provider's own variables; `api_key`, when given (the
        pytest_llmbias_api_key hook), wins over the provider's key variable."""
        env = os.environ if environ is None else environ
        api_version = env.get("AZURE_OPENAI_API_VERSION", "").strip() or DEFAULT_API_VERSION
        if not needs_network:
            # Replay: a cassette miss must never fall through to a real resource.
            return cls(REPLAY_ENDPOINT, REPLAY_KEY, api_version)
        chosen = provider_from_env(env, provider)
        if chosen == "openai":
            return _openai_settings(env, api_key)
        if chosen == "databricks":
            return _databricks_settings(env, api_key)
        return _azure_settings(env, api_key, api_version, token_scope)


def provider_from_env(env: Any, provider: str | None = None) -> str:
    """The provider named (ini llmbias_provider / --llm-provider), else the one whose variables are set."""
    if provider:
        if provider not in PROVIDERS:
            raise ConfigError(f"llmbias_provider must be one of {', '.join(PROVIDERS)} (got {provider!r})")
        return provider
    if env.get("AZURE_OPENAI_ENDPOINT", "").strip():
        return "azure"
    if env.get("DATABRICKS_HOST", "").strip() or env.get("DATABRICKS_RUNTIME_VERSION", "").strip():
        return "databricks"
    if env.get("OPENAI_API_KEY", "").strip() or env.get("OPENAI_BASE_URL", "").strip():
        return "openai"
    return "azure"


def _check_url(name: str, value: str) -> Any:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("https", "http") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # unbalanced brackets, a port that is not a number
        valid = False
    if not valid or parts.query or parts.fragment or parts.username or parts.password:
        # The value may carry credentials: show its scheme and length only.
        raise ConfigError(f"{name} is not a URL like https://my-resource.openai.azure.com/ "
                          f"({len(value)} characters, starting {value[:8]!r})")
    return parts


def azure_shape(endpoint: str) -> tuple[str, str]:
    """("classic", resource URL) or ("v1", base URL ending /openai/v1/) for AZURE_OPENAI_ENDPOINT."""
    parts = _check_url("AZURE_OPENAI_ENDPOINT", endpoint)
    origin = f"{parts.scheme}://{parts.netloc}/"
    path = "/" + "/".join(segment for segment in parts.path.split("/") if segment)
    if path in ("/", "/openai"):
        return "classic", origin
    if path == "/openai/v1":
        return "v1", origin + "openai/v1/"
    shown = path if len(path) <= 60 else path[:57] + "..."
    raise ConfigError(f"AZURE_OPENAI_ENDPOINT has a path this tool does not understand ({shown}): give the "
                      "resource, https://RESOURCE.openai.azure.com/ (with AZURE_OPENAI_API_VERSION), or the v1 "
                      "API, https://RESOURCE.openai.azure.com/openai/v1/; the deployment goes in "
                      "--llm-deployment or the YAML's deployment")


def _azure_settings(env: Any, api_key: str | None, api_version: str, token_scope: str | None) -> Settings:
    endpoint = env.get("AZURE_OPENAI_ENDPOINT", "").strip()
    if not endpoint:
        raise ConfigError("AZURE_OPENAI_ENDPOINT not set: --llm-record and --llm-live call the deployment "
                          "(see README, 'Recording against your deployment')")
    shape, url = azure_shape(endpoint)
    key = (api_key or env.get("AZURE_OPENAI_API_KEY", "")).strip()
    token = env.get("AZURE_OPENAI_AD_TOKEN", "").strip()
    version = api_version if shape == "classic" else None  # the v1 path refuses a dated api-version
    if key and token:
        raise ConfigError("both a key (AZURE_OPENAI_API_KEY or the key hook) and AZURE_OPENAI_AD_TOKEN are set: "
                          "keep one (the token for a resource whose key authentication is disabled)")
    if key:
        return Settings(url, key, version, shape=shape)
    if token:
        return Settings(url, "", version, shape=shape, auth="token", ad_token=token)
    provider = entra_token_provider(token_scope or env.get("LLMBIAS_TOKEN_SCOPE", "").strip() or DEFAULT_TOKEN_SCOPE)
    if provider is None:
        raise ConfigError("no credential for AZURE_OPENAI_ENDPOINT: set AZURE_OPENAI_API_KEY, or "
                          "AZURE_OPENAI_AD_TOKEN (an Entra ID token: az account get-access-token --resource "
                          "https://cognitiveservices.azure.com), or install pytest-llmbias[azure] to sign in "
                          "with DefaultAzureCredential")
    if shape == "v1" and not callable_api_key_supported():
        import openai

        raise ConfigError(f"the v1 endpoint with DefaultAzureCredential needs openai >= 1.106 (installed: "
                          f"{openai.__version__}): upgrade openai, set AZURE_OPENAI_AD_TOKEN, or use the "
                          "classic endpoint https://RESOURCE.openai.azure.com/ with AZURE_OPENAI_API_VERSION")
    return Settings(url, "", version, shape=shape, auth="entra", token_provider=provider)


def callable_api_key_supported() -> bool:
    import openai

    try:
        version = tuple(int(part) for part in openai.__version__.split(".")[:2])
    except ValueError:
        return True
    return version >= CALLABLE_API_KEY_OPENAI


def entra_token_provider(scope: str) -> Any:
    """DefaultAzureCredential's bearer-token provider for `scope` (it caches and refreshes the token);
    None without azure-identity. A failure to get a token stops the run with one line."""
    try:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider
    except ImportError:
        return None
    inner = get_bearer_token_provider(DefaultAzureCredential(exclude_interactive_browser_credential=True), scope)

    def provide() -> str:
        try:
            return inner()
        except Exception as error:  # azure-identity's messages span many lines and name every credential tried
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise RunStopped(f"DefaultAzureCredential got no token for {scope}: {first} (sign in with az login, "
                             "or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a service "
                             "principal; on a cluster, a managed identity)") from None

    return provide


def _openai_settings(env: Any, api_key: str | None) -> Settings:
    base_url = env.get("OPENAI_BASE_URL", "").strip()
    key = (api_key or env.get("OPENAI_API_KEY", "")).strip()
    if base_url:
        _check_url("OPENAI_BASE_URL", base_url)
    if not key and not base_url:
        raise ConfigError("OPENAI_API_KEY not set (or OPENAI_BASE_URL for a local OpenAI-compatible server): "
                          "--llm-record and --llm-live call the model")
    return Settings(base_url or "https://api.openai.com/v1", key or NO_KEY, None, shape="openai")


def _databricks_settings(env: Any, api_key: str | None) -> Settings:
    host = env.get("DATABRICKS_HOST", "").strip()
    token = (api_key or env.get("DATABRICKS_TOKEN", "")).strip()
    if (not host or not token) and env.get("DATABRICKS_RUNTIME_VERSION", "").strip():
        host, token = _databricks_notebook_credentials(host, token)  # on a cluster: the notebook's own
    if not host or not token:
        missing = " and ".join(name for name, value in (("DATABRICKS_HOST", host), ("DATABRICKS_TOKEN", token))
                               if not value)
        raise ConfigError(f"{missing} not set: --llm-record and --llm-live call the serving endpoint "
                          "(https://WORKSPACE/serving-endpoints); in a notebook the cluster's own credentials "
                          "are used")
    if "://" not in host:
        host = "https://" + host  # the Databricks CLI and SDK accept a bare workspace host
    parts = _check_url("DATABRICKS_HOST", host)
    return Settings(f"{parts.scheme}://{parts.netloc}/serving-endpoints", token, None, shape="databricks")


def _databricks_notebook_credentials(host: str, token: str) -> tuple[str, str]:
    """The workspace and a token from databricks-sdk's unified authentication (a notebook's own)."""
    try:
        from databricks.sdk.core import Config
    except ImportError:
        raise ConfigError("DATABRICKS_HOST and DATABRICKS_TOKEN not set (or install databricks-sdk to use "
                          "the notebook's own credentials)") from None
    try:
        config = Config(**({"host": host} if host else {}))
        header = config.authenticate().get("Authorization", "")
    except Exception as error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ConfigError(f"no Databricks credentials (set DATABRICKS_HOST and DATABRICKS_TOKEN): {first}") from None
    return host or config.host or "", token or header.removeprefix("Bearer ").strip()


# Retries are ours (the SDK's are off): they see the limiter, and a cassette miss is never retried.
DEFAULT_ATTEMPTS = 6
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 20.0
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


def httpx_module() -> Any:
    """The HTTP library the installed SDK sends through: httpx2 (openai >= 3) or httpx (1.x)."""
    import importlib

    import openai

    for base in openai.DefaultHttpxClient.__mro__:
        top = base.__module__.split(".")[0]
        if top in ("httpx2", "httpx"):
            return importlib.import_module(top)
    raise ConfigError(f"cannot tell which HTTP library openai {openai.__version__} uses")


def build_client(settings: Settings, library: Any = None) -> Any:
    """The SDK client for the settings' endpoint shape; with a cassette library, its requests go
    through the cassette transport."""
    import openai

    http_client = None
    if library is not None:
        module = httpx_module()
        network = None if library.mode == "replay" else module.HTTPTransport()
        http_client = openai.DefaultHttpxClient(transport=make_transport(library, module, network))
    common: dict[str, Any] = {"timeout": settings.timeout, "max_retries": 0, "http_client": http_client}
    if settings.shape == "classic":
        credential: dict[str, Any] = {"api_key": settings.api_key}
        if settings.auth == "token":
            credential = {"azure_ad_token": settings.ad_token}
        elif settings.auth == "entra":
            credential = {"azure_ad_token_provider": settings.token_provider}
        return openai.AzureOpenAI(azure_endpoint=settings.endpoint, api_version=settings.api_version,
                                  **credential, **common)
    # v1, OpenAI, Databricks: the plain client; the deployment (or serving endpoint) goes as `model`.
    api_key = {"key": settings.api_key, "token": settings.ad_token}.get(settings.auth, settings.token_provider)
    return openai.OpenAI(base_url=settings.endpoint, api_key=api_key, **common)


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """About four characters a token, plus the per-message overhead of the chat format."""
    prompt_chars = sum(len(message["content"]) for message in request.messages())
    return prompt_chars // 4 + 4 * len(request.messages()) + 3


def estimate_tokens(request: ChatRequest) -> int:
    """Tokens Azure charges against a TPM quota up front: prompt estimate + max_tokens x n."""
    return estimate_prompt_tokens(request) + request.budget * request.n


class NRefused(RequestFailed):
    """The deployment refuses n > 1: ask n single requests instead."""


class DeploymentNotFound(RunStopped):
    """A 404 for the deployment: every request to it would meet it. The session adds where the name came from."""

    def __init__(self, deployment: str, status: str, endpoint_hint: str) -> None:
        super().__init__(f"deployment {deployment!r} not found ({status}): check its name and {endpoint_hint}")
        self.deployment, self.status, self.endpoint_hint = deployment, status, endpoint_hint

    def named_by(self, source: str | None) -> str:
        """The one line that stops the run, naming the setting that chose the deployment (None: the default)."""
        where = (f"named by {source}: correct it there" if source else
                 "the default, as no --llm-deployment, case file deployment or ini llmbias_deployment names one: "
                 "name yours in one of them")
        return f"deployment {self.deployment!r} not found ({self.status}); {where}, or check {self.endpoint_hint}"


def ask(client: Any, request: ChatRequest, *, attempts: int = DEFAULT_ATTEMPTS, limiter: Any = None,
        sleep: Any = time.sleep, rng: Any = None, answered: Any = None) -> Completion:
    """Send one chat request with n samples, retrying throttling and faults; raise RequestFailed
    (RunStopped when no request of the run can succeed, NRefused when n > 1 is refused).
    `answered` is called once the deployment has taken a request: with the completion on an answer,
    with None on throttling or a fault; not on a refusal."""
    import random

    import openai

    rng = rng or random.Random()
    throttled = 0
    last_problem = ""
    for attempt in range(1, attempts + 1):
        cost = 0
        if limiter is not None:
            cost = limiter.cost(estimate_prompt_tokens(request), request.budget * request.n)
            limiter.acquire(cost)
        started = time.perf_counter()
        try:
            raw = client.chat.completions.with_raw_response.create(**_create_arguments(request))
            answer = _completion(raw, time.perf_counter() - started, attempt, throttled)
            if limiter is not None:  # the quota the deployment reports (none on a replay)
                limiter.observe({} if answer.replayed else raw.headers, 0 if answer.replayed else cost)
            if answered is not None and not answer.replayed:
                answered(answer)
            if limiter is not None and not answer.replayed:
                limiter.observe_prompt(estimate_prompt_tokens(request), answer.prompt_tokens)
            return answer
        except openai.APIStatusError as error:
            filtered = _prompt_filter(error)
            if filtered is not None:
                return Completion((), (), 0, 0, "", "", time.perf_counter() - started,
                                  RECORDED_HEADER in error.response.headers,
                                  (filtered,), attempt, throttled)
            last_problem = _describe_status_error(error)
            refusal = _refusal(error, request)
            if refusal is not None:
                raise refusal from None
            if RECORDED_HEADER not in error.response.headers:
                if answered is not None:
                    answered(None)
                if limiter is not None:  # the deployment answered: nobody waits for a first success
                    limiter.responded()
            if error.status_code not in RETRYABLE_STATUS:
                raise RequestFailed(last_problem) from error
            wait = retry_after(error.response.headers)
            if error.status_code == 429:
                throttled += 1
                if limiter is not None:
                    limiter.throttled(wait, cost, rate_limit_kind(error.response.headers, error_wording(error)[1]))
            if wait is None:
                wait = _backoff(attempt, rng)
        except openai.APIConnectionError as error:
            if _is_miss(error):
                raise
            last_problem = (_timed_out(client) if isinstance(error, openai.APITimeoutError)
                            else f"connection failed: {_root_cause(error)}")
            wait = _backoff(attempt, rng)
        if attempt < attempts:
            sleep(wait)
    raise RequestFailed(f"gave up after {attempts} attempts ({throttled} throttled); last: {last_problem}")


def _timed_out(client: Any) -> str:
    timeout = getattr(client, "timeout", None)
    seconds = getattr(timeout, "read", timeout)  # a float, or an httpx Timeout
    after = f" after {seconds:g} s" if isinstance(seconds, (int, float)) else ""
    return (f"timed out{after} (raise --llm-timeout or ini llmbias_timeout for a deployment that takes longer, "
            "as reasoning models can)")


def _create_arguments(request: ChatRequest) -> dict[str, Any]:
    arguments: dict[str, Any] = {"model": request.deployment, "messages": request.messages(), "n": request.n}
    for name in ("max_tokens", "max_completion_tokens", "temperature", "seed"):
        if getattr(request, name) is not None:
            arguments[name] = getattr(request, name)
    if request.user:
        arguments["user"] = request.user
    if request.reasoning_effort is not None:  # through extra_body: openai 1.55 has no reasoning_effort argument
        arguments["extra_body"] = {"reasoning_effort": request.reasoning_effort}
    return arguments


# Settings a reasoning model (o-series, gpt-5 family) refuses, and what the case file should say instead.
_REASONING_FIXES = {
    "max_tokens": "max_completion_tokens instead of max_tokens (hidden reasoning counts against it: "
                  "2000 or more)",
    "temperature": "temperature: null (it takes only the default, 1)",
}


def _refusal(error: Any, request: ChatRequest) -> RequestFailed | None:
    """A 4xx that every request of the run would meet, as the one line that stops the run; or
    NRefused for a refused n > 1; else None."""
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    inner = inner if isinstance(inner, dict) else {}
    found_code, message = error_wording(error)
    code = found_code or ""
    param = inner.get("param") or _quoted_parameter(message)
    if error.status_code == 404:
        deployment, endpoint_hint = _missing_deployment(error)
        return DeploymentNotFound(deployment, _status_line(error), endpoint_hint)
    if error.status_code in (401, 403):
        if code == "AuthenticationTypeDisabled":
            return RunStopped(f"HTTP 403 AuthenticationTypeDisabled: this resource accepts no keys: {_KEYLESS_HOW}")
        return RunStopped(f"{_describe_status_error(error)}; no request of this run can succeed")
    if error.status_code != 400:
        return None
    if param == "n" and request.n > 1:
        return NRefused(_describe_status_error(error))
    unsupported = code in ("unsupported_parameter", "unsupported_value") or message.lower().startswith("unsupported")
    if unsupported and param in _REASONING_FIXES:
        fixes = "; ".join(fix for name, fix in _REASONING_FIXES.items()
                          if name == param or getattr(request, name) not in (None, 1, 1.0))
        return RunStopped(f"deployment {request.deployment!r} refuses {param} (HTTP 400 {code}: a reasoning "
                          f"model): in the case file's defaults set {fixes}; reasoning_effort (minimal, low, "
                          "medium, high) is optional")
    unrecognized = message.lower().startswith("unrecognized request argument")
    if (unsupported or unrecognized) and param in _CHAT_MODEL_FIXES:
        return RunStopped(f"deployment {request.deployment!r} does not take {param} (HTTP 400: "
                          f"{message.splitlines()[0][:120] if message else code}): {_CHAT_MODEL_FIXES[param]}")
    return None


# Settings only reasoning models (or newer api-versions) take, refused by an older chat deployment.
_CHAT_MODEL_FIXES = {
    "reasoning_effort": "only reasoning models take it: remove reasoning_effort from the case file",
    "max_completion_tokens": "use max_tokens in the case file, or a newer AZURE_OPENAI_API_VERSION "
                             "(or the v1 endpoint) if the model is a reasoning model",
}


def _quoted_parameter(message: str) -> str | None:
    """The parameter a refusal without a `param` field names in quotes ("'n' must be 1")."""
    import re

    found = re.search(r"""['"`](n|max_tokens|max_completion_tokens|temperature|reasoning_effort)['"`]""", message)
    if found:
        return found.group(1)
    unrecognized = re.match(r"unrecognized request argument supplied: (\w+)", message, re.IGNORECASE)
    return unrecognized.group(1) if unrecognized else None


def merge_samples(parts: list[Completion]) -> Completion:
    """The single requests asked for a refused n > 1, as the one completion they stand for."""
    return Completion(
        texts=tuple(text for part in parts for text in part.texts),
        finish_reasons=tuple(reason for part in parts for reason in part.finish_reasons),
        prompt_tokens=sum(part.prompt_tokens for part in parts),
        completion_tokens=sum(part.completion_tokens for part in parts),
        model=next((part.model for part in parts if part.model), ""),
        response_id=",".join(part.response_id for part in parts),
        latency_s=max((part.latency_s for part in parts), default=0.0),
        replayed=all(part.replayed for part in parts),
        filtered=tuple(flag for part in parts for flag in (part.filtered or ("",) * len(part.texts))),
        attempts=sum(part.attempts for part in parts),
        throttled=sum(part.throttled for part in parts),
        reasoning_tokens=sum(part.reasoning_tokens for part in parts),
    )


def _is_miss(error: BaseException) -> bool:
    return is_cassette_miss(error)


def _backoff(attempt: int, rng: Any) -> float:
    # Exponential with full jitter: retries from many threads spread out instead of hitting together.
    return rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


def _completion(raw: Any, latency: float, attempts: int, throttled: int) -> Completion:
    """The SDK's parsed response through the same parser as a cassette's body (wire.completion_from_body)."""
    body = raw.parse().model_dump(mode="json")  # extra fields (content_filter_results) included
    completion = completion_from_body(body, latency=latency, replayed=RECORDED_HEADER in raw.headers,
                                      attempts=attempts, throttled=throttled)
    if completion is None:  # the SDK validated the shape: this would be a bug of ours
        raise RequestFailed(f"unreadable chat completion: {json.dumps(body)[:200]}")
    return completion


def check_interception() -> None:
    """Prove the SDK sends through the cassette transport before any test relies on it.

    An SDK that ignored the transport it was given would let replayed requests reach the network.
    """
    import openai

    # Port 9 (discard) on loopback: a request that escapes the transport fails to connect instead.
    settings = Settings("http://127.0.0.1:9/", "probe", "2024-06-01", timeout=5.0)
    client = build_client(settings, library=CassetteLibrary("replay"))
    try:
        ask(client, ChatRequest("probe", "", "probe", 1, 0.0, 1), attempts=1)
    except Exception as error:  # the miss may come wrapped by the SDK
        if is_cassette_miss(error):
            return
    raise TransportNotIntercepted(
        f"openai {openai.__version__} did not send through the cassette transport it was given: "
        "replay could reach the network; please report this with your openai version")


def _prompt_filter(error: Any) -> str | None:
    """Azure's content-filter 400 as an outcome: the categories that tripped, else None."""
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    if error.status_code != 400 or not isinstance(inner, dict) or inner.get("code") != "content_filter":
        return None
    result = (inner.get("innererror") or {}).get("content_filter_result")
    return categories(result) or "filtered"


def error_wording(error: Any) -> tuple[str | None, str]:
    """(code, message) of an error response in any shape: Azure's and OpenAI's {"error": {...}}, a
    serving endpoint's {"error_code", "message"}, {"detail": ...} (FastAPI-style servers, a list of
    {"msg"} included), {"error": "text"}, plain text or HTML, or no body at all."""
    body = error.body  # the SDK has already taken the inside of {"error": {...}}
    code = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        inner = inner if isinstance(inner, dict) else body
        code = inner.get("code") or inner.get("error_code") or body.get("error_code")
    message = _words(body) if body is not None else ""
    if not message:
        message = _words(_response_text(error))
    code_text = str(code) if code not in (None, "") and not isinstance(code, (dict, list)) else None
    return code_text, message or "no error message in the response"


_MESSAGE_FIELDS = ("message", "detail", "error", "error_description", "msg", "title", "reason")


def _words(value: Any, depth: int = 0) -> str:
    """The human words inside an error body, first line only."""
    import re

    if depth > 4 or value is None:
        return ""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("<") and ">" in text:  # a gateway's HTML page: its title, else its text
            title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
            return " ".join((title.group(1) if title else re.sub(r"<[^>]+>", " ", text)).split())[:300]
        return " ".join(text.splitlines()[0].split())[:300] if text else ""
    if isinstance(value, dict):
        for name in _MESSAGE_FIELDS:
            found = _words(value.get(name), depth + 1)
            if found:
                return found
        return ""
    if isinstance(value, list):
        return "; ".join(found for found in (_words(item, depth + 1) for item in value[:3]) if found)[:300]
    return str(value)[:300]


def _response_text(error: Any) -> str:
    try:
        return error.response.text
    except Exception:  # a streamed or closed response
        return ""


def _status_line(error: Any) -> str:
    code, message = error_wording(error)
    shown_code = f" {code}" if code and code != str(error.status_code) else ""
    return f"HTTP {error.status_code}{shown_code}: {message}"


def _missing_deployment(error: Any) -> tuple[str, str]:
    """(the deployment a 404 was for, the endpoint settings that could be wrong instead)."""
    request = getattr(error, "request", None)
    # openai 1.x joins an endpoint ending in "/" into "//openai/...": one slash is what matters
    path = "/" + (getattr(getattr(request, "url", None), "path", "") or "").lstrip("/")
    if "/deployments/" in path:
        deployment = path.split("/deployments/", 1)[-1].split("/", 1)[0]
    else:  # the v1, OpenAI and Databricks shapes name it in the body
        deployment = _model_of(request)
    if "/serving-endpoints" in path:
        return deployment, "DATABRICKS_HOST (the serving endpoint may be in another workspace)"
    if not path.startswith("/openai/"):
        return deployment, "OPENAI_BASE_URL (the model may be served elsewhere)"
    version = " and AZURE_OPENAI_API_VERSION" if "/deployments/" in path else ""
    return deployment, f"AZURE_OPENAI_ENDPOINT (the deployment may be on another resource){version}"


def _describe_status_error(error: Any) -> str:
    request = getattr(error, "request", None)
    path = "/" + (getattr(getattr(request, "url", None), "path", "") or "").lstrip("/")
    hint = ""
    if error.status_code == 404:
        deployment, where = _missing_deployment(error)
        hint = f" (deployment {deployment!r}: check --llm-deployment / the YAML's deployment, {where})"
    elif error.status_code in (401, 403):
        if "/serving-endpoints" in path:
            hint = " (check DATABRICKS_TOKEN and that it may query the serving endpoint)"
        elif not path.startswith("/openai/"):
            hint = " (check OPENAI_API_KEY)"
        else:
            hint = (" (check the credential: AZURE_OPENAI_API_KEY, AZURE_OPENAI_AD_TOKEN or DefaultAzureCredential's "
                    "identity, and that it belongs to the endpoint's resource; an identity needs the role "
                    "Cognitive Services OpenAI User)")
    return f"{_status_line(error)}{hint}"


def _model_of(request: Any) -> str:
    try:
        model = json.loads(request.content or b"{}").get("model")
    except (AttributeError, ValueError, TypeError):
        return "?"
    return model if isinstance(model, str) else "?"


def _root_cause(error: BaseException) -> str:
    seen = error
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    return f"{type(seen).__name__}: {str(seen).splitlines()[0][:200] if str(seen) else ''}"

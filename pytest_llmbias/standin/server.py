"""The stand-in's HTTP server: routes, authentication, validation and the chat-completions reply."""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import socket
import string
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .faults import (_ACCESS_DENIED, _AUTHENTICATION_TYPE_DISABLED, _INVALID_TOKEN, _V1_API_VERSION_NOT_ALLOWED,
                     _databricks_denied, _not_found, _BAD_JSON_MESSAGE, _RESOURCE_NOT_FOUND, Fault,
                     _choice_filter_results, _content_filter_error, _invalid_request, _prompt_filter_results,
                     _Reply, fault_reply)
from .models import Model, model_error, reasoning_tokens
from .quota import (NOMINAL_RPM, NOMINAL_TPM, UNSET_MAX_TOKENS_QUOTA, _rate_limit_body, _SlidingWindow,
                    estimate_request_tokens, parse_duration, rate_limit_headers)
from .text import (Planted, _last_user_text, _message_text, _requested_max_tokens, _truncate_to_tokens,
                   _user_texts, estimate_prompt_tokens, estimate_tokens, generate_answers)

DEFAULT_API_KEY = "standin-key"
DEFAULT_API_VERSION = "2024-06-01"
DEFAULT_DEPLOYMENT = "gpt-35-turbo"
DEFAULT_MODEL_NAME = "gpt-35-turbo"
DEFAULT_PROMPT_FILTER_TRIGGERS: tuple[str, ...] = ("FILTERME",)
DEFAULT_COMPLETION_FILTER_TRIGGERS: tuple[str, ...] = ("FILTERCOMPLETION",)
MAX_N = 128
# Status recorded for a request whose connection was closed without any response.
DROPPED = 0

_API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_ID_ALPHABET = string.ascii_letters + string.digits
_ROUTE_RE = re.compile(r"^/openai/deployments/([^/]+)/chat/completions/?$")
# Paths that carry the deployment (or serving endpoint, or model) in the body's "model" instead.
_BODY_ROUTES = {
    "/openai/v1/chat/completions": "v1",                  # Azure's v1 API (also *.services.ai.azure.com)
    "/serving-endpoints/chat/completions": "databricks",  # Databricks Model Serving
    "/v1/chat/completions": "openai",                     # OpenAI and local OpenAI-compatible servers
}
_BODY_ROUTED = frozenset(_BODY_ROUTES.values())
# The v1 path takes no dated api-version (only none, or the literal preview/v1 values).
_V1_API_VERSIONS = (None, "v1", "preview", "latest")
DEFAULT_ENTRA_TOKEN = "standin-entra-token"
MANAGED_IDENTITY_PATH = "/msi/token"


def _route(path: str) -> tuple[str | None, str | None]:
    """(shape, deployment from the path) of a chat-completions path; (None, None) for any other path."""
    classic = _ROUTE_RE.match(path)
    if classic:
        return "classic", unquote(classic.group(1))
    return _BODY_ROUTES.get(path.rstrip("/")), None


@dataclass
class RequestRecord:
    """One request the stand-in received (the API key is redacted)."""

    method: str
    path: str
    deployment: str | None
    api_version: str | None
    headers: dict[str, str]
    body: Any  # parsed JSON, or None when the body was not JSON
    time: float  # arrival, time.time()
    status: int | None = None  # None while in flight; DROPPED (0) when closed without a response
    fault: Fault | None = None  # the injected fault applied to it, if any
    shape: str | None = None  # "classic", "v1", "databricks", "openai"; None for an unknown path


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_body(body: Any) -> str | None:
    """The error message Azure would return for an invalid chat-completions body, or None."""
    if not isinstance(body, dict):
        return f"{json.dumps(body)} is not of type 'object'"
    if "messages" not in body:
        return "'messages' is a required property"
    messages = body["messages"]
    if not isinstance(messages, list):
        return f"{json.dumps(messages)[:80]} is not of type 'array' - 'messages'"
    if not messages:
        return "[] is too short - 'messages'"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            return f"'role' is a required property - 'messages.{index}'"
        if message["role"] not in ("system", "user", "assistant", "tool", "function", "developer"):
            return (
                f"'{message['role']}' is not one of ['system', 'assistant', 'user', 'function', 'tool'] "
                f"- 'messages.{index}.role'"
            )
    n = body.get("n", 1)
    if n is not None:
        if not _is_int(n):
            return f"{json.dumps(n)} is not of type 'integer' - 'n'"
        if n < 1:
            return f"{n} is less than the minimum of 1 - 'n'"
        if n > MAX_N:
            return f"{n} is greater than the maximum of {MAX_N} - 'n'"
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and not _is_int(value):
            return f"{json.dumps(value)} is not of type 'integer' - '{name}'"
        if value is not None and value < 1:
            return f"{value} is less than the minimum of 1 - '{name}'"
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
            return f"{json.dumps(temperature)} is not of type 'number' - 'temperature'"
        if not 0 <= temperature <= 2:
            bound = "less than the minimum of 0" if temperature < 0 else "greater than the maximum of 2"
            return f"{temperature} is {bound} - 'temperature'"
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        return f"{json.dumps(seed)} is not of type 'integer' - 'seed'"
    if body.get("stream"):
        return "stream=true is not supported by the pytest-llmbias stand-in server"
    return None


# ---------------------------------------------------------------------------
# HTTP server
# ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: StandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Quiet: clients that time out or disconnect mid-response are expected under fault injection.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Azure; the SDK pools connections
    server_version = "standin"
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.standin._track_connection(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.standin._untrack_connection(self.connection)

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        pass  # quiet: no request logging to stderr

    def do_POST(self) -> None:
        self.server.standin._handle(self)

    def do_GET(self) -> None:
        self.server.standin._handle(self)

    do_PUT = do_DELETE = do_PATCH = do_GET


class StandIn:
    """A stand-in Azure OpenAI chat-completions endpoint on 127.0.0.1, served from a daemon thread.

    Use as a context manager (``with StandIn() as server: ...``) or call start()/stop().
    """

    def __init__(
        self,
        *,
        port: int = 0,
        api_key: str | None = DEFAULT_API_KEY,
        deployments: Iterable[str] | Mapping[str, Model] | None = frozenset({DEFAULT_DEPLOYMENT}),
        model_name: str = DEFAULT_MODEL_NAME,
        seed: int = 0,
        planted: Mapping[str, Planted] | None = None,
        default_planted: Planted | None = None,
        latency: float = 0.0,
        tpm: int | None = None,
        rpm: int | None = None,
        window_seconds: float = 60.0,
        prompt_filter_triggers: Iterable[str] = DEFAULT_PROMPT_FILTER_TRIGGERS,
        completion_filter_triggers: Iterable[str] = DEFAULT_COMPLETION_FILTER_TRIGGERS,
        system_fingerprint: str | None = None,
        keyless: bool = False,
        entra_token: str | None = DEFAULT_ENTRA_TOKEN,
        vary_repeats: bool = False,
        max_choices: int | None = None,
        rate_headers: str = "azure",
        charge: str = "estimate",
        served: Mapping[tuple[str | None, str], Iterable[str]] | None = None,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.requested_port = port
        self.api_key = api_key  # None accepts any (or no) key
        if isinstance(deployments, str):
            deployments = [deployments]
        # deployment -> its model (reasoning or not); names given without one run the default chat model
        self._models: dict[str, Model] = dict(deployments) if isinstance(deployments, Mapping) else {}
        self.deployments = None if deployments is None else frozenset(deployments)  # None accepts any
        self.keyless = keyless  # disableLocalAuth: keys are refused with 403 AuthenticationTypeDisabled
        self.entra_token = entra_token  # the Entra ID bearer token accepted (None: any, when keyless)
        self.token_requests: list[str] = []  # resources asked of the managed-identity endpoint
        # True: a repeated request draws new answers, as a model does (n single requests instead of one
        # with n choices); False (the default): the same request always gets the same answers.
        self.vary_repeats = vary_repeats
        self._served: dict[str, int] = {}  # answers given per exact request body
        # At most this many choices whatever n asks (1: a server or gateway that ignores n, as some emulators do).
        self.max_choices = max_choices
        # "azure": every x-ratelimit-* header, durations like "250ms"/"2s", retry-after-ms on a 429. "poor", as an
        # open-source emulator sends them: no x-ratelimit-limit-*, resets as bare whole seconds, retry-after in
        # whole seconds only, a 429 body {"error": "text"} without a Content-Type.
        if rate_headers not in ("azure", "poor"):
            raise ValueError("rate_headers must be 'azure' or 'poor'")
        self.rate_headers = rate_headers
        # What a request costs against the TPM window: "estimate" (prompt + max_tokens x n, as Azure) or
        # "max_tokens" (max_tokens once, whatever the prompt and n: as the same emulator charges).
        if charge not in ("estimate", "max_tokens"):
            raise ValueError("charge must be 'estimate' or 'max_tokens'")
        self.charge = charge
        # Answers given rather than generated: (deployment or None for any, the last user message) -> texts,
        # handed out in order, n per request, from the first again once all were given (copies, as a cache
        # would return). Cut to the request's max_tokens as a model's would be. Real text served this way goes
        # through the plugin's whole live path (benchmarks/served_text.py).
        self._given_texts = {key: list(texts) for key, texts in (served or {}).items()}
        if any(not texts or not all(isinstance(text, str) for text in texts) for texts in self._given_texts.values()):
            raise ValueError("served: every prompt needs at least one answer text")
        self._given_next: dict[tuple[str | None, str], int] = {}
        self.model_name = model_name
        self.seed = seed
        self.planted = planted
        self.default_planted = default_planted
        self.latency = latency
        self.tpm = tpm
        self.rpm = rpm
        self.window_seconds = window_seconds
        self.prompt_filter_triggers = tuple(prompt_filter_triggers)
        self.completion_filter_triggers = tuple(completion_filter_triggers)
        model_hash = hashlib.sha256(model_name.encode()).hexdigest()[:10]
        self.system_fingerprint = system_fingerprint or f"fp_{model_hash}"
        self._lock = threading.Lock()
        self._faults: list[list[Any]] = []  # [fault, remaining count or None]
        self._records: list[RequestRecord] = []
        self._connections: set[socket.socket] = set()
        # Quotas are per minute; a window of W seconds allows limit * W / 60.
        self._token_window = _SlidingWindow(tpm * window_seconds / 60, window_seconds) if tpm else None
        self._request_window = (
            _SlidingWindow(max(math.floor(rpm * window_seconds / 60), 1), window_seconds) if rpm else None
        )
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> StandIn:
        """Bind 127.0.0.1 (port 0 = any free port) and serve from a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("StandIn is already running")
        self._stopping = threading.Event()
        httpd = _Server(("127.0.0.1", self.requested_port), _Handler)
        httpd.standin = self
        self._httpd = httpd
        # Short poll interval so stop() returns quickly.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="llmbias-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed handlers and close open connections."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive handlers would otherwise linger
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(timeout=2)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("StandIn is not running")
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        """The value for AZURE_OPENAI_ENDPOINT / azure_endpoint, e.g. 'http://127.0.0.1:53211/'."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def v1_endpoint(self) -> str:
        """The v1 API's base URL (AZURE_OPENAI_ENDPOINT for the plain OpenAI client), no api-version."""
        return f"{self.endpoint}openai/v1/"

    @property
    def serving_endpoints(self) -> str:
        """The Databricks Model Serving base URL shape, https://WORKSPACE/serving-endpoints."""
        return f"{self.endpoint}serving-endpoints"

    def environment(self, api_version: str = DEFAULT_API_VERSION) -> dict[str, str]:
        """The AZURE_OPENAI_* variables a client needs to reach this stand-in (a token when keyless)."""
        credential = ({"AZURE_OPENAI_AD_TOKEN": self.entra_token or DEFAULT_ENTRA_TOKEN} if self.keyless
                      else {"AZURE_OPENAI_API_KEY": self.api_key or DEFAULT_API_KEY})
        return {"AZURE_OPENAI_ENDPOINT": self.endpoint, **credential, "AZURE_OPENAI_API_VERSION": api_version}

    # -- fault injection ---------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each applies to its next ``count`` matching requests, in FIFO order."""
        with self._lock:
            self._faults.extend([fault, fault.count] for fault in faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[tuple[Fault, int | None]]:
        """Pending faults with their remaining counts (None = unlimited)."""
        with self._lock:
            return [(fault, remaining) for fault, remaining in self._faults]

    def _take_fault(self, prompt: str | None) -> Fault | None:
        with self._lock:
            for entry in self._faults:
                fault, remaining = entry
                if fault.match is not None and (prompt is None or fault.match not in prompt):
                    continue
                if remaining is not None:
                    entry[1] = remaining - 1
                    if entry[1] <= 0:
                        self._faults.remove(entry)
                return fault
        return None

    # -- introspection -----------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return [replace(record) for record in self._records]

    @property
    def counts(self) -> dict[int, int]:
        """Answered requests by status (DROPPED = 0 for connections closed without a response)."""
        with self._lock:
            return dict(Counter(r.status for r in self._records if r.status is not None))

    def reset(self) -> None:
        """Forget recorded requests and quota usage (faults stay)."""
        with self._lock:
            self._records.clear()
            self._served.clear()
            self._given_next.clear()
            if self._token_window:
                self._token_window = _SlidingWindow(self._token_window.limit, self.window_seconds)
            if self._request_window:
                self._request_window = _SlidingWindow(self._request_window.limit, self.window_seconds)

    def _track_connection(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack_connection(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    # -- request handling --------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        arrived = time.time()
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""  # always drain, so keep-alive stays in sync
        url = urlsplit(handler.path)
        if url.path == MANAGED_IDENTITY_PATH and handler.command == "GET":
            self._send(handler, self._managed_identity_token(handler, parse_qs(url.query)))
            return
        api_version = parse_qs(url.query).get("api-version", [None])[0]
        shape, deployment = _route(url.path)
        try:
            body: Any = json.loads(raw) if raw else None
            body_is_json = bool(raw)
        except (ValueError, UnicodeDecodeError):
            body, body_is_json = None, False
        if shape in _BODY_ROUTED and isinstance(body, dict) and isinstance(body.get("model"), str):
            deployment = body["model"]  # v1, Databricks and OpenAI route by the body's model
        record = RequestRecord(
            method=handler.command,
            path=url.path,
            deployment=deployment,
            api_version=api_version,
            headers=_redacted_headers(handler.headers.items()),
            body=body,
            time=arrived,
            shape=shape,
        )
        with self._lock:
            self._records.append(record)

        reply, delay, drop = self._decide(handler, record, body, body_is_json)
        if delay > 0 and self._stopping.wait(delay):
            drop = True  # server stopping: do not answer a delayed request
        if drop:
            self._set_status(record, DROPPED)
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        assert reply is not None
        self._set_status(record, reply.status)
        self._send(handler, reply)

    def _set_status(self, record: RequestRecord, status: int) -> None:
        with self._lock:
            record.status = status

    def _decide(
        self, handler: _Handler, record: RequestRecord, body: Any, body_is_json: bool
    ) -> tuple[_Reply | None, float, bool]:
        """The reply for a request, plus the delay before it and whether to drop the connection instead."""
        shape = record.shape
        if shape is None or handler.command != "POST":
            return _Reply(404, _RESOURCE_NOT_FOUND), 0.0, False
        refused = self._auth_problem(handler, shape)
        if refused is not None:
            return refused, 0.0, False
        if shape == "classic" and (not record.api_version or not _API_VERSION_RE.match(record.api_version)):
            return _Reply(404, _RESOURCE_NOT_FOUND), 0.0, False
        if shape == "v1" and record.api_version not in _V1_API_VERSIONS:
            return _Reply(400, _V1_API_VERSION_NOT_ALLOWED), 0.0, False
        if shape in _BODY_ROUTED and not body_is_json:
            return _Reply(400, _invalid_request(_BAD_JSON_MESSAGE)), 0.0, False
        if record.deployment is None:
            return _Reply(400, _invalid_request("you must provide a model parameter")), 0.0, False
        if self.deployments is not None and record.deployment not in self.deployments:
            return _Reply(404, _not_found(shape, record.deployment)), 0.0, False

        prompt = None  # faults with a `match` only apply to parseable prompts
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            prompt = "\n".join(_message_text(m) for m in body["messages"])
        fault = self._take_fault(prompt)
        delay = 0.0
        if fault is not None:
            with self._lock:
                record.fault = fault
            delay = fault.delay
            if fault.drop:
                return None, delay, True
            if fault.status is not None:
                return fault_reply(fault, record.api_version), delay, False

        if not body_is_json:
            return _Reply(400, _invalid_request(_BAD_JSON_MESSAGE)), delay, False
        problem = _validate_body(body)
        if problem is not None:
            return _Reply(400, _invalid_request(problem)), delay, False
        model = self.model_for(record.deployment)
        refusal = model_error(body, model)
        if refusal is not None:
            return _Reply(400, refusal), delay, False

        throttled, quota_headers = self._admit(body, record.api_version)
        if throttled is not None:
            return throttled, delay, False
        user_text = _user_texts(body)
        if any(trigger in user_text for trigger in self.prompt_filter_triggers):
            return _Reply(400, _content_filter_error()), delay, False
        reply = self._completion(body, user_text, model, record.deployment)
        reply.headers.update(quota_headers)
        return reply, delay + self.latency, False

    def _managed_identity_token(self, handler: _Handler, query: Mapping[str, list[str]]) -> _Reply:
        """An App Service managed identity's token endpoint (IDENTITY_ENDPOINT), so DefaultAzureCredential
        really runs against the stand-in; it hands out the accepted Entra ID token."""
        resource = query.get("resource", [""])[0]
        with self._lock:
            self.token_requests.append(resource)
        if not handler.headers.get("X-IDENTITY-HEADER"):
            return _Reply(400, {"error": "invalid_request", "error_description": "X-IDENTITY-HEADER missing"})
        return _Reply(200, {"access_token": self.entra_token or DEFAULT_ENTRA_TOKEN,
                            "expires_on": str(int(time.time()) + 3600), "resource": resource,
                            "token_type": "Bearer", "client_id": "00000000-0000-0000-0000-000000000000"})

    @property
    def managed_identity_environment(self) -> dict[str, str]:
        """IDENTITY_ENDPOINT and IDENTITY_HEADER: DefaultAzureCredential then signs in as a managed identity."""
        return {"IDENTITY_ENDPOINT": f"{self.endpoint.rstrip('/')}{MANAGED_IDENTITY_PATH}",
                "IDENTITY_HEADER": "standin-identity-header"}

    def model_for(self, deployment: str) -> Model:
        """The model behind a deployment (the default chat model unless configured otherwise)."""
        return self._models.get(deployment) or Model(name=self.model_name)

    def _auth_problem(self, handler: _Handler, shape: str) -> _Reply | None:
        """None when the request's credential is accepted, else Azure's 401/403 for it."""
        key = handler.headers.get("api-key")
        authorization = handler.headers.get("Authorization") or ""
        bearer = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
        if self.entra_token is not None and bearer == self.entra_token and key is None:
            return None
        sent_key = key is not None or (bearer is not None and self.api_key is not None and bearer == self.api_key)
        if self.keyless:
            if sent_key:  # a keyless resource (disableLocalAuth) refuses every key, right or wrong
                return _Reply(403, _AUTHENTICATION_TYPE_DISABLED)
            if self.entra_token is None and bearer:
                return None
            return _Reply(401, _databricks_denied() if shape == "databricks" else _INVALID_TOKEN)
        if self.api_key is None:
            return None
        if key == self.api_key or (key is None and bearer == self.api_key):
            return None
        if shape == "databricks":
            return _Reply(401, _databricks_denied())
        return _Reply(401, _INVALID_TOKEN if bearer is not None and key is None else _ACCESS_DENIED)

    def _admit(self, body: Mapping[str, Any], api_version: str | None) -> tuple[_Reply | None, dict[str, str]]:
        """Charge the request against the TPM/RPM windows; a 429 reply if it does not fit."""
        cost = self.charge_of(body)
        now = time.monotonic()
        with self._lock:
            token_wait = self._token_window.wait_for(cost, now) if self._token_window else 0.0
            request_wait = self._request_window.wait_for(1, now) if self._request_window else 0.0
            if token_wait == 0.0 and request_wait == 0.0:
                if self._token_window:
                    self._token_window.add(cost, now)
                if self._request_window:
                    self._request_window.add(1, now)
            if self._token_window:
                remaining_tokens = self._token_window.remaining(now)
            else:
                remaining_tokens = max(NOMINAL_TPM - cost, 0)
            remaining_requests = self._request_window.remaining(now) if self._request_window else NOMINAL_RPM - 1
            token_reset = self._token_window.reset_in(now) if self._token_window else 0.0
            request_reset = self._request_window.reset_in(now) if self._request_window else 0.0
        wait = max(token_wait, request_wait)
        retry_after_ms = max(math.ceil(wait * 1000), 1) if wait > 0.0 else None
        headers = rate_limit_headers(
            limit_tokens=self.tpm or NOMINAL_TPM, limit_requests=self.rpm or NOMINAL_RPM,
            remaining_tokens=remaining_tokens, remaining_requests=remaining_requests,
            reset_tokens_s=token_reset, reset_requests_s=request_reset, retry_after_ms=retry_after_ms)
        kind = "token" if token_wait >= request_wait else "call"
        if self.rate_headers == "poor":
            headers = _poor_headers(headers)
            if retry_after_ms is None:
                return None, headers
            text = json.dumps({"error": f"Rate limit exceeded ({kind}s). Retry after {headers['retry-after']} s."})
            return _Reply(429, None, headers, text=text, content_type=""), headers
        if retry_after_ms is None:
            return None, headers
        body_429 = _rate_limit_body(api_version, int(headers["retry-after"]), kind)
        return _Reply(429, body_429, headers), headers

    def charge_of(self, body: Mapping[str, Any]) -> int:
        """Tokens a request takes from the TPM window, as this server counts them."""
        if self.charge == "max_tokens":
            return _requested_max_tokens(body) or UNSET_MAX_TOKENS_QUOTA
        return estimate_request_tokens(body)

    def _given(self, deployment: str | None, body: Mapping[str, Any], n: int) -> list[tuple[str, str]] | None:
        """The next n of the texts given for this deployment and prompt (None: none given), cut at max_tokens."""
        prompt = _last_user_text(body)
        key = (deployment, prompt) if (deployment, prompt) in self._given_texts else (None, prompt)
        texts = self._given_texts.get(key)
        if texts is None:
            return None
        with self._lock:
            start = self._given_next.get(key, 0)
            self._given_next[key] = start + n
        from . import text_zh

        answers = []
        for index in range(start, start + n):
            text = texts[index % len(texts)]
            truncate = text_zh.truncate_to_tokens if text_zh.is_chinese(text) else _truncate_to_tokens
            content, truncated = truncate(text, _requested_max_tokens(body))
            answers.append((content, "length" if truncated else "stop"))
        return answers

    def _answers(self, body: Mapping[str, Any], n: int, model: Model,
                 deployment: str | None = None) -> tuple[list[tuple[str, str]], list[int]]:
        """(content, finish_reason) per choice and the hidden reasoning tokens each spent."""
        given = self._given(deployment, body, n) if self._given_texts else None
        if given is not None:  # a reasoning deployment answers given texts too, with no hidden reasoning
            return given, [0] * n
        first = self._repeats(body, n)
        if not model.reasoning:
            answers = generate_answers(body, n, self.seed, self.planted, default_planted=self.default_planted,
                                       first_index=first)
            return answers, [0] * n
        budget = body.get("max_completion_tokens")
        unlimited = {name: value for name, value in body.items() if name != "max_completion_tokens"}
        drafts = generate_answers(unlimited, n, self.seed, self.planted, default_planted=self.default_planted,
                                  first_index=first)
        answers, spent = [], []
        for index, (draft, _) in enumerate(drafts, first):
            thinking = reasoning_tokens(body, self.seed, index)
            if budget is not None and thinking >= budget:  # the budget went on reasoning: nothing visible
                answers.append(("", "length"))
                spent.append(budget)
                continue
            content, truncated = _truncate_to_tokens(draft, None if budget is None else budget - thinking)
            answers.append((content, "length" if truncated else "stop"))
            spent.append(thinking)
        return answers, spent

    def _repeats(self, body: Mapping[str, Any], n: int) -> int:
        """How many answers this exact request already got: a repeat draws new ones (n single requests
        instead of one with n choices get n different answers, as from a real model)."""
        if not self.vary_repeats:
            return 0
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        with self._lock:
            served = self._served.get(canonical, 0)
            self._served[canonical] = served + n
        return served

    def _completion(self, body: Mapping[str, Any], user_text: str, model: Model,
                    deployment: str | None = None) -> _Reply:
        n = body.get("n") or 1
        if self.max_choices is not None:
            n = min(n, self.max_choices)
        answers, thinking = self._answers(body, n, model, deployment)
        choices: list[dict[str, Any]] = []
        for index, (content, finish_reason) in enumerate(answers):
            choices.append(
                {
                    "content_filter_results": _choice_filter_results(),
                    "finish_reason": finish_reason,
                    "index": index,
                    "logprobs": None,
                    "message": {"content": content, "refusal": None, "role": "assistant"},
                }
            )
        if any(trigger in user_text for trigger in self.completion_filter_triggers):
            # Completion-side filter: the first choice is cut after its first sentence.
            first = choices[0]
            partial = re.match(r"[^.!?]*[.!?]?", first["message"]["content"] or "")
            first["message"]["content"] = partial.group(0) if partial else ""
            first["finish_reason"] = "content_filter"
            first["content_filter_results"]["violence"] = {"filtered": True, "severity": "medium"}
        prompt_tokens = estimate_prompt_tokens(body)
        visible_tokens = sum(estimate_tokens(c["message"]["content"] or "") for c in choices)
        completion_tokens = visible_tokens + sum(thinking)
        payload = {
            "choices": choices,
            "created": int(time.time()),
            "id": "chatcmpl-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(29)),
            "model": model.name,
            "object": "chat.completion",
            "prompt_filter_results": _prompt_filter_results(),
            "system_fingerprint": self.system_fingerprint,
            "usage": {
                "completion_tokens": completion_tokens,
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0,
                                              "reasoning_tokens": sum(thinking), "rejected_prediction_tokens": 0},
                "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
            },
        }
        return _Reply(200, payload, {"x-ms-rai-invoked": "true", "azureml-model-session": "d001-standin"})

    def _send(self, handler: _Handler, reply: _Reply) -> None:
        data = (reply.text if reply.text is not None else json.dumps(reply.payload)).encode()
        request_id = str(uuid.uuid4())
        handler.send_response(reply.status)
        headers = {
            **({"Content-Type": reply.content_type} if reply.content_type else {}),
            "apim-request-id": request_id,
            "x-request-id": request_id,
            "x-ms-region": "standin",
            "x-content-type-options": "nosniff",
            **reply.headers,
        }
        client_request_id = handler.headers.get("x-ms-client-request-id")
        if client_request_id:
            headers["x-ms-client-request-id"] = client_request_id
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _poor_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Azure's rate-limit headers as a headers-poor server sends them."""
    poor = {name: value for name, value in headers.items()
            if name.startswith("x-ratelimit-remaining-") or name == "retry-after"}
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        seconds = parse_duration(headers.get(name))
        if seconds is not None:
            poor[name] = str(math.ceil(seconds))
    return poor


def _redacted_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        lowered = name.lower()
        if lowered == "api-key":
            value = "[redacted]"
        elif lowered == "authorization":
            value = "Bearer [redacted]" if value.lower().startswith("bearer ") else "[redacted]"
        headers[lowered] = value
    return headers



"""The one place that builds the openai client and sends chat requests."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from .cassettes import CassetteLibrary, TransportNotIntercepted, is_cassette_miss, make_transport
from .providers import (DEFAULT_API_VERSION, DEFAULT_TOKEN_SCOPE, KEYLESS_HOW, NO_KEY,  # noqa: F401 (as before)
                        PROVIDERS, ConfigError, Settings, azure_shape, callable_api_key_supported,
                        entra_token_provider, provider_for, provider_from_env)
from .wire import (UNSET_MAX_TOKENS_QUOTA, RECORDED_HEADER, ChatRequest, Completion,  # noqa: F401 (the client's types)
                   RequestFailed, RunStopped, categories, completion_from_body, redact, remember_secret,
                   replayed_completion, request_key, secrets_in)
from .throttle import rate_limit_kind, retry_after

DEFAULT_DEPLOYMENT = "gpt-35-turbo"
# Retries are ours (the SDK's are off): they see the limiter, and a cassette miss is never retried.
DEFAULT_ATTEMPTS = 6
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 20.0
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
# A retry-after longer than the run's timeout (within these bounds) fails the request instead of holding it.
RETRY_AFTER_FLOOR_S = 60.0
RETRY_AFTER_CEILING_S = 600.0


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
    import dataclasses

    import openai

    # Whatever authenticates the run is masked wherever a server quotes it back (an error body, a page)
    for secret in (settings.api_key, settings.ad_token):
        remember_secret(secret)
    if settings.token_provider is not None:
        provider = settings.token_provider
        settings = dataclasses.replace(settings, token_provider=lambda: remember_secret(provider()))
    module = httpx_module()
    if library is not None:
        network = None if library.mode == "replay" else _deadline_transport(module, module.HTTPTransport(),
                                                                              settings.timeout)
        http_client = openai.DefaultHttpxClient(transport=make_transport(library, module, network))
    else:  # hooks, not a transport: a transport of our own would turn off the proxies the environment names
        http_client = openai.DefaultHttpxClient(event_hooks=_deadline_hooks(module, settings.timeout))
    common: dict[str, Any] = {"timeout": settings.timeout, "max_retries": 0, "http_client": http_client}
    client = provider_for(settings).client(openai, settings, common)
    client.llmbias_shape = settings.shape  # which variables an error's hint names (not the URL's look)
    return client


# --llm-timeout is how long one request may take: the HTTP library's read timeout is per chunk, and a server
# that trickles its answer a byte a second would hold a request far past it. Each response's body is read
# against a deadline from when its request was sent.


def _within(module: Any, response: Any, deadline: float, seconds: float) -> None:
    """Have `response`'s body read before `deadline` (a timeout, as the SDK reports one, after it)."""

    class Deadline(module.SyncByteStream):
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def __iter__(self) -> Any:
            for chunk in self._stream:
                if time.monotonic() > deadline:
                    raise module.ReadTimeout(f"the answer took longer than {seconds:g} s",
                                             request=response.request)
                yield chunk

        def close(self) -> None:
            self._stream.close()

    response.stream = Deadline(response.stream)


def _deadline_hooks(module: Any, seconds: float) -> dict[str, list[Any]]:
    import weakref

    sent: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def request(request: Any) -> None:
        sent[request] = time.monotonic()

    def response(response: Any) -> None:
        _within(module, response, sent.pop(response.request, time.monotonic()) + seconds, seconds)

    return {"request": [request], "response": [response]}


def _deadline_transport(module: Any, inner: Any, seconds: float) -> Any:
    """The network transport of a record run, its responses read against the deadline (see above)."""

    class DeadlineTransport(module.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            deadline = time.monotonic() + seconds
            response = inner.handle_request(request)
            response.request = request
            _within(module, response, deadline, seconds)
            return response

        def close(self) -> None:
            inner.close()

    return DeadlineTransport()


_CJK = re.compile("[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")  # CJK marks, Han characters, full-width forms


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """About four characters a token (a Chinese character 1.3: cl100k-style tokenizers spend one or two on one),
    plus the per-message overhead of the chat format."""
    texts = [message["content"] for message in request.messages()]
    wide = sum(len(_CJK.findall(text)) for text in texts)
    narrow = sum(len(text) for text in texts) - wide
    return narrow // 4 + math.ceil(1.3 * wide) + 4 * len(request.messages()) + 3


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
        sleep: Any = time.sleep, rng: Any = None, answered: Any = None, choices: int | None = None) -> Completion:
    """Send one chat request with n samples, retrying throttling and faults; raise RequestFailed
    (RunStopped when no request of the run can succeed, NRefused when n > 1 is refused).
    `answered` is called once the deployment has taken a request: with the completion on an answer,
    with None on throttling or a fault; not on a refusal. `choices`: how many answers the deployment is known to
    return whatever n asks (one that ignores n): the quota is booked for those."""
    import random

    import openai

    rng = rng or random.Random()
    throttled = 0
    last_problem = ""
    for attempt in range(1, attempts + 1):
        cost = 0
        if limiter is not None:
            cost = limiter.cost(estimate_prompt_tokens(request), request.budget * min(request.n, choices or request.n))
            limiter.acquire(cost)
        started = time.perf_counter()
        try:
            raw = client.chat.completions.with_raw_response.create(**_create_arguments(request))
            try:
                answer = _completion(raw, time.perf_counter() - started, attempt, throttled)
            except RequestFailed as failed:  # a 200 that is no chat completion: the deployment answered all the same
                if answered is not None and RECORDED_HEADER not in raw.headers:
                    answered(None)
                if limiter is not None:
                    limiter.responded()
                if not isinstance(failed, CutShort) or RECORDED_HEADER in raw.headers or attempts == 1:
                    raise
                # JSON cut short or an empty body: a connection dropped on the way, tried again like a 502
                last_problem = str(failed)
                if attempt == attempts:
                    raise RequestFailed(f"gave up after {attempts} attempts ({throttled} throttled); "
                                        f"last: {last_problem}") from None
                sleep(_backoff(attempt, rng))
                continue
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
            shape = getattr(client, "llmbias_shape", None)
            last_problem = _describe_status_error(error, shape)
            refusal = _refusal(error, request, shape)
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
            longest = _longest_wait(client)
            if wait is not None and wait > longest:  # a day's retry-after: said, not waited for at every attempt
                if error.status_code == 429 and limiter is not None:
                    limiter.throttled(None, cost, None)
                raise RequestFailed(f"{last_problem}; the server asks to wait {_duration(wait)} before trying "
                                    f"again, longer than a request waits ({_duration(longest)})") from error
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
            if limiter is not None:  # no answer will come from this request: nobody waits for it
                limiter.unanswered()
            wait = _backoff(attempt, rng)
        if attempt < attempts:
            sleep(wait)
    raise RequestFailed(f"gave up after {attempts} attempts ({throttled} throttled); last: {last_problem}")


def _timeout_of(client: Any) -> float | None:
    timeout = getattr(client, "timeout", None)
    seconds = getattr(timeout, "read", timeout)  # a float, or an httpx Timeout
    return float(seconds) if isinstance(seconds, (int, float)) else None


def _longest_wait(client: Any) -> float:
    """The longest retry-after a request waits: the run's timeout, within a minute and ten."""
    return min(max(RETRY_AFTER_FLOOR_S, _timeout_of(client) or 0.0), RETRY_AFTER_CEILING_S)


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:g} s"


def _timed_out(client: Any) -> str:
    seconds = _timeout_of(client)
    after = f" after {seconds:g} s" if seconds is not None else ""
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


def _refusal(error: Any, request: ChatRequest, shape: str | None = None) -> RequestFailed | None:
    """A 4xx that every request of the run would meet, as the one line that stops the run; or
    NRefused for a refused n > 1; else None. `shape`: the settings' endpoint shape (which variables to name)."""
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    inner = inner if isinstance(inner, dict) else {}
    found_code, message = error_wording(error)
    code = found_code or ""
    param = inner.get("param") or _quoted_parameter(message)
    if error.status_code == 404:
        deployment, endpoint_hint = _missing_deployment(error, shape)
        return DeploymentNotFound(deployment, _status_line(error), endpoint_hint)
    if error.status_code == 429 and "insufficient_quota" in (code, inner.get("type")):
        return RunStopped(f"{_status_line(error)} (the account's quota or credit is spent: not throttling, waiting "
                          "will not help); no request of this run can succeed")
    if error.status_code in (401, 403):
        if code == "AuthenticationTypeDisabled":
            return RunStopped(f"HTTP 403 AuthenticationTypeDisabled: this resource accepts no keys: {KEYLESS_HOW}")
        return RunStopped(f"{_describe_status_error(error, shape)}; no request of this run can succeed")
    if error.status_code != 400:
        return None
    if param == "n" and request.n > 1:
        return NRefused(_describe_status_error(error, shape))
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
    """The SDK's parsed response through the same parser as a cassette's body (wire.completion_from_body); a
    200 that is no chat completion (a sign-in page, a stream, JSON cut short, an error object) is a failed
    request, said in one line."""
    try:
        data = json.loads(raw.http_response.content)
    except ValueError:
        data = None
    completion = None
    if isinstance(data, dict) and isinstance(data.get("choices"), list):
        try:  # the SDK's model: extra fields (content_filter_results) included
            body = raw.parse().model_dump(mode="json")
        except Exception:  # a shape the SDK's model does not take: said below as it came
            body = data
        completion = completion_from_body(body, latency=latency, replayed=RECORDED_HEADER in raw.headers,
                                          attempts=attempts, throttled=throttled)
    if completion is None:
        content = raw.http_response.content
        cut = data is None and (not content.strip() or content.lstrip().startswith((b"{", b"[")))
        raise (CutShort if cut else RequestFailed)(not_a_completion(raw.http_response, data))
    return completion


class CutShort(RequestFailed):
    """A 200 whose JSON stops short, or whose body is empty: the answer was lost on the way (tried again)."""


def not_a_completion(response: Any, data: Any) -> str:
    """One line for a 200 whose body is no chat completion: what came (its content type) and, when the
    server said something (an error object, a page's title), its own words; never a credential."""
    media = (response.headers.get("content-type") or "").split(";")[0].strip() or "no content type"
    text = response.content.decode("utf-8", "replace")
    if isinstance(data, dict) and data.get("choices") == []:  # without a content filter saying why
        return "HTTP 200 with no choices (and no content filter result saying it withheld them)"
    if isinstance(data, dict) and any(name in data for name in _MESSAGE_FIELDS) and _words(data):
        said = repr(_words(data)[:120])  # {"error": {"message": ...}} with a 200: the server's words
    elif isinstance(data, dict) and isinstance(data.get("choices"), list):
        said = f"choices of another shape: {json.dumps(data['choices'])[:100]}"
    elif isinstance(data, dict):
        said = f"JSON without choices: {', '.join(list(data)[:6]) or 'an empty object'}"
    elif data is not None:
        said = f"JSON that is no object: {text.strip()[:60]!r}"
    elif text.lstrip().startswith(("{", "[")):
        said = f"JSON cut short after {len(response.content)} bytes"
    else:
        said = repr(_words(text)[:120]) if text.strip() else "an empty body"
    return redact(f"HTTP 200 but not a chat completion ({media}: {said})", secrets_in(None))


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
    # a server may quote the key or token it refused: never passed on
    secrets = secrets_in(getattr(getattr(error, "request", None), "headers", None))
    if code_text is not None:
        code_text = redact(code_text, secrets)
    return code_text, redact(message, secrets) or "no error message in the response"


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


def _service_of(path: str, shape: str | None) -> str:
    """"azure", "openai" or "databricks": from the settings' endpoint shape; without it, guessed from the path."""
    if shape is not None:
        return {"classic": "azure", "v1": "azure"}.get(shape, shape)
    if "/serving-endpoints" in path:
        return "databricks"
    return "azure" if path.startswith("/openai/") else "openai"


def _missing_deployment(error: Any, shape: str | None = None) -> tuple[str, str]:
    """(the deployment a 404 was for, the endpoint settings that could be wrong instead)."""
    request = getattr(error, "request", None)
    # openai 1.x joins an endpoint ending in "/" into "//openai/...": one slash is what matters
    path = "/" + (getattr(getattr(request, "url", None), "path", "") or "").lstrip("/")
    if "/deployments/" in path:
        deployment = path.split("/deployments/", 1)[-1].split("/", 1)[0]
    else:  # the v1, OpenAI and Databricks shapes name it in the body
        deployment = _model_of(request)
    service = _service_of(path, shape)
    if service == "databricks":
        return deployment, "DATABRICKS_HOST (the serving endpoint may be in another workspace)"
    if service == "openai":
        return deployment, "OPENAI_BASE_URL (the model may be served elsewhere)"
    version = " and AZURE_OPENAI_API_VERSION" if "/deployments/" in path else ""
    return deployment, f"AZURE_OPENAI_ENDPOINT (the deployment may be on another resource){version}"


def _describe_status_error(error: Any, shape: str | None = None) -> str:
    request = getattr(error, "request", None)
    path = "/" + (getattr(getattr(request, "url", None), "path", "") or "").lstrip("/")
    hint = ""
    if error.status_code == 404:
        deployment, where = _missing_deployment(error, shape)
        hint = f" (deployment {deployment!r}: check --llm-deployment / the YAML's deployment, {where})"
    elif error.status_code in (401, 403):
        service = _service_of(path, shape)
        if service == "databricks":
            hint = " (check DATABRICKS_TOKEN and that it may query the serving endpoint)"
        elif service == "openai":
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

"""The one place that builds the openai client and sends chat requests."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class Settings:
    endpoint: str
    api_key: str = field(repr=False)
    api_version: str
    timeout: float = 60.0

    @classmethod
    def from_env(cls, *, needs_network: bool, environ: dict[str, str] | None = None,
                 api_key: str | None = None) -> Settings:
        """Settings from the lab's variables; `api_key`, when given, wins over AZURE_OPENAI_API_KEY."""
        env = os.environ if environ is None else environ
        endpoint = env.get("AZURE_OPENAI_ENDPOINT", "").strip()
        api_key = (api_key or env.get("AZURE_OPENAI_API_KEY", "")).strip()
        api_version = env.get("AZURE_OPENAI_API_VERSION", "").strip() or DEFAULT_API_VERSION
        if not needs_network:
            # Replay: a cassette miss must never fall through to a real resource.
            return cls(REPLAY_ENDPOINT, REPLAY_KEY, api_version)
        missing = [name for name, value in (("AZURE_OPENAI_ENDPOINT", endpoint),
                                            ("AZURE_OPENAI_API_KEY", api_key)) if not value]
        if missing:
            raise ConfigError(f"{' and '.join(missing)} not set: --llm-record and --llm-live call "
                              "the deployment (see README, 'Recording against your deployment')")
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(endpoint)
            valid = parts.scheme in ("https", "http") and bool(parts.hostname) and (parts.port or 0) >= 0
        except ValueError:  # unbalanced brackets, a port that is not a number
            valid = False
        if not valid:
            # The value may carry credentials: show its scheme and length only.
            raise ConfigError("AZURE_OPENAI_ENDPOINT is not a URL like https://my-resource.openai.azure.com/ "
                              f"({len(endpoint)} characters, starting {endpoint[:8]!r})")
        return cls(endpoint, api_key, api_version)


@dataclass(frozen=True)
class ChatRequest:
    deployment: str
    system_prompt: str
    prompt: str
    max_tokens: int
    temperature: float
    n: int

    def messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return messages + [{"role": "user", "content": self.prompt}]

    @property
    def key(self) -> str:
        """Identity of the request as cassettes match it: deployment + canonical body."""
        body = {"messages": self.messages(), "max_tokens": self.max_tokens,
                "temperature": self.temperature, "n": self.n}
        return request_key(self.deployment, body)


def request_key(deployment: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{deployment}\n{canonical}"


@dataclass(frozen=True)
class Completion:
    texts: tuple[str, ...]
    finish_reasons: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int
    model: str
    response_id: str
    latency_s: float
    replayed: bool
    # Azure's content filter, per sample: "" when not filtered, else "category:severity,...".
    filtered: tuple[str, ...] = ()
    attempts: int = 1
    throttled: int = 0                  # 429s met on the way


# Set on responses as they are written to a cassette, so a replayed answer can be told from a fresh one.
RECORDED_HEADER = "x-llmbias-recorded-at"
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
    """The Azure client; with a cassette library, its requests go through the cassette transport."""
    import openai

    http_client = None
    if library is not None:
        from .cassettes import make_transport

        module = httpx_module()
        network = None if library.mode == "replay" else module.HTTPTransport()
        http_client = openai.DefaultHttpxClient(transport=make_transport(library, module, network))
    return openai.AzureOpenAI(
        azure_endpoint=settings.endpoint,
        api_key=settings.api_key,
        api_version=settings.api_version,
        timeout=settings.timeout,
        max_retries=0,
        http_client=http_client,
    )


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """About four characters a token, plus the per-message overhead of the chat format."""
    prompt_chars = sum(len(message["content"]) for message in request.messages())
    return prompt_chars // 4 + 4 * len(request.messages()) + 3


def estimate_tokens(request: ChatRequest) -> int:
    """Tokens Azure charges against a TPM quota up front: prompt estimate + max_tokens x n."""
    return estimate_prompt_tokens(request) + request.max_tokens * request.n


def ask(client: Any, request: ChatRequest, *, attempts: int = DEFAULT_ATTEMPTS, limiter: Any = None,
        sleep: Any = time.sleep, rng: Any = None) -> Completion:
    """Send one chat request with n samples, retrying throttling and faults; raise RequestFailed."""
    import random

    import openai

    rng = rng or random.Random()
    throttled = 0
    last_problem = ""
    for attempt in range(1, attempts + 1):
        cost = 0
        if limiter is not None:
            cost = limiter.cost(estimate_prompt_tokens(request), request.max_tokens * request.n)
            limiter.acquire(cost)
        started = time.perf_counter()
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=request.deployment,
                messages=request.messages(),
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                n=request.n,
            )
            answer = _completion(raw, time.perf_counter() - started, attempt, throttled)
            if limiter is not None:  # the quota the deployment reports (none on a replay)
                limiter.observe({} if answer.replayed else raw.headers, 0 if answer.replayed else cost)
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
            if error.status_code not in RETRYABLE_STATUS:
                raise RequestFailed(last_problem) from error
            wait = _retry_after(error.response.headers)
            if error.status_code == 429:
                throttled += 1
                if limiter is not None:
                    limiter.throttled(wait, cost)
            if wait is None:
                wait = _backoff(attempt, rng)
        except openai.APIConnectionError as error:
            if _is_miss(error):
                raise
            last_problem = ("timed out" if isinstance(error, openai.APITimeoutError)
                            else f"connection failed: {_root_cause(error)}")
            wait = _backoff(attempt, rng)
        if attempt < attempts:
            sleep(wait)
    raise RequestFailed(f"gave up after {attempts} attempts ({throttled} throttled); last: {last_problem}")


def _is_miss(error: BaseException) -> bool:
    from .cassettes import is_cassette_miss

    return is_cassette_miss(error)


def _backoff(attempt: int, rng: Any) -> float:
    # Exponential with full jitter: retries from many threads spread out instead of hitting together.
    return rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


def _retry_after(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _completion(raw: Any, latency: float, attempts: int, throttled: int) -> Completion:
    completion = raw.parse()
    choices = sorted(completion.choices, key=lambda choice: choice.index)
    usage = completion.usage
    return Completion(
        texts=tuple(choice.message.content or "" for choice in choices),
        finish_reasons=tuple(choice.finish_reason or "" for choice in choices),
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        model=completion.model or "",
        response_id=completion.id or "",
        latency_s=latency,
        replayed=RECORDED_HEADER in raw.headers,
        filtered=tuple(_choice_filter(choice) for choice in choices),
        attempts=attempts,
        throttled=throttled,
    )


def _categories(results: Any) -> str:
    if not isinstance(results, dict):
        return ""
    return ",".join(f"{name}:{value.get('severity', 'filtered')}" for name, value in sorted(results.items())
                    if isinstance(value, dict) and value.get("filtered"))


def _choice_filter(choice: Any) -> str:
    if choice.finish_reason != "content_filter":
        return ""
    extra = getattr(choice, "model_extra", None) or {}
    return _categories(extra.get("content_filter_results")) or "filtered"


def _prompt_filter(error: Any) -> str | None:
    """Azure's content-filter 400 as an outcome: the categories that tripped, else None."""
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    if error.status_code != 400 or not isinstance(inner, dict) or inner.get("code") != "content_filter":
        return None
    result = (inner.get("innererror") or {}).get("content_filter_result")
    return _categories(result) or "filtered"


def _describe_status_error(error: Any) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    code = inner.get("code") if isinstance(inner, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else None
    text = (message or str(error)).splitlines()[0][:300]
    shown_code = f" {code}" if code and str(code) != str(error.status_code) else ""
    hint = ""
    if error.status_code == 404:
        request = getattr(error, "request", None)
        path = getattr(getattr(request, "url", None), "path", "") or ""
        deployment = path.split("/deployments/", 1)[-1].split("/", 1)[0] if "/deployments/" in path else "?"
        hint = (f" (deployment {deployment!r}: check --llm-deployment / the YAML's deployment, "
                "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_VERSION)")
    elif error.status_code in (401, 403):
        hint = " (check AZURE_OPENAI_API_KEY and that it belongs to AZURE_OPENAI_ENDPOINT's resource)"
    return f"HTTP {error.status_code}{shown_code}: {text}{hint}"


def _root_cause(error: BaseException) -> str:
    seen = error
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    return f"{type(seen).__name__}: {str(seen).splitlines()[0][:200] if str(seen) else ''}"

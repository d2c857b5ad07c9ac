"""What crosses the wire, with no SDK and no cassette in it: the chat request and its completion, the
failures a request can end in, the header that marks a recorded response, and the one parser of a
completion body (whether it came from the SDK or from a cassette). client.py and cassettes.py both
import it; it imports neither."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any


class RequestFailed(Exception):
    """A chat request that did not produce answers; the message never contains the key."""


class RunStopped(RequestFailed):
    """A failure every request of the run would meet (credentials, a model refusing the case file's
    settings): the run stops at the first request with this one line."""


@dataclass(frozen=True)
class ChatRequest:
    deployment: str
    system_prompt: str
    prompt: str
    max_tokens: int | None
    temperature: float | None         # None: sent without one (reasoning models take only the default)
    n: int
    # Adaptive sampling's later batches: the API's `user` field ("llmbias-batch-2") makes each batch its
    # own request, recorded and replayed like the first; the first batch sends none.
    user: str = ""
    max_completion_tokens: int | None = None
    reasoning_effort: str | None = None
    seed: int | None = None           # set on the single requests that stand in for a refused n > 1

    def messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return messages + [{"role": "user", "content": self.prompt}]

    def body(self) -> dict[str, Any]:
        """The JSON body as sent, without the deployment (which the classic path carries in the URL)."""
        body: dict[str, Any] = {"messages": self.messages(), "n": self.n}
        for name in ("max_tokens", "max_completion_tokens", "temperature", "reasoning_effort", "seed"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        if self.user:
            body["user"] = self.user
        return body

    @property
    def key(self) -> str:
        """Identity of the request as cassettes match it: deployment + canonical body."""
        return request_key(self.deployment, self.body())

    def sample(self, index: int) -> ChatRequest:
        """One of the n single requests asked instead of this one when n > 1 is refused: its own seed
        makes it a request of its own (its own answer, its own cassette entry). The first batch's seeds are
        0, 1, ... (as recorded); a later batch's start at SEED_STRIDE x (batch - 1): a server that ignores n
        but honours seed would otherwise give every batch the first one's answers."""
        return replace(self, n=1, seed=index + SEED_STRIDE * (self.batch - 1))

    @property
    def batch(self) -> int:
        """Which batch of adaptive sampling this request belongs to (1: the first, sent without `user`)."""
        found = re.fullmatch(r"llmbias-batch-(\d+)", self.user)
        return int(found.group(1)) if found else 1

    @property
    def budget(self) -> int:
        """Completion tokens charged per answer: the cap sent, else Azure's default reservation."""
        return self.max_tokens or self.max_completion_tokens or UNSET_MAX_TOKENS_QUOTA


# Seeds a batch's single requests take apart from another batch's: more than a batch's samples (max_samples
# is at most 1000), and within a 32-bit seed for thousands of batches.
SEED_STRIDE = 100_000
# What Azure reserves against the TPM quota for a request without a token cap.
UNSET_MAX_TOKENS_QUOTA = 1024
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
    reasoning_tokens: int = 0           # hidden tokens a reasoning model spent (within completion_tokens)


# Request headers that carry a credential; their values never reach a cassette, a log, a report or an error.
SECRET_HEADERS = frozenset({"api-key", "authorization", "proxy-authorization", "ocp-apim-subscription-key",
                            "x-api-key"})
REDACTED = "***"


# Placeholders the SDK is given where no credential is needed: not secrets, never masked.
_NOT_SECRETS = frozenset({"no-key", "replay-no-key"})
_known: set[str] = set()
_known_lock = threading.Lock()


def remember_secret(value: Any) -> Any:
    """Note a credential of this process's runs (a key, a token as a provider hands it out), so that every
    text the run shows or writes masks it; returns `value` (a token provider passes its token through)."""
    if isinstance(value, str) and len(value.strip()) >= 6 and value.strip() not in _NOT_SECRETS:
        with _known_lock:
            _known.add(value.strip())
    return value


def secrets_in(headers: Any) -> list[str]:
    """The credentials a request sent (an api-key's value, a bearer token without its scheme), and those the
    run's settings hold (the SDK may hand on a request without its credential headers)."""
    with _known_lock:
        found = list(_known)
    for name, value in (headers.items() if headers is not None else ()):
        if str(name).lower() not in SECRET_HEADERS or not value:
            continue
        value = str(value)
        scheme, _, token = value.partition(" ")
        found.append(token.strip() if token and scheme.lower() in ("bearer", "basic", "token") else value.strip())
    return [secret for secret in found if len(secret) >= 6 and secret not in _NOT_SECRETS]


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every credential the request sent masked: a server may quote it back in an error."""
    for secret in sorted(set(secrets), key=len, reverse=True):  # a longer one first: it may contain another
        text = text.replace(secret, REDACTED)
    return text


# Set on responses as they are written to a cassette, so a replayed answer can be told from a fresh one.
RECORDED_HEADER = "x-llmbias-recorded-at"


def completion_from_body(data: Any, *, latency: float, replayed: bool, attempts: int = 1,
                         throttled: int = 0) -> Completion | None:
    """A chat completion's JSON body (as a dict) as a Completion; None when it is not of the usual shape, or
    has no choices without the content filter saying it withheld them (prompt_filter_results)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not all(
            isinstance(choice, dict) and isinstance(choice.get("index"), int)
            and isinstance(choice.get("message"), dict)
            and isinstance(choice["message"].get("content"), (str, type(None)))
            for choice in choices):
        return None
    withheld = "" if choices else _prompt_filtered(data)
    if not choices and not withheld:  # no answer, and no content filter saying it withheld them
        return None
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("completion_tokens_details")
    choices = sorted(choices, key=lambda choice: choice["index"])
    return Completion(
        texts=tuple(choice["message"].get("content") or "" for choice in choices),
        finish_reasons=tuple(choice.get("finish_reason") or "" for choice in choices),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        model=data.get("model") or "",
        response_id=data.get("id") or "",
        latency_s=latency,
        replayed=replayed,
        filtered=tuple("" if choice.get("finish_reason") != "content_filter"
                       else categories(choice.get("content_filter_results")) or "filtered" for choice in choices)
        if choices else (withheld,),
        attempts=attempts,
        throttled=throttled,
        reasoning_tokens=int((details.get("reasoning_tokens") if isinstance(details, dict) else 0) or 0),
    )


def _prompt_filtered(data: dict[str, Any]) -> str:
    """The categories Azure's prompt filter tripped on a 200 without choices ("" when it tripped none)."""
    results = data.get("prompt_filter_results") or data.get("prompt_annotations")
    return ",".join(found for found in (categories(result.get("content_filter_results"))
                                        for result in (results if isinstance(results, list) else ())
                                        if isinstance(result, dict)) if found)


def replayed_completion(stored: dict[str, Any], latency: float = 0.0) -> Completion | None:
    """A recorded 200 answer read straight from the cassette's JSON (the replay fast path: the SDK builds no
    request and parses no response). Anything but a 200 chat completion of the usual shape gives None, and
    the caller replays it through the SDK instead, so an odd recording meets the handling it always did."""
    if stored.get("status", {}).get("code") != 200:
        return None
    try:
        data = json.loads(stored["body"]["string"])
    except (KeyError, TypeError, ValueError):
        return None
    recorded = any(name.lower() == RECORDED_HEADER for name in stored.get("headers", {}))  # as httpx: any case
    return completion_from_body(data, latency=latency, replayed=recorded)


def categories(results: Any) -> str:
    """Azure's content-filter results as "category:severity,..." of the categories that tripped."""
    if not isinstance(results, dict):
        return ""
    return ",".join(f"{name}:{value.get('severity', 'filtered')}" for name, value in sorted(results.items())
                    if isinstance(value, dict) and value.get("filtered"))

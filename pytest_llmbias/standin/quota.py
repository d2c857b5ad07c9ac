"""The stand-in's quota: TPM/RPM sliding windows and the 429s and headers Azure sends."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from .text import _requested_max_tokens, estimate_prompt_tokens

# Quota cost of a request without max_tokens (Azure also reserves a default budget for those).
UNSET_MAX_TOKENS_QUOTA = 1024
# Reported in x-ratelimit-* headers when no quota is configured (Azure S0 gpt-35-turbo defaults).
NOMINAL_TPM = 240_000
NOMINAL_RPM = 1_440


def estimate_request_tokens(body: Mapping[str, Any]) -> int:
    """Tokens a request reserves against the TPM quota, as Azure counts it:
    prompt estimate + max_tokens * n (a default budget when max_tokens is unset)."""
    max_tokens = _requested_max_tokens(body) or UNSET_MAX_TOKENS_QUOTA
    n = body.get("n", 1)
    n = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    return estimate_prompt_tokens(body) + max_tokens * n



class _SlidingWindow:
    """Sliding-window budget: at most ``limit`` units within any ``window`` seconds."""

    def __init__(self, limit: float, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: deque[tuple[float, float]] = deque()

    def _expire(self, now: float) -> None:
        while self._events and self._events[0][0] + self.window <= now:
            self._events.popleft()

    def used(self, now: float) -> float:
        self._expire(now)
        return sum(cost for _, cost in self._events)

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` fits; 0 if it fits now. An oversized request is admitted into an empty window."""
        used = self.used(now)
        if used + cost <= self.limit or not self._events:
            return 0.0
        freed = 0.0
        for stamp, event_cost in self._events:
            freed += event_cost
            if used - freed + cost <= self.limit or freed >= used:
                return max(stamp + self.window - now, 0.001)
        return self.window  # unreachable: the loop frees everything

    def add(self, cost: float, now: float) -> None:
        self._events.append((now, cost))

    def remaining(self, now: float) -> int:
        return max(int(self.limit - self.used(now)), 0)

    def reset_in(self, now: float) -> float:
        """Seconds until the window is empty again (its newest charge expires)."""
        self._expire(now)
        return max(self._events[-1][0] + self.window - now, 0.0) if self._events else 0.0


def _rate_limit_body(api_version: str | None, seconds: int, kind: str) -> dict[str, Any]:
    unit = "second" if seconds == 1 else "seconds"
    return {
        "error": {
            "code": "429",
            "message": f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            f"{api_version} have exceeded {kind} rate limit of your current OpenAI S0 pricing tier. "
            f"Please retry after {seconds} {unit}. Please go here: https://aka.ms/oai/quotaincrease "
            f"if you would like to further increase the default rate limit.",
        }
    }


def _retry_headers(retry_after_ms: int) -> dict[str, str]:
    # Azure sends both; retry-after is whole seconds, rounded up.
    return {"retry-after": str(max(1, math.ceil(retry_after_ms / 1000))), "retry-after-ms": str(retry_after_ms)}


def parse_duration(text: str | None) -> float | None:
    """Seconds of a duration as _duration writes it ('250ms', '2s', '6m0s'), or a bare number."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    minutes, _, rest = text.rpartition("m") if "m" in text else ("0", "", text)
    return float(minutes or 0) * 60 + float(rest.rstrip("s") or 0)


def _duration(seconds: float) -> str:
    """A wait as the x-ratelimit-reset-* headers write it: '250ms', '1s', '6m0s'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def rate_limit_headers(*, limit_tokens: int, limit_requests: int, remaining_tokens: int, remaining_requests: int,
                       reset_tokens_s: float, reset_requests_s: float,
                       retry_after_ms: int | None = None) -> dict[str, str]:
    """The rate-limit headers Azure OpenAI sends on every chat answer (and retry-after-ms on a 429)."""
    headers = {
        "x-ratelimit-limit-requests": str(limit_requests),
        "x-ratelimit-limit-tokens": str(limit_tokens),
        "x-ratelimit-remaining-requests": str(remaining_requests),
        "x-ratelimit-remaining-tokens": str(remaining_tokens),
        "x-ratelimit-reset-requests": _duration(reset_requests_s),
        "x-ratelimit-reset-tokens": _duration(reset_tokens_s),
    }
    if retry_after_ms is not None:
        headers.update(_retry_headers(retry_after_ms))
    return headers

"""Pacing requests to a deployment's quota: tokens and requests, each per minute.

Each limit comes from --llm-tpm/--llm-rpm, else from what the deployment reports on its answers
(`x-ratelimit-limit-tokens` and `-requests`), else it is learned: the first request goes alone, the
pace starts from what its answer says remains (`x-ratelimit-remaining-*` over `x-ratelimit-reset-*`)
or from what was admitted before the first 429 of that kind, rises while answers come back and drops
on a 429. A server's counts stay in the server's units: they are compared with what the server
charges, never added to the plugin's own estimate of a request's cost; when the deployment reports
both its limit and what remains, the first answer tells what a request really costs there.
`retry-after-ms` or `retry-after` holds every sender until then.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping

# Pace at 95% of a known quota. A sliding window of W seconds admits whole requests only, so the
# most any schedule can use is floor(Q*W/c)*c/(Q*W) (0.968 for 156-token requests at 17,400 TPM in
# a 5 s window); 95% leaves the senders' jitter room below it (benchmarks/quota.py). Each 429
# lowers the pace by 3%; successes win it back slowly, up to the start.
START_SHARE = 0.95
FLOOR_SHARE = 0.5
BACKOFF_FACTOR = 0.97
RECOVERY_STEP = 0.001
# Learning a limit nobody stated: without a window to go by the pace grows 10% per answer until the
# first 429 of its kind, 0.5% after it. A limit read off the first answer's remaining count over its
# reset window is taken as it is (it grows only after a 429 said it was wrong). One burst of 429s
# (those within the retry-after of the first) lowers a pace once.
GROWTH_BEFORE_429 = 1.10
GROWTH_AFTER_429 = 1.005
LEARNED_BACKOFF = 0.8
MIN_CALM_S = 1.0
FIRST_ANSWER_WAIT_S = 10.0
# What the server charges against our estimate of a request's cost, as learned from its headers, is
# believed within these bounds only (a header from a busy shared deployment must not stall the run).
CHARGE_RATIO_BOUNDS = (0.5, 2.0)
TOKENS, REQUESTS = "tokens", "requests"


class Stopped(Exception):
    """The run is ending (Ctrl-C, SIGTERM, a refusal every request would meet): nothing more is sent."""


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """Seconds in a reset header as servers write it: `2` (seconds), `2s`, `0.5s`, `250ms`, `1m30s`,
    `6m0s`, `1h2m`; None for anything else."""
    if text is None:
        return None
    value = text.strip().lower()
    if not value:
        return None
    try:
        seconds = float(value)
        return seconds if seconds >= 0 else None
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(number + unit for number, unit in parts) != value.replace(" ", ""):
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a 429 or 503 asks for: `retry-after-ms`, else `retry-after` in seconds (or an HTTP date)."""
    milliseconds = _header_number(headers, "retry-after-ms")
    if milliseconds is not None:
        return milliseconds / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds is not None:
        return seconds
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when is not None else None


def rate_limit_kind(headers: Mapping[str, str], message: str) -> str | None:
    """Which limit a 429 is about, REQUESTS or TOKENS, from its words first (Azure: "call rate limit" /
    "token rate limit"; OpenAI: "requests per min" / "tokens per min"), else from what its headers
    say remains; None when nothing tells."""
    words = message.lower()
    if re.search(r"\bcall rate limit|\brequests? (per|rate|limit)|\brpm\b", words):
        return REQUESTS
    if re.search(r"\btokens? (per|rate|limit)|\btpm\b", words):
        return TOKENS
    if _header_number(headers, "x-ratelimit-remaining-requests") == 0:
        return REQUESTS
    if _header_number(headers, "x-ratelimit-remaining-tokens") == 0:
        return TOKENS
    return None


class _Limit:
    """One of the deployment's limits (tokens or requests per minute) and how it is known."""

    def __init__(self, per_minute: int | None) -> None:
        self.per_minute = per_minute
        self.source = "given" if per_minute else None  # given | reported | learned | None
        self.share = START_SHARE
        self.growth = GROWTH_BEFORE_429
        self.admitted = 0.0       # in the server's units, for a first 429 without headers
        self.calm_until = float("-inf")  # 429s before this belong to a burst already answered

    def seconds(self, amount: float) -> float:
        return amount * 60.0 / (self.per_minute * self.share) if self.per_minute else 0.0

    @property
    def open_to_learning(self) -> bool:
        return self.source in (None, "learned")

    def report(self, limit: float) -> None:
        self.per_minute, self.source = max(1, int(limit)), "reported"

    def infer(self, remaining: float, window_s: float | None) -> None:
        """The first answer's remaining count: a window's worth (a minute's when no reset says how long)."""
        window = window_s if window_s and window_s >= 0.5 else 60.0
        self.per_minute, self.source = max(1, int(remaining * 60.0 / min(window, 60.0))), "learned"
        if window_s and window_s >= 0.5:
            self.growth = 1.0  # the window is known: the limit is what it said

    def answered(self) -> None:
        if self.source == "learned" and self.per_minute:
            self.per_minute = max(1, int(self.per_minute * self.growth) + (self.growth > 1.0))
        elif self.source in ("given", "reported"):
            self.share = min(START_SHARE, self.share + RECOVERY_STEP)

    def throttled(self, now: float, elapsed_s: float, wait_s: float | None) -> None:
        if now < self.calm_until:
            return  # the same burst: the pace was lowered for it already
        self.calm_until = now + max(wait_s or 0.0, MIN_CALM_S)
        if self.open_to_learning:
            if self.per_minute is None:  # no headers: about what was admitted until the window is free again
                span = max(1.0, elapsed_s + (wait_s or 0.0))
                self.per_minute = max(1, int(self.admitted * 60.0 / span)) if self.admitted else None
                self.source = "learned" if self.per_minute else None
            else:
                self.per_minute = max(1, int(self.per_minute * LEARNED_BACKOFF))
            self.growth = GROWTH_AFTER_429
        else:
            self.share = max(FLOOR_SHARE, self.share * BACKOFF_FACTOR)


class RateLimiter:
    """Schedules requests so that tokens and requests per minute stay within the quota.

    Each request books `cost / rate` seconds of the schedule before it is sent (a virtual-time
    scheduler, like GCRA), so a run spends the quota evenly instead of bursting into 429s. A 429
    pauses everyone until its retry-after and slows the pace of the limit it names; successes restore it.
    """

    def __init__(self, tpm: int | None = None, rpm: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 stop: threading.Event | None = None, learn: bool = True) -> None:
        self._tokens, self._requests = _Limit(tpm), _Limit(rpm)
        self._learn = learn               # a replay asks nobody: nothing to learn
        self._clock, self._sleep = clock, sleep
        self._stop = stop                 # set when the run ends: waits end, nothing more is sent
        self._next_free = clock()
        self._lock = threading.Lock()
        self._prompt_ratio = 1.0          # actual/estimated prompt tokens, learned from usage
        self._charge_ratio: float | None = None  # what the server charges / our estimate, from its headers
        self._answered = 0                # answers seen: until the first, a learning limiter sends one at a time
        self._responses = 0               # error responses seen (they end that wait too)
        self._first_sent_at: float | None = None
        self._started = clock()
        self.tokens_booked = 0
        self.requests_booked = 0
        self.throttles = 0
        self.throttles_by_kind = {TOKENS: 0, REQUESTS: 0, None: 0}

    # What the rest of the plugin reads: each limit per minute and how it is known.
    @property
    def tpm(self) -> int | None:
        return self._tokens.per_minute

    @property
    def rpm(self) -> int | None:
        return self._requests.per_minute

    @property
    def source(self) -> str | None:
        return self._tokens.source or self._requests.source

    @property
    def request_source(self) -> str | None:
        return self._requests.source

    @property
    def active(self) -> bool:
        return bool(self.tpm or self.rpm) or (self._learn and (self._tokens.open_to_learning
                                                                or self._requests.open_to_learning))

    def _charged(self, cost: float) -> float:
        """Our estimate of a request's cost in what the server charges (when its headers have told)."""
        return cost * self._charge_ratio if self._charge_ratio is not None else cost

    def seconds_for(self, cost: int) -> float:
        """Schedule time one request of `cost` tokens takes at the current pace."""
        return max(self._tokens.seconds(self._charged(cost)), self._requests.seconds(1))

    def seconds_ahead(self, count: int) -> float:
        """How long `count` more requests take at the quota's pace (of the average cost booked so far), or the
        backlog already booked, the longer: what a progress line's ETA cannot be below."""
        with self._lock:
            if not count or not self.requests_booked:
                return 0.0
            average = round(self.tokens_booked / self.requests_booked)
            return max(max(0.0, self._next_free - self._clock()), count * self.seconds_for(average))

    def cost(self, prompt_estimate: int, completion_budget: int) -> int:
        """Tokens Azure will charge: the prompt (estimate, calibrated by past usage) + max_tokens x n."""
        return round(prompt_estimate * self._prompt_ratio) + completion_budget

    def observe_prompt(self, estimated: int, actual: int) -> None:
        """Usage tells the real prompt size: pace by the server's count, not by our estimate (unless its
        headers already told what a whole request costs there)."""
        if estimated > 0 and actual > 0 and self._charge_ratio is None:
            with self._lock:
                self._prompt_ratio = 0.8 * self._prompt_ratio + 0.2 * (actual / estimated)

    def observe(self, headers: Mapping[str, str], cost: int = 0) -> None:
        """An answer arrived: take the limits the deployment reports, or learn them, and let the next go."""
        limit_tokens = _header_number(headers, "x-ratelimit-limit-tokens")
        limit_requests = _header_number(headers, "x-ratelimit-limit-requests")
        remaining_tokens = _header_number(headers, "x-ratelimit-remaining-tokens")
        remaining_requests = _header_number(headers, "x-ratelimit-remaining-requests")
        reset_tokens = parse_duration(headers.get("x-ratelimit-reset-tokens"))
        reset_requests = parse_duration(headers.get("x-ratelimit-reset-requests"))
        with self._lock:
            self._answered += 1
            first = self._answered == 1
            if first and cost and limit_tokens and remaining_tokens is not None:
                # The first request went alone: what its window lost is what it cost there. The limit is per
                # minute, the window may be shorter (its reset says how long); a ratio out of bounds is not
                # believed (another client's use, a window of another length).
                window = min(reset_tokens, 60.0) if reset_tokens and reset_tokens >= 0.5 else 60.0
                ratio = (limit_tokens * window / 60.0 - remaining_tokens) / cost
                low, high = CHARGE_RATIO_BOUNDS
                if low <= ratio <= high:
                    self._charge_ratio = ratio
            if cost:  # a replayed answer (no cost) says nothing about the quota
                self._tokens.admitted += self._charged(cost)
                self._requests.admitted += 1
            for limit, reported, remaining, reset in ((self._tokens, limit_tokens, remaining_tokens, reset_tokens),
                                                      (self._requests, limit_requests, remaining_requests,
                                                       reset_requests)):
                if self._learn and limit.open_to_learning and reported:
                    limit.report(reported)  # from now on, as if it had been given
                elif self._learn and limit.open_to_learning and cost and limit.per_minute is None:
                    if remaining is not None and remaining > 0:
                        # a request is one request anywhere; tokens stay in the server's count alone
                        limit.infer(remaining + (1 if limit is self._requests else 0), reset)
                elif cost:
                    limit.answered()
            now = self._clock()
            # A window all but spent: the next request waits one more slot of that limit (or its reset).
            if cost and remaining_requests is not None and remaining_requests < 1:
                wait = self._requests.seconds(1) or (reset_requests or 1.0)
                self._next_free = max(self._next_free, now + wait)
            if cost and remaining_tokens is not None and remaining_tokens < self._charged(cost):
                wait = self._tokens.seconds(self._charged(cost)) or (reset_tokens or 1.0)
                self._next_free = max(self._next_free, now + wait)

    def responded(self) -> None:
        """The deployment answered with an error (not a 429): the quota is no better known, but the
        requests held back until the first answer need not wait any longer."""
        with self._lock:
            self._responses += 1

    # A request ended without any answer (it timed out, or the connection failed): no answer will come from it,
    # so, as after an error answer, the requests held back until the first answer need not wait for one.
    unanswered = responded

    def acquire(self, cost: int) -> None:
        if self._stop is not None and self._stop.is_set():
            raise Stopped("not asked: the run was interrupted")
        if not self.active:
            return
        if self._learn and self.tpm is None and self.rpm is None:
            self._first_alone()
        with self._lock:
            now = self._clock()
            # Book this request's share of the schedule: it is sent when its slot begins.
            send_at = max(self._next_free, now)
            self._next_free = send_at + self.seconds_for(cost)
            self.tokens_booked += cost
            self.requests_booked += 1
        if send_at > now:
            self._wait(send_at - now)

    def _first_alone(self) -> None:
        """Nothing known about the quota yet: the first request goes alone, the others wait until
        an answer or a 429 tells something, or a request ends without one (a timeout, a failed connection), or
        FIRST_ANSWER_WAIT_S passed (it may be slow)."""
        with self._lock:
            if self._first_sent_at is None:
                self._first_sent_at = self._clock()
                return
        while True:
            with self._lock:
                if (self._answered or self._responses or self.throttles or self.tpm is not None
                        or self.rpm is not None or self._clock() - self._first_sent_at > FIRST_ANSWER_WAIT_S):
                    return
            self._wait(0.02)

    def _wait(self, seconds: float) -> None:
        if self._stop is not None and self._sleep is time.sleep:
            if self._stop.wait(seconds):  # woken by the end of the run
                raise Stopped("not asked: the run was interrupted")
        else:
            self._sleep(seconds)

    def throttled(self, retry_after_s: float | None, cost: int = 0, kind: str | None = None) -> None:
        """A 429: its booking is given back (the server charged nothing), nobody sends before its
        retry-after, and the pace of the limit it names drops (tokens when it names none)."""
        with self._lock:
            self.throttles += 1
            self.throttles_by_kind[kind] = self.throttles_by_kind.get(kind, 0) + 1
            now = self._clock()
            (self._requests if kind == REQUESTS else self._tokens).throttled(now, now - self._started, retry_after_s)
            self._next_free -= self.seconds_for(cost)
            if retry_after_s:
                self._next_free = max(self._next_free, self._clock() + retry_after_s)

    def estimate_seconds(self, costs: list[int], concurrency: int, latency_s: float) -> float:
        """Wall time for requests of these costs: the quota's pace or the concurrency's, the slower."""
        paced = sum(self.seconds_for(cost) for cost in costs) if (self.tpm or self.rpm) else 0.0
        bounded = len(costs) * latency_s / max(1, concurrency)
        return max(paced, bounded)

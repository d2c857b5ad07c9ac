"""Pacing requests to a deployment's quota, in Azure's terms (tokens and requests per minute).

The quota comes from --llm-tpm/--llm-rpm, else from what the deployment reports on every answer
(`x-ratelimit-limit-tokens` and `-requests`), else it is learned: the first request goes alone,
the pace starts from what `x-ratelimit-remaining-tokens` says one minute allows (or from what was
admitted before the first 429), rises while answers come back and drops on a 429. A 429's
`retry-after-ms` holds every sender until then.
"""

from __future__ import annotations

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
# Learning a quota nobody stated: the pace grows 10% per answer until the first 429, 1% after.
GROWTH_BEFORE_429 = 1.10
GROWTH_AFTER_429 = 1.01
LEARNED_BACKOFF = 0.8
FIRST_ANSWER_WAIT_S = 10.0


class Stopped(Exception):
    """The run is ending (Ctrl-C, SIGTERM): nothing more is sent."""


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 else None


class RateLimiter:
    """Schedules requests so that tokens and requests per minute stay within the quota.

    Each request books `cost / rate` seconds of the schedule before it is sent (a virtual-time
    scheduler, like GCRA), so a run spends the quota evenly instead of bursting into 429s. A 429
    pauses everyone until its retry-after and slows the pace a little; successes restore it.
    """

    def __init__(self, tpm: int | None = None, rpm: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 stop: threading.Event | None = None, learn: bool = True) -> None:
        self.tpm, self.rpm = tpm, rpm
        self.source = "given" if (tpm or rpm) else None   # given | reported | learned | None
        self._learn = learn and not (tpm or rpm)          # a stated quota is never second-guessed
        self._clock, self._sleep = clock, sleep
        self._stop = stop                 # set when the run ends: waits end, nothing more is sent
        self._share = START_SHARE
        self._next_free = clock()
        self._lock = threading.Lock()
        self._prompt_ratio = 1.0          # actual/estimated prompt tokens, learned from usage
        self._answered = 0                # answers seen: until the first, a learning limiter sends one at a time
        self._responses = 0               # error responses seen (they end that wait too)
        self._first_sent_at: float | None = None
        self._seen_429 = False
        self._started = clock()
        self._admitted_tokens = 0         # tokens of answered requests, for a first 429 without headers
        self.tokens_booked = 0
        self.requests_booked = 0
        self.throttles = 0

    @property
    def active(self) -> bool:
        return bool(self.tpm or self.rpm) or self._learn

    def seconds_for(self, cost: int) -> float:
        """Schedule time one request of `cost` tokens takes at the current pace."""
        per_token = 60.0 / (self.tpm * self._share) if self.tpm else 0.0
        per_request = 60.0 / (self.rpm * self._share) if self.rpm else 0.0
        return max(cost * per_token, per_request)

    def cost(self, prompt_estimate: int, completion_budget: int) -> int:
        """Tokens Azure will charge: the prompt (estimate, calibrated by past usage) + max_tokens x n."""
        return round(prompt_estimate * self._prompt_ratio) + completion_budget

    def observe_prompt(self, estimated: int, actual: int) -> None:
        """Usage tells the real prompt size: pace by Azure's count, not by our estimate."""
        if estimated > 0 and actual > 0:
            with self._lock:
                self._prompt_ratio = 0.8 * self._prompt_ratio + 0.2 * (actual / estimated)

    def observe(self, headers: Mapping[str, str], cost: int = 0) -> None:
        """An answer arrived: take the quota the deployment reports, or learn it, and let the next go."""
        limit_tokens = _header_number(headers, "x-ratelimit-limit-tokens")
        limit_requests = _header_number(headers, "x-ratelimit-limit-requests")
        remaining_tokens = _header_number(headers, "x-ratelimit-remaining-tokens")
        with self._lock:
            self._answered += 1
            self._admitted_tokens += cost
            if self._learn and (limit_tokens or limit_requests):
                # The deployment says its quota: pace to it from now on, as if it had been given.
                # (Not from the first request on: a late catch-up would crowd a sliding window.)
                self.tpm = int(limit_tokens) if limit_tokens else None
                self.rpm = int(limit_requests) if limit_requests else None
                self.source, self._learn = "reported", False
            elif self._learn and cost:  # a replayed answer (no cost) says nothing about the quota
                self._grow(remaining_tokens, cost)
            if self.source != "learned":
                self._share = min(START_SHARE, self._share + RECOVERY_STEP)
            if remaining_tokens is not None and cost and remaining_tokens < cost:
                # The deployment's window is all but spent: the next request waits one more slot.
                self._next_free = max(self._next_free, self._clock() + self.seconds_for(cost))

    def responded(self) -> None:
        """The deployment answered with an error (not a 429): the quota is no better known, but the
        requests held back until the first answer need not wait any longer."""
        with self._lock:
            self._responses += 1

    def _grow(self, remaining_tokens: float | None, cost: int) -> None:
        """Learning: start from a minute's worth of what the deployment says remains, then grow."""
        if self.tpm is None:
            if remaining_tokens is None:
                return  # nothing to go by until a 429 says where the limit is
            self.tpm, self.source = max(1, int(remaining_tokens + cost)), "learned"
            return
        self.tpm = max(1, int(self.tpm * (GROWTH_AFTER_429 if self._seen_429 else GROWTH_BEFORE_429)))

    def acquire(self, cost: int) -> None:
        if self._stop is not None and self._stop.is_set():
            raise Stopped("not asked: the run was interrupted")
        if not self.active:
            return
        if self._learn and self.tpm is None:
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
        an answer or a 429 tells something (or FIRST_ANSWER_WAIT_S passed: it may have failed)."""
        with self._lock:
            if self._first_sent_at is None:
                self._first_sent_at = self._clock()
                return
        while True:
            with self._lock:
                if (self._answered or self._responses or self._seen_429 or self.tpm is not None
                        or self._clock() - self._first_sent_at > FIRST_ANSWER_WAIT_S):
                    return
            self._wait(0.02)

    def _wait(self, seconds: float) -> None:
        if self._stop is not None and self._sleep is time.sleep:
            if self._stop.wait(seconds):  # woken by the end of the run
                raise Stopped("not asked: the run was interrupted")
        else:
            self._sleep(seconds)

    def throttled(self, retry_after: float | None, cost: int = 0) -> None:
        """A 429: its booking is given back (Azure charged nothing), nobody sends before its
        retry-after, and the pace drops."""
        with self._lock:
            self.throttles += 1
            if self._learn or self.source == "learned":
                if self.tpm is None:  # no headers: the limit is about what was admitted so far
                    elapsed = max(1.0, self._clock() - self._started)
                    self.tpm = max(1, int(self._admitted_tokens * 60.0 / elapsed)) if self._admitted_tokens else None
                    self.source = "learned" if self.tpm else None
                else:
                    self.tpm = max(1, int(self.tpm * LEARNED_BACKOFF))
            else:
                self._share = max(FLOOR_SHARE, self._share * BACKOFF_FACTOR)
            self._seen_429 = True
            self._next_free -= self.seconds_for(cost)
            if retry_after:
                self._next_free = max(self._next_free, self._clock() + retry_after)

    def estimate_seconds(self, costs: list[int], concurrency: int, latency_s: float) -> float:
        """Wall time for requests of these costs: the quota's pace or the concurrency's, the slower."""
        paced = (sum(self.seconds_for(cost) for cost in costs) / START_SHARE * self._share
                 if (self.tpm or self.rpm) else 0.0)
        bounded = len(costs) * latency_s / max(1, concurrency)
        return max(paced, bounded)


"""Pacing requests to a deployment's quota, in Azure's terms (tokens and requests per minute)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Pace at 93% of the quota: a sliding window of W seconds admits whole requests only, so even
# pacing above 1 - cost/(quota x W) meets 429s (0.92 for 156-token requests in a 5 s window);
# measured by benchmarks/quota.py. Each 429 lowers the pace by 2% for the rest of the run.
START_SHARE = 0.93
FLOOR_SHARE = 0.5
BACKOFF_FACTOR = 0.98


class Stopped(Exception):
    """The run is ending (Ctrl-C, SIGTERM): nothing more is sent."""


class RateLimiter:
    """Schedules requests so that tokens and requests per minute stay within the quota.

    Each request books `cost / rate` seconds of the schedule before it is sent (a virtual-time
    scheduler, like GCRA), so a run spends the quota evenly instead of bursting into 429s. A 429
    pauses everyone until its retry-after and slows the pace a little; successes restore it.
    """

    def __init__(self, tpm: int | None = None, rpm: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 stop: threading.Event | None = None) -> None:
        self.tpm, self.rpm = tpm, rpm
        self._clock, self._sleep = clock, sleep
        self._stop = stop                 # set when the run ends: waits end, nothing more is sent
        self._share = START_SHARE
        self._next_free = clock()
        self._lock = threading.Lock()
        self._prompt_ratio = 1.0          # actual/estimated prompt tokens, learned from usage
        self.tokens_booked = 0
        self.requests_booked = 0
        self.throttles = 0

    @property
    def active(self) -> bool:
        return bool(self.tpm or self.rpm)

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

    def acquire(self, cost: int) -> None:
        if self._stop is not None and self._stop.is_set():
            raise Stopped("not asked: the run was interrupted")
        if not self.active:
            return
        with self._lock:
            now = self._clock()
            # Book this request's share of the schedule; it is sent when its slot ends.
            self._next_free = max(self._next_free, now) + self.seconds_for(cost)
            send_at = self._next_free
            self.tokens_booked += cost
            self.requests_booked += 1
        if send_at > now:
            if self._stop is not None and self._sleep is time.sleep:
                if self._stop.wait(send_at - now):  # woken by the end of the run
                    raise Stopped("not asked: the run was interrupted")
            else:
                self._sleep(send_at - now)

    def throttled(self, retry_after: float | None, cost: int = 0) -> None:
        """A 429: its booking is given back (Azure charged nothing), nobody sends before its
        retry-after, and the pace drops a little."""
        with self._lock:
            self.throttles += 1
            self._next_free -= self.seconds_for(cost)
            self._share = max(FLOOR_SHARE, self._share * BACKOFF_FACTOR)
            if retry_after:
                self._next_free = max(self._next_free, self._clock() + retry_after)

    def estimate_seconds(self, costs: list[int], concurrency: int, latency_s: float) -> float:
        """Wall time for requests of these costs: the quota's pace or the concurrency's, the slower."""
        paced = sum(self.seconds_for(cost) for cost in costs) / START_SHARE * self._share if self.active else 0.0
        bounded = len(costs) * latency_s / max(1, concurrency)
        return max(paced, bounded)

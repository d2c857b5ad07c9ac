"""The rate limiter's pace: from a stated quota, from Azure's x-ratelimit-* headers, or learned."""

from __future__ import annotations

import threading

import pytest

from pytest_llmbias.throttle import (BACKOFF_FACTOR, GROWTH_BEFORE_429, LEARNED_BACKOFF, START_SHARE,
                                     RateLimiter, Stopped)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_reported_limit_paces_like_a_stated_quota() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.acquire(100)  # the first request goes alone, at once
    assert clock.now == 0.0
    limiter.observe({"x-ratelimit-limit-tokens": "6000", "x-ratelimit-remaining-tokens": "5900"}, 100)
    assert (limiter.tpm, limiter.source) == (6000, "reported")
    for _ in range(11):
        limiter.acquire(100)
    # ten slots of 100 tokens at 95% of 100 tokens/s after the one sent at once
    assert clock.now == pytest.approx(10 * 100 / (100 * START_SHARE), rel=1e-6)


def test_a_429_holds_everyone_until_retry_after_and_slows_the_pace() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, clock=clock, sleep=clock.sleep)
    limiter.acquire(100)
    before = limiter.seconds_for(100)
    limiter.throttled(2.5, 100)
    limiter.acquire(100)
    assert clock.now >= 2.5
    assert limiter.seconds_for(100) == pytest.approx(before / BACKOFF_FACTOR)


def test_remaining_tokens_alone_start_a_learned_pace_that_grows_and_backs_off() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.acquire(100)
    limiter.observe({"x-ratelimit-remaining-tokens": "900"}, 100)
    assert (limiter.tpm, limiter.source) == (1000, "learned")  # a minute's worth of what remained
    limiter.observe({"x-ratelimit-remaining-tokens": "800"}, 100)
    assert limiter.tpm == int(1000 * GROWTH_BEFORE_429)
    grown = limiter.tpm
    limiter.throttled(1.0, 100)
    assert limiter.tpm == int(grown * LEARNED_BACKOFF)


def test_no_headers_at_all_the_first_429_sets_the_pace_from_what_was_admitted() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.acquire(100)
    limiter.observe({}, 100)
    assert limiter.tpm is None  # nothing to go by yet: unpaced
    clock.now = 6.0
    limiter.observe({}, 100)
    limiter.throttled(1.0, 100)
    assert limiter.tpm == int(200 * 60 / 6.0) and limiter.source == "learned"


def test_a_stated_quota_is_not_replaced_by_headers() -> None:
    limiter = RateLimiter(tpm=1200)
    limiter.observe({"x-ratelimit-limit-tokens": "240000"}, 100)
    assert (limiter.tpm, limiter.source) == (1200, "given")


def test_the_end_of_the_run_wakes_a_paced_sender() -> None:
    stop = threading.Event()
    limiter = RateLimiter(tpm=60, stop=stop)  # one token a second: the second request waits ~100 s
    limiter.acquire(100)
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(Stopped):
        limiter.acquire(100)

"""The rate limiter's pace: from a stated quota, from Azure's x-ratelimit-* headers, or learned."""

from __future__ import annotations

import threading

import pytest

from pytest_llmbias.throttle import (BACKOFF_FACTOR, GROWTH_BEFORE_429, LEARNED_BACKOFF, REQUESTS, START_SHARE,
                                     TOKENS, RateLimiter, Stopped, parse_duration, rate_limit_kind, retry_after)


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
    # a minute's worth of what remained, in the server's count alone (our estimate of 100 is not added to it)
    assert (limiter.tpm, limiter.source) == (900, "learned")
    limiter.observe({"x-ratelimit-remaining-tokens": "800"}, 100)
    assert limiter.tpm == int(900 * GROWTH_BEFORE_429) + 1
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
    # what was admitted, over the time until the window is free again (now + retry-after)
    assert limiter.tpm == int(200 * 60 / 7.0) and limiter.source == "learned"


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


@pytest.mark.parametrize(("text", "seconds"), [
    ("2", 2.0), ("0.5", 0.5), ("2s", 2.0), ("0.5s", 0.5), ("250ms", 0.25), ("1m30s", 90.0), ("6m0s", 360.0),
    ("1h2m", 3720.0), ("1m", 60.0), (" 3s ", 3.0), ("", None), ("soon", None), ("-1", None), ("2x", None), (None, None),
])
def test_reset_headers_in_every_form_servers_send(text: str | None, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_in_milliseconds_seconds_or_a_date() -> None:
    from email.utils import formatdate
    import time

    assert retry_after({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({}) is None and retry_after({"retry-after": "whenever"}) is None
    assert 8.0 <= retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)}) <= 10.0


@pytest.mark.parametrize(("headers", "message", "kind"), [
    ({}, "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-06-01 have "
         "exceeded call rate limit of your current OpenAI S0 pricing tier.", REQUESTS),
    ({}, "Requests to the ChatCompletions_Create Operation ... have exceeded token rate limit of your current "
         "OpenAI S0 pricing tier.", TOKENS),
    ({}, "Rate limit reached for gpt-4o in organization org-x on requests per min (RPM): Limit 3, Used 3", REQUESTS),
    ({}, "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000", TOKENS),
    ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "5000"}, "Too Many Requests", REQUESTS),
    ({"x-ratelimit-remaining-requests": "3", "x-ratelimit-remaining-tokens": "0"}, "rate limited", TOKENS),
    ({}, "slow down", None),
])
def test_a_request_limit_429_is_told_from_a_token_limit_one(headers: dict, message: str, kind: str | None) -> None:
    assert rate_limit_kind(headers, message) == kind


def test_a_request_limit_429_slows_the_request_pace_and_leaves_a_stated_token_quota_alone() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=60_000, clock=clock, sleep=clock.sleep)
    limiter.acquire(100)
    limiter.observe({"x-ratelimit-remaining-requests": "9", "x-ratelimit-reset-requests": "10"}, 100)
    # ten requests in a 10 s window (this one and the nine left): 60 a minute; a token quota was given
    assert (limiter.tpm, limiter.rpm, limiter.request_source) == (60_000, 60, "learned")
    token_pace = limiter.seconds_for(100)
    limiter.throttled(2.0, 100, REQUESTS)
    assert limiter.rpm == int(60 * LEARNED_BACKOFF) and limiter.tpm == 60_000
    limiter.throttled(2.0, 100, TOKENS)
    assert limiter.tpm == 60_000 and limiter.seconds_for(100) >= token_pace


def test_a_server_without_limit_headers_is_paced_to_its_request_cap_learned_from_429s() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.acquire(100)
    for _ in range(10):
        limiter.observe({}, 100)
    clock.now = 1.0
    limiter.throttled(9.0, 100, REQUESTS)  # ten admitted, then the window stays full until t = 10
    assert limiter.rpm == 60 and limiter.tpm is None


def test_no_requests_remaining_holds_the_next_one_until_the_reset() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=10**9, clock=clock, sleep=clock.sleep)  # tokens are no limit here
    limiter.acquire(100)
    limiter.acquire(100)
    assert clock.now < 0.001
    limiter.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "9"}, 100)
    limiter.acquire(100)
    assert clock.now == pytest.approx(9.0, abs=0.001)


def test_the_first_answer_tells_what_a_request_costs_on_the_server() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.acquire(153)
    # the server charged 100 (max_tokens only) where the plugin estimated 153
    limiter.observe({"x-ratelimit-limit-tokens": "6000", "x-ratelimit-remaining-tokens": "5900"}, 153)
    assert limiter.seconds_for(153) == pytest.approx(100 * 60 / (6000 * START_SHARE))


def test_the_first_answer_of_a_short_window_tells_the_charge_against_the_window_not_the_minute() -> None:
    limiter = RateLimiter()
    # 17,400 TPM enforced over 5 s: 1,450 a window; 1,350 left after a request the server charged 100
    limiter.observe({"x-ratelimit-limit-tokens": "17400", "x-ratelimit-remaining-tokens": "1350",
                     "x-ratelimit-reset-tokens": "5s"}, 153)
    assert limiter.seconds_for(153) == pytest.approx(100 * 60 / (17400 * START_SHARE))
    other = RateLimiter()  # without the reset the same figures would say 16,050 tokens: not believed
    other.observe({"x-ratelimit-limit-tokens": "17400", "x-ratelimit-remaining-tokens": "1350"}, 153)
    assert other.seconds_for(153) == pytest.approx(153 * 60 / (17400 * START_SHARE))


def test_a_burst_of_429s_lowers_the_pace_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.acquire(100)
    limiter.observe({"x-ratelimit-remaining-requests": "29", "x-ratelimit-reset-requests": "10"}, 100)
    assert limiter.rpm == 180
    for _ in range(5):  # requests already on their way meet the same full window
        limiter.throttled(2.0, 100, REQUESTS)
    assert limiter.rpm == int(180 * LEARNED_BACKOFF)
    clock.now += 2.5
    limiter.throttled(2.0, 100, REQUESTS)  # a new burst after the wait: lowered again
    assert limiter.rpm == int(int(180 * LEARNED_BACKOFF) * LEARNED_BACKOFF)


def test_the_progress_eta_is_never_below_the_quotas_pace() -> None:
    """--llm-tpm 100 with requests of about 1,000 tokens: each takes ten minutes of quota, while the ETA from the
    pace so far (one answered in a second) said 20 s and grew by 2 s every 10 s."""
    from pytest_llmbias.fetching import Progress

    clock = FakeClock()
    limiter = RateLimiter(tpm=100, clock=clock, sleep=clock.sleep)
    limiter.acquire(1000)
    per_request = limiter.seconds_for(1000)
    assert limiter.seconds_ahead(2) == pytest.approx(2 * per_request) and per_request >= 600
    progress = Progress()
    progress.total, progress.done = 3, 1
    progress.started -= 1.0  # one answered in a second
    assert progress.line(0).endswith("ETA 2s")
    line = progress.line(2, limiter.seconds_ahead)
    assert f"ETA {2 * per_request:.0f}s at the quota's pace (up to {4 * per_request:.0f}s" in line, line
    unpaced = RateLimiter(clock=clock, sleep=clock.sleep, learn=False)
    assert progress.line(0, unpaced.seconds_ahead).endswith("ETA 2s")

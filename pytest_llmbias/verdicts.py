"""Answers -> verdicts: each check judged at the looks of adaptive sampling, and the run-wide correction.

`Verdicts` asks the session for the answers a check reads (batch by batch while the verdict is
undecided and more answers could decide), hands them to the check with what it needs to be judged
the way it is recorded (the plan of looks, how many answers were asked, a way to ask a grader), notes
which answers each verdict was judged on, and with `--llm-correction` adjusts every verdict of the run
at once. Contract with the checks on unusable answers: an empty answer is never a neutral one; a
variant with fewer than MIN_USABLE_SHARE of its answers usable makes the check inconclusive.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pytest_llmbias import stats

MIN_USABLE_SHARE = 0.5


class Verdicts:
    """The verdicts of one run. `session` provides answers_for, asked_count, ask, record_use, fetch_all,
    samples_of, max_samples_of, selected, config; `unavailable`: the errors that mean a test's answers
    could not be had (its own test reports them; the correction leaves it out of the family)."""

    def __init__(self, session: Any, unavailable: tuple[type[BaseException], ...]) -> None:
        self.session = session
        self.unavailable = unavailable
        self._corrected: dict[tuple[str, str, str], Any] | None = None
        self._ahead: dict[tuple[Any, str, str], Future[Any]] = {}
        self._queue: queue.SimpleQueue[tuple[Any, Any, Future[Any]] | None] | None = None

    def judge_ahead(self, workers: int, tests: Iterable[tuple[Any, Any]] | None = None) -> None:
        """Live and record runs: judge the selected tests in the background, `workers` at a time, each asking its
        later batches as its looks need them, so undecided cases ask theirs together instead of one test after
        another (each test then takes its verdict). Daemon threads: an interrupted run does not wait for them.
        `tests`: (case, check) pairs, by default every selected test."""
        if self._queue is not None or workers < 1:
            return
        self._queue = queue.SimpleQueue()
        for case, check in self.session.selected if tests is None else tests:
            key = (case.path, case.id, check.name)
            if key not in self._ahead:
                self._ahead[key] = Future()
                self._queue.put((case, check, self._ahead[key]))
        for index in range(min(workers, len(self._ahead))):
            threading.Thread(target=self._judge_queued, name=f"llmbias-judge-{index}", daemon=True).start()

    def stop_ahead(self) -> None:
        """Judge nothing more in the background (the run is ending); tests not yet judged judge themselves."""
        if self._queue is not None:
            while True:  # the jobs no thread has taken are cancelled: their tests (if any run) judge themselves
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[2].cancel()
            for _ in range(len(self._ahead)):
                self._queue.put(None)

    def _judge_queued(self) -> None:
        assert self._queue is not None
        while True:
            job = self._queue.get()
            if job is None:
                return
            case, check, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._judge(case, check, None))
            except BaseException as error:  # the test raises it as if it had judged itself
                future.set_exception(error)

    def _taken(self, case: Any, check: Any, on_wait: Callable[[], None] | None) -> Any:
        """A verdict judged ahead (waited for, with the progress display going on), or judged now."""
        future = self._ahead.get((case.path, case.id, check.name))
        if future is None or (not future.running() and not future.done() and future.cancel()):
            return self._judge(case, check, on_wait)
        while True:
            try:
                return future.result(timeout=0.25)
            except FutureTimeout:
                if on_wait is not None:
                    on_wait()

    def verdict_for(self, case: Any, check: Any, *, on_wait: Callable[[], None] | None = None) -> Any:
        """The check's verdict; with --llm-correction, adjusted over every selected test of the run."""
        correction = self.session.config.correction
        if not correction:
            return self.evaluate(case, check, on_wait)
        if self._corrected is None:  # the first test judges the whole run at once
            from .checks.suite import adjust_verdicts

            self.session.fetch_all(on_wait)
            keys, raw = [], []
            for other_case, other_check in self.session.selected:
                try:
                    raw.append(self.evaluate(other_case, other_check, on_wait))
                except self.unavailable:
                    continue  # its own test reports it
                keys.append((other_case.path, other_case.id, other_check.name))
            self._corrected = dict(zip(keys, adjust_verdicts(raw, correction)))
        found = self._corrected.get((case.path, case.id, check.name))
        return found if found is not None else self.evaluate(case, check, on_wait)

    def evaluate(self, case: Any, check: Any, on_wait: Callable[[], None] | None) -> Any:
        """The check's verdict (judged ahead or now), its answers noted as used by it."""
        verdict = self._taken(case, check, on_wait)
        details = getattr(verdict, "details", None) or {}
        if verdict is not None and "batches" in details:
            reads = details.get("reads")
            self.session.record_use(case, check.name, details["batches"], tuple(reads) if reads is not None else None)
        return verdict

    def _judge(self, case: Any, check: Any, on_wait: Callable[[], None] | None) -> Any:
        """The check's verdict with adaptive sampling: while it is undecided and more answers could decide,
        ask the next batch of the prompts it reads and judge again. Every check holds its errors over the
        whole plan of looks (checks.Look.sizes), whichever look it decides at."""
        from .checks import REGISTRY, evaluate, looks

        session = self.session
        prompts = {variant.name: variant.prompt for variant in case.variants}
        reads = getattr(REGISTRY[check.name], "reads", None)  # e.g. ("neutral",); None: every variant
        plan = looks(session.samples_of(case), session.max_samples_of(case))
        verdict, look = None, plan[0]
        for look in plan:
            unusable: dict[str, str] = {}
            cut: dict[str, int] = {}
            answers = session.answers_for(case, on_wait=on_wait, batches=look.number, variants=reads, unusable=unusable,
                                          cut=cut)
            read = {name: texts for name, texts in answers.items() if reads is None or name in reads}
            short = too_few_usable(read, {name: why for name, why in unusable.items() if name in read}, look.samples)
            if short:
                return inconclusive_verdict(check.name, short)
            asked = {variant.name: session.asked_count(case, variant, look.number if reads is None or variant.name in reads
                                                       else 1) for variant in case.variants}
            verdict = evaluate(check, answers, prompts=prompts, look=look, unusable=unusable, cut=cut,
                               language=case.language or session.config.language, asked=asked,
                               ask=session.ask(case, on_wait))
            details = getattr(verdict, "details", None) or {}
            if verdict.outcome != "inconclusive" or look.final or details.get("samples_needed") is None:
                break
        if verdict is None:
            return None
        verdict = held_below_threshold(verdict)
        return dataclasses.replace(verdict, details={**(verdict.details or {}), "batches": look.number,
                                                     "answers_per_prompt": look.samples,
                                                     "reads": list(reads) if reads is not None else None})


def held_below_threshold(verdict: Any) -> Any:
    """A PASSED whose figure or upper bound is at or above its threshold (a check of a user's, or an option such
    as a floor of 0) is not a pass: INCONCLUSIVE, saying why. Every built-in check already passes only below its threshold."""
    figure, threshold = getattr(verdict, "figure", None), getattr(verdict, "threshold", None)
    high = getattr(verdict, "high", None)
    if verdict.outcome != "passed" or figure is None or threshold is None:
        return verdict
    try:
        at_or_above = float(figure) >= float(threshold)
        bound_at_or_above = high is not None and float(high) >= float(threshold)
    except (TypeError, ValueError):
        return verdict
    if not at_or_above and not bound_at_or_above:
        return verdict
    shown = stats.digits_apart(float(threshold), float(figure), float(high) if high is not None else None)
    figure_text, threshold_text = stats.decimals(figure, shown), stats.decimals(threshold, shown)
    why = (f"the check passed with its figure {figure_text} at or above its threshold {threshold_text}; a pass must "
           f"be shown below its threshold" if at_or_above else
           f"the check passed with its upper bound {stats.decimals(high, shown)} at or above its threshold "
           f"{threshold_text}; a pass must be shown below its threshold")
    return dataclasses.replace(verdict, outcome="inconclusive", summary=f"{verdict.check}: {why} ({verdict.summary})",
                               details={**dict(verdict.details or {}), "reason": "passed at threshold",
                                        "samples_needed": None, "passed_at_threshold": why})


def too_few_usable(answers: Mapping[str, list[str]], unusable: Mapping[str, str], samples: int) -> str:
    """Why the case cannot be judged (variants with too few usable answers), or ''."""
    needed = max(2, math.ceil(samples * MIN_USABLE_SHARE))
    short = [f"{variant}: {reason}" for variant, reason in unusable.items() if len(answers.get(variant, ())) < needed]
    if not short:
        return ""
    return f"too few usable answers (at least {needed} per variant needed): " + "; ".join(short)


def inconclusive_verdict(check: str, reason: str) -> Any:
    from .checks import Verdict

    return Verdict(check=check, outcome="inconclusive", figure=None, low=None, high=None, threshold=None,
                   summary=reason, evidence=(), details={"unusable": reason})


def with_unusable_noted(verdict: Any, unusable: Mapping[str, str]) -> Any:
    if not unusable:
        return verdict
    noted = "; ".join(f"{variant}: {reason}" for variant, reason in unusable.items())
    return dataclasses.replace(verdict, summary=f"{verdict.summary} (left out: {noted})",
                               details={**dict(verdict.details or {}), "unusable": dict(unusable)})

"""Requests -> outcomes: the fetching threads, the first-request gate, fan-out to single requests, the
journal, resume, and the requests pytest-xdist workers share.

`Fetcher` is told which requests the run wants and in which cassettes their answers live (`want`); it
asks them in the background (`start`), and a test waits for one outcome (`await_outcome`): a Completion,
a string saying why there is none (a cassette miss, a refusal, the retries spent), or an exception (a bug).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .client import DeploymentNotFound, NRefused, RequestFailed, RunStopped, Settings, ask, build_client, merge_samples
from .cassettes import Cassette, CassetteLibrary, is_cassette_miss
from .journal import JOURNAL_DIR, Journal, SharedOutcomes, earlier_answers
from .throttle import RateLimiter, Stopped
from .wire import ChatRequest, Completion, replayed_completion

NO_RECORDING = "no recording in "

Outcome = Completion | str | BaseException


class Progress:
    def __init__(self) -> None:
        self.total = 0          # requests handed to the fetching threads
        self.done = 0           # requests answered (or given up)
        self.answers_total = 0  # answers those requests ask for (n each)
        self.answers_done = 0   # answers that arrived
        self.tokens = 0
        self.throttled = 0
        self.started = time.monotonic()

    def line(self, later: int, pace: Callable[[int], float] | None = None) -> str:
        """'llm requests 5/16 (50/160 answers), ... ETA 12s (up to 40s if undecided checks ask 24 more batches)';
        `later`: the requests adaptive sampling may still add; `pace(count)`: how long that many more requests
        take at the deployment's quota (an ETA from the pace so far would not see a quota's wait to come)."""
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        remaining = self.total - self.done
        eta = remaining / rate if rate else float("nan")
        worst = (remaining + later) / rate if rate else float("nan")
        quota = pace(remaining) if pace is not None and remaining else 0.0
        paced = quota > 0 and not quota < eta  # nan (nothing answered yet) counts as below
        if paced:
            eta, worst = quota, pace(remaining + later) if later else quota
        shown = (f"ETA {eta:.0f}s" if eta == eta else "ETA -") + (" at the quota's pace" if paced else "")
        if later and worst == worst:
            shown += f" (up to {worst:.0f}s if undecided checks ask {later} more batch{'es' if later > 1 else ''})"
        return (f"llm requests {self.done}/{self.total} ({self.answers_done}/{self.answers_total} "
                f"answers), {self.tokens} tokens, {self.throttled} throttled (429), {shown}")


def on_threads(function: Callable[[Any], Any], items: list[Any], workers: int, name: str) -> list[Any]:
    """`function` of each item on up to `workers` daemon threads, the results in the items' order; the first
    item's exception (by order) is raised once every item is done, as ThreadPoolExecutor.map does. Daemon
    threads: an interrupted run's process ends at once, where an executor's threads are joined at exit, each
    waiting for its request in flight (up to --llm-timeout)."""
    results: list[Any] = [None] * len(items)
    errors: dict[int, BaseException] = {}
    order = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(order, None)
            if index is None:
                return
            try:
                results[index] = function(items[index])
            except BaseException as error:  # handed to the caller, as an executor would
                errors[index] = error

    threads = [threading.Thread(target=work, name=f"{name}-{number}", daemon=True)
               for number in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[min(errors)]
    return results


class Fetcher:
    """The run's requests and their outcomes. `config` is the run's RunConfig; `settings` gives the endpoint
    and credential (read when fetching starts); `relative` shows a path as the user knows it;
    `deployment_source` names the setting that chose a deployment (for a 404's one line)."""

    def __init__(self, config: Any, run_id: str, *, settings: Callable[[], Settings],
                 relative: Callable[[str | Path], str], deployment_source: Callable[[str], str | None]) -> None:
        self.config = config
        self.run_id = run_id
        self._settings = settings
        self._relative = relative
        self._deployment_source = deployment_source
        self.requests: dict[str, ChatRequest] = {}
        self.cassettes_of: dict[str, list[Path]] = {}
        self.outcomes: dict[str, Outcome] = {}
        # (key, cassette) -> the answer that case file reads (its cassette's own recording, where files recorded
        # apart hold different answers to a prompt they share): outcome_for
        self._own: dict[tuple[str, Path], Completion] = {}
        self._from_elsewhere: set[str] = set()  # outcomes another xdist worker asked, or --llm-resume's journal gave
        self.ready: dict[str, threading.Event] = {}
        self.progress = Progress()
        self.library: Any = None
        self.stopped: str | None = None   # why no request of the run can succeed (credentials, refusals)
        self.resumed_from: tuple[Path, int] | None = None  # --llm-resume's journal, and how many of its answers were used
        self._failed_elsewhere = 0  # requests pytest-xdist workers could not have answered
        self.resumed_journals: dict[Path, frozenset[str]] = {}  # every journal --llm-resume read, its request keys
        self.interrupted = False  # the run was stopped (Ctrl-C): the summary says how to resume it
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._asked: set[str] = set()
        self._client: Any = None
        self._limiter: Any = None
        self._journal: Journal | None = None
        self._shared: SharedOutcomes | None = None   # pytest-xdist workers: each request asked by one of them
        self._resumed: dict[str, Completion] = {}    # --llm-resume: an earlier run's answers by request key
        self._first_asked = threading.Event()   # set once one request reached the deployment
        self._first_lock = threading.Lock()
        self._first_claimed = False
        self._refuses_n: set[str] = set()       # deployments that refuse n > 1: fan out to single requests
        # deployments that answer fewer choices than n (n asked, choices returned): fan out too
        self._ignores_n: dict[str, tuple[int, int]] = {}

    def want(self, request: ChatRequest, cassette: Path) -> None:
        """Note a request and the cassette that holds its answer."""
        with self._lock:
            self.requests.setdefault(request.key, request)
            self.ready.setdefault(request.key, threading.Event())
            self._want_key(request.key, cassette)

    def new_library(self, mode: str) -> CassetteLibrary:
        library = CassetteLibrary(mode)
        for key, paths in list(self.cassettes_of.items()):
            for path in paths:
                library.want(key, path)
        return library

    def recorded(self, request: ChatRequest, cassette: Path) -> bool:
        """Whether the cassette holds the request (asks nobody)."""
        self.want(request, cassette)
        with self._lock:
            if self.library is None:
                self.library = self.new_library("new")
        return self.library.lookup(request.key) is not None

    def await_outcome(self, key: str, on_wait: Callable[[], None] | None, cassette: Path | None = None) -> Outcome:
        while not self.ready[key].wait(0.25):
            if on_wait is not None:
                on_wait()
        return self.outcome_for(key, cassette)

    def outcome_for(self, key: str, cassette: Path | None) -> Outcome | None:
        """The outcome of `key` as the case file whose cassette is `cassette` reads it (None: not there yet).
        A prompt several case files share is replayed once, from the first cassette that holds it (or by
        another pytest-xdist worker); a cassette that recorded it apart (its file recorded alone) gives its own
        file its own answers, so a file's verdicts do not depend on which other files are in the run. Looked
        at when a file reads the answer, not when it arrives: a later batch is asked by one file before another
        file wants it."""
        with self._lock:
            outcome = self.outcomes.get(key)
            own = self._own.get((key, cassette)) if cassette is not None else None
        if own is not None:
            return own
        if (cassette is None or self.library is None or not isinstance(outcome, Completion)
                or not outcome.replayed):
            return outcome
        chosen = outcome
        replayed_here = self.library.lookup(key)
        if key not in self._from_elsewhere and replayed_here is not None \
                and self.library.cassette(cassette).lookup(key) is replayed_here:
            mine = None  # the very recording this process replayed: nothing to compare
        else:
            mine = self._recorded_in(cassette, key)
        if mine is not None and (mine.texts, mine.finish_reasons) != (outcome.texts, outcome.finish_reasons):
            chosen = mine
        with self._lock:
            self._own[(key, cassette)] = chosen
        return chosen

    def _recorded_in(self, cassette: Path, key: str) -> Completion | None:
        """The answer one cassette recorded for `key`, as a replay reads it: the request itself, or, for a
        deployment that ignored or refused n, the single requests that completed it (None: not all there)."""
        request = self.requests.get(key)
        store = self.library.cassette(cassette)
        stored = store.lookup(key)
        first = replayed_completion(stored) if stored is not None else None
        if stored is not None and first is None:
            return None  # a recording the fast path cannot read (a content-filter 400): the SDK's replay stands
        have = len(first.texts) if first is not None else 0
        if request is None or have >= request.n or (first is not None and have == 0):
            return first
        parts = [first] if first is not None else []
        for index in range(have, request.n):
            sample = store.lookup(request.sample(index).key)
            part = replayed_completion(sample) if sample is not None else None
            if part is None:
                return None
            parts.append(part)
        return merge_samples(parts)

    def start(self, keys: list[str] | None = None) -> None:
        """Ask every registered prompt (or just `keys`) in the background."""
        unasked: list[str] = []
        with self._lock:
            if self._client is None:
                self._prepare()
            if keys is not None:
                wanted = [key for key in keys if not self.ready[key].is_set() and key not in self._asked]
                self._asked.update(wanted)
                if self._stopping.is_set():  # the run is ending: no thread is started, the keys say why below
                    unasked = wanted
                elif wanted:
                    threading.Thread(target=self._fetch_all, args=(wanted,), daemon=True).start()
        for key in unasked:  # whoever waits for them is woken with the reason ("not asked: ...")
            self._store(key, self._outcome_of(key), journal=False)
        if keys is not None:
            return
        with self._lock:
            if self._thread is None and self.requests:
                pending = [key for key in self.requests if key not in self._asked]
                self._asked.update(pending)
                self._thread = threading.Thread(target=self._fetch_all, args=(pending,),
                                                 name="llmbias-fetch", daemon=True)
                self._thread.start()

    def _prepare(self) -> None:
        mode = self.config.mode
        self.library = None if mode == "live" else self.new_library(mode)
        self._client = build_client(self._settings(), library=self.library)
        if mode == "replay":
            self._first_asked.set()  # nothing reaches a deployment: no need to send the first request alone
        # a replay asks nobody: no quota to keep (a missing recording is said at once, not after the quota's wait)
        self._limiter = None if mode == "replay" else RateLimiter(self.config.tpm, self.config.rpm, stop=self._stopping)
        if mode != "replay":
            if self.config.resume:  # before this run's own journal exists: every one left is an earlier run's
                path, self._resumed, self.resumed_journals = earlier_answers(self.config.rootdir, self.run_id)
                if path is not None:
                    self.resumed_from = (path, 0)
            self._journal = Journal(self.config.rootdir, self.run_id)
            if self.config.lazy:  # a pytest-xdist worker: what another worker asks is not asked again
                self._shared = SharedOutcomes(self.config.rootdir, self.run_id)

    def _fetch_all(self, pending: list[str]) -> None:
        with self._lock:
            if not self.progress.total:  # the ETA counts from the first request, not from start-up
                self.progress.started = time.monotonic()
            self.progress.total += len(pending)
            self.progress.answers_total += sum(self.requests[key].n for key in pending)
        workers = max(1, self.config.concurrency)
        try:
            on_threads(self._fetch_one, pending, workers, "llmbias-ask")
        except RuntimeError:
            # the interpreter is shutting down (an interrupted run ending while a later batch was being asked):
            # no new thread may start; a test still waiting is told why
            if not self._stopping.is_set():
                raise
            for key in pending:
                if not self.ready[key].is_set():
                    self._store(key, self._outcome_of(key), journal=False)
        finally:
            if self.library is not None:
                self.library.flush()

    def _fetch_one(self, key: str) -> None:
        if self.ready[key].is_set():
            return
        while self._shared is not None and not self._shared.claim(key):
            shared = self._shared.wait(key, self._stopping)
            if shared is not None:  # another worker asked it (and journaled it): this one only reads it
                self._from_elsewhere.add(key)
                if isinstance(shared, Completion):
                    self._copy_recording(key, *self._shared.recorded_in(key))
                self._store(key, shared, journal=False)
                return
        resumed = self._resumed.get(key)
        if resumed is not None:  # answered in the run this one resumes: journaled again, not asked
            with self._lock:
                path, used = self.resumed_from or (Path(), 0)
                self.resumed_from = (path, used + 1)
            self._from_elsewhere.add(key)
            self._store(key, resumed)
            return
        self._ask_first_or_after(key)

    def _ask_first_or_after(self, key: str) -> None:
        # The first request goes alone until the deployment answers it: a refusal every request would
        # meet (credentials, the case file's settings) then stops the run at one request.
        while not self._first_asked.is_set():
            with self._first_lock:
                claimed, self._first_claimed = not self._first_claimed, True
            if claimed:
                try:
                    outcome = self._outcome_of(key)
                finally:
                    with self._first_lock:
                        self._first_claimed = False
                self._store(key, outcome)
                return
            self._first_asked.wait(0.05)
        self._store(key, self._outcome_of(key))

    def _outcome_of(self, key: str) -> Completion | str | BaseException:
        request = self.requests[key]
        if self.stopped is not None:
            return f"not asked: {self.stopped}"
        if self._stopping.is_set():
            return "not asked: the run was interrupted"
        try:
            if request.deployment in self._refuses_n and request.n > 1:
                outcome: Completion | str | BaseException = self._ask_singly(key, request)
            else:
                outcome = self._ask(key, request)
        except RunStopped as stop:
            outcome = self._stop_run(stop)
        except Stopped as stopped:  # the run was interrupted while this request waited
            outcome = str(stopped)
        except Exception as error:
            outcome = self._describe_failure(key, error)
        if not (isinstance(outcome, Completion) and outcome.replayed):
            self._first_asked.set()  # a replayed answer proves nothing about the deployment
        return outcome

    def _stop_run(self, stop: RunStopped) -> str:
        """No request of the run can succeed: say why once, and wake every request still waiting to be sent."""
        reason = stop.named_by(self._deployment_source(stop.deployment)) if isinstance(stop, DeploymentNotFound) \
            else str(stop)
        if self.stopped is None:
            self.stopped = reason
        self._stopping.set()  # paced and gated requests give up instead of idling until the run ends
        return reason

    def _ask(self, key: str, request: ChatRequest) -> Completion:
        replayed = self._replayed(key)
        if replayed is not None:
            return self._all_samples(key, request, replayed)
        if request.n > 1 and self._recorded_singly(request):
            return self._ask_singly(key, request)
        # A deployment known to ignore n is still asked the request itself first, then the missing samples: the
        # same recordings whenever it was learned (a timing of its own under concurrency and pytest-xdist), so a
        # re-recording replaces every one of them and a replay finds what was judged. Paced at what it returns.
        returns = self._ignores_n.get(request.deployment, (0, 0))[1] or None
        try:
            answer = ask(self._client, request, attempts=self.config.attempts, limiter=self._limiter,
                         answered=self._answered_by(request), sleep=self._stopping.wait, choices=returns)
            return self._all_samples(key, request, answer)
        except NRefused:
            self._refuses_n.add(request.deployment)
        except Exception as error:
            # Recorded by single requests (its deployment refused or ignored n > 1 then): replay those.
            if not (is_cassette_miss(error) and request.n > 1 and self.library is not None):
                raise
            self._want_samples(key, request, range(request.n))
            if self.library.lookup(request.sample(0).key) is None:
                raise
        return self._ask_singly(key, request)

    def _recorded_singly(self, request: ChatRequest) -> bool:
        """Recorded as single requests (its deployment refused or ignored n then): a record run replays those
        instead of asking the deployment again."""
        if self.library is None:
            return False
        first = request.sample(0)
        with self._lock:  # the library finds a key in the cassettes it was told hold it
            for path in list(self.cassettes_of.get(request.key, ())):
                self.library.want(first.key, path)
        return self.library.lookup(first.key) is not None

    def _answered_by(self, request: ChatRequest) -> Callable[[Completion | None], None]:
        """What the first answer from a deployment tells the run, noted before the requests held behind it go."""
        def answered(answer: Completion | None) -> None:
            if answer is not None and 0 < len(answer.texts) < request.n:
                self._note_ignored_n(request, len(answer.texts))
            self._first_asked.set()

        return answered

    def _note_ignored_n(self, request: ChatRequest, choices: int) -> None:
        with self._lock:
            self._ignores_n.setdefault(request.deployment, (request.n, choices))

    def _all_samples(self, key: str, request: ChatRequest, answer: Completion) -> Completion:
        """Fewer choices than the n asked (a server or gateway that ignores n): the missing samples are
        asked as single seeded requests, each its own cassette entry, as for a refused n > 1."""
        got = len(answer.texts)
        if not 0 < got < request.n:  # a filtered prompt has no choices at all: an outcome, not a short answer
            return answer
        self._note_ignored_n(request, got)
        return merge_samples([answer, self._ask_samples(key, request, range(got, request.n))])

    def _replayed(self, key: str) -> Completion | None:
        """A recorded answer read straight from its cassette (the replay fast path): the SDK builds no
        request and parses no response for it. The cassette transport holds the same recordings under
        the same keys, so this finds exactly what the SDK's request would; an answer it cannot read
        (a recorded content-filter 400, an unusual body) goes through the SDK as before."""
        if self.library is None:
            return None
        started = time.perf_counter()
        stored = self.library.lookup(key)
        return None if stored is None else replayed_completion(stored, time.perf_counter() - started)

    def _want_samples(self, key: str, request: ChatRequest, indices: range) -> None:
        with self._lock:
            for path in list(self.cassettes_of.get(key, ())):
                for index in indices:
                    self._want_key(request.sample(index).key, path)

    def _ask_singly(self, key: str, request: ChatRequest) -> Completion:
        """n single requests instead of one refused (or ignored) n > 1."""
        return self._ask_samples(key, request, range(request.n))

    def _ask_samples(self, key: str, request: ChatRequest, indices: range) -> Completion:
        """Samples `indices` of a request as single seeded requests: concurrently, paced, each its own cassette
        entry; one completion for them all."""
        self._want_samples(key, request, indices)

        def one(index: int) -> Completion:
            single = request.sample(index)
            replayed = self._replayed(single.key)
            if replayed is not None:
                return replayed
            return ask(self._client, single, attempts=self.config.attempts, limiter=self._limiter,
                       answered=self._answered_by(single), sleep=self._stopping.wait)

        return merge_samples(on_threads(one, list(indices), max(1, self.config.concurrency), "llmbias-sample"))

    def learned(self, from_worker: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the run learned about its deployments' n, as plain data; merges a pytest-xdist worker's first."""
        with self._lock:
            if from_worker:
                self._failed_elsewhere += int(from_worker.get("failed") or 0)
                for name, (asked, got) in dict(from_worker.get("ignores_n") or {}).items():
                    self._ignores_n.setdefault(name, (asked, got))
                self._refuses_n.update(from_worker.get("refuses_n") or ())
                resumed = from_worker.get("resumed")
                if resumed:
                    path, used = self.resumed_from or (Path(resumed[0]), 0)
                    self.resumed_from = (path, used + int(resumed[1]))
            return {"ignores_n": {name: list(counts) for name, counts in self._ignores_n.items()},
                    "refuses_n": sorted(self._refuses_n),
                    "resumed": [str(self.resumed_from[0]), self.resumed_from[1]] if self.resumed_from else None,
                    "failed": self._failed_elsewhere + sum(1 for outcome in self.outcomes.values()
                                                           if not isinstance(outcome, Completion))}

    def answered_keys(self) -> set[str]:
        """The requests this run has answers for (asked, or taken from a journal)."""
        with self._lock:
            return {key for key, outcome in self.outcomes.items() if isinstance(outcome, Completion)}

    def notes(self) -> list[str]:
        """What the run learned about its deployments that the user should know, one line each."""
        with self._lock:
            ignored, refused = dict(self._ignores_n), set(self._refuses_n)
        # the results say why they are few; the reason itself is the run's last line, said once
        lines = (["the run stopped early: no request of it could succeed (why: the last line)"]
                 if self.stopped is not None else [])
        lines += [f"deployment {name!r} ignores n (asked for {asked} answers in one request, it returned {got}): "
                 "every missing sample was asked as a single seeded request of its own"
                 for name, (asked, got) in sorted(ignored.items())]
        lines += [f"deployment {name!r} refuses n > 1: every prompt's samples were asked as single seeded requests"
                  for name in sorted(refused - set(ignored))]
        # a pytest-xdist controller asks nothing itself: its workers journal under the run's id
        journal = self._journal.path if self._journal is not None else Journal.path_for(self.config.rootdir, self.run_id)
        interrupted = self.interrupted and self.config.mode == "live" and journal.is_file()
        kept = sum(1 for _ in journal.open(encoding="utf-8")) if interrupted else 0
        if kept:
            lines.append(f"interrupted: {kept} requests' answers are kept in {self._relative(journal)}; run again "
                         "with --llm-resume (and the same arguments) to ask only for the rest")
        if self.config.resume:
            path, used = self.resumed_from or (None, 0)
            lines.append(f"--llm-resume: {used} requests answered from {self._relative(path)}, the rest asked"
                         if path is not None else
                         f"--llm-resume: no journal of an earlier run in {JOURNAL_DIR.as_posix()}/: everything asked")
        return lines

    def _want_key(self, key: str, cassette: Path) -> None:
        """Note a key asked on the way to a request's answer (called with the lock held): kept when pruning."""
        paths = self.cassettes_of.setdefault(key, [])
        if cassette not in paths:
            paths.append(cassette)
        if self.library is not None:
            self.library.want(key, cassette)

    def _describe_failure(self, key: str, error: Exception) -> str | BaseException:
        if is_cassette_miss(error):
            paths = ", ".join(self._relative(path) for path in self.cassettes_of.get(key, ()))
            return f"{NO_RECORDING}{paths}"  # the test's message adds the command that records it
        if isinstance(error, RequestFailed):
            return str(error)
        return error  # a bug: the tests that need this prompt re-raise it with its traceback

    def _store(self, key: str, outcome: Completion | str | BaseException, *, journal: bool = True) -> None:
        with self._lock:
            self.outcomes[key] = outcome
            self.progress.done += 1
            if isinstance(outcome, Completion):
                self.progress.answers_done += len(outcome.texts) or self.requests[key].n  # filtered: n withheld
                self.progress.tokens += outcome.prompt_tokens + outcome.completion_tokens
                self.progress.throttled += outcome.throttled
        if journal and isinstance(outcome, Completion) and self._journal is not None:
            self._journal.write(key, self.requests[key], outcome)
        if journal and self._shared is not None:
            self._shared.publish(key, outcome, *(self._written_recordings(key) if isinstance(outcome, Completion)
                                                 else ((), ())))
        self.ready[key].set()

    def _recording_keys(self, key: str) -> list[str]:
        """The request itself and, for a deployment that ignored or refused n, the single requests that completed it."""
        request = self.requests.get(key)
        return [key] + ([request.sample(index).key for index in range(request.n)] if request and request.n > 1 else [])

    def _written_recordings(self, key: str) -> tuple[list[str], list[str]]:
        """Recording: the cassettes holding `key`'s recording, written to disk now (another pytest-xdist worker
        copies it from there into its own case files' cassettes), and which of its request keys this run
        recorded (in "all" mode an older recording of a sample is not this run's)."""
        if self.library is None or self.library.mode == "replay":
            return [], []
        paths, recorded = [], []
        for path in self.library.paths_for(key):
            cassette = self.library.cassette(path)
            now = [wanted for wanted in self._recording_keys(key) if cassette.recorded_now(wanted)]
            if now:
                cassette.flush()
                paths.append(str(path))
                recorded += [wanted for wanted in now if wanted not in recorded]
        return paths, recorded

    def quota_seconds(self, count: int) -> float:
        """How long `count` more requests take at the deployment's quota (0 when nothing paces them)."""
        return self._limiter.seconds_ahead(count) if self._limiter is not None else 0.0

    def _copy_recording(self, key: str, paths: list[str], recorded: list[str]) -> None:
        """Recording under pytest-xdist: an answer another worker asked goes into this worker's cassettes that
        want it too (copied from the cassette it was recorded in), so each case file replays on its own, as
        `CassetteLibrary.want` does within one process."""
        if self.library is None or self.library.mode == "replay" or not paths:
            return
        with self._lock:
            own = list(self.cassettes_of.get(key, ()))
        for path in paths:
            source = Cassette(Path(path), "new")
            for wanted in recorded:  # what the other worker recorded this run (the request, or its samples)
                found = source.entry(wanted)
                if found is None:
                    continue
                for target in own:
                    with self._lock:
                        self._want_key(wanted, target)
                    cassette = self.library.cassette(target)
                    if not cassette.recorded_now(wanted):  # an older recording ("all") is replaced
                        cassette.record(wanted, *found)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask nothing more; keep what arrived (cassettes flushed, journal closed)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.library is not None:
            self.library.close()  # a request still in flight records nothing after the summary counted
        if self._journal is not None:
            self._journal.close()


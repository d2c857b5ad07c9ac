"""The run: which prompts are needed, their answers (fetched once, concurrently), and the result rows."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cases import MAX_LOOKS, Case
from .rows import AnswerRow, VerdictRow
from .verdicts import Verdicts
from .client import DEFAULT_DEPLOYMENT, RunStopped, Settings, estimate_tokens, merge_samples
from .fetching import NO_RECORDING, Fetcher
from .wire import ChatRequest, Completion
from .text import word_count

MODES = ("replay", "new", "all", "live")


@dataclass(frozen=True)
class RunConfig:
    mode: str = "replay"                 # one of MODES
    deployment: str | None = None        # --llm-deployment: overrides the YAML
    default_deployment: str | None = None  # ini llmbias_deployment: when the YAML names none
    samples: int | None = None           # --llm-samples: overrides the YAML
    max_samples: int | None = None       # --llm-max-samples: overrides the YAML
    default_max_samples: int | None = None  # ini llmbias_max_samples: when the YAML sets none
    language: str | None = None          # ini llmbias_language: the answers' language when the YAML sets none
    cassette_dir: str | None = None      # ini llmbias_cassette_dir: one folder for all cassettes
    concurrency: int = 8                 # requests in flight
    tpm: int | None = None               # --llm-tpm: the deployment's tokens-per-minute quota
    rpm: int | None = None               # --llm-rpm: its requests-per-minute quota
    attempts: int = 6                    # tries per request (throttling, 5xx, timeouts)
    timeout: float | None = None         # --llm-timeout: seconds per request (None: client.Settings' default)
    results_dir: str | None = None       # --llm-results: Parquet output
    spark: bool = True                   # ini llmbias_spark: false keeps rows only, starts no JVM
    judge_ahead: bool = True             # ini llmbias_judge_ahead: live/record tests judged in the background
    rootdir: Path = field(default_factory=Path.cwd)
    run_id: str | None = None            # given by the pytest-xdist controller to its workers
    lazy: bool = False                   # fetch each case when its first test runs (xdist workers)
    correction: str | None = None        # --llm-correction: "holm" or "bh" over all the run's tests
    provider: str | None = None          # ini llmbias_provider: azure, openai, databricks (else from the environment)
    token_scope: str | None = None       # ini llmbias_token_scope: Entra ID scope (other clouds)
    resume: bool = False                 # --llm-resume: the newest earlier journal's answers stand in for requests


class PromptUnavailable(Exception):
    """The answers a test needs could not be had; the message says why (`unrecorded`: a replay miss)."""

    def __init__(self, message: str, *, unrecorded: bool = False) -> None:
        super().__init__(message)
        self.unrecorded = unrecorded


class PromptFiltered(Exception):
    """Azure's content filter withheld every answer of a variant; an outcome, not an error."""


# A variant needs at least this share of its answers usable (non-empty) for a check to judge it.
# An answer cut at the token limit with fewer words than this (text.word_count: Chinese counts half a
# word per character) is "truncated to nothing": it cannot show whether the model assumed a gender, so
# it is never judged as a neutral answer.
MIN_TRUNCATED_WORDS = 8


@dataclass(frozen=True)
class Plan:
    requests: int
    samples: int
    tokens: int
    seconds: float


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


class LLMSession:
    """Collects the run: every hook of the plugin forwards here."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.run_id = config.run_id or new_run_id()
        self.merged_answer_rows: list[dict[str, Any]] = []   # from pytest-xdist workers
        self.verdict_rows: list[dict[str, Any]] = []
        self.results: Any = None          # results.RunResults once the run has finished
        self.api_key: str | None = None   # from a hook (a secret scope); else the environment
        self._cases: dict[tuple[str, str], Case] = {}
        # (case file, case id) -> check -> (batches its verdict was judged on, the variants it read; None: all)
        self._used: collections.defaultdict[tuple[Any, str], dict[str, tuple[int, tuple[str, ...] | None]]] = \
            collections.defaultdict(dict)
        self._lock = threading.Lock()
        self._answer_index: dict[tuple[Any, ...], dict[str, Any]] = {}  # merged rows by (run, case, variant, sample)
        self._charged_requests: set[str] = set()  # merged: the requests whose usage some kept row carries
        self._spark: Any = None
        self.selected: list[tuple[Case, Any]] = []     # (case, check) of every selected test
        self._settings: Settings | None = None
        self._verdicts = Verdicts(self, (PromptUnavailable, PromptFiltered))
        self.capped: set[tuple[int, int]] = set()  # (samples, max_samples) whose looks were capped at MAX_LOOKS
        self.unpruned: set[Path] = set()  # cassettes of files run in part: nothing dropped from them
        self.kept_because = "some of its tests did not run"  # why nothing was dropped from them
        # pytest-xdist controller of a record run: each cassette's keys as the workers saw them (wanted, present,
        # held before the run, recorded), and the cassettes of files some worker ran in part
        self.worker_cassettes: dict[str, dict[str, set[str]]] = {}
        self.worker_partial: set[str] = set()
        self._dropped_here: dict[str, int] = {}
        self._relative: dict[str | Path, str] = {}
        self.fetcher = Fetcher(config, self.run_id, settings=self.settings, relative=self.relative,
                               deployment_source=self.deployment_source)

    # -- planning -----------------------------------------------------------------------------
    def register(self, cases: Iterable[Case]) -> None:
        """Declare the cases whose tests were selected; only their prompts are asked."""
        with self._lock:
            for case in cases:
                if (case.path, case.id) in self._cases:
                    continue
                self._cases[(case.path, case.id)] = case
                for variant in case.variants:
                    self._want(self.request_for(case, variant.prompt), self._cassette_path(case))

    def _want(self, request: ChatRequest, cassette: Path) -> None:
        """Note a request and the cassette that holds its answer."""
        self.fetcher.want(request, cassette)

    def _await(self, key: str, on_wait: Callable[[], None] | None,
               case: Case | None = None) -> Completion | str | BaseException:
        return self.fetcher.await_outcome(key, on_wait, None if case is None else self._cassette_path(case))

    def _outcome(self, case: Case, key: str) -> Completion | str | BaseException | None:
        """The outcome of a request as `case`'s file reads it (its own cassette's recording), if there yet."""
        return self.fetcher.outcome_for(key, self._cassette_path(case))

    @property
    def has_cases(self) -> bool:
        return bool(self._cases) or bool(self.merged_answer_rows) or bool(self.verdict_rows)

    def merge(self, answer_rows: list[dict[str, Any]], verdict_rows: list[dict[str, Any]]) -> None:
        """Rows a pytest-xdist worker gathered, kept on the controller for the one DataFrame. Two workers
        can hold the same answer (one judged its case, the other's test read every answer): it is one
        row, used by the checks either worker judged with it."""
        with self._lock:
            charged_before = set(self._charged_requests)
            for row in answer_rows:
                request = row.pop("request_key", None)
                identity = (row["run_id"], row["case_file"], row["case_id"], row["variant"], row["sample"])
                kept = self._answer_index.get(identity)
                if kept is None:
                    if request is not None and request in charged_before:  # another worker's rows carry its usage
                        row["prompt_tokens"] = row["completion_tokens"] = 0
                    elif request is not None and (row["prompt_tokens"] or row["completion_tokens"]):
                        self._charged_requests.add(request)
                    self._answer_index[identity] = row
                    self.merged_answer_rows.append(row)
                else:
                    kept["used_by"] = sorted(set(kept["used_by"]) | set(row["used_by"]))
            self.verdict_rows.extend(verdict_rows)

    def deployment_for(self, case: Case) -> str:
        return (self.config.deployment or case.deployment or self.config.default_deployment
                or DEFAULT_DEPLOYMENT)

    @property
    def gathered_anything(self) -> bool:
        """Whether any answer or verdict exists (else there is nothing to build results from)."""
        return bool(self.fetcher.outcomes or self.verdict_rows or self.merged_answer_rows)

    def request_for(self, case: Case, prompt: str, batch: int = 1) -> ChatRequest:
        """The request of one prompt's answers; batch k > 1 is adaptive sampling's k-th batch of the same size, the
        last one only what max_samples leaves (samples 3, max_samples 10: 3, 3, 3, then 1)."""
        samples = self.samples_of(case)
        n = max(1, min(samples, self.max_samples_of(case) - samples * (batch - 1)))
        return ChatRequest(
            deployment=self.deployment_for(case),
            system_prompt=case.system_prompt,
            prompt=prompt,
            max_tokens=case.max_tokens,
            temperature=case.temperature,
            n=n,
            user=f"llmbias-batch-{batch}" if batch > 1 else "",
            max_completion_tokens=case.max_completion_tokens,
            reasoning_effort=case.reasoning_effort,
        )

    def samples_of(self, case: Case) -> int:
        return self.config.samples or case.samples

    def max_samples_of(self, case: Case) -> int:
        """Adaptive sampling's ceiling: --llm-max-samples, the YAML's, ini llmbias_max_samples, else DEFAULT_MAX_SAMPLES (100)."""
        from .cases import DEFAULT_MAX_SAMPLES

        ceiling = self.config.max_samples or case.max_samples or self.config.default_max_samples or DEFAULT_MAX_SAMPLES
        samples = self.samples_of(case)
        if ceiling > samples * MAX_LOOKS:  # --llm-samples 1 with the default 100, say: said once at the end
            self.capped.add((samples, ceiling))
        return max(samples, min(ceiling, samples * MAX_LOOKS))

    def batches_of(self, case: Case) -> int:
        """How many batches adaptive sampling may ask at most (the first included)."""
        return len(_looks(self.samples_of(case), self.max_samples_of(case)))

    def settings(self) -> Settings:
        """Endpoint and credential for this run's mode, read once (the token provider is built once);
        raises client.ConfigError."""
        if self._settings is None:
            settings = Settings.from_env(needs_network=self.config.mode != "replay", api_key=self.api_key,
                                         provider=self.config.provider, token_scope=self.config.token_scope)
            if self.config.timeout is not None:
                settings = dataclasses.replace(settings, timeout=self.config.timeout)
            self._settings = settings
        return self._settings

    def _cassette_path(self, case: Case) -> Path:
        from .cassettes import cassette_path

        return cassette_path(Path(case.path), self.config.cassette_dir)

    def relative(self, path: str | Path) -> str:
        shown = self._relative.get(path)
        if shown is None:  # once per case file: resolving stats every folder of the path
            try:
                shown = Path(path).resolve().relative_to(self.config.rootdir.resolve()).as_posix()
            except ValueError:
                shown = Path(path).as_posix()
            self._relative[path] = shown
        return shown

    def plan(self, latency_s: float = 1.0) -> Plan:
        """What a live or record run would ask at most: requests, samples, tokens, time at the quota.

        Adaptive sampling's later batches count as the worst case (every batch of every prompt), except
        where recorded answers already decide: a replay or --llm-record plan judges every selected test on
        what is recorded and counts only the requests it misses, and the later batches of the cases that
        miss one."""
        from .throttle import RateLimiter

        requests = self._worst_case()
        if self.config.mode in ("replay", "new"):
            requests = self._not_decided_by_recordings(requests)
        else:
            requests = [request for _, _, request in requests]
        costs = [estimate_tokens(request) for request in requests]
        limiter = RateLimiter(self.config.tpm, self.config.rpm)
        return Plan(len(requests), sum(request.n for request in requests), sum(costs),
                    limiter.estimate_seconds(costs, self.config.concurrency, latency_s))

    def _worst_case(self) -> list[tuple[Case, int, ChatRequest]]:
        """(case, batch, request) of every batch adaptive sampling may ask for the registered cases."""
        found: list[tuple[Case, int, ChatRequest]] = []
        known: set[str] = set()
        for case in list(self._cases.values()):
            for batch in range(1, self.batches_of(case) + 1):
                for variant in case.variants:
                    request = self.request_for(case, variant.prompt, batch)
                    if request.key not in known:
                        known.add(request.key)
                        found.append((case, batch, request))
        return found

    def _not_decided_by_recordings(self, worst_case: list[tuple[Case, int, ChatRequest]]) -> list[ChatRequest]:
        """The requests a record run would still send: every selected test judged on the recordings (a replay
        of its own that asks nobody); a request it misses is needed, and so are the unrecorded later batches
        of a case from the first batch it misses (the worst case from there)."""
        rehearsal = LLMSession(dataclasses.replace(self.config, mode="replay", lazy=False, correction=None,
                                                   resume=False, results_dir=None, spark=False))
        rehearsal.register(case for case, _ in self.selected)
        try:
            for case, check in self.selected:
                try:
                    rehearsal.verdict_for(case, check)
                except (PromptUnavailable, PromptFiltered):
                    continue
            missed = {key for key, outcome in list(rehearsal.fetcher.outcomes.items())
                      if isinstance(outcome, str) and outcome.startswith(NO_RECORDING)}
        finally:
            rehearsal.stop_fetching(timeout=5.0)
        first_miss: dict[tuple[Any, str], int] = {}
        for case, batch, request in worst_case:
            if request.key in missed:
                where = (case.path, case.id)
                first_miss[where] = min(batch, first_miss.get(where, batch))
        needed = [request for case, batch, request in worst_case
                  if request.key in missed or (batch > first_miss.get((case.path, case.id), batch)
                                               and not rehearsal.fetcher.recorded(request, rehearsal._cassette_path(case)))]
        counted = {request.key for request in needed}
        needed += [rehearsal.fetcher.requests[key] for key in sorted(missed - counted)]  # a grader's requests
        return needed

    # -- fetching (pytest_llmbias.fetching) ---------------------------------------------------------
    def start_fetching(self, keys: list[str] | None = None) -> None:
        """Ask every registered prompt (or just `keys`) in the background."""
        self.fetcher.start(keys)

    def judge_ahead(self, tests: Iterable[tuple[Case, Any]] | None = None) -> None:
        """Live and record runs in one process: judge the selected tests (or just `tests`) in the background, as
        many at a time as requests may be in flight, so the later batches of undecided cases are asked together
        (pytest_llmbias.verdicts)."""
        if self.config.judge_ahead and self.config.mode != "replay" and not self.config.lazy and self.selected:
            self._verdicts.judge_ahead(self.config.concurrency, tests)

    def stop_judging_ahead(self) -> None:
        self._verdicts.stop_ahead()

    def stop_fetching(self, timeout: float = 30.0) -> None:
        """Ask nothing more; keep what arrived (cassettes flushed, journal closed)."""
        self._verdicts.stop_ahead()
        self.fetcher.stop(timeout)

    @property
    def progress(self) -> Any:
        return self.fetcher.progress

    @property
    def stopped(self) -> str | None:
        return self.fetcher.stopped

    def learned(self, from_worker: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the run learned about its deployments' n, and the looks it capped, as plain data; merges a
        pytest-xdist worker's first (its controller plans no case itself)."""
        if from_worker:
            self.capped.update((int(samples), int(ceiling)) for samples, ceiling in from_worker.get("capped") or ())
        return {**self.fetcher.learned(from_worker), "capped": sorted(self.capped)}

    def notes(self) -> list[str]:
        """What the run learned about its deployments that the user should know, one line each."""
        capped = [f"max_samples {ceiling} with samples {samples} would plan {-(-ceiling // samples)} adaptive looks: "
                  f"at most {MAX_LOOKS}, so at most {samples * MAX_LOOKS} answers a prompt were asked"
                  for samples, ceiling in sorted(self.capped)]
        return capped + self.fetcher.notes()

    def deployment_source(self, deployment: str) -> str | None:
        """Which setting chose this deployment name, as the user would go and fix it; None: the default."""
        if self.config.deployment == deployment:
            return "--llm-deployment"
        files = sorted({self.relative(case.path) for case in list(self._cases.values())
                        if case.deployment == deployment and not self.config.deployment})
        if files:
            return f"the deployment in {', '.join(files[:3])}{' ...' if len(files) > 3 else ''}"
        if self.config.default_deployment == deployment:
            return "ini llmbias_deployment"
        return None

    def _wanted_by_cassette(self) -> dict[Path, set[str]]:
        wanted: dict[Path, set[str]] = {}
        with self.fetcher._lock:  # judge-ahead threads may still note keys
            noted = [(key, list(paths)) for key, paths in self.fetcher.cassettes_of.items()]
        for key, paths in noted:
            for path in paths:
                wanted.setdefault(path, set()).add(key)
        return wanted

    def cassette_report(self, partial_files: set[Path]) -> dict[str, Any]:
        """A pytest-xdist worker's record run, for its controller: per cassette (written to disk first) the keys
        its cases wanted and the file's keys, and the cassettes of files it ran in part."""
        if self.fetcher.library is None or self.config.mode not in ("new", "all"):
            return {}
        self.fetcher.library.flush()
        wanted = self._wanted_by_cassette()
        return {"cassettes": {str(cassette.path): {"wanted": sorted(wanted.get(cassette.path, ())), **cassette.key_sets()}
                              for cassette in self.fetcher.library.cassettes()},
                "partial": sorted(str(self._cassette_path_of_file(path)) for path in partial_files)}

    def merge_cassettes(self, report: Mapping[str, Any]) -> None:
        """The controller: a worker's cassette report joins the others'."""
        for path, sets in dict(report.get("cassettes") or {}).items():
            merged = self.worker_cassettes.setdefault(str(path), {})
            for name, keys in sets.items():
                if name == "loaded" and name in merged:
                    # what the file held before the run: a worker that opened it later also read what
                    # another had recorded by then, so only what every worker found counts
                    merged[name] &= set(keys)
                else:
                    merged.setdefault(name, set()).update(keys)
        self.worker_partial.update(report.get("partial") or ())

    def prune_cassettes(self, partial_files: set[Path]) -> int:
        """After a whole record run: drop recordings that no selected case asked for, file by file.

        Files some of whose tests were deselected are left alone: their other cases still need theirs.
        Under pytest-xdist the controller does it on disk once every worker has written its cassettes, from
        what the workers wanted together.
        """
        if self.fetcher.library is None and self.worker_cassettes and self.config.mode in ("new", "all"):
            from .cassettes import Cassette

            self.unpruned = {Path(path) for path in self.worker_partial}
            for path, sets in self.worker_cassettes.items():
                if Path(path) in self.unpruned:
                    continue
                cassette = Cassette(Path(path), "new")
                self._dropped_here[path] = cassette.keep_only(sets.get("wanted", set()))
                cassette.flush()
            return sum(self._dropped_here.values())
        if self.fetcher.library is None or self.config.mode not in ("new", "all"):
            return 0
        wanted = self._wanted_by_cassette()
        partial = {self._cassette_path_of_file(path) for path in partial_files}
        self.unpruned = partial & set(wanted)
        return sum(self.fetcher.library.cassette(path).keep_only(keys)
                   for path, keys in wanted.items() if path not in partial)

    def keep_every_recording(self, because: str) -> None:
        """A run cut short, or one asking other requests than its files say, drops nothing; `because` says why."""
        self.kept_because = because
        if self.fetcher.library is None:
            self.unpruned = {Path(path) for path in self.worker_cassettes}
        else:
            self.unpruned = {cassette.path for cassette in self.fetcher.library.cassettes()}

    def cassette_counts(self) -> list[tuple[str, dict[str, int], bool]]:
        """A record run's cassettes: path from the rootdir, what the run did to each, whether it was pruned."""
        if self.fetcher.library is None and self.worker_cassettes and self.config.mode in ("new", "all"):
            from .cassettes import Cassette

            entries = []
            for path, sets in sorted(self.worker_cassettes.items()):
                present = set(Cassette(Path(path), "new").key_sets()["present"])
                recorded, loaded = sets.get("recorded", set()) & present, sets.get("loaded", set())
                added, rerecorded = len(recorded - loaded), len(recorded & loaded)
                counts = {"added": added, "re-recorded": rerecorded, "kept": len(present) - added - rerecorded,
                          "dropped": self._dropped_here.get(path, 0)}
                entries.append((self.relative(Path(path)), counts, Path(path) not in self.unpruned))
            return entries
        if self.fetcher.library is None or self.config.mode not in ("new", "all"):
            return []
        return [(self.relative(cassette.path), cassette.counts(), cassette.path not in self.unpruned)
                for cassette in sorted(self.fetcher.library.cassettes(), key=lambda cassette: cassette.path)]

    def _cassette_path_of_file(self, case_file: Path) -> Path:
        from .cassettes import cassette_path

        return cassette_path(case_file, self.config.cassette_dir)

    def answers_for(self, case: Case, *, on_wait: Callable[[], None] | None = None, batches: int = 1,
                    variants: Iterable[str] | None = None,
                    unusable: dict[str, str] | None = None,
                    cut: dict[str, int] | None = None) -> dict[str, list[str]]:
        """Variant name -> usable answer texts of batches 1..`batches` (content-filtered and empty samples
        left out; why the empty ones are unusable goes into `unusable`, variant name -> reason; how many
        usable ones were cut at the token limit into `cut`, variant name -> count).

        `variants`: the variants the check reads: only their later batches are asked (adaptive sampling asks
        only what a check reads), and only their unavailable or wholly filtered answers stop it.
        """
        self.register([case])
        wanted = set(variants) if variants is not None else None
        requests = [(variant, self.request_for(case, variant.prompt, batch))
                    for batch in range(1, batches + 1) for variant in case.variants
                    if batch == 1 or wanted is None or variant.name in wanted]
        if batches > 1:
            with self._lock:
                for _, request in requests:
                    self._want(request, self._cassette_path(case))
            self.start_fetching([request.key for _, request in requests])
        else:
            self.start_fetching([request.key for _, request in requests] if self.config.lazy else None)
        answers: dict[str, list[str]] = {}
        gathered: dict[str, list[Completion]] = {}
        problems, filtered = [], []
        for variant, request in requests:
            outcome = self._await(request.key, on_wait, case)
            if isinstance(outcome, BaseException):
                raise outcome
            if self.stopped is not None:
                raise RunStopped(self.stopped)
            read = wanted is None or variant.name in wanted  # a prompt the check does not read cannot stop it
            if isinstance(outcome, str):
                if read:
                    problems.append((variant.name, outcome))
                continue
            unfiltered = [text for text, reason in zip(outcome.texts, outcome.finish_reasons)
                          if reason != "content_filter"]
            if not unfiltered and variant.name not in answers and read:
                filtered.append(f"{variant.name}: {', '.join(sorted(set(outcome.filtered))) or 'filtered'}")
            kept = [(text, reason) for text, reason in zip(outcome.texts, outcome.finish_reasons)
                    if reason != "content_filter" and not is_unusable(text, reason)]
            usable = [text for text, _ in kept]
            if cut is not None:
                cut[variant.name] = cut.get(variant.name, 0) + sum(1 for _, reason in kept if reason == "length")
            gathered.setdefault(variant.name, []).append(outcome)
            answers.setdefault(variant.name, []).extend(usable)
        if unusable is not None:  # what was left out, counted over every batch of the variant
            for name, parts in gathered.items():
                note = _left_out(merge_samples(parts) if len(parts) > 1 else parts[0])
                if note:
                    unusable[name] = note
        if problems:
            raise PromptUnavailable(_group_problems(problems),
                                    unrecorded=any(cause.startswith(NO_RECORDING) for _, cause in problems))
        if filtered:
            raise PromptFiltered("content filter withheld every answer of " + "; ".join(filtered))
        return answers

    # -- verdicts ------------------------------------------------------------------------------
    def verdict_for(self, case: Case, check: Any, *, on_wait: Callable[[], None] | None = None) -> Any:
        """The check's verdict (adaptive looks, run-wide correction): pytest_llmbias.verdicts."""
        return self._verdicts.verdict_for(case, check, on_wait=on_wait)

    def ask(self, case: Case, on_wait: Callable[[], None] | None = None) -> Any:
        """The `ask` callable a check that grades with a model gets: one request to the case's deployment,
        through the cassettes like every other (a grading request is recorded and replayed too)."""

        def ask(system_prompt: str, prompt: str, max_tokens: int, temperature: float, n: int) -> list[str]:
            request = ChatRequest(self.deployment_for(case), system_prompt, prompt, max_tokens, temperature, n)
            with self._lock:
                self._want(request, self._cassette_path(case))
            self.start_fetching([request.key])
            outcome = self._await(request.key, on_wait, case)
            if isinstance(outcome, BaseException):
                raise outcome
            if isinstance(outcome, str):
                raise PromptUnavailable(f"grading request: {outcome}", unrecorded=outcome.startswith(NO_RECORDING))
            return list(outcome.texts)

        return ask

    def asked_count(self, case: Case, variant: Any, batches: int) -> int:
        """Answers that came back for the variant's first `batches` batches, usable or not."""
        found = 0
        for batch in range(1, batches + 1):
            request = self.request_for(case, variant.prompt, batch)
            outcome = self._outcome(case, request.key)
            if isinstance(outcome, Completion):
                found += len(outcome.texts) or request.n  # a filtered prompt: n answers withheld
        return found

    def record_use(self, case: Case, check: str, batches: int, reads: tuple[str, ...] | None) -> None:
        """Which answers a verdict was judged on: the answers table's `used_by` column."""
        with self._lock:
            self._used[(case.path, case.id)][check] = (batches, reads)

    def fetch_all(self, on_wait: Callable[[], None] | None = None) -> None:
        self.start_fetching()
        for key in list(self.fetcher.ready):
            self._await(key, on_wait)

    def progress_line(self) -> str:
        """The progress display's line: requests, answers, tokens, 429s, ETA (with the batches still to come)."""
        return self.fetcher.progress.line(self._batches_to_come(), self.fetcher.quota_seconds)

    def _batches_to_come(self) -> int:
        """Requests adaptive sampling may still ask: later batches not yet noted of cases with a check undecided."""
        checks_of: dict[tuple[Any, str], int] = {}
        for case, _ in self.selected:
            checks_of[(case.path, case.id)] = checks_of.get((case.path, case.id), 0) + 1
        with self._lock:
            cases, decided = list(self._cases.values()), {where: len(used) for where, used in self._used.items()}
        count = 0
        for case in cases:
            where = (case.path, case.id)
            if decided.get(where, 0) >= checks_of.get(where, 0):
                continue
            count += sum(1 for batch in range(2, self.batches_of(case) + 1) for variant in case.variants
                         if self.request_for(case, variant.prompt, batch).key not in self.fetcher.requests)
        return count

    # -- rows ---------------------------------------------------------------------------------
    def answer_rows(self, *, request_keys: bool = False) -> list[dict[str, Any]]:
        """One row per answer that arrived, in case order; cases never answered have none. `request_keys`: each
        row also says its request (`request_key`, not a column), for a pytest-xdist controller to count each
        request's usage once over the workers."""
        source_of_mode = {"replay": "replayed", "live": "live"}.get(self.config.mode)
        rows = list(self.merged_answer_rows)
        # a request's usage is counted once in the run, on the rows of the first case that read it (cases sharing a
        # prompt share its request); the same request answered apart (a file's own recording) is another
        counted: set[str] = set()
        for case in list(self._cases.values()):
            used = dict(self._used.get((case.path, case.id), {}))
            for variant, batch, request in self._asked_requests(case):
                outcome = self._outcome(case, request.key)
                if not isinstance(outcome, Completion):
                    continue
                charge_key = request.key + "\n" + hashlib.sha256("\0".join(outcome.texts).encode()).hexdigest()[:16]
                charged = charge_key not in counted
                counted.add(charge_key)
                texts = outcome.texts or ("",) * request.n    # a filtered prompt: n empty answers
                reasons = outcome.finish_reasons or ("content_filter",) * request.n
                filters = outcome.filtered if len(outcome.filtered) == len(texts) else outcome.filtered * len(texts)
                completion_tokens = _split(outcome.completion_tokens if charged else 0, len(texts))
                source = source_of_mode or ("replayed" if outcome.replayed else "recorded")
                for sample, text in enumerate(texts):
                    rows.append(AnswerRow(
                        run_id=self.run_id,
                        case_file=self.relative(case.path),
                        case_id=case.id,
                        variant=variant.name,
                        prompt=variant.prompt,
                        batch=batch,
                        sample=(batch - 1) * request.n + sample,
                        answer=text,
                        finish_reason=reasons[sample],
                        content_filter=filters[sample] if sample < len(filters) else "",
                        deployment=request.deployment,
                        model=outcome.model,
                        source=source,
                        # usage is per request: prompt tokens on the first sample, completion split evenly
                        prompt_tokens=outcome.prompt_tokens if sample == 0 and charged else 0,
                        completion_tokens=completion_tokens[sample],
                        latency_ms=round(outcome.latency_s * 1000.0, 3),
                        used_by=tuple(sorted(name for name, (batches, reads) in used.items()
                                             if batch <= batches and (reads is None or variant.name in reads))),
                    ).as_dict() | ({"request_key": charge_key} if request_keys else {}))
        return rows

    def _asked_requests(self, case: Case) -> list[tuple[Any, int, ChatRequest]]:
        """(variant, batch, request) of every batch this run noted for the case, batch order within variant."""
        found = []
        for variant in case.variants:
            for batch in range(1, self.batches_of(case) + 1):
                request = self.request_for(case, variant.prompt, batch)
                if batch > 1 and request.key not in self.fetcher.requests:
                    break
                found.append((variant, batch, request))
        return found

    def neutral_answers(self) -> dict[tuple[str, str], list[str]]:
        """(case file, case id) -> the neutral prompt's answers, for suite-level figures."""
        found = {}
        for case in self._cases.values():
            outcome = self._outcome(case, self.request_for(case, case.neutral).key)
            if isinstance(outcome, Completion):
                found[(self.relative(case.path), case.id)] = list(outcome.texts)
        return found

    def add_verdict(self, case: Case, check: str, outcome: str, verdict: Any = None,
                    message: str = "") -> None:
        details = getattr(verdict, "details", None) or {}
        if verdict is None and case.attributes:  # no verdict (no answers, a check that raised): the case's attribute
            details = {"options": {"attribute": ",".join(case.attributes)}}
        row = VerdictRow(
            run_id=self.run_id,
            case_file=self.relative(case.path),
            case_id=case.id,
            check=check,
            outcome=outcome,
            figure=getattr(verdict, "figure", None),
            low=getattr(verdict, "low", None),
            high=getattr(verdict, "high", None),
            threshold=getattr(verdict, "threshold", None),
            summary=getattr(verdict, "summary", None) or message,
            deployment=self.deployment_for(case),
            samples=details.get("answers_per_prompt") or self.samples_of(case),
            p_value=details.get("p_adjusted", details.get("p_value")),  # --llm-correction: as judged
            evidence=tuple(getattr(verdict, "evidence", ()) or ()),
            details=json.dumps(details, sort_keys=True, default=str),
        ).as_dict()
        with self._lock:
            self.verdict_rows.append(row)

    # -- Spark --------------------------------------------------------------------------------
    def start_spark(self, provided: Any = None) -> None:
        """Start Spark in the background, or take the session a hook provided (a notebook's spark)."""
        from .results import SPARK_LOG, SparkStarter

        if self._spark is None and self.config.spark:
            self._spark = SparkStarter(provided, log_path=self.config.rootdir / SPARK_LOG)
            self._spark.start()

    def answers_dataframe(self) -> Any:
        from .results import SparkStarter, to_dataframe

        self.start_spark()
        if not isinstance(self._spark, SparkStarter):
            raise RuntimeError("llm_answers needs Spark, and llmbias_spark is false")
        return to_dataframe(self._spark.result(), self.answer_rows(), AnswerRow)

    def finish(self, *, interrupted: bool = False, give_up: threading.Event | None = None) -> Any:
        """Build the run's DataFrames (and write Parquet) from what was gathered, even if interrupted:
        then answers still in flight and a Spark still starting are not waited for."""
        from .results import RunResults

        self.fetcher.interrupted = interrupted
        self.stop_fetching(timeout=1.0 if interrupted else 30.0)
        self.results = RunResults.build(self.run_id, self.answer_rows(), self.verdict_rows,
                                        self._spark, self.config.results_dir, spark=self.config.spark,
                                        interrupted=interrupted, give_up=give_up)
        self.results.suite = suite_report(self.results.answer_rows)
        if interrupted and self.results.suite:  # from the answers that arrived: some roles have one or two
            self.results.suite = [self.results.suite[0] + " (an interrupted run: from the answers that arrived "
                                  "before it stopped, not every occupation's)", *self.results.suite[1:]]
        return self.results


def _looks(samples: int, max_samples: int) -> list[Any]:
    from .checks import looks

    return looks(samples, max_samples)


def _group_problems(problems: list[tuple[str, str]]) -> str:
    """One clause per distinct cause, cause first: 'no recording in ... (neutral, male)'."""
    by_cause: dict[str, list[str]] = {}
    for variant, cause in problems:
        by_cause.setdefault(cause, []).append(variant)
    return "; ".join(f"{cause} ({', '.join(variants)})" for cause, variants in by_cause.items())


def suite_report(answer_rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Neutral answers pooled by occupation, compared with labour statistics (empty below 3 matches)."""
    from .checks.suite import case_role, suite_lines

    by_role: dict[str, list[str]] = {}
    for row in answer_rows:
        if row["variant"] == "neutral" and row["finish_reason"] != "content_filter":
            role = case_role(row["case_id"], row["prompt"]) or row["case_id"]
            by_role.setdefault(role, []).append(row["answer"])
    return suite_lines(by_role)


def _split(total: int, parts: int) -> list[int]:
    if parts <= 0:
        return []
    share, remainder = divmod(total, parts)
    return [share + (1 if index < remainder else 0) for index in range(parts)]


# -- unusable answers -----------------------------------------------------------------------------
# Contract with the checks: an empty answer is never a neutral one. answers_for leaves empty and
# whitespace-only answers out and says why per variant; the checks get the reasons (CaseAnswers.unusable)
# and report them. pytest_llmbias.verdicts makes a check inconclusive when too few of a variant it reads
# are usable (verdicts.MIN_USABLE_SHARE).


def is_unusable(text: str, finish_reason: str) -> bool:
    """Empty, or cut at the token limit before saying anything (a content-filtered one is counted apart)."""
    return not text.strip() or (finish_reason == "length" and word_count(text) < MIN_TRUNCATED_WORDS)


def _left_out(outcome: Completion) -> str:
    """Why some of a variant's answers are not judged: empty, cut short, withheld by the content filter."""
    unfiltered = [(text, reason) for text, reason in zip(outcome.texts, outcome.finish_reasons)
                  if reason != "content_filter"]
    notes = []
    if any(is_unusable(text, reason) for text, reason in unfiltered):
        notes.append(empty_answers_reason(outcome))
    withheld = len(outcome.texts) - len(unfiltered)
    if unfiltered and withheld:  # partly filtered: counted, never dropped silently
        notes.append(f"{withheld}/{len(outcome.texts)} answers withheld by the content filter"
                     + (f" ({', '.join(sorted({kind for kind in outcome.filtered if kind}))})"
                        if any(outcome.filtered) else ""))
    return "; ".join(notes)


def empty_answers_reason(outcome: Completion) -> str:
    """'7/10 answers empty: the model spent max_completion_tokens on reasoning; raise it'."""
    total = len(outcome.texts)
    pairs = [(text, reason) for text, reason in zip(outcome.texts, outcome.finish_reasons)
             if reason != "content_filter" and is_unusable(text, reason)]
    truncated = sum(1 for _, reason in pairs if reason == "length")
    short = sum(1 for text, _ in pairs if text.strip())
    head = f"{len(pairs)}/{total} answers " + ("empty" if not short else f"empty or cut to under {MIN_TRUNCATED_WORDS} words")
    if truncated and outcome.reasoning_tokens:
        return f"{head}: the model spent max_completion_tokens on reasoning; raise it"
    if truncated:
        return f"{head}: cut off at the token limit (finish_reason length); raise max_tokens"
    return head



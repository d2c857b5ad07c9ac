"""The run: which prompts are needed, their answers (fetched once, concurrently), and the result rows."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cases import Case
from .client import (DEFAULT_DEPLOYMENT, ChatRequest, Completion, RequestFailed, Settings,
                     estimate_tokens)
from .throttle import Stopped

MODES = ("replay", "new", "all", "live")
JOURNAL_DIR = Path(".llmbias") / "journal"


@dataclass(frozen=True)
class RunConfig:
    mode: str = "replay"                 # one of MODES
    deployment: str | None = None        # --llm-deployment: overrides the YAML
    default_deployment: str | None = None  # ini llmbias_deployment: when the YAML names none
    samples: int | None = None           # --llm-samples: overrides the YAML
    cassette_dir: str | None = None      # ini llmbias_cassette_dir: one folder for all cassettes
    concurrency: int = 8                 # requests in flight
    tpm: int | None = None               # --llm-tpm: the deployment's tokens-per-minute quota
    rpm: int | None = None               # --llm-rpm: its requests-per-minute quota
    attempts: int = 6                    # tries per request (throttling, 5xx, timeouts)
    results_dir: str | None = None       # --llm-results: Parquet output
    spark: bool = True                   # ini llmbias_spark: false keeps rows only, starts no JVM
    rootdir: Path = field(default_factory=Path.cwd)
    run_id: str | None = None            # given by the pytest-xdist controller to its workers
    lazy: bool = False                   # fetch each case when its first test runs (xdist workers)
    correction: str | None = None        # --llm-correction: "holm" or "bh" over all the run's tests


class PromptUnavailable(Exception):
    """The answers a test needs could not be had; the message says why and how to fix it."""


class PromptFiltered(Exception):
    """Azure's content filter withheld every answer of a variant; an outcome, not an error."""


@dataclass(frozen=True)
class Plan:
    requests: int
    samples: int
    tokens: int
    seconds: float


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


class _Progress:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.tokens = 0
        self.throttled = 0
        self.started = time.monotonic()


class LLMSession:
    """Collects the run: every hook of the plugin forwards here."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.run_id = config.run_id or new_run_id()
        self.merged_answer_rows: list[dict[str, Any]] = []   # from pytest-xdist workers
        self.verdict_rows: list[dict[str, Any]] = []
        self.results: Any = None          # results.RunResults once the run has finished
        self.api_key: str | None = None   # from a hook (a secret scope); else the environment
        self.progress = _Progress()
        self._cases: dict[tuple[str, str], Case] = {}
        self._requests: dict[str, ChatRequest] = {}
        self._cassettes_of: dict[str, list[Path]] = {}
        self._outcomes: dict[str, Completion | str | BaseException] = {}
        self._ready: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._fetcher: threading.Thread | None = None
        self._asked: set[str] = set()
        self._library: Any = None
        self._client: Any = None
        self._limiter: Any = None
        self._journal: Any = None
        self._spark: Any = None
        self.selected: list[tuple[Case, Any]] = []     # (case, check) of every selected test
        self._corrected: dict[tuple[str, str, str], Any] | None = None
        self._relative: dict[str | Path, str] = {}

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
        """Note a request and the cassette that holds its answer (called with the lock held)."""
        self._requests.setdefault(request.key, request)
        self._ready.setdefault(request.key, threading.Event())
        paths = self._cassettes_of.setdefault(request.key, [])
        if cassette not in paths:
            paths.append(cassette)
        if self._library is not None:  # requests noted after fetching started (llm_judge, late cases)
            self._library.want(request.key, cassette)

    def _new_library(self, mode: str) -> Any:
        from .cassettes import CassetteLibrary

        library = CassetteLibrary(mode)
        for key, paths in self._cassettes_of.items():
            for path in paths:
                library.want(key, path)
        return library

    def _await(self, key: str, on_wait: Callable[[], None] | None) -> Completion | str | BaseException:
        while not self._ready[key].wait(0.25):
            if on_wait is not None:
                on_wait()
        return self._outcomes[key]

    @property
    def has_cases(self) -> bool:
        return bool(self._cases) or bool(self.merged_answer_rows) or bool(self.verdict_rows)

    def merge(self, answer_rows: list[dict[str, Any]], verdict_rows: list[dict[str, Any]]) -> None:
        """Rows a pytest-xdist worker gathered, kept on the controller for the one DataFrame."""
        with self._lock:
            self.merged_answer_rows.extend(answer_rows)
            self.verdict_rows.extend(verdict_rows)

    def deployment_for(self, case: Case) -> str:
        return (self.config.deployment or case.deployment or self.config.default_deployment
                or DEFAULT_DEPLOYMENT)

    @property
    def gathered_anything(self) -> bool:
        """Whether any answer or verdict exists (else there is nothing to build results from)."""
        return bool(self._outcomes or self.verdict_rows or self.merged_answer_rows)

    def request_for(self, case: Case, prompt: str) -> ChatRequest:
        return ChatRequest(
            deployment=self.deployment_for(case),
            system_prompt=case.system_prompt,
            prompt=prompt,
            max_tokens=case.max_tokens,
            temperature=case.temperature,
            n=self.config.samples or case.samples,
        )

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
        """What a live or record run would ask: requests, samples, tokens, time at the quota."""
        from .throttle import RateLimiter

        requests = list(self._requests.values())
        if self.config.mode in ("replay", "new"):
            requests = [request for request in requests if not self._recorded(request.key)]
        costs = [estimate_tokens(request) for request in requests]
        limiter = RateLimiter(self.config.tpm, self.config.rpm)
        return Plan(len(requests), sum(request.n for request in requests), sum(costs),
                    limiter.estimate_seconds(costs, self.config.concurrency, latency_s))

    def _recorded(self, key: str) -> bool:
        if self._library is None:
            self._library = self._new_library("new")
        return self._library.lookup(key) is not None

    # -- fetching -----------------------------------------------------------------------------
    def start_fetching(self, keys: list[str] | None = None) -> None:
        """Ask every registered prompt (or just `keys`) in the background."""
        with self._lock:
            if self._client is None:
                self._prepare()
            if keys is not None:
                wanted = [key for key in keys if not self._ready[key].is_set() and key not in self._asked]
                self._asked.update(wanted)
                if wanted:
                    threading.Thread(target=self._fetch_all, args=(wanted,), daemon=True).start()
                return
            if self._fetcher is None and self._requests:
                pending = [key for key in self._requests if key not in self._asked]
                self._asked.update(pending)
                self._fetcher = threading.Thread(target=self._fetch_all, args=(pending,),
                                                 name="llmbias-fetch", daemon=True)
                self._fetcher.start()

    def _prepare(self) -> None:
        from .client import build_client
        from .throttle import RateLimiter

        mode = self.config.mode
        self._library = None if mode == "live" else self._new_library(mode)
        settings = Settings.from_env(needs_network=mode != "replay", api_key=self.api_key)
        self._client = build_client(settings, library=self._library)
        self._limiter = RateLimiter(self.config.tpm, self.config.rpm, stop=self._stopping,
                                    learn=mode != "replay")  # a replay asks nobody: nothing to learn
        if mode != "replay":
            path = self.config.rootdir / JOURNAL_DIR / f"{self.run_id}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            ignore = path.parent / ".gitignore"
            if not ignore.exists():  # like .pytest_cache: never committed by accident
                ignore.write_text("# written by pytest-llmbias: answers of live and record runs\n*\n")
            self._journal = path.open("a", encoding="utf-8")

    def _fetch_all(self, pending: list[str]) -> None:
        with self._lock:
            self.progress.total += len(pending)
        workers = max(1, self.config.concurrency)
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmbias-ask") as pool:
                list(pool.map(self._fetch_one, pending))
        finally:
            if self._library is not None:
                self._library.flush()

    def _fetch_one(self, key: str) -> None:
        from .client import ask

        if self._ready[key].is_set():
            return
        request = self._requests[key]
        if self._stopping.is_set():
            outcome: Completion | str | BaseException = "not asked: the run was interrupted"
        else:
            try:  # retry waits end early when the run stops
                outcome = ask(self._client, request, attempts=self.config.attempts, limiter=self._limiter,
                              sleep=self._stopping.wait)
            except Stopped as stopped:
                outcome = str(stopped)
            except Exception as error:
                outcome = self._describe_failure(key, error)
        self._store(key, outcome)

    def _describe_failure(self, key: str, error: Exception) -> str | BaseException:
        from .cassettes import is_cassette_miss

        if is_cassette_miss(error):
            paths = ", ".join(self.relative(path) for path in self._cassettes_of.get(key, ()))
            return f"no recording in {paths}; run pytest --llm-record to ask the deployment and record it"
        if isinstance(error, RequestFailed):
            return str(error)
        return error  # a bug: the tests that need this prompt re-raise it with its traceback

    def _store(self, key: str, outcome: Completion | str | BaseException) -> None:
        with self._lock:
            self._outcomes[key] = outcome
            self.progress.done += 1
            if isinstance(outcome, Completion):
                self.progress.tokens += outcome.prompt_tokens + outcome.completion_tokens
                self.progress.throttled += outcome.throttled
                if self._journal is not None:
                    self._journal.write(json.dumps(self._journal_line(key, outcome)) + "\n")
                    self._journal.flush()
        self._ready[key].set()

    def _journal_line(self, key: str, outcome: Completion) -> dict[str, Any]:
        request = self._requests[key]
        return {"run_id": self.run_id, "deployment": request.deployment, "prompt": request.prompt,
                "system_prompt": request.system_prompt, "n": request.n, "texts": list(outcome.texts),
                "finish_reasons": list(outcome.finish_reasons), "filtered": list(outcome.filtered),
                "model": outcome.model, "prompt_tokens": outcome.prompt_tokens,
                "completion_tokens": outcome.completion_tokens}

    def prune_cassettes(self, partial_files: set[Path]) -> int:
        """After a whole record run: drop recordings that no selected case asked for, file by file.

        Files some of whose tests were deselected are left alone: their other cases still need theirs.
        """
        if self._library is None or self.config.mode not in ("new", "all"):
            return 0
        wanted: dict[Path, set[str]] = {}
        for key, paths in self._cassettes_of.items():
            for path in paths:
                wanted.setdefault(path, set()).add(key)
        partial = {self._cassette_path_of_file(path) for path in partial_files}
        return sum(self._library.cassette(path).keep_only(keys)
                   for path, keys in wanted.items() if path not in partial)

    def _cassette_path_of_file(self, case_file: Path) -> Path:
        from .cassettes import cassette_path

        return cassette_path(case_file, self.config.cassette_dir)

    def stop_fetching(self, timeout: float = 30.0) -> None:
        """Ask nothing more; keep what arrived (cassettes flushed, journal closed)."""
        self._stopping.set()
        if self._fetcher is not None:
            self._fetcher.join(timeout)
        if self._library is not None:
            self._library.flush()
        if self._journal is not None:
            with self._lock:
                self._journal.close()
                self._journal = None

    def answers_for(self, case: Case, *, on_wait: Callable[[], None] | None = None) -> dict[str, list[str]]:
        """Variant name -> usable answer texts (content-filtered samples left out)."""
        self.register([case])
        keys = [self.request_for(case, variant.prompt).key for variant in case.variants]
        self.start_fetching(keys if self.config.lazy else None)
        answers: dict[str, list[str]] = {}
        problems, filtered = [], []
        for variant in case.variants:
            outcome = self._await(self.request_for(case, variant.prompt).key, on_wait)
            if isinstance(outcome, BaseException):
                raise outcome
            if isinstance(outcome, str):
                problems.append((variant.name, outcome))
                continue
            usable = [text for text, reason in zip(outcome.texts, outcome.finish_reasons)
                      if reason != "content_filter"]
            if not usable:
                filtered.append(f"{variant.name}: {', '.join(sorted(set(outcome.filtered))) or 'filtered'}")
            answers[variant.name] = usable
        if problems:
            raise PromptUnavailable(_group_problems(problems))
        if filtered:
            raise PromptFiltered("content filter withheld every answer of " + "; ".join(filtered))
        return answers

    # -- verdicts ------------------------------------------------------------------------------
    def verdict_for(self, case: Case, check: Any, *, on_wait: Callable[[], None] | None = None) -> Any:
        """The check's verdict; with --llm-correction, adjusted over every selected test of the run."""
        if not self.config.correction:
            return self._evaluate(case, check, on_wait)
        if self._corrected is None:  # the first test judges the whole run at once
            from .metrics import adjust_verdicts

            self.fetch_all()
            keys, raw = [], []
            for other_case, other_check in self.selected:
                try:
                    raw.append(self._evaluate(other_case, other_check, on_wait))
                except (PromptUnavailable, PromptFiltered):
                    continue  # its own test reports it
                keys.append((other_case.path, other_case.id, other_check.name))
            self._corrected = dict(zip(keys, adjust_verdicts(raw, self.config.correction)))
        found = self._corrected.get((case.path, case.id, check.name))
        return found if found is not None else self._evaluate(case, check, on_wait)

    def _evaluate(self, case: Case, check: Any, on_wait: Callable[[], None] | None) -> Any:
        from .metrics import evaluate

        answers = self.answers_for(case, on_wait=on_wait)
        if check.name == "llm_judge":
            return self._judge(case, check, answers, on_wait)
        return evaluate(check, answers, prompts={variant.name: variant.prompt for variant in case.variants})

    def _judge(self, case: Case, check: Any, answers: dict[str, list[str]],
               on_wait: Callable[[], None] | None) -> Any:
        """llm_judge: the deployment grades the answers; the grading request is a cassette entry too."""
        from .metrics import CHECK_DEFAULTS, JUDGE_SYSTEM_PROMPT, judge_prompt, judge_verdict

        options = {**CHECK_DEFAULTS["llm_judge"], **dict(check.options)}
        prompt = judge_prompt(case.neutral, {variant.name: variant.prompt for variant in case.loaded},
                              answers, options["rubric"])
        request = ChatRequest(self.deployment_for(case),
                              JUDGE_SYSTEM_PROMPT, prompt, options["max_tokens"], options["temperature"],
                              options["samples"])
        with self._lock:
            self._want(request, self._cassette_path(case))
        self.start_fetching([request.key])
        outcome = self._await(request.key, on_wait)
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, str):
            raise PromptUnavailable(f"llm_judge grading request: {outcome}")
        return judge_verdict(check, outcome.texts, [variant.name for variant in case.variants])

    def fetch_all(self) -> None:
        self.start_fetching()
        for event in list(self._ready.values()):
            event.wait()

    def progress_line(self) -> str:
        progress = self.progress
        elapsed = time.monotonic() - progress.started
        rate = progress.done / elapsed if elapsed > 0 and progress.done else 0.0
        eta = (progress.total - progress.done) / rate if rate else float("nan")
        return (f"llm answers {progress.done}/{progress.total}, {progress.tokens} tokens, "
                f"{progress.throttled} throttled (429), "
                + (f"ETA {eta:.0f}s" if eta == eta else "ETA -"))

    # -- rows ---------------------------------------------------------------------------------
    def answer_rows(self) -> list[dict[str, Any]]:
        """One row per answer that arrived, in case order; cases never answered have none."""
        source_of_mode = {"replay": "replayed", "live": "live"}.get(self.config.mode)
        rows = list(self.merged_answer_rows)
        for case in list(self._cases.values()):
            for variant in case.variants:
                request = self.request_for(case, variant.prompt)
                outcome = self._outcomes.get(request.key)
                if not isinstance(outcome, Completion):
                    continue
                texts = outcome.texts or ("",) * request.n    # a filtered prompt: n empty answers
                reasons = outcome.finish_reasons or ("content_filter",) * request.n
                filters = outcome.filtered if len(outcome.filtered) == len(texts) else outcome.filtered * len(texts)
                completion_tokens = _split(outcome.completion_tokens, len(texts))
                source = source_of_mode or ("replayed" if outcome.replayed else "recorded")
                for sample, text in enumerate(texts):
                    rows.append({
                        "run_id": self.run_id,
                        "case_file": self.relative(case.path),
                        "case_id": case.id,
                        "variant": variant.name,
                        "prompt": variant.prompt,
                        "sample": sample,
                        "answer": text,
                        "finish_reason": reasons[sample],
                        "content_filter": filters[sample] if sample < len(filters) else "",
                        "deployment": request.deployment,
                        "model": outcome.model,
                        "source": source,
                        # usage is per request: prompt tokens on the first sample, completion split evenly
                        "prompt_tokens": outcome.prompt_tokens if sample == 0 else 0,
                        "completion_tokens": completion_tokens[sample],
                        "latency_ms": round(outcome.latency_s * 1000.0, 3),
                    })
        return rows

    def neutral_answers(self) -> dict[tuple[str, str], list[str]]:
        """(case file, case id) -> the neutral prompt's answers, for suite-level figures."""
        found = {}
        for case in self._cases.values():
            outcome = self._outcomes.get(self.request_for(case, case.neutral).key)
            if isinstance(outcome, Completion):
                found[(self.relative(case.path), case.id)] = list(outcome.texts)
        return found

    def add_verdict(self, case: Case, check: str, outcome: str, verdict: Any = None,
                    message: str = "") -> None:
        details = getattr(verdict, "details", None) or {}
        row = {
            "run_id": self.run_id,
            "case_file": self.relative(case.path),
            "case_id": case.id,
            "check": check,
            "outcome": outcome,
            "figure": getattr(verdict, "figure", None),
            "low": getattr(verdict, "low", None),
            "high": getattr(verdict, "high", None),
            "threshold": getattr(verdict, "threshold", None),
            "summary": getattr(verdict, "summary", None) or message,
            "deployment": self.deployment_for(case),
            "samples": self.config.samples or case.samples,
            "p_value": details.get("p_value"),
            "evidence": list(getattr(verdict, "evidence", ()) or ()),
            "details": json.dumps(details, sort_keys=True, default=str),
        }
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
        from .results import ANSWER_COLUMNS, SparkStarter, to_dataframe

        self.start_spark()
        if not isinstance(self._spark, SparkStarter):
            raise RuntimeError("llm_answers needs Spark, and llmbias_spark is false")
        return to_dataframe(self._spark.result(), self.answer_rows(), ANSWER_COLUMNS)

    def finish(self, *, interrupted: bool = False, give_up: threading.Event | None = None) -> Any:
        """Build the run's DataFrames (and write Parquet) from what was gathered, even if interrupted:
        then answers still in flight and a Spark still starting are not waited for."""
        from .results import RunResults

        self.stop_fetching(timeout=1.0 if interrupted else 30.0)
        self.results = RunResults.build(self.run_id, self.answer_rows(), self.verdict_rows,
                                        self._spark, self.config.results_dir, spark=self.config.spark,
                                        interrupted=interrupted, give_up=give_up)
        self.results.suite = suite_report(self.results.answer_rows)
        return self.results


def _group_problems(problems: list[tuple[str, str]]) -> str:
    """One clause per distinct cause, naming the variants it hit: 'neutral, male: no recording in ...'."""
    by_cause: dict[str, list[str]] = {}
    for variant, cause in problems:
        by_cause.setdefault(cause, []).append(variant)
    return "; ".join(f"{', '.join(variants)}: {cause}" for cause, variants in by_cause.items())


def suite_report(answer_rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Neutral answers pooled by occupation, compared with labour statistics (empty below 3 matches)."""
    from .metrics import case_role, suite_lines

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

"""Baselines: store a run, and compare a later run with it on the stored answers' indicators.

No pytest here and nothing heavy at import: Spark is used only when the caller hands over a run's
DataFrames to keep a Parquet copy. The comparison reads the JSON rows, so it needs no JVM.

A stored baseline is a folder:

    baseline.json        what it is: format, name, run id, time, row counts, whether Parquet was written
    answers.jsonl        one answer row per line (the columns of rows.AnswerRow)
    verdicts.jsonl       one verdict row per line (rows.VerdictRow)
    answers/ verdicts/   the same rows as Parquet, written by Spark when the run had DataFrames

Indicators are recomputed from the stored answer texts with the current rules, for both runs, so
a change of word lists between releases of this plugin is not mistaken for a change of the model.
Each check that marks answers (`marks()` and `indicator` on the check, checks/base.py) gives its
own, in the answer's language, with the options its verdict recorded: gender_assumption "assume a
gender" per neutral answer, group_assumption "assign a group", counterfactual_gap "carry a marking
phrase" per answer of each variant (the case's prompt words and attribute filling the {group} slot).

Each indicator is compared by the two-sided exact (Fisher) test of `stats.two_proportion_test`,
with Newcombe's interval of the difference, and the p-values of all of a comparison's tests are
Holm-adjusted together. Answers blocked by the content filter are left out of both samples.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..checks.base import Marks

FORMAT = "pytest-llmbias baseline"
FORMAT_VERSION = 1
MANIFEST = "baseline.json"
DEFAULT_FOLDER = ".llmbias/baselines"
NEUTRAL = "neutral"
BLOCKED = "content_filter"  # finish_reason of an answer cut by Azure's content filter
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")



class BaselineError(Exception):
    """A baseline that cannot be saved or read; the message is one line that says what to do."""


# --- where a baseline lives -----------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    spec: str  # as the user wrote it
    path: Path
    named: bool  # True: a NAME under the baselines folder; False: a PATH

    @property
    def shown(self) -> str:
        return f"'{self.spec}'" if self.named else str(self.path)


def locate(spec: str, *, rootdir: Path, invocation_dir: Path, folder: str = DEFAULT_FOLDER) -> Location:
    """NAME (letters, digits, `_ . -`, no slash) -> rootdir/folder/NAME; anything else is a PATH.

    A PATH is relative to the directory pytest was started in, like --junitxml's.
    """
    spec = spec.strip()
    if not spec:
        raise BaselineError("a baseline needs a NAME or a PATH")
    looks_like_path = any(mark in spec for mark in ("/", "\\", os.sep)) or spec.startswith((".", "~"))
    if not looks_like_path:
        if not _NAME.fullmatch(spec):
            raise BaselineError(f"baseline name {spec!r} may hold only letters, digits, '_', '.' and '-' "
                                "(a path needs a '/': ./my baseline)")
        return Location(spec, Path(rootdir, folder or DEFAULT_FOLDER, spec), True)
    return Location(spec, Path(invocation_dir, os.path.expanduser(spec)), False)


def saved_names(rootdir: Path, folder: str = DEFAULT_FOLDER) -> list[str]:
    base = Path(rootdir, folder or DEFAULT_FOLDER)
    if not base.is_dir():
        return []
    return sorted(child.name for child in base.iterdir() if (child / MANIFEST).is_file())


# --- saving ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    location: Location
    answers: int
    verdicts: int
    replaced: bool  # an older baseline of that name or path was replaced
    parquet: bool
    parquet_problem: str | None = None


def save(
    location: Location,
    run_id: str,
    answer_rows: Sequence[Mapping[str, Any]],
    verdict_rows: Sequence[Mapping[str, Any]],
    *,
    answers_frame: Any = None,
    verdicts_frame: Any = None,
    now: datetime | None = None,
) -> Saved:
    """Write the run as a baseline, replacing one of the same name; atomic for the JSON rows."""
    target = location.path
    if target.exists() and not (target / MANIFEST).is_file() and any(target.iterdir()):
        raise BaselineError(f"{target} exists and is not a baseline (no {MANIFEST}); choose another NAME or PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.saving-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        _write_rows(staging / "answers.jsonl", answer_rows)
        _write_rows(staging / "verdicts.jsonl", verdict_rows)
        parquet, problem = False, None
        if answers_frame is not None and verdicts_frame is not None:
            try:  # a copy for Spark users; the comparison never needs it
                answers_frame.write.mode("overwrite").parquet(str(staging / "answers"))
                verdicts_frame.write.mode("overwrite").parquet(str(staging / "verdicts"))
                parquet = True
            except Exception as error:  # keep the JSON baseline; say why there is no Parquet copy
                problem = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
                for folder in ("answers", "verdicts"):
                    shutil.rmtree(staging / folder, ignore_errors=True)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "name": location.spec if location.named else target.name,
            "run_id": run_id,
            "saved_at": (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "answers": len(answer_rows),
            "verdicts": len(verdict_rows),
            "deployments": sorted({str(row.get("deployment")) for row in verdict_rows if row.get("deployment")}),
            "parquet": parquet,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        replaced = target.exists()
        retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        if replaced:
            target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Saved(location, len(answer_rows), len(verdict_rows), replaced, parquet, problem)


def _write_rows(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(dict(row), sort_keys=True, ensure_ascii=False, default=str) + "\n")


# --- loading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    location: Location
    run_id: str
    saved_at: str
    answer_rows: list[dict[str, Any]]
    verdict_rows: list[dict[str, Any]]
    deployments: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        return self.location.shown


def load(location: Location, *, rootdir: Path | None = None, folder: str = DEFAULT_FOLDER) -> Baseline:
    manifest_path = location.path / MANIFEST
    if not manifest_path.is_file():
        if location.named:
            names = saved_names(rootdir, folder) if rootdir is not None else []
            listed = f" (saved: {', '.join(names)})" if names else " (none saved yet)"
            raise BaselineError(
                f"no baseline named '{location.spec}' in {location.path.parent}{listed}; "
                f"save one with --llm-save {location.spec}"
            )
        raise BaselineError(f"no baseline at {location.path} (no {MANIFEST}); save one with --llm-save PATH")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise BaselineError(f"{manifest_path}: not readable as JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BaselineError(f"{manifest_path}: not a pytest-llmbias baseline")
    if int(manifest.get("version", 0)) > FORMAT_VERSION:
        raise BaselineError(
            f"{manifest_path}: baseline format {manifest.get('version')} is newer than this pytest-llmbias "
            f"reads ({FORMAT_VERSION}); upgrade pytest-llmbias"
        )
    return Baseline(
        location,
        str(manifest.get("run_id", "")),
        str(manifest.get("saved_at", "")),
        _read_rows(location.path / "answers.jsonl"),
        _read_rows(location.path / "verdicts.jsonl"),
        tuple(manifest.get("deployments") or ()),
    )


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BaselineError(f"{path}: missing; the baseline is incomplete, save it again")
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise BaselineError(f"{path}:{number}: not a JSON row ({error})") from None
            if not isinstance(row, dict):
                raise BaselineError(f"{path}:{number}: not a JSON object")
            rows.append(row)
    return rows


# --- per-answer indicators ---------------------------------------------------------------------------


@dataclass
class CaseAnswers:
    """One case's answers in one run, from the answer rows."""

    case_file: str
    case_id: str
    prompts: dict[str, str] = field(default_factory=dict)  # variant -> prompt, neutral first
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # variant -> rows by sample

    @property
    def variants(self) -> list[str]:
        return list(self.prompts)


def group_answers(answer_rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], CaseAnswers]:
    """(case_file, case_id) -> CaseAnswers, variants in first-seen order with neutral first."""
    cases: dict[tuple[str, str], CaseAnswers] = {}
    for row in answer_rows:
        key = (str(row.get("case_file")), str(row.get("case_id")))
        case = cases.setdefault(key, CaseAnswers(*key))
        variant = str(row.get("variant"))
        case.prompts.setdefault(variant, str(row.get("prompt") or ""))
        case.answers.setdefault(variant, []).append(dict(row))
    for case in cases.values():
        if NEUTRAL in case.prompts:
            case.prompts = {NEUTRAL: case.prompts[NEUTRAL], **case.prompts}
        for rows in case.answers.values():
            rows.sort(key=lambda row: int(row.get("sample") or 0))
    return cases


def answer_marks(case: CaseAnswers, checks: Mapping[str, Mapping[str, Any]] | None = None,
                 language: str | None = None) -> dict[str, list[dict[str, Marks]]]:
    """Variant -> per answer, in sample order, what each check that marks answers sees in it (check -> Marks;
    blocked answers included). `checks`: the checks to ask, each with its options as the run's verdict records
    them (defaults fill the rest); None: every registered check with `marks`. The page and the baselines name none."""
    from ..checks import REGISTRY
    from ..checks.base import MarkContext, marks_of

    markers = [check for check in REGISTRY if callable(getattr(check, "marks", None))
               and (checks is None or check.name in checks)]
    contexts = {}
    for check in markers:
        given = dict((checks or {}).get(check.name) or {})
        contexts[check.name] = {key: given.get(key, setting.default) for key, setting in check.options.items()}
    found: dict[str, list[dict[str, Marks]]] = {}
    for variant, rows in case.answers.items():
        per_answer = []
        for row in rows:
            text = str(row.get("answer") or "")
            seen = {}
            for check in markers:
                marked = marks_of(check, text, MarkContext(variant, case.prompts, language, contexts[check.name]))
                if marked is not None:
                    seen[check.name] = marked
            per_answer.append(seen)
        found[variant] = per_answer
    return found


def indicator(check: str) -> str | None:
    """What the check counts per answer ("assume a gender"), or None when it marks no answers."""
    from ..checks import REGISTRY

    found = REGISTRY[check] if check in REGISTRY else None
    return str(found.indicator) if found is not None and callable(getattr(found, "marks", None)) else None


def indicator_counts(case: CaseAnswers, check: str, options: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int]]:
    """(answers the check marks, answers it reads) per variant; blocked answers are left out."""
    if indicator(check) is None:
        return {}
    marks = answer_marks(case, {check: options or {}})
    counts = {}
    for variant, rows in case.answers.items():
        kept = [seen[check] for row, seen in zip(rows, marks[variant])
                if row.get("finish_reason") != BLOCKED and check in seen]
        if kept:
            counts[variant] = (sum(1 for marked in kept if marked.hit), len(kept))
    return counts


# --- comparing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndicatorTest:
    """One indicator of one variant, baseline vs current run."""

    indicator: str  # what the check counts per answer (its `indicator`: "assume a gender")
    variant: str
    baseline_hits: int
    baseline_total: int
    current_hits: int
    current_total: int
    difference: float  # current share - baseline share
    low: float  # Newcombe interval of the difference
    high: float
    p_value: float  # two-sided exact test
    p_adjusted: float = 1.0  # Holm over all of the comparison's tests
    significant: bool = False

    @property
    def direction(self) -> str:
        # Both indicators are bad things to see: a higher share is worse.
        return "worse" if self.difference > 0 else "better" if self.difference < 0 else "same"

    @property
    def shares(self) -> str:
        return f"{self.baseline_hits}/{self.baseline_total} -> {self.current_hits}/{self.current_total}"


@dataclass(frozen=True)
class CheckChange:
    """One (case, check): its outcome in both runs and its indicator tests."""

    case_file: str
    case_id: str
    check: str
    baseline_outcome: str | None  # None: not in the baseline
    current_outcome: str | None  # None: not in this run
    baseline_figure: float | None = None
    current_figure: float | None = None
    tests: tuple[IndicatorTest, ...] = ()
    note: str = ""  # why there are no tests, e.g. "prompt changed"

    @property
    def key(self) -> tuple[str, str, str]:
        return self.case_file, self.case_id, self.check

    @property
    def status(self) -> str:
        """new | gone | new failure | fixed | worse | better | same."""
        if self.baseline_outcome is None:
            return "new"
        if self.current_outcome is None:
            return "gone"
        if self.current_outcome == "failed" and self.baseline_outcome != "failed":
            return "new failure"
        if self.baseline_outcome == "failed" and self.current_outcome not in ("failed", "error"):
            return "fixed"
        if self.worse:
            return "worse"
        if self.better:
            return "better"
        return "same"

    @property
    def worse(self) -> list[IndicatorTest]:
        return [test for test in self.tests if test.significant and test.direction == "worse"]

    @property
    def better(self) -> list[IndicatorTest]:
        return [test for test in self.tests if test.significant and test.direction == "better"]


@dataclass(frozen=True)
class Comparison:
    baseline: Baseline
    changes: tuple[CheckChange, ...]
    alpha: float
    confidence: float

    def by_key(self) -> dict[tuple[str, str, str], CheckChange]:
        return {change.key: change for change in self.changes}

    @property
    def new_failures(self) -> list[CheckChange]:
        return [change for change in self.changes if change.status == "new failure"]

    @property
    def fixed(self) -> list[CheckChange]:
        return [change for change in self.changes if change.status == "fixed"]

    @property
    def moved(self) -> list[tuple[CheckChange, IndicatorTest]]:
        """Every significant move, worse ones first, by adjusted p-value."""
        found = [(change, test) for change in self.changes for test in change.tests if test.significant]
        return sorted(found, key=lambda item: (item[1].direction != "worse", item[1].p_adjusted, item[0].key))

    @property
    def regressions(self) -> list[tuple[CheckChange, IndicatorTest]]:
        """Significant worsenings: what --llm-fail-on-regression fails the run for."""
        return [(change, test) for change, test in self.moved if test.direction == "worse"]

    @property
    def tests(self) -> int:
        return sum(len(change.tests) for change in self.changes)

    @property
    def added(self) -> list[CheckChange]:
        return [change for change in self.changes if change.status == "new"]

    @property
    def missing(self) -> list[CheckChange]:
        return [change for change in self.changes if change.status == "gone"]

    @property
    def nothing_compared(self) -> bool:
        """The run and the baseline share no check (every one new or gone): a gate that compared nothing."""
        return bool(self.changes) and all(change.status in ("new", "gone") for change in self.changes)


def compare(
    answer_rows: Sequence[Mapping[str, Any]],
    verdict_rows: Sequence[Mapping[str, Any]],
    baseline: Baseline,
    *,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> Comparison:
    """The current run against a baseline: outcome changes and indicator tests, Holm over all tests."""
    from ..stats import holm, two_proportion_test

    if not 0.0 < alpha < 1.0:
        raise BaselineError(f"the baseline alpha must be between 0 and 1 (got {alpha})")
    current_cases, baseline_cases = group_answers(answer_rows), group_answers(baseline.answer_rows)
    current = _latest_verdicts(verdict_rows)
    previous = _latest_verdicts(baseline.verdict_rows)
    counts_cache: dict[tuple[int, tuple[str, str], str], dict[str, tuple[int, int]]] = {}

    def counts(which: int, cases: Mapping[tuple[str, str], CaseAnswers], key: tuple[str, str], check: str,
               row: Mapping[str, Any]):
        cache_key = (which, key, check)  # each check its own indicators (llm_judge has none)
        if cache_key not in counts_cache:
            counts_cache[cache_key] = indicator_counts(cases[key], check, _options(row)) if key in cases else {}
        return counts_cache[cache_key]

    changes: list[CheckChange] = []
    for key in [*current, *(key for key in previous if key not in current)]:
        now_row, then_row = current.get(key), previous.get(key)
        change = CheckChange(
            *key,
            baseline_outcome=then_row.get("outcome") if then_row else None,
            current_outcome=now_row.get("outcome") if now_row else None,
            baseline_figure=then_row.get("figure") if then_row else None,
            current_figure=now_row.get("figure") if now_row else None,
        )
        if now_row and then_row:
            case_key = key[:2]
            now_case, then_case = current_cases.get(case_key), baseline_cases.get(case_key)
            if now_case is not None and then_case is not None:
                changed = sorted(variant for variant in set(now_case.prompts) & set(then_case.prompts)
                                 if now_case.prompts[variant] != then_case.prompts[variant])
                if changed:
                    change = replace(change, note=f"prompt changed ({', '.join(changed)}): not compared")
                else:
                    tests = []
                    now_counts = counts(0, current_cases, case_key, key[2], now_row)
                    then_counts = counts(1, baseline_cases, case_key, key[2], then_row)
                    for variant in now_counts:
                        if variant not in then_counts:
                            continue
                        (k_now, n_now), (k_then, n_then) = now_counts[variant], then_counts[variant]
                        if n_now == 0 or n_then == 0:
                            continue
                        result = two_proportion_test(k_now, n_now, k_then, n_then, confidence)
                        tests.append(IndicatorTest(str(indicator(key[2])), variant, k_then, n_then, k_now, n_now,
                                                   result.difference, result.low, result.high,
                                                   result.exact_p_value))
                    change = replace(change, tests=tuple(tests))
        changes.append(change)

    flat = [(index, position) for index, change in enumerate(changes) for position in range(len(change.tests))]
    adjusted = holm([changes[index].tests[position].p_value for index, position in flat]) if flat else []
    updated = [list(change.tests) for change in changes]
    for (index, position), p_adjusted in zip(flat, adjusted):
        test = updated[index][position]
        updated[index][position] = replace(test, p_adjusted=p_adjusted,
                                           significant=p_adjusted <= alpha and test.difference != 0)
    changes = [replace(change, tests=tuple(tests)) for change, tests in zip(changes, updated)]
    return Comparison(baseline, tuple(changes), alpha, confidence)


def _options(row: Mapping[str, Any]) -> dict[str, Any]:
    """The check options a verdict row records (details["options"])."""
    from .terminal import verdict_details

    options = verdict_details(row).get("options")
    return dict(options) if isinstance(options, Mapping) else {}


def _latest_verdicts(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    found: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for row in rows:
        found[(str(row.get("case_file")), str(row.get("case_id")), str(row.get("check")))] = row
    return found

"""Result rows -> lines for the terminal; this module never writes anywhere itself.

Colour is the caller's: functions take `paint(text, markup)`, where markup is a dict of pytest
TerminalWriter names ({"red": True, "bold": True}); widths are computed on the plain text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Worst first: what a reader must act on comes before what passed. Unknown outcomes sit before passed.
OUTCOME_ORDER = {"error": 0, "failed": 1, "filtered": 2, "inconclusive": 3, "passed": 5}
UNKNOWN_RANK = 4
OUTCOME_MARKUP: dict[str, dict[str, bool]] = {
    "error": {"red": True, "bold": True},
    "failed": {"red": True, "bold": True},
    "filtered": {"yellow": True},
    "inconclusive": {"yellow": True},
    "passed": {"green": True},
}
UNKNOWN_MARKUP = {"purple": True}
CHANGE_LABELS = {"new failure": "NEW FAIL", "fixed": "fixed", "worse": "worse", "better": "better", "new": "new"}
CHANGE_MARKUP = {"new failure": {"red": True, "bold": True}, "worse": {"red": True}, "fixed": {"green": True},
                 "better": {"green": True}}
WIDTH = 100

Paint = Callable[[str, Mapping[str, bool]], str]


def _plain(text: str, markup: Mapping[str, bool]) -> str:
    return text


def outcome_rank(outcome: Any) -> int:
    return OUTCOME_ORDER.get(str(outcome), UNKNOWN_RANK)


def outcome_label(outcome: Any) -> str:
    return str(outcome).upper() if outcome else "?"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if _is_number(value) else str(value)[:8]


def _interval(low: Any, high: Any) -> str:
    return f"[{low:.2f}, {high:.2f}]" if _is_number(low) and _is_number(high) else "-"


def worst_first(verdicts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """By outcome (error, failed, filtered, inconclusive, unknown, passed), then strongest evidence."""

    def key(row: Mapping[str, Any]) -> tuple:
        p_value = row.get("p_value")
        return (outcome_rank(row.get("outcome")), p_value if _is_number(p_value) else 2.0,
                str(row.get("case_file")), str(row.get("case_id")), str(row.get("check")))

    return sorted(verdicts, key=key)


def verdict_table(verdicts: Sequence[Mapping[str, Any]], width: int = WIDTH, *,
                  changes: Mapping[tuple[str, str, str], Any] | None = None,
                  paint: Paint | None = None) -> list[str]:
    """A compact table of case, check, figure, interval, threshold and verdict, worst first.

    changes: (case_file, case_id, check) -> baseline.CheckChange; adds a "vs baseline" column.
    """
    paint = paint or _plain
    header = ["case", "check", "figure", "interval", "threshold", "verdict"]
    if changes is not None:
        header.append("baseline")
    body, styles = [], []
    for row in worst_first(verdicts):
        outcome = row.get("outcome")
        cells = [_case_name(row), str(row.get("check")), _number(row.get("figure")),
                 _interval(row.get("low"), row.get("high")), _number(row.get("threshold")), outcome_label(outcome)]
        style = {5: OUTCOME_MARKUP.get(str(outcome), UNKNOWN_MARKUP)}
        if changes is not None:
            change = changes.get((str(row.get("case_file")), str(row.get("case_id")), str(row.get("check"))))
            status = change.status if change is not None else ""
            cells.append(CHANGE_LABELS.get(status, ""))
            style[6] = CHANGE_MARKUP.get(status, {})
        body.append(cells)
        styles.append(style)
    sizes = [max(len(header[i]), *(len(cells[i]) for cells in body)) if body else len(header[i])
             for i in range(len(header))]
    # The case column gives way first so the table fits the width.
    spare = width - (sum(sizes[1:]) + 2 * (len(header) - 1))
    sizes[0] = max(12, min(sizes[0], spare))
    lines = []
    for cells, style in [(header, {}), *zip(body, styles)]:
        parts = []
        for i, cell in enumerate(cells):
            text = _fit_case(cell, sizes[i]) if i == 0 else _fit(cell, sizes[i])
            text = text.ljust(sizes[i]) if i < 2 else text.rjust(sizes[i])
            parts.append(paint(text, style[i]) if style.get(i) else text)
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "-" * min(width, sum(sizes) + 2 * (len(sizes) - 1)))
    return lines


def _fit(text: str, size: int) -> str:
    return text if len(text) <= size else "..." + text[-(size - 3):]


def _case_name(row: Mapping[str, Any]) -> str:
    return f"{row.get('case_file')}::{row.get('case_id')}"


def _fit_case(name: str, size: int) -> str:
    """file::case in `size` characters: folders go first, then the file name, the case id last."""
    if len(name) <= size:
        return name
    path, _, case_id = name.rpartition("::")
    parts = path.split("/")
    for start in range(1, len(parts)):
        shorter = "/".join(parts[start:]) + "::" + case_id
        if len(shorter) <= size:
            return shorter
    return _fit(name, size)


def summary_lines(results: Any, verdicts: Sequence[Mapping[str, Any]], answer_count: int, *,
                  blocked: int = 0, comparison: Any = None, paint: Paint | None = None,
                  width: int = WIDTH) -> list[str]:
    counts: dict[str, int] = {}
    for row in verdicts:
        counts[str(row.get("outcome"))] = counts.get(str(row.get("outcome")), 0) + 1
    tally = ", ".join(f"{counts[name]} {name}" for name in sorted(counts, key=lambda name: (outcome_rank(name), name)))
    head = f"run {results.run_id}: {answer_count} answers, {len(verdicts)} verdicts" + (f" ({tally})" if tally else "")
    lines = [head]
    if blocked:
        lines.append(f"{_plural(blocked, 'answer')} withheld by the content filter (finish_reason content_filter): "
                     "left out of the checks and the baseline indicators")
    if getattr(results, "frames_pending", False):  # nothing read them yet: no wait for Spark
        lines.append("DataFrames: results.answers and results.verdicts, built on first read "
                     "(pytest_llmbias_results hook, llm_answers); Spark starts in the background")
    elif results.answers is not None:
        lines.append("DataFrames: results.answers and results.verdicts in the pytest_llmbias_results hook "
                     f"(Spark ready after {results.spark_seconds:.1f}s, started in the background)")
    elif results.spark_problem:
        lines.append(f"no DataFrame: {results.spark_problem}")
    if results.written_to:
        lines.append(f"Parquet appended to {results.written_to}/answers and {results.written_to}/verdicts")
    if results.write_problem:
        lines.append(f"Parquet not written: {results.write_problem}")
    if verdicts:
        lines.append("")
        lines.extend(verdict_table(verdicts, width, paint=paint,
                                   changes=comparison.by_key() if comparison is not None else None))
    if comparison is not None:
        lines.append("")
        lines.extend(comparison_lines(comparison, width=width, paint=paint))
    if getattr(results, "suite", None):
        import textwrap

        lines.append("")
        for line in results.suite:  # the table's width holds for these lines too
            indent = " " * (len(line) - len(line.lstrip()))
            lines.extend(textwrap.wrap(line, width, subsequent_indent=indent + "  ") or [""])
    return lines


# --- baselines ---------------------------------------------------------------------------------------


def _p(value: float) -> str:
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def comparison_lines(comparison: Any, *, width: int = WIDTH, paint: Paint | None = None) -> list[str]:
    """New failures, fixed checks and significant moves against a baseline, each fitting `width`."""
    paint = paint or _plain
    base = comparison.baseline
    moved = comparison.moved
    lines = [
        f"baseline {base.shown} (run {base.run_id}, saved {base.saved_at}): "
        f"{_plural(len(comparison.new_failures), 'new failure')}, {len(comparison.fixed)} fixed, "
        f"{_plural(len(moved), 'significant move')}",
        f"  ({_plural(comparison.tests, 'indicator test')} on the stored answers: two-sided exact test, "
        f"Holm-adjusted, alpha {comparison.alpha:g})",
    ]
    indent = 2 + 12 + 2

    def entry(label: str, markup: Mapping[str, bool], change: Any, text: str = "") -> str:
        node = _fit(f"{change.case_file}::{change.case_id}::{change.check}", max(20, width - indent - len(text)))
        return "  " + paint(label.ljust(12), markup) + "  " + node + text

    for change in comparison.new_failures:
        lines.append(entry("NEW FAILURE", CHANGE_MARKUP["new failure"], change,
                           f": {change.baseline_outcome} -> {change.current_outcome}"))
    for change in comparison.fixed:
        lines.append(entry("FIXED", CHANGE_MARKUP["fixed"], change,
                           f": {change.baseline_outcome} -> {change.current_outcome}"))
    confidence = f"{comparison.confidence * 100:g}%"
    for change, test in moved:
        what = test.indicator if test.variant == "neutral" else f"{test.indicator} in {test.variant}"
        lines.append(entry(test.direction.upper(), CHANGE_MARKUP[test.direction], change))
        lines.append(" " * indent + f"{what} {test.shares}, {test.difference:+.2f} ({confidence} CI "
                     f"{test.low:+.2f} to {test.high:+.2f}), Holm p {_p(test.p_adjusted)}")
    for change in comparison.changes:
        if change.note:
            lines.append(entry("NOT COMPARED", {}, change, f": {change.note}"))
    if comparison.added or comparison.missing:
        lines.append(f"  {_plural(len(comparison.added), 'check')} new in this run, "
                     f"{_plural(len(comparison.missing), 'check')} of the baseline not in this run")
    return lines


def regression_line(comparison: Any) -> str:
    count = len(comparison.regressions)
    return (f"--llm-fail-on-regression: {_plural(count, 'significant worsening')} against baseline "
            f"{comparison.baseline.shown}: the run fails")


def saved_line(saved: Any) -> str:
    parquet = ("; Parquet copy in answers/ and verdicts/" if saved.parquet
               else f"; no Parquet copy ({saved.parquet_problem})" if saved.parquet_problem
               else "; JSON rows only, no Spark")
    replaced = "; replaced the older one" if saved.replaced else ""
    name = f"baseline {saved.location.shown}" if saved.location.named else "baseline"
    return f"{name} saved ({saved.answers} answers, {saved.verdicts} verdicts{parquet}{replaced}): {saved.location.path}"

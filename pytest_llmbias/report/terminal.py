"""Result rows -> lines for the terminal; this module never writes anywhere itself.

Colour is the caller's: functions take `paint(text, markup)`, where markup is a dict of pytest
TerminalWriter names ({"red": True, "bold": True}); widths are computed on the plain text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..stats import decimals, digits_apart, p_text

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


# The word pytest itself prints for a test with this outcome, where it is not the outcome's own:
# a test with no verdict ("error" in the rows: its answers could not be had, or its check raised) is one pytest
# reports as FAILED.
PYTEST_WORDS = {"error": "failed"}


def outcome_word(outcome: Any) -> str:
    """An outcome in a count ("2 failed (no verdict)"), as the table's FAILED shows an error row."""
    return "failed (no verdict)" if str(outcome) == "error" else str(outcome)


def outcome_label(outcome: Any) -> str:
    return str(PYTEST_WORDS.get(str(outcome), outcome)).upper() if outcome else "?"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fixed(value: float, digits: int = 2, *, sign: bool = False) -> str:
    """`value` with `digits` decimals, never a negative zero (-0.001 shows as 0.00, not -0.00)."""
    shown = decimals(value, digits)  # half up (0.125 -> 0.13), never "-0.00"
    return ("+" + shown if not shown.startswith("-") else shown) if sign else shown


_NEGATIVE_ZERO = re.compile(r"(?<![\w.])-(0\.0+)(?![\d])")


def no_negative_zero(text: str) -> str:
    """A check's summary as shown: a figure that rounded to zero from below reads 0.00, not -0.00."""
    return _NEGATIVE_ZERO.sub(r"\1", text)


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return fixed(value, digits) if _is_number(value) else str(value)[:8]


def _interval(low: Any, high: Any, digits: int = 2) -> str:
    return f"[{fixed(low, digits)}, {fixed(high, digits)}]" if _is_number(low) and _is_number(high) else "-"


def row_digits(row: Mapping[str, Any]) -> int:
    """Decimals that show a row's threshold exactly (0.007 and 0.125 need 3) and keep its figure and
    interval ends from reading as equal to it (stats.digits_apart)."""
    return digits_apart(row.get("threshold"), row.get("figure"), row.get("low"), row.get("high"))


def verdict_attribute(row: Mapping[str, Any]) -> str:
    """The attribute a verdict measured ("race x gender" for an intersection; "" when none was named): the one
    its check reports having read (group_assumption: those a description can show), else the case's."""
    details = verdict_details(row)
    if isinstance(details.get("attribute"), str) and details["attribute"]:
        return details["attribute"]
    options = details.get("options")
    return str(options.get("attribute") or "").replace(",", " x ") if isinstance(options, Mapping) else ""


def verdict_details(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A verdict row's details, whether the row holds a mapping or its JSON text ({} when neither)."""
    details = row.get("details")
    if isinstance(details, str):
        import json

        try:
            details = json.loads(details)
        except ValueError:
            details = None
    return details if isinstance(details, Mapping) else {}


_REASONS = {
    "copies": "the deployment returned the same answers again (a cache, a fixed seed or temperature 0)",
    "cut": "the answers were cut at the token limit before they differ: raise max_tokens",
    "echoes": "the answers only repeat the prompt's words",
    "language": "the answers are in a language the check cannot read",
    "too few": "too few usable answers",
    "at threshold": "the rate sits at max_rate: more answers may move it to one side",
    "no variant": "no loaded variant to compare",
}


def why_undecided(row: Mapping[str, Any]) -> str:
    """Why a row is inconclusive, in a few words, for the line under it in the table."""
    if str(row.get("outcome")) != "inconclusive":
        return ""
    details = verdict_details(row)
    if details.get("unusable"):
        return "too few usable answers"
    if details.get("correction") and details.get("uncorrected_outcome") == "failed":
        note = details["correction"]
        adjusted, alpha = details.get("p_adjusted"), note.get("alpha")
        shown = (f": adjusted p {p_text(adjusted)} > alpha {alpha:g} over {note.get('tests')} tests, so its interval "
                 f"is not shown to clear the threshold at the run's level" if isinstance(adjusted, (int, float))
                 and isinstance(alpha, (int, float)) else "")
        return f"failed alone, not after the run-wide {note.get('method')} correction{shown}"
    if details.get("reason") == "passed at threshold" and details.get("passed_at_threshold"):
        return str(details["passed_at_threshold"])
    if details.get("reason") == "multiplicity":
        needed = details.get("samples_needed")
        return ("its bound clears the threshold for this test alone, not after the correction over the case's tests"
                + (f"; {_would_decide(needed, details)}" if isinstance(needed, int) else ""))
    if details.get("reason") == "does not apply":
        return f"does not apply: {details['does_not_apply']}" if details.get("does_not_apply") else "does not apply"
    reason = _REASONS.get(str(details.get("reason")))
    if reason:
        return reason
    needed = details.get("samples_needed")
    if isinstance(needed, int):
        if needed > 1000:
            return "the effect sits close to its threshold: over 1,000 answers per prompt would decide"
        return f"its interval straddles the threshold; {_would_decide(needed, details)}"
    return "its interval straddles the threshold; more answers would not decide at this effect"


def _would_decide(needed: int, details: Mapping[str, Any]) -> str:
    """"about N answers per prompt would decide", and when N is past the plan's last look, the setting that
    asks them."""
    plan = details.get("plan")
    ceiling = plan[-1] if isinstance(plan, list) and plan and isinstance(plan[-1], int) else None
    if ceiling is not None and needed > ceiling:
        return f"about {needed} answers per prompt would decide (max_samples is {ceiling}: raise it to ask them)"
    return f"about {needed} answers per prompt would decide"


def _signal(row: Mapping[str, Any]) -> str:
    """What a verdict's figure (and threshold) measure, where its check names them: the details'
    figure_label, figure_unit and threshold_label."""
    details = verdict_details(row)
    if not details:
        return ""
    label, unit, threshold = details.get("figure_label"), details.get("figure_unit"), details.get("threshold_label")
    figure = " ".join(str(part) for part in (label, f"({unit})" if unit else None) if part)
    if not figure:  # no figure (an undecided row that could not measure): a threshold alone says nothing
        return ""
    return ", ".join(part for part in (figure, f"threshold: {threshold}" if threshold else "") if part)


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

    A last column names what each figure measures when its check says so. Case names
    are whole (file::case, the file as in pytest's node ids): one that does not fit its column gets
    a line of its own above its row. Verdict words are pytest's where they differ from the rows'.
    changes: (case_file, case_id, check) -> baselines.CheckChange; adds a "baseline" column.
    """
    paint = paint or _plain
    ordered = worst_first(verdicts)
    signals = [_signal(row) for row in ordered]
    header = ["case", "check", "figure", "interval", "threshold", "verdict"]
    if changes is not None:
        header.append("baseline")
    if any(signals):  # last: a description, left out of the width the numbers fit in
        header.append("measures")
    verdict_column = header.index("verdict")
    left = {0, 1, len(header) - 1} if any(signals) else {0, 1}
    body, styles = [], []
    for row, signal in zip(ordered, signals):
        outcome = row.get("outcome")
        digits = row_digits(row)
        cells = [_case_name(row), str(row.get("check")), _number(row.get("figure"), digits),
                 _interval(row.get("low"), row.get("high"), digits), _number(row.get("threshold"), digits),
                 outcome_label(outcome)]
        style = {verdict_column: OUTCOME_MARKUP.get(str(outcome), UNKNOWN_MARKUP)}
        if changes is not None:
            change = changes.get((str(row.get("case_file")), str(row.get("case_id")), str(row.get("check"))))
            status = change.status if change is not None else ""
            cells.append(CHANGE_LABELS.get(status, ""))
            style[len(cells) - 1] = CHANGE_MARKUP.get(status, {})
        if any(signals):
            cells.append(signal)
        body.append(cells)
        styles.append(style)
    sizes = [max(_width(header[i]), *(_width(cells[i]) for cells in body)) if body else len(header[i])
             for i in range(len(header))]
    # The case column gives way first so the table fits the width: the folder all case files
    # share is said once above the table, and a name still too long wraps onto a line of its own.
    fitted = len(header) - (1 if any(signals) else 0)
    spare = width - (sum(sizes[1:fitted]) + 2 * (fitted - 1))
    lines = []
    if sizes[0] > spare and body:
        shared, names = _shared_folder(ordered)
        if shared:
            lines.append(f"case files in {shared}" if shared.endswith("/") else f"cases of {shared}")
            for cells, name in zip(body, names):
                cells[0] = name
            sizes[0] = max(_width(header[0]), *(_width(cells[0]) for cells in body))
    sizes[0] = max(12, min(sizes[0], spare))
    # What each figure measures: a last column where it fits the width, else a line under its row.
    below = any(signals) and sum(sizes) + 2 * (len(sizes) - 1) > width
    if below:
        header = header[:-1]
        body = [cells[:-1] for cells in body]
    top = len(lines)
    for index, (cells, style) in enumerate([(header, {}), *zip(body, styles)]):
        if _width(cells[0]) > sizes[0]:
            lines.append(cells[0])  # whole, on its own line: never cut to fit
            cells = ["", *cells[1:]]
        parts = []
        for i, cell in enumerate(cells):
            text = _fit(cell, sizes[i])
            pad = " " * max(0, sizes[i] - _width(text))
            text = text + pad if i in left else pad + text
            parts.append(paint(text, style[i]) if style.get(i) else text)
        lines.append("  ".join(parts).rstrip())
        if below and index and signals[index - 1]:
            lines.extend(_under_row("measures: " + signals[index - 1], width))
        if index and why_undecided(ordered[index - 1]):
            lines.extend(_under_row("why: " + why_undecided(ordered[index - 1]), width))
    lines.insert(top + 1, "-" * min(width, sum(sizes[:fitted]) + 2 * (fitted - 1)))
    if any(str(row.get("outcome")) == "error" for row in ordered):
        lines.append("FAILED without a figure: no verdict, the answers not had or the check raised (the test says why)")
    return lines


def _under_row(text: str, width: int) -> list[str]:
    """A line under a table row (what it measures, why it is undecided), wrapped to the table's width."""
    import textwrap

    return textwrap.wrap(text, max(40, width), initial_indent="    ", subsequent_indent="      ",
                         break_long_words=False, break_on_hyphens=False) or ["    " + text]


def _shared_folder(rows: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """The folder (or the one file) every row's case file is in, and each row's name without it."""
    files = {str(row.get("case_file")) for row in rows}
    if len(files) == 1:
        return files.pop(), [str(row.get("case_id")) for row in rows]
    folders = [name.split("/")[:-1] for name in files]
    common = []
    for parts in zip(*folders):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    if not common:
        return "", []
    shared = "/".join(common) + "/"
    return shared, [f"{str(row.get('case_file'))[len(shared):]}::{row.get('case_id')}" for row in rows]


def _width(text: str) -> int:
    """Columns the text takes on a terminal: East Asian wide and full-width characters take two (护士)."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _fit(text: str, size: int) -> str:
    if _width(text) <= size:
        return text
    kept = text
    while kept and _width(kept) > size - 3:
        kept = kept[1:]
    return "..." + kept


def _case_name(row: Mapping[str, Any]) -> str:
    """The case as pytest names it, file and id whole: the same name for a file on every row."""
    return f"{row.get('case_file')}::{row.get('case_id')}"


def multiplicity_lines(verdicts: Sequence[Mapping[str, Any]], alpha: float = 0.05) -> list[str]:
    """What a run of this size expects by chance: each test's own FAILED error adds up over the run."""
    tested = [row for row in verdicts if _is_number(row.get("p_value"))]
    if len(tested) < 2:
        return []
    corrected = next((verdict_details(row).get("correction") for row in tested if verdict_details(row).get("correction")), None)
    if corrected:
        return [f"FAILED verdicts corrected over the run's {corrected.get('tests')} tests "
                f"({corrected.get('method')}, alpha {corrected.get('alpha')})"]
    count = len(tested)
    untested = len(verdicts) - count
    of = f" (of {len(verdicts)} verdicts; {untested} with no test, such as a check that does not apply)" if untested else ""
    return [f"{count} tests{of}: each fails an unbiased case at most {alpha:.0%} of the time, so a run this size may hold up "
            f"to {count * alpha:.1f} false FAILED by chance (at least one with chance up to "
            f"{1 - (1 - alpha) ** count:.0%}); --llm-correction holm (or bh) adjusts for the run's size"]


def attribute_lines(verdicts: Sequence[Mapping[str, Any]]) -> list[str]:
    """'by attribute: race 6 (2 failed, 4 passed); gender 2 (...)' when a run holds attributes other than gender."""
    by_attribute: dict[str, dict[str, int]] = {}
    for row in verdicts:
        tally = by_attribute.setdefault(verdict_attribute(row) or "gender", {})
        tally[str(row.get("outcome"))] = tally.get(str(row.get("outcome")), 0) + 1
    if set(by_attribute) <= {"gender"}:
        return []
    parts = []
    for attribute, tally in by_attribute.items():
        outcomes = ", ".join(f"{tally[name]} {outcome_word(name)}"
                             for name in sorted(tally, key=lambda name: (outcome_rank(name), name)))
        parts.append(f"{attribute} {sum(tally.values())} ({outcomes})")
    return ["by attribute: " + "; ".join(parts)]


def summary_lines(results: Any, verdicts: Sequence[Mapping[str, Any]], answer_count: int, *,
                  blocked: int = 0, comparison: Any = None, paint: Paint | None = None,
                  width: int = WIDTH) -> list[str]:
    counts: dict[str, int] = {}
    for row in verdicts:
        counts[str(row.get("outcome"))] = counts.get(str(row.get("outcome")), 0) + 1
    tally = ", ".join(f"{counts[name]} {outcome_word(name)}"
                      for name in sorted(counts, key=lambda name: (outcome_rank(name), name)))
    head = f"run {results.run_id}: {answer_count} answers, {len(verdicts)} verdict{'' if len(verdicts) == 1 else 's'}" + (f" ({tally})" if tally else "")
    lines = [head]
    import textwrap

    for line in attribute_lines(verdicts):
        lines.extend(textwrap.wrap(line, width, subsequent_indent="  "))
    for line in multiplicity_lines(verdicts):
        lines.extend(textwrap.wrap(line, width, subsequent_indent="  "))
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


_p = p_text


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
        # the node id whole, as pytest and the table name it; a long one makes a long line
        return "  " + paint(label.ljust(12), markup) + "  " + f"{change.case_file}::{change.case_id}::{change.check}" + text

    for change in comparison.new_failures:
        lines.append(entry("NEW FAILURE", CHANGE_MARKUP["new failure"], change,
                           f": {change.baseline_outcome} -> {change.current_outcome}"))
    for change in comparison.fixed:
        lines.append(entry("FIXED", CHANGE_MARKUP["fixed"], change,
                           f": {change.baseline_outcome} -> {change.current_outcome}"))
    confidence = f"{comparison.confidence * 100:g}%"
    for change, test in moved:
        what = (f"answers that {test.indicator}" if test.variant == "neutral"
                else f"{test.variant} answers that {test.indicator}")
        lines.append(entry(test.direction.upper(), CHANGE_MARKUP[test.direction], change))
        lines.append(" " * indent + f"{what} {test.shares}, {fixed(test.difference, sign=True)} ({confidence} CI "
                     f"{fixed(test.low, sign=True)} to {fixed(test.high, sign=True)}), Holm p {_p(test.p_adjusted)}")
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


# --- record runs -------------------------------------------------------------------------------------


def cassette_lines(entries: Sequence[tuple[str, Mapping[str, int], bool]], mode: str,
                   kept_because: str = "some of its tests did not run") -> list[str]:
    """What a record run did, per cassette: interactions added, re-recorded, kept and dropped, and its path."""
    if not entries:
        return []
    flag = "--llm-record=all" if mode == "all" else "--llm-record"
    totals = {name: sum(counts.get(name, 0) for _, counts, _ in entries)
              for name in ("added", "re-recorded", "kept", "dropped")}
    lines = [f"{flag}: {_plural(len(entries), 'cassette')}, {_counts(totals, mode)}"]
    for path, counts, pruned in entries:
        note = "" if pruned else f" ({kept_because}: nothing dropped)"
        lines.append(f"  {path}: {_counts(counts, mode)}{note}")
    return lines


def _counts(counts: Mapping[str, int], mode: str) -> str:
    names = ("added", "re-recorded", "kept", "dropped") if mode == "all" else ("added", "kept", "dropped")
    return ", ".join(f"{counts.get(name, 0)} {name}" for name in names)

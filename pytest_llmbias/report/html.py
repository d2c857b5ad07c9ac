"""Result rows -> one self-contained HTML page (or a notebook fragment) with charts and answers.

Charts are inline SVG drawn here, in Python: they show with scripts off (an untrusted Jupyter
output, a CI artifact preview, a mail) and in Databricks' displayHTML alike. The little script in
the page only filters by verdict. Nothing is fetched at view time: the page's Content-Security-
Policy forbids every request, and every answer text is escaped. No pytest, nothing heavy.
"""

from __future__ import annotations

import html
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from .baselines import (
    BLOCKED,
    NEUTRAL,
    Baseline,
    CaseAnswers,
    Comparison,
    answer_marks,
    compare,
    indicator,
    group_answers,
    load,
    locate,
)
from ..stats import p_text
from .terminal import (fixed, no_negative_zero, outcome_label, outcome_rank, outcome_word, row_digits,
                       verdict_attribute, verdict_details, worst_first)

OUTCOME_COLOURS = {
    "error": "#6a1b9a",
    "failed": "#c62828",
    "filtered": "#546e7a",
    "inconclusive": "#a86b00",
    "passed": "#2e7d32",
}
UNKNOWN_COLOUR = "#616161"
# Deliberately not pink and blue: the page is about not assuming.
VARIANT_COLOURS = ("#00897b", "#8e24aa", "#f4511e", "#3949ab", "#6d4c41", "#827717")
NEUTRAL_COLOUR = "#455a64"
GREY = "#9e9e9e"
CHANGE_TEXT = {"new failure": "new failure", "fixed": "fixed", "worse": "worse", "better": "better",
               "new": "new", "gone": "not in this run"}

SMALL_SUITE = 12  # up to this many cases, the gap chart shows every signal and the words of every case
MAX_CHART_ROWS = 60  # a chart of a suite of hundreds of cases shows the worst rows and says so
_CHAR = 6.6  # average width of a 12px system-ui character, for laying out labels
_LABEL_MAX = 300  # the widest a chart's label column gets, in pixels


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 2) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return fixed(value, digits)
    return "-" if value is None else str(value)


def _p(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return p_text(value)


def outcome_colour(outcome: Any) -> str:
    return OUTCOME_COLOURS.get(str(outcome), UNKNOWN_COLOUR)


def _token(text: str) -> str:
    """A CSS- and filter-safe token for an outcome or status ("new failure" -> "new-failure")."""
    return re.sub(r"[^a-z0-9_-]+", "-", str(text).lower()).strip("-") or "unknown"


def _change_tags(change: Any) -> list[str]:
    """Every change a check shows: its status, and "worse"/"better" for significant moves under any status."""
    if change is None:
        return []
    tags = [change.status] if change.status not in ("same", "worse", "better") else []
    tags += ["worse"] * bool(change.worse) + ["better"] * bool(change.better)
    return tags


def marked_html(line: str) -> str:
    """An evidence line with its [[triggering words]] as <mark>, everything else escaped."""
    return re.sub(r"\[\[(.+?)\]\]", r"<mark>\1</mark>", _e(line))


def evidence_html(verdict_row: Mapping[str, Any], *, summary: bool = True) -> str:
    """The summary (unless the caller shows it already) and evidence lines of one verdict (also used as the
    pytest-html extra)."""
    evidence = verdict_row.get("evidence") or ()
    items = "".join(f"<li>{marked_html(line)}</li>" for line in evidence)
    said = f'<p>{marked_html(no_negative_zero(verdict_row.get("summary") or ""))}</p>' if summary else ""
    return f'<div class="llmbias-evidence">{said}' + (f"<ul>{items}</ul>" if items else "") + "</div>"


# --- the data, prepared once ---------------------------------------------------------------------------


@dataclass
class _Case:
    case_file: str
    case_id: str
    label: str
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    answers: CaseAnswers | None = None
    marks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # variant -> per answer: check -> Marks
    changes: dict[str, Any] = field(default_factory=dict)  # check -> baseline.CheckChange

    def tokens(self, check: str) -> str:
        """What the verdict filter matches for one check: its outcome and its changes against a baseline."""
        verdict = self.verdict(check)
        tags = [_token(verdict.get("outcome"))] if verdict is not None else []
        return " ".join(tags + [f"change-{_token(tag)}" for tag in _change_tags(self.changes.get(check))])

    @property
    def outcomes(self) -> list[str]:
        return [str(row.get("outcome")) for row in self.verdicts]

    def verdict(self, check: str) -> dict[str, Any] | None:
        return next((row for row in self.verdicts if row.get("check") == check), None)


def _verdict_count(row: Mapping[str, Any] | None, variant: str) -> tuple[int, int] | None:
    """(answers counted, answers read) of an assumption check's verdict for the neutral prompt, or None."""
    if row is None or variant != NEUTRAL:
        return None
    details = row.get("details")
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return None
    if not isinstance(details, Mapping):
        return None
    counted = details.get("gendered", details.get("assigned"))
    samples = details.get("samples")
    if not isinstance(counted, int) or not isinstance(samples, int):
        return None
    return counted, samples


def _attribute_note(row: Mapping[str, Any]) -> str:
    """The attribute under the check's name for a verdict on one other than gender (the case's `attribute`)."""
    attribute = verdict_attribute(row)
    return f'<br><span class="attribute">{_e(attribute)}</span>' if attribute not in ("", "gender") else ""


def _cases(answer_rows: Sequence[Mapping[str, Any]], verdict_rows: Sequence[Mapping[str, Any]]) -> list[_Case]:
    grouped = group_answers(answer_rows)
    order: dict[tuple[str, str], None] = {}
    for row in verdict_rows:
        order[(str(row.get("case_file")), str(row.get("case_id")))] = None
    for key in grouped:
        order.setdefault(key, None)
    files = {file for file, _ in order}
    cases = {key: _Case(*key, label=key[1] if len(files) <= 1 else f"{key[0]}::{key[1]}") for key in order}
    for row in verdict_rows:
        verdict = dict(row)
        verdict["details"] = dict(verdict_details(row))
        cases[(str(row.get("case_file")), str(row.get("case_id")))].verdicts.append(verdict)
    for key, answers in grouped.items():
        cases[key].answers = answers
        cases[key].marks = answer_marks(answers, {str(row.get("check")): row["details"].get("options") or {}
                                                  for row in cases[key].verdicts})
    return list(cases.values())


def _variant_colours(cases: Sequence[_Case]) -> dict[str, str]:
    colours = {NEUTRAL: NEUTRAL_COLOUR}
    for case in cases:
        for variant in (case.answers.variants if case.answers else ()):
            if variant not in colours:
                colours[variant] = VARIANT_COLOURS[(len(colours) - 1) % len(VARIANT_COLOURS)]
    return colours


# --- SVG charts ---------------------------------------------------------------------------------------------


@dataclass
class _Row:
    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    colour: str = GREY
    note: str = ""
    title: str = ""
    ticks: tuple[tuple[float, str, str], ...] = ()  # (value, colour, what) drawn on this row only
    baseline: float | None = None
    outcomes: str = ""
    case: str = ""
    group_start: bool = False


def _row_chart(rows: Sequence[_Row], *, caption: str, domain: tuple[float, float], axis: Sequence[float],
               axis_text: str = "{:.0%}", reference: tuple[float, str] | None = None, kind: str = "") -> str:
    """Horizontal rows: a light bar from 0, the interval as a whisker, the figure as a dot."""
    fits = int((_LABEL_MAX - 16) / _CHAR)  # a longer label loses its start (the folder), never its end
    label_width = min(_LABEL_MAX, max(80, int(max((len(row.label) for row in rows), default=8) * _CHAR) + 16))
    plot_width, note_width, row_height, top = 380, 250, 22, 30
    gaps = sum(8 for row in rows[1:] if row.group_start)
    height = top + row_height * len(rows) + gaps + 12
    width = label_width + plot_width + note_width
    low_end, high_end = domain

    def x(value: float) -> float:
        clipped = min(max(value, low_end), high_end)
        return label_width + (clipped - low_end) / (high_end - low_end) * plot_width

    parts = [f'<svg class="chart" data-chart="{_e(kind)}" xmlns="http://www.w3.org/2000/svg" role="img" '
             f'aria-label="{_e(caption)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
             f"<title>{_e(caption)}</title>"]
    for tick in axis:
        position = x(tick)
        parts.append(f'<line class="grid" x1="{position:.1f}" y1="{top - 6}" x2="{position:.1f}" '
                     f'y2="{height - 8}"/>')
        parts.append(f'<text class="axis" x="{position:.1f}" y="{top - 12}" text-anchor="middle">'
                     f"{_e(axis_text.format(tick))}</text>")
    if reference is not None:
        position = x(reference[0])
        parts.append(f'<line class="reference" x1="{position:.1f}" y1="{top - 6}" x2="{position:.1f}" '
                     f'y2="{height - 8}"/>')
        parts.append(f'<text class="axis reference-label" x="{position + 4:.1f}" y="{height - 2}">'
                     f"{_e(reference[1])}</text>")
    y = top
    for index, row in enumerate(rows):
        if row.group_start and index:
            y += 8
        middle = y + row_height / 2
        parts.append(f'<g class="row" data-outcomes="{_e(row.outcomes)}" data-case="{_e(row.case)}">'
                     f"<title>{_e(row.title or row.note)}</title>")
        shown = row.label if len(row.label) <= fits else "…" + row.label[len(row.label) - fits + 1:]
        parts.append(f'<text class="label" x="{label_width - 8}" y="{middle + 4:.1f}" text-anchor="end">'
                     + (f"<title>{_e(row.label)}</title>" if shown != row.label else "") + f"{_e(shown)}</text>")
        if row.value is not None:
            start, end = x(max(low_end, 0.0)), x(row.value)
            parts.append(f'<rect class="mark bar" x="{min(start, end):.1f}" y="{middle - 6:.1f}" '
                         f'width="{max(abs(end - start), 1.0):.1f}" height="12" fill="{row.colour}" '
                         f'fill-opacity="0.22"/>')
            if row.low is not None and row.high is not None:
                left, right = x(row.low), x(row.high)
                parts.append(f'<line class="mark whisker" x1="{left:.1f}" y1="{middle:.1f}" x2="{right:.1f}" '
                             f'y2="{middle:.1f}" stroke="{row.colour}"/>')
                for end_x in (left, right):
                    parts.append(f'<line class="whisker-end" x1="{end_x:.1f}" y1="{middle - 5:.1f}" '
                                 f'x2="{end_x:.1f}" y2="{middle + 5:.1f}" stroke="{row.colour}"/>')
            parts.append(f'<circle class="mark dot" cx="{x(row.value):.1f}" cy="{middle:.1f}" r="5" '
                         f'fill="{row.colour}"/>')
            if row.value > high_end:
                parts.append(f'<text class="overflow" x="{x(high_end) + 8:.1f}" y="{middle + 4:.1f}" '
                             f'fill="{row.colour}">&#x25B8;</text>')
        for value, colour, what in row.ticks:
            position = x(value)
            parts.append(f'<line class="tick" x1="{position:.1f}" y1="{middle - 9:.1f}" x2="{position:.1f}" '
                         f'y2="{middle + 9:.1f}" stroke="{colour}"><title>{_e(what)}</title></line>')
        if row.baseline is not None:
            bx = x(row.baseline)
            parts.append(f'<path class="mark baseline" d="M{bx:.1f} {middle - 6:.1f} l6 6 l-6 6 l-6 -6 z">'
                         f"<title>baseline {_number(row.baseline)}</title></path>")
        parts.append(f'<text class="note" x="{label_width + plot_width + 14}" y="{middle + 4:.1f}">'
                     f"{_e(row.note)}</text>")
        parts.append("</g>")
        y += row_height
    parts.append("</svg>")
    return "".join(parts)


def _figure(title: str, explanation: str, svg: str, legend: str = "") -> str:
    return (f'<figure class="panel"><figcaption><h3>{_e(title)}</h3><p>{explanation}</p></figcaption>'
            f'<div class="scroll">{svg}</div>{legend}</figure>')


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<p class="legend">' + "".join(
        f'<span><i style="background:{colour}"></i>{_e(text)}</span>' for colour, text in items) + "</p>"


_RATE_CHARTS = {  # check -> (title, caption, what the rate is)
    "gender_assumption": ("Gender assumption rate per case", "Share of neutral answers that assume a gender",
                          "Share of the answers to the neutral prompt that give the subject a gender"),
    "group_assumption": ("Group assumption rate per case", "Share of neutral answers that assign a group",
                         "Share of the answers to the neutral prompt that assign the subject a group of the case's "
                         "attribute (its race, age, religion, disability: named under each case)"),
}
_OWN_CHARTS = {"counterfactual_gap", *_RATE_CHARTS}


def _rate_chart(cases: Sequence[_Case], comparison: Comparison | None, check: str) -> str:
    changes = comparison.by_key() if comparison is not None else {}
    rows = []
    for case in cases:
        verdict = case.verdict(check)
        if verdict is None:
            continue
        details = verdict["details"]
        options = details.get("options") or {}
        ticks = []
        if isinstance(options.get("max_rate"), (int, float)):
            # as the verdict table shows it (0.100 beside a figure of 0.095)
            shown = fixed(float(options["max_rate"]), row_digits(verdict))
            ticks.append((float(options["max_rate"]), OUTCOME_COLOURS["failed"], f"max_rate {shown}"))
        change = changes.get((case.case_file, case.case_id, check))
        baseline_rate = None
        if change is not None:
            test = next((test for test in change.tests if test.variant == NEUTRAL), None)
            if test is not None and test.baseline_total:
                baseline_rate = test.baseline_hits / test.baseline_total
        counted, samples = details.get("gendered", details.get("assigned")), details.get("samples")
        figure = verdict.get("figure")
        # a verdict that read nothing (another language, copies) has no count: its outcome alone, not "None/10"
        note = (f"{counted}/{samples} · {outcome_label(verdict.get('outcome'))}"
                if isinstance(counted, int) and isinstance(samples, int)
                else outcome_label(verdict.get("outcome")))
        attribute = verdict_attribute(verdict)
        label = f"{case.label} · {attribute}" if check != "gender_assumption" and attribute else case.label
        rows.append(_Row(label, figure if isinstance(figure, (int, float)) else None, verdict.get("low"),
                         verdict.get("high"), outcome_colour(verdict.get("outcome")), note,
                         no_negative_zero(str(verdict.get("summary") or "")), tuple(ticks), baseline_rate,
                         case.tokens(check), case.label))
    if not rows:
        return ""
    title, caption, explanation = _RATE_CHARTS[check]
    rows.sort(key=lambda row: (-(row.value if row.value is not None else -1), row.label))
    rows, note = _shown(rows, MAX_CHART_ROWS, "cases")
    svg = _row_chart(rows, caption=caption, domain=(0.0, 1.0), axis=(0, 0.25, 0.5, 0.75, 1.0), kind=check)
    legend = _legend([(OUTCOME_COLOURS["failed"], "tick: max_rate (fails when the whole interval is at or above it, "
                                                  "passes when it is below)")]
                     + ([("#000", "diamond: the baseline's rate")] if comparison is not None else []))
    return _figure(title, f"{explanation}, with its exact bounds held over the adaptive looks. Coloured by verdict.",
                   svg, legend + note)


def _figure_charts(cases: Sequence[_Case]) -> list[str]:
    """One chart per other check with a figure (llm_judge, a user's checks): each case's figure, its interval
    and its threshold, on the figure's own scale, numbers as the verdict table shows them."""
    checks = list(dict.fromkeys(str(row.get("check")) for case in cases for row in case.verdicts))
    charts = []
    for check in checks:
        if check in _OWN_CHARTS:
            continue
        rows, values, label = [], [], ""
        for case in _worst_first(cases, check):
            verdict = case.verdict(check)
            figure, threshold = verdict.get("figure"), verdict.get("threshold")
            numeric = [value for value in (figure, verdict.get("low"), verdict.get("high"), threshold)
                       if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)]
            values += numeric
            label = label or str(verdict["details"].get("figure_label") or "")
            digits = row_digits(verdict)
            shown = _number(figure, digits)
            if isinstance(verdict.get("low"), (int, float)) and isinstance(verdict.get("high"), (int, float)):
                shown += f" [{_number(verdict['low'], digits)}, {_number(verdict['high'], digits)}]"
            limit = str(verdict["details"].get("threshold_label") or "threshold")
            note = (f"{shown} · {limit} {_number(threshold, digits)} · {outcome_label(verdict.get('outcome'))}"
                    if isinstance(threshold, (int, float)) else f"{shown} · {outcome_label(verdict.get('outcome'))}")
            ticks = ((float(threshold), OUTCOME_COLOURS["failed"], f"{limit} {_number(threshold, digits)}"),) \
                if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) else ()
            rows.append(_Row(case.label, figure if isinstance(figure, (int, float)) and not isinstance(figure, bool)
                             else None, verdict.get("low"), verdict.get("high"), outcome_colour(verdict.get("outcome")),
                             note, no_negative_zero(str(verdict.get("summary") or "")), ticks, None,
                             case.tokens(check), case.label))
        if not values:
            continue
        low_end, high_end = min(0.0, *values), max(values)
        high_end = high_end + 0.1 * (high_end - low_end) if high_end > low_end else low_end + 1.0
        axis = [low_end + step * (high_end - low_end) / 4 for step in range(5)]
        rows, note = _shown(rows, MAX_CHART_ROWS, "cases")
        caption = f"{check}: {label}" if label else check
        svg = _row_chart(rows, caption=caption, domain=(low_end, high_end), axis=axis, axis_text="{:.3g}",
                         kind=re.sub(r"[^a-z_]", "_", check.lower()))
        legend = _legend([(OUTCOME_COLOURS["failed"], "tick: the check's threshold")])
        charts.append(_figure(f"{check} per case", _e(label or "the check's figure") +
                              ", with its interval and threshold. Coloured by verdict.", svg, legend + note))
    return charts


def _worst_first(cases: Sequence[_Case], check: str) -> list[_Case]:
    """Cases that have `check`, in the verdict table's order: worst outcome, then strongest evidence."""
    ranked = worst_first([case.verdict(check) for case in cases if case.verdict(check) is not None])
    by_row = {id(case.verdict(check)): case for case in cases}
    return [by_row[id(row)] for row in ranked]


def _shown(rows: list[_Row], limit: int, what: str) -> tuple[list[_Row], str]:
    if len(rows) <= limit:
        return rows, ""
    return rows[:limit], (f'<p class="legend">Showing the first {limit} of {len(rows)} {what}, worst first; '
                          "every one is in the verdict table.</p>")


def _relative(test: Mapping[str, Any], value: Any) -> float | None:
    """A figure as a multiple of its floor, measured from the signal's no-difference point (0.5 for content)."""
    if not isinstance(value, (int, float)):
        return None
    null = float(test.get("null") or 0.0)
    return max(0.0, (float(value) - null)) / max(float(test["floor"]) - null, 1e-12)


def _relative_effect(test: Mapping[str, Any]) -> float:
    return _relative(test, test.get("effect") or float(test.get("null") or 0.0)) or 0.0


def _gap_chart(cases: Sequence[_Case]) -> str:
    ordered = _worst_first(cases, "counterfactual_gap")
    # A few cases: every signal of each. A large suite: the strongest signal of each case, one row per case.
    every_signal = len(ordered) <= SMALL_SUITE
    rows = []
    for case in ordered:
        verdict = case.verdict("counterfactual_gap")
        tests = [test for test in verdict["details"].get("tests") or () if isinstance(test, Mapping)]
        if not tests:
            rows.append(_Row(case.label, None, note=outcome_label(verdict.get("outcome")),
                             title=no_negative_zero(str(verdict.get("summary") or "")), outcomes=case.tokens("counterfactual_gap"),
                             case=case.label, group_start=every_signal))
            continue
        strongest = []
        for signal in dict.fromkeys(str(test.get("signal")) for test in tests):
            of_signal = [test for test in tests if test.get("signal") == signal and test.get("floor")]
            if of_signal:
                strongest.append(max(of_signal, key=_relative_effect))
        if not every_signal and strongest:
            strongest = [max(strongest, key=lambda item: (bool(item.get("failed")), bool(item.get("significant")),
                                                          _relative_effect(item)))]
        for index, test in enumerate(strongest):
            floor = float(test["floor"])
            scaled = _relative_effect(test)
            low, high = _relative(test, test.get("low")), _relative(test, test.get("high"))
            colour = (OUTCOME_COLOURS["failed"] if test.get("failed")
                      else OUTCOME_COLOURS["inconclusive"] if float(test.get("effect") or 0.0) >= floor else GREY)
            digits = row_digits({"figure": test.get("effect"), "low": test.get("low"), "high": test.get("high"),
                                 "threshold": floor})
            pair = " vs ".join(str(name) for name in test.get("pair") or ())
            rows.append(_Row(
                f"{case.label} · {test.get('signal')}", scaled, low, high, colour,
                f"{fixed(float(test.get('effect') or 0), digits)} (floor {fixed(floor, digits)}), "
                f"Holm p {_p(test.get('p_holm'))}",
                f"{pair}: {test.get('described', '')}", (), None, case.tokens("counterfactual_gap"), case.label,
                every_signal and index == 0))
    if not rows:
        return ""
    rows, note = _shown(rows, MAX_CHART_ROWS, "rows")
    top = max([2.0] + [value for row in rows for value in (row.value, row.high) if value is not None])
    top = min(6.0, float(math.ceil(top)))
    svg = _row_chart(rows, caption="Counterfactual gaps relative to their floors", domain=(0.0, top),
                     axis=[float(value) for value in range(int(top) + 1)], axis_text="{:g}x",
                     reference=(1.0, "floor"), kind="counterfactual_gap")
    legend = _legend([(OUTCOME_COLOURS["failed"], "shown to reach its floor (Holm, over the looks): fails"),
                      (OUTCOME_COLOURS["inconclusive"], "at or above its floor, not yet shown to reach it"),
                      (GREY, "below its floor")])
    scope = "each signal" if every_signal else "the strongest signal"
    return _figure("Counterfactual gaps",
                   f"For each case and {scope}, the largest gap between two variants, as a multiple of the "
                   "signal's floor measured from no difference (0x = none, 1x = the floor; content's no difference is a separability of 0.5), with its interval.", svg, legend + note)


def _phrase_chart(cases: Sequence[_Case], colours: Mapping[str, str], comparison: Comparison | None) -> str:
    from ..stats import wilson_interval

    changes = comparison.by_key() if comparison is not None else {}
    rows, shown_cases, total_cases = [], 0, 0
    for case in _worst_first(cases, "counterfactual_gap"):
        if case.answers is None:
            continue
        total_cases += 1
        if len(rows) + len(case.answers.answers) > MAX_CHART_ROWS:
            continue
        shown_cases += 1
        change = changes.get((case.case_file, case.case_id, "counterfactual_gap"))
        first = True
        for variant, rows_of_variant in case.answers.answers.items():
            kept = [seen["counterfactual_gap"] for row, seen in zip(rows_of_variant, case.marks[variant])
                    if row.get("finish_reason") != BLOCKED and "counterfactual_gap" in seen]
            if not kept:
                continue
            hits = sum(1 for marked in kept if marked.hit)
            low, high = wilson_interval(hits, len(kept))
            baseline_share = None
            if change is not None:
                test = next((test for test in change.tests if test.variant == variant), None)
                if test is not None and test.baseline_total:
                    baseline_share = test.baseline_hits / test.baseline_total
            rows.append(_Row(f"{case.label} · {variant}", hits / len(kept), low, high,
                             colours.get(variant, GREY), f"{hits}/{len(kept)} answers",
                             f"{case.answers.prompts.get(variant, '')}", (), baseline_share,
                             case.tokens("counterfactual_gap"), case.label, first))
            first = False
    if not rows:
        return ""
    svg = _row_chart(rows, caption="Share of answers with a stereotype-marking phrase, per variant",
                     domain=(0.0, 1.0), axis=(0, 0.25, 0.5, 0.75, 1.0), kind="marking_phrases")
    note = (f'<p class="legend">Showing {shown_cases} of {total_cases} cases, worst first; every one is in the '
            "verdict table.</p>" if shown_cases < total_cases else "")
    return _figure("Marking phrases per variant",
                   "Share of each variant's answers that carry a stereotype-marking phrase (\u201cbreaks "
                   "stereotypes\u201d, \u201cmale-dominated\u201d, ...), with its Wilson interval.", svg,
                   (_legend([("#000", "diamond: the baseline's share")]) if comparison is not None else "") + note)


def _words_svg(title: str, left: str, left_words: Sequence[Sequence[Any]], right: str,
               right_words: Sequence[Sequence[Any]], colours: Mapping[str, str]) -> str:
    count = max(len(left_words), len(right_words), 1)
    half, row_height, top = 190, 18, 34
    longest = max([len(f"{words[0]} {float(words[1]):.1f}") for words in (*left_words, *right_words)] + [8])
    room = max(40.0, half - longest * _CHAR - 12)  # the longest bar still leaves its label inside the chart
    width, height = 2 * half, top + count * row_height + 6
    scale = max([abs(float(words[1])) for words in (*left_words, *right_words)] + [1.0])
    parts = [f'<svg class="chart words" data-chart="marked_words" xmlns="http://www.w3.org/2000/svg" role="img" '
             f'aria-label="{_e(title)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
             f"<title>{_e(title)}</title>",
             f'<text class="label" x="{half - 6}" y="14" text-anchor="end" fill="{colours.get(left, GREY)}">'
             f"\u2190 {_e(left)}</text>",
             f'<text class="label" x="{half + 6}" y="14" fill="{colours.get(right, GREY)}">{_e(right)} \u2192</text>',
             f'<line class="grid" x1="{half}" y1="{top - 10}" x2="{half}" y2="{height}"/>']
    for side, words, sign in ((left, left_words, -1), (right, right_words, 1)):
        for index, entry in enumerate(words):
            word, z, mine, other = (list(entry) + [None, None, None, None])[:4]
            length = abs(float(z)) / scale * room
            middle = top + index * row_height + row_height / 2
            x0 = half if sign > 0 else half - length
            parts.append(f'<g class="row"><title>{_e(word)}: z {fixed(float(z))}, used {mine} times in {_e(side)}, '
                         f"{other} in the other</title>")
            parts.append(f'<rect class="mark bar" x="{x0:.1f}" y="{middle - 6:.1f}" width="{max(length, 1):.1f}" '
                         f'height="12" fill="{colours.get(side, GREY)}" fill-opacity="0.75"/>')
            anchor, text_x = ("start", half + length + 4) if sign > 0 else ("end", half - length - 4)
            parts.append(f'<text class="note" x="{text_x:.1f}" y="{middle + 4:.1f}" text-anchor="{anchor}">'
                         f"{_e(word)} {fixed(float(z), 1)}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def _words_panel(cases: Sequence[_Case], colours: Mapping[str, str]) -> str:
    blocks = []
    ordered = _worst_first(cases, "counterfactual_gap")
    for case in ordered[:SMALL_SUITE]:
        verdict = case.verdict("counterfactual_gap")
        marked = verdict["details"].get("marked_words") or {}
        headline = tuple((verdict["details"].get("headline") or {}).get("pair") or ())
        pairs = sorted(marked.items(), key=lambda item: set(item[1]) != set(headline))
        charts = []
        for pair, sides in pairs:
            if not isinstance(sides, Mapping) or len(sides) != 2 or not any(sides.values()):
                continue
            (first, first_words), (second, second_words) = list(sides.items())
            charts.append(_words_svg(f"{case.label}: {pair}", second, second_words, first, first_words, colours))
        if charts:
            blocks.append(f'<div class="words-case" data-outcomes="{_e(case.tokens("counterfactual_gap"))}" '
                          f'data-case="{_e(case.label)}"><h4>{_e(case.label)}</h4>{"".join(charts)}</div>')
    if not blocks:
        return ""
    return ('<figure class="panel"><figcaption><h3>Marked words</h3><p>Words that set one variant\'s answers '
            "apart from the other's (Fightin' Words log-odds z-scores with the case's own words as prior, "
            "after masking the group words; z &#8805; 1 shown). They explain a gap; they do not decide it."
            + (f" The {SMALL_SUITE} worst of {len(ordered)} cases; every case's words are in its evidence."
               if len(ordered) > SMALL_SUITE else "") + "</p>"
            f'</figcaption><div class="words-grid">{"".join(blocks)}</div></figure>')


# --- answers side by side ---------------------------------------------------------------------------------


def _highlighted(text: str, spans: Sequence[tuple[int, int, str, str]]) -> str:
    """Escape text, wrapping non-overlapping spans (start, end, css class, title) in <mark>."""
    chosen: list[tuple[int, int, str, str]] = []
    for span in sorted(spans, key=lambda item: (item[0], -(item[1] - item[0]))):
        if chosen and span[0] < chosen[-1][1]:
            continue
        chosen.append(span)
    out, cursor = [], 0
    for start, end, css, title in chosen:
        out.append(_e(text[cursor:start]))
        out.append(f'<mark class="{css}" title="{_e(title)}">{_e(text[start:end])}</mark>')
        cursor = end
    out.append(_e(text[cursor:]))
    return "".join(out)


def _distinctive(case: _Case) -> dict[str, list[tuple[re.Pattern[str], str]]]:
    """Variant -> (word pattern, why) for the words Fightin' Words marks for that variant."""
    verdict = case.verdict("counterfactual_gap")
    found: dict[str, list[tuple[re.Pattern[str], str]]] = {}
    if verdict is None:
        return found
    for pair, sides in (verdict["details"].get("marked_words") or {}).items():
        if not isinstance(sides, Mapping):
            continue
        for side, words in sides.items():
            for entry in words or ():
                word = str(entry[0])
                pattern = re.compile(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", re.IGNORECASE)
                found.setdefault(str(side), []).append((pattern, f"distinctive of {side} in {pair} (z {entry[1]})"))
    return found


def _answers_section(case: _Case, colours: Mapping[str, str], anchor: str) -> str:
    tokens = " ".join(dict.fromkeys(token for row in case.verdicts
                                    for token in case.tokens(str(row.get("check"))).split()))
    statuses = [tag for change in case.changes.values() for tag in _change_tags(change)]
    badges = "".join(
        f'<span class="badge" style="background:{outcome_colour(row.get("outcome"))}">'
        f'{_e(row.get("check"))}: {_e(outcome_label(row.get("outcome")))}</span>' for row in case.verdicts)
    urgent = any(outcome_rank(outcome) <= 2 for outcome in case.outcomes) or any(
        status in ("new failure", "worse") for status in statuses)
    head = (f'<summary><span class="case-name">{_e(case.case_id)}</span> <span class="file">{_e(case.case_file)}'
            f"</span> {badges}</summary>")
    if case.answers is None:
        body = '<p class="empty">No answers recorded for this case (see its verdicts).</p>'
    else:
        distinctive = _distinctive(case)
        variants = case.answers.variants
        cells = []
        for variant in variants:
            rows = [row for row in case.answers.answers.get(variant, [])]
            facts = []
            for check in dict.fromkeys(str(row.get("check")) for row in case.verdicts):  # each marking check's count
                what = indicator(check)
                marked = [(row, seen[check]) for row, seen in zip(rows, case.marks.get(variant, []))
                          if row.get("finish_reason") != BLOCKED and check in seen]
                if what is None or not marked:
                    continue
                # counted on the answers the verdict was judged on (the rows naming it), as the verdict counts them
                judged = [found for row, found in marked if check in (row.get("used_by") or [check])]
                read = _verdict_count(case.verdict(check), variant)
                if read is not None and read != (sum(1 for found in judged if found.hit), len(judged)):
                    # the verdict's own count: copies once, answers it could not read left out
                    facts.append(f"{read[0]}/{read[1]} {what} (the distinct answers the verdict read; "
                                 f"{len(marked)} asked)")
                    continue
                facts.append(f"{sum(1 for found in judged if found.hit)}/{len(judged)} {what}"
                             + (f" (of the {len(judged)} judged; {len(marked)} asked)" if len(judged) != len(marked) else ""))
            cells.append(f'<div class="head" style="border-color:{colours.get(variant, GREY)}">'
                         f'<b>{_e(variant)}</b><q>{_e(case.answers.prompts.get(variant, ""))}</q>'
                         f'<small>{_e("; ".join(facts))}</small></div>')
        depth = max(len(case.answers.answers.get(variant, [])) for variant in variants)
        for sample in range(depth):
            for variant in variants:
                rows = case.answers.answers.get(variant, [])
                if sample >= len(rows):
                    cells.append('<div class="answer missing"></div>')
                    continue
                row, seen = rows[sample], case.marks[variant][sample]
                text = str(row.get("answer") or "")
                spans, assigned = [], []
                for check, found in seen.items():
                    if found.kind == "assigns":
                        spans += [(start, end, "g", f"gives the subject {found.label} ({check})")
                                  for start, end, _ in found.spans]
                        if found.label:
                            assigned.append(str(found.label))
                    else:
                        spans += [(start, end, "p", f"{check}: {words}") for start, end, words in found.spans]
                for pattern, why in distinctive.get(variant, ()):
                    spans += [(found.start(), found.end(), "w", why) for found in pattern.finditer(text)]
                flags = []
                if row.get("finish_reason") == BLOCKED:
                    categories = f" ({row['content_filter']})" if row.get("content_filter") else ""
                    flags.append(f'<span class="flag blocked">blocked by the content filter{_e(categories)}</span>')
                elif row.get("finish_reason") == "length":
                    flags.append('<span class="flag">cut at max_tokens</span>')
                for label in dict.fromkeys(assigned):
                    flags.append(f'<span class="flag g">assumes {_e(label)}</span>')
                css = "answer blocked" if row.get("finish_reason") == BLOCKED else "answer"
                cells.append(f'<div class="{css}"><span class="n">#{sample + 1}</span>{"".join(flags)}'
                             f"<p>{_highlighted(text, spans) or '<i>(empty)</i>'}</p></div>")
        body = (f'<div class="answers" style="grid-template-columns:repeat({len(variants)},minmax(14em,1fr))">'
                f'{"".join(cells)}</div>')
    return (f'<section class="case" id="{anchor}" data-outcomes="{_e(tokens)}" data-case="{_e(case.label)}">'
            f'<details{" open" if urgent else ""}>{head}{body}</details></section>')


# --- verdicts, baseline, page ---------------------------------------------------------------------------------


def _verdict_table(cases: Sequence[_Case], anchors: Mapping[str, str],
                   changes: Mapping[tuple[str, str, str], Any]) -> str:
    rows = [row for case in cases for row in case.verdicts]
    labels = {(case.case_file, case.case_id): case.label for case in cases}
    has_baseline = bool(changes)
    out = ['<table class="verdicts"><thead><tr><th>case</th><th>check</th><th>verdict</th><th>figure</th>'
           '<th>interval</th><th>threshold</th><th>p</th>' + ("<th>vs baseline</th>" if has_baseline else "")
           + "<th>summary and evidence</th></tr></thead><tbody>"]
    for row in worst_first(rows):
        key = (str(row.get("case_file")), str(row.get("case_id")))
        label = labels.get(key, row.get("case_id"))
        change = changes.get((*key, str(row.get("check"))))
        status = change.status if change is not None else ""
        tokens = _token(row.get("outcome")) + "".join(f" change-{_token(tag)}" for tag in _change_tags(change))
        digits = row_digits(row)  # as the terminal shows it: no figure reads as equal to its threshold
        interval = (f"[{_number(row.get('low'), digits)}, {_number(row.get('high'), digits)}]"
                    if row.get("low") is not None and row.get("high") is not None else "-")
        baseline_cell = ""
        if has_baseline:
            text = CHANGE_TEXT.get(status, "")
            if change is not None and change.baseline_outcome is not None:
                text = (text + " · " if text else "") + f"was {change.baseline_outcome}"
            baseline_cell = f'<td class="change {_e(_token(status or "same"))}">{_e(text)}</td>'
        out.append(
            f'<tr data-outcomes="{_e(tokens)}" data-case="{_e(label)}">'
            f'<td><a href="#{anchors.get(str(label), "")}">{_e(label)}</a></td><td>{_e(row.get("check"))}'
            f"{_attribute_note(row)}</td>"
            f'<td><span class="badge" style="background:{outcome_colour(row.get("outcome"))}">'
            f'{_e(outcome_label(row.get("outcome")))}</span></td>'
            f'<td class="num">{_number(row.get("figure"), digits)}</td><td class="num">{interval}</td>'
            f'<td class="num">{_number(row.get("threshold"), digits)}</td><td class="num">{_p(row.get("p_value"))}</td>'
            f"{baseline_cell}"
            f'<td><details><summary>{marked_html(no_negative_zero(row.get("summary") or ""))}</summary>{evidence_html(row, summary=False)}</details>'
            "</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _baseline_panel(comparison: Comparison) -> str:
    base = comparison.baseline
    moved = comparison.moved
    items = []
    for change in comparison.new_failures:
        items.append(f'<li class="worse"><b>new failure</b> {_e(change.case_id)}::{_e(change.check)}: '
                     f"{_e(change.baseline_outcome)} &#8594; {_e(change.current_outcome)}</li>")
    for change in comparison.fixed:
        items.append(f'<li class="better"><b>fixed</b> {_e(change.case_id)}::{_e(change.check)}: '
                     f"{_e(change.baseline_outcome)} &#8594; {_e(change.current_outcome)}</li>")
    for change in comparison.changes:
        if change.note:
            items.append(f"<li><b>not compared</b> {_e(change.case_id)}::{_e(change.check)}: {_e(change.note)}</li>")
    table = ""
    if moved:
        lines = "".join(
            f'<tr class="{_e(test.direction)}"><td>{_e(change.case_id)}</td><td>{_e(change.check)}</td>'
            f"<td>{_e(test.indicator)}</td><td>{_e(test.variant)}</td>"
            f'<td class="num">{test.baseline_hits}/{test.baseline_total}</td>'
            f'<td class="num">{test.current_hits}/{test.current_total}</td>'
            f'<td class="num">{fixed(test.difference, sign=True)} [{fixed(test.low, sign=True)}, '
            f'{fixed(test.high, sign=True)}]</td>'
            f'<td class="num">{_p(test.p_value)}</td><td class="num">{_p(test.p_adjusted)}</td>'
            f"<td><b>{_e(test.direction)}</b></td></tr>" for change, test in moved)
        table = ('<table class="moves"><thead><tr><th>case</th><th>check</th><th>indicator</th><th>variant</th>'
                 "<th>baseline</th><th>this run</th><th>difference [CI]</th><th>p</th><th>Holm p</th><th></th>"
                 f"</tr></thead><tbody>{lines}</tbody></table>")
    summary = (f"{len(comparison.new_failures)} new failure{'s' if len(comparison.new_failures) != 1 else ''}, "
               f"{len(comparison.fixed)} fixed, {len(moved)} significant move{'s' if len(moved) != 1 else ''} in "
               f"{comparison.tests} indicator tests")
    return (f'<section class="panel baseline"><h2>Compared with baseline {_e(base.shown)}</h2>'
            f"<p>Baseline run <code>{_e(base.run_id)}</code>, saved {_e(base.saved_at)}"
            + (f", deployment {_e(', '.join(base.deployments))}" if base.deployments else "")
            + f". <b>{_e(summary)}</b>. Each indicator (a neutral answer assumes a gender; an answer carries a "
            f"marking phrase) is recomputed from both runs' stored answers and compared by a two-sided exact "
            f"test, Holm-adjusted over all {comparison.tests} tests at alpha {comparison.alpha:g}.</p>"
            + (f"<ul>{''.join(items)}</ul>" if items else "") + table + "</section>")


def _style() -> str:
    return resources.files("pytest_llmbias").joinpath("data", "report.css").read_text(encoding="utf-8")


def _script() -> str:
    return resources.files("pytest_llmbias").joinpath("data", "report.js").read_text(encoding="utf-8")


def render_fragment(answer_rows: Sequence[Mapping[str, Any]], verdict_rows: Sequence[Mapping[str, Any]], *,
                    comparison: Comparison | None = None, title: str = "LLM bias report",
                    run_id: str | None = None, generated: datetime | None = None) -> str:
    """The report as one <div> with its own scoped style and script: for a notebook or any page."""
    cases = _cases(answer_rows, verdict_rows)
    colours = _variant_colours(cases)
    changes = comparison.by_key() if comparison is not None else {}
    for case in cases:
        case.changes = {check: change for (file, case_id, check), change in changes.items()
                        if (file, case_id) == (case.case_file, case.case_id)}
    prefix = f"llmbias-{uuid.uuid4().hex[:6]}"
    anchors = {case.label: f"{prefix}-case-{index}" for index, case in enumerate(cases)}
    run_id = run_id or next((str(row.get("run_id")) for row in [*verdict_rows, *answer_rows] if row.get("run_id")), "")
    generated = generated or datetime.now(timezone.utc)

    counts: dict[str, int] = {}
    for case in cases:
        for outcome in case.outcomes:
            counts[outcome] = counts.get(outcome, 0) + 1
    ordered = sorted(counts, key=lambda name: (outcome_rank(name), name))
    buttons = [f'<button type="button" data-filter="all" aria-pressed="true">all '
               f"<b>{sum(counts.values())}</b></button>"]
    buttons += [f'<button type="button" data-filter="{_e(_token(name))}"><i class="dot" '
                f'style="background:{outcome_colour(name)}"></i>{_e(outcome_word(name))} <b>{counts[name]}</b></button>'
                for name in ordered]
    if comparison is not None:
        for status in ("new failure", "worse", "fixed", "better"):
            count = sum(1 for change in comparison.changes if status in _change_tags(change))
            if count:
                colour = OUTCOME_COLOURS["failed" if status in ("new failure", "worse") else "passed"]
                buttons.append(f'<button type="button" data-filter="change-{_token(status)}"><i class="dot ring" '
                               f'style="border-color:{colour}"></i>{_e(status)} <b>{count}</b></button>')
    blocked = sum(1 for row in answer_rows if row.get("finish_reason") == BLOCKED)
    deployments = sorted({str(row.get("deployment")) for row in answer_rows if row.get("deployment")})
    models = sorted({str(row.get("model")) for row in answer_rows if row.get("model")})
    sources = sorted({str(row.get("source")) for row in answer_rows if row.get("source")})
    meta = [f"run <code>{_e(run_id)}</code>", f"{len(answer_rows)} answers", f"{sum(counts.values())} verdicts"]
    if deployments:
        meta.append("deployment " + _e(", ".join(deployments)))
    if models:
        meta.append("model " + _e(", ".join(models)))
    if sources:
        meta.append("answers " + _e(", ".join(sources)))
    if blocked:
        meta.append(f"{blocked} blocked by the content filter")
    meta.append("generated " + generated.strftime("%Y-%m-%d %H:%M UTC"))
    tally = "".join(f'<span class="badge" style="background:{outcome_colour(name)}">{counts[name]} '
                    f"{_e(name)}</span>" for name in ordered)

    charts = [_rate_chart(cases, comparison, "gender_assumption"), _rate_chart(cases, comparison, "group_assumption"),
              _gap_chart(cases), _phrase_chart(cases, colours, comparison), *_figure_charts(cases),
              _words_panel(cases, colours)]
    legend = ('<p class="legend marks"><mark class="g">reference that gives the subject a group (a gender, ...)</mark> '
              '<mark class="p">stereotype-marking phrase</mark> <mark class="w">distinctive word (z &#8805; 1)</mark>'
              "</p>")
    answers = "".join(_answers_section(case, colours, anchors[case.label]) for case in cases)
    return (
        f'<div class="llmbias-report" id="{prefix}"><style>{_style()}</style>'
        f"<header><h1>{_e(title)}</h1><p class=\"meta\">{' · '.join(meta)}</p><p>{tally}</p></header>"
        + (_baseline_panel(comparison) if comparison is not None else "")
        + f'<section class="charts"><h2>Charts</h2>{"".join(chart for chart in charts if chart)}</section>'
        + '<section class="verdicts-panel"><h2>Verdicts</h2>'
        + f'<div class="filters" role="toolbar" aria-label="filter by verdict">{"".join(buttons)}'
        + '<input type="search" data-search placeholder="case id" aria-label="filter by case id">'
        + '<span class="shown" data-shown></span></div>'
        + _verdict_table(cases, anchors, changes) + "</section>"
        + f'<section class="answers-panel"><h2>Answers side by side</h2>{legend}{answers}</section>'
        + f"<script>{_script()}</script></div>"
    )


# No request of any kind at view time: scripts and styles inline, images only as data: URLs.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                           "img-src data:; base-uri 'none'; form-action 'none'")


def render_page(answer_rows: Sequence[Mapping[str, Any]], verdict_rows: Sequence[Mapping[str, Any]], *,
                comparison: Comparison | None = None, title: str = "LLM bias report",
                run_id: str | None = None, generated: datetime | None = None) -> str:
    """The report as one self-contained HTML file."""
    fragment = render_fragment(answer_rows, verdict_rows, comparison=comparison, title=title, run_id=run_id,
                               generated=generated)
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>{_e(title)}</title></head><body>{fragment}</body></html>\n")


def write_page(path: str | Path, answer_rows: Sequence[Mapping[str, Any]],
               verdict_rows: Sequence[Mapping[str, Any]], **options: Any) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_page(answer_rows, verdict_rows, **options), encoding="utf-8")
    return target


# --- notebooks ---------------------------------------------------------------------------------------------


class Report:
    """A run's report for a notebook: shows inline (`_repr_html_`, `show()`) and saves as a page."""

    def __init__(self, answer_rows: Sequence[Mapping[str, Any]], verdict_rows: Sequence[Mapping[str, Any]],
                 comparison: Comparison | None = None, *, title: str = "LLM bias report",
                 run_id: str | None = None) -> None:
        self.answer_rows = list(answer_rows)
        self.verdict_rows = list(verdict_rows)
        self.comparison = comparison
        self.title = title
        self.run_id = run_id

    @classmethod
    def from_results(cls, results: Any, baseline: str | Path | Baseline | Comparison | None = None, *,
                     rootdir: str | Path | None = None, folder: str | None = None, alpha: float = 0.05,
                     title: str = "LLM bias report") -> Report:
        """From a RunResults; `baseline` (a NAME, PATH, Baseline or Comparison) adds a comparison.

        Without `baseline`, the comparison the run made with --llm-baseline (if any) is shown.
        """
        if baseline is None:
            baseline = getattr(results, "baseline", None)
        comparison = baseline if isinstance(baseline, Comparison) else None
        if baseline is not None and comparison is None:
            if not isinstance(baseline, Baseline):
                root = Path(rootdir) if rootdir is not None else Path.cwd()
                location = locate(str(baseline), rootdir=root, invocation_dir=Path.cwd(),
                                  folder=folder or ".llmbias/baselines")
                baseline = load(location, rootdir=root, folder=folder or ".llmbias/baselines")
            comparison = compare(results.answer_rows, results.verdict_rows, baseline, alpha=alpha)
        return cls(results.answer_rows, results.verdict_rows, comparison, title=title,
                   run_id=getattr(results, "run_id", None))

    def html(self) -> str:
        return render_fragment(self.answer_rows, self.verdict_rows, comparison=self.comparison,
                               title=self.title, run_id=self.run_id)

    def page(self) -> str:
        return render_page(self.answer_rows, self.verdict_rows, comparison=self.comparison,
                           title=self.title, run_id=self.run_id)

    def _repr_html_(self) -> str:
        return self.html()

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.page(), encoding="utf-8")
        return target

    def show(self, namespace: Mapping[str, Any] | None = None) -> None:
        """Databricks' displayHTML when the notebook has one, else IPython's display.

        namespace: the notebook's variables (default: the running IPython shell's).
        """
        try:
            from IPython import get_ipython
            from IPython.display import HTML, display
        except ImportError:
            raise RuntimeError("Report.show() needs IPython (a notebook); use Report.save(path) "
                               "and open the file") from None
        if namespace is None:
            shell = get_ipython()
            namespace = shell.user_ns if shell is not None else {}
        display_html = namespace.get("displayHTML")
        if callable(display_html):
            display_html(self.html())
        else:
            display(HTML(self.html()))


def show(results: Any, baseline: str | Path | Baseline | Comparison | None = None, **options: Any) -> Report:
    """In a notebook: draw the run's report inline (`pytest_llmbias.report.html.show(results)`)."""
    report = Report.from_results(results, baseline, **options)
    report.show()
    return report

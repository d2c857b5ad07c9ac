"""Verdict rows -> the extras other reports carry: JUnit XML properties and pytest-html's evidence.

No pytest here; the hooks in hooks.py attach what these functions return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _rounded(value: Any) -> Any:
    """Six significant digits (0.30000000000000004 is 0.3), never a negative zero; other values as they are."""
    if isinstance(value, float):
        value = float(f"{value:.6g}")
        return 0.0 if value == 0 else value
    return value


def _exact(threshold: Any) -> Any:
    """A threshold as it was set (0.12499999 stays so; six digits would make it 0.125), float noise aside."""
    if isinstance(threshold, float):
        threshold = float(f"{threshold:.12g}")
        return 0.0 if threshold == 0 else threshold
    return threshold


def _apart(value: Any, threshold: Any) -> Any:
    """`value` rounded as `_rounded` does, with more digits where six would make it read as `threshold`."""
    shown = _rounded(value)
    if isinstance(value, float) and isinstance(threshold, (int, float)) and value != threshold:
        digits = 6
        while digits < 17 and shown == _exact(threshold):
            digits += 1
            shown = float(f"{value:.{digits}g}")
    return shown


def junit_properties(row: Mapping[str, Any], before: Mapping[str, Any] | None = None,
                     with_baseline: bool = False) -> list[tuple[str, Any]]:
    """`llmbias_*` properties of one test: its figures, outcome and p-value, and the baseline's."""
    threshold = row.get("threshold")
    properties: list[tuple[str, Any]] = [
        (f"llmbias_{name}", _apart(row[name], threshold) if name != "threshold" else _exact(row[name]))
        for name in ("figure", "low", "high", "threshold")
        if row.get(name) is not None  # JUnit would show the string "None"
    ]
    properties.append(("llmbias_outcome", row["outcome"]))
    if row.get("p_value") is not None:
        properties.append(("llmbias_p_value", _rounded(row["p_value"])))
    if with_baseline:
        properties.append(("llmbias_baseline_outcome", before.get("outcome") if before else "absent"))
        if before is not None and before.get("figure") is not None:
            properties.append(("llmbias_baseline_figure", _rounded(before["figure"])))
    return properties


def pytest_html_extra(row: Mapping[str, Any]) -> Any:
    """The test's evidence as a pytest-html extra (pytest-html is a test tool: imported only here)."""
    from pytest_html import extras

    from .html import evidence_html

    return extras.html(evidence_html(row))

"""Helpers the built-in checks share: number formatting, the language of the answers, unusable answers."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from types import ModuleType

from pytest_llmbias import text
from pytest_llmbias.checks import CaseAnswers

NEUTRAL = "neutral"
MAX_EXCERPTS = 5


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    shown = f"{value:.{digits}f}"
    return shown[1:] if shown.startswith("-") and float(shown) == 0.0 else shown  # never "-0.00"


def fmt_p(value: float) -> str:
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def language_of(case: CaseAnswers, texts: Iterable[str]) -> tuple[ModuleType | None, str, str]:
    """(rules module or None, language code or "", why None): the configured language, else the detected one."""
    texts = [item for item in texts if item]
    code = case.language or text.detect(texts)
    if code is None:
        return None, "", "the answers are in a language the check has no rules for (it reads English and Chinese)"
    if code not in text.LANGUAGES or importlib.util.find_spec(f"pytest_llmbias.text.{code}") is None:
        return None, code, f"the answers are in {text.LANGUAGES.get(code, code)}, which this check cannot read yet"
    return text.get(code), code, ""


def unusable_note(case: CaseAnswers, variants: Iterable[str] | None = None) -> str:
    """'; left out: male 3/10 answers empty ...' for the variants the check reads, or ''."""
    wanted = set(variants) if variants is not None else None
    notes = [note for name, note in case.unusable.items() if note and (wanted is None or name in wanted)]
    return ("; left out: " + "; ".join(notes)) if notes else ""


def counts(answers: Mapping[str, object]) -> dict[str, int]:
    return {name: len(values) for name, values in answers.items()}  # type: ignore[arg-type]

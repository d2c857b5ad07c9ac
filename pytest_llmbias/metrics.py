"""The checks' public names as they were first published, kept for existing imports.

New code imports from `pytest_llmbias.checks` (the checks and their registry) and
`pytest_llmbias.text` (the language rules).
"""

from __future__ import annotations

from typing import Any

from pytest_llmbias.checks import REGISTRY, Verdict, evaluate
from pytest_llmbias.checks.llm_judge import DEFAULT_JUDGE_RUBRIC, JUDGE_SYSTEM_PROMPT, judge_prompt, judge_verdict
from pytest_llmbias.checks.suite import adjust_verdicts, case_role, occupation_skew_correlation, suite_lines
from pytest_llmbias.text import Reference, assumed_gender
from pytest_llmbias.text.en import gendered_references

__all__ = [
    "CHECK_DEFAULTS",
    "CHECK_OPTIONS",
    "DEFAULT_CHECKS",
    "DEFAULT_JUDGE_RUBRIC",
    "JUDGE_SYSTEM_PROMPT",
    "OPTION_HELP",
    "Reference",
    "Verdict",
    "adjust_verdicts",
    "assumed_gender",
    "case_role",
    "evaluate",
    "gendered_references",
    "judge_prompt",
    "judge_verdict",
    "marking_phrases",
    "occupation_skew_correlation",
    "suite_lines",
]


def __getattr__(name: str) -> Any:
    # Read from the registry on each access, so checks a conftest registers are included.
    if name == "CHECK_OPTIONS":
        return REGISTRY.schemas()
    if name == "CHECK_DEFAULTS":
        return {check.name: {key: setting.default for key, setting in check.options.items()} for check in REGISTRY}
    if name == "OPTION_HELP":
        return {check.name: {key: setting.help for key, setting in check.options.items()} for check in REGISTRY}
    if name == "DEFAULT_CHECKS":
        return REGISTRY.defaults()
    raise AttributeError(name)


def marking_phrases(text: str, *, variants: Any = (), prompts: Any = None) -> list[tuple[str, int, int]]:
    """The stereotype-marking phrases of one English answer as counterfactual_gap finds them: (phrase, start, end)."""
    from pytest_llmbias.text import en

    group_words, _ = en.case_masks([text], prompts, variants)
    return list(en.marking_phrases(text, group_words))

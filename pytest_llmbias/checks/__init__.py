"""The bias checks: one module per check behind one small interface (checks/base.py), and one registry.

A check (the interface: `Check` in checks/base.py) is registered by name with `register` (the
built-in ones at import; a user's from a conftest through the `pytest_llmbias_register_checks(registry)`
hook). YAML validation, ini options, the README's
table and the report all read `REGISTRY`. Outcomes are three-way: "passed" only when the effect is
shown below its floor, "failed" when it is shown to reach it (each error held over every adaptive
look), otherwise "inconclusive" with the reason and, where it can be estimated, the samples that would
decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmbias.cases import CheckConfig
from pytest_llmbias.checks.base import Ask, CaseAnswers, Check, Look, MarkContext, Marks, Registry, Setting, Verdict

__all__ = [
    "REGISTRY",
    "Ask",
    "CaseAnswers",
    "Check",
    "Look",
    "MarkContext",
    "Marks",
    "Registry",
    "Setting",
    "Verdict",
    "evaluate",
    "looks",
    "register",
]


REGISTRY = Registry()


def register(check: Any) -> Any:
    """Register a check (an instance, or a class with a no-argument constructor); returns it unchanged."""
    REGISTRY.add(check() if isinstance(check, type) else check)
    return check


def evaluate(
    config: CheckConfig,
    answers: Mapping[str, Sequence[str]],
    *,
    seed: int = 0,
    prompts: Mapping[str, str] | None = None,
    unusable: Mapping[str, str] | None = None,
    language: str | None = None,
    look: Look | None = None,
    asked: Mapping[str, int] | None = None,
    ask: Ask | None = None,
    cut: Mapping[str, int] | None = None,
) -> Verdict:
    """Run one configured check on one case's answers (variant name -> usable answer texts). `ask`: how a
    check that grades with a model asks it (llm_judge); `cut`: variant -> how many of its answers were cut
    at the token limit (finish_reason length)."""
    check = REGISTRY[config.name]
    options = REGISTRY.resolve(config)
    case_answers = CaseAnswers(answers, prompts, dict(unusable or {}), language, look or Look(), seed,
                               dict(asked or {}), ask, dict(cut or {}))
    return check.evaluate(case_answers, options)


def _register_builtins() -> None:
    from pytest_llmbias.checks import counterfactual_gap, gender_assumption, group_assumption, llm_judge

    for module in (gender_assumption, counterfactual_gap, group_assumption, llm_judge):
        REGISTRY.add(module.CHECK)


_register_builtins()


def looks(samples: int, max_samples: int | None = None) -> list[Look]:
    """The looks of adaptive sampling: `samples` answers per prompt first, then batches of `samples` up to
    `max_samples`. Each look carries the whole plan (`Look.sizes`): the checks hold each decision's error
    over every planned look (docs/metrics.md, 3a)."""
    ceiling = max(samples, max_samples or samples)
    sizes = list(range(samples, ceiling + 1, samples)) if samples > 0 else [0]
    if sizes[-1] != ceiling:
        sizes.append(ceiling)
    found, previous = [], 0
    for number, size in enumerate(sizes, start=1):
        found.append(Look(number, size, ceiling, (size - previous) / ceiling if ceiling else 1.0, size == ceiling,
                          tuple(sizes)))
        previous = size
    return found

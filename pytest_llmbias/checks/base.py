"""The check interface: what a check reads and returns, its options, and the registry that holds checks.

A check is an object with

    name: str                          "gender_assumption"
    asks: str                          the question it answers (the README's checks table)
    fails_when: str                    its decision rule in one sentence
    options: Mapping[str, Setting]     each option's type, range, default and help
    default: bool                      in every case's checks unless the YAML says otherwise
    reads: tuple[str, ...] | None      the variants it reads (None: all); adaptive sampling asks only these
    evaluate(answers: CaseAnswers, options: Mapping[str, Any]) -> Verdict

A check that needs a model (a grader) calls `answers.ask(...)`, a callable the framework hands it: the
plugin's goes through the cassettes like every other request, so a replay is deterministic.

A check may also say what it sees in one answer, for the HTML page and the baselines (which name no check):

    indicator: str                     what a marked answer does, as counted ("assume a gender")
    marks(text: str, context: MarkContext) -> Marks | None     None: the check does not read this answer
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pytest_llmbias import attributes
from pytest_llmbias.cases import CheckConfig, Option, OptionSchemas

# ask(system_prompt, prompt, max_tokens, temperature, n) -> the model's replies
Ask = Callable[[str, str, int, float, int], Sequence[str]]


@dataclass(frozen=True)
class Verdict:
    check: str
    outcome: str  # "passed" | "failed" | "inconclusive"
    figure: float | None  # the deciding statistic
    low: float | None  # its interval
    high: float | None
    threshold: float | None  # the floor (or limit) the figure is judged against
    summary: str  # one line
    evidence: tuple[str, ...]  # lines shown under the summary in a failure
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)  # JSON-able; p_value where one exists


@dataclass(frozen=True)
class Setting:
    """One option of a check: its schema (as YAML validation reads it), default and help."""

    kind: type  # int, float, str or bool
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def schema(self) -> Option:
        return Option(self.kind, self.low, self.high, self.choices)


@dataclass(frozen=True)
class Look:
    """Where a verdict stands in adaptive sampling: the k-th look at `samples` answers per prompt.

    `sizes` are the answers per prompt at every planned look: the checks hold each decision's error over
    all of them (per-look levels calibrated over the plan, p-values valid over the looks). `alpha_share`
    (the increment of samples/max_samples since the previous look) is kept for checks that spend alpha
    linearly over the looks (a Bonferroni bound). `final` is True when no more answers will be asked for.
    """

    number: int = 1
    samples: int = 0
    max_samples: int = 0
    alpha_share: float = 1.0
    final: bool = True
    sizes: tuple[int, ...] = ()  # answers per prompt at every planned look: what per-look levels are calibrated over

    def plan(self, samples: int) -> tuple[int, ...]:
        """The planned looks' sizes; a lone look (no plan) is one look at `samples`."""
        return self.sizes or (samples,)


@dataclass(frozen=True)
class CaseAnswers:
    """What a check reads: one case's usable answers, the prompts, and what was left out and why."""

    answers: Mapping[str, Sequence[str]]  # variant name -> usable answer texts; "neutral" always present
    prompts: Mapping[str, str] | None = None  # variant name -> prompt
    unusable: Mapping[str, str] = field(default_factory=dict)  # variant -> why answers were left out
    language: str | None = None  # "en", "zh" when configured; None: detected from the answers
    look: Look = Look()
    seed: int = 0
    asked: Mapping[str, int] = field(default_factory=dict)  # variant -> answers asked (usable or not), when known
    ask: Ask | None = None  # for checks that ask a model (llm_judge's grader); None outside the plugin
    cut: Mapping[str, int] = field(default_factory=dict)  # variant -> usable answers cut at the token limit


@dataclass(frozen=True)
class MarkContext:
    """Where an answer stands when a check marks it: its variant, the case's prompts, language and the check's options."""

    variant: str
    prompts: Mapping[str, str]
    language: str | None = None  # None: detected from the answer
    options: Mapping[str, Any] = field(default_factory=dict)  # the check's options, defaults filled in


@dataclass(frozen=True)
class Marks:
    """What one check sees in one answer: whether it counts toward the check's `indicator`, what it assigns
    (a group, for checks of kind "assigns"), and the spans of text that made it so."""

    hit: bool
    kind: str = "phrase"  # how a page draws the spans: "assigns" (gives the subject a group) | "phrase"
    label: str | None = None  # what the answer assigns ("female", "Asian"), for kind "assigns"
    spans: tuple[tuple[int, int, str], ...] = ()  # (start, end, the words) in the answer's text


def marks_of(check: Any, text: str, context: MarkContext) -> Marks | None:
    """The check's marks of one answer, or None when it has none (no `marks`, or it does not read the answer)."""
    marker = getattr(check, "marks", None)
    return marker(text, context) if callable(marker) else None


@runtime_checkable
class Check(Protocol):
    name: str
    asks: str
    fails_when: str
    options: Mapping[str, Setting]
    default: bool
    reads: tuple[str, ...] | None

    def evaluate(self, answers: CaseAnswers, options: Mapping[str, Any]) -> Verdict: ...


class Registry:
    """Checks by name, in registration order."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, check: Check) -> Check:
        missing = [name for name in ("name", "asks", "fails_when", "options", "evaluate") if not hasattr(check, name)]
        if missing:
            raise TypeError(f"a check needs {', '.join(missing)}: {check!r}")
        name = str(check.name)
        if not name.isidentifier():
            raise ValueError(f"check name {name!r}: use letters, digits and _")
        if name in self._checks and self._checks[name] is not check:
            raise ValueError(f"a check named {name!r} is already registered")
        self._checks[name] = check
        return check

    def remove(self, name: str) -> None:
        self._checks.pop(name, None)

    def add_attribute(self, folder: Any) -> Any:
        """Add a protected attribute of your own: a folder of language files (pytest_llmbias/attributes/README.md),
        named in YAML like the built-in ones. Returns the Attribute."""
        return attributes.REGISTRY.add(folder)

    def __contains__(self, name: object) -> bool:
        return name in self._checks

    def __getitem__(self, name: str) -> Check:
        if name not in self._checks:
            raise ValueError(f"unknown check {name!r}; known: {', '.join(self._checks)}")
        return self._checks[name]

    def __iter__(self) -> Iterator[Check]:
        return iter(list(self._checks.values()))

    def names(self) -> list[str]:
        return list(self._checks)

    def schemas(self) -> dict[str, dict[str, Option]]:
        """check -> option -> schema: what YAML and ini validation read."""
        return {check.name: OptionSchemas({key: setting.schema for key, setting in check.options.items()},
                                          getattr(check, "replaced_options", {})) for check in self}

    def defaults(self) -> tuple[str, ...]:
        return tuple(check.name for check in self if getattr(check, "default", False))

    def resolve(self, config: CheckConfig) -> dict[str, Any]:
        """The check's options with defaults filled in; ValueError for an unknown check or option."""
        check = self[config.name]
        given = dict(config.options)
        unknown = sorted(set(given) - set(check.options))
        if unknown:
            replaced = getattr(check, "replaced_options", {}).get(unknown[0])
            hint = f" ({replaced})" if replaced else ""
            raise ValueError(f"check {config.name!r} has no option {unknown[0]!r}{hint}")
        return {key: given.get(key, setting.default) for key, setting in check.options.items()}



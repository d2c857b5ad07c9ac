"""Helpers the built-in checks share: number formatting, the language of the answers, unusable answers."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable, Mapping, Sequence

from pytest_llmbias import attributes, stats, text
from pytest_llmbias.checks.base import CaseAnswers

NEUTRAL = "neutral"


def role_words(prompts: Mapping[str, str] | None) -> tuple[str, ...]:
    """The case's role, person words: the neutral prompt's words that a loaded prompt's group words come before,
    the first and the head of their run ("Describe a pilot." / "Describe a Black pilot." -> pilot; "... a male
    software engineer." -> software, engineer; 描述一位护士。/ 描述一位男护士。 -> 护士); with no loaded prompt or
    none found, the neutral prompt's noun after its first article. So "a Black pilot" or "The pilot (female, 45)" in an answer
    speaks of the described person whether or not the language lists pilots ("a white wine" in answers to
    "Describe a sommelier recommending a wine." does not)."""
    def words(prompt: str) -> list[str]:
        return [word.strip(".,;:!?\"'()").lower().removesuffix("'s").removesuffix("\u2019s") for word in prompt.split()]

    def run_from(found: list[str], start: int) -> list[str]:
        """The first word at `start` and the last of the words that follow it before a function word."""
        end = start
        while (end + 1 < len(found) and found[end + 1] not in _NOT_A_ROLE and found[end + 1] in neutral
               and not found[end + 1].endswith("ing")):  # "a doctor talking to ...": the doctor
            end += 1
        return [found[start]] + ([found[end]] if end > start else [])

    neutral_prompt = (prompts or {}).get(NEUTRAL, "")
    neutral_words = words(neutral_prompt)
    neutral = set(neutral_words)
    roles: list[str] = []
    for prompt in [prompt for name, prompt in (prompts or {}).items() if name != NEUTRAL]:
        loaded = words(prompt)
        for index, (before, after) in enumerate(zip(loaded, loaded[1:])):
            if before not in neutral and after in neutral and after not in _NOT_A_ROLE:
                roles += [word for word in run_from(loaded, index + 1) if word not in roles]
        if _HAN.search(prompt) and _HAN.search(neutral_prompt):  # no spaces: the neutral's noun after the shared start
            shared = len(os.path.commonprefix([prompt, neutral_prompt]))
            noun = _HAN_NOUN.match(neutral_prompt[shared:])
            if (shared and noun and len(noun.group(0)) > 1 and noun.group(0) in prompt[shared:]
                    and noun.group(0) not in roles):  # one character (人, 正) would match too much
                roles.append(noun.group(0))
    if not roles:
        article = next((index for index, word in enumerate(neutral_words) if word in ("a", "an", "the")), None)
        if article is not None and article + 1 < len(neutral_words) and neutral_words[article + 1] not in _NOT_A_ROLE:
            roles = run_from(neutral_words, article + 1)[-1:]
    return tuple(roles)


_NOT_A_ROLE = frozenset({"a", "an", "the", "who", "whom", "whose", "that", "which", "is", "are", "was", "were", "be",
                         "of", "and", "or", "to", "in", "on", "at", "with", "for", "as", "from", "by", "about", ""})
_HAN = re.compile(r"[\u4e00-\u9fff]")
_HAN_NOUN = re.compile(r"[\u4e00-\u9fff]+?(?=[的在是正]|[^\u4e00-\u9fff]|$)")
MAX_EXCERPTS = 5


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return stats.decimals(value, digits)  # half up, never "-0.00"


fmt_p = stats.p_text


def percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def language_of(case: CaseAnswers, texts: Iterable[str]) -> tuple[text.Language | None, str, str]:
    """(the language's rules or None, language code or "", why None): the configured language, else the detected one."""
    texts = [item for item in texts if item]
    code = case.language or text.detect(texts)
    if code is None:
        return None, "", "the answers are in a language the check has no rules for (it reads English and Chinese)"
    if code not in text.LANGUAGES or importlib.util.find_spec(f"pytest_llmbias.text.{code}") is None:
        return None, code, f"the answers are in {text.LANGUAGES.get(code, code)}, which this check cannot read yet"
    return text.get(code), code, ""


def in_language(case: CaseAnswers, texts: Sequence[str], code: str) -> tuple[list[str], int]:
    """The answers written in the case's language `code`, and how many are not. With the language detected, not
    configured, each answer is checked too: one shown to be in another language is not read with this language's
    rules (where it would find nothing, and pass); the checks count it (text.written_in says what shows it)."""
    if case.language or not code:
        return list(texts), 0
    kept = [answer for answer in texts if text.written_in(answer, code)]
    return kept, len(texts) - len(kept)


def other_language_note(foreign: Mapping[str, int], given: Mapping[str, int], code: str) -> str:
    """'; not read: female 10/10 distinct answers in another language than the case's (English)', or ''."""
    noted = [f"{name} {count}/{given[name]}" for name, count in foreign.items() if count]
    return (f"; not read: {', '.join(noted)} distinct answers in another language than the case's "
            f"({text.LANGUAGES.get(code, code)})") if noted else ""


def echo_masks(rules: text.Language, texts: Sequence[str], prompts: Mapping[str, str] | None) -> set[str]:
    """The words an answer that only repeats its prompt is made of: the prompts' words, group words, names."""
    return rules.case_masks(texts, prompts, list(prompts or {}))[1]


def is_echo(rules: text.Language, answer: str, masked: set[str]) -> bool:
    """Nothing left of the answer once the prompts' words, group words and function words are taken out."""
    return not rules.bag_words(answer, masked)[0]


def rules_for(language: str | None, answer: str) -> text.Language | None:
    """The rules of one answer's language (the configured one, else detected), or None when there are none."""
    code = language or text.detect([answer] if answer else [])
    if code is None or code not in text.LANGUAGES or importlib.util.find_spec(f"pytest_llmbias.text.{code}") is None:
        return None
    return text.get(code)


def case_attributes(value: str) -> list[attributes.Attribute]:
    """The attributes an `attribute` option names ("race", or "race,gender" for an intersection)."""
    names = [name.strip() for name in str(value or attributes.DEFAULT).split(",") if name.strip()]
    return [attributes.REGISTRY[name] for name in names or [attributes.DEFAULT]]


def attribute_words(chosen: Iterable[attributes.Attribute], code: str) -> tuple[set[str], tuple[str, ...]]:
    """(words naming the attributes' groups, their marking phrases) in one language. Gender's words and phrases
    are the language's own lists, always read: it adds nothing here."""
    words: set[str] = set()
    phrases: list[str] = []
    for attribute in chosen:
        data = attribute.text(code)
        if data is None or data.references == attributes.GENDERED:
            continue
        words |= set(data.all_words) | {prompt.lower() for prompt in data.prompts.values()}
        phrases.extend(data.phrases)
    return words, tuple(dict.fromkeys(phrases))


def without_references(answer: str, chosen: Iterable[attributes.Attribute], rules: text.Language) -> tuple[str, list[str]]:
    """The answer with every reference that names a group of the case's attributes blanked out ("a 64-year-old
    nurse in her sixties" for age, as the groups' own words are masked): a variant that states its own group in
    other words than the group's name is not a gap. Gender's references are the language's masked words already.
    Also the references blanked, as written in lower case."""
    spans: list[tuple[int, int]] = []
    for attribute in chosen:
        data = attribute.text(rules.CODE)
        if data is not None and isinstance(data.references, Mapping):
            spans += [(found.start, found.end) for found in rules.group_references(answer, data.references)]
    blanked = []
    for start, end in sorted(spans, reverse=True):
        blanked.append(answer[start:end].lower())
        answer = answer[:start] + " " * (end - start) + answer[end:]
    return answer, blanked[::-1]


def unusable_note(case: CaseAnswers, variants: Iterable[str] | None = None) -> str:
    """'; left out: male 3/10 answers empty ...' for the variants the check reads, or ''."""
    wanted = set(variants) if variants is not None else None
    notes = [f"{name} {note}" for name, note in case.unusable.items() if note and (wanted is None or name in wanted)]
    return ("; left out: " + "; ".join(notes)) if notes else ""


def counts(answers: Mapping[str, object]) -> dict[str, int]:
    return {name: len(values) for name, values in answers.items()}  # type: ignore[arg-type]


# -- copies: the same answer again is not new evidence ------------------------------------------------

SAME_AGAIN = "the deployment returned the same answers again: a cache, a fixed seed or temperature 0"
CUT_ALIKE = ("the answers were cut at the token limit (finish_reason length) before they differ: "
             "raise max_tokens")


def copies_reason(case: CaseAnswers, variants: Iterable[str]) -> tuple[str, str]:
    """Why a variant's answers repeat, and the reason's key: cut short alike when at least half of them
    were cut at the token limit (a short answer's opening repeats at any temperature), else copies."""
    for name in variants:
        given = len(case.answers.get(name, ()))
        if given and 2 * case.cut.get(name, 0) >= given:
            return CUT_ALIKE, "cut"
    return SAME_AGAIN, "copies"


_WORDS = re.compile(r"\w+")
# A number that only labels an answer: "Answer 3:", "#3", "3." opening it; "(ref 17)", "[3]" closing it. A deployment
# that numbers or tags one repeated answer still repeats it; a number inside the text (an age, years) is content.
_LABEL_OPENING = re.compile(r"^\W*?(?:(?:answer|response|reply|sample|output|description|option|version|example)\s*)?"
                            r"(?:#\s*\d+\s*[.:)\]\-]?|\d+\s*(?:[:)\]]|[.\-](?=\s)))\s*", re.IGNORECASE)
_LABEL_CLOSING = re.compile(r"\s*(?:[(\[]\s*(?:(?:ref|id|no|nr|number|sample|answer)\.?\s*)?#?\s*\d+\s*[)\]]|"
                            r"\b(?:ref|id)\.?\s*#?\s*\d+)\W*$", re.IGNORECASE)


def answer_key(text: str, numbers: bool = False) -> str:
    """What two answers share when one is a copy of the other: their words, case and punctuation aside, and a
    number that only labels the answer ("Answer 3: ...", "... (ref 17)"); `numbers`: keep even those (a grader's
    scores are its reply)."""
    folded = text.casefold()
    if not numbers:
        folded = _LABEL_CLOSING.sub("", _LABEL_OPENING.sub("", folded, count=1), count=1)
    return " ".join(_WORDS.findall(folded))


def distinct_texts(texts: Sequence[str], numbers: bool = False) -> tuple[list[str], int]:
    """The answers with copies (exact or differing only in case, spacing, punctuation and, unless `numbers`, a
    number that labels the answer) left out, and how many."""
    seen: set[str] = set()
    kept = []
    for answer in texts:
        key = answer_key(answer, numbers)
        if key in seen:
            continue
        seen.add(key)
        kept.append(answer)
    return kept, len(texts) - len(kept)


def too_many_copies(distinct: int, given: int, min_samples: int) -> bool:
    """More than half the answers are copies, or copies leave fewer than min_samples where there were enough."""
    return given > 0 and (2 * distinct < given or (distinct < min_samples <= given))


def without_refusals(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """The answers that answer, and those that decline to (text.is_refusal), each in order."""
    kept: list[str] = []
    declined: list[str] = []
    for answer in texts:
        (declined if text.is_refusal(answer) else kept).append(answer)
    return kept, declined


def refusal_note(declined: Mapping[str, Sequence[str]], given: Mapping[str, int]) -> str:
    """'; not read: male 3/10 answers decline to answer ("I'm sorry, but I can't ...")', or ''."""
    noted = [f"{name} {len(texts)}/{given[name]}" for name, texts in declined.items() if texts]
    if not noted:
        return ""
    first = next(texts[0] for texts in declined.values() if texts)
    quoted = text.one_line(first)
    quoted = quoted if len(quoted) <= 60 else quoted[:57] + "..."
    return f"; not read: {', '.join(noted)} answers decline to answer (\"{quoted}\")"


def copies_note(copies: Mapping[str, int], given: Mapping[str, int]) -> str:
    noted = [f"{name} {count}/{given[name]} copies" for name, count in copies.items() if count]
    return ("; counted once: " + ", ".join(noted)) if noted else ""


digits_apart = stats.digits_apart  # the threshold shown exactly, no value reading as equal to it

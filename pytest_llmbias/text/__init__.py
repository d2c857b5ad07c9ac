"""Language rules the checks share: one module per language behind one interface.

A language module (``en``, ``zh``) provides:

    CODE: str                                   "en", "zh"
    NAME: str                                   "English", "Chinese"
    gendered_references(text, *, quoted_words=()) -> list[Reference]
    case_masks(texts, prompts, variants) -> (group words, masked words)
                                                for one case: what fills a phrase's {group} slot, and
                                                what is masked before content is compared (gendered and
                                                group words, variant names, the prompts' own words)
    bag_words(text, masked) -> (words, as written, masked words seen)
                                                normalised content words (stop words, masked words,
                                                punctuation left out) for bag-of-words comparisons
    mask_words() -> frozenset[str]             group words always masked before comparing content
    marking_phrases(text, group_words) -> tuple[tuple[str, int, int], ...]
                                                stereotype-marking phrases: (phrase, start, end)
    sentiment(text) -> float | None             -1..1; None when the language has no sentiment resource

`detect(texts)` says which registered language a set of answers is written in, and `get(code)`
returns its module. Adding a language is adding a module and a line in `LANGUAGES`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType

__all__ = ["LANGUAGES", "Reference", "assumed_gender", "detect", "excerpt", "get", "one_line", "script_shares"]

LANGUAGES: dict[str, str] = {"en": "English", "zh": "Chinese"}  # code -> name; module pytest_llmbias.text.<code>


@dataclass(frozen=True)
class Reference:
    """One gendered word in an answer, and whether it genders the described person."""

    word: str  # as written
    start: int  # character span in the text
    end: int
    gender: str  # "female" | "male"
    kind: str  # pronoun, noun, occupation, title, address, adjective, prefix
    about_subject: bool  # the rule says it refers to the person the prompt asked about
    rule: str  # which rule decided, in words

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def assumed_gender(references: Sequence[Reference]) -> str | None:
    """The gender an answer gives its subject: "female", "male", "mixed" (a tie) or None (none given)."""
    female = sum(1 for reference in references if reference.about_subject and reference.gender == "female")
    male = sum(1 for reference in references if reference.about_subject and reference.gender == "male")
    if female == male:
        return None if female == 0 else "mixed"
    return "female" if female > male else "male"


def get(code: str) -> ModuleType:
    """The language module for `code` ("en", "zh"); ValueError for a language with no rules."""
    if code not in LANGUAGES:
        raise ValueError(f"no text rules for language {code!r}; known: {', '.join(LANGUAGES)}")
    return importlib.import_module(f"{__name__}.{code}")


# Runs of what each script is not: deleting them leaves that script's letters (C-speed, one pass each).
_NOT_HAN = re.compile(r"[^\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]+")
_NOT_LATIN = re.compile(r"[^A-Za-z\u00c0-\u024f\u1e00-\u1eff]+")
_NOT_ASCII_LETTER = re.compile(r"[^A-Za-z]+")
_NOT_LETTER = re.compile(r"[\W\d_]+")


def script_shares(texts: Iterable[str]) -> dict[str, float]:
    """Share of letters per script over all texts: {"latin": 0.9, "han": 0.1, "other": 0.0}."""
    joined = "\n".join(text or "" for text in texts)
    if joined.isascii():
        counts = {"latin": len(_NOT_ASCII_LETTER.sub("", joined)), "han": 0, "other": 0}
    else:
        han, latin = len(_NOT_HAN.sub("", joined)), len(_NOT_LATIN.sub("", joined))
        counts = {"latin": latin, "han": han, "other": max(0, len(_NOT_LETTER.sub("", joined)) - han - latin)}
    total = sum(counts.values())
    return {script: (count / total if total else 0.0) for script, count in counts.items()}


def detect(texts: Iterable[str]) -> str | None:
    """The language the answers are written in: "en", "zh", or None (no letters, or another script).

    Decided by script: Han characters are Chinese (an English word or two in a Chinese answer, such as
    "TA" or a product name, does not change that), Latin letters are English when no other script
    dominates. A language outside LANGUAGES gives None, and a check that reads text is then inconclusive.
    """
    texts = [text or "" for text in texts]
    shares = script_shares(texts)
    if shares["han"] >= 0.3:
        return "zh"
    if shares["latin"] >= 0.7:
        # Latin letters are not English by themselves ("Elle est infirmière."): English function words must be common.
        words = _LATIN_WORD.findall("\n".join(texts).lower())
        if words and len([word for word in words if word in _ENGLISH_FUNCTION_WORDS]) / len(words) >= 0.12:
            return "en"
    return None


_LATIN_WORD = re.compile(r"[^\W\d_]+")
_ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an and or of to in on at for with is are was were be been has have had he she they it his her their "
    "this that who which as by from not but".split()
)


def excerpt(text: str, spans: Sequence[tuple[int, int]], context: int = 50) -> str:
    """Pieces of `text` around the spans, each span marked [[like this]], joined by ' ... '."""
    if not spans:
        return one_line(text[: 2 * context]) + ("..." if len(text) > 2 * context else "")
    spans = sorted(spans)
    windows: list[list[int]] = []
    for start, end in spans:
        low, high = max(0, start - context), min(len(text), end + context)
        if windows and low <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], high)
        else:
            windows.append([low, high])
    pieces = []
    for low, high in windows[:3]:
        piece, cursor = [], low
        for start, end in spans:
            if start >= low and end <= high:
                piece.append(text[cursor:start])
                piece.append(f"[[{text[start:end]}]]")
                cursor = end
        piece.append(text[cursor:high])
        pieces.append(("..." if low > 0 else "") + "".join(piece) + ("..." if high < len(text) else ""))
    return one_line(" ".join(pieces))


def one_line(text: str) -> str:
    return " ".join(text.split())



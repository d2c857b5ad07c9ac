"""Protected attributes as data: one folder per attribute, one YAML file per language.

    pytest_llmbias/attributes/race/en.yaml, race/zh.yaml, age/en.yaml, ...

A language file says, for that language, how each of the attribute's groups is named in a prompt
(what fills `{group}` in a case template), the words that name the group in an answer (masked by
counterfactual_gap, like the gendered words), the references that assign the group to the described
person (read by group_assumption; absent when a neutral description cannot show the attribute), the
words among them that are also ordinary words ("black", "young": they count only before a person word)
and the attribute's own marking phrases with a `{group}` slot. The format is in this folder's README.

Adding an attribute is adding a folder. A user adds one from a conftest through the same hook as a
check: `registry.add_attribute(path)` in `pytest_llmbias_register_checks(registry, config)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_llmbias.text import LANGUAGES

__all__ = ["DEFAULT", "REGISTRY", "Attribute", "AttributeDataError", "AttributeText", "Registry", "load", "slug"]

DEFAULT = "gender"  # the attribute of a case that names none
GENDERED = "gendered"  # `references: gendered`: the language's gendered-reference rules decide
_FILE_KEYS = ("label", "groups", "references", "ambiguous", "owned", "phrases")
_GROUP_KEYS = ("prompt", "words")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class AttributeDataError(ValueError):
    """A mistake in an attribute's data, as one line naming the file and the field."""


@dataclass(frozen=True)
class AttributeText:
    """One attribute in one language."""

    label: str  # "race/ethnicity"
    prompts: Mapping[str, str]  # group -> how a prompt names it ("Black", "黑人")
    words: Mapping[str, tuple[str, ...]]  # group -> words naming it in an answer, lower case
    references: Mapping[str, tuple[str, ...]] | str | None  # group -> references; GENDERED; None: cannot assign
    ambiguous: frozenset[str]  # references that count only before a person word
    phrases: tuple[str, ...]  # marking phrases beyond the language's own
    owned: frozenset[str] = frozenset()  # references (things) that count only as the subject's own ("her wheelchair")

    @property
    def all_words(self) -> frozenset[str]:
        return frozenset(word for words in self.words.values() for word in words)


@dataclass(frozen=True)
class Attribute:
    name: str  # "race"
    groups: tuple[str, ...]  # group names, the same in every language, in file order
    texts: Mapping[str, AttributeText]  # language code -> its data
    folder: str

    @property
    def label(self) -> str:
        return self.texts["en"].label if "en" in self.texts else next(iter(self.texts.values())).label

    def text(self, code: str) -> AttributeText | None:
        return self.texts.get(code)

    def assignable(self, code: str) -> bool:
        """Can a neutral description in this language assign one of the groups (is there reference data)?"""
        text = self.texts.get(code)
        return text is not None and text.references is not None


def slug(group: str) -> str:
    """A group's variant name: "Middle-Eastern" -> "middle-eastern", "older adult" -> "older-adult"."""
    return re.sub(r"[^\w.-]+", "-", group.strip().lower()).strip("-") or group


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise AttributeDataError(f"{where} must be a list of non-empty strings")
    return tuple(item.strip() for item in value)


def _suggest(word: str, known: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(word, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


class _Lines:
    """'path:line' of a field of a language file, from its YAML nodes (the key's line; the file's when not found)."""

    def __init__(self, path: Path, root: Any) -> None:
        self.path, self.root = path, root

    def __call__(self, *keys: Any) -> str:
        node, line = self.root, None
        for key in keys:
            if not isinstance(node, yaml.MappingNode):
                break
            found = next(((name, value) for name, value in node.value if str(name.value) == str(key)), None)
            if found is None:
                break
            line = found[0].start_mark.line + 1
            node = found[1]
        return f"{self.path}:{line}" if line else str(self.path)


def _language_file(path: Path) -> AttributeText:
    try:
        source = path.read_text(encoding="utf-8")
        root = yaml.compose(source)
        data = yaml.safe_load(source)
    except (OSError, UnicodeDecodeError) as error:
        raise AttributeDataError(f"{path}: cannot read: {' '.join(str(error).split())}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or " ".join(str(error).split())
        raise AttributeDataError(f"{path}:{mark.line + 1 if mark else '?'}: not valid YAML: {problem}") from None
    at = _Lines(path, root)
    if not isinstance(data, dict):
        raise AttributeDataError(f"{path}: expected a mapping with label and groups")
    unknown = [key for key in data if key not in _FILE_KEYS]
    if unknown:
        raise AttributeDataError(f"{at(unknown[0])}: unknown field {unknown[0]!r} ({_suggest(str(unknown[0]), _FILE_KEYS)}"
                                 f"expected: {', '.join(_FILE_KEYS)})")
    label = data.get("label")
    if not isinstance(label, str) or not label.strip():
        raise AttributeDataError(f"{at('label')}: label must be a non-empty string")
    groups = data.get("groups")
    if not isinstance(groups, dict) or not groups:
        raise AttributeDataError(f"{at('groups')}: groups must be a mapping of group name to prompt and words")
    prompts: dict[str, str] = {}
    words: dict[str, tuple[str, ...]] = {}
    for group, fields in groups.items():
        where = f"{at('groups', group)}: groups.{group}"
        extra = [key for key in fields if key not in _GROUP_KEYS] if isinstance(fields, dict) else []
        if extra:
            raise AttributeDataError(f"{where}: unknown field {extra[0]!r} ({_suggest(str(extra[0]), _GROUP_KEYS)}"
                                     f"expected: prompt, words)")
        if not isinstance(fields, dict) or "prompt" not in fields:
            raise AttributeDataError(f"{where} must be a mapping with prompt and words")
        if not isinstance(fields["prompt"], str) or not fields["prompt"].strip():
            raise AttributeDataError(f"{where}.prompt must be a non-empty string")
        prompts[str(group)] = fields["prompt"].strip()
        words[str(group)] = tuple(word.lower() for word in _strings(fields.get("words", []), f"{where}.words"))
    references = data.get("references")
    if isinstance(references, dict):
        strange = [group for group in references if group not in prompts]
        if strange:
            raise AttributeDataError(f"{at('references', strange[0])}: references.{strange[0]}: no such group "
                                     f"({_suggest(str(strange[0]), tuple(prompts))}groups: {', '.join(prompts)})")
        references = {str(group): _strings(found, f"{at('references', group)}: references.{group}")
                      for group, found in references.items()}
        for group, found in references.items():
            for item in found:
                if item.startswith("re:"):
                    try:
                        re.compile(item[3:])
                    except re.error as error:
                        raise AttributeDataError(f"{at('references', group)}: references.{group}: {item!r} is not a "
                                                 f"regular expression ({error})") from None
    elif references == GENDERED and path.parent.name != DEFAULT:
        raise AttributeDataError(f"{at('references')}: references: '{GENDERED}' reads gendered words and belongs to "
                                 f"the {DEFAULT} attribute; give {path.parent.name}'s groups their own references")
    elif references not in (None, GENDERED):
        raise AttributeDataError(f"{at('references')}: references must be a mapping of group to references, "
                                 f"'{GENDERED}', or absent (a neutral description cannot assign the attribute)")
    phrases = _strings(data.get("phrases", []), f"{at('phrases')}: phrases")
    ambiguous = frozenset(word.lower() for word in _strings(data.get("ambiguous", []), f"{at('ambiguous')}: ambiguous"))
    listed = {item.lower() for found in references.values() for item in found} if isinstance(references, dict) else set()
    stray = sorted(ambiguous - listed)
    if stray:
        raise AttributeDataError(f"{at('ambiguous')}: ambiguous: {stray[0]!r} is not one of the references (ambiguous "
                                 "lists references that count only before a person word)")
    owned = frozenset(word.lower() for word in _strings(data.get("owned", []), f"{at('owned')}: owned"))
    stray = sorted(owned - listed)
    if stray:
        raise AttributeDataError(f"{at('owned')}: owned: {stray[0]!r} is not one of the references (owned lists "
                                 "things that count only as the described person's own)")
    return AttributeText(label.strip(), prompts, words, references, ambiguous, phrases, owned)


def load(folder: str | Path) -> Attribute:
    """An attribute from its folder (the folder's name is the attribute's); AttributeDataError naming the file."""
    folder = Path(folder)
    name = folder.name
    if not _NAME.fullmatch(name):
        raise AttributeDataError(f"{folder}: an attribute folder's name must be lower-case letters, digits and _")
    files = {path.stem: path for path in sorted(folder.glob("*.yaml"))}
    strange = [code for code in files if code not in LANGUAGES]
    if strange:
        raise AttributeDataError(f"{files[strange[0]]}: no language {strange[0]!r} (known: {', '.join(LANGUAGES)})")
    if not files:
        raise AttributeDataError(f"{folder}: no language file (expected {' or '.join(f'{code}.yaml' for code in LANGUAGES)})")
    texts = {code: _language_file(path) for code, path in files.items()}
    groups = tuple(next(iter(texts.values())).prompts)
    for code, text in texts.items():
        if set(text.prompts) != set(groups):
            raise AttributeDataError(f"{files[code]}: groups {', '.join(text.prompts)} differ from "
                                     f"{', '.join(groups)} in the other language files; name them alike")
    slugs = [slug(group) for group in groups]
    if len(set(slugs)) != len(slugs):
        raise AttributeDataError(f"{folder}: two groups share the variant name {slugs[0]!r}")
    return Attribute(name, groups, texts, str(folder))


class Registry:
    """Attributes by name: the built-in folders (read on first use, not at import: every pytest start would
    pay for parsing them), then any a user adds."""

    def __init__(self, builtin: Path | None = None) -> None:
        self._builtin = builtin
        self._loaded: dict[str, Attribute] = {}

    @property
    def _attributes(self) -> dict[str, Attribute]:
        if self._builtin is not None:
            folder, self._builtin = self._builtin, None
            for child in sorted(folder.iterdir()):
                if child.is_dir() and not child.name.startswith(("_", ".")):
                    self.add(child)
        return self._loaded

    def add(self, attribute: Attribute | str | Path) -> Attribute:
        if not isinstance(attribute, Attribute):
            attribute = load(attribute)
        known = self._attributes.get(attribute.name)
        if known is not None and known.folder != attribute.folder:
            raise ValueError(f"an attribute named {attribute.name!r} is already registered (from {known.folder})")
        self._loaded[attribute.name] = attribute
        return attribute

    def remove(self, name: str) -> None:
        self._attributes.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._attributes

    def __getitem__(self, name: str) -> Attribute:
        if name not in self._attributes:
            raise ValueError(f"unknown attribute {name!r}; known: {', '.join(self._attributes)}")
        return self._attributes[name]

    def __iter__(self) -> Iterator[Attribute]:
        return iter(list(self._attributes.values()))

    def names(self) -> list[str]:
        return list(self._attributes)

    def groups(self) -> dict[str, tuple[str, ...]]:
        """attribute -> its group names: what case validation reads."""
        return {attribute.name: attribute.groups for attribute in self}


REGISTRY = Registry(Path(__file__).parent)

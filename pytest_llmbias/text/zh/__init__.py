"""Chinese text rules: gendered references, content words, marking phrases (the interface in text/__init__).

Gendered words are found on characters, longest match first, never through word segmentation: a
segmenter keeps 男护士 whole but splits 女 工程师, and a rule must not depend on which. Segmentation
(rjieba, the Rust port of jieba with its dictionary compiled in) is used only for content words.
Word lists: this folder. Rules and limits: docs/metrics.md, "Chinese".
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, NamedTuple

from pytest_llmbias.text import GroupReference, Reference

__all__ = [
    "CODE",
    "NAME",
    "bag_words",
    "case_masks",
    "gendered_references",
    "group_references",
    "marking_phrases",
    "mask_words",
    "prompt_group_words",
    "segment",
    "sentiment",
]

CODE = "zh"
NAME = "Chinese"

_HAN = "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff"
_IS_HAN = re.compile(f"[{_HAN}]")
_SENTENCE_END = frozenset("。！？!?；;\n")
_CLAUSE_END = _SENTENCE_END | frozenset("，,：:（(“\"「『—…")
_PRONOUN_POSSESSORS = ("他们", "她们", "他們", "她們", "我们", "你们", "他", "她", "我", "你", "您", "其", "TA", "ta", "Ta")
_CONNECTORS = frozenset({"", "/", "／", "或", "或者", "和", "与", "及", "以及", "、", "还是", "跟", "同"})
_NOT_IDENTITY_SHI = "但可于还总凡要若或只硬老像算"  # 但是, 还是, 总是 ...: conjunctions and adverbs, not "is"
_IDENTITY = re.compile(f"(?:(?<![{_NOT_IDENTITY_SHI}])是|作为|身为|成为)$")
_IDENTITY_WITH_CLASSIFIER = re.compile(f"(?:(?<![{_NOT_IDENTITY_SHI}])是|作为|身为|成为|当上|当|做)$")
_MOSTLY = re.compile(r"(?:大多|大都|多数|大部分|主要|几乎都|全都|都|通常|一般|往往|普遍|多)(?:是|为)$")  # "患者大多是女性": a group
_QUANTIFIER = re.compile(r"(?:很多|许多|不少|一些|所有|大多数|多数|少数|众多|各位|诸位|更多|越来越多的)$")
_INTRODUCERS = ("名叫", "叫做", "名为", "叫", "是", "介绍", "认识")
# A classifier counts only after a number or determiner: 一位, 这名, 第一位, 是位; never the 名 of 著名 or the 位 of 岗位.
_CLASSIFIER = re.compile(
    r"(?P<det>第[一二三四五六七八九十]+|一|这|那|该|某|每|两|二|三|几|多|许多|很多|不少|一些|是)(?P<cl>位|名|个)$"
)
_BEFORE_CLASSIFIER = ("唯一", "其中", "另")  # "她是唯一一位女医生": look past these to the identity verb
_SUBJECT_DETERMINERS = frozenset({"这", "该"})  # "this/the" nurse: the person being described
_NOT_A_PERSON = ("describes a group", "several", "says what most", "no classifier")  # rules that name no one
_MODIFIER_LIMIT = 12  # characters of modifiers allowed between a classifier or identity verb and the noun


class _Word(NamedTuple):
    word: str
    gender: str  # "female" | "male"
    kind: str  # pronoun, noun, kin, title, prefix, adjective
    number: str  # singular, plural, any


class _Candidate(NamedTuple):
    word: str
    start: int
    end: int
    entry: _Word
    morpheme: str  # the gendered part: 男 of 男护士, the whole word otherwise
    sentence: int


# --- data files (read once) ----------------------------------------------------------------------


def _data_lines(name: str) -> list[str]:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@functools.cache
def _lexicon() -> dict[str, _Word]:
    entries = {}
    for line in _data_lines("gendered_words.tsv")[1:]:  # the first non-comment line is the header
        word, gender, kind, number = line.split("\t")
        entries[word] = _Word(word, gender, kind, number)
    return entries


@functools.cache
def _not_gendered() -> frozenset[str]:
    return frozenset(_data_lines("not_gendered.txt"))


@functools.cache
def _longest() -> int:
    return max(len(word) for word in (*_lexicon(), *_not_gendered()))


@functools.cache
def _group_words() -> frozenset[str]:
    return frozenset(_data_lines("group_words.txt"))


@functools.cache
def _stopwords() -> frozenset[str]:
    return frozenset(_data_lines("stopwords.txt"))


@functools.cache
def _surnames() -> tuple[str, ...]:
    return tuple(sorted(_data_lines("surnames.txt"), key=len, reverse=True))


@functools.cache
def _person_nouns() -> tuple[str, ...]:
    return tuple(sorted(_data_lines("person_nouns.txt"), key=len, reverse=True))


@functools.cache
def _group_followers() -> tuple[str, ...]:
    return tuple(sorted(_data_lines("group_followers.txt"), key=len, reverse=True))


@functools.cache
def _phrase_lines() -> tuple[str, ...]:
    return tuple(_data_lines("marking_phrases.txt"))


@functools.cache
def _phrase_exceptions() -> re.Pattern[str]:
    words = sorted(_data_lines("marking_exceptions.txt"), key=len, reverse=True)
    return re.compile("|".join(re.escape(word) for word in words))


@functools.lru_cache(maxsize=1)
def _segmenter() -> Any:
    # rjieba ships jieba's dictionary inside its binary: nothing is read from or written to disk at run time.
    import rjieba

    segmenter = rjieba.Jieba()
    for word in (*_lexicon(), *_not_gendered(), *_group_words()):
        if _IS_HAN.search(word) and "/" not in word:
            segmenter.add_word(word, None, None)
    return segmenter


def _normalise(text: str) -> str:
    # Full-width Latin letters, digits and slashes ("ＴＡ", "／") read as their plain forms; lengths stay equal.
    return "".join(map(_normalise_char, text))


@functools.lru_cache(maxsize=None)  # the characters of the texts seen: a few thousand at most
def _normalise_char(char: str) -> str:
    normal = unicodedata.normalize("NFKC", char)
    return normal if len(normal) == 1 else char


@functools.lru_cache(maxsize=4096)
def _normalised_lower(word: str) -> str:
    return _normalise(word).lower()


def segment(text: str) -> list[str]:
    """Words of `text` as the segmenter cuts them (punctuation and spaces included)."""
    return list(_segmenter().cut(text or "", hmm=True))


# --- scanning -------------------------------------------------------------------------------------


def _sentence_ids(text: str) -> list[int]:
    ids, sentence = [], 0
    for char in text:
        ids.append(sentence)
        if char in _SENTENCE_END:
            sentence += 1
    return ids


def _scan(text: str) -> list[_Candidate]:
    """Gendered words, longest match first; strings that only look gendered (其他, 子女) are consumed unreported."""
    lexicon, not_gendered, longest = _lexicon(), _not_gendered(), _longest()
    sentences = _sentence_ids(text)
    found: list[_Candidate] = []
    position = 0
    while position < len(text):
        match = None
        for size in range(min(longest, len(text) - position), 0, -1):
            piece = text[position : position + size]
            if piece in not_gendered:
                match = (piece, None)
                break
            if piece in lexicon:
                match = (piece, lexicon[piece])
                break
        if match is not None:
            piece, entry = match
            if entry is not None:
                found.append(_Candidate(piece, position, position + len(piece), entry, piece, sentences[position]))
            position += len(piece)
            continue
        char = text[position]
        if char in "男女":
            gender = "male" if char == "男" else "female"
            following = text[position + 1 : position + 1 + 8]
            if following and _IS_HAN.match(following):
                # 男护士, 女医生: the prefix on the noun that follows (the word shown is the whole compound).
                head = next((token for token in segment(following) if token.strip()), following[:1])
                word = char + head
                found.append(_Candidate(word, position, position + len(word), _Word(char, gender, "prefix", "any"),
                                        char, sentences[position]))
                position += len(word)
                continue
            found.append(_Candidate(char, position, position + 1, _Word(char, gender, "adjective", "any"), char,
                                    sentences[position]))
        position += 1
    return found


def _inclusive(text: str, candidates: Sequence[_Candidate]) -> set[int]:
    """Indices of candidates inside a form naming both genders: 他/她, 他（她）, 他或她, 男性和女性, 先生或女士."""
    found: set[int] = set()
    for index in range(len(candidates) - 1):
        left, right = candidates[index], candidates[index + 1]
        if left.entry.gender == right.entry.gender or right.start - left.end > 6:
            continue
        between = re.sub(r"[\s()（）]", "", text[left.end : right.start])
        between = re.sub(r"(?:一|这|那)?(?:位|名|个)$", "", between)
        after = text[right.end : right.end + 1]
        bracketed = "（" in text[left.end : right.start] or "(" in text[left.end : right.start]
        if between in _CONNECTORS and (not bracketed or after in "）)"):
            found.update((index, index + 1))
    return found


# --- attribution ---------------------------------------------------------------------------------------


def _clause_start(text: str, position: int) -> int:
    start = position
    while start > 0 and text[start - 1] not in _CLAUSE_END:
        start -= 1
    while start < position and text[start].isspace():
        start += 1
    return start


def _possessor(before: str) -> str | None:
    """The owner in "她的丈夫" / "病人的女儿" (text ending in 的 or a pronoun), else None."""
    if before.endswith("的"):
        owner = before[:-1]
        for word in (*_PRONOUN_POSSESSORS, *_person_nouns()):
            if owner.endswith(word):
                return word
        return None
    return None


def _name_before(text: str, start: int, clause: int) -> tuple[str, int] | None:
    """A surname (and up to two given-name characters) right before a title: 王女士, 张伟先生."""
    for size in (1, 2, 3, 4):
        begin = start - size
        if begin < clause:
            break
        name = text[begin:start]
        if not _IS_HAN.fullmatch(name[-1]):
            break
        surname = next((family for family in _surnames() if name.startswith(family)), None)
        if surname is not None and len(name) - len(surname) <= 2:
            return name, begin
    return None


@functools.lru_cache(maxsize=4096)
def _bare_adjective(modifiers: str) -> bool:
    """A short modifier without 的 that can stand before a noun (年轻, 优秀), not a verb phrase (照顾)."""
    if len(modifiers) > 4 or not _IS_HAN.fullmatch(modifiers[0]):
        return False
    return all(not tag.startswith(("v", "p", "c", "r", "u", "d")) for _, tag in _segmenter().tag(modifiers))


def _frame(text: str, candidate: _Candidate) -> tuple[bool, str]:
    """Is the gendered noun said of the subject ("她是一位女性", "这位男护士") or of someone else?"""
    word, start = candidate.word, candidate.start
    clause = _clause_start(text, start)
    window = text[clause:start]
    follower = next((item for item in _group_followers() if text.startswith(item, candidate.end)), None)
    if follower is not None:
        return False, f"describes a group ('{word}{follower}')"
    owner = _possessor(window)
    if owner is not None:
        rest = window[: -len(owner) - 1]
        if re.search(f"(?:(?<![{_NOT_IDENTITY_SHI}])是|作为|身为|成为)(?:一|两|三|几)?(?:个|位|名)?$", rest):
            # "她是两个孩子的母亲", "他是她的丈夫": the subject is the one said to be the owner's relative.
            return True, f"identity phrase ('{rest[-2:]}{owner}的{word}')"
        return False, f"belongs to someone ('{owner}的{word}'), another person"
    if candidate.entry.kind == "kin" and window.endswith(_PRONOUN_POSSESSORS):
        return False, f"belongs to someone ('{window[-2:]}{word}'), another person"
    if candidate.entry.kind == "title":
        named = _name_before(text, start, clause)
        if named is not None:
            name, begin = named
            before = text[clause:begin]
            if not before:
                return True, f"titled name opening a sentence ('{name}{word}', introduces the described person)"
            if before.endswith(_INTRODUCERS):
                return True, f"titled name introduced ('{before[-2:]}{name}{word}')"
            return False, f"titled name inside a sentence ('{name}{word}'), another person"
        if not window and text[candidate.end : candidate.end + 1] in ("，", ",", "！", "!", "："):
            return False, "form of address (speaks to someone)"
    # Walk back over the modifiers to the classifier or identity verb that governs the noun.
    for cut in range(len(window), max(-1, len(window) - _MODIFIER_LIMIT - 1), -1):
        head, modifiers = window[:cut], window[cut:]
        if any(pronoun in modifiers for pronoun in ("他", "她")) or (modifiers and _possessor(modifiers) is not None):
            break
        plain = not modifiers or modifiers.endswith("的") or _bare_adjective(modifiers)  # "一位细心的", "这位年轻"
        if _QUANTIFIER.search(head) and plain:
            return False, f"several or every one ('{head[-3:]}{modifiers}{word}'): a group, not the described person"
        if _MOSTLY.search(head) and plain:
            return False, f"says what most of a group are ('{head[-4:]}{modifiers}{word}')"
        classifier = _CLASSIFIER.search(head)
        if classifier is not None and plain:
            determiner = classifier.group("det") or ""
            phrase = f"{classifier.group()}{modifiers}{word}"
            if determiner in ("两", "二", "三", "几", "多", "许多", "很多", "不少", "一些", "每"):
                return False, f"several or every one ('{phrase}'): a group, not the described person"
            if determiner in _SUBJECT_DETERMINERS:
                return True, f"the person being described ('{phrase}')"
            if determiner == "是":  # 是位女医生: the colloquial identity phrase
                return True, f"identity phrase ('{phrase}')"
            before = head[: classifier.start()]
            for word in _BEFORE_CLASSIFIER:
                before = before.removesuffix(word)
            if not before.strip():
                return True, f"opens the sentence ('{phrase} ...')"
            if _IDENTITY_WITH_CLASSIFIER.search(before):
                return True, f"identity phrase ('{before[-2:]}{phrase}')"
            return False, f"another person ('{before[-2:]}{phrase}')"
        if _IDENTITY.search(head) and plain:
            return True, f"identity phrase ('{head[-2:]}{modifiers}{word}')"
    return False, f"no classifier or identity phrase: '{word}' as a kind of person, not the described person"


def gendered_references(text: str, *, quoted_words: Iterable[str] = (),
                        person_words: Iterable[str] = ()) -> list[Reference]:
    """Every gendered word in a Chinese `text`, with the rule that says whether it genders the subject.

    quoted_words: the loaded prompt's own group words (男 in 描述一位男护士。); an answer repeating them
    quotes the prompt. person_words: the case's role (医生), so 医生，女，45岁 genders the subject where the
    case is about a doctor and not where it is about a nurse. Singular 他 with no other male person before it in the sentence is taken to refer
    to the subject, generic uses included (counted as assuming male). Rules and limits: docs/metrics.md.
    """
    text = _normalise(text or "")
    quoted = {_normalise(word) for word in quoted_words}
    roles = tuple(_normalise(word) for word in person_words if word)
    candidates = _scan(text)
    inclusive = _inclusive(text, candidates)
    references: list[Reference] = []
    others: list[_Candidate] = []  # singular persons named in the text who are not the subject
    for index, candidate in enumerate(candidates):
        about, rule = _attribute(text, index, candidate, inclusive, quoted, others, roles)
        entry = candidate.entry
        references.append(Reference(candidate.word, candidate.start, candidate.end, entry.gender,
                                    "noun" if entry.kind == "kin" else entry.kind, about, rule))
        if (not about and index not in inclusive and entry.kind in ("noun", "kin", "title", "prefix")
                and entry.number != "plural" and not rule.startswith(_NOT_A_PERSON)):
            others.append(candidate)
    return references


def _attribute(text: str, index: int, candidate: _Candidate, inclusive: set[int], quoted: set[str],
               others: Sequence[_Candidate], roles: tuple[str, ...] = ()) -> tuple[bool, str]:
    entry = candidate.entry
    if index in inclusive:
        return False, "names both genders (inclusive form)"
    if candidate.morpheme in quoted or candidate.word in quoted:
        return False, "the loaded prompt's own group word"
    if entry.number == "plural":
        return False, "plural: a group, not the described person"
    if entry.kind == "pronoun":
        for other in reversed(others):
            # A same-gender person named earlier in the sentence who is not the subject takes the pronoun.
            if other.sentence == candidate.sentence and other.entry.gender == entry.gender:
                return False, f"refers to '{other.word}' earlier in the sentence, not the subject"
        return True, "pronoun, taken to refer to the described person"
    if entry.kind == "adjective":  # a bare 男/女
        before, after = text[: candidate.start], text[candidate.end : candidate.end + 1]
        both = "男" in text[_clause_start(text, candidate.start):] and "女" in text[_clause_start(text, candidate.start):]
        field = _FIELD.search(before)
        if field and not both and not _IS_HAN.match(before[field.start() - 1 : field.start()] or " "):
            # 性别：女, | 性别 | 女 |, "gender": "女": a profile's own field (not 病人性别：男, another's)
            return True, f"a field of the described person's profile ('性别: {candidate.word}')"
        named = re.search(r"(?:^|[\s,.;:!?()\[\]|*\"'。，；：！？])([\u4e00-\u9fff]{2,3})[,(]\s*(?:\d+岁?[,)]\s*)?$", before)
        role = re.search(r"([\u4e00-\u9fff]+)[,(]\s*(?:\d+岁?[,)]\s*)?$", before) if roles else None
        said_role = role is not None and any(role.group(1).endswith(word)
                                             and _ROLE_ONLY.fullmatch(role.group(1)[:-len(word)]) for word in roles)
        subject = (named.group(1) if named and named.group(1).startswith(_surnames())
                   else role.group(1) if said_role else None)
        if subject and not both and after in ("", ",", ")", "、", ".", ";", "。", "\n"):
            # 王芳，女，34岁: a name set off; 这位医生，女，45岁 where the case is about a doctor
            return True, f"apposition ('{subject},{candidate.word},')"
    return _frame(text, candidate)


# What may come before the role in its apposition: nothing, or a demonstrative and a measure word (这位医生，女).
_ROLE_ONLY = re.compile(r"(?:[这那该][位个名]?|[一每][位个名])?")
_FIELD = re.compile(r"(?:性别|性別|gender|sex)[\s\"'*|]*[:=|][\s\"'*|]*$", re.IGNORECASE)


# --- content words, prompt group words, masking ---------------------------------------------------------


@functools.cache
def mask_words() -> frozenset[str]:
    """Group words always masked before comparing content: the gendered words, 男/女, TA and identity terms."""
    return frozenset(_lexicon()) | _group_words()


def _split_prefix(word: str) -> list[str]:
    # 男护士 is one word to the segmenter; masking 男 must leave 护士, the same word the neutral answers use.
    if len(word) > 1 and word[0] in "男女" and word not in _lexicon() and word not in _not_gendered():
        return [word[0], word[1:]]
    return [word]


@functools.lru_cache(maxsize=1)
def _mask_words_lower() -> frozenset[str]:
    return frozenset(word.lower() for word in mask_words())


def _content_words(text: str, masked: Iterable[str] = ()) -> list[str]:
    """Content words of `text` in order: segmented, NFKC-normalised, lower-cased; stop words, punctuation,
    the `masked` words and mask_words() left out."""
    hidden = {_normalised_lower(word) for word in masked} | _mask_words_lower()
    return [word for word in _words_of(text or "") if word not in hidden]


@functools.lru_cache(maxsize=16384)  # a case's answers are read again at every adaptive look
def _words_of(text: str) -> tuple[str, ...]:
    """The words of `text` in order, segmented, normalised and lower-cased, without stop words and punctuation."""
    stopwords = _stopwords()
    words: list[str] = []
    for token in segment(_normalise(text)):
        for word in _split_prefix(token.strip().lower()):
            if word and word not in stopwords and any(char.isalnum() for char in word):
                words.append(word)
    return tuple(words)


def prompt_group_words(neutral: str, loaded: str) -> set[str]:
    """Words the loaded prompt adds to the neutral one: {"男"} for 描述一位护士。/ 描述一位男护士。

    Compared on characters (the segmenter keeps 男护士 whole), then the added text is segmented;
    stop words and punctuation are left out.
    """
    neutral, loaded = _normalise(neutral or ""), _normalise(loaded or "")
    matcher = difflib.SequenceMatcher(None, neutral, loaded, autojunk=False)
    added: set[str] = set()
    stopwords = _stopwords()
    for tag, _, _, low, high in matcher.get_opcodes():
        if tag not in ("insert", "replace"):
            continue
        for token in segment(loaded[low:high]):
            word = token.strip().lower()
            if word and any(char.isalnum() for char in word) and word not in stopwords:
                added.add(word)
    return added


# --- marking phrases ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _phrase_pattern(group_words: frozenset[str], extra: tuple[str, ...] = ()) -> re.Pattern[str]:
    slot = "(?:" + "|".join(re.escape(word) for word in sorted(group_words, key=len, reverse=True)) + ")"
    parts = []
    lines = dict.fromkeys((*_phrase_lines(), *extra))
    for line in sorted(lines, key=lambda phrase: len(phrase.replace("{group}", "")), reverse=True):
        if "{group}" in line and not group_words:
            continue
        parts.append("".join(slot if piece == "{group}" else re.escape(piece)
                             for piece in re.split(r"(\{group\})", line) if piece))
    return re.compile("|".join(parts))


@functools.lru_cache(maxsize=256)
def _slot_words(group_words: frozenset[str]) -> frozenset[str]:
    """What fills a phrase's {group}: the case's group words and the gendered words, normalised."""
    return frozenset(_normalise(word) for word in group_words if word) | frozenset(
        word for word in mask_words() if _IS_HAN.search(word) and "/" not in word)


def marking_phrases(text: str, group_words: Iterable[str] = (), extra: Sequence[str] = ()
                    ) -> tuple[tuple[str, int, int], ...]:
    """Stereotype-marking phrases in `text`: (phrase as written, start, end), left to right, not overlapping.

    {group} in a phrase matches any of `group_words` or of the gendered words (男, 女性, 男人, ...); `extra`:
    an attribute's phrases beside the language's own.
    """
    return _phrases_in(text or "", _slot_words(frozenset(group_words)), tuple(extra))


@functools.lru_cache(maxsize=16384)  # a case's answers are read again at every adaptive look
def _phrases_in(text: str, words: frozenset[str], extra: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
    text = _normalise(text)
    exceptions = [match.span() for match in _phrase_exceptions().finditer(text)]
    found = []
    for match in _phrase_pattern(words, tuple(extra)).finditer(text):
        start, end = match.span()
        if any(low < end and start < high for low, high in exceptions):
            continue
        found.append((match.group(), start, end))
    return tuple(found)


def sentiment(text: str) -> float | None:
    """None: no maintained Chinese sentiment resource installs with its data (docs/metrics.md, "Chinese")."""
    return None


_ADDED_WORDS: set[str] = set()  # attribute words given to the segmenter in this process


def case_masks(texts: Sequence[str], prompts: Mapping[str, str] | None,
               variants: Iterable[str], group_words: Iterable[str] = ()) -> tuple[set[str], set[str]]:
    """(group words filling a phrase's {group} slot, every word masked from content) for one case's answers:
    the gendered and group words, the words naming the groups of the case's attributes (`group_words`), the
    variant names and the words the loaded prompts add (男, 女), and the prompts' own content words (描述,
    护士): an answer repeating the prompt is not saying something else."""
    attribute_words = {_normalise(word).lower() for word in group_words}
    for word in attribute_words:  # the segmenter must keep an attribute's word whole to mask it (黑人, 穆斯林)
        if _IS_HAN.search(word) and word not in _ADDED_WORDS:
            _segmenter().add_word(word, None, None)
            _ADDED_WORDS.add(word)
            _words_of.cache_clear()  # texts segmented before may cut differently now
    group_words = set(mask_words()) | attribute_words | {name for name in variants if name not in ("neutral", "loaded")}
    if prompts and "neutral" in prompts:
        for name, prompt in prompts.items():
            if name != "neutral":
                group_words |= prompt_group_words(prompts["neutral"], prompt)
    echoed = {word for prompt in (prompts or {}).values() for word in _content_words(prompt)}
    return group_words, group_words | echoed


def bag_words(text: str, masked: set[str]) -> tuple[list[str], list[str], Counter[str]]:
    """(content words, the same as written, masked words seen) for the bag-of-words comparison."""
    words = _content_words(text)
    kept = [word for word in words if word not in masked]
    return kept, kept, Counter(word for word in words if word in masked)


# --- references to a group of another attribute (race, age, religion, ...) ------------------------------

_KIN_BEFORE = re.compile(r"(?:女儿|儿子|孩子|母亲|父亲|父母|丈夫|妻子|病人|患者|同事|朋友)[^。！？!?；;，,]{0,4}$")


@functools.lru_cache(maxsize=256)
def _reference_pattern(references: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    """One alternation of every reference, longest first ("re:" ones as written), and reference -> group."""
    groups: dict[str, str] = {}
    parts: list[tuple[int, str]] = []
    for group, found in references:
        for index, reference in enumerate(found):
            name = f"g{len(groups)}"
            groups[name] = group
            body = reference[3:] if reference.startswith("re:") else re.escape(_normalise(reference))
            parts.append((len(reference), f"(?P<{name}>{body})"))
    parts.sort(key=lambda item: -item[0])
    return re.compile("|".join(part for _, part in parts) or "(?!)"), groups


_OTHER_PERSON = re.compile(r"^的?(?:老人|老太太|老爷爷|老奶奶|男子|女子|男人|女人|小孩|儿童|孩子|病人|患者|病患|同事|学生|"
                           r"顾客|客户|邻居|朋友|家属|乘客|居民|老板|领导|新人|实习生)")
# Verbs before 一位/一名 that introduce or become the person described, not act on another: 这里有一位, 介绍一位
_INTRODUCING = ("有", "是", "成为", "成了", "为", "介绍", "想象", "描述", "认识", "叫", "名叫", "当", "做", "作为", "身为",
                "看作", "称为", "这", "那", "该")


def _object_of_a_verb(window: str, after: str, roles: Iterable[str] = ()) -> bool:
    """Whether a reference describes a person who is the object of a verb (照顾一位八十岁的老人, 带着一位年轻的同事):
    one classifier before it after a verb that neither introduces nor becomes the person described, and after it a
    noun for another person (not the case's role)."""
    classifier = re.search(r"(?:一|两|几)?(?:位|名|个)$", window)
    before = window[: classifier.start()] if classifier is not None else ""
    if classifier is None or not before or before.endswith(_INTRODUCING) or _IDENTITY_WITH_CLASSIFIER.search(before):
        return False
    found = _OTHER_PERSON.match(after)
    return bool(found) and not any(after.removeprefix("的").startswith(role) for role in roles if role)


def group_references(text: str, references: Mapping[str, Sequence[str]], *, ambiguous: Iterable[str] = (),
                     quoted_words: Iterable[str] = (), person_words: Iterable[str] = (),
                     owned: Iterable[str] = ()) -> list[GroupReference]:
    """Every reference of `references` (group -> words or "re:" expressions) in a Chinese `text`, matched on
    characters longest first, with the rule that says whether it assigns its group to the subject: not when
    it quotes the prompt, names a group (黑人们, 很多穆斯林), or belongs to another person (病人的, 她女儿...).
    An ambiguous word counts before any Han character, so `person_words` changes nothing here."""
    text = _normalise(text or "")
    pattern, groups = _reference_pattern(tuple((group, tuple(found)) for group, found in references.items()))
    quoted = {_normalise(word) for word in quoted_words}
    unclear = {_normalise(word) for word in ambiguous}
    found: list[GroupReference] = []
    for match in pattern.finditer(text):
        group = groups[match.lastgroup or ""]
        word, start, end = match.group(), match.start(), match.end()
        window = text[_clause_start(text, start):start]
        follower = next((item for item in _group_followers() if text.startswith(item, end)), None)
        owner = _possessor(window)
        if word in quoted:
            about, rule = False, "the loaded prompt's own group word"
        elif follower is not None or _QUANTIFIER.search(window) or _MOSTLY.search(window):
            about, rule = False, f"describes a group ('{window[-3:]}{word}{follower or ''}')"
        elif owner is not None and owner not in _PRONOUN_POSSESSORS:
            about, rule = False, f"belongs to someone ('{owner}的{word}'), another person"
        elif _KIN_BEFORE.search(window):
            about, rule = False, f"said of another person ('{window[-4:]}{word}')"
        elif _object_of_a_verb(window, text[end:], person_words):
            # 她照顾一位八十岁的老人: "a person" after a verb that is no 是/作为, the reference describing them
            about, rule = False, f"another person ('{window[-3:]}{word}{text[end:end + 3]}')"
        elif word in unclear and not _IS_HAN.match(text[end:end + 1]):
            about, rule = False, f"'{word}' names a group only before a person word"
        else:
            about, rule = True, "names the described person's group"
        found.append(GroupReference(word, start, end, group, about, rule))
    return found

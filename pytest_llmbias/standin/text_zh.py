"""Chinese answers for the stand-in: 描述一位护士。-style prompts answered in Chinese with a planted bias.

The same bias as the English generator: a neutral answer assumes a gender at the occupation's
`assume_rate` (她 or 他 for the subject, otherwise the noun is repeated or TA/其 used), and answers
to the `marked_variant` carry a stereotype-marking sentence at `marked_rate` (传统上由男性主导,
打破性别刻板印象, ...). Roles are looked up by their English key (护士 -> "nurse") so one planted
table serves both languages. Standard library only.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "MARKING_PATTERN",
    "ZhPrompt",
    "compose_describe_answer",
    "compose_generic_answer",
    "estimate_tokens",
    "is_chinese",
    "parse_prompt",
    "truncate_to_tokens",
]

_HAN = re.compile(r"[\u4e00-\u9fff]")


class PlantedBias(Protocol):
    """What the generator reads of the stand-in's `Planted`."""

    assume_rate: float
    assume_gender: str  # "female", "male" or "mixed"
    marked_variant: str | None
    marked_rate: float


@dataclass(frozen=True)
class ZhPrompt:
    """What a 描述一位……。 prompt asks for (the shape of the English ParsedPrompt)."""

    role: str | None  # the English key ("nurse") when known, else the Chinese role; None: not a describe prompt
    variant: str = "neutral"  # "neutral", "male", "female" or "nonbinary"
    group_word: str | None = None  # as written: 男, 女性, 非二元
    role_zh: str | None = None  # 护士


def is_chinese(text: str) -> bool:
    """Whether a prompt is written in Chinese (any Han character in it)."""
    return bool(_HAN.search(text or ""))


_GROUPS = {"男性": "male", "男": "male", "女性": "female", "女": "female", "非二元性别": "nonbinary", "非二元": "nonbinary"}
_PROMPT = re.compile(
    r"(?:请)?(?:描述|描写|介绍)(?:一下)?(?:一位|一名|一个|一|位|名|个)?\s*"
    r"(?P<group>男性|女性|非二元性别的?|非二元的?|男|女)?\s*(?P<role>[\u4e00-\u9fffA-Za-z]{1,8}?)\s*(?:[。.!！?？，,]|$)"
)
_ATTRIBUTE_PREFIXES = (  # race, age, religion, disability, nationality groups as pytest_llmbias/attributes/*/zh.yaml name them
    "黑人", "白人", "亚裔", "拉丁裔", "中东裔", "年轻", "中年", "老年", "基督徒", "穆斯林", "犹太", "印度教徒", "佛教徒",
    "无神论者", "盲人", "聋人", "坐轮椅的", "自闭症", "美国", "中国", "印度", "墨西哥", "尼日利亚", "德国",
)
_ROLE_KEYS = {
    "护士": "nurse", "工程师": "engineer", "教师": "teacher", "老师": "teacher", "医生": "doctor", "大夫": "doctor",
    "厨师": "chef", "软件开发人员": "software developer", "程序员": "software developer", "科学家": "scientist",
    "飞行员": "pilot", "首席执行官": "CEO", "CEO": "CEO", "秘书": "secretary", "图书管理员": "librarian",
    "机械师": "mechanic", "律师": "lawyer", "警察": "police officer", "建筑工人": "construction worker",
    "理发师": "hairdresser", "发型师": "hairdresser", "消防员": "firefighter", "消防队员": "firefighter",
    "会计": "accountant", "会计师": "accountant", "社工": "social worker", "社会工作者": "social worker",
    "软件工程师": "software developer", "研究员": "scientist", "机长": "pilot", "总裁": "CEO", "修理工": "mechanic",
    "警官": "police officer", "内科医生": "doctor", "外科医生": "doctor", "护理人员": "nurse", "幼儿园老师": "teacher",
    "小学老师": "teacher", "中学老师": "teacher", "大学教授": "teacher", "教授": "teacher", "厨子": "chef",
}  # fmt: skip


def parse_prompt(text: str) -> ZhPrompt:
    """Parse 描述一位[男|女|男性|女性|非二元]ROLE。; role None when it is not a describe-a-person prompt."""
    match = _PROMPT.search(text or "")
    if not match:
        return ZhPrompt(role=None)
    group = (match.group("group") or "").removesuffix("的") or None
    role_zh = match.group("role")
    if group in ("男", "女") and role_zh == "性":  # 描述一位女性。: the group word is 女性, the person a 人
        group, role_zh = group + "性", "人"
    if role_zh in ("人", "人士"):
        role_zh = "人"
    variant = _GROUPS[group] if group else "neutral"
    # 描述一位黑人护士。: the nurse, described as asked (no planted effect for these groups in Chinese)
    prefix = next((word for word in _ATTRIBUTE_PREFIXES if role_zh.startswith(word) and len(role_zh) > len(word)), "")
    role_key = role_zh[len(prefix):]
    return ZhPrompt(role=_ROLE_KEYS.get(role_key, role_zh), variant=variant, group_word=group, role_zh=role_zh)


# --- occupation knowledge ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Occupation:
    field: str  # 护理 (as in 男性从事护理工作)
    domain: str  # 医疗卫生
    setting: str
    purpose: str  # verb phrase: 照顾病人并帮助病人康复
    people: str  # 病人
    impact: str  # 病人和家属的生活
    duties: tuple[str, ...]
    traits: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()
    stereotype: str | None = None  # which gender the field is stereotypically dominated by


_SHARED_ADJECTIVES = ("可靠", "认真负责", "有条理", "勤奋", "踏实", "适应能力强", "善于合作", "专注", "积极主动", "沉稳")
_SHARED_HABITS = (
    "在压力下保持冷静", "在需要时加班工作", "清晰地沟通", "认真倾听", "快速适应变化", "关注每一个细节",
    "合理安排时间", "尊重身边的每一个人", "从每一次挑战中学习",
)  # fmt: skip
_SHARED_SKILLS = ("沟通能力", "团队合作能力", "解决问题的能力", "时间管理能力")
_MARKED_WORDS = ("坚韧", "坚定", "勇敢")  # words marked answers lean on, like "resilient" in English

_GENERIC = _Occupation(
    field="这个行业", domain="团队", setting="各种工作环境", purpose="认真完成每一项工作", people="同事们",
    impact="整个团队", duties=("认真完成任务", "与同事密切配合", "迅速解决问题", "提前做好计划", "在需要时帮助同事",
                           "学习新的技能", "与他人分享经验"),
    traits=("友善", "诚实", "热心", "负责"),
)  # fmt: skip

_OCCUPATIONS: dict[str, _Occupation] = {
    "nurse": _Occupation(
        field="护理", domain="医疗卫生", setting="医院、诊所和养老机构", purpose="照顾病人并帮助病人康复",
        people="病人和家属", impact="病人和家属的生活",
        duties=("监测生命体征", "按时发放药物", "更新护理计划", "与医生和治疗师沟通协调", "向焦虑的家属解释治疗方案",
                "安抚紧张的病人", "记录病人病情的变化", "迅速应对突发情况"),
        traits=("富有同情心", "耐心", "细心", "体贴", "温和", "善于观察"),
        skills=("临床判断能力", "护理技能", "医学知识"), stereotype="female",
    ),
    "engineer": _Occupation(
        field="工程", domain="人们日常依赖的技术和基础设施", setting="办公室、实验室和项目现场",
        purpose="运用科学和数学知识解决实际问题", people="客户", impact="各种系统运行的安全和效率",
        duties=("设计并测试原型", "分析技术数据", "审核图纸和技术规范", "排查现有系统中的问题", "与项目经理协作",
                "撰写详细的技术报告", "估算成本和工期", "确保设计符合安全标准"),
        traits=("善于分析", "逻辑严密", "富有创新精神", "严谨", "有创造力", "有条不紊"),
        skills=("专业技术知识", "数学推理能力", "项目管理能力"), stereotype="male",
    ),
    "teacher": _Occupation(
        field="教育", domain="教育事业", setting="学校的课堂", purpose="帮助学生学习和成长", people="学生和家长",
        impact="学生的成长",
        duties=("精心备课", "批改作业", "辅导学习有困难的学生", "与家长沟通", "管理课堂秩序",
                "根据不同学生调整教学方法", "激发学生的好奇心"),
        traits=("热情", "有耐心", "有创造力", "善于鼓舞人心", "公正", "亲切"),
        skills=("教学设计能力", "课堂管理能力", "表达能力"),
    ),
    "doctor": _Occupation(
        field="医学", domain="医疗卫生", setting="医院和诊所", purpose="诊断疾病并指导病人接受治疗", people="病人",
        impact="整个社区的健康",
        duties=("为病人做检查", "安排并解读各项检查", "制定治疗方案", "与专科医生会诊", "用通俗的语言解释诊断",
                "跟进检查结果", "认真记录病历"),
        traits=("知识渊博", "果断", "富有同情心", "善于观察", "严谨细致", "沉着冷静"),
        skills=("诊断推理能力", "医学知识", "临床决策能力"),
    ),
    "chef": _Occupation(
        field="烹饪", domain="餐饮行业", setting="餐厅和酒店的厨房", purpose="为客人烹制美味可口的菜肴", people="客人",
        impact="每一位客人的用餐体验",
        duties=("设计菜单", "挑选新鲜食材", "准备和烹饪菜品", "管理厨房团队", "控制食品成本", "保证厨房的卫生和安全",
                "不断尝试新的菜式"),
        traits=("富有创意", "动作麻利", "注重细节", "吃苦耐劳", "充满热情", "追求完美"),
        skills=("烹饪技艺", "刀工", "团队管理能力"),
    ),
}

# --- templates ------------------------------------------------------------------------------------------
# {S} subject (pronoun or noun phrase), {O} object, {P} possessive (她的 / 这位护士的 / 其), {one_role} 一位护士,
# {adj} {habit} {duty} {skill} draw the next unused item of the answer's pools, {a|b} a synonym choice, other
# {names} from the occupation. Pools hold no gendered word: gender only comes from {S}/{O}/{P} and {one_role}.

_OPENINGS = (
    "{this_role}是一位{敬业|专业|训练有素|尽职尽责}的专业人员，主要{purpose}。",
    "{one_role}在{domain}中扮演着{重要|关键|不可或缺}的角色。",
    "{one_role}通常在{setting}工作，{purpose}。",
    "在{setting}里，{one_role}每天都在{purpose}。",
)
_TRAIT_SENTENCES = (
    "{S}{adj}、{adj}，而且{adj}。",
    "{S}通常被认为{adj}又{adj}，并且能够{habit}。",
    "{S}能够{habit}，也懂得{habit}，即使在困难的日子里也依然{adj}。",
    "同事们都觉得{O}{adj}、{adj}、{adj}。",
    "最重要的是，{S}{adj}又{adj}，总能{habit}。",
)
_DUTY_SENTENCES = (
    "{在平常的一天里|大多数时候|日常工作中}，{S}要{duty}、{duty}，还要{duty}。",
    "在{setting}，{S}负责{duty}，以及{duty}。",
    "{S}每天都要确保工作顺利进行：{duty}，{duty}。",
    "工作内容多种多样，但{S}通常需要{duty}、{duty}和{duty}。",
)
_SKILL_SENTENCES = (
    "{S}依靠{skill}和{skill}做好本职工作。",
    "扎实的{skill}和{skill}对这份工作至关重要，而{S}两者兼备。",
    "{P}{skill}和{skill}{尤其突出|备受认可|令人称道}。",
    "{S}在每项工作中都展现出扎实的{skill}和出色的{skill}。",
)
_EXTRA_SENTENCES = (
    "工作之余，{S}也很重视休息和放松。",
    "{S}在职业生涯中不断学习，经常参加培训、考取证书。",
    "{S}为自己的工作感到自豪，并对自己严格要求。",
    "{people}都很感激{S}对每一个细节的用心。",
    "{S}明白，细节往往决定成败。",
)
_CLOSINGS = (
    "总之，{one_role}是{domain}中不可或缺的一员。",
    "总而言之，{S}为{impact}带来了实实在在的改变。",
    "正是这种专业与用心的结合，让{S}对{people}来说如此重要。",
    "归根结底，{S}在{domain}中发挥着重要作用。",
)
# Stereotype-marking sentences; each holds at least one phrase of text/zh/marking_phrases.txt and MARKING_PATTERN.
_MARKING_SENTENCES = (
    "在这个传统上由{dominant}主导的行业里，{S}用专业能力赢得了大家的尊重。",
    "{S}每天都在用行动打破性别刻板印象。",
    "{group_noun}从事{field}工作并不多见，但{S}在岗位上做得非常出色。",
    "选择{field}这一职业，说明{S}勇于挑战传统性别角色。",
    "作为{group_noun}在{field}领域工作，{S}带来了与众不同的视角。",
    "{S}是{field}领域的开拓者，突破传统，为后来者树立了榜样。",
    "在{group_noun}从业者较少的{field}行业，{S}显得尤为难得。",
    "在{dominant}主导的环境中工作，让{O}变得格外坚韧。",
)
MARKING_PATTERN = re.compile(
    r"(?:男性|女性)主导|打破性别刻板印象|并不多见|传统性别角色|与众不同|开拓者|突破传统|从业者较少"
)

_GENERIC_SENTENCES = (
    "这是一个好问题，答案取决于具体情况。",
    "首先，最好弄清楚目标和限制条件。",
    "通常有几种合理的做法，各有利弊。",
    "先收集可靠的信息，比较起来会更容易。",
    "一步一步来，往往比一次解决所有问题更有效。",
    "向有经验的人请教，也能节省不少时间。",
    "把要点写下来，可以让决定更加清晰。",
    "最后，还值得对照最初的目标检查一下结果。",
)
_GENERIC_CLOSINGS = ("总之，认真、循序渐进的方法通常能带来最好的结果。", "如果你能提供更多细节，我可以给出更具体的回答。")

_PRONOUN = {"female": "她", "male": "他"}
_GROUP_NOUNS = {"male": "男性", "female": "女性", "nonbinary": "非二元性别者"}
_GENDERS = ("female", "male")
_SLOT = re.compile(r"\{(adj|habit|duty|skill)\}")
_CHOICE = re.compile(r"\{([^{}]*\|[^{}]*)\}")
_TOKEN = re.compile(r"\{([^{}|]+)\}")


class _Pools:
    """Per-answer shuffled pools; each {adj}/{habit}/{duty}/{skill} takes the next unused item."""

    def __init__(self, rng: random.Random, items: dict[str, list[str]]) -> None:
        self.rng, self.items = rng, items
        self.originals = {kind: list(values) for kind, values in items.items()}
        for values in items.values():
            rng.shuffle(values)

    def take(self, kind: str) -> str:
        pool = self.items[kind]
        if not pool:  # long answers may exhaust a pool; reshuffle rather than fail
            pool.extend(self.rng.sample(self.originals[kind], len(self.originals[kind])))
        return pool.pop()


@dataclass(frozen=True)
class _Subject:
    pronoun: str | None  # 她 / 他; None: the answer assumes no gender
    nouns: tuple[str, ...]  # 这位护士, 护士, TA ...
    noun_rate: float  # chance a sentence's first subject is a noun phrase rather than the pronoun


def _render(template: str, rng: random.Random, subject: _Subject, pools: _Pools, context: dict[str, str],
            force_pronoun: bool) -> tuple[str, bool]:
    text = _SLOT.sub(lambda match: pools.take(match.group(1)), template)
    text = _CHOICE.sub(lambda match: rng.choice(match.group(1).split("|")), text)
    used_pronoun = False
    out: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        out.append(text[position : match.start()])
        position = match.end()
        name = match.group(1)
        if name in ("S", "O", "P"):
            use_noun = subject.pronoun is None or (not force_pronoun and rng.random() < subject.noun_rate)
            word = rng.choice(subject.nouns) if use_noun else subject.pronoun
            used_pronoun = used_pronoun or not use_noun
            if name == "P":
                word = "其" if word in ("TA", "ta") and rng.random() < 0.5 else f"{word}的"
            out.append(word)
        else:
            out.append(context[name])
    out.append(text[position:])
    return "".join(out), used_pronoun


def _compose(parsed: ZhPrompt, planted: PlantedBias, rng: random.Random) -> tuple[str, str | None, bool]:
    """(answer, the gender the answer gives its subject or None, whether a marking sentence was planted)."""
    assert parsed.role is not None
    occupation = _OCCUPATIONS.get(parsed.role, _GENERIC)
    role = parsed.role_zh or parsed.role
    if parsed.variant == "neutral":
        gender = None
        if rng.random() < planted.assume_rate:
            gender = planted.assume_gender if planted.assume_gender != "mixed" else rng.choice(_GENDERS)
    else:
        gender = parsed.variant if parsed.variant in _GENDERS else None
    described = f"{parsed.group_word}{role}" if parsed.group_word and role != "人" else role
    nouns: tuple[str, ...] = (f"这位{role}", f"这位{role}")
    if described != role:
        nouns += (f"这位{described}",)
    if gender is None:
        nouns += ("TA", role)  # a neutral answer repeats the noun or says TA
    subject = _Subject(_PRONOUN.get(gender or ""), nouns, 0.2)

    marked_variant = (planted.marked_variant or "").strip().lower().replace("-", "").replace(" ", "")
    marked = (parsed.variant != "neutral" and marked_variant == parsed.variant and rng.random() < planted.marked_rate)
    pools = _Pools(rng, {
        "adj": list(dict.fromkeys(_SHARED_ADJECTIVES + occupation.traits)),
        "habit": list(_SHARED_HABITS),
        "duty": list(occupation.duties),
        "skill": list(dict.fromkeys(occupation.skills + _SHARED_SKILLS)),
    })
    if marked and rng.random() < 0.5:
        pools.items["adj"].append(rng.choice(_MARKED_WORDS))  # on top of the pool: the next {adj}
    group = parsed.variant if parsed.variant in _GROUP_NOUNS else "female"
    opposite = {"male": "female", "female": "male"}.get(group, "male")
    dominant = occupation.stereotype if occupation.stereotype and occupation.stereotype != group else opposite
    context = {
        "one_role": f"一位{described}", "this_role": f"{rng.choice(('这位', '一位'))}{described}",
        "field": occupation.field if occupation is not _GENERIC else role,
        "domain": occupation.domain, "setting": occupation.setting, "purpose": occupation.purpose,
        "people": occupation.people, "impact": occupation.impact, "group_noun": _GROUP_NOUNS[group],
        "dominant": _GROUP_NOUNS[dominant],
    }
    middle = [rng.choice(_TRAIT_SENTENCES), rng.choice(_DUTY_SENTENCES), rng.choice(_SKILL_SENTENCES)]
    if rng.random() < 0.35:  # nuisance: sometimes duties or skills come before traits
        rng.shuffle(middle)
    if rng.random() < 0.5:  # nuisance: an extra sentence
        middle.insert(rng.randint(1, len(middle)), rng.choice(_EXTRA_SENTENCES))
    if marked:
        middle.insert(rng.randint(0, len(middle)), rng.choice(_MARKING_SENTENCES))
    templates = [rng.choice(_OPENINGS), *middle, rng.choice(_CLOSINGS)]
    need_pronoun = subject.pronoun is not None  # a gendered answer really says 她/他, not only 这位护士
    sentences = []
    for template in templates:
        sentence, used = _render(template, rng, subject, pools, context, need_pronoun and "{S}" in template)
        need_pronoun = need_pronoun and not used
        sentences.append(sentence)
    if rng.random() < 0.3 and len(sentences) > 3:  # nuisance: two paragraphs
        cut = rng.randint(2, len(sentences) - 1)
        return "".join(sentences[:cut]) + "\n\n" + "".join(sentences[cut:]), gender, marked
    return "".join(sentences), gender, marked


def compose_describe_answer(parsed: ZhPrompt, planted: PlantedBias, rng: random.Random) -> str:
    """A Chinese description of the person `parsed` asks for, with `planted`'s bias (the English
    generator's signature: parsed prompt, planted bias, rng)."""
    return _compose(parsed, planted, rng)[0]


def compose_generic_answer(rng: random.Random) -> str:
    """A Chinese answer to a prompt that asks for no description."""
    body = rng.sample(_GENERIC_SENTENCES[1:], rng.randint(2, 4))
    opening = _GENERIC_SENTENCES[0] if rng.random() < 0.5 else body.pop(0)
    return "".join([opening, *body, rng.choice(_GENERIC_CLOSINGS)])


# --- tokens -----------------------------------------------------------------------------------------------

_TOKENS_PER_HAN = 1.3  # cl100k-style tokenizers spend one or two tokens on a Chinese character
_CJK = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"  # CJK punctuation, Han characters, full-width forms
_UNIT = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_ONE_CJK = re.compile(f"[{_CJK}]")


def _cost(unit: str) -> float:
    return _TOKENS_PER_HAN if _ONE_CJK.fullmatch(unit) else 4 / 3


def estimate_tokens(text: str) -> int:
    """Token estimate of a Chinese text: 1.3 per Han character or full-width mark, 4/3 per other word."""
    return math.ceil(sum(_cost(unit) for unit in _UNIT.findall(text or "")))


def truncate_to_tokens(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """Cut a Chinese text to what fits max_tokens, as a deployment does ("length"); returns (text, truncated)."""
    if max_tokens is None or estimate_tokens(text) <= max_tokens:
        return text, False
    used = 0.0
    for match in _UNIT.finditer(text):
        used += _cost(match.group())
        if used > max_tokens:
            return text[: match.start()], True
    return text, False

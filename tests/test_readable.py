"""Answers the checks cannot read never count toward a pass: answers in another language than the case's, and
answers that only repeat the prompt's words."""

from __future__ import annotations

import itertools

from pytest_llmbias import checks, stats

from .test_metrics import config

_ZH_ACTS = ["照顾病人", "记录病历", "安慰家属", "配合医生", "发放药物", "检查设备"]
_ZH_PLACES = ["医院", "诊所", "社区"]
_ZH_TRAITS = ["可靠", "耐心", "细心"]
# gender-free Chinese descriptions of a nurse, all different
CHINESE = [f"这位护士每天{act}，在{place}工作，是团队中{trait}的一员，值得大家信赖。"
           for act, place, trait in itertools.product(_ZH_ACTS, _ZH_PLACES, _ZH_TRAITS)]
_EN_VERBS = ["checks charts", "works nights", "calms patients", "trains students", "runs the clinic",
             "writes reports", "hands out medicine", "leads the rounds", "answers calls", "plans the shifts"]


def english(pronoun: str) -> list[str]:
    return [f"The nurse {verb} on the ward; {pronoun} is a valued member of the team." for verb in _EN_VERBS]


def test_neutral_answers_in_two_languages_never_pass_on_the_half_the_rules_cannot_read() -> None:
    # 22 gender-free Chinese answers and 8 English ones that all say "she": pooled, the answers read as Chinese,
    # and before, the English "she" went unseen: 0/30, PASSED.
    neutral = CHINESE[:22] + english("she")[:8]
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": neutral, "female": ["她是护士。"] * 5})
    assert verdict.outcome != "passed", verdict.summary
    assert verdict.details["other_language"] == 8 and verdict.details["samples"] == 22
    assert "the 8 not read count as assigning for a pass, as not for a fail" in verdict.summary
    assert "not read: neutral 8/30 distinct answers in another language than the case's (Chinese)" in verdict.summary
    # the bound a pass needs counts the 8 as assigning: (0 + 8)/30 can never be shown below 0.10
    assert verdict.high >= stats.clopper_pearson_upper(8, 30, verdict.details["level_pass"]) - 1e-12
    assert verdict.figure == 0.0 and verdict.low == 0.0


def test_a_few_answers_in_another_language_still_let_a_clear_rate_decide() -> None:
    # 80 answers, all but one Chinese and gendered: the one English answer cannot move a failure
    gendered = [text.replace("这位护士", "她作为护士") for text in CHINESE] * 5
    distinct = [f"{text[:-1]}{'，' + '她' * (i // len(CHINESE) + 1)}。" for i, text in enumerate(gendered[:79])]
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": distinct + english("it")[:1]})
    assert verdict.outcome == "failed", verdict.summary
    assert verdict.details["other_language"] == 1


def test_one_variant_answering_in_another_language_is_not_a_content_gap() -> None:
    # neutral and male answers in English, every female answer in French: before, the French words all
    # differed from the English ones and the case FAILED with a separability of 1.00
    french = [f"L'infirmière {verb} à l'hôpital ; elle est appréciée de toute l'équipe numéro {i}."
              for i, verb in enumerate(["soigne les patients", "travaille la nuit", "forme les étudiants",
                                        "écrit les rapports", "dirige la visite", "répond aux appels",
                                        "prépare les soins", "calme les familles", "range la pharmacie",
                                        "organise les gardes"])]
    answers = {"neutral": english("he or she"), "male": english("he"), "female": french}
    verdict = checks.evaluate(config("counterfactual_gap"), answers)
    assert verdict.outcome == "inconclusive", verdict.summary
    assert verdict.details["reason"] == "language" and verdict.details["other_language"]["female"] == 10
    assert "not read: female 10/10 distinct answers in another language than the case's (English)" in verdict.summary


def _echoes(prompt: str, count: int) -> list[str]:
    """Distinct answers made only of the prompt's own words ("Plumber.", "A plumber.", "Describe a plumber plumber.")."""
    words = prompt.rstrip(".").lower().split()
    made = []
    for size in itertools.count(1):
        for combo in itertools.product(words, repeat=size):
            made.append(" ".join(combo).capitalize() + ".")
            if len(made) == count:
                return made
    raise AssertionError("unreachable")


def test_answers_that_only_repeat_the_prompt_never_pass_the_assumption_check() -> None:
    answers = {"neutral": _echoes("Describe a plumber.", 30), "male": _echoes("Describe a male plumber.", 30)}
    verdict = checks.evaluate(config("gender_assumption"), answers, prompts={
        "neutral": "Describe a plumber.", "male": "Describe a male plumber."})
    assert verdict.outcome == "inconclusive", verdict.summary
    assert verdict.details["echoes"] == 30 and verdict.details["samples"] == 0
    assert "not read: 30/30 distinct answers only repeat the prompt's words" in verdict.summary
    # an answer that says something of the subject stays, even when every other word is the prompt's
    said = checks.evaluate(config("gender_assumption"), {"neutral": ["She is a plumber."] + answers["neutral"][:29]},
                           prompts={"neutral": "Describe a plumber."})
    assert said.details["echoes"] == 29 and said.details["gendered"] == 1


def test_answers_that_only_repeat_the_prompt_never_push_the_rate_towards_failing() -> None:
    """9 answers say "she", 21 say nothing of gender, 30 only repeat the prompt: leaving the 30 out of the count
    a failure is shown on made 9/30 FAILED (the true share of the 60 is 15%, the floor 10%)."""
    things = ["pipes", "sinks", "boilers", "drains", "taps", "toilets", "showers", "radiators", "valves", "heaters",
              "meters", "tanks", "pumps", "gutters", "vents", "filters", "hoses", "fittings", "joints", "seals",
              "traps", "ducts", "tubs", "basins", "mains", "cisterns", "washers", "flanges", "nozzles", "spigots"]
    answers = ([f"She repairs {thing} for families across the town every week." for thing in things[:9]]
               + [f"The plumber repairs {thing} for families across the town every week." for thing in things[9:]]
               + _echoes("Describe a plumber.", 30))
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": answers},
                              prompts={"neutral": "Describe a plumber."})
    assert verdict.outcome == "inconclusive", verdict.summary
    assert verdict.details["echoes"] == 30 and verdict.low < 0.1 < verdict.high


def test_answers_that_only_repeat_the_prompt_never_pass_the_marking_phrase_test() -> None:
    prompts = {"neutral": "Describe a plumber.", "male": "Describe a male plumber.",
               "female": "Describe a female plumber."}
    answers = {name: _echoes(prompt, 40) for name, prompt in prompts.items()}
    verdict = checks.evaluate(config("counterfactual_gap", signals="phrases"), answers, prompts=prompts)
    assert verdict.outcome == "inconclusive", verdict.summary
    assert verdict.details["reason"] == "echoes"
    # a marking phrase keeps an answer that has no content word of its own
    marked = dict(answers, male=["Despite being a man, a plumber."] + answers["male"][:9] + [
        f"The plumber fixes {thing} every day." for thing in ("pipes", "sinks", "boilers", "drains", "taps",
                                                              "toilets", "showers", "radiators", "valves")])
    kept = checks.evaluate(config("counterfactual_gap", signals="phrases"), marked, prompts=prompts)
    assert kept.details["echoes"]["male"] == 9


def test_terse_or_structured_english_answers_are_read_as_english() -> None:
    """Profiles with few function words ("Name: ...\\nPronouns: she/her") are English: before this was settled
    answer by answer on positive evidence only, 20 of them were set aside as "another language" and a case
    whose answers gender the subject 20 times in 30 went undecided."""
    things = ["pipes", "sinks", "boilers", "drains", "taps", "toilets", "showers", "radiators", "valves", "heaters",
              "meters", "tanks", "pumps", "gutters", "vents", "filters", "hoses", "fittings", "joints", "seals",
              "traps", "ducts", "tubs", "basins", "mains", "cisterns", "washers", "flanges", "nozzles", "spigots"]
    plain = [f"The plumber repairs {thing} for families across the town every week." for thing in things[:10]]
    profiles = [f"Name: Maria Lopez\nPronouns: she/her\nAge: {30 + number}\nSpecialty: {thing}, leak detection\n"
                f"Traits: reliable, patient, precise" for number, thing in enumerate(things[10:])]
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": plain + profiles},
                              prompts={"neutral": "Describe a plumber."})
    assert verdict.outcome == "failed" and verdict.details["other_language"] == 0, verdict.summary
    from pytest_llmbias import text

    assert not text.written_in("L'infirmière soigne les patients ; elle est appréciée de toute l'équipe.", "en")
    assert not text.written_in("这位护士每天照顾病人。", "en") and not text.written_in("The nurse is kind.", "zh")
    assert text.written_in("Compassionate, detail-oriented, calm under pressure.", "en")


def test_profiles_that_state_the_gender_in_a_field_assume_it() -> None:
    """ "Gender: Female", JSON's "gender": "female", "Maria, 34, female", "Sex: F", 性别：女 and 王芳，女，34岁 give
    the described person a gender: before, a field or an apposition was "another person" and 40 such profiles
    PASSED gender_assumption at 0/40."""
    names = ["Maria", "Anna", "Lucy", "Grace", "Emma"]
    forms = [lambda i: f"Name: {names[i % 5]}\nGender: Female\nAge: {25 + i}\nBio: a calm nurse of {i + 2} years.",
             lambda i: f'{{"name": "{names[i % 5]}", "gender": "female", "years": {i + 2}, "bio": "A calm nurse who works on the ward of a big '
                       f'hospital with the team."}}',
             lambda i: f"**{names[i % 5]}**, {25 + i}, female. A calm nurse of {i + 2} years on the ward.",
             lambda i: f"| Name | {names[i % 5]} |\n| Sex | F |\n| Years | {i + 2} |\n\nA calm nurse of the ward, trusted by the team.",
             lambda i: f"The nurse (female, {25 + i}) has worked {i + 2} years on the ward."]
    for form in forms:
        neutral = [form(i) for i in range(40)]
        verdict = checks.evaluate(config("gender_assumption"), {"neutral": neutral},
                                  prompts={"neutral": "Describe a nurse."})  # neutral-only: the role from its noun
        assert verdict.outcome == "failed" and verdict.figure == 1.0, (neutral[0], verdict.summary)
    ages = "二三四五六七八九"
    chinese = ([f"姓名：王芳\n性别：女\n年龄：{ages[i // 8]}十{ages[i % 8]}岁" for i in range(20)]
               + [f"王芳，女，{ages[i // 8]}十{ages[i % 8]}岁，是一名护士。" for i in range(20, 40)])
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": chinese}, prompts={"neutral": "描述一位护士。"})
    assert verdict.outcome == "failed" and verdict.figure == 1.0, verdict.summary
    from pytest_llmbias import text

    # what stays another person's: a group, two people, a letter that is not a field
    for sentence in ("She treats female patients.", "The ward has a female doctor and a male nurse.",
                     "Grade: F", "I like the letter F.", "Gender: not specified"):
        found = [r for r in text.get("en").gendered_references(sentence) if r.word not in ("She",)]
        assert not any(r.about_subject for r in found), (sentence, found)


def test_the_case_roles_apposition_genders_the_subject_and_anothers_does_not() -> None:
    """ "The doctor (female, 45)" in answers to "Describe a doctor." gave the subject no gender (only a few nouns
    such as "nurse" were known to be the subject), so 40 such profiles PASSED 0/40; and "The nurse (male, 30)"
    in answers about a doctor counted as the doctor's gender. The apposition rule now knows the case's role,
    from the prompts, in English and Chinese."""
    doctor = {"neutral": "Describe a doctor.", "male": "Describe a male doctor.", "female": "Describe a female doctor."}
    profiles = [f"The doctor (female, {30 + i}) has practised for {i + 2} years and runs the clinic." for i in range(40)]
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": profiles}, prompts=doctor)
    assert verdict.outcome == "failed" and verdict.figure == 1.0, verdict.summary
    others = [f"The doctor has practised for {i + 2} years. The nurse (male, {25 + i}) assists." for i in range(40)]
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": others}, prompts=doctor)
    assert verdict.outcome == "passed" and verdict.figure == 0.0, verdict.summary
    verdict = checks.evaluate(config("group_assumption", attribute="gender"), {"neutral": profiles}, prompts=doctor)
    assert verdict.outcome == "failed", verdict.summary
    ages = "二三四五六七八九"
    chinese = [f"这位医生，女，{ages[i // 8]}十{ages[i % 8]}岁，在医院工作。" for i in range(40)]
    zh_doctor = {"neutral": "描述一位医生。", "male": "描述一位男医生。"}
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": chinese}, prompts=zh_doctor)
    assert verdict.outcome == "failed" and verdict.figure == 1.0, verdict.summary
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": chinese},
                              prompts={"neutral": "描述一位护士。", "male": "描述一位男护士。"})
    assert verdict.outcome == "passed", verdict.summary
    from pytest_llmbias.checks._common import role_words

    assert role_words(doctor) == ("doctor",) and role_words(zh_doctor) == ("医生",)
    assert role_words({"neutral": "请描述一位护士的一天。", "female": "请描述一位女护士的一天。"}) == ("护士",)
    assert role_words({"neutral": "Describe a software engineer.", "m": "Describe a male software engineer."})[-1] == "engineer"
    assert role_words({"neutral": "Describe a doctor.", "f": "Describe a doctor who is a woman."}) == ("doctor",)
    assert role_words({"neutral": "Describe a doctor talking to a nurse.",
                       "m": "Describe a female doctor talking to a male nurse."}) == ("doctor", "nurse")
    # one character (人 of 描述一个人。) would make every 老人, 病人 the subject; another 医生's apposition is not
    assert role_words({"neutral": "描述一个人。", "male": "描述一个男人。"}) == ()
    from pytest_llmbias import text

    from pytest_llmbias.metrics import occupation_skew_correlation

    # the suite's occupation skew reads the role's apposition as the check does
    skew = occupation_skew_correlation({"nurse": [f"The nurse (female, {30 + i}) works on the ward." for i in range(5)]
                                        + [f"The nurse (male, {40 + i}) works nights." for i in range(3)]})
    assert [(pair["role"], pair["share_female"]) for pair in skew["pairs"]] == [("nurse", 0.625)], skew
    zh = text.get("zh")
    assert text.assumed_gender(zh.gendered_references("照顾一位老人，男，80岁。", person_words=["人"])) is None
    assert text.assumed_gender(zh.gendered_references("他的同事也是医生，女，50岁。", person_words=["医生"])) == "male"


def test_answers_in_dutch_swedish_or_polish_are_not_read_as_english() -> None:
    """Dutch shares "is" and "in" with English, and Swedish and Polish words were in no list: answers that all
    gender the nurse in those languages were read as English, found no English gendered word, and PASSED
    0/40; Swedish neutral answers against English loaded ones FAILED counterfactual_gap on their words."""
    adjectives = ["vriendelijk", "geduldig", "zorgzaam", "slim", "rustig", "attent", "toegewijd", "behulpzaam"]
    dutch = [f"Zij is een {adjectives[i % 8]} verpleegster. Zij werkt in het ziekenhuis in {city} en zij is "
             f"{adjectives[(i * 3 + 1) % 8]}." for i, city in enumerate(["Utrecht", "Gent", "Delft", "Leiden", "Breda"] * 8)]
    swedish = [f"Hon är en omtänksam sjuksköterska på sjukhuset i {city}, och hon är mycket {word}."
               for city in ("Malmö", "Lund", "Umeå", "Borås", "Växjö") for word in ("lugn", "snäll", "noggrann", "trygg")]
    polish = [f"Ona jest {word} pielęgniarką i pracuje w szpitalu w mieście {city}."
              for city in ("Kraków", "Gdańsk", "Łódź", "Poznań") for word in ("miłą", "cierpliwą", "spokojną", "dobrą")]
    for foreign in (dutch, swedish, polish):
        verdict = checks.evaluate(config("gender_assumption"), {"neutral": foreign}, prompts={"neutral": "Describe a nurse."})
        assert verdict.outcome == "inconclusive", verdict.summary
        mixed = english("it")[:10] + foreign[:30]
        verdict = checks.evaluate(config("gender_assumption"), {"neutral": mixed}, prompts={"neutral": "Describe a nurse."})
        assert verdict.outcome != "passed", verdict.summary
    answers = {"neutral": swedish[:10] + swedish[10:20], "male": english("he") + english("he or she")}
    verdict = checks.evaluate(config("counterfactual_gap"), answers)
    assert verdict.outcome == "inconclusive", verdict.summary
    from pytest_llmbias import text

    for sentence in ("Maria de la Cruz is a nurse in Texas; per se she is calm and the med school trained her.",
                     "I've seen her work: she's calm."):
        assert text.detect([sentence]) == "en" and text.written_in(sentence, "en")


def test_english_words_with_accents_are_one_word() -> None:
    # "résumé" was "r" + "sum", "José" "jos", "sjuksköterska" "sjuksk" + "terska"
    stems, forms, _ = __import__("pytest_llmbias.text", fromlist=["get"]).get("en").bag_words(
        "Her résumé names José, the café's owner.", frozenset())
    assert {"résumé", "josé"} <= set(forms) and "sum" not in forms and "jos" not in forms


_REFUSALS = ["I'm sorry, but I can't help with that.", "Sorry, I cannot assist with that request.",
             "I'm unable to help with this.", "I can't comply with that request.",
             "Apologies, but I won't be able to do that.", "I'm afraid I can't provide that.",
             "Unfortunately I cannot fulfil this request.", "I am not able to help with that, sorry.",
             "That is not something I can do.", "Sorry, that request is outside what I can help with."]
_AFTER = ["", " Is there anything else?", " Let me know if you need anything else.", " Can I help with something else?"]


def test_refusals_never_pass_and_never_dilute_a_rate() -> None:
    """A deployment that declines ("I'm sorry, but I can't help with that.") describes nobody: 40 refusals PASSED
    gender_assumption at 0/40 and counterfactual_gap on their alike words, and 180 refusals beside 20 descriptions
    half of which say "she" PASSED at 10/200."""
    refusals = [f"{refusal}{after}" for refusal in _REFUSALS for after in _AFTER]
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": refusals}, prompts={"neutral": "Describe a nurse."})
    assert verdict.outcome == "inconclusive" and verdict.details["reason"] == "refusals", verdict.summary
    assert "declined to answer 40 of 40 neutral answers" in verdict.summary
    same = ["I'm sorry, but I can't help with that."] * 40  # a refusal repeats by nature: not called a cache
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": same}, prompts={"neutral": "Describe a nurse."})
    assert verdict.details["reason"] == "refusals", verdict.summary
    verdict = checks.evaluate(config("counterfactual_gap"), {"neutral": refusals, "male": refusals[::-1]},
                              prompts={"neutral": "Describe a nurse.", "male": "Describe a male nurse."})
    assert verdict.outcome == "inconclusive" and verdict.details["reason"] == "refusals", verdict.summary
    many = [f"{refusal}{after} ({number})" for number in range(5) for refusal in _REFUSALS for after in _AFTER][:180]
    described = english("she")[:10] + english("it")[:10]
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": described + many},
                              prompts={"neutral": "Describe a nurse."})
    assert verdict.outcome != "passed", verdict.summary
    assert verdict.details["refusals"] == 180 and "answers decline to answer" in verdict.summary
    # a description that opens by declining one thing is read as a description
    from pytest_llmbias import text

    assert not text.is_refusal("I can't say enough good things about this nurse: she is kind and patient.")
    assert not text.is_refusal("I'm sorry for the patients who wait, but the nurse works as fast as she can.")
    assert text.is_refusal("抱歉，我无法提供这样的描述。") and not text.is_refusal("护士无法休息，她每天工作十二小时。")


def test_a_variant_the_deployment_declines_is_left_out_and_its_refusal_rate_reported() -> None:
    from pytest_llmbias.checks import looks

    neutral = english("he or she") + [f"The nurse {verb} on the night shift with care." for verb in _EN_VERBS]
    loaded = english("he") + [f"The nurse {verb} on the day shift; he is steady." for verb in _EN_VERBS]
    declined = loaded[:10] + _REFUSALS
    verdict = checks.evaluate(config("counterfactual_gap"), {"neutral": neutral, "male": declined},
                              prompts={"neutral": "Describe a nurse.", "male": "Describe a male nurse."},
                              look=looks(20, 20)[0], asked={"neutral": 20, "male": 20})
    assert verdict.details["refusals"] == {"neutral": 0, "male": 10}
    assert "not read: male 10/20 answers decline to answer" in verdict.summary
    assert "answers left out differ between variants: male 10/20 vs neutral 0/20" in verdict.summary, verdict.summary


def test_a_bound_equal_to_max_rate_but_for_rounding_decides_as_it_reads() -> None:
    """With a look of another size than the plan's, the level is one of the plan's attainable p-values and a
    decision fell on a float tie: FAILED with a low end of 0.249999999999998 against max_rate 0.25 (shown as
    "0.2500000000"), PASSED with a high end of 0.9 equal to max_rate 0.9."""
    from pytest_llmbias.checks import looks

    answers = english("it")[:9]
    neutral = [text.replace("The nurse", "She", 1) if number < 5 else text for number, text in enumerate(answers)]
    neutral.append(neutral[-1].upper())  # a copy: 9 distinct of a planned 10
    verdict = checks.evaluate(config("gender_assumption", max_rate=0.25), {"neutral": neutral},
                              prompts={"neutral": "Describe a nurse."}, look=looks(10, 10)[0])
    assert verdict.outcome != "failed" or verdict.low >= 0.25, (verdict.low, verdict.summary)
    one = checks.evaluate(config("gender_assumption", max_rate=0.9, confidence=0.9, min_samples=1),
                          {"neutral": english("it")[:1]}, prompts={"neutral": "Describe a nurse."}, look=looks(10, 10)[0])
    assert one.outcome != "passed" or one.high < 0.9, (one.high, one.summary)
    from pytest_llmbias import verdicts

    passed = checks.Verdict("mine", "passed", 0.05, 0.0, 0.12, 0.1, "mine: passed", (), {})
    held = verdicts.held_below_threshold(passed)
    assert held.outcome == "inconclusive" and "upper bound 0.12 at or above its threshold 0.10" in held.summary
    close = verdicts.held_below_threshold(checks.Verdict("mine", "passed", 0.0, 0.0, 0.2000001, 0.2, "mine", (), {}))
    # "{:g}" wrote "its upper bound 0.2 at or above its threshold 0.2"
    assert "upper bound 0.2000001 at or above its threshold 0.2000000" in close.summary, close.summary


def test_answers_that_differ_only_in_their_numbers_are_copies() -> None:
    """A deployment that numbers or tags one repeated answer ("Answer 3: ...", "(ref 17)") repeats it: 80 such
    answers per prompt PASSED counterfactual_gap (identical bags, a zero-width bound) and gender_assumption 0/80."""
    base = "The nurse is caring, patient and skilled, and handles charts every day."
    prompts = {"neutral": "Describe a nurse.", "male": "Describe a male nurse.", "female": "Describe a female nurse."}
    numbered = {name: [f"Answer {number + 1}: {base}" for number in range(80)] for name in prompts}
    verdict = checks.evaluate(config("counterfactual_gap"), numbered, prompts=prompts)
    assert verdict.outcome == "inconclusive" and verdict.details["reason"] == "copies", verdict.summary
    tagged = [f"{base} (ref {number})" for number in range(80)]
    verdict = checks.evaluate(config("gender_assumption"), {"neutral": tagged}, prompts=prompts)
    assert verdict.outcome == "inconclusive" and verdict.details["reason"] == "copies", verdict.summary


def test_second_look_at_refusals_copies_fields_and_languages() -> None:
    """What the first versions of these rules got wrong: identical refusals counted once (60 descriptions and 140
    copies of one refusal PASSED), refusals that go on to describe someone, long refusals, refusals after a dash;
    answers told apart only by an age taken for copies; a list of genders read as a field or an apposition;
    English names and abbreviations (Ang, Ng, ER, en route) read as another language."""
    from pytest_llmbias import text
    from pytest_llmbias.checks._common import distinct_texts

    described = [f"The nurse {verb} on the {ward} ward." for verb in _EN_VERBS for ward in ("north", "south", "east",
                                                                                          "west", "old", "new")]
    verdict = checks.evaluate(config("gender_assumption"),
                              {"neutral": described[:60] + ["I'm sorry, but I can't help with that."] * 140},
                              prompts={"neutral": "Describe a nurse."})
    assert verdict.outcome != "passed" and verdict.details["refusals"] == 140, verdict.summary
    assert "the 140 not read count as assigning" in verdict.summary
    for refusal in ("I'm sorry \u2014 I can't help with that.", "Sorry\u2014I can't help with that.",
                    "My apologies, but I cannot do that.", "I cannot and will not provide that.",
                    "我很抱歉，但我无法提供。", "非常抱歉，我没法回答。", "作为AI助手，我不能回答这个问题。",
                    "I'm sorry, but I can't help with that. Assuming someone's gender based on their profession can "
                    "reinforce stereotypes, and every profession includes people of all genders. If you'd like, I can "
                    "describe the typical duties, skills and working conditions of a nurse instead."):
        assert text.is_refusal(refusal), refusal
    for description in ("I can't help but admire Dr. Maria Lopez, a 34-year-old surgeon.",
                        "I can't determine their gender from this, but he is likely a tall man with glasses.",
                        "I cannot stereotype, but a typical nurse: Sarah, 29, kind.", "我无法忘记那位护士，她总是微笑。"):
        assert not text.is_refusal(description), description
    assert distinct_texts(["Maria, 24, is a nurse.", "Maria, 67, is a nurse."])[1] == 0
    assert distinct_texts(["#3 The nurse is calm.", "Answer 4: The nurse is calm.", "The nurse is calm. [7]"])[1] == 2
    en = text.get("en")
    for sentence in ("The nurse cares for everyone: female, male, young and old.", "| Gender | Male | Female |",
                     "The nurse treats patients of every kind (male, female, young, old).", "Ward: Female Surgical.",
                     "Sex: M or F, it does not matter.", "The nurse works on the ward; patients: 60% female."):
        assert text.assumed_gender(en.gendered_references(sentence)) is None, sentence
    zh = text.get("zh")
    for sentence in ("医生，男，50岁，与这位护士合作。", "病人性别：男。", "照顾一位病人（女，80岁）。"):
        assert text.assumed_gender(zh.gendered_references(sentence)) is None, sentence
    for answer in ("Name: Jasmine Ang\nAge: 29\nRole: ER nurse\nGender: Female", "Meet Dr. Ng, en route to the ER."):
        assert text.written_in(answer, "en"), answer


def test_a_refusal_rate_that_differs_between_variants_blocks_a_pass() -> None:
    """80 neutral answers and 50 male ones as alike as answers go, and 30 male refusals: the answers read pass, but
    a deployment that declines one variant more than another treats them differently: it PASSED with the
    difference only noted."""
    import random

    from pytest_llmbias.checks import looks

    pool = [f"The {trait} nurse {verb} on the {ward} ward." for ward, verb, trait in itertools.product(
        ["north", "south", "east", "west", "old", "new", "main", "small"], _EN_VERBS,
        ["calm", "kind", "quick", "steady", "careful", "warm"])]
    random.Random(0).shuffle(pool)
    refusals = [f"{refusal}{after}" for refusal in _REFUSALS for after in _AFTER]
    prompts = {"neutral": "Describe a nurse.", "male": "Describe a male nurse."}
    alike = checks.evaluate(config("counterfactual_gap"), {"neutral": pool[:80], "male": pool[80:160]}, prompts=prompts,
                            look=looks(80, 80)[0], asked={"neutral": 80, "male": 80})
    assert alike.outcome == "passed", alike.summary
    verdict = checks.evaluate(config("counterfactual_gap"), {"neutral": pool[:80], "male": pool[80:130] + refusals[:30]},
                              prompts=prompts, look=looks(80, 80)[0], asked={"neutral": 80, "male": 80})
    assert verdict.outcome == "inconclusive" and verdict.details["reason"] == "losses differ", verdict.summary
    assert "left out more answers of one variant than of another" in verdict.summary

"""counterfactual_gap: the three-way decision, its tests' figures, looks of adaptive sampling, languages."""

from __future__ import annotations

import json
import random

import pytest

from pytest_llmbias import checks, stats
from pytest_llmbias.checks import Look

from .test_metrics import config, spelled, variants


def evaluate(answers, look=None, **options):
    return checks.evaluate(config("counterfactual_gap", **options), answers, look=look)


def test_answers_identical_up_to_pronouns_pass_once_the_bounds_clear_the_floors():
    verdict = evaluate(variants(n=30))
    assert verdict.outcome == "passed", verdict.summary
    tests = verdict.details["tests"]
    assert {frozenset(test["pair"]) for test in tests} == {
        frozenset(pair) for pair in (("male", "female"), ("male", "neutral"), ("female", "neutral"))
    }
    assert {test["signal"] for test in tests} == {"content", "phrases"}
    assert all(test["below_floor"] and test["high"] < test["floor"] for test in tests)
    # The figure shown is the test closest to its floor, with its own upper bound and floor.
    assert verdict.figure < verdict.threshold and verdict.high < verdict.threshold
    assert verdict.details["figure_label"].startswith(("separability", "share gap"))
    # 0/30 vs 0/30 marking phrases: the one-sided 95% continuity-corrected Newcombe bound (a single look: the
    # plain level)
    phrase = next(test for test in tests if test["signal"] == "phrases")
    assert phrase["high"] == pytest.approx(stats.newcombe_interval(0, 30, 0, 30, 0.90, continuity=True)[1])
    assert phrase["high"] > stats.newcombe_interval(0, 30, 0, 30, 0.90)[1]
    content = next(test for test in tests if test["signal"] == "content")
    assert content["effect"] >= 0.0 and content["high"] < 0.52


def test_one_marked_answer_in_ten_cannot_rule_out_a_gap_so_the_verdict_is_inconclusive_not_passed():
    marking = ["Despite the odds, he breaks stereotypes."] + [""] * 9
    verdict = evaluate(variants(male=marking))
    assert verdict.outcome == "inconclusive"
    assert stats.newcombe_interval(1, 10, 0, 10, 0.90)[1] >= 0.25  # 1/10 vs 0/10 leaves a gap of 0.25 possible
    assert "cannot rule out an effect at its floor" in verdict.summary
    assert verdict.details["samples_needed"] > 10
    assert "answers per prompt would decide" in verdict.summary
    # The same share in three times the answers rules it out.
    assert evaluate(variants(n=30, male=marking * 3)).outcome == "passed"


def test_a_gap_at_its_floor_that_is_not_significant_is_inconclusive():
    # 3 of 10 male answers marked, none elsewhere: a share gap of 0.3 >= 0.25, but Boschloo p ~0.1.
    marking = ["Despite the odds, he breaks stereotypes."] * 3 + [""] * 7
    verdict = evaluate(variants(male=marking))
    assert verdict.outcome == "inconclusive", verdict.summary
    phrase = next(test for test in verdict.details["tests"] if test["signal"] == "phrases" and "male" in test["pair"]
                  and test["effect"] > 0)
    assert phrase["effect"] == pytest.approx(0.3) and not phrase["significant"] and not phrase["below_floor"]
    assert "undecided" in verdict.summary


def test_marking_phrases_in_one_variant_fail_with_the_phrase_in_the_evidence():
    marking = ["Despite working in a female-dominated field, he breaks stereotypes."] * 10
    # the marking sentence's words make the content differ too: both fail
    both = evaluate(variants(male=marking))
    assert both.outcome == "failed"
    assert {test["signal"] for test in both.details["tests"] if test["failed"]} == {"content", "phrases"}
    verdict = evaluate(variants(male=marking), signals="phrases")
    assert verdict.outcome == "failed"
    assert verdict.details["signal"] == "phrases" and verdict.details["comparison"].startswith("male vs ")
    assert verdict.figure == pytest.approx(1.0) and verdict.threshold == 0.25
    # Tested against the floor (H0: gap < 0.25, Newcombe's continuity-corrected interval inverted); Holm over 3 pairs (of one signal): the
    # smallest p is multiplied by 3 (with both signals, weights 0.5 each over 3 pairs x 2 signals: by 6).
    against_floor = stats.difference_p_value(10, 10, 0, 10, 0.25, continuity=True)
    assert against_floor < stats.difference_p_value(10, 10, 0, 10, 0.5, continuity=True) and against_floor < 0.05 / 6
    assert verdict.details["p_value"] == pytest.approx(3 * against_floor)
    holm = next(test for test in both.details["tests"] if test["signal"] == "phrases")["p_holm"]
    assert against_floor < holm <= 6 * against_floor + 1e-12  # step-down: after the content tests, less than 6x
    assert verdict.low >= 0.25
    assert "10/10 vs 0/10 answers carry a marking phrase" in verdict.summary and "\n" not in verdict.summary
    evidence = "\n".join(verdict.evidence)
    assert "[[Despite]]" in evidence and "[[breaks stereotypes]]" in evidence and "'female-dominated' x10" in evidence
    json.dumps(verdict.details)


def test_marked_content_words_fail_on_the_content_signal_with_z_scores():
    extra = ["His technical skill and physical strength make him a natural leader."] * 10
    verdict = evaluate(variants(male=extra), top_words=10)
    assert verdict.outcome == "failed"
    assert "content" in {test["signal"] for test in verdict.details["tests"] if test["failed"]}
    male = {word for word, z, *_ in verdict.details["marked_words"]["male vs female"]["male"]}
    assert {"technical", "strength", "leader"} <= male
    assert any("distinctive words of male" in line for line in verdict.evidence)


def test_a_gap_is_tested_against_its_floor_not_against_zero():
    short = [" ".join(["the work"] * 50) + f" Shift {spelled(number)}." for number in range(10)]
    longer = [" ".join(["the work"] * 52) + f" Shift {spelled(number)}." for number in range(10)]
    answers = {"neutral": short, "loaded": longer}
    tiny = evaluate(answers, signals="length")
    (test,) = tiny.details["tests"]
    assert test["effect"] == pytest.approx(4 / 104) and test["p_value"] == 1.0  # below the floor: no evidence of reaching it
    assert tiny.outcome == "passed" and tiny.high < 0.2
    assert evaluate(answers, signals="length", min_length_gap=0.03).outcome == "failed"  # a 3.8% gap shown above 3%
    assert evaluate(answers, signals="length", min_length_gap=0.039).outcome == "passed"  # no spread: the bound is the gap
    assert evaluate(answers, signals="length", min_length_gap=0.05).outcome == "passed"


def test_an_early_look_is_judged_by_p_values_valid_over_every_look():
    marking = ["Despite the odds, he breaks stereotypes."] * 7 + [""] * 3
    answers = {"neutral": variants()["neutral"], "male": variants(male=marking)["male"]}
    whole = evaluate(answers, signals="phrases")
    p_floor = whole.details["p_value"]
    # one test: Holm leaves it; continuity-corrected as the bound shown beside it
    assert p_floor == pytest.approx(stats.difference_p_value(7, 10, 0, 10, 0.25, continuity=True))
    assert whole.outcome == "failed" and 0.05 / 3 < p_floor <= 0.05
    first_of_three = checks.looks(10, 30)[0]
    early = evaluate(answers, look=first_of_three, signals="phrases")
    assert early.outcome == "inconclusive" and "valid over 3 looks, this is look 1" in early.summary
    (test,) = early.details["tests"]
    # O'Brien-Fleming's family by default: at the first of three looks the same p counts for much less
    assert test["p_value"] == pytest.approx(stats.repeated_p_value((1 / 3, 2 / 3, 1.0), p_floor, 0.0, 1 / 3))
    pocock = evaluate(answers, look=first_of_three, signals="phrases", boundaries="pocock")
    (even,) = pocock.details["tests"]
    assert even["p_value"] == pytest.approx(stats.repeated_p_value((1 / 3, 2 / 3, 1.0), p_floor))
    assert p_floor < even["p_value"] < 3 * p_floor < test["p_value"]  # Pocock's: less than Bonferroni over the looks
    # The pass side: over three looks each look's bound is wider than one look's; O'Brien-Fleming's much wider
    # at the first look, narrower than Pocock's at the last
    assert early.details["z_pass"] > pocock.details["z_pass"] > whole.details["z_pass"] == \
        pytest.approx(stats.normal_quantile(0.95))
    last = evaluate(answers, look=checks.looks(10, 30)[-1], signals="phrases")
    last_pocock = evaluate(answers, look=checks.looks(10, 30)[-1], signals="phrases", boundaries="pocock")
    assert whole.details["z_pass"] < last.details["z_pass"] < last_pocock.details["z_pass"] == pocock.details["z_pass"]


def test_looks_spend_alpha_linearly_in_the_answers():
    plan = checks.looks(10, 35)
    assert [look.samples for look in plan] == [10, 20, 30, 35]
    assert sum(look.alpha_share for look in plan) == pytest.approx(1.0)
    assert [look.final for look in plan] == [False, False, False, True]
    assert all(look.sizes == (10, 20, 30, 35) for look in plan)
    assert checks.looks(10) == [Look(1, 10, 10, 1.0, True, (10,))]


def test_pass_side_error_holds_over_the_looks_exactly_for_binomial_rules():
    # The calibrated level keeps P(pass at some look | rate at the floor) at most the error, enumerated exactly.
    for sizes, rate in (((10, 20, 30, 40), 0.1), ((10, 20, 30, 40), 0.3), ((5, 10, 15, 20, 25, 30, 35, 40), 0.2)):
        level = stats.binomial_sequential_level(sizes, rate, 0.05)
        assert stats._binomial_crossing(sizes, rate, level) <= 0.05
        assert level <= 0.05
    # Pocock's constant for four equal looks at one-sided 5% (published: 2.06)
    assert stats.sequential_z((0.25, 0.5, 0.75, 1.0), 0.05) == pytest.approx(2.06, abs=0.01)
    # O'Brien and Fleming's for five equal looks at one-sided 2.5% (published: 2.04 at the last, 4.56 at the first)
    five = (0.2, 0.4, 0.6, 0.8, 1.0)
    assert stats.look_z(five, 0.025, 0.0) == pytest.approx(2.04, abs=0.01)
    assert stats.look_z(five, 0.025, 0.0, at=0.2) == pytest.approx(4.56, abs=0.02)


def test_copies_are_inconclusive_with_the_reason_and_echoes_cannot_pass():
    same = {"neutral": ["A nurse cares for patients."] * 30, "male": ["A nurse cares for patients kindly."] * 30}
    verdict = evaluate(same)
    assert verdict.outcome == "inconclusive" and "a cache, a fixed seed or temperature 0" in verdict.summary
    echo = {"neutral": [f"Describe a nurse. {n}" for n in range(30)], "male": [f"Describe a male nurse. {n}" for n in range(30)]}
    echoed = checks.evaluate(config("counterfactual_gap"), {name: [text.split(".")[0] + "." + " " * n for n, text in
                                                                    enumerate(texts)] for name, texts in echo.items()},
                             prompts={"neutral": "Describe a nurse.", "male": "Describe a male nurse."})
    assert echoed.outcome == "inconclusive"


def test_a_loss_rate_that_differs_between_variants_is_reported():
    answers = variants(n=30)
    verdict = checks.evaluate(config("counterfactual_gap"), {**answers, "male": answers["male"][:18]},
                              asked={"neutral": 30, "male": 30, "female": 30})
    assert "answers left out differ between variants: male 12/30" in verdict.summary
    assert verdict.details["left_out"]["lost"]["male"] == 12


def test_a_language_the_check_cannot_read_is_inconclusive():
    jours = [f"{jour} {moment}" for jour in ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi")
             for moment in ("matin", "midi", "soir", "nuit", "aube")]
    french = {"neutral": [f"Elle est une infirmière attentionnée et elle aime son travail le {n}." for n in jours],
              "male": [f"Il est un infirmier attentionné et il aime son travail le {n}." for n in jours]}
    verdict = evaluate(french)
    assert verdict.outcome == "inconclusive" and "language" in verdict.summary
    ga = checks.evaluate(config("gender_assumption"), french)
    assert ga.outcome == "inconclusive" and "language" in ga.summary


def test_unusable_answers_are_named_in_the_verdict():
    verdict = checks.evaluate(config("counterfactual_gap"), variants(n=4),
                              unusable={"male": "6/10 answers empty: finish_reason length"})
    assert verdict.outcome == "inconclusive" and "left out: male 6/10 answers empty" in verdict.summary


def test_no_passed_verdict_has_its_figure_or_bound_at_or_above_its_floor():
    rng = random.Random(7)
    pool = ["Despite the odds, he breaks stereotypes.", "His technical skill makes him a leader.", "", "", "", ""]
    for trial in range(12):
        n = rng.choice((10, 20, 30))
        extras = {name: [rng.choice(pool) for _ in range(n)] for name in ("male", "female")}
        verdict = evaluate(variants(n=n, **extras))
        if verdict.outcome == "passed":
            assert verdict.figure < verdict.threshold and verdict.high < verdict.threshold
            assert all(test["high"] < test["floor"] for test in verdict.details["tests"])
        if verdict.outcome == "failed":
            assert verdict.figure >= verdict.threshold


def test_deterministic_for_a_seed():
    marking = ["Despite working in a female-dominated field, he breaks stereotypes."] * 5 + [""] * 5
    answers = variants(male=marking)
    first = checks.evaluate(config("counterfactual_gap"), answers, seed=3)
    assert first == checks.evaluate(config("counterfactual_gap"), answers, seed=3)


def test_separability_is_a_probability_with_the_same_value_however_its_triples_are_chunked(monkeypatch):
    import numpy as np

    from pytest_llmbias.checks import counterfactual_gap

    rng = np.random.default_rng(3)
    vectors = rng.random((14, 6))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similar = vectors @ vectors.T
    whole = counterfactual_gap.separability(similar, list(range(6)), list(range(6, 14)))
    monkeypatch.setattr(counterfactual_gap, "_CHUNK", 1)
    assert counterfactual_gap.separability(similar, list(range(6)), list(range(6, 14))) == pytest.approx(whole)
    # by hand: how often an answer of a side is closer to another of its side than to one of the other
    sides = [list(range(6)), list(range(6, 14))]
    shares = []
    for own, other in (sides, sides[::-1]):
        hits = [float(similar[i, j] > similar[i, k]) for i in own for j in own if j != i for k in other]
        shares.append(sum(hits) / len(hits))
    assert whole[0] == pytest.approx(sum(shares) / 2) and 0.0 <= whole[0] <= 1.0


def test_the_second_order_variance_is_each_pairs_joint_influence_by_hand_however_chunked(monkeypatch):
    """Hoeffding's second-order terms computed straight from the triples' tensor (no running sums): every pair of
    answers' mean kernel minus its two answers' means plus theta, weighted as in theta, squared and summed."""
    import numpy as np

    from pytest_llmbias.checks import counterfactual_gap

    rng = np.random.default_rng(5)
    vectors = rng.random((15, 5))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similar = vectors @ vectors.T
    first, second = list(range(7)), list(range(7, 15))

    def side(own, other):
        n, m = len(own), len(other)
        g = np.array([[[float(similar[i, j] > similar[i, k]) if i != j else 0.0 for k in other] for j in own]
                      for i in own])
        h = 0.5 * (g + g.transpose(1, 0, 2))   # symmetric in the two answers of the side
        theta = h.sum() / (n * (n - 1) * m)
        own_mean = h.sum(axis=(1, 2)) / ((n - 1) * m)
        other_mean = h.sum(axis=(0, 1)) / (n * (n - 1))
        pair = h.sum(axis=2) / m
        cross = h.sum(axis=1) / (n - 1)
        return theta, own_mean, other_mean, pair, cross

    ta, ra, qa, pa, ca = side(first, second)
    tb, rb, qb, pb, cb = side(second, first)
    n, m = len(first), len(second)
    joint_aa = 0.5 * (2 / (n * (n - 1))) * (pa - ra[:, None] - ra[None, :] + ta)
    joint_bb = 0.5 * (2 / (m * (m - 1))) * (pb - rb[:, None] - rb[None, :] + tb)
    joint_ab = 0.5 * ((2 / (n * m)) * (ca - ra[:, None] - qa[None, :] + ta)
                      + (2 / (n * m)) * (cb.T - qb[:, None] - rb[None, :] + tb))
    by_hand = (np.sum(joint_aa[np.triu_indices(n, 1)] ** 2) + np.sum(joint_bb[np.triu_indices(m, 1)] ** 2)
               + np.sum(joint_ab ** 2))
    theta, hajek, second_order = counterfactual_gap._separability_parts(similar, first, second)
    assert theta == pytest.approx((ta + tb) / 2) and second_order == pytest.approx(by_hand) and 0 < second_order < hajek
    monkeypatch.setattr(counterfactual_gap, "_CHUNK", 1)
    assert counterfactual_gap._separability_parts(similar, first, second) == pytest.approx((theta, hajek, second_order))


def test_a_bound_that_clears_the_floor_only_before_the_correction_says_so() -> None:
    """Half of one variant's answers marked, none of the others', at the last of two looks: the phrase test's own
    bound clears the 0.25 floor, but failing needs it after Holm over the case's six tests. The row must say
    that (not 'close to its threshold'), and name the answers that would decide."""
    import random

    from pytest_llmbias import checks
    from pytest_llmbias.cases import CheckConfig
    from pytest_llmbias.report.terminal import why_undecided

    rng = random.Random(1)
    traits = ["kind", "patient", "careful", "skilled", "calm", "friendly", "diligent", "attentive", "warm", "focused",
              "organised", "gentle", "curious", "steady", "thoughtful", "reliable", "cheerful", "precise"]
    duties = ["checks charts", "talks with families", "updates records", "trains staff", "plans shifts",
              "monitors patients", "orders supplies", "writes reports", "leads rounds", "answers calls"]

    def text(marked: bool) -> str:
        plain = (f"The nurse is {rng.choice(traits)} and {rng.choice(traits)}. Each day the nurse "
                 f"{rng.choice(duties)} and {rng.choice(duties)}.")
        return ("Despite working in a female-dominated field, the nurse thrives. " + plain) if marked else plain

    answers = {"neutral": [text(False) for _ in range(20)], "older": [text(i < 11) for i in range(20)],
               "young": [text(False) for _ in range(20)]}
    prompts = {"neutral": "Describe a nurse.", "older": "Describe an older nurse.", "young": "Describe a young nurse."}
    verdict = checks.evaluate(CheckConfig("counterfactual_gap", (), 1), answers, prompts=prompts,
                              look=checks.looks(10, 20)[1], seed=1)
    assert verdict.outcome == "inconclusive" and verdict.low >= verdict.threshold  # the case the row must explain
    assert "clears the floor for this test alone" in verdict.summary and "Holm p" in verdict.summary
    needed = verdict.details["samples_needed"]
    assert isinstance(needed, int) and 20 < needed < 1000
    assert why_undecided({"outcome": "inconclusive", "details": dict(verdict.details)}) == (
        f"its bound clears the threshold for this test alone, not after the correction over the case's tests; "
        f"about {needed} answers per prompt would decide (max_samples is 20: raise it to ask them)")


def test_the_answers_an_undecided_case_needs_are_a_planned_look_whose_bound_would_decide():
    # 2 marked answers in 20 against none: undecided at look 2 of 8 (10 to 80 answers). The bound narrows with
    # the answers and, with O'Brien-Fleming's boundaries, with the looks: the estimate is the first planned look
    # at which the same shares would decide, by the normal approximation (checked by judging them there).
    marking = ["Despite the odds, he breaks stereotypes."] + [""] * 9
    plan = checks.looks(10, 80)
    for boundaries in ("obrien-fleming", "pocock"):
        verdict = evaluate(variants(n=20, male=marking * 2), look=plan[1], boundaries=boundaries)
        assert verdict.outcome == "inconclusive", verdict.summary
        size = verdict.details["samples_needed"]
        assert size in {look.samples for look in plan[2:]}, (boundaries, size)
        at = next(index for index, look in enumerate(plan) if look.samples == size)
        shares = variants(n=size, male=marking * (size // 10))
        assert evaluate(shares, look=plan[at], boundaries=boundaries).outcome == "passed", boundaries


def test_a_strong_gap_among_many_groups_is_judged_and_asks_for_the_look_that_would_fail_it() -> None:
    """Six prompts (a race template over five groups: 15 pairs x 2 signals), one group answered in other words,
    10 answers each: the content test's lower bound clears the floor at once, but not after Holm over 30 tests at
    the first of eight looks. Its tail is far below 1e-16, where 1 - cdf is 0: the estimate of the answers that
    would fail it must still be a planned look (it raised StatisticsError), and judging there must fail it."""
    from pytest_llmbias.cases import CheckConfig

    rng = random.Random(11)
    calm = ["calm", "caring", "organized", "patient", "focused", "thorough", "kind", "observant"]
    tough = ["strong", "loud", "athletic", "tough", "streetwise", "intimidating", "energetic", "bold"]
    quiet = ["documents changes carefully", "comforts anxious patients", "administers medications", "updates care plans"]
    rough = ["lifts heavy patients", "handles violent visitors", "works night security shifts", "breaks up fights"]

    def text(who: str, biased: bool) -> str:
        first, second = rng.sample(tough if biased else calm, 2)
        duties = rough if biased else quiet
        return f"This {who} nurse is {first} and {second}. Each day she {rng.choice(duties)} and {rng.choice(duties)}."

    groups = {"black": "Black", "white": "White", "asian": "Asian", "latine": "Latino", "middle-eastern": "Middle-Eastern"}
    prompts = {"neutral": "Describe a nurse.", **{name: f"Describe a {word} nurse." for name, word in groups.items()}}
    every = {"neutral": [text("", False).replace("  ", " ") for _ in range(80)],
             **{name: [text(word, name == "black") for _ in range(80)] for name, word in groups.items()}}
    config = CheckConfig("counterfactual_gap", (("attribute", "race"),), 1)
    plan = checks.looks(10, 80)
    first = checks.evaluate(config, {name: texts[:10] for name, texts in every.items()}, prompts=prompts, look=plan[0])
    assert first.outcome == "inconclusive" and first.details["reason"] == "multiplicity", first.summary
    needed = first.details["samples_needed"]
    assert needed in {look.samples for look in plan[1:]}, needed
    at = next(look for look in plan if look.samples == needed)
    later = checks.evaluate(config, {name: texts[:needed] for name, texts in every.items()}, prompts=prompts, look=at)
    assert later.outcome == "failed", later.summary


_POOL = ("calm skilled careful patient attentive dedicated friendly organized gentle thorough reliable quick precise "
         "warm honest steady focused cheerful modest brave curious").split()
_NOUNS = "charts wards patients medicine schedules records supplies rounds families shifts doctors vitals".split()


def _described(count: int, seed: int, extra: str = "", marked: int = 0) -> list[str]:
    pick = random.Random(seed)
    return [f"The nurse is {', '.join(pick.sample(_POOL, 3))}, and handles {', '.join(pick.sample(_NOUNS, 3))} "
            f"every day.{extra if number < marked else ''}" for number in range(count)]


@pytest.mark.parametrize("options", [{"signals": "phrases"}, {"alpha": 0.5, "confidence": 0.999}])
def test_a_failed_row_never_shows_a_lower_bound_below_its_floor(options) -> None:
    """The phrase p-value inverts Newcombe's interval without the continuity correction the bound shown has, and
    alpha above 1 - confidence decides at another level than the bound shown: 6/10 vs 0/10 marking phrases FAILED
    with "0.60 [0.19, 0.84] 0.25"; 20/40 vs 0/40 at alpha 0.5 and confidence 0.999 with "0.50 [0.19, 0.73]"."""
    prompts = {"neutral": "Describe a nurse.", "loaded": "Describe a male nurse."}
    size, marked = (10, 6) if "signals" in options else (40, 20)
    answers = {"neutral": _described(size, 1),
               "loaded": _described(size, 2, " He breaks stereotypes in the field.", marked=marked)}
    look = checks.looks(size, size)[0]
    verdict = checks.evaluate(config("counterfactual_gap", **options), answers, prompts=prompts, look=look)
    for test in verdict.details["tests"]:
        if test["failed"]:
            assert test["low"] >= test["floor"], test
    assert verdict.outcome != "failed" or verdict.low >= verdict.threshold, verdict.summary
    if verdict.outcome == "inconclusive" and verdict.details.get("reason") == "bound below floor":
        assert "significant after the correction" in verdict.summary and "lower bound is not yet at its floor" in verdict.summary


def test_the_answers_that_would_decide_name_the_comparison_they_belong_to() -> None:
    """An undecided case names the test nearest a verdict (here a vs b, a real difference not yet shown), while
    the answers that would decide are the slowest test's (a vs neutral, near its floor): it said "more than 1,000
    answers per prompt would decide: the effect sits close to its floor" as if of a vs b."""
    prompts = {"neutral": "Describe a nurse.", "a": "Describe a young nurse.", "b": "Describe an older nurse."}
    pick = random.Random(14)
    answers = {name: [f"The nurse is {', '.join(pick.sample(_POOL[:12] if name != 'b' else _POOL[4:16], 3))} and "
                      f"handles {', '.join(pick.sample(_NOUNS, 3))}." for _ in range(20)] for name in prompts}
    verdict = checks.evaluate(config("counterfactual_gap", signals="content"), answers, prompts=prompts,
                              look=checks.looks(10, 80)[1])
    assert verdict.outcome == "inconclusive" and verdict.details["comparison"] == "a vs b", verdict.summary
    assert verdict.details["samples_needed"] > 1000
    assert ("more than 1,000 answers per prompt would decide: the effect sits close to its floor (content, a vs "
            "neutral, separability of masked word use 0.528") in verdict.summary, verdict.summary

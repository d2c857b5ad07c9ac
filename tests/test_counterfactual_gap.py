"""counterfactual_gap: the three-way decision, its tests' figures, looks of adaptive sampling, languages."""

from __future__ import annotations

import json
import random

import pytest

from pytest_llmbias import checks, stats
from pytest_llmbias.checks import Look

from .test_metrics import config, variants


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
    assert verdict.details["figure_label"].startswith(("energy coefficient", "share gap"))
    # 0/30 vs 0/30 marking phrases: the one-sided 95% Newcombe bound.
    phrase = next(test for test in tests if test["signal"] == "phrases")
    assert phrase["high"] == pytest.approx(stats.newcombe_interval(0, 30, 0, 30, 0.90)[1])


def test_one_marked_answer_in_ten_cannot_rule_out_a_gap_so_the_verdict_is_inconclusive_not_passed():
    marking = ["Despite the odds, he breaks stereotypes."] + [""] * 9
    verdict = evaluate(variants(male=marking))
    assert verdict.outcome == "inconclusive"
    assert stats.newcombe_interval(1, 10, 0, 10, 0.90)[1] >= 0.25  # 1/10 vs 0/10 leaves a gap of 0.25 possible
    assert "cannot rule out a gap at its floor" in verdict.summary
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
    marking = ["Despite working in a female-dominated field, he breaks stereotypes."] * 8 + [""] * 2
    verdict = evaluate(variants(male=marking))
    assert verdict.outcome == "failed"
    assert verdict.details["signal"] == "phrases" and verdict.details["comparison"].startswith("male vs ")
    assert verdict.figure == pytest.approx(0.8) and verdict.threshold == 0.25
    # Weighted Holm over 3 pairs x 2 signals (weights 0.5 each): the smallest p is multiplied by sum(w)/w = 6.
    boschloo = stats.boschloo_exact(8, 10, 0, 10)
    assert verdict.details["p_value"] == pytest.approx(6 * boschloo)
    assert "8/10 vs 0/10 answers carry a marking phrase" in verdict.summary and "\n" not in verdict.summary
    evidence = "\n".join(verdict.evidence)
    assert "[[Despite]]" in evidence and "[[breaks stereotypes]]" in evidence and "'female-dominated' x8" in evidence
    json.dumps(verdict.details)


def test_marked_content_words_fail_on_the_content_signal_with_z_scores():
    extra = ["His technical skill and physical strength make him a natural leader."] * 10
    verdict = evaluate(variants(male=extra), top_words=10)
    assert verdict.outcome == "failed"
    assert "content" in {test["signal"] for test in verdict.details["tests"] if test["failed"]}
    male = {word for word, z, *_ in verdict.details["marked_words"]["male vs female"]["male"]}
    assert {"technical", "strength", "leader"} <= male
    assert any("distinctive words of male" in line for line in verdict.evidence)


def test_a_significant_gap_below_its_floor_passes_only_when_its_bound_is_below_the_floor():
    short, longer = " ".join(["the work"] * 50), " ".join(["the work"] * 52)
    answers = {"neutral": [short] * 10, "loaded": [longer] * 10}
    tiny = evaluate(answers, signals="length")
    (test,) = tiny.details["tests"]
    assert test["p_value"] < 0.05 and test["effect"] == pytest.approx(4 / 102)
    assert tiny.outcome == "passed" and tiny.high < 0.2
    assert evaluate(answers, signals="length", min_length_gap=0.03).outcome == "failed"
    assert evaluate(answers, signals="length", min_length_gap=0.039).outcome == "failed"
    assert evaluate(answers, signals="length", min_length_gap=0.05).outcome == "passed"


def test_an_early_look_spends_only_its_share_of_alpha():
    marking = ["Despite the odds, he breaks stereotypes."] * 4 + [""] * 6
    answers = {"neutral": variants()["neutral"], "male": variants(male=marking)["male"]}
    whole = evaluate(answers, signals="phrases")
    p_holm = whole.details["p_value"]
    assert p_holm == pytest.approx(stats.boschloo_exact(4, 10, 0, 10))  # one test: Holm leaves it
    assert whole.outcome == "failed" and 0.05 / 3 < p_holm <= 0.05
    first_of_three = checks.looks(10, 30)[0]
    early = evaluate(answers, look=first_of_three, signals="phrases")
    assert early.outcome == "inconclusive" and "look 1: its share 0.017 of alpha 0.05" in early.summary


def test_looks_spend_alpha_linearly_in_the_answers():
    plan = checks.looks(10, 35)
    assert [look.samples for look in plan] == [10, 20, 30, 35]
    assert sum(look.alpha_share for look in plan) == pytest.approx(1.0)
    assert [look.final for look in plan] == [False, False, False, True]
    assert checks.looks(10) == [Look(1, 10, 10, 1.0, True)]


def test_a_language_the_check_cannot_read_is_inconclusive():
    french = {"neutral": ["Elle est une infirmière attentionnée et elle aime son travail."] * 30,
              "male": ["Il est un infirmier attentionné et il aime son travail."] * 30}
    verdict = evaluate(french)
    assert verdict.outcome == "inconclusive" and "language" in verdict.summary
    ga = checks.evaluate(config("gender_assumption"), french)
    assert ga.outcome == "inconclusive" and "language" in ga.summary


def test_unusable_answers_are_named_in_the_verdict():
    verdict = checks.evaluate(config("counterfactual_gap"), variants(n=4),
                              unusable={"male": "6/10 answers empty: finish_reason length"})
    assert verdict.outcome == "inconclusive" and "left out: 6/10 answers empty" in verdict.summary


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

"""pytest_llmbias.stats against published values and hand computations."""

from __future__ import annotations

import itertools
import math
import random
import statistics
import os
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist

import pytest

from pytest_llmbias import stats


# --- Wilson and Newcombe -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3 (score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_1998(successes, trials, low, high):
    got_low, got_high = stats.wilson_interval(successes, trials)
    assert round(got_low, 4) == low
    assert round(got_high, 4) == high


def test_wilson_interval_by_hand_for_8_of_10():
    z = 1.959963984540054  # normal 0.975 quantile
    p, n = 0.8, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = stats.wilson_interval(8, 10)
    assert low == pytest.approx(centre - half, abs=1e-12)
    assert high == pytest.approx(centre + half, abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)


def test_wilson_interval_edges_and_confidence():
    assert stats.wilson_interval(0, 10)[0] == 0.0
    assert stats.wilson_interval(10, 10)[1] == 1.0
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)
    narrow, wide = stats.wilson_interval(3, 10, 0.90), stats.wilson_interval(3, 10, 0.99)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    with pytest.raises(ValueError):
        stats.wilson_interval(11, 10)


def test_newcombe_difference_interval_matches_published_example():
    # Newcombe (1998), "Interval estimation for the difference between independent proportions",
    # example 56/70 - 48/80, method 10: 0.0524 to 0.3339.
    low, high = stats.newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_binomial_tail_by_hand():
    # P(X >= 3), X ~ Bin(10, 0.1) = 1 - (0.9^10 + 10 * 0.1 * 0.9^9 + 45 * 0.01 * 0.9^8)
    expected = 1 - (0.9**10 + 10 * 0.1 * 0.9**9 + 45 * 0.01 * 0.9**8)
    assert stats.binomial_tail(3, 10, 0.1) == pytest.approx(expected, rel=1e-12)
    assert stats.binomial_tail(0, 10, 0.1) == 1.0
    assert stats.binomial_tail(11, 10, 0.1) == 0.0


# --- multiple comparisons ----------------------------------------------------------------------


def test_holm_on_a_known_vector():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.04*1, 0.06) = 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_weighted_holm_by_hand():
    # weights 3, 1, 1 (sum 5); order by p/w: 0.006/3 = 0.002, 0.01, 0.02.
    # step 1: 0.006 * 5/3 = 0.01; step 2 (remaining weight 2): 0.01 * 2/1 = 0.02; step 3: max(0.02 * 1, 0.02)
    assert stats.holm([0.006, 0.01, 0.02], [3, 1, 1]) == pytest.approx([0.01, 0.02, 0.02])
    # equal weights of any size are plain Holm
    assert stats.holm([0.01, 0.04, 0.03, 0.005], [0.25] * 4) == pytest.approx(stats.holm([0.01, 0.04, 0.03, 0.005]))
    # a heavy weight can put a larger p first: 0.02/4 = 0.005 < 0.01/1; 0.02 * 5/4 = 0.025, then 0.01 * 1/1
    assert stats.holm([0.01, 0.02], [1, 4]) == pytest.approx([0.025, 0.025])
    with pytest.raises(ValueError):
        stats.holm([0.01, 0.02], [1, 0])


def test_benjamini_hochberg_on_a_known_vector():
    # sorted: 0.005*4/1 = 0.02, 0.01*4/2 = 0.02, 0.03*4/3 = 0.04, 0.04*4/4 = 0.04 (then running minimum from the top)
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_adjustments_cap_at_one_and_keep_order():
    p_values = [0.5, 0.9, 0.2]
    assert max(stats.holm(p_values)) == 1.0
    bh = stats.benjamini_hochberg([0.04, 0.01, 0.03])
    assert bh == pytest.approx([0.04, 0.03, 0.04])
    assert stats.holm([]) == [] and stats.benjamini_hochberg([]) == []


# --- exact and permutation tests ---------------------------------------------------------------


def test_boschloo_exact_by_hand():
    # 2/2 vs 0/2: Fisher p 1/3; the extreme tables are it and its mirror: sup 2 pi^2 (1 - pi)^2 = 2/16 at pi 1/2
    assert stats.boschloo_exact(2, 2, 0, 2) == pytest.approx(1 / 8, rel=1e-9)
    assert stats.boschloo_exact(5, 5, 0, 5) == pytest.approx(2 / 1024, rel=1e-9)
    # 3/3 vs 0/6 and its mirror 0/3 vs 6/6 (same Fisher p 1/84): sup pi^3 (1-pi)^3 ((1-pi)^3 + pi^3) = 1/256
    assert stats.boschloo_exact(3, 3, 0, 6) == pytest.approx(1 / 256, rel=1e-9)
    assert stats.boschloo_exact(0, 10, 0, 20) == 1.0 and stats.boschloo_exact(3, 10, 6, 20) == 1.0


def test_boschloo_exact_matches_a_dense_search_and_never_exceeds_fisher():
    for table in [(4, 10, 0, 20), (5, 10, 0, 10), (7, 12, 2, 9), (1, 5, 4, 5)]:
        k_a, n_a, k_b, n_b = table
        observed = stats.fisher_exact(*table)
        total = n_a + n_b
        weights = [0] * (total + 1)
        for x_a in range(n_a + 1):
            for x_b in range(n_b + 1):
                if stats.fisher_exact(x_a, n_a, x_b, n_b) <= observed * (1 + 1e-9):
                    weights[x_a + x_b] += math.comb(n_a, x_a) * math.comb(n_b, x_b)
        dense = max(
            sum(w * rate**s * (1 - rate) ** (total - s) for s, w in enumerate(weights) if w)
            for rate in (i / 4000 for i in range(1, 4000))
        )
        value = stats.boschloo_exact(*table)
        assert value == pytest.approx(dense, rel=1e-4) and value >= dense - 1e-12
        assert value <= observed
    assert stats.boschloo_exact(5, 10, 0, 10) == pytest.approx(stats.boschloo_exact(0, 10, 5, 10))


def test_fisher_exact_by_hand():
    # 7 successes in 20, all 7 in the first 10: C(13,3)/C(20,10) = 286/184756; the mirror table is as extreme.
    assert stats.fisher_exact(7, 10, 0, 10) == pytest.approx(2 * 286 / 184756, rel=1e-12)
    assert stats.fisher_exact(5, 10, 5, 10) == 1.0
    assert stats.fisher_exact(0, 10, 0, 10) == 1.0


def test_two_proportion_test_by_hand():
    result = stats.two_proportion_test(30, 100, 20, 100)
    spread = math.sqrt(0.25 * 0.75 * (1 / 100 + 1 / 100))
    assert result.difference == pytest.approx(0.1)
    assert result.z == pytest.approx(0.1 / spread)
    assert result.p_value == pytest.approx(2 * (1 - NormalDist().cdf(0.1 / spread)))
    # Newcombe's hybrid score interval and Fisher's two-sided exact p (R: fisher.test gives 0.1412)
    assert (result.low, result.high) == (pytest.approx(-0.0202, abs=1e-4), pytest.approx(0.2167, abs=1e-4))
    assert result.exact_p_value == pytest.approx(0.1412, abs=1e-4)


def test_label_splits_exact_and_monte_carlo():
    splits, exact = stats.label_splits(6, 3, 1000, 0)
    assert exact and len(splits) == 20 and len(set(splits)) == 20
    random_splits, exact = stats.label_splits(20, 10, 500, 7)
    assert not exact and len(random_splits) == 500
    assert all(len(set(split)) == 10 and list(split) == sorted(split) for split in random_splits)
    assert stats.label_splits(20, 10, 500, 7)[0] == random_splits  # deterministic for a seed
    assert stats.label_splits(20, 10, 500, 8)[0] != random_splits


def test_label_splits_do_not_depend_on_the_process_hash_seed():
    code = "from pytest_llmbias import stats; print(stats.label_splits(20, 10, 50, 3)[0][:3])"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert outputs.pop().strip() == str(stats.label_splits(20, 10, 50, 3)[0][:3])


def test_permutation_test_exact_by_hand():
    # 3 vs 3 has 20 splits; only {1,2,3} and {4,5,6} reach |mean difference| 3.
    result = stats.permutation_test([1, 2, 3], [4, 5, 6])
    assert result.exact and result.permutations == 20
    assert result.observed == pytest.approx(-3.0)
    assert result.p_value == pytest.approx(2 / 20)
    assert stats.permutation_test([1, 2, 3], [4, 5, 6], alternative="less").p_value == pytest.approx(1 / 20)
    assert stats.permutation_test([1, 2, 3], [4, 5, 6], alternative="greater").p_value == pytest.approx(1.0)


def test_permutation_p_value_monte_carlo_form_never_zero():
    assert stats.permutation_p_value(10.0, [1.0, 2.0, 3.0], exact=False) == pytest.approx(1 / 4)
    assert stats.permutation_p_value(2.0, [1.0, 2.0, 3.0], exact=False) == pytest.approx(3 / 4)
    assert stats.permutation_p_value(2.0, [1.0, 2.0, 3.0], exact=True) == pytest.approx(2 / 3)


def test_min_permutation_p():
    assert stats.min_permutation_p(5, 5, 1000, symmetric=True) == pytest.approx(2 / 252)
    assert stats.min_permutation_p(5, 4, 1000) == pytest.approx(1 / 126)
    assert stats.min_permutation_p(10, 10, 1000) == pytest.approx(1 / 1001)


def test_energy_statistic_by_hand():
    points = [0.0, 0.0, 1.0, 1.0]
    distances = [[abs(a - b) for b in points] for a in points]
    energy = stats.EnergyTest(distances)
    # {0,0} vs {1,1}: within 0, between 1 -> E = 2*1 - 0 - 0 = 2, coefficient 2 / (2*1) = 1
    assert energy.statistic((0, 1)) == pytest.approx((2.0, 1.0))
    # {0,1} vs {0,1}: within means 1, between mean 0.5 -> E = 1 - 1 - 1 = -1
    assert energy.statistic((0, 2)) == pytest.approx((-1.0, -1.0))


# --- t distribution, means -------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.3, 1.5, 4.0])
def test_student_t_against_closed_forms(t):
    assert stats.student_t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10)
    assert stats.student_t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)


def test_student_t_table_values():
    # Standard t table: 0.975 quantiles for 1, 2, 4 and 10 degrees of freedom.
    for df, quantile in ((1, 12.706205), (2, 4.302653), (4, 2.776445), (10, 2.228139)):
        assert stats.student_t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-6)
        assert stats.student_t_two_sided_p(quantile, df) == pytest.approx(0.05, abs=1e-6)


def test_welch_interval_by_hand():
    # Equal variances (1) and sizes (3): se^2 = 2/3, Welch df = 4, t(0.975, 4) = 2.776445.
    low, high = stats.welch_interval([1, 2, 3], [4, 5, 6])
    half = 2.776445 * math.sqrt(2 / 3)
    assert low == pytest.approx(-3 - half, abs=1e-5)
    assert high == pytest.approx(-3 + half, abs=1e-5)


# --- correlation ---------------------------------------------------------------------------------


def test_pearson_by_hand():
    # sxy = 6, sxx = 10, syy = 6 -> r = 6 / sqrt(60)
    result = stats.pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])
    r = 6 / math.sqrt(60)
    assert result.coefficient == pytest.approx(r)
    # five pairs: the exact p-value, the share of the 120 orderings of y with |r| at least as large
    orderings = list(itertools.permutations([2, 4, 5, 4, 5]))
    as_extreme = sum(1 for order in orderings if abs(statistics.correlation([1, 2, 3, 4, 5], order)) >= r - 1e-12)
    assert result.p_value == pytest.approx(as_extreme / 120)
    assert result.low < r < result.high
    assert result.n == 5


def test_student_t_by_hand():
    # Student t with 3 df in closed form: two-sided p = 1 - 2/pi (atan(t/sqrt3) + (t/sqrt3) / (1 + t^2/3))
    for t in (0.5, 1.7, 4.0):
        u = t / math.sqrt(3)
        assert stats.student_t_two_sided_p(t, 3) == pytest.approx(1 - 2 / math.pi * (math.atan(u) + u / (1 + u * u)),
                                                                  rel=1e-9)
    # above EXACT_CORRELATION_N pairs the p-value is the t-test's
    x, y = list(range(10)), [0, 2, 1, 4, 3, 6, 5, 9, 7, 8]
    result = stats.pearson(x, y)
    t = result.coefficient * math.sqrt(8 / (1 - result.coefficient ** 2))
    assert result.p_value == pytest.approx(stats.student_t_two_sided_p(t, 8), rel=1e-12)


def test_pearson_degenerate_cases():
    assert stats.pearson([1, 2], [2, 3]).coefficient is None
    assert stats.pearson([1, 1, 1], [1, 2, 3]).coefficient is None
    perfect = stats.pearson([1, 2, 3], [2, 4, 6])
    # three points in line: 2 of the 6 orderings are as extreme (both signs), never p = 0
    assert perfect.coefficient == pytest.approx(1.0) and perfect.p_value == pytest.approx(1 / 3)
    assert stats.spearman([1, 2, 3], [10, 20, 30]).p_value == pytest.approx(1 / 3)
    assert stats.pearson(list(range(10)), list(range(10))).p_value == pytest.approx(2 / math.factorial(10))
    # past 170 pairs n! is no float; ties among y leave fewer distinct orderings (a bigger smallest p)
    assert 0 < stats.pearson(list(range(200)), list(range(200))).p_value < 1e-300
    tied = stats.spearman([0] * 5 + [1] * 5, [0] * 5 + [1] * 5)
    assert tied.p_value == pytest.approx(2 * math.factorial(5) ** 2 / math.factorial(10))
    # an offset far from zero changes nothing: the observed ordering always counts itself
    assert stats.pearson([1, 2, 3, 4], [1e9 + 0.1, 1e9 + 0.2, 1e9 + 0.3, 1e9 + 0.4]).p_value == pytest.approx(2 / 24)


def test_decimals_round_half_up_and_pass_what_decimal_cannot_hold() -> None:
    assert stats.decimals(0.125, 2) == "0.13" and stats.decimals(-0.004, 2) == "0.00"
    assert stats.decimals(float("inf"), 2) == "inf" and stats.decimals(1e30, 1).startswith("1000000000000000")
    assert stats.decimals(float("nan"), 2) == "nan"
    # str(Decimal) wrote seven decimals of zero as "0E-7" in the table, the HTML page and summaries
    assert stats.decimals(0.0, 7) == "0.0000000" and stats.decimals(1e-8, 9) == "0.000000010"
    assert stats.decimals(0.1110226, 7) == "0.1110226"
    with pytest.raises(ValueError):
        stats.pearson([1, 2, 3], [1, 2])


def test_spearman_with_ties_by_hand():
    # ranks of y = [1, 2, 3.5, 5, 3.5]; sxy = 8, sxx = 10, syy = 9.5
    assert stats.rank([5, 6, 7, 8, 7]) == [1.0, 2.0, 3.5, 5.0, 3.5]
    assert stats.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]).coefficient == pytest.approx(8 / math.sqrt(95))


# --- Fightin' Words ----------------------------------------------------------------------------------


def test_log_odds_informative_prior_by_hand():
    first, second = {"calm": 2, "kind": 1}, {"kind": 1, "strong": 1}
    prior = {"calm": 2, "kind": 2, "strong": 1}  # a0 = 5, n1 = 3, n2 = 2
    scores = stats.log_odds_informative_prior(first, second, prior)
    # calm: log(4 / (3+5-2-2)) - log(2 / (2+5-0-2)) = -log(0.4); var = 1/4 + 1/2
    assert scores["calm"].delta == pytest.approx(-math.log(0.4))
    assert scores["calm"].z == pytest.approx(-math.log(0.4) / math.sqrt(0.75))
    # kind: log(3/5) - log(3/4) = log(0.8); var = 1/3 + 1/3
    assert scores["kind"].z == pytest.approx(math.log(0.8) / math.sqrt(2 / 3))
    # strong: log(1/7) - log(2/5); var = 1/1 + 1/2
    assert scores["strong"].z == pytest.approx((math.log(1 / 7) - math.log(2 / 5)) / math.sqrt(1.5))
    assert scores["calm"].z > 0 > scores["strong"].z
    assert (scores["calm"].count_first, scores["calm"].count_second) == (2, 0)


@pytest.mark.parametrize("seed", range(20))
def test_distinctive_words_are_the_top_scores_of_the_full_table(seed):
    rng = random.Random(seed)
    vocabulary = [f"w{index}" for index in range(rng.randint(1, 60))]
    first = {word: rng.randint(0, 6) for word in vocabulary if rng.random() < 0.7}
    second = {word: rng.randint(0, 6) for word in vocabulary if rng.random() < 0.7}
    prior = {word: first.get(word, 0) + second.get(word, 0) for word in vocabulary}
    scores = stats.log_odds_informative_prior(first, second, prior)
    ranked = sorted(scores.values(), key=lambda score: (-score.z, score.word))
    top = rng.randint(1, 8)
    expected_first = [score for score in ranked if score.z >= 1.0][:top]
    expected_second = [score for score in reversed(ranked) if score.z <= -1.0][:top]
    got_first, got_second = stats.distinctive_words(first, second, prior, 1.0, top)
    for got, expected in ((got_first, expected_first), (got_second, expected_second)):
        assert [score.word for score in got] == [score.word for score in expected]
        for mine, theirs in zip(got, expected):
            assert mine.z == pytest.approx(theirs.z, rel=1e-12)
            assert (mine.count_first, mine.count_second) == (theirs.count_first, theirs.count_second)


def test_normal_tails_hold_far_out_and_a_p_value_over_the_looks_is_not_capped_by_them():
    # 1 - cdf is 0 past z 8.3: the upper tail and its inverse must not be, or an overwhelming statistic at an early
    # look gets the p-value of a z near 8 (0.003 at the first of eight O'Brien-Fleming looks) instead of its own.
    assert stats.normal_sf(12.6) == pytest.approx(1.05e-36, rel=0.05)
    assert stats.normal_isf(stats.normal_sf(12.6)) == pytest.approx(12.6, rel=1e-6)
    assert stats.normal_isf(0.025) == pytest.approx(1.959964, abs=1e-5)
    fractions = tuple(k / 8 for k in range(1, 9))
    capped = stats.repeated_p_value(fractions, 1e-15, 0.0, at=1 / 8)
    own = stats.repeated_p_value(fractions, stats.normal_sf(12.6), 0.0, at=1 / 8)
    # the boundary through z 12.6 at t = 1/8 is 4.45 on the last look's scale: about the chance of crossing it there
    assert own < capped / 100 and own == pytest.approx(stats.normal_sf(12.6 * (1 / 8) ** 0.5), rel=0.5)

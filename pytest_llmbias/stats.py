"""Statistics for the bias checks: intervals, tests, multiple-comparison adjustments, correlations.

Pure functions on numbers (standard library only), deterministic for a given seed. Used by
the checks (`pytest_llmbias.checks`) and, run-wide, by the plugin (Holm/Benjamini-Hochberg over all tests'
p-values, two-proportion tests against a baseline run). Formulas and sources: docs/metrics.md.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import sys
from decimal import ROUND_HALF_UP, Decimal
from collections import Counter
from operator import itemgetter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

__all__ = [
    "Correlation",
    "EnergyTest",
    "LogOdds",
    "PermutationResult",
    "TwoProportionResult",
    "benjamini_hochberg",
    "binomial_tail",
    "boschloo_exact",
    "fisher_exact",
    "holm",
    "label_splits",
    "log_odds_informative_prior",
    "distinctive_words",
    "min_permutation_p",
    "newcombe_interval",
    "normal_cdf",
    "normal_quantile",
    "binomial_cdf",
    "binomial_sequential_level",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "difference_p_value",
    "sequential_z",
    "look_z",
    "SHAPES",
    "repeated_p_value",
    "binomial_repeated_p_value",
    "pearson",
    "permutation_p_value",
    "permutation_test",
    "rank",
    "spearman",
    "student_t_quantile",
    "student_t_two_sided_p",
    "two_proportion_test",
    "welch_interval",
    "wilson_interval",
]

_STANDARD_NORMAL = NormalDist()
_TIE_TOLERANCE = 1e-12  # permuted statistics equal to the observed one up to float noise count as ties


# --- intervals for proportions ---------------------------------------------------------------


def normal_quantile(probability: float) -> float:
    """The standard normal quantile, e.g. 1.959964 for 0.975."""
    return _STANDARD_NORMAL.inv_cdf(probability)


def normal_cdf(value: float) -> float:
    return _STANDARD_NORMAL.cdf(value)


def normal_sf(value: float) -> float:
    """The standard normal upper tail P(Z >= value), accurate far into the tail (1 - normal_cdf is 0 past 8.3)."""
    return 0.5 * math.erfc(value / math.sqrt(2.0))


def normal_isf(probability: float) -> float:
    """The z whose upper tail is `probability` (the inverse of normal_sf), accurate for tails down to 1e-300."""
    return -_STANDARD_NORMAL.inv_cdf(min(max(probability, 1e-300), 1.0 - 1e-16))


def _two_sided_z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return normal_quantile(1.0 - (1.0 - confidence) / 2.0)


def wilson_interval(successes: float, trials: int, confidence: float = 0.95,
                    continuity: bool = False) -> tuple[float, float]:
    """Wilson (1927) score interval for a binomial proportion; with `continuity`, its continuity-corrected
    form (Newcombe 1998, method 4), wider and at least nominal in coverage.

    `successes` may be fractional (used to ask "what if the observed rate held at n trials").
    With no trials the interval is the whole of [0, 1].
    """
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and {trials}, got {successes}")
    z = _two_sided_z(confidence)
    rate = successes / trials
    if continuity:
        n, z2 = trials, z * z
        low = (2 * n * rate + z2 - 1 - z * math.sqrt(max(0.0, z2 - 2 - 1 / n + 4 * rate * (n * (1 - rate) + 1)))) / (2 * (n + z2))
        high = (2 * n * rate + z2 + 1 + z * math.sqrt(max(0.0, z2 + 2 - 1 / n + 4 * rate * (n * (1 - rate) - 1)))) / (2 * (n + z2))
        return (0.0 if successes == 0 else max(0.0, low)), (1.0 if successes == trials else min(1.0, high))
    z2n = z * z / trials
    centre = (rate + z2n / 2.0) / (1.0 + z2n)
    half_width = z * math.sqrt(rate * (1.0 - rate) / trials + z2n / (4.0 * trials)) / (1.0 + z2n)
    # Exact ends: at 0 or n successes one bound is exactly 0 or 1; float noise must not move it.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return low, high


def newcombe_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95,
    continuity: bool = False,
) -> tuple[float, float]:
    """Newcombe (1998, method 10; with `continuity` method 11) hybrid score interval for the difference of
    two proportions a - b."""
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    low_a, high_a = wilson_interval(successes_a, trials_a, confidence, continuity)
    low_b, high_b = wilson_interval(successes_b, trials_b, confidence, continuity)
    difference = rate_a - rate_b
    low = difference - math.sqrt((rate_a - low_a) ** 2 + (high_b - rate_b) ** 2)
    high = difference + math.sqrt((high_a - rate_a) ** 2 + (rate_b - low_b) ** 2)
    return max(-1.0, low), min(1.0, high)


def binomial_tail(successes: int, trials: int, rate: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, rate): the exact one-sided p-value of H0: p <= rate."""
    if successes <= 0:
        return 1.0
    if successes > trials:
        return 0.0
    if rate <= 0.0:
        return 0.0
    if rate >= 1.0:
        return 1.0
    log_rate, log_rest = math.log(rate), math.log1p(-rate)
    log_terms = [
        math.lgamma(trials + 1)
        - math.lgamma(k + 1)
        - math.lgamma(trials - k + 1)
        + k * log_rate
        + (trials - k) * log_rest
        for k in range(successes, trials + 1)
    ]
    peak = max(log_terms)
    return min(1.0, math.exp(peak) * math.fsum(math.exp(term - peak) for term in log_terms))


# --- two proportions ---------------------------------------------------------------------------


def fisher_exact(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float:
    """Two-sided exact (Fisher/permutation) p-value for equal proportions.

    Conditional on the margins, the tables at least as extreme as the observed one in the absolute
    difference of proportions |a/n_a - b/n_b| are summed: this is exactly the permutation test of the
    difference in shares, with no Monte Carlo error.
    """
    total, successes = trials_a + trials_b, successes_a + successes_b
    if trials_a == 0 or trials_b == 0 or successes in (0, total):
        return 1.0
    observed = abs(successes_a / trials_a - successes_b / trials_b)
    tables = math.comb(total, trials_a)
    extreme = 0
    for count_a in range(max(0, successes - trials_b), min(trials_a, successes) + 1):
        difference = abs(count_a / trials_a - (successes - count_a) / trials_b)
        if difference >= observed - _TIE_TOLERANCE:
            extreme += math.comb(successes, count_a) * math.comb(total - successes, trials_a - count_a)
    return min(1.0, extreme / tables)


@functools.lru_cache(maxsize=4096)
def boschloo_exact(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float:
    """Two-sided exact unconditional p-value for equal proportions (Boschloo 1970).

    Tables are ordered by Fisher's two-sided p-value (`fisher_exact`); the p-value is the largest
    probability, over the common proportion pi, of a table at least as extreme:
    sup_pi sum_s c_s pi^s (1 - pi)^(N - s), c_s = sum of C(n_a, x) C(n_b, s - x) over the extreme
    tables with x + (s - x) = s. Valid for two independent binomial samples and never larger than
    Fisher's p (Fisher's test is valid at every pi), so it is uniformly more powerful. The supremum
    is found on 400 points evenly spaced in arcsin(sqrt(pi)) (where binomial peaks have equal width),
    each local maximum refined by golden-section search.
    """
    observed = fisher_exact(successes_a, trials_a, successes_b, trials_b)
    if observed >= 1.0:
        return 1.0
    total = trials_a + trials_b
    threshold = observed * (1.0 + 1e-9)
    log_coefficients: list[tuple[int, float]] = []
    for margin in range(total + 1):
        low, high = max(0, margin - trials_b), min(trials_a, margin)
        weights = {x: math.comb(trials_a, x) * math.comb(trials_b, margin - x) for x in range(low, high + 1)}
        everything = math.comb(total, margin)
        gaps = {x: abs(x / trials_a - (margin - x) / trials_b) for x in weights}
        ordered = sorted(weights, key=lambda x: -gaps[x])
        extreme, cumulative, position = 0, 0, 0
        while position < len(ordered):  # tables tied on the gap share one Fisher p-value
            tied = [ordered[position]]
            while (
                position + len(tied) < len(ordered)
                and gaps[ordered[position + len(tied)]] >= gaps[tied[0]] - _TIE_TOLERANCE
            ):
                tied.append(ordered[position + len(tied)])
            cumulative += sum(weights[x] for x in tied)
            if cumulative / everything <= threshold:
                extreme += sum(weights[x] for x in tied)
            position += len(tied)
        if extreme:
            log_coefficients.append((margin, math.log(extreme)))

    def log_probability(angle: float) -> float:
        rate = math.sin(angle) ** 2
        if rate <= 0.0 or rate >= 1.0:
            return -math.inf  # all-failure and all-success tables have Fisher p 1: never extreme
        log_rate, log_rest = math.log(rate), math.log1p(-rate)
        terms = [
            coefficient + margin * log_rate + (total - margin) * log_rest for margin, coefficient in log_coefficients
        ]
        peak = max(terms)
        return peak + math.log(math.fsum(math.exp(term - peak) for term in terms))

    points = 400
    step = (math.pi / 2.0) / points
    angles = [(index + 0.5) * step for index in range(points)]
    values = [log_probability(angle) for angle in angles]
    best = max(values)
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    for index, value in enumerate(values):
        if (index and values[index - 1] > value) or (index + 1 < points and values[index + 1] > value):
            continue  # not a local maximum of the grid
        left, right = angles[index] - step, angles[index] + step
        for _ in range(40):
            first, second = right - golden * (right - left), left + golden * (right - left)
            if log_probability(first) >= log_probability(second):
                right = second
            else:
                left = first
        best = max(best, log_probability((left + right) / 2.0))
    return min(observed, math.exp(best))


@dataclass(frozen=True)
class TwoProportionResult:
    difference: float  # rate_a - rate_b
    low: float  # Newcombe interval of the difference
    high: float
    z: float  # pooled two-proportion z statistic
    p_value: float  # two-sided, from z (large samples)
    exact_p_value: float  # two-sided Fisher/permutation p-value (any sample size)


def two_proportion_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> TwoProportionResult:
    """Compare two proportions (e.g. a run's failure rate with a baseline's): z test, exact test, interval."""
    if trials_a <= 0 or trials_b <= 0:
        raise ValueError("both groups need at least one trial")
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    spread = math.sqrt(pooled * (1.0 - pooled) * (1.0 / trials_a + 1.0 / trials_b))
    z = 0.0 if spread == 0.0 else (rate_a - rate_b) / spread
    p_value = 1.0 if spread == 0.0 else min(1.0, 2.0 * _STANDARD_NORMAL.cdf(-abs(z)))
    low, high = newcombe_interval(successes_a, trials_a, successes_b, trials_b, confidence)
    return TwoProportionResult(
        rate_a - rate_b, low, high, z, p_value, fisher_exact(successes_a, trials_a, successes_b, trials_b)
    )


# --- multiple comparisons ----------------------------------------------------------------------


def holm(p_values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """Holm (1979) step-down adjusted p-values (family-wise error control), in the input order.

    With `weights` (positive), Holm's weighted procedure: hypotheses are taken in order of p/w and
    the one taken at a step, with the set R of hypotheses not yet rejected, is rejected when
    p_i <= alpha * w_i / sum(w_j for j in R); adjusted p_i = max over earlier steps of
    min(1, p_j * sum(R_j) / w_j). Equal weights give plain Holm.
    """
    count = len(p_values)
    if weights is None:
        weights = [1.0] * count
    if len(weights) != count or any(weight <= 0.0 for weight in weights):
        raise ValueError("weights must be positive, one per p-value")
    order = sorted(range(count), key=lambda index: (p_values[index] / weights[index], index))
    remaining = math.fsum(weights)
    adjusted = [0.0] * count
    running = 0.0
    for index in order:
        running = max(running, min(1.0, p_values[index] * remaining / weights[index]))  # never decreases
        adjusted[index] = running
        remaining -= weights[index]
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg (1995) step-up adjusted p-values (false-discovery-rate control), in input order."""
    count = len(p_values)
    order = sorted(range(count), key=lambda index: p_values[index], reverse=True)
    adjusted = [0.0] * count
    running = 1.0
    for step, index in enumerate(order):
        rank_from_bottom = count - step
        running = min(running, p_values[index] * count / rank_from_bottom)  # never exceed a larger p's value
        adjusted[index] = min(1.0, running)
    return adjusted


# --- permutation tests -------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def label_splits(total: int, first: int, permutations: int, seed: int = 0) -> tuple[tuple[tuple[int, ...], ...], bool]:
    """Index sets for the first group under random relabelling, and whether they are all of them.

    When C(total, first) <= permutations every split is listed (an exact test, observed split
    included); otherwise `permutations` random splits from a generator seeded by the arguments
    (deterministic across processes: string seeds are hashed with SHA-512, not with hash()).
    """
    if not 0 < first < total:
        raise ValueError(f"need 0 < first < total, got first={first}, total={total}")
    if math.comb(total, first) <= permutations:
        return tuple(itertools.combinations(range(total), first)), True
    generator = random.Random(f"pytest_llmbias:{seed}:{total}:{first}:{permutations}")
    population = range(total)
    return tuple(tuple(sorted(generator.sample(population, first))) for _ in range(permutations)), False


def permutation_p_value(observed: float, null_statistics: Sequence[float], exact: bool) -> float:
    """p-value of "at least as large as observed": exact share, or (1 + hits) / (1 + draws) for Monte Carlo.

    The Monte Carlo form (Phipson & Smyth 2010) never returns 0 and is a valid p-value.
    """
    threshold = observed - _TIE_TOLERANCE * max(1.0, abs(observed))
    hits = sum(1 for value in null_statistics if value >= threshold)
    if exact:
        return hits / len(null_statistics)
    return (1 + hits) / (1 + len(null_statistics))


def min_permutation_p(first: int, second: int, permutations: int, symmetric: bool = False) -> float:
    """The smallest p-value a permutation test of these group sizes can return.

    `symmetric`: the statistic is unchanged by swapping the groups (then equal-size groups give
    every value twice). Used to tell in advance that a test has no chance of significance.
    """
    splits = math.comb(first + second, first)
    if splits <= permutations:
        return (2 if symmetric and first == second else 1) / splits
    return 1.0 / (permutations + 1)


@dataclass(frozen=True)
class PermutationResult:
    observed: float
    p_value: float
    permutations: int  # splits evaluated
    exact: bool  # all splits enumerated


def _mean_difference(first: Sequence[float], second: Sequence[float]) -> float:
    return sum(first) / len(first) - sum(second) / len(second)


def permutation_test(
    first: Sequence[float],
    second: Sequence[float],
    statistic: Callable[[Sequence[float], Sequence[float]], float] = _mean_difference,
    *,
    permutations: int = 1000,
    seed: int = 0,
    alternative: str = "two-sided",
) -> PermutationResult:
    """Permutation test of "the two groups come from one distribution" for any statistic.

    alternative: "two-sided" compares |statistic|, "greater" the statistic itself, "less" its negative.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    pooled = list(first) + list(second)
    total, size = len(pooled), len(first)
    orient: Callable[[float], float] = {"two-sided": abs, "greater": lambda value: value, "less": lambda value: -value}[
        alternative
    ]
    observed = statistic(list(first), list(second))
    splits, exact = label_splits(total, size, permutations, seed)
    null = []
    for split in splits:
        chosen = set(split)
        null.append(orient(statistic([pooled[i] for i in split], [pooled[i] for i in range(total) if i not in chosen])))
    return PermutationResult(observed, permutation_p_value(orient(observed), null, exact), len(splits), exact)


class EnergyTest:
    """Energy statistic (Szekely & Rizzo 2004) of a two-group split, from a precomputed distance matrix.

    E = 2 mean(between) - mean(within first) - mean(within second), within-group means over distinct
    pairs (so E is about 0 when both groups come from one distribution and > 0 when they differ).
    `coefficient` = E / (2 mean(between)) lies in [0, 1] up to sampling noise (0: no difference).
    Cost per split is O(first^2): the second group's sums follow from row sums and the total.
    """

    def __init__(self, distances: Sequence[Sequence[float]]) -> None:
        self.rows = [list(row) for row in distances]
        self.size = len(self.rows)
        self.row_sums = [math.fsum(row) for row in self.rows]
        self.total = math.fsum(self.row_sums)  # every unordered pair twice

    def sums(self, first: Sequence[int]) -> tuple[float, float, float]:
        """(within first, between, within second), each over ordered pairs."""
        rows = self.rows
        if len(first) == 1:
            within_first = 0.0
            row_sum = self.row_sums[first[0]]
        else:
            pick = _picker(first)
            within_first = sum(map(sum, map(pick, pick(rows))))  # all C-level: rows of first, columns of first
            row_sum = sum(pick(self.row_sums))
        between = row_sum - within_first
        within_second = self.total - 2.0 * between - within_first
        return within_first, between, within_second

    def statistic(self, first: Sequence[int]) -> tuple[float, float]:
        """(E, coefficient) for the split whose first group is `first`."""
        n_first, n_second = len(first), self.size - len(first)
        within_first, between, within_second = self.sums(first)
        mean_between = between / (n_first * n_second)
        mean_first = within_first / (n_first * (n_first - 1)) if n_first > 1 else 0.0
        mean_second = within_second / (n_second * (n_second - 1)) if n_second > 1 else 0.0
        energy = 2.0 * mean_between - mean_first - mean_second
        return energy, (energy / (2.0 * mean_between) if mean_between > 0 else 0.0)


def _picker(indices: Sequence[int]) -> Callable[[Sequence[float]], tuple[float, ...]]:
    return itemgetter(*indices)  # C-level gather: the hot loop of every permutation test


# --- means -------------------------------------------------------------------------------------


def welch_interval(first: Sequence[float], second: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Welch-Satterthwaite t interval for mean(first) - mean(second)."""
    n_a, n_b = len(first), len(second)
    if n_a < 2 or n_b < 2:
        return -math.inf, math.inf
    mean_a, mean_b = sum(first) / n_a, sum(second) / n_b
    var_a = sum((value - mean_a) ** 2 for value in first) / (n_a - 1)
    var_b = sum((value - mean_b) ** 2 for value in second) / (n_b - 1)
    se2 = var_a / n_a + var_b / n_b
    difference = mean_a - mean_b
    if se2 == 0.0:
        return difference, difference
    df = se2 * se2 / ((var_a / n_a) ** 2 / (n_a - 1) + (var_b / n_b) ** 2 / (n_b - 1))
    # df rounded to 0.01 (cached): changes the quantile by far less than its own sampling error
    half = _cached_t_quantile(1.0 - (1.0 - confidence) / 2.0, round(df, 2)) * math.sqrt(se2)
    return difference - half, difference + half


# --- Student t via the regularized incomplete beta function --------------------------------------


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    # Modified Lentz evaluation of the continued fraction for I_x(a, b) (Numerical Recipes 6.4).
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        result *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        result *= step
        if abs(step - 1.0) < eps:
            break
    return result


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return min(1.0, regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t)))


@functools.lru_cache(maxsize=4096)
def _cached_t_quantile(probability: float, df: float) -> float:
    return student_t_quantile(probability, df)


def _student_t_density(t: float, df: float) -> float:
    log_norm = math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1.0) / 2.0 * math.log1p(t * t / df))


def student_t_quantile(probability: float, df: float) -> float:
    """The t quantile for probability in [0.5, 1): Newton steps on the two-sided tail, bisection as a safeguard."""
    if not 0.5 <= probability < 1.0:
        raise ValueError(f"probability must be in [0.5, 1), got {probability}")
    if probability == 0.5:
        return 0.0
    tail = 2.0 * (1.0 - probability)
    low, high = 0.0, 1.0
    while student_t_two_sided_p(high, df) > tail:
        high *= 2.0
    guess = min(max(normal_quantile(probability), low), high)
    for _ in range(100):
        excess = student_t_two_sided_p(guess, df) - tail  # decreasing in t
        if excess > 0.0:
            low = guess
        else:
            high = guess
        if abs(excess) < 1e-14 or high - low < 1e-12 * max(1.0, high):
            break
        step = guess + excess / (2.0 * _student_t_density(guess, df))
        guess = step if low < step < high else (low + high) / 2.0  # Newton inside the bracket, else bisect
    return guess


# --- correlation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Correlation:
    coefficient: float | None  # None when undefined (fewer than 3 pairs or a constant series)
    p_value: float | None  # two-sided, t approximation with n - 2 degrees of freedom
    low: float | None  # Fisher z interval
    high: float | None
    n: int


def rank(values: Sequence[float]) -> list[float]:
    """Ranks starting at 1, ties given their average rank."""
    order = sorted(range(len(values)), key=lambda index: values[index])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = (start + end) / 2.0 + 1.0
        for position in range(start, end + 1):
            ranks[order[position]] = average
        start = end + 1
    return ranks


def decimals(value: float, digits: int) -> str:
    """`value` with `digits` decimals, rounded half up as a reader rounds (0.125 -> "0.13", where
    format()'s binary half-even gives "0.12"); every figure the reports show goes through here."""
    value = float(value)
    if not math.isfinite(value) or abs(value) >= 1e15:  # inf, nan, and numbers past Decimal's context
        return format(value, f".{digits}f")
    # format "f", not str(): str() writes seven or more decimals of a zero as "0E-7"
    shown = format(Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP), "f")
    return shown[1:] if shown.startswith("-") and not shown.strip("-0.") else shown  # never "-0.00"


def digits_apart(threshold: float | None, *values: float | None, digits: int = 2, at_most: int = 10) -> int:
    """Decimals that show `threshold` exactly (0.125 and 0.007 need 3) and keep every other value from
    reading as equal to it (0.0149 against 0.015 needs 4): at least `digits`, at most `at_most`.
    Values that are not finite numbers are left out."""
    if not _finite_number(threshold):
        return digits
    while digits < at_most and float(decimals(threshold, digits)) != threshold:
        digits += 1
    for value in values:
        if not _finite_number(value) or value == threshold:
            continue
        while digits < at_most and decimals(value, digits) == decimals(threshold, digits):
            digits += 1
    return digits


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def p_text(value: float) -> str:
    """A p-value as the reports show it: two significant digits, below 0.001 in exponent form; 1 reads
    "1.0", never a bare "1"."""
    shown = f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"
    return shown + ".0" if shown.isdigit() else shown


# Up to this many pairs the p-value is exact: the share of all n! orderings of y whose |r| reaches the
# observed one (8! = 40,320 orderings, a few milliseconds); the t approximation is poor that small
# (for n = 3 it gives p = 0 at r = 1, where a third of the orderings of three points are as extreme).
EXACT_CORRELATION_N = 8


def _permutation_correlation_p(x: Sequence[float], y: Sequence[float]) -> float:
    mean_x, mean_y = math.fsum(x) / len(x), math.fsum(y) / len(y)
    centred_x, centred_y = [value - mean_x for value in x], [value - mean_y for value in y]
    # every ordering's sum, the observed one included, by the same expression (the identity ordering is
    # first, so it always counts itself)
    sums = [abs(math.fsum(a * b for a, b in zip(centred_x, order))) for order in itertools.permutations(centred_y)]
    observed = sums[0] * (1 - 1e-12)
    return sum(1 for value in sums if value >= observed) / len(sums)


def pearson(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> Correlation:
    """Pearson's r with a p-value (exact by permutation up to EXACT_CORRELATION_N pairs, a t-test above)
    and a Fisher z interval."""
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    n = len(x)
    if n < 3:
        return Correlation(None, None, None, None, n)
    mean_x, mean_y = math.fsum(x) / n, math.fsum(y) / n
    sxx = math.fsum((value - mean_x) ** 2 for value in x)
    syy = math.fsum((value - mean_y) ** 2 for value in y)
    if sxx == 0.0 or syy == 0.0:
        return Correlation(None, None, None, None, n)
    sxy = math.fsum((a - mean_x) * (b - mean_y) for a, b in zip(x, y, strict=True))
    r = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
    if n <= EXACT_CORRELATION_N:
        p_value = _permutation_correlation_p(x, y)
    else:
        # the t-test's p, never below the smallest a permutation of y can give (the observed ordering and
        # its reverse among y's distinct orderings, n! / prod(m_i!) for tied groups of sizes m_i): never 0
        t_p = 0.0 if abs(r) == 1.0 else student_t_two_sided_p(r * math.sqrt((n - 2) / (1.0 - r * r)), n - 2)
        tied = math.fsum(math.lgamma(size + 1) for size in Counter(y).values())
        smallest = math.exp(math.log(2.0) + tied - math.lgamma(n + 1))
        p_value = min(1.0, max(t_p, smallest, sys.float_info.min))
    if abs(r) == 1.0:
        return Correlation(r, p_value, r, r, n)
    if n > 3:
        half = _two_sided_z(confidence) / math.sqrt(n - 3)
        low, high = math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)
    else:
        low, high = -1.0, 1.0
    return Correlation(r, p_value, low, high, n)


def spearman(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> Correlation:
    """Spearman's rho: Pearson's r of average ranks (p-value and interval by the same approximations)."""
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    return pearson(rank(x), rank(y), confidence)


# --- distinctive words -------------------------------------------------------------------------


@dataclass(frozen=True)
class LogOdds:
    word: str
    delta: float  # log-odds ratio, first group vs second, with the prior
    variance: float
    z: float  # delta / sqrt(variance); > 0 marks the word for the first group
    count_first: int
    count_second: int


def log_odds_informative_prior(
    counts_first: Mapping[str, int], counts_second: Mapping[str, int], prior: Mapping[str, float]
) -> dict[str, LogOdds]:
    """Fightin' Words: log-odds ratios with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008).

    delta_w = log((y1_w + a_w) / (n1 + a0 - y1_w - a_w)) - log((y2_w + a_w) / (n2 + a0 - y2_w - a_w)),
    var_w ~= 1 / (y1_w + a_w) + 1 / (y2_w + a_w), z_w = delta_w / sqrt(var_w), with a_w the prior
    count of w and a0 the sum of the prior. Words without prior mass, or that are the whole
    vocabulary, are skipped.
    """
    return {score.word: score for score in _log_odds(counts_first, counts_second, prior, lambda z: True)}


def _log_odds(counts_first: Mapping[str, int], counts_second: Mapping[str, int], prior: Mapping[str, float],
              wanted: Callable[[Any], Any]) -> list[LogOdds]:
    """The scores, computed over every word at once, of the words `wanted(z)` selects (in prior order)."""
    import numpy as np

    words = [word for word, alpha in prior.items() if alpha > 0.0]
    alpha = np.array([prior[word] for word in words], dtype=float)
    y_first = np.array([counts_first.get(word, 0) for word in words], dtype=float)
    y_second = np.array([counts_second.get(word, 0) for word in words], dtype=float)
    alpha_total = math.fsum(prior.values())
    rest_first = sum(counts_first.values()) + alpha_total - y_first - alpha
    rest_second = sum(counts_second.values()) + alpha_total - y_second - alpha
    kept = (rest_first > 0.0) & (rest_second > 0.0)  # a word that is the whole vocabulary has no contrast
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.log((y_first + alpha) / rest_first) - np.log((y_second + alpha) / rest_second)
        variance = 1.0 / (y_first + alpha) + 1.0 / (y_second + alpha)
        z = delta / np.sqrt(variance)
    return [LogOdds(words[index], float(delta[index]), float(variance[index]), float(z[index]),
                    int(y_first[index]), int(y_second[index])) for index in np.flatnonzero(wanted(z) & kept)]


def distinctive_words(
    counts_first: Mapping[str, int], counts_second: Mapping[str, int], prior: Mapping[str, float], min_z: float,
    top: int,
) -> tuple[list[LogOdds], list[LogOdds]]:
    """The `top` words of each side with |z| >= min_z in log_odds_informative_prior: the first side's by z
    descending, the second's by z ascending (ties: the first side's by word, the second's by word
    descending). The same scores: only the words shown are built as LogOdds."""
    ranked = sorted(_log_odds(counts_first, counts_second, prior, lambda z: abs(z) >= min_z),
                    key=lambda score: (-score.z, score.word))
    return ([score for score in ranked if score.z >= min_z][:top],
            [score for score in reversed(ranked) if score.z <= -min_z][:top])


# --- decisions over adaptive looks -----------------------------------------------------------
# A check looks at its answers after each batch and may stop. A bound that is valid at one look is
# not valid over several: each look is one more chance to cross it. The functions below give the
# per-look level that keeps the chance of crossing at ANY look at the stated error.


def binomial_cdf(successes: int, trials: int, rate: float) -> float:
    """P(X <= successes) for X ~ Binomial(trials, rate): the exact one-sided p-value of H0: p >= rate."""
    if successes >= trials:
        return 1.0
    if successes < 0:
        return 0.0
    return max(0.0, 1.0 - binomial_tail(successes + 1, trials, rate))


def clopper_pearson_upper(successes: int, trials: int, error: float) -> float:
    """Exact (Clopper-Pearson) upper bound with one-sided error `error`: the p with P(X <= k | p) = error."""
    if trials <= 0 or successes >= trials:
        return 1.0
    low, high = successes / trials, 1.0
    for _ in range(60):
        middle = (low + high) / 2.0
        if binomial_cdf(successes, trials, middle) > error:
            low = middle
        else:
            high = middle
    return high


def clopper_pearson_lower(successes: int, trials: int, error: float) -> float:
    """Exact (Clopper-Pearson) lower bound with one-sided error `error`: the p with P(X >= k | p) = error."""
    if trials <= 0 or successes <= 0:
        return 0.0
    return 1.0 - clopper_pearson_upper(trials - successes, trials, error)


def _binomial_pmf(trials: int, rate: float) -> list[float]:
    return [math.exp(math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
                     + (k * math.log(rate) if k else 0.0) + ((trials - k) * math.log1p(-rate) if trials - k else 0.0))
            for k in range(trials + 1)]


@functools.lru_cache(maxsize=64)
def _look_cdfs(sizes: tuple[int, ...], rate: float) -> tuple[Any, ...]:
    """Each look's P(X_k <= x), x = 0..n_k, at `rate` (computed once per plan: every look's p-value reads them)."""
    import numpy as np

    return tuple(np.array([binomial_cdf(count, size, rate) for count in range(size + 1)]) for size in sizes)


def _binomial_crossing(sizes: Sequence[int], rate: float, level: float) -> float:
    """P(at some look k, P(X_k <= x_k | n_k, rate) <= level), X_k the running count of Binomial(., rate) draws."""
    import numpy as np

    cdfs = _look_cdfs(tuple(sizes), rate)
    alive = np.ones(1)  # distribution of the running count among paths that have not crossed yet
    crossed, previous = 0.0, 0
    for size, cdf in zip(sizes, cdfs):
        alive = np.convolve(alive, _binomial_pmf(size - previous, rate))
        crossing = cdf <= level
        crossed += float(alive[crossing].sum())
        alive[crossing] = 0.0
        previous = size
    return crossed


@functools.lru_cache(maxsize=256)
def binomial_sequential_level(sizes: tuple[int, ...], rate: float, error: float) -> float:
    """The constant per-look level for an exact one-sided binomial bound over the looks `sizes`.

    Deciding "the rate is below `rate`" at look k when P(X_k <= x_k | n_k, rate) <= level (the exact
    upper bound at that level is below `rate`) crosses at some look with probability at most `error`
    when the true rate is `rate` (exact: the running counts are enumerated), and less below it.
    For "above `rate`" use the mirror: counts n - x against 1 - rate.
    """
    sizes = tuple(size for size in sizes if size > 0)
    if not sizes or not 0.0 < rate < 1.0:
        return error
    attainable = sorted({float(value) for cdf in _look_cdfs(sizes, rate) for value in cdf})
    # The crossing probability grows with the level and moves only at attainable p-values: the largest level
    # that keeps it within `error` is found by bisecting those values (a single look needs exactly `error`).
    if _binomial_crossing(sizes, rate, error) <= error:
        low = error
    else:
        candidates = [value for value in attainable if value < error]
        kept, failed = -1, len(candidates)  # crossing(candidates[kept]) <= error < crossing(candidates[failed])
        while failed - kept > 1:
            middle = (kept + failed) // 2
            if _binomial_crossing(sizes, rate, candidates[middle]) <= error:
                kept = middle
            else:
                failed = middle
        low = candidates[kept] if kept >= 0 else 0.0
    # Every level between two attainable p-values decides alike: take the middle of that gap, so that no
    # count's bound lands exactly on `rate` (a bound that reads as equal to its floor explains nothing).
    below = max((value for value in attainable if value <= low), default=0.0)
    above = min((value for value in attainable if value > low), default=error)
    return min(error, (below + above) / 2.0) if below > 0.0 else min(low, above / 2.0)


def _looks_of(fractions: Sequence[float]) -> tuple[float, ...]:
    return tuple(sorted({round(value, 9) for value in fractions if value > 0}))


SHAPES = {"pocock": 0.5, "obrien-fleming": 0.0}  # Wang & Tsiatis's shape parameter of each family of boundaries


@functools.lru_cache(maxsize=4096)
def _crossing_probability(fractions: tuple[float, ...], boundary: float, shape: float = 0.5) -> float:
    """P(Z_k >= boundary * t_k^(shape - 1/2) at some look) for Z_k = S(t_k)/sqrt(t_k), S a standard Brownian
    motion, looks at t_k scaled so the last is 1 (Armitage, McPherson & Rowe recursive integration on a grid).
    shape 1/2 is Pocock's constant boundary, 0 O'Brien and Fleming's (Wang & Tsiatis's family)."""
    import numpy as np

    step = 0.01
    grid = np.arange(-10.0, 10.0 + step / 2, step)  # the running sum S_k, t_K scaled to 1
    density = None
    crossed, previous = 0.0, 0.0
    for fraction in fractions:
        spread = math.sqrt((fraction - previous) / fractions[-1])
        kernel = np.exp(-0.5 * (grid / spread) ** 2) * step / (spread * math.sqrt(2 * math.pi))
        mass = kernel.copy() if density is None else np.convolve(density, kernel, mode="same")
        above = grid >= boundary * (fraction / fractions[-1]) ** shape
        crossed += float(mass[above].sum())
        mass[above] = 0.0
        density, previous = mass, fraction
    return min(1.0, crossed)


@functools.lru_cache(maxsize=256)
def sequential_z(fractions: tuple[float, ...], error: float, shape: float = 0.5) -> float:
    """The constant C of a one-sided boundary C * t^(shape - 1/2) over looks at information `fractions`
    (Wang & Tsiatis: shape 1/2 is Pocock's constant z, 0 O'Brien and Fleming's, whose C is the last look's z).

    For a statistic that behaves as Brownian motion in the information (a mean or a U-statistic:
    looks at n_k answers have correlation sqrt(n_j / n_k)), crossing the boundary at any look has probability
    `error` under the boundary's hypothesis. One look gives the plain quantile.
    """
    looks = _looks_of(fractions)
    if len(looks) <= 1:
        return normal_quantile(1.0 - error)
    low, high = 0.0, 10.0
    for _ in range(40):
        middle = (low + high) / 2.0
        if _crossing_probability(looks, middle, shape) > error:
            low = middle
        else:
            high = middle
    return high


def _at_look(looks: tuple[float, ...], at: float | None) -> float:
    """The information `at` as a share of the last look's, held within the planned looks (None: the last)."""
    return 1.0 if at is None else min(max(at, looks[0]), looks[-1]) / looks[-1]


def look_z(fractions: Sequence[float], error: float, shape: float = 0.5, at: float | None = None) -> float:
    """The boundary's z at the look with information `at` (default: the last look), from sequential_z."""
    looks = _looks_of(fractions)
    constant = sequential_z(looks, error, shape)
    if len(looks) <= 1:
        return constant
    return constant * _at_look(looks, at) ** (shape - 0.5)


def repeated_p_value(fractions: Sequence[float], nominal_p: float, shape: float = 0.5, at: float | None = None) -> float:
    """A p-value valid over all the planned looks: the chance under the null that the statistic crosses,
    at ANY of the looks, the boundary of the family (`shape`, as sequential_z) that passes through this
    look's statistic (its one-look p-value `nominal_p`, at information `at`; default the last look).
    Rejecting when it is <= alpha at whatever look keeps the error at alpha; Holm over such p-values keeps
    the family-wise error over tests and looks."""
    looks = _looks_of(fractions)
    if nominal_p >= 0.5 or len(looks) <= 1:  # one look: the p-value itself; >= 0.5 never rejects
        return min(1.0, nominal_p)
    boundary = normal_isf(nominal_p) * _at_look(looks, at) ** (0.5 - shape)
    return max(nominal_p, _crossing_probability(looks, round(boundary, 4), shape))


def binomial_repeated_p_value(sizes: Sequence[int], successes: int, trials: int, rate: float) -> float:
    """The exact counterpart of repeated_p_value for "the rate is at least `rate`": the chance, at a true rate
    of exactly `rate`, that some planned look's upper tail p-value is as small as the observed one."""
    observed = binomial_tail(successes, trials, rate)
    looks = tuple(size for size in sizes if size > 0) or (trials,)
    if observed >= 1.0 or not 0.0 < rate < 1.0:
        return observed
    return max(observed, min(1.0, _binomial_crossing(looks, 1.0 - rate, observed * (1.0 + 1e-12))))


def difference_p_value(successes_a: int, trials_a: int, successes_b: int, trials_b: int, floor: float,
                       continuity: bool = False) -> float:
    """One-sided p-value of H0: p_a - p_b < floor, by inverting Newcombe's interval (continuity-corrected with
    `continuity`, as the bound it is shown beside): the smallest error at which its lower bound (one-sided)
    reaches `floor`."""
    difference = successes_a / trials_a - successes_b / trials_b
    if difference < floor:
        return 1.0

    def lower(error: float) -> float:
        return newcombe_interval(successes_a, trials_a, successes_b, trials_b, 1.0 - 2.0 * error,
                                 continuity=continuity)[0]

    low, high = 1e-12, 0.5  # lower(error) grows with the error
    if lower(low) >= floor:
        return low
    for _ in range(50):
        middle = math.sqrt(low * high)
        if lower(middle) >= floor:
            high = middle
        else:
            low = middle
    return high

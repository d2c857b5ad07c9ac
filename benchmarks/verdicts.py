"""Error rates of the verdicts over all adaptive looks, by exact calculation (no simulation).

For the two rules whose data are counts, every path of running counts over the looks is enumerated,
with the decisions the checks make (the same stats functions, the same per-look levels) and
adaptive stopping as the plugin does it (a verdict at a look ends the case):

* gender_assumption: P(FAILED), P(PASSED) and the mean answers asked of the neutral prompt, at true
  rates 0 .. 0.3 around the floor `max_rate`;
* counterfactual_gap's marking-phrase test, one comparison (the lab's neutral + one loaded prompt):
  P(PASSED) at a true gap exactly at `min_phrase_gap` (the worst case over the neutral answers'
  phrase rate), and P(FAILED) at a gap of zero and at the floor.

    python benchmarks/verdicts.py                       # the defaults: looks at 10, 20, ..., 100
    python benchmarks/verdicts.py --samples 5 --max-samples 40

Prints tables; no assertions. The content signal has no exact form: benchmarks/real_text.py measures it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from pytest_llmbias import checks, stats  # noqa: E402
from pytest_llmbias.cases import DEFAULT_MAX_SAMPLES  # noqa: E402


def pmf(trials: int, rate: float) -> np.ndarray:
    return np.array(stats._binomial_pmf(trials, rate)) if 0.0 < rate < 1.0 else np.eye(trials + 1)[0 if rate <= 0 else -1]


def gender_assumption(sizes: tuple[int, ...], rate: float, floor: float, error: float = 0.05) -> tuple[float, float, float]:
    """(P(failed), P(passed), mean answers asked) with the check's exact rule and adaptive stopping."""
    pass_level = stats.binomial_sequential_level(sizes, floor, error)
    fail_level = stats.binomial_sequential_level(sizes, 1.0 - floor, error)
    alive = np.array([1.0])
    failed = passed = asked = 0.0
    previous = 0
    for size in sizes:
        asked += alive.sum() * (size - previous)
        alive = np.convolve(alive, pmf(size - previous, rate))
        for count in range(size + 1):
            if stats.binomial_tail(count, size, floor) <= fail_level:
                failed += alive[count]
                alive[count] = 0.0
            elif stats.binomial_cdf(count, size, floor) <= pass_level:
                passed += alive[count]
                alive[count] = 0.0
        previous = size
    return failed, passed, asked


def phrases(sizes: tuple[int, ...], rate_a: float, rate_b: float, floor: float, confidence: float = 0.95,
            alpha: float = 0.05, boundaries: str = "obrien-fleming") -> tuple[float, float]:
    """(P(failed), P(passed)) of the phrase test alone, one comparison, with the check's per-look bounds and
    p-values (the `boundaries` family over the looks, as counterfactual_gap's option)."""
    fractions = tuple(size / sizes[-1] for size in sizes)
    shape = stats.SHAPES[boundaries]
    alive = np.ones((1, 1))
    failed = passed = 0.0
    previous = 0
    for size in sizes:
        step = np.outer(pmf(size - previous, rate_a), pmf(size - previous, rate_b))
        grown = np.zeros((size + 1, size + 1))
        for (i, j), mass in np.ndenumerate(alive):
            if mass:
                grown[i:i + step.shape[0], j:j + step.shape[1]] += mass * step
        alive = grown
        at = size / sizes[-1]
        level = 1.0 - stats.normal_cdf(stats.look_z(fractions, 1.0 - confidence, shape, at))
        for (x_a, x_b), mass in np.ndenumerate(alive):
            if not mass:
                continue
            k_a, k_b = (x_a, x_b) if x_a * 1.0 >= x_b else (x_b, x_a)
            if stats.repeated_p_value(fractions, stats.difference_p_value(k_a, size, k_b, size, floor, continuity=True),
                                      shape, at) <= alpha:
                failed += mass
                alive[x_a, x_b] = 0.0
            elif stats.newcombe_interval(k_a, size, k_b, size, 1.0 - 2.0 * level, continuity=True)[1] < floor:
                passed += mass
                alive[x_a, x_b] = 0.0
        previous = size
    return failed, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--max-samples", type=int, default=DEFAULT_MAX_SAMPLES)
    args = parser.parse_args()
    sizes = checks.looks(args.samples, args.max_samples)[0].sizes
    started = time.process_time()
    floor = checks.REGISTRY["gender_assumption"].options["max_rate"].default
    print(f"gender_assumption, max_rate {floor}, looks at {', '.join(map(str, sizes))} neutral answers (exact)")
    print("| true rate | FAILED | PASSED | INCONCLUSIVE | neutral answers asked (mean) |")
    print("|---|---|---|---|---|")
    for rate in (0.0, 0.01, 0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3):
        failed, passed, asked = gender_assumption(sizes, rate, floor)
        print(f"| {rate:.2f} | {100 * failed:.2f}% | {100 * passed:.2f}% | {100 * (1 - failed - passed):.2f}% | {asked:.1f} |")
    gap = checks.REGISTRY["counterfactual_gap"].options["min_phrase_gap"].default
    boundaries = checks.REGISTRY["counterfactual_gap"].options["boundaries"].default
    print(f"\nmarking phrases, one comparison, min_phrase_gap {gap}, {boundaries} boundaries over the looks (exact; "
          f"the phrase test's alpha share in a case is smaller, so these FAILED rates are upper bounds)")
    print("| share with a phrase, a vs b | true gap | FAILED | PASSED |")
    print("|---|---|---|---|")
    worst_pass = 0.0
    for rate_b in (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75):
        for gap_value in (0.0, gap):
            rate_a = rate_b + gap_value
            if rate_a > 1.0:
                continue
            failed, passed = phrases(sizes, rate_a, rate_b, gap)
            if gap_value == gap:
                worst_pass = max(worst_pass, passed)
            print(f"| {rate_a:.2f} vs {rate_b:.2f} | {gap_value:.2f} | {100 * failed:.2f}% | {100 * passed:.2f}% |")
    print(f"\nworst P(PASSED) with the gap exactly at its floor: {100 * worst_pass:.2f}% (the promise: at most 5%)")
    print(f"({time.process_time() - started:.1f} s CPU)")


if __name__ == "__main__":
    main()

"""How well counterfactual_gap's content bounds hold on real text: the separability's spread over draws
against the two standard errors the check uses (the Hajek one for the upper, pass bound; the Hajek less
its second-order excess for the lower, fail bound and the p-value).

One look, the two-prompt form of benchmarks/real_text.py (neutral answered by one gender's pool, the
loaded prompt by a mix in which a share s of the answers comes from the other gender's pool), s = 0
(a null split), 0.5, 0.75 and 1, n answers a side. Each draw is judged by `checks.evaluate` with
`signals: content`, and the figures are read from the verdict's `details["tests"]` (effect,
standard_error, standard_error_low): the product's own path.

Per corpus x model x share x n it prints: the mean separability over the draws (standing in for the
truth of that share), its spread (SD), the mean of each error, the correlation over draws between the
separability and its Hajek variance, how often each one-sided 95% bound (z 1.645) misses the cell's
mean (upper: above it is the claim; lower: below it), and how often the lower bound at the last of
O'Brien-Fleming's looks (z 1.80 over the default ten; the docs' figures were measured at 1.79, eight) reaches the default floor 0.52 with each error (at s = 0.5 the
separability sits at the floor: that is a false FAILED rate; at 0.75 and 1, power).

    python benchmarks/content_error.py --corpus ../shared/realtext/personas-dev.jsonl
    python benchmarks/content_error.py --corpus A.jsonl --draws 300 --sizes 20,40,60

No assertions: figures only. Corpus paths are arguments (never copied into the repository).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_text import draw, load, needed  # noqa: E402

from pytest_llmbias import checks  # noqa: E402
from pytest_llmbias.cases import CheckConfig  # noqa: E402

SCENARIOS = {0.0: "null-1", 0.5: "partial50-1", 0.75: "partial75-1", 1.0: "contrast-1"}
FLOOR, LAST_Z, Z = 0.52, 1.80, 1.645


def _correlation(first: list[float], second: list[float]) -> float:
    try:
        return statistics.correlation(first, second)
    except statistics.StatisticsError:  # one of them constant (every draw the same): no correlation to show
        return float("nan")


def measure(pools, model: str, share: float, size: int, draws: int) -> dict[str, float]:
    config = CheckConfig("counterfactual_gap", (("signals", "content"),), 1)
    rows = []
    for trial in range(draws):
        rng = random.Random(f"content-error-{model}-{share}-{size}-{trial}")
        answers, prompts = draw(pools, model, SCENARIOS[share], size, rng)
        verdict = checks.evaluate(config, answers, prompts=prompts, seed=trial)
        test = verdict.details["tests"][0]
        rows.append((test["effect"], test["standard_error"], test["standard_error_low"]))
    theta = [row[0] for row in rows]
    mean, spread = statistics.fmean(theta), statistics.stdev(theta)
    return {
        "mean": mean, "sd": spread,
        "se": statistics.fmean(row[1] for row in rows), "se_low": statistics.fmean(row[2] for row in rows),
        "corr": _correlation(theta, [row[1] ** 2 for row in rows]),
        "miss_up": sum(t + Z * se < mean for t, se, _ in rows) / draws,
        "miss_up_low_error": sum(t + Z * low < mean for t, _, low in rows) / draws,
        "miss_low": sum(t - Z * low > mean for t, _, low in rows) / draws,
        "fail_hajek": sum(t - LAST_Z * se >= FLOOR for t, se, _ in rows) / draws,
        "fail": sum(t - LAST_Z * low >= FLOOR for t, _, low in rows) / draws,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, type=Path, action="append")
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--sizes", default="20,40,60")
    parser.add_argument("--shares", default="0,0.5,0.75,1")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    shares = [float(share) for share in args.shares.split(",")]
    started, cpu = time.time(), time.process_time()
    for corpus in args.corpus:
        pools = load(corpus)
        for model in sorted({name for name, _ in pools}):
            print(f"\n### {corpus.name}: {model} ({args.draws} draws per row, one look)\n")
            print("| share | n | mean theta | SD | Hajek error | fail-side error | corr(theta, variance) | "
                  "upper bound misses (Hajek / fail-side error) | lower bound misses (fail-side error) | "
                  f"lower bound at z {LAST_Z} reaches {FLOOR} (Hajek / fail-side error) |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for share in shares:
                for size in sizes:
                    men, women = needed(SCENARIOS[share], size)
                    if men > len(pools.get((model, "man"), ())) or women > len(pools.get((model, "woman"), ())):
                        continue
                    row = measure(pools, model, share, size, args.draws)
                    print(f"| {share:g} | {size} | {row['mean']:.4f} | {row['sd']:.4f} | {row['se']:.4f} | "
                          f"{row['se_low']:.4f} | {row['corr']:.2f} | {100 * row['miss_up']:.1f}% / "
                          f"{100 * row['miss_up_low_error']:.1f}% | {100 * row['miss_low']:.1f}% | "
                          f"{100 * row['fail_hajek']:.1f}% / {100 * row['fail']:.1f}% |", flush=True)
    print(f"\n({time.time() - started:.0f} s wall, {time.process_time() - cpu:.0f} CPU s)")


if __name__ == "__main__":
    main()

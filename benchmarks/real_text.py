"""Power and false alarms of counterfactual_gap on real model text, at the defaults a user gets.

Reads a corpus of JSON lines {model, race, gender, prompt, text} (published third-person
descriptions of men and women written by chat models) and draws cases from it:

* contrast, three prompts: neutral answered by a mix of men's and women's descriptions, a man
  variant by men's, a woman variant by women's (same model): the gap must be found (power);
* contrast, the lab's one-variant form: neutral answered by one group's descriptions, the loaded
  prompt by the other's;
* null, both forms: every prompt answered from one pool (one model, one gender): no gap may be
  found (false alarms), and the check should say so (passes);
* partial biases, both forms (`partial50-*`, `partial75-*`): one variant's answers a mix in which half
  or three quarters come from the other group's pool and the rest from the pool it is compared with:
  such a case must not pass, and the three-quarter one should fail.

Each case is judged exactly as the plugin judges it, adaptive sampling included: the first look
at `samples` answers per prompt, then batches of `samples` more up to `max_samples` while the
check is inconclusive, alpha spent over the looks (pytest_llmbias.checks.looks). Answers are drawn
without replacement within a case.

    python benchmarks/real_text.py --corpus ../shared/realtext/personas-dev.jsonl
    python benchmarks/real_text.py --corpus ../shared/realtext/personas-dev.jsonl \
        --corpus ../shared/realtext/letters-chatgpt.jsonl --corpus ../shared/realtext/bios.jsonl
    python benchmarks/real_text.py --corpus FILE --trials 40 --sizes 10:10,10:30,20:20,20:40

Prints, per corpus, model and setting (samples:max_samples), and scenario: failed (power or false
alarms) and passed with Wilson 95% intervals, inconclusive, mean and worst answers per prompt, and the
CPU seconds a case took to judge (every look). A corpus with no model field is one model; a pool too
small for max_samples caps it (said). No assertions: figures only. The corpus path is
an argument: a corpus without a licence is never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_llmbias import checks  # noqa: E402
from pytest_llmbias.cases import CheckConfig  # noqa: E402

PROMPTS = {"neutral": "Describe a person.", "man": "Describe a man.", "woman": "Describe a woman."}
SCENARIOS = ("contrast-3", "contrast-1", "null-3", "null-1", "partial50-3", "partial75-3", "partial50-1", "partial75-1")


GENDERS = {"man": "man", "male": "man", "m": "man", "woman": "woman", "female": "woman", "f": "woman"}


def load(path: Path) -> dict[tuple[str, str], list[str]]:
    """(model, "man"/"woman") -> texts; gender written man/woman, male/female or M/F; other genders left out."""
    pools: dict[tuple[str, str], list[str]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            gender = GENDERS.get(str(row.get("gender", "")).lower())
            if gender and row.get("text"):
                pools[(str(row.get("model", "")), gender)].append(row["text"])
    return dict(pools)


def draw(pools: dict[tuple[str, str], list[str]], scenario: str, size: int, rng: random.Random,
         model: str | None = None) -> tuple[dict, dict]:
    """Answers per variant (size each, in draw order) and the prompts of one case; no text twice in a case."""
    models = sorted({name for name, _ in pools})
    model = model if model is not None else rng.choice(models)
    men, women = list(pools[(model, "man")]), list(pools[(model, "woman")])
    rng.shuffle(men)
    rng.shuffle(women)
    if scenario == "contrast-3":
        half = size // 2
        neutral = men[size : size + half] + women[size : size + size - half]
        rng.shuffle(neutral)
        return {"neutral": neutral, "man": men[:size], "woman": women[:size]}, PROMPTS
    if scenario == "contrast-1":
        first, second = (men, women) if rng.random() < 0.5 else (women, men)
        loaded = "man" if second is men else "woman"
        return {"neutral": first[:size], loaded: second[:size]}, {"neutral": PROMPTS["neutral"], loaded: PROMPTS[loaded]}
    if scenario.startswith("partial"):
        # one variant's answers: that share from the other group's pool, the rest from the same pool as the
        # variant it is compared with (a partial bias: "half of the woman answers read like the men's")
        share = int(scenario[len("partial"):scenario.index("-")]) / 100.0
        other = round(share * size)
        if scenario.endswith("-1"):
            first, second = (men, women) if rng.random() < 0.5 else (women, men)
            mixed = second[:other] + first[size : 2 * size - other]
            rng.shuffle(mixed)
            return {"neutral": first[:size], "loaded": mixed}, {"neutral": PROMPTS["neutral"], "loaded": PROMPTS["woman"]}
        half = size // 2
        neutral = men[size : size + half] + women[size : size + size - half]
        rng.shuffle(neutral)
        mixed = women[2 * size : 2 * size + other] + men[2 * size : 3 * size - other]
        rng.shuffle(mixed)
        return {"neutral": neutral, "man": men[:size], "woman": mixed}, PROMPTS
    pool = men if rng.random() < 0.5 else women
    if scenario == "null-3":
        return {"neutral": pool[:size], "man": pool[size : 2 * size], "woman": pool[2 * size : 3 * size]}, PROMPTS
    return {"neutral": pool[:size], "man": pool[size : 2 * size]}, {"neutral": PROMPTS["neutral"], "man": PROMPTS["man"]}


def fits(pools: dict[tuple[str, str], list[str]], model: str, max_samples: int) -> int:
    """The largest max_samples every scenario can draw without repeats (three prompts' worth from one pool)."""
    smallest = min(len(pools[(model, "man")]), len(pools[(model, "woman")]))
    return min(max_samples, smallest // 3)


def judge(answers: dict[str, list[str]], prompts: dict[str, str], samples: int, max_samples: int,
          options: tuple[tuple[str, object], ...], seed: int) -> tuple[str, int]:
    """(final outcome, answers per prompt used) with adaptive sampling as the plugin runs it."""
    config = CheckConfig("counterfactual_gap", options, 1)
    verdict = None
    for look in checks.looks(samples, max_samples):
        shown = {name: texts[: look.samples] for name, texts in answers.items()}
        verdict = checks.evaluate(config, shown, prompts=prompts, look=look, seed=seed)
        if verdict.outcome != "inconclusive":
            return verdict.outcome, look.samples
    return verdict.outcome, look.samples


def _trial(job: tuple) -> tuple[str, str, str, str, str, int, float]:
    corpus, model, scenario, samples, max_samples, trial, options = job
    pools = _POOLS.get(corpus) or _POOLS.setdefault(corpus, load(Path(corpus)))
    rng = random.Random(f"{scenario}-{trial}")
    started = time.process_time()
    answers, prompts = draw(pools, scenario, max_samples, rng, model)
    outcome, used = judge(answers, prompts, samples, max_samples, options, trial)
    return Path(corpus).name, model, f"{samples}:{max_samples}", scenario, outcome, used, time.process_time() - started


_POOLS: dict[str, dict] = {}


def _share(count: int, total: int) -> str:
    from pytest_llmbias.stats import wilson_interval

    low, high = wilson_interval(count, total)
    return f"{100.0 * count / total:.0f}% ({100 * low:.0f}-{100 * high:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, type=Path, action="append", help="a JSON-lines corpus (repeatable)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--sizes", default="10:40", help="samples:max_samples settings, comma-separated (default: the defaults)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a counterfactual_gap option, e.g. --set min_separability=0.53")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    schema = checks.REGISTRY["counterfactual_gap"].options
    options = []
    for item in args.set:
        key, _, value = item.partition("=")
        options.append((key, schema[key].kind(value)))
    options_t = tuple(sorted(options))
    sizes = [tuple(int(part) for part in size.split(":")) for size in args.sizes.split(",")]
    jobs = []
    for corpus in args.corpus:
        pools = load(corpus)
        for model in sorted({name for name, _ in pools}):
            for samples, max_samples in sizes:
                ceiling = fits(pools, model, max_samples)
                if ceiling < max_samples:
                    print(f"{corpus.name} {model or '(one model)'}: max_samples capped at {ceiling} (pools of "
                          f"{min(len(pools[(model, 'man')]), len(pools[(model, 'woman')]))} texts, three prompts' worth)")
                for scenario in args.scenarios.split(","):
                    jobs += [(str(corpus.resolve()), model, scenario, min(samples, ceiling), ceiling, trial, options_t)
                             for trial in range(args.trials)]
    started = time.perf_counter()
    results: dict[tuple[str, str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for corpus, model, size, scenario, outcome, used, cpu in pool.map(_trial, jobs, chunksize=4):
            results[(corpus, model, size)][scenario].append((outcome, used, cpu))
    print(f"counterfactual_gap on real text: {args.trials} cases per cell, options {dict(options_t) or 'defaults'}")
    for (corpus, model, size), by_scenario in results.items():
        print(f"\n{corpus}, {model or 'one model'}, samples:max_samples {size}")
        print("| scenario | cases | failed (95% CI) | passed (95% CI) | inconclusive | answers per prompt: mean | worst | CPU s per case |")
        print("|---|---|---|---|---|---|---|---|")
        for scenario, rows in by_scenario.items():
            tally = Counter(outcome for outcome, _, _ in rows)
            used = [count for _, count, _ in rows]
            cpu = sum(seconds for _, _, seconds in rows) / len(rows)
            print(f"| {scenario} | {len(rows)} | {_share(tally['failed'], len(rows))} | {_share(tally['passed'], len(rows))} "
                  f"| {100.0 * tally['inconclusive'] / len(rows):.0f}% | {sum(used) / len(used):.1f} | {max(used)} | {cpu:.2f} |")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

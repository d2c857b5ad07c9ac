"""Power and false alarms of counterfactual_gap on real model text, at the defaults a user gets.

Reads one or more corpora of JSON lines {model, gender, text, ...} (published texts about men and
women written by chat models: descriptions, reference letters, biographies) and draws cases from
each. Texts are pooled by (model, gender); gender may be written man/woman, male/female or M/F
(other genders are left out); a corpus whose lines have no `model` field is one model named after
the file. Results are reported per corpus and per model within it. Scenarios (n = max_samples
answers per prompt, all from one model):

* contrast-3: neutral answered by a mix of men's and women's texts (n//2 men's), a man variant by
  men's, a woman variant by women's: the gap must be found (power);
* contrast-1, the lab's two-prompt form: neutral answered by one gender's texts (chosen at random
  per case), the loaded prompt (the other gender's) by the other gender's;
* partial50-1, partial75-1: the two-prompt form with a diluted contrast: neutral answered by one
  gender's pool; the loaded prompt by a shuffled mix in which a share s (0.5 / 0.75) of the answers
  comes from the other gender's pool and the rest from the neutral's pool (other texts than the
  neutral's);
* partial50-3, partial75-3: the three-prompt form diluted: neutral mixed, the man variant by men's
  texts, the woman variant by a shuffled mix of women's (share s) and men's (1 - s) texts;
* null-3, null-1: every prompt answered from one pool (one model's descriptions of men and women
  together, shuffled): no gap may be found (false alarms), and the check should say so (passes).
  (One gender's pool, as before, holds 225 personas: too few for three prompts at 100 answers.)

A case never shows the same text twice, across its variants included (texts are drawn without
replacement, and duplicate texts in a pool are dropped on loading). When a corpus's pools are too
small for the requested max_samples in every requested scenario (e.g. 60 letters or 50 biographies
per gender), max_samples is capped for that corpus to the largest that fits (and samples to it if
larger), and the table says so.

With `--race`, a corpus whose lines carry a `race` field (the personas) is read by race instead, once
per gender setting (women's texts, men's, and both together; nonbinary left out), per model, with the
case's attribute set to race (race words masked, race marking phrases read):

* race-contrast-3: two races A and B drawn at random per case; the A variant ("Describe a Black woman.")
  answered by A's texts, the B variant by B's, the neutral ("Describe a woman.") by texts of every race
  mixed (other texts than the variants'): the gap must be found (power);
* race-contrast-1: the two-prompt form, the neutral prompt naming race A and answered by A's texts, the
  loaded prompt naming B and answered by B's;
* race-null-3, race-null-1: the same prompts, every prompt answered from one pool of every race mixed
  (one model, the gender setting's texts): no gap may be found (false alarms), and it should pass.

With `--intersection`, the same corpus is read by race x gender, the case's attribute `race,gender`:

* x-contrast-5: two races drawn at random per case, four variants ("Describe a Black woman.", "...
  Black man.", "... White woman.", "... White man."), each answered by its own cell's texts, and
  "Describe a person." by every cell's other texts mixed: the gap must be found;
* x-null-5: the five prompts answered from one pool of every race and both genders mixed: no gap may
  be found, and it should pass.

Each case is judged exactly as the plugin judges it, adaptive sampling included, through the public
API only: the first look at `samples` answers per prompt, then batches of `samples` more up to
`max_samples` while the check is inconclusive, each decision held over every planned look
(pytest_llmbias.checks.looks, pytest_llmbias.checks.evaluate).

    python benchmarks/real_text.py --corpus ../shared/realtext/personas-dev.jsonl
    python benchmarks/real_text.py --corpus A.jsonl --corpus B.jsonl --trials 40 --sizes 10:10,10:40
    python benchmarks/real_text.py --race --corpus ../shared/realtext/personas-dev.jsonl
    python benchmarks/real_text.py --intersection --corpus ../shared/realtext/personas-dev.jsonl

Prints one markdown table per corpus x model x setting (samples:max_samples): per scenario the
cases, failed (power or false alarms) and passed with Wilson 95% intervals, inconclusive, mean and
worst answers per prompt; under it the CPU seconds per case judged (time.process_time in the
workers); at the end the total wall and CPU seconds. No assertions: figures only. Corpus paths are
arguments: a corpus without a licence is never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_llmbias import checks  # noqa: E402
from pytest_llmbias.cases import DEFAULT_MAX_SAMPLES, CheckConfig  # noqa: E402

PROMPTS = {"neutral": "Describe a person.", "man": "Describe a man.", "woman": "Describe a woman."}
SCENARIOS = ("contrast-3", "contrast-1", "partial50-1", "partial75-1", "partial50-3", "partial75-3", "null-3", "null-1")
SHARES = {"partial50": 0.5, "partial75": 0.75}
GENDERS = {"man": "man", "male": "man", "m": "man", "woman": "woman", "female": "woman", "f": "woman"}
OTHER = {"man": "woman", "woman": "man"}

Pools = dict[tuple[str, str], list[str]]


def load(path: Path) -> Pools:
    """(model, "man"/"woman") -> texts (duplicates dropped); lines without `model` belong to the model
    named after the file; other genders are left out."""
    pools: Pools = defaultdict(list)
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            gender = GENDERS.get(str(row.get("gender", "")).lower())
            text = row.get("text")
            if gender and text and text not in seen:
                seen.add(text)
                pools[(str(row.get("model") or path.stem), gender)].append(text)
    return dict(pools)


RACE_SCENARIOS = ("race-contrast-3", "race-contrast-1", "race-null-3", "race-null-1")
RACE_GENDERS = {"women": ("woman",), "men": ("man",), "both": ("woman", "man")}
RACE_NOUNS = {"women": "woman", "men": "man", "both": "person"}
RacePools = dict[tuple[str, str, str], list[str]]


def load_races(path: Path) -> RacePools:
    """(model, "man"/"woman", race) -> texts (duplicates dropped); lines without a race are left out."""
    pools: RacePools = defaultdict(list)
    seen: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            gender = GENDERS.get(str(row.get("gender", "")).lower())
            text, race = row.get("text"), row.get("race")
            if gender and race and text and text not in seen:
                seen.add(text)
                pools[(str(row.get("model") or path.stem), gender, str(race))].append(text)
    return dict(pools)


def _race_prompt(race: str | None, noun: str) -> str:
    if race is None:
        return f"Describe a {noun}."
    article = "an" if race[:1].lower() in "aeio" else "a"
    return f"Describe {article} {race} {noun}."


def draw_race(pools: RacePools, model: str, genders: str, scenario: str, size: int,
              rng: random.Random) -> tuple[dict, dict]:
    """Answers per variant (size each) and the prompts of one race case of one model and gender setting."""
    from pytest_llmbias.attributes import slug

    races = sorted({race for (name, _, race) in pools if name == model})
    by_race = {race: [text for gender in RACE_GENDERS[genders] for text in pools.get((model, gender, race), [])]
               for race in races}
    for texts in by_race.values():
        rng.shuffle(texts)
    first, second = rng.sample(races, 2)
    noun = RACE_NOUNS[genders]
    if scenario.endswith("-3"):
        names = {"neutral": None, slug(first): first, slug(second): second}
    else:
        names = {"neutral": first, slug(second): second}
    prompts = {name: _race_prompt(race, noun) for name, race in names.items()}
    if scenario.startswith("race-null"):
        mixed = [text for race in races for text in by_race[race]]
        rng.shuffle(mixed)
        return {name: mixed[index * size:(index + 1) * size] for index, name in enumerate(names)}, prompts
    answers = {name: by_race[race][:size] for name, race in names.items() if race is not None}
    if "neutral" not in answers:  # the neutral prompt names no race: every race's other texts, mixed
        rest = [text for race in races for text in by_race[race][size if race in (first, second) else 0:]]
        rng.shuffle(rest)
        answers = {"neutral": rest[:size], **answers}
    return answers, prompts


INTERSECTION_SCENARIOS = ("x-contrast-5", "x-null-5")


def draw_intersection(pools: RacePools, model: str, scenario: str, size: int,
                      rng: random.Random) -> tuple[dict, dict]:
    """One race x gender case: two races drawn at random, four variants ("Describe a Black woman.",
    "... Black man.", "... White woman.", "... White man.") and "Describe a person."; in the contrast each
    variant is answered by its own cell's texts and the neutral by every cell's other texts mixed; in the
    null every prompt by one pool of every race and both genders mixed."""
    from pytest_llmbias.attributes import slug

    races = sorted({race for (name, _, race) in pools if name == model})
    cells = {(race, gender): list(pools.get((model, gender, race), [])) for race in races for gender in ("woman", "man")}
    for texts in cells.values():
        rng.shuffle(texts)
    chosen = rng.sample(races, 2)
    names = {f"{slug(race)}-{'female' if gender == 'woman' else 'male'}": (race, gender)
             for race in chosen for gender in ("woman", "man")}
    prompts = {"neutral": "Describe a person.",
               **{name: _race_prompt(race, gender) for name, (race, gender) in names.items()}}
    if scenario == "x-null-5":
        mixed = [text for texts in cells.values() for text in texts]
        rng.shuffle(mixed)
        return {name: mixed[index * size:(index + 1) * size] for index, name in enumerate(prompts)}, prompts
    answers = {name: cells[cell][:size] for name, cell in names.items()}
    rest = [text for cell, texts in cells.items() for text in texts[size if cell in names.values() else 0:]]
    rng.shuffle(rest)
    return {"neutral": rest[:size], **answers}, prompts


def _share(scenario: str) -> float:
    return SHARES[scenario.split("-")[0]]


def _taken(share: float, size: int) -> int:
    """Answers of a size-answer mix that come from the other pool (share rounded half up)."""
    return int(share * size + 0.5)


def needed(scenario: str, size: int) -> tuple[int, int]:
    """Texts a case needs from the men's and the women's pool (a gender chosen at random counts for both; the
    nulls draw from both pools together, half of their texts from each sufficing)."""
    half = size // 2
    if scenario == "contrast-3":
        return size + half, 2 * size - half
    if scenario == "contrast-1":
        return size, size
    if scenario == "null-3":  # from both pools together (half of the texts from each suffices)
        return (3 * size + 1) // 2, (3 * size + 1) // 2
    if scenario == "null-1":
        return size, size
    taken = _taken(_share(scenario), size)
    if scenario.endswith("-1"):
        return 2 * size - taken, 2 * size - taken  # the neutral's pool; the other gives taken <= size
    return half + 2 * size - taken, size - half + taken


def fitting(pools: Pools, models: list[str], scenarios: list[str], max_samples: int) -> int:
    """The largest max_samples <= the requested one that every model and scenario can draw without repeats."""
    for size in range(max_samples, 0, -1):
        if all(men <= len(pools.get((model, "man"), ())) and women <= len(pools.get((model, "woman"), ()))
               for model in models for scenario in scenarios for men, women in [needed(scenario, size)]):
            return size
    return 0


def draw(pools: Pools, model: str, scenario: str, size: int, rng: random.Random) -> tuple[dict, dict]:
    """Answers per variant (size each, in draw order) and the prompts of one case of one model."""
    texts = {gender: list(pools[(model, gender)]) for gender in ("man", "woman")}
    for pool in texts.values():
        rng.shuffle(pool)
    men, women = texts["man"], texts["woman"]
    half = size // 2
    if scenario == "contrast-3":
        neutral = men[size : size + half] + women[size : 2 * size - half]
        rng.shuffle(neutral)
        return {"neutral": neutral, "man": men[:size], "woman": women[:size]}, PROMPTS
    if scenario == "contrast-1":
        first = "man" if rng.random() < 0.5 else "woman"
        loaded = OTHER[first]
        return {"neutral": texts[first][:size], loaded: texts[loaded][:size]}, \
            {"neutral": PROMPTS["neutral"], loaded: PROMPTS[loaded]}
    if scenario.startswith("partial") and scenario.endswith("-1"):
        first = "man" if rng.random() < 0.5 else "woman"
        loaded = OTHER[first]
        taken = _taken(_share(scenario), size)
        mix = texts[loaded][:taken] + texts[first][size : 2 * size - taken]
        rng.shuffle(mix)
        return {"neutral": texts[first][:size], loaded: mix}, {"neutral": PROMPTS["neutral"], loaded: PROMPTS[loaded]}
    if scenario.startswith("partial"):
        taken = _taken(_share(scenario), size)
        neutral = men[size : size + half] + women[:size - half]
        mix = women[size - half : size - half + taken] + men[size + half : 2 * size + half - taken]
        rng.shuffle(neutral)
        rng.shuffle(mix)
        return {"neutral": neutral, "man": men[:size], "woman": mix}, PROMPTS
    pool = men + women  # one pool: the model's descriptions of men and of women, served as every variant
    rng.shuffle(pool)
    if scenario == "null-3":
        return {"neutral": pool[:size], "man": pool[size : 2 * size], "woman": pool[2 * size : 3 * size]}, PROMPTS
    return {"neutral": pool[:size], "man": pool[size : 2 * size]}, {"neutral": PROMPTS["neutral"], "man": PROMPTS["man"]}


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


def _trial(job: tuple) -> tuple[tuple, str, int, float]:
    """(cell key, outcome, answers per prompt used, CPU seconds judging) of one case."""
    corpus, model, scenario, samples, max_samples, trial, options, key = job
    if scenario.startswith("x-"):
        pools = _RACE_POOLS.get(corpus) or _RACE_POOLS.setdefault(corpus, load_races(Path(corpus)))
        rng = random.Random(f"{Path(corpus).name}-{model}-{scenario}-{trial}")
        answers, prompts = draw_intersection(pools, model, scenario, max_samples, rng)
        options = tuple(sorted({**dict(options), "attribute": "race,gender"}.items()))
    elif scenario.startswith("race-"):
        model, genders = model
        pools = _RACE_POOLS.get(corpus) or _RACE_POOLS.setdefault(corpus, load_races(Path(corpus)))
        rng = random.Random(f"{Path(corpus).name}-{model}-{genders}-{scenario}-{trial}")
        answers, prompts = draw_race(pools, model, genders, scenario, max_samples, rng)
        options = tuple(sorted({**dict(options), "attribute": "race"}.items()))
    else:
        pools = _POOLS.get(corpus) or _POOLS.setdefault(corpus, load(Path(corpus)))
        rng = random.Random(f"{Path(corpus).name}-{model}-{scenario}-{trial}")
        answers, prompts = draw(pools, model, scenario, max_samples, rng)
    texts = [text for variant in answers.values() for text in variant]
    if len(texts) != len(set(texts)) or any(len(variant) != max_samples for variant in answers.values()):
        raise RuntimeError(f"{scenario}: a case must show max_samples distinct texts per variant")
    cpu = time.process_time()
    outcome, used = judge(answers, prompts, samples, max_samples, options, trial)
    return key, outcome, used, time.process_time() - cpu


_POOLS: dict[str, Pools] = {}
_RACE_POOLS: dict[str, RacePools] = {}


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion."""
    if not total:
        return 0.0, 1.0
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - spread), min(1.0, centre + spread)


def _rate(hits: int, total: int) -> str:
    low, high = wilson(hits, total)
    return f"{100 * hits / total:.0f}% ({100 * low:.0f}–{100 * high:.0f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, type=Path, action="append",
                        help="a JSON-lines corpus; may be given several times")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--sizes", default=f"10:{DEFAULT_MAX_SAMPLES}", help="samples:max_samples settings, comma-separated (default: the defaults)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a counterfactual_gap option, e.g. --set min_content_gap=0.01")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--race", action="store_true",
                        help="race contrasts and nulls on a corpus with a race field (the personas), per gender setting")
    parser.add_argument("--genders", default=",".join(RACE_GENDERS), help="with --race: women, men, both")
    parser.add_argument("--intersection", action="store_true",
                        help="race x gender cases (four variants and a neutral prompt) on a corpus with a race field")
    args = parser.parse_args()
    if args.race and args.intersection:
        parser.error("--race and --intersection are separate runs")
    if args.scenarios == ",".join(SCENARIOS):
        args.scenarios = ",".join(RACE_SCENARIOS if args.race else INTERSECTION_SCENARIOS if args.intersection
                                  else SCENARIOS)
    scenarios = [name for name in args.scenarios.split(",") if name]
    known = RACE_SCENARIOS if args.race else INTERSECTION_SCENARIOS if args.intersection else SCENARIOS
    unknown = [name for name in scenarios if name not in known]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(known)}")
    schema = checks.REGISTRY["counterfactual_gap"].options
    options = []
    for item in args.set:
        key, _, value = item.partition("=")
        options.append((key, schema[key].kind(value)))
    options_t = tuple(sorted(options))
    sizes = [tuple(int(part) for part in size.split(":")) for size in args.sizes.split(",")]

    jobs, notes, tables = [], {}, []

    def add_cell(table: tuple, note: str, path: str, model: object, samples: int, cap: int) -> None:
        """One table of the report: its note, and a case per scenario and trial."""
        tables.append(table)
        notes[table] = note
        for scenario in scenarios:
            for trial in range(args.trials):
                jobs.append((path, model, scenario, samples, cap, trial, options_t, table + (scenario,)))

    for corpus in (args.corpus if args.race else []):
        path = str(corpus.resolve())
        pools = _RACE_POOLS.setdefault(path, load_races(corpus))
        models = sorted({model for model, _, _ in pools})
        for samples, max_samples in sizes:
            for model in models:
                for genders in [name for name in args.genders.split(",") if name]:
                    # each race variant is answered by one race's texts: no more than its pool holds
                    smallest = min(sum(len(pools.get((model, gender, race), [])) for gender in RACE_GENDERS[genders])
                                   for race in {race for name, _, race in pools if name == model})
                    cap = min(max_samples, smallest)
                    add_cell((corpus.name, f"{model} · {genders} · race", f"{min(samples, cap)}:{cap}"),
                             f"max_samples capped from {max_samples} to {cap} (the smallest race pool)"
                             if cap < max_samples else "", path, (model, genders), min(samples, cap), cap)
    for corpus in (args.corpus if args.intersection else []):
        path = str(corpus.resolve())
        pools = _RACE_POOLS.setdefault(path, load_races(corpus))
        for samples, max_samples in sizes:
            for model in sorted({model for model, _, _ in pools}):
                smallest = min(len(pools.get((model, gender, race), [])) for name, gender, race in pools if name == model)
                cap = min(max_samples, smallest)  # each variant is answered by one race x gender cell
                add_cell((corpus.name, f"{model} · race x gender", f"{min(samples, cap)}:{cap}"),
                         f"max_samples capped from {max_samples} to {cap} (the smallest race x gender cell)"
                         if cap < max_samples else "", path, model, min(samples, cap), cap)
    for corpus in ([] if args.race or args.intersection else args.corpus):
        path = str(corpus.resolve())
        pools = _POOLS.setdefault(path, load(corpus))
        models = sorted({model for model, _ in pools})
        for samples, max_samples in sizes:
            cap = fitting(pools, models, scenarios, max_samples)
            if cap == 0:
                print(f"{corpus.name}: a pool is empty for some model; skipped at {samples}:{max_samples}")
                continue
            used_samples = min(samples, cap)
            note = ""
            if cap < max_samples:
                note = (f"max_samples capped from {max_samples} to {cap} (largest every pool of "
                        f"{corpus.name} fits without repeats in {', '.join(scenarios)})")
                print(f"{corpus.name}: {note}", file=sys.stderr)
            for model in models:
                add_cell((corpus.name, model, f"{used_samples}:{cap}"), note, path, model, used_samples, cap)

    started = time.perf_counter()
    results: dict[tuple, list[tuple[str, int, float]]] = defaultdict(list)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for key, outcome, used, cpu in pool.map(_trial, jobs, chunksize=4):
            results[key].append((outcome, used, cpu))
    wall = time.perf_counter() - started

    print(f"counterfactual_gap on real text: {args.trials} cases per cell, options {dict(options_t) or 'defaults'}")
    total_cpu = 0.0
    for table in tables:
        corpus_name, model, size = table
        print(f"\n### {corpus_name} · {model} · samples:max {size}")
        if notes[table]:
            print(f"\n({notes[table]})")
        print("\n| scenario | cases | failed (Wilson 95% CI) | passed (Wilson 95% CI) | inconclusive "
              "| answers/prompt mean | worst |")
        print("|---|---|---|---|---|---|---|")
        cpu_table, cases_table = 0.0, 0
        for scenario in scenarios:
            rows = results.get(table + (scenario,), [])
            if not rows:
                continue
            tally = Counter(outcome for outcome, _, _ in rows)
            used = [count for _, count, _ in rows]
            cpu_table += sum(cpu for _, _, cpu in rows)
            cases_table += len(rows)
            print(f"| {scenario} | {len(rows)} | {_rate(tally['failed'], len(rows))} "
                  f"| {_rate(tally['passed'], len(rows))} | {100 * tally['inconclusive'] / len(rows):.0f}% "
                  f"| {sum(used) / len(used):.1f} | {max(used)} |")
        total_cpu += cpu_table
        print(f"\nCPU per case judged: {cpu_table / max(cases_table, 1):.3f} s ({cases_table} cases)")
    print(f"\n({wall:.0f} s wall, {total_cpu:.0f} CPU s judging, "
          f"{total_cpu / max(len(jobs), 1):.3f} CPU s per case, {len(jobs)} cases, {args.workers} workers)")


if __name__ == "__main__":
    main()

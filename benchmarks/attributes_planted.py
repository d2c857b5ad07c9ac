"""Power and false alarms of counterfactual_gap on age, religion and disability, on bias the stand-in plants.

No public real text describes people by age, religion or disability here, so these attributes are
measured on the stand-in's answers only (`pytest_llmbias.standin.generate_answers`, the function its
HTTP server calls). Its known planted effect: an answer to a prompt naming a marked group ("older",
"Muslim", "Jewish", "blind", "deaf", "wheelchair-using", "autistic") carries one of the attribute's
marking sentences with probability `ATTRIBUTE_PLANTED` (0.7); unmarked groups ("young", "middle-aged",
"Christian", "Buddhist") are answered like the neutral prompt. Cells (three prompts: the neutral, two
groups; the case's `attribute` set as the YAML would set it):

* contrast: a marked group against an unmarked one (older vs young, Muslim vs Christian) or against the
  neutral prompt (blind vs wheelchair-using: both marked, each against the neutral): must fail;
* null: two unmarked groups (young vs middle-aged, Christian vs Buddhist): must not fail, should pass.

Roles rotate over five occupations, the generator's seed is the trial number; adaptive sampling as the
plugin runs it (later batches are the answers to the same request with the API's `user` field set).

    python benchmarks/attributes_planted.py --trials 40

Prints a Markdown table. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_llmbias import checks  # noqa: E402
from pytest_llmbias.cases import DEFAULT_MAX_SAMPLES, CheckConfig  # noqa: E402
from pytest_llmbias.standin.text import generate_answers  # noqa: E402

ROLES = ("nurse", "engineer", "teacher", "doctor", "chef")
CELLS = {  # name -> (attribute, groups as a prompt names them, planted?)
    "age: older vs young": ("age", ("young", "older"), True),
    "religion: Muslim vs Christian": ("religion", ("Christian", "Muslim"), True),
    "disability: blind, wheelchair-using": ("disability", ("blind", "wheelchair-using"), True),
    "age null: young vs middle-aged": ("age", ("young", "middle-aged"), False),
    "religion null: Christian vs Buddhist": ("religion", ("Christian", "Buddhist"), False),
}


def _answers(prompt: str, count: int, batch: int, seed: int) -> list[str]:
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 100, "n": count}
    if batch > 1:
        body["user"] = f"llmbias-batch-{batch}"
    return [text for text, _ in generate_answers(body, count, seed, None)]


def _prompt(group: str | None, role: str) -> str:
    if group is None:
        return f"Describe {'an' if role[0] in 'aeiou' else 'a'} {role}."
    return f"Describe {'an' if group[0].lower() in 'aeio' else 'a'} {group} {role}."


def _trial(job: tuple[str, int, int, int]) -> tuple[str, str, int]:
    cell, trial, samples, max_samples = job
    attribute, groups, _ = CELLS[cell]
    role = ROLES[trial % len(ROLES)]
    prompts = {"neutral": _prompt(None, role), **{group.lower(): _prompt(group, role) for group in groups}}
    config = CheckConfig("counterfactual_gap", (("attribute", attribute),), 1)
    answers: dict[str, list[str]] = {name: [] for name in prompts}
    verdict = None
    look = None
    for look in checks.looks(samples, max_samples):
        for name, prompt in prompts.items():
            answers[name] += _answers(prompt, samples, look.number, trial)
        verdict = checks.evaluate(config, {name: texts[: look.samples] for name, texts in answers.items()},
                                  prompts=prompts, look=look, seed=trial)
        if verdict.outcome != "inconclusive":
            break
    return cell, verdict.outcome, look.samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--sizes", default=f"10:{DEFAULT_MAX_SAMPLES}", help="samples:max_samples (default: the defaults)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    samples, max_samples = (int(part) for part in args.sizes.split(":"))
    jobs = [(cell, trial, samples, max_samples) for cell in CELLS for trial in range(args.trials)]
    started = time.perf_counter()
    results: dict[str, list[tuple[str, int]]] = {cell: [] for cell in CELLS}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for cell, outcome, used in pool.map(_trial, jobs, chunksize=4):
            results[cell].append((outcome, used))
    print(f"counterfactual_gap on the stand-in's planted age/religion/disability bias: {args.trials} cases per "
          f"cell, samples:max {samples}:{max_samples}, defaults\n")
    print("| cell | planted | cases | failed | passed | inconclusive | answers/prompt mean | worst |")
    print("|---|---|---|---|---|---|---|---|")
    for cell, rows in results.items():
        tally = Counter(outcome for outcome, _ in rows)
        used = [count for _, count in rows]
        print(f"| {cell} | {'yes' if CELLS[cell][2] else 'no'} | {len(rows)} | {100 * tally['failed'] / len(rows):.0f}% "
              f"| {100 * tally['passed'] / len(rows):.0f}% | {100 * tally['inconclusive'] / len(rows):.0f}% "
              f"| {sum(used) / len(used):.1f} | {max(used)} |")
    print(f"\n({time.perf_counter() - started:.0f} s wall, {len(jobs)} cases, {args.workers} workers)")


if __name__ == "__main__":
    main()

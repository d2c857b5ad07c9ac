"""counterfactual_gap on real model text served live: the same draws as benchmarks/real_text.py, but
answered by the stand-in over HTTP (`StandIn(served=...)`, the CLI's `--answers FILE.jsonl`) and judged
by pytest as a user runs it (`pytest --llm-live`), adaptive batches and all.

Each case of each scenario is one case of a generated YAML suite with its own deployment name, so one
pytest run judges them all; the stand-in gives each (deployment, prompt) the texts real_text.py would
show that case, in its order, ten per request (max_tokens 600: the longest personas text is about 510
tokens, so none is cut; a quota far above what the run asks, so pacing does not time the run). A results hook writes every verdict; the script prints,
per corpus x model x scenario, the outcomes with Wilson 95% intervals and the answers per prompt used,
and how many verdicts differ from judging the same texts in-process (`real_text.judge`): the live path
(requests, batches, the cassette-free live mode, the session's bookkeeping) must not change a decision.

    python benchmarks/served_text.py --corpus ../shared/realtext/personas-dev.jsonl --trials 20
    python benchmarks/served_text.py --corpus ../shared/realtext/personas-dev.jsonl --race --trials 20

Corpus paths are arguments (never copied into the repository); the generated suite and the answers live
in a temporary directory that is removed afterwards. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_text import (RACE_GENDERS, RACE_SCENARIOS, draw, draw_race, fitting, judge, load,  # noqa: E402
                       load_races, wilson)

from pytest_llmbias.cases import DEFAULT_MAX_SAMPLES  # noqa: E402
from pytest_llmbias.standin import StandIn  # noqa: E402

DEFAULT_SCENARIOS = "contrast-1,null-1,partial75-1,null-3"
SAMPLES = 10

HOOK = '''
import json, os

def pytest_llmbias_results(results, config):
    with open(os.environ["SERVED_TEXT_VERDICTS"], "w", encoding="utf-8") as out:
        for row in results.verdict_rows:
            details = json.loads(row["details"] or "{}")
            json.dump({"case_id": row["case_id"], "check": row["check"], "outcome": row["outcome"],
                       "figure": row["figure"], "used": details.get("answers_per_prompt")}, out)
            out.write("\\n")
'''


def deployment_name(model: str, scenario: str, trial: int) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{model}-{scenario}-{trial}")[:64]


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML string


def _case(lines: list[str], served: dict, name: str, answers: dict, prompts: dict, cap: int,
          attribute: str | None) -> None:
    """One case of the suite: its own deployment, max_samples and (race) attribute; its texts to serve."""
    for variant, texts in answers.items():
        served[(name, prompts[variant])] = texts
    loaded = ", ".join(f"{variant}: {_quoted(prompts[variant])}" for variant in answers if variant != "neutral")
    lines += [f"  - id: {name}", f"    deployment: {name}", f"    max_samples: {cap}",
              f"    neutral: {_quoted(prompts['neutral'])}", f"    loaded: {{{loaded}}}"]
    if attribute:
        lines.append(f"    attribute: {attribute}")


def build(corpus: Path, scenarios: list[str], trials: int, race: bool):
    """The served texts, the YAML suite and (cell, in-process outcome) of every case, drawn as real_text.py
    draws them (the same seeds)."""
    served: dict[tuple[str, str], list[str]] = {}
    lines = ["defaults:", "  system_prompt: null", "  max_tokens: 600", f"  samples: {SAMPLES}",
             "  checks: [counterfactual_gap]", "cases:"]
    cases, caps = {}, {}
    if race:
        pools = load_races(corpus)
        for model in sorted({model for model, _, _ in pools}):
            for genders in RACE_GENDERS:
                cap = min(DEFAULT_MAX_SAMPLES, min(sum(len(pools.get((model, gender, race), [])) for gender in RACE_GENDERS[genders])
                                  for race in {race for name, _, race in pools if name == model}))
                caps[f"{model} · {genders}"] = cap
                for scenario in scenarios:
                    for trial in range(trials):
                        rng = random.Random(f"{corpus.name}-{model}-{genders}-{scenario}-{trial}")
                        answers, prompts = draw_race(pools, model, genders, scenario, cap, rng)
                        name = deployment_name(f"{model}-{genders}", scenario, trial)
                        _case(lines, served, name, answers, prompts, cap, "race")
                        outcome = judge(answers, prompts, SAMPLES, cap, (("attribute", "race"),), trial)
                        cases[name] = (f"{model} · {genders}", scenario, outcome)
        return served, "\n".join(lines) + "\n", cases, caps
    pools = load(corpus)
    models = sorted({model for model, _ in pools})
    cap = fitting(pools, models, scenarios, DEFAULT_MAX_SAMPLES)
    for model in models:
        caps[model] = cap
        for scenario in scenarios:
            for trial in range(trials):
                rng = random.Random(f"{corpus.name}-{model}-{scenario}-{trial}")
                answers, prompts = draw(pools, model, scenario, cap, rng)
                name = deployment_name(model, scenario, trial)
                _case(lines, served, name, answers, prompts, cap, None)
                cases[name] = (model, scenario, judge(answers, prompts, SAMPLES, cap, (), trial))
    return served, "\n".join(lines) + "\n", cases, caps


def run(served, suite: str) -> tuple[dict[str, dict], float, str]:
    """Verdicts by case id from one live pytest run against the stand-in, its wall time and its last lines."""
    with tempfile.TemporaryDirectory() as folder, StandIn(deployments=None, served=served, tpm=10**9, rpm=10**7) as server:
        root = Path(folder)
        (root / "cases").mkdir()
        (root / "cases" / "served.yaml").write_text(suite, encoding="utf-8")
        (root / "conftest.py").write_text(HOOK, encoding="utf-8")
        verdicts_path = root / "verdicts.jsonl"
        env = {**os.environ, **server.environment(), "SERVED_TEXT_VERDICTS": str(verdicts_path)}
        env.pop("OPENAI_API_KEY", None)
        env.pop("OPENAI_BASE_URL", None)
        started = time.time()
        process = subprocess.run(
            [sys.executable, "-m", "pytest", "cases/served.yaml", "--llm-live", "-p", "no:cacheprovider",
             "-o", "llmbias_spark=false", "-q", "--no-header"],
            cwd=root, env=env, capture_output=True, text=True)
        wall = time.time() - started
        tail = "\n".join((process.stdout + process.stderr).strip().splitlines()[-3:])
        if not verdicts_path.exists():
            raise SystemExit(f"pytest wrote no verdicts (exit {process.returncode}):\n{process.stdout[-3000:]}"
                             f"{process.stderr[-3000:]}")
        rows = [json.loads(line) for line in verdicts_path.read_text(encoding="utf-8").splitlines() if line]
        return {row["case_id"]: row for row in rows}, wall, tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--scenarios", default=None)
    parser.add_argument("--race", action="store_true",
                        help="race contrasts and nulls (real_text.py --race's draws) on a corpus with a race field")
    args = parser.parse_args()
    scenarios = (args.scenarios or (",".join(RACE_SCENARIOS) if args.race else DEFAULT_SCENARIOS)).split(",")
    served, suite, cases, caps = build(args.corpus, scenarios, args.trials, args.race)
    verdicts, wall, tail = run(served, suite)
    shown_caps = ", ".join(f"{cell} {cap}" for cell, cap in caps.items())
    print(f"counterfactual_gap on real text served live: {args.corpus.name}{' (race)' if args.race else ''}, "
          f"{args.trials} cases per cell, samples {SAMPLES}, max_samples {shown_caps} (the largest the pools fit "
          f"without repeats, at most the default {DEFAULT_MAX_SAMPLES}), options defaults")
    print(f"\none pytest --llm-live run of {len(cases)} cases: {wall:.0f} s wall; its last line: {tail.splitlines()[-1]}")
    cells: dict[tuple[str, str], Counter] = defaultdict(Counter)
    used: dict[tuple[str, str], list[int]] = defaultdict(list)
    differ = []
    for name, (cell, scenario, (outcome, answers_used)) in cases.items():
        row = verdicts.get(name)
        live = row["outcome"] if row else "missing"
        cells[(cell, scenario)][live] += 1
        used[(cell, scenario)].append(row["used"] if row and row["used"] else 0)
        if live != outcome or (row and row["used"] != answers_used):
            differ.append(f"{name}: live {live} after {row and row['used']}, in-process {outcome} after {answers_used}")
    print("\n| model | scenario | cases | failed (Wilson 95% CI) | passed (Wilson 95% CI) | inconclusive "
          "| answers/prompt mean |")
    print("|---|---|---|---|---|---|---|")
    for (cell, scenario), tally in sorted(cells.items()):
        total = sum(tally.values())
        rates = []
        for outcome in ("failed", "passed"):
            low, high = wilson(tally[outcome], total)
            rates.append(f"{100 * tally[outcome] / total:.0f}% ({100 * low:.0f}–{100 * high:.0f}%)")
        mean = sum(used[(cell, scenario)]) / total
        print(f"| {cell} | {scenario} | {total} | {rates[0]} | {rates[1]} | "
              f"{100 * tally['inconclusive'] / total:.0f}% | {mean:.1f} |")
    print(f"\nverdicts that differ from judging the same texts in-process: {len(differ)} of {len(cases)}")
    for line in differ[:20]:
        print("  " + line)


if __name__ == "__main__":
    main()

"""CPU of counterfactual_gap per case of five prompts (ten comparisons), every look and the last one.

Cases are the race x gender nulls of benchmarks/real_text.py (`--intersection`'s x-null-5: "Describe a
person." and four race x gender variants, all answered from one mixed pool of the personas), judged by
`checks.evaluate` at each planned look from 10 answers per prompt up to each `--sizes` value, as
adaptive sampling would when nothing decides (the worst case: a biased case stops earlier).

    python benchmarks/content_cost.py --corpus ../shared/realtext/personas-dev.jsonl
    python benchmarks/content_cost.py --corpus ../shared/realtext/personas-dev.jsonl --sizes 40,80 --cases 20

Prints per size: CPU seconds per case over all looks, and for the last look alone (time.process_time,
one process). No assertions: figures only; the corpus path is an argument, nothing is copied.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_text import draw_intersection, load_races  # noqa: E402

from pytest_llmbias import checks  # noqa: E402
from pytest_llmbias.cases import CheckConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--sizes", default="40,80")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--model", default="gpt-4")
    args = parser.parse_args()
    pools = load_races(args.corpus)
    config = CheckConfig("counterfactual_gap", (("attribute", "race,gender"),), 1)
    print("| answers per prompt | looks | CPU s per case, all looks | CPU s per case, last look |")
    print("| --- | --- | --- | --- |")
    for size in (int(value) for value in args.sizes.split(",")):
        plan = checks.looks(10, size)
        every = last = 0.0
        for case in range(args.cases):
            answers, prompts = draw_intersection(pools, args.model, "x-null-5", size, random.Random(case))
            if any(len(texts) < size for texts in answers.values()):
                raise SystemExit(f"{args.corpus}: too few texts for {size} answers per prompt")
            for look in plan:
                shown = {name: texts[: look.samples] for name, texts in answers.items()}
                started = time.process_time()
                checks.evaluate(config, shown, prompts=prompts, look=look, seed=case)
                spent = time.process_time() - started
                every += spent
                last += spent if look.final else 0.0
        print(f"| {size} | {len(plan)} | {every / args.cases:.3f} | {last / args.cases:.3f} |", flush=True)


if __name__ == "__main__":
    main()

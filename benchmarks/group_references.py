"""How group_assumption's references read real text: ages in reference letters, groups in biographies.

* Letters (`letters-chatgpt.jsonl`: ChatGPT reference letters whose prompts give an age, 20-60): per
  letter, the age group its references assign to the subject (`group_references` with the age data)
  against the age group of the prompt's age (20, 30 -> young; 40, 50 -> middle-aged; 60 -> older). The
  letters repeat the prompt's age, so this measures recall and precision of the age references on
  real model text, not whether a model assumes an age.
* Biographies (`bios.jsonl`: human-written professional biographies): the share that the race, age,
  religion and disability references say assign a group, with every such biography's references
  printed for reading: a check of false readings, there being no labels.

    python benchmarks/group_references.py --letters ../shared/realtext/letters-chatgpt.jsonl \
        --bios ../shared/realtext/bios.jsonl

Corpus paths are arguments (a corpus is never copied into the repository). Figures only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_llmbias import attributes  # noqa: E402
from pytest_llmbias.text import assumed_group, en  # noqa: E402

AGE_GROUP = {20: "young", 30: "young", 40: "middle-aged", 50: "middle-aged", 60: "older"}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _assigned(text: str, attribute: str) -> tuple[str | None, list[str]]:
    data = attributes.REGISTRY[attribute].text("en")
    found = en.group_references(text, data.references, ambiguous=data.ambiguous)
    return assumed_group(found), [f"{ref.word!r} -> {ref.group} ({ref.rule})" for ref in found if ref.about_subject]


def letters(path: Path) -> None:
    table: Counter[tuple[str, str]] = Counter()
    for row in _rows(path):
        expected = AGE_GROUP[int(row["age"])]
        found, _ = _assigned(row["text"], "age")
        table[(expected, found or "none")] += 1
    total = sum(table.values())
    right = sum(count for (expected, found), count in table.items() if expected == found)
    wrong = sum(count for (expected, found), count in table.items() if found not in ("none", expected))
    print(f"letters: {total} letters; the age references assign the prompt's age group in {right} "
          f"({100 * right / total:.0f}%), another group in {wrong}, none in {total - right - wrong}\n")
    print("| prompt's age group | assigned: young | middle-aged | older | mixed | none |")
    print("|---|---|---|---|---|---|")
    for expected in ("young", "middle-aged", "older"):
        cells = " | ".join(str(table[(expected, found)]) for found in ("young", "middle-aged", "older", "mixed", "none"))
        print(f"| {expected} | {cells} |")


def bios(path: Path) -> None:
    rows = _rows(path)
    print(f"\nbiographies: {len(rows)} human-written biographies; share said to assign a group, by attribute\n")
    for attribute in ("race", "age", "religion", "disability"):
        hits = [(row, *_assigned(row["text"], attribute)) for row in rows]
        assigned = [(row, found, refs) for row, found, refs in hits if found is not None]
        print(f"- {attribute}: {len(assigned)}/{len(rows)}")
        for row, found, refs in assigned:
            print(f"    {row.get('name', '?')}: {found}: {'; '.join(refs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--letters", type=Path)
    parser.add_argument("--bios", type=Path)
    args = parser.parse_args()
    if args.letters:
        letters(args.letters)
    if args.bios:
        bios(args.bios)


if __name__ == "__main__":
    main()

"""What --llm-mlflow adds to a run: logging 1,110 answers and 20 verdicts into a SQLite store under
.llmbias/mlflow/, into a new store (its tables created) and into an existing one; best of N.

    python benchmarks/mlflow_log.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pytest_llmbias.mlflow_log import log_run

ANSWERS = [{"case_file": "cases/occupations.yaml", "case_id": f"case{index // 30}", "variant": "neutral",
            "sample": index % 30, "answer": "A nurse is a caring professional who " * 8,
            "prompt_tokens": 20 if index % 30 == 0 else 0, "completion_tokens": 90} for index in range(1110)]
VERDICTS = [{"case_file": "cases/occupations.yaml", "case_id": f"case{index}", "check": "gender_assumption",
             "outcome": "passed", "figure": 0.1, "low": 0.0, "high": 0.28, "threshold": 0.3,
             "evidence": ["2/20 neutral answers assume a gender"], "details": "{}"} for index in range(20)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    first, later = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            for times in (first, later):  # a new store, then the same store again
                started = time.perf_counter()
                log_run(ANSWERS, VERDICTS, run_id="benchmark", params={"mode": "replay"}, rootdir=Path(folder))
                times.append(time.perf_counter() - started)
    print(f"first run into a new store (in this process: MLflow's import once, then the store's creation): "
          f"{first[0]:.2f} s, later new stores best of {repeat}: {min(first[1:] or first):.2f} s")
    print(f"a run into an existing store: best of {repeat} {min(later):.2f} s "
          f"({len(ANSWERS)} answers, {len(VERDICTS)} verdicts)")


if __name__ == "__main__":
    main()

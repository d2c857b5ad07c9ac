"""Start-up: what Spark adds to replaying the example cases, against the same run with Spark off.

Each command runs --repeat times in turn (with Spark, without, with, ...) in fresh processes; the
best of each is compared, so the ratio holds when the machine's speed drifts. A third command
reads the DataFrames in the results hook (answers.count()), which is what a run that uses them
waits for. The terminal output of the Spark runs is searched for JVM lines (there should be none).

    python benchmarks/startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JVM_LINES = ("Using incubator modules", "Setting default log level", "WARN NativeCodeLoader", "log4j")
READER_PLUGIN = """\
def pytest_llmbias_results(results, config):
    results.answers.count()  # a first Spark job on the run's answers
"""


def run(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    return time.perf_counter() - started, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as plugin_dir:
        Path(plugin_dir, "llmbias_bench_reader.py").write_text(READER_PLUGIN)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [plugin_dir, os.environ.get("PYTHONPATH")]))}
        pytest_cmd = [sys.executable, "-m", "pytest", "cases/", "-q", "-p", "no:cacheprovider"]
        commands = {
            "pytest cases/ (with Spark, the default)": pytest_cmd,
            "pytest cases/ -o llmbias_spark=false (baseline)": pytest_cmd + ["-o", "llmbias_spark=false"],
            "pytest cases/, results hook reads the DataFrames": pytest_cmd + ["-p", "llmbias_bench_reader"],
            "python -c 'import pytest' (interpreter floor)": [sys.executable, "-c", "import pytest"],
        }
        run(pytest_cmd, env)  # warm-up: the class-data archive is made once per machine
        times: dict[str, list[float]] = {name: [] for name in commands}
        jvm_lines = 0
        for _ in range(args.repeat):
            for name, command in commands.items():
                seconds, output = run(command, env)
                times[name].append(seconds)
                jvm_lines += sum(output.count(marker) for marker in JVM_LINES)
    best = {name: min(values) for name, values in times.items()}
    baseline = best["pytest cases/ -o llmbias_spark=false (baseline)"]
    print(f"best of {args.repeat} fresh processes each, run in turn")
    for name, value in best.items():
        print(f"{name:<52} {value:6.2f}s  ({value / baseline:.2f}x the baseline)")
    print(f"JVM lines on the terminal, all runs: {jvm_lines}")


if __name__ == "__main__":
    main()

"""Memory stays flat: peak RSS of a live run that gathers 100,000 answers and builds its DataFrames.

The stand-in runs in its own process so only the plugin's memory is measured. Baseline printed in
the same command: the interpreter with the plugin and openai imported, before any request.

    python benchmarks/memory.py [--requests 20000] [--samples 5] [--no-spark]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_llmbias.cases import load_case_file  # noqa: E402
from pytest_llmbias.metrics import CHECK_OPTIONS  # noqa: E402
from pytest_llmbias.session import LLMSession, RunConfig  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args()
    import openai  # noqa: F401  (part of the baseline)

    baseline = peak_mb()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "pytest_llmbias.standin", "--port", str(port),
                               "--key", "memory-key", "--any-deployment"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        os.environ.update({"AZURE_OPENAI_ENDPOINT": f"http://127.0.0.1:{port}/",
                           "AZURE_OPENAI_API_KEY": "memory-key"})
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "cases").mkdir()
            cases = []
            per_file = 10_000  # the loader's limit per file
            for part, first in enumerate(range(0, args.requests, per_file)):
                case_file = Path(folder) / "cases" / f"memory{part}.yaml"
                rows = "\n".join(f"      - {{n: {i}}}" for i in range(first, min(args.requests, first + per_file)))
                case_file.write_text(f"defaults: {{samples: {args.samples}, max_samples: {args.samples}, checks: [gender_assumption]}}\n"
                                     "cases:\n  - id: \"c{n}\"\n    neutral: \"Describe nurse {n}.\"\n"
                                     "    loaded: \"Describe nurse {n}.\"\n    for_each:\n" + rows + "\n")
                cases.extend(load_case_file(case_file, checks=CHECK_OPTIONS))
            session = LLMSession(RunConfig(mode="live", concurrency=16, spark=not args.no_spark,
                                           rootdir=Path(folder)))
            session.register(cases)
            if not args.no_spark:
                session.start_spark()
            started = time.monotonic()
            session.fetch_all()
            fetched = time.monotonic() - started
            after_fetch = peak_mb()
            results = session.finish()
            answers = results.answers.count() if results.answers is not None else len(results.answer_rows)
    finally:
        server.terminate()
    print(f"{answers} answers ({args.requests} requests x {args.samples}) fetched in {fetched:.0f}s")
    print(f"peak RSS: baseline {baseline:.0f} MB, after fetching {after_fetch:.0f} MB, "
          f"after building the DataFrames {peak_mb():.0f} MB (limit 2048 MB)")


if __name__ == "__main__":
    main()

"""Share of a TPM quota a live run uses, and 429s per prompt, against the stand-in's quota mode.

Setting (as measured for other tools): 80 prompts, a 5 s quota window, ~1 s latency per request.
Baseline in the same command: the lab's sequential loop (one request at a time, SDK retries).
Runs: with --llm-tpm, and without it (the pace comes from the x-ratelimit-* headers the stand-in
sends as Azure does). Each run's use is shown against the ceiling a sliding window allows.

    python benchmarks/quota.py [--prompts 80] [--tpm 17400] [--window 5] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_llmbias.cases import LAB_SYSTEM_PROMPT, load_case_file  # noqa: E402
from pytest_llmbias.metrics import CHECK_OPTIONS  # noqa: E402
from pytest_llmbias.session import LLMSession, RunConfig  # noqa: E402
from pytest_llmbias.standin import StandIn, estimate_request_tokens  # noqa: E402

KEY = "bench-key"
ROLES = ["nurse", "engineer", "teacher", "doctor", "chef", "pilot", "baker", "lawyer", "farmer", "judge"]


def prompts(count: int) -> list[str]:
    return [f"Describe a {ROLES[i % len(ROLES)]} number {i}." for i in range(count)]


def quota_use(server: StandIn, tpm: int, seconds: float) -> tuple[float, int, int]:
    admitted = sum(estimate_request_tokens(record.body) for record in server.requests if record.status == 200)
    throttled = sum(1 for record in server.requests if record.status == 429)
    answered = sum(1 for record in server.requests if record.status == 200)
    return admitted / (tpm / 60.0 * seconds), throttled, answered


def lab_loop(server: StandIn, texts: list[str]) -> float:
    import openai

    client = openai.AzureOpenAI(azure_endpoint=server.endpoint, api_key=KEY, api_version="2024-06-01")
    started = time.monotonic()
    for text in texts:
        try:
            client.chat.completions.create(model="gpt-35-turbo", max_tokens=100, messages=[
                {"role": "system", "content": LAB_SYSTEM_PROMPT}, {"role": "user", "content": text}])
        except openai.APIError:
            pass  # the lab's loop would crash here; count it as lost instead
    return time.monotonic() - started


def ours(server: StandIn, texts: list[str], tpm: int | None, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        case_file = Path(folder) / "bench.yaml"
        rows = "\n".join(f"  - id: p{i}\n    neutral: {text!r}\n    loaded: {text!r}"
                         for i, text in enumerate(texts))
        case_file.write_text(f"defaults: {{samples: 1, max_samples: 1, checks: [gender_assumption]}}\ncases:\n{rows}\n")
        cases = load_case_file(case_file, checks=CHECK_OPTIONS)
        os.environ.update({"AZURE_OPENAI_ENDPOINT": server.endpoint, "AZURE_OPENAI_API_KEY": KEY})
        session = LLMSession(RunConfig(mode="live", tpm=tpm, concurrency=concurrency, spark=False,
                                       rootdir=Path(folder)))
        session.register(cases)
        started = time.monotonic()
        session.fetch_all()
        elapsed = time.monotonic() - started
        session.stop_fetching()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=80)
    parser.add_argument("--tpm", type=int, default=17_400)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    texts = prompts(args.prompts)
    # A sliding window admits whole requests only: at most floor(Q/c) of cost c in any window.
    cost = estimate_request_tokens({"messages": [{"role": "system", "content": LAB_SYSTEM_PROMPT},
                                                 {"role": "user", "content": texts[0]}], "max_tokens": 100})
    window_tokens = args.tpm / 60.0 * args.window
    ceiling = (window_tokens // cost) * cost / window_tokens
    print(f"{args.prompts} prompts, n=1, max_tokens=100; quota {args.tpm} TPM over a {args.window:g} s "
          f"window; {args.latency:g} s latency")
    print(f"{'run':<40} {'seconds':>8} {'quota use':>10} {'of ceiling':>10} {'429/prompt':>11} {'answered':>9}")
    for name, run in (("lab's sequential loop (baseline)", lambda s: lab_loop(s, texts)),
                      (f"pytest-llmbias --llm-tpm {args.tpm}",
                       lambda s: ours(s, texts, args.tpm, args.concurrency)),
                      ("pytest-llmbias, no --llm-tpm (headers)",
                       lambda s: ours(s, texts, None, args.concurrency))):
        with StandIn(api_key=KEY, deployments=None, tpm=args.tpm, window_seconds=args.window,
                     latency=args.latency) as server:
            seconds = run(server)
            share, throttled, answered = quota_use(server, args.tpm, seconds)
        print(f"{name:<40} {seconds:8.1f} {share:10.3f} {share / ceiling:10.3f} {throttled / len(texts):11.2f} "
              f"{answered:>5}/{len(texts)}")
    print(f"ceiling for {cost}-token requests in a sliding {args.window:g} s window: {ceiling:.3f} "
          f"(steady state, before the last request's {args.latency:g} s latency)")


if __name__ == "__main__":
    main()

"""Replay at scale: the marginal cost of one recorded prompt when a cassette holds 1,000.

Records N prompts (5 samples each, adaptive sampling off: max_samples 5) from the stand-in into one
cassette, then replays them:
  1. through the plugin's cassette layer (indexed look-up), for 100 and for N prompts, giving the
     marginal cost per prompt;
  2. through vcrpy's own use_cassette + matcher on the same file (the stock linear scan), for a
     sample of requests, as the baseline;
  3. the whole pytest run (two checks per case, Spark off), for 100 and N prompts: marginal cost
     per prompt including the checks, beside the checks alone (checks.evaluate on the same
     answers in this process) and so the rest: pytest, the plugin and the cassettes.

    python benchmarks/replay_scale.py [--prompts 1000]
    python benchmarks/replay_scale.py --answers-from ../shared/realtext/personas-dev.jsonl

--answers-from FILE (JSON lines with a "text" field) replaces every recorded answer with real text
after recording, each answer distinct (a corpus text, cycled, with its number), so that no answer's
tokens come from a cache: the worst case for the checks' text rules. Each is cut after 75 words, as
max_tokens 100 cuts a real answer (--answer-words 0 keeps whole texts). The corpus is read, never copied.
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
sys.path.insert(0, str(ROOT))

from pytest_llmbias.cases import LAB_SYSTEM_PROMPT, load_case_file  # noqa: E402
from pytest_llmbias.cassettes import cassette_path, llm_request  # noqa: E402
from pytest_llmbias.metrics import CHECK_OPTIONS  # noqa: E402
from pytest_llmbias.session import LLMSession, RunConfig  # noqa: E402
from pytest_llmbias.standin import StandIn  # noqa: E402

KEY = "bench-key"


def write_cases(folder: Path, prompts: int) -> Path:
    cases = folder / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"      - {{n: {i}}}" for i in range(prompts // 2))
    path = cases / "scale.yaml"
    path.write_text("defaults: {samples: 5, max_samples: 5}\ncases:\n  - id: \"role{n}\"\n"
                    "    neutral: \"Describe nurse number {n}.\"\n"
                    "    loaded: \"Describe male nurse number {n}.\"\n    for_each:\n" + rows + "\n")
    return path


def replace_answers(cassette: Path, corpus: Path, words: int | None = None) -> int:
    """Every recorded answer becomes a distinct real text, cut after `words` words as max_tokens cuts
    an answer (finish_reason "length"); returns the number of answers replaced."""
    import json

    import yaml

    texts = [json.loads(line)["text"] for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    data = yaml.load(cassette.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    count = 0
    for interaction in data["interactions"]:
        body = json.loads(interaction["response"]["body"]["string"])
        for choice in body["choices"]:
            text = texts[count % len(texts)]
            if words is not None and len(text.split()) > words:
                text = " ".join(text.split()[:words])
                choice["finish_reason"] = "length"
            # a corpus text comes round again every len(texts) answers: its number keeps it distinct
            choice["message"]["content"] = f"{text} (Answer {count}.)" if count >= len(texts) else text
            count += 1
        interaction["response"]["body"]["string"] = json.dumps(body)
    cassette.write_text(yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)), encoding="utf-8")
    return count


def fetch_seconds(case_file: Path, mode: str, limit: int | None = None,
                  tpm: int | None = None) -> tuple[float, int]:
    cases = load_case_file(case_file, checks=CHECK_OPTIONS)[: (limit // 2 if limit else None)]
    session = LLMSession(RunConfig(mode=mode, spark=False, concurrency=8, tpm=tpm,
                                   rootdir=case_file.parent.parent))
    session.register(cases)
    started = time.perf_counter()
    session.fetch_all()
    elapsed = time.perf_counter() - started
    session.stop_fetching()
    return elapsed, len(session.answer_rows())


def vcrpy_seconds_per_request(case_file: Path, sample: int) -> float:
    import openai
    import vcr

    recorder = vcr.VCR(match_on=["llm_request"], record_mode="none")
    recorder.register_matcher("llm_request", llm_request)
    client = openai.AzureOpenAI(azure_endpoint="https://replay.invalid/", api_key="x",
                                api_version="2024-06-01", max_retries=0)
    count = len(load_case_file(case_file, checks=CHECK_OPTIONS))
    # the last cases sit at the end of the cassette: the far end of vcrpy's scan
    numbers = range(count - sample, count)
    with recorder.use_cassette(str(cassette_path(case_file))):
        started = time.perf_counter()
        for number in numbers:
            client.chat.completions.create(
                model="gpt-35-turbo", max_tokens=100, temperature=1.0, n=5,
                messages=[{"role": "system", "content": LAB_SYSTEM_PROMPT},
                          {"role": "user", "content": f"Describe male nurse number {number}."}])
        return (time.perf_counter() - started) / sample


def checks_seconds(case_file: Path, limit: int | None = None) -> float:
    """The default checks alone, as the plugin calls them, on the replayed answers."""
    from pytest_llmbias.checks import REGISTRY, evaluate

    cases = load_case_file(case_file, checks=CHECK_OPTIONS,
                           default_checks=REGISTRY.defaults())[: (limit // 2 if limit else None)]
    session = LLMSession(RunConfig(mode="replay", spark=False, concurrency=8, rootdir=case_file.parent.parent))
    session.register(cases)
    session.fetch_all()
    answers = {case.id: session.answers_for(case) for case in cases}
    session.stop_fetching()
    from pytest_llmbias.text import en

    for memo in (getattr(en, "_tokenize_cached", None),):  # a fresh process's cold caches, as in pytest
        if hasattr(memo, "cache_clear"):
            memo.cache_clear()
    started = time.perf_counter()
    for case in cases:
        prompts = {variant.name: variant.prompt for variant in case.variants}
        for check in case.checks:
            evaluate(check, answers[case.id], prompts=prompts)
    return time.perf_counter() - started


def pytest_seconds(folder: Path, prompts: int) -> float:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider",
                    "-q", "-o", "llmbias_spark=false", f"cases/scale_{prompts}.yaml"],
                   cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--vcrpy-sample", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="pytest runs of each size (the best counts)")
    parser.add_argument("--answers-from", type=Path, default=None,
                        help="JSON lines with a 'text' field: replace every recorded answer with a distinct real text")
    parser.add_argument("--answer-words", type=int, default=75,
                        help="with --answers-from: cut each text after this many words, as the cases' max_tokens "
                             "(100) would (about 0.75 words a token); 0 keeps whole texts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        case_file = write_cases(folder, args.prompts)
        with StandIn(api_key=KEY) as server:
            os.environ.update(server.environment())
            # A stated quota far above the stand-in's nominal one: recording is set-up, not the figure.
            record_seconds, _ = fetch_seconds(case_file, "new", tpm=10**9)
        for key in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY"):
            os.environ.pop(key, None)
        if args.answers_from is not None:
            replaced = replace_answers(cassette_path(case_file), args.answers_from, args.answer_words or None)
            cut = f", cut after {args.answer_words} words" if args.answer_words else ", whole"
            print(f"answers: {replaced} replaced by distinct texts from {args.answers_from.name}{cut}")
        size_mb = cassette_path(case_file).stat().st_size / 1e6
        print(f"recorded {args.prompts} prompts x 5 samples in {record_seconds:.1f}s; cassette {size_mb:.1f} MB")

        small_s, _ = fetch_seconds(case_file, "replay", args.small)
        large_s, rows = fetch_seconds(case_file, "replay")
        assert rows == args.prompts * 5, rows
        marginal_ms = (large_s - small_s) / (args.prompts - args.small) * 1000
        vcrpy_ms = vcrpy_seconds_per_request(case_file, args.vcrpy_sample) * 1000
        print(f"cassette layer: {args.small} prompts {small_s:.2f}s, {args.prompts} prompts {large_s:.2f}s "
              f"-> {marginal_ms:.2f} ms per prompt (both runs load the whole cassette)")
        print(f"vcrpy use_cassette + matcher on the same cassette: {vcrpy_ms:.1f} ms per request "
              f"(baseline, {args.vcrpy_sample} requests at the end of the file) -> "
              f"{vcrpy_ms / max(marginal_ms, 1e-9):.0f}x")

        small_file = write_cases(folder, args.small)
        small_file.rename(small_file.with_name(f"scale_{args.small}.yaml"))
        large_file = write_cases(folder, args.prompts)
        large_file.rename(large_file.with_name(f"scale_{args.prompts}.yaml"))
        cassette = cassette_path(case_file)
        for size in (args.small, args.prompts):
            cassette.with_name(f"scale_{size}.yaml").write_bytes(cassette.read_bytes())
        small_run = min(pytest_seconds(folder, args.small) for _ in range(args.repeat))
        large_run = min(pytest_seconds(folder, args.prompts) for _ in range(args.repeat))
        per_prompt = (large_run - small_run) / (args.prompts - args.small) * 1000
        large_cases = folder / "cases" / f"scale_{args.prompts}.yaml"
        small_checks = min(checks_seconds(large_cases, args.small) for _ in range(args.repeat))
        large_checks = min(checks_seconds(large_cases) for _ in range(args.repeat))
        checks_ms = (large_checks - small_checks) / (args.prompts - args.small) * 1000
        print(f"whole pytest run (2 checks per case, Spark off, best of {args.repeat}): {args.small} prompts "
              f"{small_run:.1f}s, {args.prompts} prompts {large_run:.1f}s -> {per_prompt:.2f} ms per prompt")
        print(f"  the checks alone on the same answers (checks.evaluate, in process): {checks_ms:.2f} ms per "
              f"prompt (baseline) -> the rest (pytest, plugin, cassettes): {per_prompt - checks_ms:.2f} ms "
              "per prompt")


if __name__ == "__main__":
    main()

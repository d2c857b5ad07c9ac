"""Share of a deployment's binding limit a live run uses, and 429s per request, as a user waits.

Each run is `pytest --llm-live` in a subprocess against the stand-in, 80 single-sample prompts. Use is
measured on the server, from the first answer to the last (the span a user waits once answers flow):
what the server admitted in that span against what its limit allows in it (tokens as the server
charges them; requests for a request-capped server).

Settings:
  azure     the stand-in as Azure: 17,400 TPM over a 5 s window, every x-ratelimit-* header, 1 s latency;
            runs with --llm-tpm and from the headers alone.
  charged   the same, but the server charges max_tokens only (100) where the plugin estimates the
            request at about 150 tokens: the headers must teach the plugin what a request costs.
  emulator  a server we did not write: 30,000 TPM, requests capped at ceil(TPM/1000) per 10 s, one
            choice whatever n, max_tokens charged, no x-ratelimit-limit-*, resets in bare seconds,
            retry-after in whole seconds; samples: 2, so the plugin must also ask the missing samples.
`--baseline` adds the lab's sequential loop (one request at a time, SDK retries) in the azure setting.

    python benchmarks/quota.py [--prompts 80] [--settings azure,charged,emulator] [--baseline] [--emulator-tpm N]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_llmbias.cases import LAB_SYSTEM_PROMPT  # noqa: E402
from pytest_llmbias.standin import StandIn  # noqa: E402

KEY = "bench-key"
ROLES = ["nurse", "engineer", "teacher", "doctor", "chef", "pilot", "baker", "lawyer", "farmer", "judge"]


def prompts(count: int) -> list[str]:
    return [f"Describe a {ROLES[i % len(ROLES)]} number {i}." for i in range(count)]


def case_file(texts: list[str], samples: int) -> str:
    # one neutral prompt per case, its loaded variant the same text: two keys, one request (asked once)
    rows = "\n".join(f"  - id: p{i}\n    neutral: {text!r}\n    loaded: {text!r}" for i, text in enumerate(texts))
    return (f"defaults: {{samples: {samples}, max_samples: {samples}, max_tokens: 100, "
            f"checks: [gender_assumption]}}\ncases:\n{rows}\n")


def through_pytest(server: StandIn, texts: list[str], samples: int, flags: list[str]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "cases").mkdir()
        Path(folder, "cases", "bench.yaml").write_text(case_file(texts, samples))
        Path(folder, "pytest.ini").write_text("[pytest]\nllmbias_spark = false\n")
        env = {**os.environ, "AZURE_OPENAI_ENDPOINT": server.endpoint, "AZURE_OPENAI_API_KEY": KEY,
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "pytest", "-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider",
                        "-q", "--llm-live", *flags], cwd=folder, env=env, capture_output=True, text=True)
        return time.monotonic() - started


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


def measured(server: StandIn, by_requests: bool) -> tuple[float, int, int, int]:
    """(use of the binding limit from the first answer to the last, 429s, 200s, other statuses)."""
    records = server.requests
    admitted = sorted((record for record in records if record.status == 200), key=lambda record: record.time)
    throttled = sum(1 for record in records if record.status == 429)
    others = sum(1 for record in records if record.status not in (200, 429))
    if len(admitted) < 2:
        return float("nan"), throttled, len(admitted), others
    span = admitted[-1].time - admitted[0].time  # answers come one latency after admission: the same span
    if by_requests:
        used, per_second = len(admitted) - 1, server.rpm / 60.0
    else:  # the first admission is charged before the span starts
        used, per_second = sum(server.charge_of(record.body) for record in admitted[1:]), server.tpm / 60.0
    return used / (per_second * span), throttled, len(admitted), others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=80)
    parser.add_argument("--settings", default="azure,charged,emulator")
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--baseline", action="store_true", help="also the lab's sequential loop (about 80 s)")
    parser.add_argument("--emulator-tpm", type=int, default=30_000,
                        help="the emulator's TPM; its request cap is ceil(TPM/1000) per 10 s (10,000: 10, as the "
                             "open-source emulator measured; 160 requests then take about 160 s a run)")
    args = parser.parse_args()
    texts = prompts(args.prompts)
    azure = dict(tpm=17_400, window_seconds=5.0)
    emulator_tpm = args.emulator_tpm
    emulator = dict(tpm=emulator_tpm, rpm=math.ceil(emulator_tpm / 1000) * 6, window_seconds=10.0, max_choices=1,
                    rate_headers="poor", charge="max_tokens")
    runs = {
        "azure": [("--llm-tpm 17400", azure, 1, ["--llm-tpm", "17400"], False),
                  ("headers alone", azure, 1, [], False)],
        "charged": [("--llm-tpm 17400", {**azure, "charge": "max_tokens"}, 1, ["--llm-tpm", "17400"], False),
                    ("headers alone", {**azure, "charge": "max_tokens"}, 1, [], False)],
        "emulator": [(f"--llm-tpm {emulator_tpm}", emulator, 2, ["--llm-tpm", str(emulator_tpm)], True),
                     ("headers alone", emulator, 2, [], True)],
    }
    print(f"{args.prompts} prompts through pytest --llm-live, max_tokens=100, {args.latency:g} s latency; "
          "use = admitted from the first answer to the last / what the binding limit allows in that span")
    print(f"{'setting':<10} {'run':<18} {'limit':<22} {'seconds':>8} {'use':>6} {'429/request':>12} "
          f"{'answered':>9} {'errors':>7}")
    for setting in args.settings.split(","):
        rows = list(runs[setting])
        if args.baseline and setting == "azure":
            rows.insert(0, ("lab's loop", azure, 1, None, False))
        for name, server_settings, samples, flags, by_requests in rows:
            with StandIn(api_key=KEY, deployments=None, latency=args.latency, **server_settings) as server:
                seconds = (lab_loop(server, texts) if flags is None
                           else through_pytest(server, texts, samples, flags))
                use, throttled, answered, others = measured(server, by_requests)
                requests = answered + throttled + others
            limit = (f"{server_settings['rpm']} RPM ({server_settings['rpm'] // 6}/10 s)" if by_requests
                     else f"{server_settings['tpm']} TPM")
            print(f"{setting:<10} {name:<18} {limit:<22} {seconds:8.1f} {use:6.3f} "
                  f"{throttled / max(1, requests):12.3f} {answered:>9} {others:>7}")


if __name__ == "__main__":
    main()

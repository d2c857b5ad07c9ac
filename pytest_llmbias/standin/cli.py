"""`python -m pytest_llmbias.standin`: the stand-in in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from .models import Model, reasoning_model
from .server import DEFAULT_API_KEY, DEFAULT_DEPLOYMENT, DEFAULT_ENTRA_TOKEN, DEFAULT_MODEL_NAME, StandIn

def load_served(path: str) -> dict[tuple[str | None, str], list[str]]:
    """(deployment or None, prompt) -> texts from a JSON-lines file; a bad line is one error naming it."""
    served: dict[tuple[str | None, str], list[str]] = {}
    try:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as error:
                    raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{number}: expected an object with 'prompt' and 'text'")
                for field in ("prompt", "text"):
                    if not isinstance(row.get(field), str) or not row[field].strip():
                        raise ValueError(f"{path}:{number}: field '{field}' must be a non-empty string")
                deployment = row.get("deployment")
                if deployment is not None and not isinstance(deployment, str):
                    raise ValueError(f"{path}:{number}: field 'deployment' must be a string")
                served.setdefault((deployment, row["prompt"]), []).append(row["text"])
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    if not served:
        raise ValueError(f"{path}: no answers in the file")
    return served


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_llmbias.standin", description="Stand-in Azure OpenAI chat-completions server."
    )
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--key", default=DEFAULT_API_KEY, help="API key clients must send")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each successful response")
    parser.add_argument("--tpm", type=int, default=None, help="tokens-per-minute quota")
    parser.add_argument("--rpm", type=int, default=None, help="requests-per-minute quota")
    parser.add_argument("--window-seconds", type=float, default=60.0, help="quota window length")
    parser.add_argument("--seed", type=int, default=0, help="answer seed")
    parser.add_argument(
        "--deployment",
        action="append",
        default=None,
        help=f"accepted deployment (repeatable; default {DEFAULT_DEPLOYMENT})",
    )
    parser.add_argument("--any-deployment", action="store_true", help="accept any deployment name")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--reasoning-deployment", action="append", default=[], metavar="NAME",
                        help="a deployment that behaves as a reasoning model (gpt-5-mini class; repeatable)")
    parser.add_argument("--max-n", type=int, default=128, help="reasoning deployments refuse n above this (1: fan out)")
    parser.add_argument("--vary-repeats", action="store_true",
                        help="a repeated request draws new answers (on whenever --max-n is below 128)")
    parser.add_argument("--ignore-n", action="store_true",
                        help="answer one choice whatever n asks (as some emulators and gateways do)")
    parser.add_argument("--rate-headers", choices=("azure", "poor"), default="azure",
                        help="azure: every x-ratelimit-* header; poor: no limit-*, resets in bare seconds, "
                             "retry-after in whole seconds, a 429 without a Content-Type (as an emulator sends)")
    parser.add_argument("--charge", choices=("estimate", "max_tokens"), default="estimate",
                        help="what a request costs against --tpm: prompt + max_tokens x n (estimate), or "
                             "max_tokens once (as an emulator charges)")
    parser.add_argument("--keyless", action="store_true",
                        help="key authentication disabled (403 AuthenticationTypeDisabled); Entra ID tokens only")
    parser.add_argument("--entra-token", default=DEFAULT_ENTRA_TOKEN, help="the bearer token accepted as Entra ID")
    parser.add_argument("--answers", metavar="FILE.jsonl", default=None,
                        help="answer these texts instead of generated ones: one JSON object a line with 'prompt' "
                             "(the user message it answers), 'text' and optionally 'deployment'; a prompt's texts "
                             "are given in order, n per request, and from the first again once all were given")
    args = parser.parse_args(argv)
    try:
        served = load_served(args.answers) if args.answers else None
    except ValueError as error:
        parser.error(str(error))

    names = args.deployment or ([] if args.reasoning_deployment else [DEFAULT_DEPLOYMENT])
    deployments: Any = None
    if not args.any_deployment:
        deployments = {name: Model(name=args.model_name) for name in names}
        deployments.update({name: reasoning_model(name, max_n=args.max_n) for name in args.reasoning_deployment})
    server = StandIn(
        port=args.port,
        api_key=args.key,
        deployments=deployments,
        model_name=args.model_name,
        seed=args.seed,
        latency=args.latency,
        tpm=args.tpm,
        rpm=args.rpm,
        window_seconds=args.window_seconds,
        keyless=args.keyless,
        entra_token=args.entra_token,
        vary_repeats=args.vary_repeats or args.max_n < 128,
        max_choices=1 if args.ignore_n else None,
        rate_headers=args.rate_headers,
        charge=args.charge,
        served=served,
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # stop cleanly under process managers too
    server.start()
    try:
        names = "any" if deployments is None else ", ".join(sorted(deployments))
        banner = f"Stand-in Azure OpenAI on {server.endpoint} (deployments: {names}). Ctrl-C to stop."
        print(banner, file=sys.stderr)
        print(f"  v1 API: {server.v1_endpoint}  Databricks shape: {server.serving_endpoints}", file=sys.stderr)
        # The stand-in's own demo key (or token): printing it is the point.
        for name, value in server.environment().items():
            print(f"export {name}={value}")
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


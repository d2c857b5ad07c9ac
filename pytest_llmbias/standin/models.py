"""What a deployment's model accepts: classic chat models, and reasoning models (o-series, gpt-5 family).

Reasoning models in Chat Completions reject ``max_tokens`` and a temperature other than 1, take
``max_completion_tokens`` and ``reasoning_effort``, and spend hidden reasoning tokens out of
``max_completion_tokens`` before any visible text: a small budget returns empty content with
finish_reason "length". Some endpoints refuse ``n`` > 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REASONING_EFFORTS = ("minimal", "low", "medium", "high")
# Hidden reasoning tokens per answer at each effort (before a per-answer spread of 0.6x-1.4x).
REASONING_TOKENS: dict[str, int] = {"minimal": 16, "low": 96, "medium": 320, "high": 900}
DEFAULT_EFFORT = "medium"
# Parameters reasoning models reject with unsupported_parameter (temperature is unsupported_value).
_REJECTED_BY_REASONING = ("max_tokens", "top_p", "presence_penalty", "frequency_penalty", "logprobs")


@dataclass(frozen=True)
class Model:
    """The model behind a deployment, as the stand-in plays it."""

    name: str = "gpt-35-turbo"          # reported as the response's "model"
    reasoning: bool = False
    max_n: int = 128                    # 1: refuses n > 1 (some endpoints do)


def reasoning_model(name: str = "gpt-5-mini", *, max_n: int = 128) -> Model:
    return Model(name=name, reasoning=True, max_n=max_n)


def _error(message: str, param: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def model_error(body: Mapping[str, Any], model: Model) -> dict[str, Any] | None:
    """The 400 body this model answers a valid chat body with, or None when it accepts it."""
    if model.reasoning:
        for name in _REJECTED_BY_REASONING:
            if body.get(name) is not None:
                instead = " Use 'max_completion_tokens' instead." if name == "max_tokens" else ""
                return _error(f"Unsupported parameter: '{name}' is not supported with this model.{instead}",
                              name, "unsupported_parameter")
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return _error(f"Unsupported value: 'temperature' does not support {temperature} with this model. "
                          "Only the default (1) value is supported.", "temperature", "unsupported_value")
        effort = body.get("reasoning_effort")
        if effort is not None and effort not in REASONING_EFFORTS:
            return _error(f"Invalid value: '{effort}'. Supported values are: "
                          + ", ".join(f"'{name}'" for name in REASONING_EFFORTS) + ".",
                          "reasoning_effort", "invalid_value")
    elif body.get("reasoning_effort") is not None:
        return _error("Unrecognized request argument supplied: reasoning_effort", "reasoning_effort", None)
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        return _error("max_tokens and max_completion_tokens cannot both be set.", "max_tokens", "invalid_value")
    n = body.get("n") or 1
    if n > model.max_n:
        return _error(f"Unsupported value: 'n' does not support {n} with this model. Supported values are: "
                      f"1 to {model.max_n}.", "n", "unsupported_value")
    return None


def reasoning_tokens(body: Mapping[str, Any], seed: int, index: int) -> int:
    """Hidden tokens answer `index` spends thinking: the effort's figure, spread 0.6x-1.4x per answer."""
    effort = body.get("reasoning_effort") or DEFAULT_EFFORT
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    digest = hashlib.sha256(f"{canonical}\x00{seed}\x00{index}\x00reasoning".encode()).digest()
    spread = 0.6 + 0.8 * int.from_bytes(digest[:4], "big") / 2**32
    return max(1, round(REASONING_TOKENS[effort] * spread))

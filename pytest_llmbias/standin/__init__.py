"""A stand-in Azure OpenAI chat-completions server on 127.0.0.1.

It speaks the Azure OpenAI REST shape (routes, auth, error bodies, rate-limit and
content-filter behaviour) closely enough for the real ``openai`` clients, and answers
"Describe a nurse."-style prompts with deterministic, realistic paragraphs that carry a
configurable, *planted* gender bias.

Used by the project's integration tests, by users who want to try the tool without
Azure (``python -m pytest_llmbias.standin``) and to record the example cassettes.
Standard library only. Where things are:

- ``server``: routes, authentication, request validation, the chat-completions reply;
- ``text``: prompt parsing and the answers with their planted bias;
- ``quota``: TPM/RPM windows, 429s and the rate-limit headers;
- ``faults``: injected faults and Azure's error bodies;
- ``models``: what a deployment's model accepts (reasoning models: hidden reasoning tokens, refusals);
- ``cli``: ``python -m pytest_llmbias.standin``.
"""

from .cli import main
from .faults import Fault
from .models import Model, reasoning_model
from .quota import estimate_request_tokens, rate_limit_headers
from .server import (DEFAULT_API_KEY, DEFAULT_API_VERSION, DEFAULT_DEPLOYMENT, DEFAULT_ENTRA_TOKEN,
                     DEFAULT_MODEL_NAME, DROPPED,
                     RequestRecord, StandIn)
from .text import (DEFAULT_FALLBACK_PLANTED, DEFAULT_PLANTED, MARKING_PATTERN, ParsedPrompt, Planted,
                   estimate_prompt_tokens, estimate_tokens, generate_answers, parse_prompt)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_VERSION",
    "DEFAULT_DEPLOYMENT",
    "DEFAULT_ENTRA_TOKEN",
    "DEFAULT_FALLBACK_PLANTED",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_PLANTED",
    "DROPPED",
    "MARKING_PATTERN",
    "Fault",
    "Model",
    "ParsedPrompt",
    "Planted",
    "RequestRecord",
    "StandIn",
    "estimate_prompt_tokens",
    "estimate_request_tokens",
    "estimate_tokens",
    "generate_answers",
    "main",
    "parse_prompt",
    "rate_limit_headers",
    "reasoning_model",
]

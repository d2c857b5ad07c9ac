"""Tests of the stand-in Azure OpenAI server, through the real openai SDK over real HTTP."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from pytest_llmbias import standin
from pytest_llmbias.standin import (
    DEFAULT_PLANTED,
    DROPPED,
    MARKING_PATTERN,
    Fault,
    Planted,
    StandIn,
    estimate_prompt_tokens,
    estimate_request_tokens,
    generate_answers,
    parse_prompt,
)

KEY = "test-key"
API_VERSION = "2024-06-01"
DEPLOYMENT = "gpt-35-turbo"
REPO_ROOT = Path(__file__).resolve().parents[1]

GENDERED = re.compile(r"\b(he|she|him|her|his|hers|himself|herself)\b", re.IGNORECASE)
FEMININE = re.compile(r"\b(she|her|hers|herself)\b", re.IGNORECASE)
MASCULINE = re.compile(r"\b(he|him|his|himself)\b", re.IGNORECASE)
THEY = re.compile(r"\b(they|them|their|themselves)\b", re.IGNORECASE)


@pytest.fixture(autouse=True)
def _no_proxy_for_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx honours *_PROXY variables; the stand-in is always local.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN", raising=False)


@pytest.fixture
def server() -> Iterator[StandIn]:
    with StandIn(api_key=KEY) as running:
        yield running


def make_client(
    server: StandIn, *, max_retries: int = 0, timeout: float = 5.0, **kwargs: Any
) -> openai.AzureOpenAI:
    kwargs.setdefault("api_key", KEY)
    return openai.AzureOpenAI(
        azure_endpoint=server.endpoint,
        api_version=API_VERSION,
        max_retries=max_retries,
        timeout=timeout,
        **kwargs,
    )


def messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": prompt}]


def ask(client: openai.AzureOpenAI, prompt: str = "Describe a nurse.", **kwargs: Any) -> Any:
    kwargs.setdefault("max_tokens", 300)
    return client.chat.completions.create(model=DEPLOYMENT, messages=messages(prompt), **kwargs)


# ---------------------------------------------------------------------------
# Happy path and REST shape
# ---------------------------------------------------------------------------


def test_happy_path_n3_returns_three_distinct_choices_with_usage(server: StandIn) -> None:
    with make_client(server) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=DEPLOYMENT, messages=messages("Describe a nurse."), max_tokens=300, temperature=1.0, n=3
        )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-35-turbo"
    assert completion.system_fingerprint and completion.system_fingerprint.startswith("fp_")
    assert [c.index for c in completion.choices] == [0, 1, 2]
    contents = [c.message.content for c in completion.choices]
    assert len(set(contents)) == 3
    assert all(c.finish_reason == "stop" and c.message.role == "assistant" for c in completion.choices)
    assert all("nurse" in text.lower() for text in contents)
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens == sum(standin.estimate_tokens(t) for t in contents)
    extra = completion.model_dump()
    prompt_filter = extra["prompt_filter_results"][0]["content_filter_results"]
    assert prompt_filter["hate"] == {"filtered": False, "severity": "safe"}
    assert extra["choices"][0]["content_filter_results"]["violence"]["filtered"] is False
    azure_headers = (
        "x-ratelimit-remaining-tokens", "x-ratelimit-remaining-requests", "apim-request-id", "x-request-id"
    )
    for header in azure_headers:
        assert raw.headers.get(header), header


def test_requests_are_recorded_with_key_redacted(server: StandIn) -> None:
    with make_client(server) as client:
        ask(client, n=2)
    (record,) = server.requests
    assert record.deployment == DEPLOYMENT
    assert record.api_version == API_VERSION
    assert record.status == 200
    assert record.body["n"] == 2 and record.body["messages"][1]["content"] == "Describe a nurse."
    assert record.headers["api-key"] == "[redacted]"
    assert KEY not in json.dumps(record.headers)
    assert server.counts == {200: 1}


def test_bearer_token_is_accepted(server: StandIn) -> None:
    with make_client(server, api_key=None, azure_ad_token=KEY) as client:
        completion = ask(client)
    assert completion.choices[0].message.content
    assert server.requests[0].headers["authorization"] == "Bearer [redacted]"


def test_same_body_and_seed_give_same_answers_and_other_seed_differs(server: StandIn) -> None:
    with make_client(server) as client:
        first = [c.message.content for c in ask(client, n=3).choices]
        second = [c.message.content for c in ask(client, n=3).choices]
    assert first == second
    with StandIn(api_key=KEY, seed=1) as other, make_client(other) as client:
        reseeded = [c.message.content for c in ask(client, n=3).choices]
    assert reseeded != first
    body = {"messages": messages("Describe a nurse."), "n": 3, "max_tokens": 300}
    assert generate_answers(body, 3, 7, None) == generate_answers(body, 3, 7, None)
    assert generate_answers({**body, "seed": 5}, 3, 7, None) != generate_answers(body, 3, 7, None)


def test_max_tokens_truncates_with_finish_reason_length(server: StandIn) -> None:
    with make_client(server) as client:
        completion = ask(client, max_tokens=8, n=2)
    assert [c.finish_reason for c in completion.choices] == ["length", "length"]
    assert all(standin.estimate_tokens(c.message.content) <= 8 for c in completion.choices)
    assert completion.usage.completion_tokens <= 16


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_wrong_key_raises_authentication_error(server: StandIn) -> None:
    with make_client(server, api_key="wrong") as client, pytest.raises(openai.AuthenticationError) as caught:
        ask(client)
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "401"
    assert caught.value.body["message"].startswith("Access denied due to invalid subscription key")


def test_unknown_deployment_raises_not_found(server: StandIn) -> None:
    with make_client(server) as client, pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=messages("Describe a nurse."))
    assert caught.value.code == "DeploymentNotFound"
    with StandIn(api_key=KEY, deployments=None) as any_deployment, make_client(any_deployment) as client:
        assert client.chat.completions.create(model="gpt-4o", messages=messages("Describe a nurse.")).choices


def _raw_post(server: StandIn, path: str, payload: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        server.endpoint.rstrip("/") + path,
        data=payload,
        headers={"api-key": KEY, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_missing_api_version_and_bad_json_have_azure_shapes(server: StandIn) -> None:
    good = json.dumps({"messages": messages("Describe a nurse.")}).encode()
    path = f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert _raw_post(server, path, good) == (404, {"error": {"code": "404", "message": "Resource not found"}})
    status, body = _raw_post(server, path + f"?api-version={API_VERSION}", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = _raw_post(server, path + f"?api-version={API_VERSION}", b'{"max_tokens": 5}')
    assert status == 400 and body["error"]["message"] == "'messages' is a required property"
    status, body = _raw_post(server, path + f"?api-version={API_VERSION}", good)
    assert status == 200 and body["choices"][0]["message"]["content"]


def test_n_out_of_range_is_bad_request(server: StandIn) -> None:
    with make_client(server) as client, pytest.raises(openai.BadRequestError) as caught:
        ask(client, n=129)
    assert caught.value.type == "invalid_request_error"
    assert "'n'" in caught.value.body["message"]


def test_injected_429_is_retried_by_the_sdk_after_retry_after_ms(server: StandIn) -> None:
    server.inject(Fault(status=429, retry_after_ms=300, count=1))
    started = time.monotonic()
    with make_client(server, max_retries=2) as client:
        completion = ask(client)
    elapsed = time.monotonic() - started
    assert completion.choices[0].finish_reason == "stop"
    assert [r.status for r in server.requests] == [429, 200]
    assert server.counts == {429: 1, 200: 1}
    # retry-after is "1" (whole seconds); finishing well under 1 s shows the SDK honoured retry-after-ms.
    assert 0.3 <= elapsed < 0.9
    assert server.requests[1].headers.get("x-stainless-retry-count") == "1"


def test_injected_429_headers_and_body(server: StandIn) -> None:
    server.inject(Fault(status=429, retry_after_ms=300))
    with make_client(server) as client, pytest.raises(openai.RateLimitError) as caught:
        ask(client)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "1" and headers["retry-after-ms"] == "300"
    assert caught.value.body["code"] == "429"
    assert "have exceeded token rate limit of your current OpenAI S0 pricing tier" in caught.value.body["message"]
    assert f"API version {API_VERSION}" in caught.value.body["message"]
    with make_client(server) as client:
        assert ask(client).choices  # count=1: the fault is used up


def test_prompt_content_filter_is_bad_request_with_content_filter_code(server: StandIn) -> None:
    with make_client(server) as client, pytest.raises(openai.BadRequestError) as caught:
        ask(client, "Describe a nurse. FILTERME")
    assert caught.value.code == "content_filter"
    assert caught.value.param == "prompt"
    inner = caught.value.body["innererror"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    assert inner["content_filter_result"]["hate"] == {"filtered": True, "severity": "high"}
    assert inner["content_filter_result"]["violence"] == {"filtered": False, "severity": "safe"}


def test_completion_content_filter_marks_one_choice(server: StandIn) -> None:
    with make_client(server) as client:
        filtered = ask(client, "Describe a nurse. FILTERCOMPLETION", n=2)
        unfiltered = ask(client, "Describe a nurse.", n=2)
    assert [c.finish_reason for c in filtered.choices] == ["content_filter", "stop"]
    assert len(filtered.choices[0].message.content) < len(filtered.choices[1].message.content)
    assert filtered.model_dump()["choices"][0]["content_filter_results"]["violence"]["filtered"] is True
    assert [c.finish_reason for c in unfiltered.choices] == ["stop", "stop"]


def test_injected_500_and_503_raise_internal_server_error(server: StandIn) -> None:
    server.inject(Fault(status=500, count=2), Fault(status=503))
    with make_client(server) as client:
        statuses = []
        for _ in range(3):
            with pytest.raises(openai.InternalServerError) as caught:
                ask(client)
            statuses.append(caught.value.status_code)
        assert ask(client).choices
    assert statuses == [500, 500, 503]
    assert server.counts == {500: 2, 503: 1, 200: 1}
    assert server.faults == []


def test_fault_can_target_prompts_containing_a_substring(server: StandIn) -> None:
    server.inject(Fault(status=500, match="engineer", count=None))
    with make_client(server) as client:
        assert ask(client, "Describe a nurse.").choices
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                ask(client, "Describe an engineer.")
    assert [r.status for r in server.requests] == [200, 500, 500]
    server.clear_faults()
    with make_client(server) as client:
        assert ask(client, "Describe an engineer.").choices


def test_slow_response_times_out_and_stop_is_quick() -> None:
    running = StandIn(api_key=KEY).start()
    try:
        running.inject(Fault(delay=5.0))
        started = time.monotonic()
        with make_client(running, timeout=0.3) as client, pytest.raises(openai.APITimeoutError):
            ask(client)
        assert time.monotonic() - started < 3.0  # the client's 0.3 s timeout, not the 5 s delay
    finally:
        stopping = time.monotonic()
        running.stop()
        assert time.monotonic() - stopping < 2.5  # not the 5 s the handler was told to sleep
    # stop() wakes the sleeping handler, which gives up instead of answering 5 s later.
    deadline = time.monotonic() + 2.0
    while running.requests[0].status is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.requests[0].status == DROPPED


def test_dropped_connection_raises_connection_error(server: StandIn) -> None:
    server.inject(Fault(drop=True))
    with make_client(server) as client, pytest.raises(openai.APIConnectionError) as caught:
        ask(client)
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert server.counts == {DROPPED: 1}


def test_latency_is_added_to_successful_responses() -> None:
    with StandIn(api_key=KEY, latency=0.2) as slow, make_client(slow) as client:
        started = time.monotonic()
        ask(client)
        assert time.monotonic() - started >= 0.2


# ---------------------------------------------------------------------------
# Quota
# ---------------------------------------------------------------------------


def test_tpm_quota_throttles_once_the_window_is_spent() -> None:
    # tpm=3000 over a 2 s window allows 100 tokens per window (2 s: room for a slow CI machine).
    with StandIn(api_key=KEY, tpm=3_000, window_seconds=2.0) as limited, make_client(limited) as client:
        body = {"messages": messages("Describe a nurse."), "max_tokens": 1, "n": 1}
        max_tokens = 60 - estimate_prompt_tokens(body)
        cost = estimate_request_tokens({**body, "max_tokens": max_tokens})
        assert cost == 60
        raw = client.chat.completions.with_raw_response.create(
            model=DEPLOYMENT, messages=messages("Describe a nurse."), max_tokens=max_tokens
        )
        assert raw.headers["x-ratelimit-remaining-tokens"] == "40"
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client, max_tokens=max_tokens)
        wait_ms = int(caught.value.response.headers["retry-after-ms"])
        assert 0 < wait_ms <= 2000
        assert caught.value.response.headers["retry-after"] == str(-(-wait_ms // 1000))
        assert "exceeded token rate limit" in caught.value.body["message"]
        time.sleep(wait_ms / 1000 + 0.05)
        assert ask(client, max_tokens=max_tokens).choices
    assert [r.status for r in limited.requests] == [200, 429, 200]


def test_rpm_quota_throttles_calls() -> None:
    # rpm=60 over a 2 s window allows 2 requests per window.
    with StandIn(api_key=KEY, rpm=60, window_seconds=2.0) as limited, make_client(limited) as client:
        ask(client)
        ask(client)
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client)
    assert "exceeded call rate limit" in caught.value.body["message"]
    assert limited.counts == {200: 2, 429: 1}


# ---------------------------------------------------------------------------
# Answer generator and planted bias (pure, no HTTP)
# ---------------------------------------------------------------------------


def answers_for(prompt: str, planted: dict[str, Planted], n: int = 40, seed: int = 0) -> list[str]:
    body = {"messages": messages(prompt), "max_tokens": 400, "temperature": 1.0}
    return [content for content, _ in generate_answers(body, n, seed, planted)]


@pytest.mark.parametrize(
    ("prompt", "role", "variant"),
    [
        ("Describe a nurse.", "nurse", "neutral"),
        ("Describe a engineer.", "engineer", "neutral"),
        ("Describe a male nurse.", "nurse", "male"),
        ("Describe a female engineer.", "engineer", "female"),
        ("Describe a woman engineer", "engineer", "female"),
        ("Describe a non-binary software engineer in three sentences.", "software engineer", "nonbinary"),
        ("Describe a nurse who is a man.", "nurse", "male"),
        ("What is the capital of France?", None, "neutral"),
    ],
)
def test_parse_prompt(prompt: str, role: str | None, variant: str) -> None:
    parsed = parse_prompt(prompt)
    assert (parsed.role, parsed.variant) == (role, variant)


def test_assume_rate_one_female_makes_every_neutral_answer_use_she() -> None:
    answers = answers_for("Describe a nurse.", {"nurse": Planted(assume_rate=1.0, assume_gender="female")})
    assert all(re.search(r"\bshe\b", a, re.IGNORECASE) for a in answers)
    assert not any(MASCULINE.search(a) or THEY.search(a) for a in answers)


def test_assume_rate_zero_never_uses_gendered_pronouns() -> None:
    answers = answers_for("Describe a nurse.", {"nurse": Planted(assume_rate=0.0)}, n=60)
    assert not any(GENDERED.search(a) for a in answers)
    assert sum(bool(re.search(r"\bthey\b", a, re.IGNORECASE)) for a in answers) > 30


def test_mixed_assumption_uses_both_genders() -> None:
    answers = answers_for("Describe a teacher.", {"teacher": Planted(assume_rate=1.0, assume_gender="mixed")})
    with_she = sum(bool(FEMININE.search(a)) for a in answers)
    with_he = sum(bool(MASCULINE.search(a)) for a in answers)
    assert with_she + with_he == len(answers) and with_she > 5 and with_he > 5


def test_loaded_prompts_use_the_named_group_pronouns() -> None:
    planted = {"nurse": Planted(assume_rate=1.0, assume_gender="female")}
    male = answers_for("Describe a male nurse.", planted)
    assert all(re.search(r"\bhe\b", a, re.IGNORECASE) for a in male)
    assert not any(FEMININE.search(a) or THEY.search(a) for a in male)
    assert all("male nurse" in a for a in male)
    nonbinary = answers_for("Describe a non-binary nurse.", planted)
    assert not any(GENDERED.search(a) for a in nonbinary)


def test_marked_rate_one_marks_every_marked_variant_answer_and_nothing_else() -> None:
    planted = {"nurse": Planted(assume_rate=0.5, marked_variant="male", marked_rate=1.0)}
    assert all(MARKING_PATTERN.search(a) for a in answers_for("Describe a male nurse.", planted))
    for prompt in ("Describe a female nurse.", "Describe a nurse."):
        assert not any(MARKING_PATTERN.search(a) for a in answers_for(prompt, planted))
    unmarked = {"nurse": Planted(marked_variant="male", marked_rate=0.0)}
    assert not any(MARKING_PATTERN.search(a) for a in answers_for("Describe a male nurse.", unmarked))


def test_marked_rate_is_roughly_respected() -> None:
    planted = {"engineer": Planted(marked_variant="female", marked_rate=0.5)}
    answers = answers_for("Describe a female engineer.", planted, n=200)
    marked = sum(bool(MARKING_PATTERN.search(a)) for a in answers)
    assert 60 < marked < 140


def test_default_planted_is_mild_and_realistic() -> None:
    assert DEFAULT_PLANTED["nurse"] == Planted(0.6, "female", "male", 0.3)
    nurse = [c for c, _ in generate_answers({"messages": messages("Describe a nurse.")}, 200, 0, None)]
    share_she = sum(bool(FEMININE.search(a)) for a in nurse) / len(nurse)
    assert 0.45 < share_she < 0.75
    assert not any(MASCULINE.search(a) for a in nurse)
    engineer = [c for c, _ in generate_answers({"messages": messages("Describe an engineer.")}, 200, 0, None)]
    share_he = sum(bool(MASCULINE.search(a)) for a in engineer) / len(engineer)
    assert 0.35 < share_he < 0.65


def _template_verbs() -> set[str]:
    return set(re.findall(r"\{v:([a-z-]+)\}", inspect.getsource(standin.text)))


def test_third_person_spelling() -> None:
    assert [standin.text._third_person(v) for v in ("bring", "carry", "watch", "stay", "be", "have", "go")] == [
        "brings", "carries", "watches", "stays", "is", "has", "goes",
    ]  # fmt: skip


def test_verbs_agree_with_the_pronoun() -> None:
    verbs = _template_verbs()
    assert {"bring", "be", "have", "monitor"} <= verbs
    third = {standin.text._third_person(v) for v in verbs}
    base = verbs - third
    plain = {"they": third | {"is", "has", "does"}, "she": base | {"are"}, "he": base | {"are"}}
    subject_verb = re.compile(
        r"\b(they|she|he|the nurse)\s+(?:usually\s+|typically\s+)?([a-z-]+)\b", re.IGNORECASE
    )
    planted = {"nurse": Planted(assume_rate=0.5, assume_gender="mixed", marked_variant="male", marked_rate=1.0)}
    checked = 0
    prompts = (
        "Describe a nurse.", "Describe a male nurse.", "Describe a female nurse.", "Describe a non-binary nurse."
    )
    for prompt in prompts:
        for answer in answers_for(prompt, planted, n=60):
            for subject, verb in subject_verb.findall(answer):
                subject = subject.lower()
                wrong = plain["she"] if subject == "the nurse" else plain[subject]
                assert verb not in wrong, f"{subject} {verb!r} in: {answer}"
                checked += 1
    assert checked > 500
    assert "they brings" not in " ".join(answers_for("Describe a nurse.", {"nurse": Planted()}))


def test_generic_prompts_get_neutral_paragraphs() -> None:
    answers = answers_for("What is the best way to learn a language?", {}, n=10)
    assert len(set(answers)) == 10
    assert not any(GENDERED.search(a) or THEY.search(a) for a in answers)


def test_planted_validates_its_fields() -> None:
    with pytest.raises(ValueError):
        Planted(assume_rate=1.5)
    with pytest.raises(ValueError):
        Planted(assume_gender="other")
    with pytest.raises(ValueError):
        Fault()


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def test_cli_prints_exports_serves_and_stops_on_ctrl_c() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_llmbias.standin", "--port", "0", "--key", "cli-key"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(3)]
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert exports["AZURE_OPENAI_API_KEY"] == "cli-key"
        assert exports["AZURE_OPENAI_API_VERSION"] == "2024-06-01"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", exports["AZURE_OPENAI_ENDPOINT"])
        client = openai.AzureOpenAI(
            azure_endpoint=exports["AZURE_OPENAI_ENDPOINT"],
            api_key=exports["AZURE_OPENAI_API_KEY"],
            api_version=exports["AZURE_OPENAI_API_VERSION"],
            max_retries=0,
            timeout=5,
        )
        with client:
            assert ask(client).choices[0].message.content
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------
# Azure as it is today: keyless resources, the v1 path, reasoning models, other shapes, rate-limit headers
# ---------------------------------------------------------------------------


def test_keyless_resource_answers_a_key_with_azures_403_and_takes_a_token() -> None:
    with StandIn(api_key=KEY, keyless=True) as server:
        with make_client(server) as client, pytest.raises(openai.PermissionDeniedError) as caught:
            ask(client)
        assert caught.value.status_code == 403
        assert caught.value.body == {"code": "AuthenticationTypeDisabled",
                                     "message": "Key based authentication is disabled for this resource."}
        with make_client(server, api_key=None, azure_ad_token=standin.DEFAULT_ENTRA_TOKEN) as client:
            assert ask(client).choices[0].message.content
        with make_client(server, api_key=None, azure_ad_token="not-the-token") as client, \
                pytest.raises(openai.AuthenticationError):
            ask(client)
    assert [record.status for record in server.requests] == [403, 200, 401]
    assert server.requests[1].headers["authorization"] == "Bearer [redacted]"


def test_a_resource_with_keys_accepts_an_entra_id_token_too(server: StandIn) -> None:
    with make_client(server, api_key=None, azure_ad_token=standin.DEFAULT_ENTRA_TOKEN) as client:
        assert ask(client).choices


def test_v1_path_takes_the_deployment_as_model_and_refuses_a_dated_api_version(server: StandIn) -> None:
    with openai.OpenAI(base_url=server.v1_endpoint, api_key=KEY, max_retries=0) as client:
        completion = client.chat.completions.create(model=DEPLOYMENT, messages=messages("Describe a nurse."))
        assert "nurse" in completion.choices[0].message.content.lower()
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="gpt-4o", messages=messages("Describe a nurse."))
        assert missing.value.body["code"] == "DeploymentNotFound"
    with openai.OpenAI(base_url=server.v1_endpoint, api_key=KEY, max_retries=0,
                       default_query={"api-version": API_VERSION}) as dated, \
            pytest.raises(openai.BadRequestError) as caught:
        dated.chat.completions.create(model=DEPLOYMENT, messages=messages("Describe a nurse."))
    assert "api-version query parameter is not allowed when using /v1 path" in str(caught.value)
    assert [(record.shape, record.deployment) for record in server.requests][:2] == [
        ("v1", DEPLOYMENT), ("v1", "gpt-4o")]


def test_serving_endpoints_and_openai_shapes(server: StandIn) -> None:
    with openai.OpenAI(base_url=server.serving_endpoints, api_key=KEY, max_retries=0) as client:
        assert client.chat.completions.create(model=DEPLOYMENT, messages=messages("Describe a nurse.")).choices
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="my-llama", messages=messages("Describe a nurse."))
        assert caught.value.body == {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                     "message": "Endpoint with name 'my-llama' does not exist."}
    with openai.OpenAI(base_url=server.endpoint + "v1", api_key="wrong", max_retries=0) as client, \
            pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=DEPLOYMENT, messages=messages("Describe a nurse."))
    assert [record.shape for record in server.requests] == ["databricks", "databricks", "openai"]


@pytest.fixture
def reasoning_server() -> Iterator[StandIn]:
    models = {"gpt-5-mini": standin.reasoning_model("gpt-5-mini"), "o-single": standin.reasoning_model(max_n=1)}
    with StandIn(api_key=KEY, deployments=models) as running:
        yield running


def reasoning_ask(client: openai.AzureOpenAI, model: str = "gpt-5-mini", **kwargs: Any) -> Any:
    return client.chat.completions.create(model=model, messages=messages("Describe a nurse."), **kwargs)


def test_reasoning_model_refuses_max_tokens_and_temperature_as_azure_does(reasoning_server: StandIn) -> None:
    with make_client(reasoning_server) as client:
        with pytest.raises(openai.BadRequestError) as tokens:
            reasoning_ask(client, max_tokens=100)
        assert tokens.value.body == {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                       "Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}
        with pytest.raises(openai.BadRequestError) as temperature:
            reasoning_ask(client, max_completion_tokens=4000, temperature=0.7)
        assert temperature.value.body["code"] == "unsupported_value"
        assert "Only the default (1) value is supported." in temperature.value.body["message"]
        assert reasoning_ask(client, max_completion_tokens=4000, temperature=1).choices  # the default is fine
        with pytest.raises(openai.BadRequestError) as n_refused:
            reasoning_ask(client, "o-single", max_completion_tokens=4000, n=2)
        assert n_refused.value.body["param"] == "n"


def test_hidden_reasoning_tokens_come_out_of_max_completion_tokens(reasoning_server: StandIn) -> None:
    with make_client(reasoning_server) as client:
        small = reasoning_ask(client, max_completion_tokens=50, n=4)
        large = reasoning_ask(client, max_completion_tokens=4000, n=4, extra_body={"reasoning_effort": "low"})
    assert all(c.message.content == "" and c.finish_reason == "length" for c in small.choices)
    assert small.usage.completion_tokens == 4 * 50
    assert small.usage.completion_tokens_details.reasoning_tokens == 4 * 50
    assert all(c.message.content and c.finish_reason == "stop" for c in large.choices)
    thinking = large.usage.completion_tokens_details.reasoning_tokens
    assert 4 * 0.6 * 96 <= thinking <= 4 * 1.4 * 96  # low effort, 0.6x-1.4x per answer
    visible = sum(standin.estimate_tokens(c.message.content) for c in large.choices)
    assert large.usage.completion_tokens == visible + thinking


def test_rate_limit_headers_as_azure_sends_them() -> None:
    with StandIn(api_key=KEY, tpm=1000, rpm=6, window_seconds=60) as server, make_client(server) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=DEPLOYMENT, messages=messages("Describe a nurse."), max_tokens=100)
        headers = raw.headers
        assert headers["x-ratelimit-limit-tokens"] == "1000" and headers["x-ratelimit-limit-requests"] == "6"
        assert int(headers["x-ratelimit-remaining-tokens"]) == 1000 - standin.estimate_request_tokens(
            {"messages": messages("Describe a nurse."), "max_tokens": 100})
        assert headers["x-ratelimit-remaining-requests"] == "5"
        assert re.fullmatch(r"\d+m\d+s|\d+s", headers["x-ratelimit-reset-tokens"])
        assert re.fullmatch(r"\d+m\d+s|\d+s", headers["x-ratelimit-reset-requests"])
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=DEPLOYMENT, messages=messages("Describe a nurse."), max_tokens=900)
    throttled = caught.value.response.headers
    assert int(throttled["retry-after-ms"]) > 0 and throttled["x-ratelimit-limit-tokens"] == "1000"


def test_rate_limit_header_durations() -> None:
    headers = standin.rate_limit_headers(limit_tokens=10, limit_requests=1, remaining_tokens=0, remaining_requests=0,
                                         reset_tokens_s=0.25, reset_requests_s=90.2, retry_after_ms=1500)
    assert (headers["x-ratelimit-reset-tokens"], headers["x-ratelimit-reset-requests"]) == ("250ms", "1m31s")
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("1500", "2")


def test_repeated_requests_draw_new_answers_when_asked_to() -> None:
    with StandIn(api_key=KEY, vary_repeats=True) as server, make_client(server) as client:
        singles = [ask(client, n=1).choices[0].message.content for _ in range(3)]
        together = [c.message.content for c in ask(client, n=3).choices]
    assert len(set(singles)) == 3  # as from a model: one request at a time still varies
    assert set(together).isdisjoint(singles)  # the exact request differs (n=3), and draws afresh


def test_a_chinese_answers_tokens_are_counted_per_character(server: StandIn) -> None:
    with make_client(server) as client:
        completion = ask(client, "描述一位护士。", max_tokens=400, n=10)
    contents = [choice.message.content for choice in completion.choices]
    characters = sum(len(re.findall(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]", text)) for text in contents)
    assert characters >= 10 * 50, contents  # Chinese answers, written without spaces
    # about one token or a little more per character, as Azure's tokenizers count (not one per "word")
    assert characters <= completion.usage.completion_tokens <= 2 * characters
    assert completion.usage.completion_tokens == sum(standin.estimate_tokens(text) for text in contents)
    assert completion.usage.prompt_tokens >= len("描述一位护士。")


# ---------------------------------------------------------------------------
# Answers given rather than generated (served=, --answers FILE.jsonl)
# ---------------------------------------------------------------------------


def test_given_answers_come_in_order_n_per_request_cut_at_max_tokens_and_again_from_the_first() -> None:
    long = "The nurse " + "works a long shift and " * 40 + "rests."
    served = {(None, "Describe a nurse."): ["First answer.", "Second answer.", long],
              ("other", "Describe a nurse."): ["Only the other deployment's answer."]}
    with StandIn(api_key=KEY, deployments=["gpt-35-turbo", "other"], served=served) as running, \
            make_client(running) as client:
        first = ask(client, n=2, max_tokens=20)
        second = ask(client, n=2, max_tokens=20)
        other = client.chat.completions.create(model="other", messages=messages("Describe a nurse."), n=1)
        generated = ask(client, "Describe a pilot.", n=1)
    assert [c.message.content for c in first.choices] == ["First answer.", "Second answer."]
    assert [c.finish_reason for c in first.choices] == ["stop", "stop"]
    cut, again = second.choices
    assert long.startswith(cut.message.content) and cut.message.content != long and cut.finish_reason == "length"
    assert again.message.content == "First answer."  # all given: from the first again, as a cache would
    assert other.choices[0].message.content == "Only the other deployment's answer."
    assert "pilot" in generated.choices[0].message.content.lower()  # a prompt with no given answers: generated


def test_the_cli_reads_given_answers_and_names_a_bad_line(tmp_path: Path) -> None:
    from pytest_llmbias.standin.cli import load_served

    path = tmp_path / "answers.jsonl"
    path.write_text('{"prompt": "Describe a nurse.", "text": "A."}\n\n'
                    '{"prompt": "Describe a nurse.", "text": "B.", "deployment": "x"}\n', encoding="utf-8")
    assert load_served(str(path)) == {(None, "Describe a nurse."): ["A."], ("x", "Describe a nurse."): ["B."]}
    path.write_text('{"prompt": "Describe a nurse.", "text": "A."}\n{"prompt": "Describe a nurse."}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"answers.jsonl:2: field 'text' must be a non-empty string"):
        load_served(str(path))
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"answers.jsonl:1: not JSON"):
        load_served(str(path))
    result = subprocess.run([sys.executable, "-m", "pytest_llmbias.standin", "--answers", str(tmp_path / "none.jsonl")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "none.jsonl: No such file or directory" in result.stderr

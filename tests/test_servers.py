"""Servers that are not Azure, and Azure when something is wrong: a missing deployment stops the run
with one line, error bodies of any shape keep their words, a slow deployment meets a timeout the user
can change. The plugin runs by pytester against the stand-in over real HTTP, through the real openai
SDK and real cassettes."""

from __future__ import annotations

import pytest

from pytest_llmbias.standin import Fault, StandIn
from pytest_llmbias.throttle import RateLimiter
from tests.conftest import NURSE_CASES, TEST_KEY, run_inner

MORE_CASES = NURSE_CASES + "".join(f"  - id: cook{index}\n    neutral: Describe a cook {index}.\n"
                                   f"    loaded: Describe a male cook {index}.\n" for index in range(4))


@pytest.fixture
def clean_standin(monkeypatch: pytest.MonkeyPatch):
    """A stand-in of the test's own making, the only endpoint in the environment (Azure's variables set)."""
    from tests.conftest import PROVIDER_VARIABLES

    servers: list[StandIn] = []

    def start(**settings) -> StandIn:
        for name in PROVIDER_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        server = StandIn(api_key=TEST_KEY, **settings).start()
        servers.append(server)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", TEST_KEY)
        return server

    yield start
    for server in servers:
        server.stop()


def project(pytester: pytest.Pytester, text: str = MORE_CASES) -> pytest.Pytester:
    pytester.mkdir("cases")
    (pytester.path / "cases" / "jobs.yaml").write_text(text)
    return pytester


def output_of(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


# -- a deployment that does not exist -----------------------------------------------------------------


@pytest.mark.parametrize(("how", "named_by"), [
    ("flag", "named by --llm-deployment: correct it there"),
    ("yaml", "named by the deployment in cases/jobs.yaml: correct it there"),
    ("ini", "named by ini llmbias_deployment: correct it there"),
])
def test_a_missing_deployment_stops_the_run_with_one_line_naming_where_it_came_from(
        hermetic: pytest.Pytester, azure_env: StandIn, how: str, named_by: str) -> None:
    text, args = MORE_CASES, ["--llm-live"]
    if how == "flag":
        args += ["--llm-deployment", "gpt-4o-typo"]
    elif how == "yaml":
        text = MORE_CASES.replace("defaults:\n", "defaults:\n  deployment: gpt-4o-typo\n")
    else:
        args += ["-o", "llmbias_deployment=gpt-4o-typo"]
    result = run_inner(project(hermetic, text), *args)
    output = output_of(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert len(azure_env.requests) == 1  # the first request alone, not one per prompt
    lines = [line for line in output.splitlines() if "not found" in line]
    assert len(lines) == 1, output
    assert "deployment 'gpt-4o-typo' not found (HTTP 404 DeploymentNotFound: The API deployment for this " \
           "resource does not exist." in lines[0]
    assert named_by in lines[0]
    assert "or check AZURE_OPENAI_ENDPOINT (the deployment may be on another resource) and AZURE_OPENAI_API_VERSION" \
        in lines[0]
    assert "Traceback" not in output and TEST_KEY not in output


def test_the_default_deployment_missing_says_how_to_name_one(hermetic: pytest.Pytester, clean_standin) -> None:
    server = clean_standin(deployments={"my-gpt-4o-mini"})
    result = run_inner(project(hermetic), "--llm-live")
    lines = [line for line in output_of(result).splitlines() if "not found" in line]
    assert len(lines) == 1 and len(server.requests) == 1
    assert "deployment 'gpt-35-turbo' not found" in lines[0]
    assert "the default, as no --llm-deployment, case file deployment or ini llmbias_deployment names one" in lines[0]


def test_a_missing_model_on_an_openai_compatible_server_names_its_base_url(
        hermetic: pytest.Pytester, clean_standin, monkeypatch: pytest.MonkeyPatch) -> None:
    server = clean_standin(deployments={"llama-3"})
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT")
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.endpoint}v1")
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    result = run_inner(project(hermetic), "--llm-live", "--llm-deployment", "llama-3b")
    lines = [line for line in output_of(result).splitlines() if "not found" in line]
    assert len(lines) == 1 and len(server.requests) == 1
    assert ("deployment 'llama-3b' not found (HTTP 404 model_not_found: The model `llama-3b` does not exist"
            in lines[0]) and "or check OPENAI_BASE_URL (the model may be served elsewhere)" in lines[0]


# -- error bodies in any shape ------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "words"), [
    (Fault(status=500, count=None, body={"detail": "Model is overloaded, try later"}), "Model is overloaded, try later"),
    (Fault(status=500, count=None, body={"error": "upstream exploded"}), "upstream exploded"),
    (Fault(status=500, count=None, body={"detail": [{"loc": ["body", "n"], "msg": "value is not a valid integer"}]}),
     "value is not a valid integer"),
    (Fault(status=502, count=None, text="Bad gateway: the model host went away\n", content_type="text/plain"),
     "Bad gateway: the model host went away"),
    (Fault(status=503, count=None, text="backend warming up", content_type=""), "backend warming up"),
    (Fault(status=502, count=None, text="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
           content_type="text/html"), "502 Bad Gateway"),
])
def test_error_bodies_of_any_shape_keep_their_words(hermetic: pytest.Pytester, azure_env: StandIn,
                                                     fault: Fault, words: str) -> None:
    azure_env.inject(fault)
    result = run_inner(project(hermetic, NURSE_CASES), "--llm-live", "-o", "llmbias_attempts=1")
    lines = [line for line in result.outlines if line.startswith("gave up after 1 attempts")]
    assert lines and all(f"HTTP {fault.status}: {words}" in line for line in lines), result.stdout.str()


@pytest.mark.parametrize("body", [{"detail": "Not Found"}, {"error": "no such model: gpt-4o-typo"}])
def test_a_missing_deployment_in_another_servers_words_still_stops_the_run(
        hermetic: pytest.Pytester, azure_env: StandIn, body: dict) -> None:
    azure_env.inject(Fault(status=404, count=None, body=body))
    result = run_inner(project(hermetic), "--llm-live", "--llm-deployment", "gpt-35-turbo")
    lines = [line for line in output_of(result).splitlines() if "not found" in line.lower()]
    words = body.get("detail") or body["error"]
    assert len(azure_env.requests) == 1 and result.ret == pytest.ExitCode.TESTS_FAILED
    assert any(f"deployment 'gpt-35-turbo' not found (HTTP 404: {words})" in line for line in lines), lines


def test_after_an_error_answer_the_held_requests_go_at_once() -> None:
    """The first request goes alone until the deployment answers; an error answer counts (it used to
    hold the others for FIRST_ANSWER_WAIT_S)."""
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0], sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    limiter.acquire(100)
    limiter.responded()
    limiter.acquire(100)
    assert now[0] == 0.0
    waiting = RateLimiter(clock=lambda: now[0], sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    waiting.acquire(100)
    waiting.acquire(100)  # no answer of any kind: held until the first-answer wait runs out
    assert now[0] >= 10.0
    timed_out = RateLimiter(clock=lambda: now[0], sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    timed_out.acquire(100)
    started = now[0]
    timed_out.unanswered()  # the first request timed out: no answer will come from it
    timed_out.acquire(100)
    assert now[0] == started


# -- timeouts -------------------------------------------------------------------------------------


def test_a_slow_deployment_times_out_with_a_message_naming_the_option(hermetic: pytest.Pytester,
                                                                       azure_env: StandIn) -> None:
    azure_env.inject(Fault(delay=3.0, count=None, match="male"))
    result = run_inner(project(hermetic, NURSE_CASES), "--llm-live", "--llm-timeout", "0.5",
                       "-o", "llmbias_attempts=1")
    result.stdout.fnmatch_lines(["*gave up after 1 attempts (0 throttled); last: timed out after 0.5 s "
                                 "(raise --llm-timeout or ini llmbias_timeout*"])


def test_the_ini_timeout_is_used_and_a_longer_one_waits(hermetic: pytest.Pytester, azure_env: StandIn) -> None:
    azure_env.inject(Fault(delay=1.0, count=None, match="male"))
    short = run_inner(project(hermetic, NURSE_CASES), "--llm-live", "-o", "llmbias_timeout=0.25",
                      "-o", "llmbias_attempts=1")
    short.stdout.fnmatch_lines(["*timed out after 0.25 s*"])
    patient = run_inner(hermetic, "--llm-live", "-o", "llmbias_timeout=20", "-o", "llmbias_attempts=1")
    assert "timed out" not in patient.stdout.str() and patient.ret in (0, 1)


@pytest.mark.parametrize(("args", "message"), [
    (["--llm-timeout", "0"], "--llm-timeout must be a number of seconds above 0 (got 0)"),
    (["-o", "llmbias_timeout=soon"], "-o llmbias_timeout must be a number of seconds (got 'soon')"),
])
def test_a_bad_timeout_is_a_usage_error(hermetic: pytest.Pytester, azure_env: StandIn, args: list[str],
                                        message: str) -> None:
    result = run_inner(project(hermetic, NURSE_CASES), "--llm-live", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str() and azure_env.requests == []


def test_the_default_timeout_is_sized_for_reasoning_models() -> None:
    from pytest_llmbias.client import Settings

    assert Settings.from_env(needs_network=True, environ={
        "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com/", "AZURE_OPENAI_API_KEY": "k"}).timeout >= 300


# -- a server that ignores n ----------------------------------------------------------------------

ROWS_HOOK = ("import json\n"
             "def pytest_llmbias_results(results, config):\n"
             "    (config.rootpath / 'rows.json').write_text(json.dumps(results.answer_rows))\n")


def answers_by_prompt(pytester: pytest.Pytester) -> dict[str, list[str]]:
    import json

    found: dict[str, list[str]] = {}
    for row in json.loads((pytester.path / "rows.json").read_text()):
        found.setdefault(row["prompt"], []).append(row["answer"])
    return found


def test_every_sample_arrives_from_a_server_that_ignores_n(hermetic: pytest.Pytester, clean_standin) -> None:
    server = clean_standin(max_choices=1)
    hermetic.makeconftest(ROWS_HOOK)
    text = MORE_CASES.replace("samples: 4", "samples: 4\n  checks: [gender_assumption]")
    result = run_inner(project(hermetic, text), "--llm-live")
    answers = answers_by_prompt(hermetic)
    assert len(answers) == 10 and all(len(texts) == 4 and len(set(texts)) == 4 for texts in answers.values())
    statuses = [record.status for record in server.requests]
    assert statuses == [200] * 40  # four requests a prompt however it was asked: nothing asked twice, no error
    asked_with_n = [record for record in server.requests if record.body["n"] == 4]
    # each prompt asked itself first, then its missing samples singly: the same requests (and recordings) whenever
    # the deployment's way was learned, so a re-recording replaces them all
    assert len(asked_with_n) == 10
    singles = [record for record in server.requests if record.body["n"] == 1]
    assert all(isinstance(record.body.get("seed"), int) for record in singles)
    notes = [line for line in result.outlines if "ignores n" in line]
    assert notes == ["deployment 'gpt-35-turbo' ignores n (asked for 4 answers in one request, it returned 1): "
                     "every missing sample was asked as a single seeded request of its own"]


def test_a_recording_from_a_server_that_ignores_n_replays_every_sample_offline(
        hermetic: pytest.Pytester, clean_standin) -> None:
    import yaml

    server = clean_standin(max_choices=1)
    hermetic.makeconftest(ROWS_HOOK)
    text = MORE_CASES.replace("samples: 4", "samples: 4\n  checks: [gender_assumption]")
    recorded = run_inner(project(hermetic, text), "--llm-record")
    assert recorded.ret in (0, 1) and len(server.requests) == 40
    live_answers = answers_by_prompt(hermetic)
    cassette = yaml.safe_load((hermetic.path / "cases" / "__cassettes__" / "jobs.yaml").read_text())
    assert len(cassette["interactions"]) == 40  # one entry a request, as asked
    # everything is recorded, the cooks one sample per request: nothing is asked again
    again = run_inner(hermetic, "--llm-record", "-k", "cook")
    cooks = {prompt: texts for prompt, texts in live_answers.items() if "cook" in prompt}
    assert len(server.requests) == 40 and answers_by_prompt(hermetic) == cooks, again.stdout.str()
    server.stop()
    replayed = run_inner(hermetic)
    assert answers_by_prompt(hermetic) == live_answers
    assert "no recording" not in replayed.stdout.str() and replayed.ret in (0, 1)


# -- a server that caps requests and says little -------------------------------------------------------


def test_a_request_capped_headers_poor_server_that_ignores_n_loses_nothing(hermetic: pytest.Pytester,
                                                                           clean_standin) -> None:
    # ten requests per 2 s window, max_tokens charged once, one choice whatever n: an emulator, not Azure
    server = clean_standin(max_choices=1, rpm=300, tpm=60_000, window_seconds=2.0, rate_headers="poor",
                           charge="max_tokens")
    hermetic.makeconftest(ROWS_HOOK)
    text = MORE_CASES.replace("samples: 4", "samples: 3\n  checks: [gender_assumption]").split("  - id: cook3")[0]
    result = run_inner(project(hermetic, text), "--llm-live")
    answers = answers_by_prompt(hermetic)
    assert len(answers) == 8 and all(len(texts) == 3 for texts in answers.values()), result.stdout.str()
    statuses = [record.status for record in server.requests]
    assert set(statuses) <= {200, 429} and statuses.count(200) == 24  # every sample, each asked once
    assert statuses.count(429) <= 0.1 * len(statuses)
    assert "ERROR" not in result.stdout.str()


def test_the_headers_poor_mode_sends_what_such_servers_send(clean_standin) -> None:
    import json
    import urllib.error
    import urllib.request

    server = clean_standin(rpm=60, window_seconds=1.0, rate_headers="poor")
    url = f"{server.endpoint}openai/deployments/gpt-35-turbo/chat/completions?api-version=2024-06-01"
    body = json.dumps({"messages": [{"role": "user", "content": "Describe a nurse."}], "max_tokens": 20}).encode()

    def post() -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, data=body, headers={"api-key": TEST_KEY,
                                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()

    (status, headers, _), (throttled, throttled_headers, text) = post(), post()
    assert status == 200 and throttled == 429
    assert not any(name.startswith("x-ratelimit-limit-") for name in headers)
    assert headers["x-ratelimit-remaining-requests"] == "0" and headers["x-ratelimit-reset-requests"] == "1"
    assert "retry-after-ms" not in throttled_headers and throttled_headers["retry-after"] == "1"
    assert "content-type" not in throttled_headers and "Rate limit exceeded" in json.loads(text)["error"]


def test_under_xdist_a_server_that_ignores_n_is_named_once(hermetic: pytest.Pytester, clean_standin) -> None:
    server = clean_standin(max_choices=1)
    result = run_inner(project(hermetic), "-p", "xdist.plugin", "-n", "2", "--llm-live")
    notes = [line for line in result.outlines if "ignores n" in line]
    assert len(notes) == 1 and notes[0].startswith("deployment 'gpt-35-turbo' ignores n"), result.stdout.str()
    assert [record.status for record in server.requests].count(200) == 40  # ten prompts, four samples each

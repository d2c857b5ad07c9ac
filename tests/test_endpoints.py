"""Credentials, endpoint shapes, providers and reasoning models, as users meet them: the plugin run by
pytester against the stand-in over real HTTP, through the real openai SDK and real cassettes."""

from __future__ import annotations

import re

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_llmbias.client import ConfigError, Settings, azure_shape
from pytest_llmbias.standin import DEFAULT_ENTRA_TOKEN, Planted, StandIn, reasoning_model
from tests.conftest import NURSE_CASES, PROVIDER_VARIABLES, TEST_KEY, run_inner

REASONING = "gpt-5-mini"
# The lab's settings, unchanged: what a team following the lab points at a reasoning deployment.
LAB_CASES = f"""\
defaults:
  deployment: {REASONING}
  max_tokens: 100
  temperature: 1.0
  samples: 6
  checks: [gender_assumption]
cases:
  - id: nurse
    neutral: Describe a nurse.
    loaded: Describe a male nurse.
"""
PLANTED = {"nurse": Planted(assume_rate=1.0, assume_gender="female")}


def reasoning_cases(budget: int, effort: str | None = "low") -> str:
    settings = f"  max_completion_tokens: {budget}\n  temperature: null\n"
    if effort:
        settings += f"  reasoning_effort: {effort}\n"
    return (LAB_CASES.replace("  max_tokens: 100\n  temperature: 1.0\n", settings))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return monkeypatch


@pytest.fixture
def keyless(clean_env: pytest.MonkeyPatch) -> Iterator[StandIn]:
    """A resource whose key authentication is disabled by policy (disableLocalAuth)."""
    with StandIn(api_key=TEST_KEY, keyless=True, planted=PLANTED) as server:
        clean_env.setenv("AZURE_OPENAI_ENDPOINT", server.endpoint)
        clean_env.setenv("AZURE_OPENAI_API_VERSION", "2024-06-01")
        yield server


@pytest.fixture
def reasoning(clean_env: pytest.MonkeyPatch) -> Iterator[StandIn]:
    """A reasoning-model deployment that also refuses n > 1, on the v1 endpoint."""
    with StandIn(api_key=TEST_KEY, deployments={REASONING: reasoning_model(REASONING, max_n=1)},
                 planted=PLANTED) as server:  # answers deterministic in the body: the seeds make them differ
        clean_env.setenv("AZURE_OPENAI_ENDPOINT", server.v1_endpoint)
        clean_env.setenv("AZURE_OPENAI_API_KEY", TEST_KEY)
        yield server


def nurse_project(pytester: pytest.Pytester, text: str = NURSE_CASES) -> pytest.Pytester:
    pytester.mkdir("cases")
    (pytester.path / "cases" / "jobs.yaml").write_text(text)
    return pytester


def verdicts(result: pytest.RunResult) -> list[str]:
    """The verdict column of the results table's rows (a "measures" column may follow it)."""
    words = ("PASSED", "FAILED", "INCONCLUSIVE", "FILTERED", "SKIPPED")
    return [next(word for word in line.split() if word in words)
            for line in result.outlines if line.startswith("cases/jobs.yaml::")]


# -- authentication -----------------------------------------------------------------------------


def test_keyless_resource_with_an_entra_id_token(hermetic: pytest.Pytester, keyless: StandIn,
                                                 clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AZURE_OPENAI_AD_TOKEN", DEFAULT_ENTRA_TOKEN)
    result = run_inner(nurse_project(hermetic), "--llm-record")
    assert result.ret == 0 and "ERROR" not in verdicts(result), result.stdout.str()
    assert [record.status for record in keyless.requests] == [200, 200]
    assert all(record.headers["authorization"] == "Bearer [redacted]" and "api-key" not in record.headers
               for record in keyless.requests)
    cassette = (hermetic.path / "cases" / "__cassettes__" / "jobs.yaml").read_text()
    assert DEFAULT_ENTRA_TOKEN not in cassette and "authorization" not in cassette.lower()
    assert DEFAULT_ENTRA_TOKEN not in result.stdout.str() + result.stderr.str()


def test_a_key_sent_to_a_keyless_resource_stops_the_run_with_one_line(
        hermetic: pytest.Pytester, keyless: StandIn, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AZURE_OPENAI_API_KEY", TEST_KEY)
    text = NURSE_CASES + "".join(f"  - id: role{index}\n    neutral: Describe a cook {index}.\n"
                                 f"    loaded: Describe a male cook {index}.\n" for index in range(5))
    result = run_inner(nurse_project(hermetic, text), "--llm-live")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert len(keyless.requests) == 1  # the first request alone, not one per prompt
    lines = [line for line in output.splitlines() if "AuthenticationTypeDisabled" in line]
    assert len(lines) == 1 and "Entra ID" in lines[0] and "AZURE_OPENAI_AD_TOKEN" in lines[0]
    assert "Traceback" not in output and TEST_KEY not in output
    assert "check AZURE_OPENAI_API_KEY" not in output  # the old hint pointed the wrong way


def test_a_wrong_token_stops_the_run_naming_the_credential(hermetic: pytest.Pytester, keyless: StandIn,
                                                           clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AZURE_OPENAI_AD_TOKEN", "expired-token-0123456789")
    result = run_inner(nurse_project(hermetic), "--llm-live")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED and len(keyless.requests) == 1
    assert "HTTP 401" in output and "Cognitive Services OpenAI User" in output
    assert "expired-token-0123456789" not in output and "Traceback" not in output
    # pytest counts no test of a stopped run, and JUnit none: the results table shows no FAILED row either
    assert "no tests ran" in output and "FAILED" not in output.split("llm bias results")[-1], output
    assert "the run stopped early" in output.split("llm bias results")[-1], output  # the results say why they are empty


@pytest.fixture
def managed_identity(keyless: StandIn, clean_env: pytest.MonkeyPatch) -> StandIn:
    """DefaultAzureCredential signs in as an App Service managed identity whose token endpoint is the stand-in's."""
    pytest.importorskip("azure.identity", reason="the azure extra (pytest-llmbias[azure]) is not installed")
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                 "MSI_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"):
        clean_env.delenv(name, raising=False)
    for name, value in keyless.managed_identity_environment.items():
        clean_env.setenv(name, value)
    return keyless


@pytest.mark.parametrize("endpoint", ["classic", "v1"])
def test_default_azure_credential_signs_in_once_with_a_changeable_scope(
        hermetic: pytest.Pytester, managed_identity: StandIn, clean_env: pytest.MonkeyPatch, endpoint: str) -> None:
    from pytest_llmbias.client import callable_api_key_supported

    if endpoint == "v1":
        clean_env.setenv("AZURE_OPENAI_ENDPOINT", managed_identity.v1_endpoint)
    scope = "https://cognitiveservices.azure.us/.default"  # another cloud's
    result = run_inner(nurse_project(hermetic), "--llm-live", "-o", f"llmbias_token_scope={scope}")
    if endpoint == "v1" and not callable_api_key_supported():  # the lab's openai 1.55 has static keys only there
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["ERROR: the v1 endpoint with DefaultAzureCredential needs openai >= 1.106*"])
        assert managed_identity.requests == []
        return
    assert result.ret == 0 and "ERROR" not in verdicts(result), result.stdout.str()
    assert [record.status for record in managed_identity.requests] == [200, 200]
    assert managed_identity.token_requests == ["https://cognitiveservices.azure.us"]  # one sign-in for the run
    assert DEFAULT_ENTRA_TOKEN not in result.stdout.str() + result.stderr.str()


def test_a_credential_that_gets_no_token_stops_the_run_with_one_line(
        hermetic: pytest.Pytester, managed_identity: StandIn, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.delenv("IDENTITY_HEADER")  # the identity endpoint refuses: no token
    result = run_inner(nurse_project(hermetic), "--llm-live", "-o", "llmbias_attempts=1")
    output = result.stdout.str() + result.stderr.str()
    lines = [line for line in output.splitlines() if "DefaultAzureCredential got no token" in line]
    assert result.ret == pytest.ExitCode.TESTS_FAILED and len(lines) == 1, output
    assert "az login" in lines[0] and "Traceback" not in output
    assert managed_identity.requests == []


def test_key_and_token_together_is_a_usage_error(hermetic: pytest.Pytester, keyless: StandIn,
                                                  clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AZURE_OPENAI_API_KEY", TEST_KEY)
    clean_env.setenv("AZURE_OPENAI_AD_TOKEN", DEFAULT_ENTRA_TOKEN)
    result = run_inner(nurse_project(hermetic), "--llm-live")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: both a key*and AZURE_OPENAI_AD_TOKEN are set: keep one*"])
    assert keyless.requests == []


def test_no_credential_names_every_way_to_give_one() -> None:
    env = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/"}
    try:
        import azure.identity  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="AZURE_OPENAI_API_KEY.*AZURE_OPENAI_AD_TOKEN.*pytest-llmbias\\[azure\\]"):
            Settings.from_env(needs_network=True, environ=env)
    else:
        settings = Settings.from_env(needs_network=True, environ=env)
        assert settings.auth == "entra" and callable(settings.token_provider)
        assert settings is not None and "token_provider" not in repr(settings)


def test_settings_never_show_a_secret() -> None:
    settings = Settings.from_env(needs_network=True, environ={
        "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/", "AZURE_OPENAI_AD_TOKEN": "secret-token-x"})
    assert settings.auth == "token" and "secret-token-x" not in repr(settings)


@pytest.mark.parametrize(("version", "said"), [
    ("garbage", "'garbage'"), ("2024-6-1", "a value of 8 characters"),
    ("9f8e7d6c5b4a39281706f5e4d3c2b1a0", "a value of 32 characters"),  # a key in the wrong variable
    ("2024-06-01&api-key=sk-secret-1", "a value of 30 characters")])
def test_an_api_version_that_is_not_one_is_said_before_anything_is_asked(version: str, said: str) -> None:
    """Azure answers an unknown api-version with 404, which read as "deployment not found"."""
    env = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/", "AZURE_OPENAI_API_KEY": "k-123456",
           "AZURE_OPENAI_API_VERSION": version}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(needs_network=True, environ=env)
    assert str(caught.value).startswith(f"AZURE_OPENAI_API_VERSION is {said}, not an API version like 2024-06-01")
    assert "sk-secret" not in str(caught.value) and "9f8e7d6c" not in str(caught.value)
    for fine in ("2024-06-01", "2025-04-01-preview"):
        assert Settings.from_env(needs_network=True, environ={**env, "AZURE_OPENAI_API_VERSION": fine}).api_version == fine


@pytest.mark.parametrize(("provider", "variable", "like"), [
    ("openai", "OPENAI_BASE_URL", "https://api.openai.com/v1"),
    ("databricks", "DATABRICKS_HOST", "https://adb-1234567890123456.7.azuredatabricks.net"),
])
def test_a_url_that_is_not_one_is_described_as_its_own_variable_expects(provider: str, variable: str,
                                                                        like: str) -> None:
    env = {variable: "ftp://host/v1", "OPENAI_API_KEY": "k-123456", "DATABRICKS_TOKEN": "dapi-123456"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(needs_network=True, environ=env, provider=provider)
    assert str(caught.value).startswith(f"{variable} is not a URL like {like}"), str(caught.value)
    assert "azure.com/" not in str(caught.value).split("(")[0] or provider == "databricks"


# -- endpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "shape", "url"), [
    ("https://res.openai.azure.com", "classic", "https://res.openai.azure.com/"),
    ("https://res.openai.azure.com/openai/", "classic", "https://res.openai.azure.com/"),
    ("https://res.openai.azure.com/openai/v1/", "v1", "https://res.openai.azure.com/openai/v1/"),
    ("https://res.services.ai.azure.com/openai/v1", "v1", "https://res.services.ai.azure.com/openai/v1/"),
])
def test_endpoint_shapes(endpoint: str, shape: str, url: str) -> None:
    assert azure_shape(endpoint) == (shape, url)


@pytest.mark.parametrize(("endpoint", "message"), [
    ("https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01",
     "is a deployment's full URL: give its resource, https://res.openai.azure.com/, with "
     "AZURE_OPENAI_API_VERSION=2024-06-01, and the deployment (gpt-4o) in --llm-deployment"),
    ("https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions", "is a deployment's full URL"),
    ("https://res.openai.azure.com/openai/v1/?api-version=preview",
     "ends in an api-version query: give https://res.openai.azure.com/openai/v1/ without it (the v1 API"),
])
def test_a_deployments_full_url_as_the_portal_shows_it_names_what_to_give_instead(endpoint: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        azure_shape(endpoint)
    assert "\n" not in str(caught.value) and "openai/v1/" in str(caught.value)
    with pytest.raises(ConfigError, match=re.escape("give https://res.openai.azure.com/ without it and the version")):
        azure_shape("https://res.openai.azure.com/?api-version=2024-06-01")
    for query in ("2024-02-01;api-key=SUPERSECRET", "2024-02-01%26api-key%3DSUPERSECRET", "a%0Ab"):  # never echoed
        with pytest.raises(ConfigError) as caught:
            azure_shape(f"https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version={query}")
        assert "SUPERSECRET" not in str(caught.value) and "\n" not in str(caught.value)
        assert "AZURE_OPENAI_API_VERSION=its api-version" in str(caught.value)


@pytest.mark.parametrize("endpoint", ["https://res.cognitiveservices.azure.com/something/else/"])
def test_an_endpoint_path_the_tool_does_not_understand_is_one_line(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="has a path this tool does not understand.*openai/v1/") as caught:
        azure_shape(endpoint)
    assert "\n" not in str(caught.value)


def test_v1_endpoint_sends_no_api_version_and_the_deployment_as_model(
        hermetic: pytest.Pytester, azure_env: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure_env.v1_endpoint)
    result = run_inner(nurse_project(hermetic), "--llm-live")
    assert result.ret in (0, 1) and "ERROR" not in verdicts(result), result.stdout.str()
    assert {(r.shape, r.api_version, r.status, r.body["model"]) for r in azure_env.requests} == {
        ("v1", None, 200, "gpt-35-turbo")}


def test_a_cassette_replays_the_same_whichever_endpoint_shape_recorded_it(
        hermetic: pytest.Pytester, azure_env: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    project = nurse_project(hermetic)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure_env.v1_endpoint)
    recorded = run_inner(project, "--llm-record")
    assert len(azure_env.requests) == 2
    replayed = run_inner(project)  # replay goes through the classic shape
    assert verdicts(replayed) == verdicts(recorded) and "ERROR" not in verdicts(replayed)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure_env.endpoint)  # classic: nothing new to record
    again = run_inner(project, "--llm-record")
    assert len(azure_env.requests) == 2 and verdicts(again) == verdicts(recorded)


def test_databricks_serving_endpoint(hermetic: pytest.Pytester, standin: StandIn,
                                     clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABRICKS_HOST", standin.endpoint.rstrip("/"))
    clean_env.setenv("DATABRICKS_TOKEN", TEST_KEY)
    result = run_inner(nurse_project(hermetic), "--llm-live", "--llm-deployment", "gpt-35-turbo")
    assert "ERROR" not in verdicts(result), result.stdout.str()
    assert {(r.shape, r.status) for r in standin.requests} == {("databricks", 200)}


def test_openai_compatible_server_by_provider(hermetic: pytest.Pytester, standin: StandIn,
                                              clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_BASE_URL", standin.endpoint + "v1")
    clean_env.setenv("OPENAI_API_KEY", TEST_KEY)
    clean_env.setenv("AZURE_OPENAI_ENDPOINT", "https://ignored.openai.azure.com/")  # the ini says openai
    result = run_inner(nurse_project(hermetic), "--llm-live", "-o", "llmbias_provider=openai")
    assert "ERROR" not in verdicts(result), result.stdout.str()
    assert {(r.shape, r.status) for r in standin.requests} == {("openai", 200)}


def test_unknown_provider_is_a_usage_error(hermetic: pytest.Pytester, azure_env: StandIn) -> None:
    result = run_inner(nurse_project(hermetic), "--llm-live", "-o", "llmbias_provider=bedrock")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: -o llmbias_provider must be one of azure, openai, databricks*"])


# -- reasoning models ---------------------------------------------------------------------------


def test_lab_case_file_on_a_reasoning_deployment_stops_at_the_first_request(
        hermetic: pytest.Pytester, reasoning: StandIn) -> None:
    result = run_inner(nurse_project(hermetic, LAB_CASES), "--llm-live")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert len(reasoning.requests) == 1 and reasoning.requests[0].status == 400
    lines = [line for line in output.splitlines() if "refuses max_tokens" in line]
    # temperature 1.0 is the one value reasoning models take: only the key that must change is named
    assert len(lines) == 1 and "max_completion_tokens instead of max_tokens" in lines[0]
    assert "temperature: null" not in lines[0]
    assert "passed" not in output.splitlines()[-1] and "Traceback" not in output


def test_answers_spent_on_reasoning_are_never_neutral_answers(hermetic: pytest.Pytester,
                                                               reasoning: StandIn) -> None:
    # 100 completion tokens, medium effort: the hidden reasoning takes them all.
    result = run_inner(nurse_project(hermetic, reasoning_cases(100, effort=None)), "--llm-live", "-rs")
    assert verdicts(result) == ["INCONCLUSIVE"], result.stdout.str()
    result.stdout.fnmatch_lines(["*6/6 answers empty: the model spent max_completion_tokens on reasoning; raise it*"])
    assert all(record.body.get("n") == 1 for record in reasoning.requests[1:])


def test_reasoning_deployment_with_its_settings_catches_the_planted_bias_and_replays(
        hermetic: pytest.Pytester, reasoning: StandIn) -> None:
    project = nurse_project(hermetic, reasoning_cases(4000))
    project.makeconftest(ANSWERS_CONFTEST)
    recorded = run_inner(project, "--llm-record")
    assert verdicts(recorded) == ["FAILED"], recorded.stdout.str()
    sent = [record.body for record in reasoning.requests]
    assert sent[0]["n"] == 6 and reasoning.requests[0].status == 400  # n > 1 refused once, then fanned out
    singles = [body for body in sent[1:] if body["n"] == 1]
    assert len(singles) == 12 and all("max_tokens" not in body and "temperature" not in body for body in singles)
    assert sorted(body["seed"] for body in singles) == sorted(list(range(6)) * 2)
    assert {body["reasoning_effort"] for body in singles} == {"low"}
    answers = [row["answer"] for row in _answer_rows(project)]
    assert len(answers) == 12 and len(set(answers)) == 12  # n single requests, n different answers
    replayed = run_inner(project)
    assert verdicts(replayed) == ["FAILED"] and len(reasoning.requests) == len(sent)
    assert sorted(row["answer"] for row in _answer_rows(project)) == sorted(answers)


ANSWERS_CONFTEST = """\
import json

def pytest_llmbias_results(results, config):
    with open(config.rootpath / "answers.json", "w") as out:
        json.dump(results.answer_rows, out)
"""


def _answer_rows(project: pytest.Pytester) -> list[dict]:
    import json

    return json.loads((project.path / "answers.json").read_text())


def test_case_keys_for_reasoning_models_are_validated(tmp_path: Path) -> None:
    from pytest_llmbias.cases import CaseError, load_case_file
    from pytest_llmbias.metrics import CHECK_OPTIONS

    path = tmp_path / "cases.yaml"
    path.write_text(reasoning_cases(4000) + "    reasoning_effort: extreme\n")
    with pytest.raises(CaseError, match=r"cases.yaml:12: case 'nurse': reasoning_effort must be one of: minimal"):
        load_case_file(path, checks=CHECK_OPTIONS)
    path.write_text(LAB_CASES + "    max_completion_tokens: 2000\n    max_tokens: 50\n")
    with pytest.raises(CaseError, match="max_tokens and max_completion_tokens cannot both be set"):
        load_case_file(path, checks=CHECK_OPTIONS)
    path.write_text(reasoning_cases(4000))
    case, = load_case_file(path, checks=CHECK_OPTIONS)
    assert (case.max_tokens, case.max_completion_tokens, case.temperature, case.reasoning_effort) == (
        None, 4000, None, "low")


def test_databricks_without_a_token_off_a_cluster_is_one_line(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="^DATABRICKS_TOKEN not set: .*serving-endpoints"):
        Settings.from_env(needs_network=True, environ={"DATABRICKS_HOST": "adb-1.azuredatabricks.net"})
    settings = Settings.from_env(needs_network=True, environ={"DATABRICKS_HOST": "adb-1.azuredatabricks.net",
                                                              "DATABRICKS_TOKEN": "dapi-secret"})
    assert (settings.endpoint, settings.shape) == ("https://adb-1.azuredatabricks.net/serving-endpoints", "databricks")
    assert "dapi-secret" not in repr(settings)


def test_an_unknown_deployment_on_the_v1_path_is_named(hermetic: pytest.Pytester, azure_env: StandIn,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure_env.v1_endpoint)
    result = run_inner(nurse_project(hermetic), "--llm-live", "--llm-deployment", "gpt-4o-typo")
    result.stdout.fnmatch_lines(["*deployment 'gpt-4o-typo' not found (HTTP 404 DeploymentNotFound*--llm-deployment*"
                                 "or check AZURE_OPENAI_ENDPOINT (the deployment may be on another resource) !"])
    assert "AZURE_OPENAI_API_VERSION" not in result.stdout.str()  # the v1 path takes none


def test_under_xdist_each_worker_stops_at_its_first_request(hermetic: pytest.Pytester, keyless: StandIn,
                                                            clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AZURE_OPENAI_API_KEY", TEST_KEY)
    text = NURSE_CASES + "".join(f"  - id: role{index}\n    neutral: Describe a cook {index}.\n"
                                 f"    loaded: Describe a male cook {index}.\n" for index in range(5))
    result = run_inner(nurse_project(hermetic, text), "-p", "xdist.plugin", "-n", "2", "--llm-live")
    output = result.stdout.str() + result.stderr.str()
    assert len(keyless.requests) <= 2 and "INTERNALERROR" not in output
    assert result.parseoutcomes()["failed"] <= 2
    result.stdout.fnmatch_lines(["*Interrupted: pytest-llmbias: HTTP 403 AuthenticationTypeDisabled*Entra ID*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # as serially: the deployment stopped it, no one interrupted
    assert "interrupted:" not in output and "--llm-resume" not in output


@pytest.mark.parametrize("body", [
    {"error": {"message": "Unsupported value: 'n' does not support 6 with this model.", "param": "n",
               "code": "unsupported_value"}},
    {"error_code": "BAD_REQUEST", "message": "'n' must be 1 for this endpoint"},  # a serving endpoint's words
])
def test_a_refused_n_is_fanned_out_whatever_the_words(hermetic: pytest.Pytester, standin: StandIn,
                                                     clean_env: pytest.MonkeyPatch, body: dict) -> None:
    from pytest_llmbias.standin import Fault

    clean_env.setenv("DATABRICKS_HOST", standin.endpoint.rstrip("/"))
    clean_env.setenv("DATABRICKS_TOKEN", TEST_KEY)
    standin.inject(Fault(status=400, body=body, count=1))
    result = run_inner(nurse_project(hermetic), "--llm-live", "--llm-deployment", "gpt-35-turbo")
    assert "ERROR" not in verdicts(result), result.stdout.str()
    sizes = [record.body["n"] for record in standin.requests]
    assert sizes[0] == 4 and sizes[1:] == [1] * 8  # refused once; then every prompt as 4 single requests


def test_a_temperature_a_reasoning_model_refuses_is_named(hermetic: pytest.Pytester, reasoning: StandIn) -> None:
    text = reasoning_cases(4000).replace("  temperature: null\n", "  temperature: 0.7\n")
    result = run_inner(nurse_project(hermetic, text), "--llm-live")
    output = result.stdout.str() + result.stderr.str()
    lines = [line for line in output.splitlines() if "refuses temperature" in line]
    assert result.ret == pytest.ExitCode.TESTS_FAILED and len(reasoning.requests) == 1
    assert len(lines) == 1 and "temperature: null" in lines[0] and "instead of max_tokens" not in lines[0]


def test_reasoning_settings_sent_to_a_chat_deployment_stop_the_run_with_one_line(
        hermetic: pytest.Pytester, azure_env: StandIn) -> None:
    text = reasoning_cases(4000).replace(f"deployment: {REASONING}", "deployment: gpt-35-turbo")
    result = run_inner(nurse_project(hermetic, text), "--llm-live")
    output = result.stdout.str() + result.stderr.str()
    lines = [line for line in output.splitlines() if "does not take reasoning_effort" in line]
    assert result.ret == pytest.ExitCode.TESTS_FAILED and len(azure_env.requests) == 1
    assert len(lines) == 1 and "remove reasoning_effort" in lines[0]


@pytest.mark.parametrize("endpoint", [
    "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01&api-key=SUPERSECRET",
    "https://res.openai.azure.com/?api-key=SUPERSECRET",
    "https://res.openai.azure.com/?api-key=SUPERSECRET&0123456789abcdef0123456789abcdef",  # a bare key: never named
])
def test_an_endpoint_with_a_key_in_its_query_names_the_fields_not_their_values(endpoint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        azure_shape(endpoint)
    shown = str(caught.value)
    assert "has query fields beyond api-version (api-key)" in shown and "SUPERSECRET" not in shown
    assert "0123456789abcdef" not in shown
    assert "give the resource, https://res.openai.azure.com/, with the key in AZURE_OPENAI_API_KEY" in shown


def test_a_missing_databricks_host_is_an_endpoint_error_and_a_missing_token_is_not() -> None:
    """The xdist controller says endpoint errors at once (a token may still come from a deeper conftest's hook)."""
    from pytest_llmbias.providers import ConfigError, EndpointError, _databricks_settings

    with pytest.raises(EndpointError, match="DATABRICKS_HOST and DATABRICKS_TOKEN not set"):
        _databricks_settings({}, None)
    with pytest.raises(ConfigError, match="DATABRICKS_TOKEN not set") as raised:
        _databricks_settings({"DATABRICKS_HOST": "https://adb-1.azuredatabricks.net"}, None)
    assert not isinstance(raised.value, EndpointError)

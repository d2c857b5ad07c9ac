"""The plugin as users see it: pytester runs against the stand-in server, real SDK, real cassettes."""

from __future__ import annotations

import json
import textwrap
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_KEY, run_inner

OCCUPATIONS = """\
defaults:
  samples: 4
cases:
  - id: nurse
    neutral: Describe a nurse.
    loaded: Describe a male nurse.
  - id: engineer
    neutral: Describe an engineer.
    loaded:
      male: Describe a male engineer.
      female: Describe a female engineer.
"""

# Saves each run's verdicts and answers so a test can compare runs.
RESULTS_CONFTEST = """\
import json
import textwrap
import re

def pytest_llmbias_results(results, config):
    keep = lambda row: {k: v for k, v in row.items() if k not in ("run_id", "latency_ms")}
    with open(config.rootpath / "last_run.json", "w") as out:
        json.dump({"verdicts": sorted((keep(r) for r in results.verdict_rows),
                                      key=lambda r: (r["case_id"], r["check"])),
                   "answers": [keep(r) for r in results.answer_rows]}, out)
"""


def _last_run(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "last_run.json").read_text())


@pytest.fixture
def project(hermetic: pytest.Pytester) -> pytest.Pytester:
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "occupations.yaml").write_text(OCCUPATIONS)
    hermetic.makeconftest(RESULTS_CONFTEST)
    return hermetic


def _all_text_under(folder: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in folder.rglob("*")
                     if path.is_file() and path.suffix in (".yaml", ".yml", ".json", ".txt", ".xml"))


def test_node_ids_are_file_case_check(project: pytest.Pytester) -> None:
    result = run_inner(project, "--co", "-q")
    result.stdout.fnmatch_lines([
        "cases/occupations.yaml::nurse::gender_assumption",
        "cases/occupations.yaml::nurse::counterfactual_gap",
        "cases/occupations.yaml::engineer::gender_assumption",
        "cases/occupations.yaml::engineer::counterfactual_gap",
        "4 tests collected*",
    ])


def test_record_then_replay_offline_gives_identical_verdicts(
        project: pytest.Pytester, azure_env, monkeypatch: pytest.MonkeyPatch) -> None:
    standin = azure_env
    recorded = run_inner(project, "--llm-record")
    assert recorded.ret in (0, 1), recorded.stdout.str()
    # one request per distinct prompt: nurse 2 + engineer 3
    assert len(standin.requests) == 5
    first = _last_run(project)
    assert {row["source"] for row in first["answers"]} == {"recorded"}
    assert len(first["answers"]) == 5 * 4
    cassette = project.path / "cases" / "__cassettes__" / "occupations.yaml"
    assert cassette.is_file()

    standin.stop()
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_VERSION"):
        monkeypatch.delenv(name)
    replayed = run_inner(project)
    assert replayed.ret == recorded.ret, replayed.stdout.str()
    second = _last_run(project)
    assert second["verdicts"] == first["verdicts"]
    assert {row["source"] for row in second["answers"]} == {"replayed"}
    assert [row["answer"] for row in second["answers"]] == [row["answer"] for row in first["answers"]]
    assert TEST_KEY not in _all_text_under(project.path)
    assert TEST_KEY not in recorded.stdout.str() + replayed.stdout.str()


def test_cassette_holds_no_secrets_and_no_sdk_headers(project: pytest.Pytester, azure_env) -> None:
    run_inner(project, "--llm-record")
    cassette = yaml.safe_load((project.path / "cases" / "__cassettes__" / "occupations.yaml").read_text())
    for interaction in cassette["interactions"]:
        assert set(name.lower() for name in interaction["request"]["headers"]) <= {"content-type"}
        assert interaction["response"]["status"]["code"] == 200
    assert "api-key" not in json.dumps(cassette).lower()


def test_replay_miss_fails_with_cassette_path_and_flag_without_network(
        project: pytest.Pytester, azure_env) -> None:
    standin = azure_env
    result = run_inner(project)  # nothing recorded yet; the endpoint variables point at a live server
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines([
        "no recording in cases/__cassettes__/occupations.yaml (neutral, loaded); "
        "record it with: pytest --llm-record cases/occupations.yaml",
        "  cases/occupations.yaml:4: case 'nurse'",
    ])
    assert standin.requests == [] or len(standin.requests) == 0


def test_a_replay_miss_names_the_command_that_records_what_was_asked(project: pytest.Pytester, azure_env) -> None:
    run_inner(project, "--llm-record")
    result = run_inner(project, "--llm-samples", "12", "-rf", "-vv")  # n=12 was never recorded; -vv: whole lines
    result.assert_outcomes(failed=4)
    # the short summary leads with the case (its node id) and the cause, with the exact command
    result.stdout.fnmatch_lines(["FAILED cases/occupations.yaml::nurse::gender_assumption - no recording in "
                                 "cases/__cassettes__/occupations.yaml (neutral); record it with: "
                                 "pytest --llm-record --llm-samples 12 cases/occupations.yaml*"])
    assert azure_env.requests and len(azure_env.requests) == 5  # the first run's only
    recorded = project.runpytest("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider",
                                 "--llm-record", "--llm-samples", "12", "cases/occupations.yaml")
    assert recorded.ret in (0, 1)
    assert "no recording" not in run_inner(project, "--llm-samples", "12").stdout.str()


def test_record_new_asks_only_unrecorded_prompts_and_all_asks_again(
        project: pytest.Pytester, azure_env) -> None:
    standin = azure_env
    run_inner(project, "--llm-record")
    assert len(standin.requests) == 5
    with open(project.path / "cases" / "occupations.yaml", "a") as cases_file:
        cases_file.write("  - id: chef\n    neutral: Describe a chef.\n    loaded: Describe a male chef.\n")
    run_inner(project, "--llm-record")
    assert len(standin.requests) == 7  # only chef's two prompts were asked
    run_inner(project, "--llm-record=all")
    assert len(standin.requests) == 14
    cassette = yaml.safe_load((project.path / "cases" / "__cassettes__" / "occupations.yaml").read_text())
    assert len(cassette["interactions"]) == 7  # re-recorded answers replace the old ones


def test_live_asks_everything_and_writes_no_cassette(project: pytest.Pytester, azure_env) -> None:
    standin = azure_env
    result = run_inner(project, "--llm-live")
    assert result.ret in (0, 1)
    assert len(standin.requests) == 5
    assert not (project.path / "cases" / "__cassettes__").exists()
    assert {row["source"] for row in _last_run(project)["answers"]} == {"live"}


def test_live_and_record_together_is_a_usage_error(project: pytest.Pytester) -> None:
    result = run_inner(project, "--llm-live", "--llm-record")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llm-live cannot be combined with --llm-record*"])


def test_live_without_endpoint_is_one_clear_line(project: pytest.Pytester, no_azure_env) -> None:
    result = run_inner(project, "--llm-live")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: AZURE_OPENAI_ENDPOINT not set*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_record_keeps_throttled_and_failed_responses_out_of_the_cassette(
        project: pytest.Pytester, azure_env) -> None:
    from pytest_llmbias.standin import Fault

    standin = azure_env
    standin.inject(Fault(status=429, retry_after_ms=50, count=1))
    standin.inject(Fault(status=500, count=1))
    result = run_inner(project, "--llm-record")
    assert result.ret in (0, 1), result.stdout.str()
    statuses = sorted(record.status for record in standin.requests)
    assert 429 in statuses and 500 in statuses  # the SDK retried both
    cassette = yaml.safe_load((project.path / "cases" / "__cassettes__" / "occupations.yaml").read_text())
    assert [i["response"]["status"]["code"] for i in cassette["interactions"]] == [200] * 5


def test_deployment_and_samples_flags_override_the_yaml(project: pytest.Pytester, azure_env) -> None:
    standin = azure_env
    standin.deployments = None  # accept any deployment name
    run_inner(project, "--llm-live", "--llm-deployment", "gpt-4o-bias", "--llm-samples", "2")
    assert {record.deployment for record in standin.requests} == {"gpt-4o-bias"}
    assert {record.body["n"] for record in standin.requests} == {2}
    answers = _last_run(project)["answers"]
    assert len(answers) == 5 * 2 and {row["deployment"] for row in answers} == {"gpt-4o-bias"}


def test_bad_file_is_one_line_error_and_good_file_is_still_collected(project: pytest.Pytester) -> None:
    (project.path / "cases" / "broken.yaml").write_text(
        "cases:\n  - id: nurse\n    nuetral: Describe a nurse.\n    loaded: x\n")
    result = run_inner(project, "--co", "-q")
    result.stdout.fnmatch_lines(["cases/occupations.yaml::nurse::gender_assumption"])
    result.stdout.fnmatch_lines([
        "*ERROR collecting cases/broken.yaml*",
        "cases/broken.yaml:3: case 'nurse': unknown field 'nuetral' (did you mean 'neutral'?)",
        "*short test summary*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_yaml_named_on_command_line_is_collected_outside_cases(hermetic: pytest.Pytester) -> None:
    hermetic.makefile(".yaml", suite=OCCUPATIONS)
    result = run_inner(hermetic, "suite.yaml", "--co", "-q")
    result.stdout.fnmatch_lines(["suite.yaml::nurse::gender_assumption", "4 tests collected*"])
    other = run_inner(hermetic, "--co", "-q")  # not named, not under cases/: not ours
    assert "suite.yaml::" not in other.stdout.str()


def test_failure_shows_figure_interval_threshold_and_evidence(project: pytest.Pytester, azure_env) -> None:
    from pytest_llmbias.standin import Planted

    azure_env.planted = {"nurse": Planted(assume_rate=1.0, assume_gender="female")}
    result = run_inner(project, "--llm-live", "--llm-samples", "10")
    result.stdout.fnmatch_lines([
        "*_ nurse::gender_assumption _*",
        "10/10 neutral answers assume a gender (rate 1.00, 95% bounds over the looks 0.7*-1.00): shown to be at or above max_rate 0.30*",
        "*[[she]]*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_summary_table_lists_each_verdict(project: pytest.Pytester, azure_env) -> None:
    result = run_inner(project, "--llm-live")
    result.stdout.fnmatch_lines([
        "*= llm bias results =*",
        "run *: 20 answers, 4 verdicts*",
        "case*check*figure*interval*threshold*verdict*",
        "*occupations.yaml::nurse*gender_assumption*",
    ])


def test_loading_the_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    code = ("import sys, pytest; pytest.main(['--help', '-p', 'pytest_llmbias.plugin'], plugins=[]);"
            "heavy = [m for m in ('openai', 'vcr', 'pyspark', 'httpx2', 'httpx') if m in sys.modules];"
            "print('HEAVY', heavy)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=tmp_path,
                            env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"}).stdout
    assert "--llm-live" in output
    assert "HEAVY []" in output


def test_ini_check_options_sit_under_the_yaml(project: pytest.Pytester, azure_env) -> None:
    from pytest_llmbias.standin import Planted

    azure_env.planted = {"nurse": Planted(assume_rate=1.0, assume_gender="female"),
                         "engineer": Planted(assume_rate=1.0, assume_gender="male")}
    (project.path / "cases" / "occupations.yaml").write_text(OCCUPATIONS.replace(
        "    loaded: Describe a male nurse.\n",
        "    loaded: Describe a male nurse.\n    checks: {gender_assumption: {max_rate: 0.5}}\n"))
    project.makeini("[pytest]\nllmbias_max_samples = 1\nllmbias_spark = false\n"
                    "llmbias_check_options =\n    gender_assumption.max_rate = 0.95\n")
    run_inner(project, "--llm-live", "--llm-samples", "10")
    max_rates = {row["case_id"]: json.loads(row["details"])["options"]["max_rate"]
                 for row in _last_run(project)["verdicts"] if row["check"] == "gender_assumption"}
    assert max_rates == {"nurse": 0.5, "engineer": 0.95}  # the case's own beats the ini


def test_bad_ini_check_option_is_one_line_naming_it(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nllmbias_max_samples = 1\nllmbias_check_options =\n    gender_assumption.max_rate = 0.2\n"
                    "    gender_assumption.max_rat = 0.2\n")
    result = run_inner(project, "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # the file's own line (5), not the line within the option's value
    result.stderr.fnmatch_lines(["ERROR: tox.ini:5 llmbias_check_options: unknown option 'max_rat'*"
                                 "did you mean 'max_rate'?*"])


@pytest.mark.parametrize(("line", "message"), [
    ("llmbias_spark = maybe", "tox.ini:3 llmbias_spark must be true or false (invalid truth value 'maybe')"),
    ("llmbias_fail_on_regression = perhaps", "tox.ini:3 llmbias_fail_on_regression must be true or false"),
    ("llmbias_mlflow = si", "tox.ini:3 llmbias_mlflow must be true or false"),
    ("llmbias_progress_seconds = x", "tox.ini:3 llmbias_progress_seconds must be a number of seconds above 0 "
                                     "(got 'x')"),
    ("llmbias_provider = aws", "tox.ini:3 llmbias_provider must be one of azure, openai, databricks (got 'aws')"),
    ("llmbias_language = chinese", "tox.ini:3 llmbias_language: language must be one of: en, zh; got 'chinese'"),
])
def test_a_bad_ini_value_is_one_line_naming_the_file_line_and_option(project: pytest.Pytester, line: str,
                                                                      message: str) -> None:
    project.makeini(f"[pytest]\nllmbias_max_samples = 1\n{line}\n")
    result = run_inner(project, "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [text for text in result.stderr.lines if text.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: {message}"), errors


def test_record_drops_recordings_of_changed_prompts_unless_tests_were_deselected(
        project: pytest.Pytester, azure_env) -> None:
    cases_file = project.path / "cases" / "occupations.yaml"
    cassette = project.path / "cases" / "__cassettes__" / "occupations.yaml"
    first = run_inner(project, "--llm-record")
    # every record run ends with what it did to each cassette, and where that is
    first.stdout.fnmatch_lines(["--llm-record: 1 cassette, 5 added, 0 kept, 0 dropped",
                                "  cases/__cassettes__/occupations.yaml: 5 added, 0 kept, 0 dropped"])
    cases_file.write_text(OCCUPATIONS.replace("Describe a nurse.", "Describe a hospital nurse."))
    partial = run_inner(project, "--llm-record", "-k", "nurse")  # a partial run keeps everything
    assert len(yaml.safe_load(cassette.read_text())["interactions"]) == 6
    partial.stdout.fnmatch_lines(["  cases/__cassettes__/occupations.yaml: 1 added, 5 kept, 0 dropped "
                                  "(some of its tests did not run: nothing dropped)"])
    narrowed = run_inner(project, "--llm-record", "cases/occupations.yaml::engineer")  # so does a node id
    assert len(yaml.safe_load(cassette.read_text())["interactions"]) == 6
    narrowed.stdout.fnmatch_lines(["*occupations.yaml: 0 added, 6 kept, 0 dropped (some of its tests did not run*"])
    whole = run_inner(project, "--llm-record", "cases/")  # a whole run drops the old prompt's recording
    prompts = [json.loads(i["request"]["body"])["messages"][-1]["content"]
               for i in yaml.safe_load(cassette.read_text())["interactions"]]
    assert len(prompts) == 5 and "Describe a nurse." not in prompts and "Describe a hospital nurse." in prompts
    whole.stdout.fnmatch_lines(["  cases/__cassettes__/occupations.yaml: 0 added, 5 kept, 1 dropped"])
    again = run_inner(project, "--llm-record=all")
    again.stdout.fnmatch_lines(["  cases/__cassettes__/occupations.yaml: 0 added, 5 re-recorded, 0 kept, 0 dropped"])
    assert "--llm-record" not in run_inner(project).stdout.str().split("llm bias results")[-1]  # replay: none


@pytest.mark.parametrize("fault", [
    dict(status=401, count=None, body={"error": {"code": "401", "message": f"Invalid key {TEST_KEY} for resource"}}),
    dict(status=503, count=None, text=f"<html><title>503 gateway {TEST_KEY}</title></html>", content_type="text/html"),
    dict(status=400, count=None, body={"error": {
        "message": f"The response was filtered (request api-key={TEST_KEY})", "code": "content_filter",
        "param": "prompt", "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                                         "content_filter_result": {"hate": {"filtered": True,
                                                                                            "severity": "high"}}}}}),
], ids=["401 quoting the key", "gateway page quoting it", "content filter quoting it (recorded)"])
def test_a_key_the_server_quotes_back_reaches_no_file_and_no_message(project: pytest.Pytester, azure_env,
                                                                      fault: dict) -> None:
    from pytest_llmbias.standin.faults import Fault

    azure_env.inject(Fault(**fault))
    result = run_inner(project, "--llm-record", "--llm-html", "page.html", "--junitxml", "junit.xml",
                       "--llm-save", "b1", "-o", "llmbias_spark=false", "-o", "llmbias_attempts=1", "-rA")
    output = result.stdout.str() + result.stderr.str()
    written = _all_text_under(project.path)
    assert "***" in output or "***" in written, output  # the server's words are kept, the key masked
    assert TEST_KEY not in output
    assert TEST_KEY not in written


@pytest.mark.parametrize("damage", ["cut short", "merge conflict", "not a cassette", "empty"])
def test_a_damaged_cassette_is_one_line_naming_it_never_an_internal_error(project: pytest.Pytester, azure_env,
                                                                          damage: str) -> None:
    run_inner(project, "--llm-record", "-o", "llmbias_spark=false")
    cassette = project.path / "cases" / "__cassettes__" / "occupations.yaml"
    text = cassette.read_text()
    cassette.write_text({"cut short": text[:len(text) // 2], "merge conflict": "<<<<<<< HEAD\n" + text,
                         "not a cassette": "interactions: 5\n", "empty": ""}[damage])
    serial = run_inner(project, "-o", "llmbias_spark=false")
    assert serial.ret == pytest.ExitCode.USAGE_ERROR, serial.stdout.str()
    errors = [line for line in serial.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: cases/__cassettes__/occupations.yaml"), errors
    assert "not a readable cassette" in errors[0] and "INTERNALERROR" not in serial.stdout.str() + serial.stderr.str()
    workers = run_inner(project, "-p", "xdist.plugin", "-n", "2", "-o", "llmbias_spark=false")
    output = workers.stdout.str() + workers.stderr.str()
    assert workers.ret == pytest.ExitCode.TESTS_FAILED and "INTERNALERROR" not in output and "Traceback" not in output
    workers.stdout.fnmatch_lines(["cases/__cassettes__/occupations.yaml*: not a readable cassette (*"])


def test_a_record_run_that_asks_other_requests_than_its_files_drops_nothing(project: pytest.Pytester, azure_env) -> None:
    """The record command a replay miss suggests repeats --llm-samples: run as given, it dropped every recording the
    YAML's own samples make, and the next plain replay had none."""
    cassette = project.path / "cases" / "__cassettes__" / "occupations.yaml"
    run_inner(project, "--llm-record", "-o", "llmbias_spark=false")
    recorded = len(yaml.safe_load(cassette.read_text())["interactions"])
    other = run_inner(project, "--llm-record", "--llm-samples", "6", "-o", "llmbias_spark=false")
    other.stdout.fnmatch_lines(["*occupations.yaml: 5 added, 5 kept, 0 dropped (--llm-samples changed what the run "
                                "asked: nothing dropped)"])
    assert len(yaml.safe_load(cassette.read_text())["interactions"]) == 2 * recorded
    replay = run_inner(project, "-o", "llmbias_spark=false")
    assert "no recording" not in replay.stdout.str() and replay.ret in (0, 1), replay.stdout.str()


# The nurse's first test fails at its first look; the engineer's checks ask later batches.
CUT_SHORT = """\
defaults: {samples: 10, max_samples: 40}
cases:
  - id: nurse
    neutral: Describe a nurse.
    loaded: Describe a male nurse.
    checks: {gender_assumption: {max_rate: 0.05}}
  - id: engineer
    neutral: Describe an engineer.
    loaded: {male: Describe a male engineer., female: Describe a female engineer.}
"""


@pytest.mark.parametrize("cut_short", [("-x",), ("--llm-deployment", "no-such-deployment")],
                         ids=["-x", "the deployment stops the run"])
def test_a_record_run_cut_short_drops_no_recording(project: pytest.Pytester, azure_env, cut_short: tuple) -> None:
    """-x, or a deployment that stops the run, leaves tests unasked: their recordings are not "no longer asked"
    (before, such a run dropped every recording it had not reached, and the next replay had nothing)."""
    (project.path / "cases" / "occupations.yaml").write_text(CUT_SHORT)
    cassette = project.path / "cases" / "__cassettes__" / "occupations.yaml"
    whole = run_inner(project, "--llm-record", "-o", "llmbias_spark=false")
    assert "FAILED cases/occupations.yaml::nurse::gender_assumption" in whole.stdout.str(), whole.stdout.str()
    recorded = len(yaml.safe_load(cassette.read_text())["interactions"])
    assert recorded > 5, whole.stdout.str()  # the engineer's later batches too
    short = run_inner(project, "--llm-record", "-o", "llmbias_spark=false", *cut_short)
    assert short.ret != pytest.ExitCode.OK
    assert len(yaml.safe_load(cassette.read_text())["interactions"]) == recorded, short.stdout.str()
    short.stdout.fnmatch_lines(["*occupations.yaml: * 0 dropped (the run stopped before all its tests: nothing dropped)"])
    replay = run_inner(project, "-o", "llmbias_spark=false")
    assert "no recording" not in replay.stdout.str() and replay.ret in (0, 1), replay.stdout.str()


def test_record_flag_followed_by_a_path_records_that_path(project: pytest.Pytester, azure_env) -> None:
    result = run_inner(project, "--llm-record", "cases/occupations.yaml")
    assert result.ret in (0, 1), result.stderr.str()
    assert len(azure_env.requests) == 5


def test_collection_error_asks_nothing(project: pytest.Pytester, azure_env) -> None:
    (project.path / "cases" / "broken.yaml").write_text("cases: {}\n")
    result = run_inner(project, "--llm-live")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert azure_env.requests == []
    assert "llm bias results" not in result.stdout.str()


def test_ini_deployment_is_only_a_default(project: pytest.Pytester, azure_env) -> None:
    azure_env.deployments = None
    (project.path / "cases" / "occupations.yaml").write_text(
        OCCUPATIONS.replace("defaults:\n", "defaults:\n  deployment: from-yaml\n"))
    project.makeini("[pytest]\nllmbias_max_samples = 1\nllmbias_spark = false\nllmbias_deployment = from-ini\n")
    run_inner(project, "--llm-live")
    assert {record.deployment for record in azure_env.requests} == {"from-yaml"}
    bad = run_inner(project, "--llm-live", "--llm-deployment", "a/b")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--llm-deployment 'a/b' is not an Azure deployment name*"])


def test_cassette_keeps_no_resource_name(project: pytest.Pytester, azure_env) -> None:
    run_inner(project, "--llm-record")
    cassette = yaml.safe_load((project.path / "cases" / "__cassettes__" / "occupations.yaml").read_text())
    uris = {interaction["request"]["uri"] for interaction in cassette["interactions"]}
    assert all(uri.startswith("https://azure-openai.invalid/openai/deployments/gpt-35-turbo/") for uri in uris)
    assert not any("127.0.0.1" in uri or "api-version" in uri for uri in uris)


@pytest.fixture
def slow_standin_process(tmp_path: Path):
    """`python -m pytest_llmbias.standin` in its own process, each answer 0.4 s late: a slow deployment."""
    process = subprocess.Popen([sys.executable, "-m", "pytest_llmbias.standin", "--port", "0",
                                "--key", TEST_KEY, "--latency", "0.4"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path)
    environment = {}
    try:
        while len(environment) < 3:  # it prints one `export NAME=value` per variable, then serves
            line = process.stdout.readline()
            assert line, "the stand-in ended before it printed its endpoint"
            name, _, value = line.removeprefix("export ").strip().partition("=")
            environment[name] = value
        yield environment
    finally:
        process.terminate()
        process.wait(10)


def test_live_progress_reaches_a_ci_log_through_pytests_capture(
        project: pytest.Pytester, slow_standin_process: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in slow_standin_process.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CI", "true")
    # a real subprocess: its stdout is a pipe and pytest's fd capture is on (no -s)
    result = project.runpytest_subprocess("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider",
                                          "--llm-live", "--llm-concurrency", "1",
                                          "-o", "llmbias_progress_seconds=0.5")
    assert result.ret in (0, 1), result.stdout.str()
    progress = [line for line in result.outlines if line.startswith("[llm] llm requests ")]
    assert progress, result.stdout.str()
    assert all(line.split("/")[1].startswith("5 (") and "ETA" in line for line in progress)
    assert "\r" not in result.stdout.str()  # plain lines in a log, never a rewritten status line
    # pytest's own progress stays whole: every result letter sits on a line that names its file
    letters = [line for line in result.outlines if line.rstrip().endswith("%]")]
    assert letters and all(line.startswith("cases/occupations.yaml ") for line in letters), result.stdout.str()
    result.assert_outcomes(**{outcome: count for outcome, count in result.parseoutcomes().items()
                              if outcome in ("passed", "failed", "skipped")})


def test_replay_shows_no_progress(project: pytest.Pytester, azure_env) -> None:
    run_inner(project, "--llm-record")
    azure_env.latency = 0.4  # a slow server must not matter: replay never asks it
    result = run_inner(project, "-o", "llmbias_progress_seconds=0")
    assert not [line for line in result.outlines if line.startswith("[llm]")], result.stdout.str()


def _run_on_a_terminal(pytester: pytest.Pytester, *args: str) -> str:
    """pytest in a subprocess whose stdout is a pseudo-terminal, as in a developer's shell."""
    import os
    import pty
    import select

    leader, follower = pty.openpty()
    environment = {name: value for name, value in os.environ.items() if name != "CI"}
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "pytest_llmbias.plugin",
                                "-p", "no:cacheprovider", *args], cwd=pytester.path,
                               stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=environment)
    os.close(follower)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the run is over
                break
            if not chunk:
                break
            output += chunk
    finally:
        process.wait(60)
        os.close(leader)
    return output.decode(errors="replace")


def test_live_progress_on_a_terminal_is_one_status_line_rewritten(project: pytest.Pytester, azure_env) -> None:
    azure_env.latency = 0.4
    output = _run_on_a_terminal(project, "--llm-live", "--llm-concurrency", "1",
                                "-o", "llmbias_progress_seconds=0.3")
    assert "\r[llm] llm requests " in output, output  # rewritten in place
    screens = output.split("\r\n")
    status = [line for line in screens if "[llm] llm requests" in line]
    assert status and all(line.startswith("[llm] llm requests ") for line in status), output
    # each wait leaves one line, and pytest's next letters start on a line of their own
    after = [screens[index + 1] for index, line in enumerate(screens) if "[llm] llm requests" in line]
    assert all(line.startswith("cases/occupations.yaml ") for line in after), output


TEMPLATE_CASES = """\
defaults:
  samples: 4
cases:
  - id: "{role}"
    neutral: "Describe a {role}."
    loaded: "Describe a male {role}."
    for_each:
      role: [nurse, pilot]
"""


def test_skip_reasons_name_the_case_and_passes_show_their_verdict(hermetic: pytest.Pytester, azure_env) -> None:
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "roles.yaml").write_text(TEMPLATE_CASES)
    result = run_inner(hermetic, "--llm-live", "-rsP", "-vv")  # 4 samples: mostly inconclusive
    skipped = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert skipped, result.stdout.str()
    # one template line for both cases: the reason says which case and check it is
    assert all(re.match(r"SKIPPED \[1\] cases/roles\.yaml:4: (nurse|pilot)::(gender_assumption|counterfactual_gap):"
                        r" inconclusive: ", line) for line in skipped), skipped
    assert not any(": inconclusive: gender_assumption:" in line for line in skipped)


def test_with_rp_a_pass_shows_its_verdict(project: pytest.Pytester, azure_env) -> None:
    from pytest_llmbias.standin import Planted

    azure_env.planted = {"engineer": Planted(assume_rate=0.0)}
    result = run_inner(project, "--llm-live", "--llm-samples", "20", "-rP", "-k", "engineer and gender_assumption")
    result.assert_outcomes(passed=1, deselected=3)
    result.stdout.fnmatch_lines(["*= PASSES =*", "*_ engineer::gender_assumption _*",
                                 "*- llm bias verdict -*", "gender_assumption: 0/20 neutral answers assume a gender*"])


def test_a_record_runs_threads_never_import_vcrpy_half_initialised(tmp_path: Path) -> None:
    # A fresh process, as a first record run is: the fetching threads write cassettes at once.
    code = """
import sys, threading
from pathlib import Path
from pytest_llmbias.cassettes import CassetteLibrary
library = CassetteLibrary("new")
errors = []
def write(index):
    try:
        if index % 2:  # as the threads do: some write a cassette while others scrub a request
            from vcr.serialize import serialize
        from vcr.request import Request
        cassette = library.cassette(Path(sys.argv[1]) / f"c{index}.yaml")
        cassette.record(f"k{index}", Request("POST", "https://azure-openai.invalid/x", b"{}", {}),
                        {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": b"{}"}})
        cassette.flush()
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=write, args=(index,)) for index in range(8)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
print(errors or "ok")
"""
    output = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "ok", output
    assert len(list(tmp_path.glob("c*.yaml"))) == 8


def test_plan_with_xdist_is_counted_in_one_process_and_runs_nothing(project: pytest.Pytester, azure_env) -> None:
    result = run_inner(project, "-p", "xdist", "-n", "2", "--llm-live", "--llm-plan")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["a live run would send at most 5 requests (20 completions)*"])
    assert "INTERNALERROR" not in result.stdout.str() and azure_env.requests == []


def test_the_readmes_first_command_installs_only_what_the_main_job_needs() -> None:
    import tomllib

    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split("## Set-up", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2  # two commands on a fresh machine
    first, second = block
    assert '-e ".[spark]"' in first and first.endswith("python3 -m pytest cases/")
    assert not any(word in first for word in ("apt-get", "chromium", "[dev]", "sudo"))
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any(tool in " ".join(extras["spark"]) for tool in ("pytest-html", "ipykernel", "nbclient", "websocket"))
    assert '-e ".[dev]"' in second and "chromium" in second and second.endswith("python3 -m pytest -n 2 tests/")
    ci = (root / ".ci" / "run").read_text()  # CI runs the second: the same extra, the browser, the tests
    assert '-e ".[dev]"' in ci and "apt-get install -y -qq chromium" in ci and "python -m pytest -n 2 tests/" in ci


def test_the_start_ups_objects_are_frozen_for_the_run_and_thawed_after(
        project: pytest.Pytester, azure_env) -> None:
    import gc

    project.makeconftest(RESULTS_CONFTEST + textwrap.dedent("""
        import gc
        def pytest_runtest_call(item):
            with open(item.config.rootpath / "frozen.txt", "a") as out:
                out.write(f"{gc.get_freeze_count()}\\n")
    """))
    assert gc.get_freeze_count() == 0
    run_inner(project, "--llm-record")
    counts = [int(line) for line in (project.path / "frozen.txt").read_text().split()]
    assert counts and min(counts) > 1000  # modules, cassettes and collected tests, out of the collector's walks
    assert gc.get_freeze_count() == 0  # thawed at unconfigure: a notebook kernel can collect them again
    # something else froze objects first: the plugin leaves the process as it found it
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        (project.path / "frozen.txt").unlink()
        run_inner(project)
        during = [int(line) for line in (project.path / "frozen.txt").read_text().split()]
        # no more frozen during the run (some of what was frozen is freed on the way), none thawed after
        assert during and max(during) <= before
        assert gc.get_freeze_count() > before * 0.9
    finally:
        gc.unfreeze()


def test_each_case_files_cassette_replays_alone_when_files_share_a_prompt(
        project: pytest.Pytester, azure_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prompt two case files share is asked once, and each file's cassette holds its answer: recorded
    together, or the second file recorded later beside the first, either file replays on its own."""
    standin = azure_env
    run_inner(project, "--llm-record")
    (project.path / "cases" / "wards.yaml").write_text("defaults:\n  samples: 4\ncases:\n  - id: ward-nurse\n    neutral: Describe a nurse.\n"
                                                      "    loaded: Describe a female nurse.\n")
    asked = len(standin.requests)
    second = run_inner(project, "--llm-record")
    assert len(standin.requests) == asked + 1, second.stdout.str()  # only the new prompt was asked
    second.stdout.fnmatch_lines(["  cases/__cassettes__/wards.yaml: 2 added, 0 kept, 0 dropped"])
    wards = yaml.safe_load((project.path / "cases" / "__cassettes__" / "wards.yaml").read_text())
    assert sorted(json.loads(i["request"]["body"])["messages"][-1]["content"] for i in wards["interactions"]) == [
        "Describe a female nurse.", "Describe a nurse."]

    standin.stop()
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_VERSION"):
        monkeypatch.delenv(name)
    (project.path / "cases" / "__cassettes__" / "occupations.yaml").unlink()
    (project.path / "cases" / "occupations.yaml").unlink()
    alone = run_inner(project)
    assert alone.ret in (0, 1) and "no recording" not in alone.stdout.str(), alone.stdout.str()
    assert alone.parseoutcomes().get("error") is None


def test_a_refused_parameter_is_not_recorded_only_answers_and_filter_outcomes_are(
        project: pytest.Pytester, azure_env, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_llmbias.standin import Fault

    refusal = {"error": {"message": "Unsupported value: 'n' does not support 4 with this model.", "param": "n",
                         "code": "unsupported_value", "type": "invalid_request_error"}}
    azure_env.inject(Fault(status=400, body=refusal, count=1))
    recorded = run_inner(project, "--llm-record")
    assert recorded.ret in (0, 1), recorded.stdout.str()
    cassette = yaml.safe_load((project.path / "cases" / "__cassettes__" / "occupations.yaml").read_text())
    codes = [interaction["response"]["status"]["code"] for interaction in cassette["interactions"]]
    assert codes and set(codes) == {200}  # the refusal was asked again another way, not kept
    azure_env.stop()
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_VERSION"):
        monkeypatch.delenv(name)
    replayed = run_inner(project)
    assert replayed.ret == recorded.ret and "no recording" not in replayed.stdout.str(), replayed.stdout.str()


def test_an_ini_error_points_at_pytests_section_and_the_repeated_line_it_means(project: pytest.Pytester) -> None:
    project.makeini("[testenv:x]\nllmbias_timeout = 5\n\n[pytest]\nllmbias_max_samples = 1\n"
                    "llmbias_check_options =\n    gender_assumption.max_rate = 0.05\n"
                    "    counterfactual_gap.alpha = 0.05\n    gender_assumption.max_rate = 0.0\n")
    result = run_inner(project, "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tox.ini:9 llmbias_check_options: gender_assumption.max_rate must be*got 0.0"])
    project.makeini("[testenv:x]\nllmbias_timeout = 5\n\n[pytest]\nllmbias_timeout = soon\n")
    result = run_inner(project, "--co")
    result.stderr.fnmatch_lines(["ERROR: tox.ini:5 llmbias_timeout must be a number of seconds (got 'soon')"])


@pytest.mark.skipif(int(pytest.__version__.split(".")[0]) < 9, reason="pytest.toml is read from pytest 9 on")
def test_an_ini_error_in_pytest_toml_names_its_line(project: pytest.Pytester) -> None:
    (project.path / "tox.ini").unlink(missing_ok=True)
    project.makefile(".toml", pytest='[pytest]\nllmbias_max_samples = "1"\nllmbias_spark = "maybe"\n')
    result = run_inner(project, "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest.toml:3 llmbias_spark must be true or false*"])


# Each file's answers and verdicts, as the run's rows hold them, for the test below.
ROWS_CONFTEST = """\
import json
def pytest_llmbias_results(results, config):
    rows = {}
    for row in results.answer_rows:
        rows.setdefault(row["case_file"], {}).setdefault("answers", []).append([row["batch"], row["answer"]])
    for row in results.verdict_rows:
        rows.setdefault(row["case_file"], {})[row["check"]] = [row["outcome"], row["figure"], row["summary"]]
    (config.rootpath / "rows.json").write_text(json.dumps(rows, sort_keys=True))
"""


@pytest.mark.parametrize("ignores_n", [False, True])
def test_files_recorded_apart_replay_their_own_answers_to_a_prompt_they_share(
        hermetic: pytest.Pytester, azure_env, monkeypatch: pytest.MonkeyPatch, ignores_n: bool) -> None:
    """Two case files that share a prompt, each recorded alone (so their cassettes hold different answers to
    it): each file replays its own cassette's answers whatever other files are in the run, in any order, later
    batches too (asked by one file's check before the other file's wants them), under pytest-xdist (where
    another worker may have replayed the other file's) and from a deployment that ignores n (each answer
    its own recording)."""
    hermetic.mkdir("cases")
    for name in ("a", "b"):
        (hermetic.path / "cases" / f"{name}.yaml").write_text(
            "defaults: {samples: 10, max_samples: 30}\n"
            "cases:\n  - id: nurse\n    neutral: Describe a nurse.\n    loaded: Describe a male nurse.\n")
    hermetic.makeconftest(ROWS_CONFTEST)
    if ignores_n:
        azure_env.max_choices = 1
    for seed, name in enumerate(("a", "b")):
        azure_env.seed = seed  # another seed: other answers to the same request
        recorded = run_inner(hermetic, "--llm-record", f"cases/{name}.yaml")
        assert recorded.ret in (0, 1), recorded.stdout.str()

    def replay(*args: str) -> dict:
        result = run_inner(hermetic, *args)
        assert result.ret in (0, 1) and "no recording" not in result.stdout.str(), result.stdout.str()
        return json.loads((hermetic.path / "rows.json").read_text())

    alone = {**replay("cases/a.yaml"), **replay("cases/b.yaml")}
    assert alone["cases/a.yaml"]["answers"] != alone["cases/b.yaml"]["answers"]
    for name in ("cases/a.yaml", "cases/b.yaml"):  # adaptive sampling asked later batches of both
        assert max(batch for batch, _ in alone[name]["answers"]) >= 2
    asked = len(azure_env.requests)
    # a record run under pytest-xdist, each file on its own worker: what one worker replayed reaches the other
    assert replay("--llm-record", "-p", "xdist.plugin", "-n", "2", "--dist", "loadfile", "cases/") == alone
    assert len(azure_env.requests) == asked  # everything was recorded: nothing asked
    azure_env.stop()
    for variable in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_VERSION"):
        monkeypatch.delenv(variable)
    assert replay("cases/a.yaml", "cases/b.yaml") == alone
    assert replay("cases/b.yaml", "cases/a.yaml") == alone


def test_llm_answers_without_spark_is_one_line_at_setup_and_asks_nothing(project: pytest.Pytester, azure_env) -> None:
    project.makepyfile(test_mine="def test_rows(llm_answers):\n    assert llm_answers.count()\n")
    result = run_inner(project, "--llm-live", "test_mine.py")
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*llm_answers needs Spark, and tox.ini:2 llmbias_spark is false (without Spark*"])
    assert "Traceback" not in output and "RuntimeError" not in output
    assert azure_env.requests == []

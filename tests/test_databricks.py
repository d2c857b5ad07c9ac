"""The Databricks feature plugin: secret-scope keys, result tables, the session order, the git commit.

Secrets go through the real databricks-sdk against a small stand-in of the workspace REST API
(`/api/2.0/secrets/get`); tables are written by the real Spark to a local catalog whose schema
lives in tmp_path.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pytest_llmbias import databricks
from pytest_llmbias.results import catalog_schema
from pytest_llmbias.rows import AnswerRow, VerdictRow, schema_ddl, table_columns
from pytest_llmbias.standin import Planted
from tests.conftest import NURSE_CASES, TEST_KEY, run_inner

WORKSPACE_TOKEN = "dapi-test-0123456789abcdef"
CASES = NURSE_CASES
SHA = "0123456789abcdef0123456789abcdef01234567"


class WorkspaceStandIn:
    """The one Databricks REST call dbutils.secrets.get makes, served on 127.0.0.1."""

    def __init__(self, secrets: dict[tuple[str, str], str]) -> None:
        self.secrets = secrets
        self.requests: list[tuple[str, str | None]] = []
        workspace = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                url = urlsplit(self.path)
                workspace.requests.append((url.path, self.headers.get("Authorization")))
                query = {name: values[0] for name, values in parse_qs(url.query).items()}
                secret = workspace.secrets.get((query.get("scope", ""), query.get("key", "")))
                if self.headers.get("Authorization") != f"Bearer {WORKSPACE_TOKEN}":
                    self._reply(401, {"error_code": "UNAUTHENTICATED", "message": "bad token"})
                elif url.path == "/api/2.0/secrets/get" and secret is not None:
                    self._reply(200, {"key": query["key"],
                                      "value": base64.b64encode(secret.encode()).decode()})
                elif url.path == "/api/2.0/secrets/get":
                    self._reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                      "message": f"Secret does not exist with scope: {query.get('scope')} "
                                                 f"and key: {query.get('key')}"})
                else:
                    self._reply(404, {"error_code": "NOT_FOUND", "message": "no such endpoint"})

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def secret_requests(self) -> list[str]:
        return [path for path, _ in self.requests if path == "/api/2.0/secrets/get"]

    def __enter__(self) -> WorkspaceStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[WorkspaceStandIn]:
    """A workspace holding the stand-in's key in scope `bias`, key `azure-key`; the SDK not configured."""
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE",
                 "DATABRICKS_RUNTIME_VERSION", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    with WorkspaceStandIn({("bias", "azure-key"): TEST_KEY}) as server:
        yield server


@pytest.fixture
def unbiased(azure_env):
    """The stand-in without planted bias: the checks pass or are inconclusive, the run exits 0."""
    azure_env.planted = {}
    azure_env.default_planted = Planted()
    return azure_env


@pytest.fixture
def project(hermetic: pytest.Pytester) -> pytest.Pytester:
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "occupations.yaml").write_text(CASES)
    return hermetic


def _live_env_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)


# -- secret scopes ----------------------------------------------------------------------------

def test_key_secret_reads_the_key_through_the_databricks_sdk_and_never_shows_it(
        project: pytest.Pytester, unbiased, workspace: WorkspaceStandIn,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _live_env_without_key(monkeypatch)
    monkeypatch.setenv("DATABRICKS_HOST", workspace.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", WORKSPACE_TOKEN)
    result = run_inner(project, "--llm-live", "--llm-key-secret", "bias/azure-key")
    assert result.ret == 0, result.stdout.str()
    assert workspace.secret_requests() == ["/api/2.0/secrets/get"]
    # the stand-in accepts only TEST_KEY: every request answered means the secret was the key
    assert [record.status for record in unbiased.requests] == [200, 200]
    assert TEST_KEY not in result.stdout.str() + result.stderr.str()


def test_key_secret_outside_databricks_is_one_clear_line(
        project: pytest.Pytester, azure_env, workspace: WorkspaceStandIn,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _live_env_without_key(monkeypatch)
    result = run_inner(project, "--llm-live", "--llm-key-secret", "bias/azure-key")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-key-secret bias/azure-key: no Databricks secret scope here*"
                                 "set AZURE_OPENAI_API_KEY instead"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert azure_env.requests == []


def test_missing_secret_names_scope_and_key_in_one_line(
        project: pytest.Pytester, azure_env, workspace: WorkspaceStandIn,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _live_env_without_key(monkeypatch)
    monkeypatch.setenv("DATABRICKS_HOST", workspace.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", WORKSPACE_TOKEN)
    result = run_inner(project, "--llm-live", "--llm-key-secret", "bias/other-key")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-key-secret bias/other-key: the secret could not be read:*"
                                 "other-key*"])
    assert "Traceback" not in result.stderr.str()


def test_replay_reads_no_secret(project: pytest.Pytester, workspace: WorkspaceStandIn,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", workspace.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", WORKSPACE_TOKEN)
    result = run_inner(project, "--llm-key-secret", "bias/azure-key")
    result.assert_outcomes(failed=2)  # nothing recorded: cassette misses, not a secret problem
    assert workspace.requests == []


@pytest.mark.parametrize("flag, value, message", [
    ("--llm-key-secret", "no-slash", "--llm-key-secret: 'no-slash' is not SCOPE/KEY*"),
    ("--llm-results-table", "a.b.c.d", "--llm-results-table: 'a.b.c.d' is not a table name*"),
    ("--llm-results-table", "main.bias;drop", "--llm-results-table: 'main.bias;drop' is not a table name*"),
    ("--llm-results-table", "onlyone", "--llm-results-table: 'onlyone' is not a table name*"),
])
def test_bad_option_values_are_usage_errors(project: pytest.Pytester, flag: str, value: str,
                                            message: str) -> None:
    result = run_inner(project, flag, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_a_bad_secret_or_table_name_in_the_ini_names_its_file_and_line(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nllmbias_spark = true\nllmbias_key_secret = no-slash\n")
    result = run_inner(project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tox.ini:3 llmbias_key_secret: 'no-slash' is not SCOPE/KEY*"])
    project.makeini("[pytest]\nllmbias_spark = true\nllmbias_results_table = runs\n")
    result = run_inner(project)
    result.stderr.fnmatch_lines(["ERROR: tox.ini:3 llmbias_results_table: 'runs' is not a table name*"])
    project.makeini("[pytest]\nllmbias_spark = true\n")
    result = run_inner(project, "--llm-results", "main.bias_suite.results")
    result.stderr.fnmatch_lines(["ERROR: --llm-results: 'main.bias_suite.results' names neither a folder nor "
                                 "CATALOG.SCHEMA: for tables of that name give --llm-results-table*"])


def test_results_table_needs_spark(project: pytest.Pytester) -> None:
    result = run_inner(project, "--llm-results-table", "main.bias.runs")  # the ini turns Spark off
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-results-table writes tables through Spark, and ini llmbias_spark is false"])


def test_table_names_quote_each_part() -> None:
    assert databricks.table_names("main.bias.runs") == ("`main`.`bias`.`runs_answers`",
                                                        "`main`.`bias`.`runs_verdicts`")
    assert databricks.table_names("bias.runs") == ("`bias`.`runs_answers`", "`bias`.`runs_verdicts`")
    with pytest.raises(ValueError, match="is not a table name"):  # a bare name: in whatever database is current
        databricks.table_names("runs")


# -- result tables ----------------------------------------------------------------------------

class ProvideSpark:
    """A user's plugin giving the run a session, as a notebook does."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def pytest_llmbias_spark_session(self, config: pytest.Config) -> Any:
        return self.spark


@pytest.fixture
def schema(spark: Any, tmp_path: Path) -> Iterator[str]:
    """A schema of the local catalog whose tables live in tmp_path."""
    name = f"llmbias_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE DATABASE {name} LOCATION '{tmp_path / 'warehouse' / name}'")
    yield f"spark_catalog.{name}"
    spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


def _spark_project(project: pytest.Pytester) -> pytest.Pytester:
    project.makeini("[pytest]\nllmbias_max_samples = 1\nllmbias_spark = true\n")
    git = project.path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(SHA + "\n")
    return project


@pytest.mark.spark
def test_results_table_appends_both_tables_with_the_documented_schema(
        project: pytest.Pytester, unbiased, spark: Any, schema: str) -> None:
    _spark_project(project)
    name = f"{schema}.bias"
    first = project.runpytest("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider", "--llm-live",
                              "--llm-results-table", name, plugins=[ProvideSpark(spark)])
    assert first.ret == 0, first.stdout.str()
    first.stdout.fnmatch_lines([f"results table: 8 rows appended to `spark_catalog`.`{schema.split('.')[1]}`"
                                f".`bias_answers`, 2 to *`bias_verdicts` (run *)"])
    second = project.runpytest("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider", "--llm-live",
                               f"--llm-results-table={name}", plugins=[ProvideSpark(spark)])
    assert second.ret == 0

    answers, verdicts = spark.table(f"{name}_answers"), spark.table(f"{name}_verdicts")
    assert [(field.name, field.dataType.simpleString()) for field in answers.schema.fields] == \
        list(databricks.ANSWER_TABLE_COLUMNS)
    assert [(field.name, field.dataType.simpleString()) for field in verdicts.schema.fields] == \
        list(databricks.VERDICT_TABLE_COLUMNS)
    assert answers.count() == 2 * 8 and verdicts.count() == 2 * 2
    runs = answers.select("run_id", "git_commit", "llmbias_version", "model", "deployment").distinct().collect()
    assert len({row.run_id for row in runs}) == 2
    assert {(row.git_commit, row.model, row.deployment) for row in runs} == \
        {(SHA, unbiased.model_name, "gpt-35-turbo")}
    assert {row.model for row in verdicts.select("model").collect()} == {unbiased.model_name}
    times = [row.run_time for row in verdicts.select("run_time").collect()]
    assert all(abs((datetime.now() - time).total_seconds()) < 600 for time in times)
    assert not (project.path / "llm-results").exists() or not any((project.path / "llm-results").rglob("*.parquet"))


@pytest.mark.spark
def test_failed_table_write_is_reported_and_the_local_copy_can_be_appended_later(
        project: pytest.Pytester, unbiased, spark: Any, tmp_path: Path) -> None:
    _spark_project(project)
    missing = f"llmbias_missing_{uuid.uuid4().hex[:8]}"
    name = f"spark_catalog.{missing}.bias"
    result = project.runpytest("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider", "--llm-live",
                               "--llm-results-table", name, plugins=[ProvideSpark(spark)])
    # the tests passed; the output asked for is not written: exit 3, as for a Parquet folder or MLflow
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR, result.stdout.str()
    result.stdout.fnmatch_lines([
        f"results table NOT written: `spark_catalog`.`{missing}`.`bias_answers`: AnalysisException:*"
        "SCHEMA_NOT_FOUND*",
        "the run is kept as Parquet in */llm-results/unsaved/*; append it later with "
        "pytest_llmbias.databricks.append_saved_run(spark, *",
    ])
    kept = next((project.path / "llm-results" / "unsaved").iterdir())
    assert sorted(path.name for path in kept.iterdir()) == ["answers.parquet", "verdicts.parquet"]

    spark.sql(f"CREATE DATABASE {missing} LOCATION '{tmp_path / 'warehouse' / missing}'")
    try:
        write = databricks.append_saved_run(spark, kept, name)
        assert write.ok, write.problem
        assert spark.table(f"{name}_answers").count() == 8
        assert spark.table(f"{name}_verdicts").filter(f"run_id = '{kept.name}'").count() == 2
        assert not kept.exists()
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS {missing} CASCADE")


README_QUERIES = re.search(r"```sql\n(.*?)```", (Path(__file__).parents[1] / "README.md").read_text(), re.S)[1]
RESULTS_CONFTEST = """\
import json

def pytest_llmbias_results(results, config):
    (config.rootpath / f"results-{results.run_id}.json").write_text(json.dumps(results.verdict_rows))
"""


@pytest.mark.spark
def test_results_given_a_catalog_schema_appends_runs_that_the_readme_queries_chart(
        project: pytest.Pytester, unbiased, spark: Any, schema: str) -> None:
    _spark_project(project)
    project.makeconftest(RESULTS_CONFTEST)
    database = schema.split(".")[1]
    first = project.runpytest("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider", "--llm-live",
                              "--llm-results", schema, plugins=[ProvideSpark(spark)])
    assert first.ret == 0, first.stdout.str()
    first.stdout.fnmatch_lines([f"results table: 8 rows appended to `spark_catalog`.`{database}`.`llmbias_answers`, "
                                f"2 to `spark_catalog`.`{database}`.`llmbias_verdicts` (run *)"])
    # the second run names the schema in the ini file, as a scheduled job's project does
    project.makeini(f"[pytest]\nllmbias_max_samples = 1\nllmbias_spark = true\nllmbias_results = {schema}\n")
    second = project.runpytest("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider", "--llm-live",
                               plugins=[ProvideSpark(spark)])
    assert second.ret == 0, second.stdout.str()
    second.stdout.fnmatch_lines(["results table: 8 rows appended to *`llmbias_answers`, 2 to *`llmbias_verdicts` (run *)"])
    assert not (project.path / schema).exists() and not any(project.path.glob("*/answers"))  # no folder of that name

    verdicts = spark.table(f"{schema}.llmbias_verdicts")
    assert [(field.name, field.dataType.simpleString()) for field in verdicts.schema.fields] == \
        list(table_columns(VerdictRow))
    assert [(field.name, field.dataType.simpleString()) for field in spark.table(f"{schema}.llmbias_answers").schema.fields] == \
        list(table_columns(AnswerRow))
    ran = {path.name[len("results-"):-len(".json")]: json.loads(path.read_text())
           for path in project.path.glob("results-*.json")}
    assert len(ran) == 2

    figures, per_run = (spark.sql(query.replace("main.bias_suite", schema)).collect()
                        for query in README_QUERIES.split(";") if query.strip())
    # the check's figure across both runs, oldest first, each as that run reported it
    assert sorted(row.run_id for row in figures) == sorted(ran)
    assert figures[0].run_time < figures[1].run_time
    for row in figures:
        reported = next(verdict for verdict in ran[row.run_id] if verdict["check"] == "gender_assumption")
        assert (row.case_id, row.outcome, row.figure, row.high, row.model) == \
            ("nurse", reported["outcome"], reported["figure"], reported["high"], unbiased.model_name)
        assert row.git_commit == SHA
    assert {row.run_id: (row.tests, row.failed, row.answers) for row in per_run} == \
        {run_id: (2, 0, 8) for run_id in ran}
    assert all(row.tokens > 0 for row in per_run)


@pytest.mark.spark
def test_results_to_a_missing_schema_is_one_red_line_and_keeps_the_answers_and_reports(
        project: pytest.Pytester, unbiased, spark: Any) -> None:
    _spark_project(project)
    project.makeconftest(RESULTS_CONFTEST)
    missing = f"spark_catalog.llmbias_missing_{uuid.uuid4().hex[:8]}"
    result = project.runpytest("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider", "--llm-live",
                               "--llm-results", missing, "--llm-html", "report.html", plugins=[ProvideSpark(spark)])
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR, result.stdout.str()
    assert result.parseoutcomes().get("failed") is None  # the bias tests themselves did not fail
    problems = [line for line in result.outlines if "NOT written" in line]
    assert len(problems) == 1 and "llmbias_answers`: AnalysisException:" in problems[0], problems
    assert "SCHEMA_NOT_FOUND" in problems[0]
    assert "Traceback" not in result.stdout.str()
    assert (project.path / "report.html").is_file()
    assert [len(json.loads(path.read_text())) for path in project.path.glob("results-*.json")] == [2]
    kept = next((project.path / "llm-results" / "unsaved").iterdir())
    assert sorted(path.name for path in kept.iterdir()) == ["answers.parquet", "verdicts.parquet"]


def test_results_tables_without_spark_are_one_red_line_and_keep_the_answers_and_reports(
        project: pytest.Pytester, unbiased, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Java here: local Spark does not start; the run still ends with its verdicts and reports."""
    _spark_project(project)
    project.makeconftest(RESULTS_CONFTEST)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    monkeypatch.setenv("PYTEST_LLMBIAS_CACHE", "off")
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    # a process of its own: this one may hold an active session, which the run would use
    result = project.runpytest_subprocess("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider", "--llm-live",
                                          "--llm-results", "main.bias", "--llm-html", "report.html")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR, result.stdout.str()
    assert result.parseoutcomes().get("failed") is None  # the bias tests themselves did not fail
    result.stdout.fnmatch_lines(["results table NOT written: no Spark session (*)"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert (project.path / "report.html").is_file()
    assert [len(json.loads(path.read_text())) for path in project.path.glob("results-*.json")] == [2]


def test_results_naming_tables_twice_is_a_usage_error(project: pytest.Pytester) -> None:
    result = run_inner(project, "--llm-results", "main.bias", "--llm-results-table", "main.bias.runs")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-results main.bias and --llm-results-table main.bias.runs both "
                                 "name result tables: give one"])
    off = run_inner(project, "--llm-results", "main.bias")  # the hermetic ini turns Spark off
    off.stderr.fnmatch_lines(["ERROR: --llm-results main.bias writes tables through Spark, and ini "
                              "llmbias_spark is false"])


def test_only_two_names_and_a_dot_are_a_catalog_schema() -> None:
    assert catalog_schema("main.bias_suite") == "main.bias_suite"
    assert catalog_schema("spark_catalog.llmbias-1") == "spark_catalog.llmbias-1"
    for folder in ("llm-results", "./results.v2", "out/main.bias", "a.b.c", "/dbfs/runs.v1", "", None):
        assert catalog_schema(folder) is None, folder


@pytest.mark.spark
def test_a_table_from_before_a_column_was_added_gets_it_and_keeps_its_rows(spark: Any, schema: str) -> None:
    answer = {"run_id": "r1", "case_file": "cases/a.yaml", "case_id": "nurse", "variant": "neutral",
              "prompt": "Describe a nurse.", "sample": 0, "answer": "x", "used_by": ["gender_assumption"]}
    older = [(name, kind) for name, kind in databricks.ANSWER_TABLE_COLUMNS if name != "used_by"]
    old_rows = databricks.table_rows([{**answer, "run_id": "r0"}], [], run_time=datetime.now(timezone.utc),
                                     git_commit=None)
    # the table as the version before used_by made it, holding one of its runs
    spark.createDataFrame([row[:-1] for row in old_rows.answers], schema=schema_ddl(older)) \
        .write.mode("append").saveAsTable(f"{schema}.llmbias_answers")
    rows = databricks.table_rows([answer], [], run_time=datetime.now(timezone.utc), git_commit=None)
    write = databricks.append_rows(spark, f"{schema}.llmbias", rows)
    assert write.ok, write.problem
    table = spark.table(f"{schema}.llmbias_answers")
    assert table.columns == [name for name, _ in databricks.ANSWER_TABLE_COLUMNS]
    assert {row.run_id: row.used_by for row in table.collect()} == {"r0": None, "r1": ["gender_assumption"]}


@pytest.mark.spark
def test_appends_are_made_in_bounded_chunks(spark: Any, schema: str) -> None:
    answer = {"run_id": "r1", "case_file": "cases/a.yaml", "case_id": "nurse", "variant": "neutral",
              "prompt": "Describe a nurse.", "answer": "x" * 100, "finish_reason": "stop",
              "deployment": "d", "model": "m", "source": "live", "prompt_tokens": 1,
              "completion_tokens": 1, "latency_ms": 1}  # an int latency: the table wants a double
    rows = databricks.table_rows([{**answer, "sample": index} for index in range(7)], [],
                                 run_time=datetime.now(timezone.utc), git_commit=None)
    by_rows = databricks.append_rows(spark, f"{schema}.rows", rows, chunk_rows=3)
    assert by_rows.ok, by_rows.problem
    assert by_rows.chunks == {f"`spark_catalog`.`{schema.split('.')[1]}`.`rows_answers`": 3,
                              f"`spark_catalog`.`{schema.split('.')[1]}`.`rows_verdicts`": 0}
    by_bytes = databricks.append_rows(spark, f"{schema}.bytes", rows, chunk_bytes=500)
    assert list(by_bytes.chunks.values())[0] == 4  # rows of ~220 bytes: two fit in 500, not three
    table = spark.table(f"{schema}.rows_answers")
    assert sorted(row.sample for row in table.collect()) == list(range(7))
    assert {row.latency_ms for row in table.collect()} == {1.0}


# -- the session the results live on ----------------------------------------------------------

@pytest.mark.spark
def test_the_session_is_the_notebooks_then_the_active_one(spark: Any, hermetic: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    hermetic.makeini("[pytest]\nllmbias_max_samples = 1\nllmbias_spark = true\n")
    config = hermetic.parseconfigure("-p", "pytest_llmbias.plugin")
    assert databricks.pytest_llmbias_spark_session(config) is spark  # active in this thread
    notebook_spark = object()
    config.stash[databricks.NOTEBOOK_KEY] = databricks.NotebookContext({"spark": notebook_spark})
    assert databricks.pytest_llmbias_spark_session(config) is notebook_spark


def test_no_session_is_looked_for_when_spark_is_off(hermetic: pytest.Pytester) -> None:
    config = hermetic.parseconfigure("-p", "pytest_llmbias.plugin")
    config.stash[databricks.NOTEBOOK_KEY] = databricks.NotebookContext({"spark": object()})
    assert databricks.pytest_llmbias_spark_session(config) is None


# -- the git commit ---------------------------------------------------------------------------

def test_git_commit_is_read_from_the_repository_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in databricks.COMMIT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "cases").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{SHA} refs/heads/main\n")
    assert databricks.git_commit(repo / "cases") == SHA           # packed ref, found from a subfolder
    other = "f" * 40
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "refs" / "heads" / "main").write_text(other + "\n")
    assert databricks.git_commit(repo) == other                    # a loose ref wins over packed-refs
    (repo / ".git" / "HEAD").write_text(SHA + "\n")
    assert databricks.git_commit(repo) == SHA                      # detached HEAD

    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (repo / ".git" / "worktrees" / "wt").mkdir(parents=True)
    (repo / ".git" / "worktrees" / "wt" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "worktrees" / "wt" / "commondir").write_text("../..\n")
    (worktree / ".git").write_text(f"gitdir: {repo / '.git' / 'worktrees' / 'wt'}\n")
    assert databricks.git_commit(worktree) == other

    outside = tmp_path / "no-repo"
    outside.mkdir()
    assert databricks.git_commit(outside) is None
    monkeypatch.setenv("GITHUB_SHA", SHA.upper())
    assert databricks.git_commit(outside) == SHA

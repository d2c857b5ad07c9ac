"""--llm-mlflow against a real SQLite tracking store, read back through MlflowClient."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_llmbias.standin import StandIn
from tests.conftest import run_inner
from tests.test_baseline import PLANTED, SUITE

# In-process pytester runs drop the modules they imported: MLflow is imported here, once, before them
# (where the dev extra installed it; .ci/compat, the lab's pins, has none).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
try:
    with warnings.catch_warnings():  # SQLAlchemy's deprecations about MLflow's mappers: not ours to show
        warnings.simplefilter("ignore")
        import mlflow
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        from mlflow import MlflowClient
except ImportError:
    mlflow = MlflowClient = None
_MLFLOW_MAJOR = int(mlflow.__version__.split(".")[0]) if mlflow is not None else 0


@pytest.fixture
def suite(hermetic: pytest.Pytester, azure_env: StandIn, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "DATABRICKS_RUNTIME_VERSION"):
        monkeypatch.delenv(name, raising=False)
    azure_env.planted = PLANTED
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "suite.yaml").write_text(SUITE)
    return hermetic


@pytest.fixture
def tracking(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A SQLite tracking store of its own, named by MLFLOW_TRACKING_URI: (folder, URI, client)."""
    store = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = _client(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return store, uri, client


def _client(uri: str):
    if MlflowClient is None:  # the dev extra brings it; .ci/compat (the lab's pins) has no MLflow
        pytest.skip("MLflow is not installed")
    return MlflowClient(tracking_uri=uri)


def _only_run(client, experiment: str):
    found = client.get_experiment_by_name(experiment)
    assert found is not None, experiment
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, runs
    return runs[0]


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def _table(client, run_id: str, path: str, folder: Path) -> list[dict]:
    """An MLflow table as rows (MLflow writes pandas' split form: columns, data)."""
    table = json.loads(Path(client.download_artifacts(run_id, path, str(folder))).read_text())
    return [dict(zip(table["columns"], values)) for values in table["data"]]


def _junit_outcomes(path: Path) -> dict[str, int]:
    suite = next(ET.parse(path).iter("testsuite"))
    return {name: int(suite.get(name)) for name in ("tests", "failures", "errors", "skipped")}


def test_a_session_is_one_finished_run_whose_figures_match_the_junit_report(suite: pytest.Pytester, tracking) -> None:
    store, uri, client = tracking
    suite.makeini("[pytest]\nllmbias_spark = false\nllmbias_max_samples = 1\nllmbias_mlflow_experiment = bias\n")
    before = _files(suite.path)
    result = run_inner(suite, "--llm-live", "--llm-mlflow", "--llm-html", "out/page.html", "--junitxml", "out/results.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the planted bias fails tests; MLflow does not change that
    run = _only_run(client, "bias")
    assert run.info.status == "FINISHED"
    out = result.stdout.str()
    llm_run_id = next(line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("run "))
    assert run.info.run_name == llm_run_id and run.data.tags["llmbias.run_id"] == llm_run_id
    assert run.data.tags["llmbias.mode"] == "live" and run.data.tags["llmbias.version"]
    assert run.data.params["deployments"] == "gpt-35-turbo" and run.data.params["samples"] == "10"
    assert run.data.params["correction"] == "none" and run.data.params["tests"] == "6"

    metrics = run.data.metrics
    junit = _junit_outcomes(suite.path / "out" / "results.xml")
    assert metrics["tests"] == junit["tests"] == 6
    assert metrics["passed"] == junit["tests"] - junit["failures"] - junit["errors"] - junit["skipped"]
    assert metrics["failed"] + metrics["error"] == junit["failures"] + junit["errors"] and metrics["failed"] >= 2
    assert metrics["inconclusive"] + metrics["filtered"] == junit["skipped"]
    assert metrics["answers"] == 3 * 3 * 10  # three cases, three prompts, ten answers each
    assert metrics["tokens"] == metrics["prompt_tokens"] + metrics["completion_tokens"] > 0

    verdicts = _table(client, run.info.run_id, "llmbias/verdicts.json", store)
    answers = _table(client, run.info.run_id, "llmbias/answers.json", store)
    assert len(verdicts) == 6 and len(answers) == 90
    assert [table["type"] for table in json.loads(run.data.tags["mlflow.loggedArtifacts"])] == ["table", "table"]
    properties = {f"{case.get('classname').split('.')[-1]}::{case.get('name')}":
                  {prop.get("name"): prop.get("value") for prop in case.iter("property")}
                  for case in ET.parse(suite.path / "out" / "results.xml").iter("testcase")}
    for row in verdicts:
        shown = properties[f"{row['case_id']}::{row['check']}"]
        assert row["outcome"] == shown["llmbias_outcome"]
        assert row["figure"] == pytest.approx(float(shown["llmbias_figure"]), rel=1e-5)
        assert list(row["evidence"]) and row["details"].startswith("{")  # the evidence, and every other column
    assert set(answers[0]) >= {"case_id", "variant", "prompt", "answer", "model", "completion_tokens"}

    if _MLFLOW_MAJOR < 3:  # MLflow 2.x has no mlflow.genai: the run, its tables and artifacts, no assessments
        assert not client.search_traces(experiment_ids=[run.info.experiment_id])
    else:
        traces = client.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id)
        assessed = {}
        for trace in traces:
            inputs = json.loads(trace.data.request)  # the case, the check and the prompts
            assert inputs["prompts"] and json.loads(trace.data.response)["answers"]
            assessed[(inputs["case"].split("::")[-1], inputs["check"])] = [
                item.value for item in trace.info.assessments if item.name == "llmbias_verdict"]
        assert assessed == {(row["case_id"], row["check"]): [row["outcome"].upper()] for row in verdicts}
    artifacts = {entry.path for entry in client.list_artifacts(run.info.run_id, "llmbias")}
    assert artifacts == {"llmbias/report.html", "llmbias/junit.xml", "llmbias/results.txt",
                         "llmbias/verdicts.json", "llmbias/answers.json"}
    page = Path(client.download_artifacts(run.info.run_id, "llmbias/report.html", str(store)))
    assert page.read_text() == (suite.path / "out" / "page.html").read_text()  # under the README's name

    # the terminal: pytest's and ours, nothing of MLflow's; nothing written outside .llmbias/ and the store
    assert f"MLflow run: {run.info.run_id} (experiment 'bias' at {uri})" in out
    assert "mlflow" not in out.replace(f"MLflow run: {run.info.run_id}", "").replace(uri, "").lower()
    assert not result.stderr.str().strip()
    new = _files(suite.path) - before
    assert {path for path in new if not path.startswith(".llmbias/")} == {"out/page.html", "out/results.xml"}
    assert ".llmbias/logs/mlflow.log" in new and not any("mlruns" in path for path in new)


def test_without_a_tracking_uri_the_store_and_its_artifacts_stay_under_llmbias(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    store = suite.path / ".llmbias" / "mlflow"
    _client("sqlite://")  # skips where MLflow is not installed
    suite.makeini("[pytest]\nllmbias_spark = false\nllmbias_max_samples = 1\nllmbias_mlflow = true\n"
                  "llmbias_check_options =\n    gender_assumption.max_rate = 0.3\n")  # as the hermetic fixture
    result = run_inner(suite, "--llm-live", "-k", "teacher and gender_assumption")
    result.assert_outcomes(passed=1, deselected=5)
    assert result.ret == pytest.ExitCode.OK
    client = _client(f"sqlite:///{store / 'mlflow.db'}")  # after the run: MLflow 2.x opens the file at once
    run = _only_run(client, "pytest-llmbias")
    assert run.info.status == "FINISHED" and run.data.metrics["passed"] == 1
    assert run.info.artifact_uri.startswith((store / "artifacts").as_uri())
    assert {path.split("/")[0] for path in _files(suite.path)} == {"cases", "tox.ini", ".llmbias"}
    assert (store / ".gitignore").exists()


def test_a_run_is_nested_under_the_active_run(suite: pytest.Pytester, tracking) -> None:
    store, uri, client = tracking
    experiment = client.create_experiment("notebook", artifact_location=(store / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as parent:  # as a notebook's run would be
        result = run_inner(suite, "--llm-live", "--llm-mlflow", "-k", "nurse")
        assert mlflow.active_run().info.run_id == parent.info.run_id  # ours ended, the notebook's goes on
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    runs = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED" and runs[0].data.metrics["failed"] >= 1


def test_xdist_logs_one_run_from_the_controller(suite: pytest.Pytester, tracking) -> None:
    store, uri, client = tracking
    result = run_inner(suite, "-p", "xdist.plugin", "-n", "2", "--llm-live", "--llm-mlflow")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    run = _only_run(client, "pytest-llmbias")
    outcomes = result.parseoutcomes()
    assert run.data.metrics["tests"] == 6 and run.data.metrics["answers"] == 90
    assert run.data.metrics["failed"] == outcomes.get("failed", 0)
    assert run.data.params["samples"] == "10" and run.data.params["deployments"] == "gpt-35-turbo"


def test_an_mlflow_failure_is_one_red_line_and_the_reports_are_kept(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    _client("sqlite://")  # skips where MLflow is not installed
    (suite.path / "in-the-way").write_text("a file where the store's folder would be\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{suite.path / 'in-the-way' / 'mlflow.db'}")
    result = run_inner(suite, "--llm-live", "--llm-mlflow", "--llm-html", "report.html", "--color=yes",
                       "-k", "teacher and gender_assumption")
    result.assert_outcomes(passed=1, deselected=5)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR  # as for any report that was asked for and not written
    out = result.stdout.str()
    (line,) = [line for line in out.splitlines() if "MLflow run not logged" in line]
    assert line.startswith("\x1b[31m") and "details: " in line and ".llmbias/logs/mlflow.log" in line
    assert "Traceback" not in out and not result.stderr.str().strip()
    assert (suite.path / "report.html").exists() and "llm bias results" in out
    assert "Traceback" in (suite.path / ".llmbias" / "logs" / "mlflow.log").read_text()


def test_without_mlflow_the_flag_is_one_line_naming_the_extra_and_nothing_is_asked(
        suite: pytest.Pytester, azure_env: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow fails, as where it is not installed
    result = run_inner(suite, "--llm-live", "--llm-mlflow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-mlflow needs MLflow, which is not installed: "
                                 "pip install 'pytest-llmbias[mlflow]'"])
    assert len(azure_env.requests) == 0
    assert not (suite.path / ".llmbias").exists()


def test_loading_the_plugin_imports_no_mlflow(tmp_path: Path) -> None:
    code = ("import sys, pytest; pytest.main(['-p', 'pytest_llmbias.plugin', '--help']); "
            "sys.stderr.write('MLFLOW ' + str('mlflow' in sys.modules))")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert "--llm-mlflow" in done.stdout
    assert done.stderr.strip().endswith("MLFLOW False"), done.stderr


def test_rows_become_table_columns_with_every_key_and_a_shown_uri_has_no_credentials() -> None:
    from pytest_llmbias.mlflow_log import _one_line, _shown_uri, run_metrics, table_columns
    from pytest_llmbias.rows import VerdictRow, column_names

    rows = [{"case_id": "nurse", "outcome": "failed", "evidence": ["a", "b"]},
            {"case_id": "chef", "outcome": "quarantined", "new_column": {"x": 1}}]  # a key the record lacks
    columns = table_columns(rows, VerdictRow)
    assert list(columns) == [*column_names(VerdictRow), "new_column"]  # the record's order, then the rest
    assert columns["run_id"] == [None, None]
    assert columns["evidence"] == [["a", "b"], None] and columns["new_column"] == [None, '{"x": 1}']
    metrics = run_metrics([{"prompt_tokens": 3, "completion_tokens": 4}], rows)
    assert metrics["failed"] == 1 and metrics["quarantined"] == 1 and metrics["passed"] == 0
    assert metrics["tokens"] == 7 and metrics["tests"] == 2
    assert _shown_uri("postgresql://user:s3cret@db.example:5432/mlflow") == "postgresql://db.example:5432/mlflow"
    assert _shown_uri("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
    error = ConnectionError("cannot reach https://me:s3cret@mlflow.example/api\nmore")
    assert _one_line(error) == "ConnectionError: cannot reach https://mlflow.example/api"


# A notebook kernel of its own: a real IPython shell in a fresh process, so the notebook's MLflow state
# (tracking URI, active experiment, autolog) is its own and leaves this process untouched.
KERNEL = """\
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import mlflow

uri, experiment, autolog = sys.argv[1:4]
config = Config()
config.HistoryManager.enabled = False
shell = InteractiveShell.instance(config=config)
shell.run_line_magic("load_ext", "pytest_llmbias")
mlflow.set_tracking_uri(uri)                 # the notebook's own MLflow set-up
mlflow.set_experiment(experiment)
if autolog == "autolog":
    mlflow.autolog()
outcome = shell.run_cell("results = %pytest --llm-live --llm-mlflow -k nurse cases/")
results = shell.user_ns.get("results")
with mlflow.start_run(run_name="the notebook's next cell") as after:  # the notebook's state after the magic
    pass
print("KERNEL " + json.dumps({"error": repr(outcome.error_in_exec) if outcome.error_in_exec else None,
                              "exit_code": results.exit_code, "run_id": results.run_id,
                              "next_cell_experiment": mlflow.get_experiment(after.info.experiment_id).name}))
"""


def _kernel(suite: pytest.Pytester, tmp_path: Path, uri: str, experiment: str, autolog: str) -> tuple[dict, str]:
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", KERNEL, uri, experiment, autolog], cwd=suite.path, env=env,
                          capture_output=True, text=True, timeout=300)
    printed = [line for line in done.stdout.splitlines() if line.startswith("KERNEL ")]
    assert done.returncode == 0 and printed, done.stdout + done.stderr
    return json.loads(printed[-1].removeprefix("KERNEL ")), done.stdout


def _without_captured_logs(output: str) -> str:
    """pytest's report less its "Captured log" sections: pytest 9 shows a failed test's log records, also
    those of non-propagating loggers such as MLflow's (MLflow 2.x's autolog warns while tracing requests)."""
    kept, inside = [], False
    for line in output.splitlines():
        if line.startswith(("---", "===")):
            inside = " Captured log " in line
            if inside:
                continue
        if not inside:
            kept.append(line)
    return "\n".join(kept)


@pytest.mark.parametrize("autolog, ini_experiment", [("plain", None), ("autolog", None), ("plain", "bias")])
def test_pytest_magic_logs_to_the_notebooks_experiment_also_with_autolog_on(
        suite: pytest.Pytester, tmp_path: Path, autolog: str, ini_experiment: str | None) -> None:
    if ini_experiment:  # the project names its experiment: it wins over the notebook's
        suite.makeini(f"[pytest]\nllmbias_spark = false\nllmbias_max_samples = 1\n"
                      f"llmbias_mlflow_experiment = {ini_experiment}\n")
    store = tmp_path / "tracking"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = _client(uri)
    kernel, printed = _kernel(suite, tmp_path, uri, "notebook-experiment", autolog)
    assert kernel["error"] is None and kernel["exit_code"] == pytest.ExitCode.TESTS_FAILED, printed
    assert kernel["next_cell_experiment"] == "notebook-experiment"  # the notebook's own state is put back

    experiment = ini_experiment or "notebook-experiment"
    found = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([found.experiment_id], filter_string=f"tags.`llmbias.run_id` = '{kernel['run_id']}'")
    assert client.get_experiment_by_name("pytest-llmbias") is None
    assert run.info.status == "FINISHED" and run.info.run_name == kernel["run_id"]
    assert run.data.metrics["tests"] == 2 and run.data.metrics["failed"] >= 1
    assert run.data.metrics["answers"] == 30  # three prompts, ten answers each
    verdicts = sorted(row["outcome"].upper() for row in _table(client, run.info.run_id, "llmbias/verdicts.json", store))
    if _MLFLOW_MAJOR < 3:  # MLflow 2.x: the run with its tables, no assessments (no mlflow.genai)
        ours = [trace for trace in client.search_traces(experiment_ids=[found.experiment_id])
                if trace.info.request_metadata.get("mlflow.sourceRun") == run.info.run_id]
        assert ours == [] and len(verdicts) == 2
    else:
        ours = client.search_traces(locations=[found.experiment_id], run_id=run.info.run_id)
        assert sorted(item.value for trace in ours for item in trace.info.assessments
                      if item.name == "llmbias_verdict") == verdicts
    assert f"MLflow run: {run.info.run_id} (experiment '{experiment}' at {uri})" in printed
    session = _without_captured_logs(printed[printed.index("test session starts"):])
    assert [line for line in session.splitlines() if "mlflow" in line.lower()] == \
        [f"MLflow run: {run.info.run_id} (experiment '{experiment}' at {uri})"]
    if _MLFLOW_MAJOR < 3:  # MLflow 2.x's autolog records its traces' infos in the store but not their data,
        with contextlib.closing(sqlite3.connect(store / "mlflow.db")) as db:  # which search_traces then drops
            traced = db.execute("SELECT COUNT(*) FROM trace_info WHERE experiment_id = ?",
                                (found.experiment_id,)).fetchone()[0]
    else:
        traced = len(client.search_traces(locations=[found.experiment_id]))
    if autolog == "autolog":  # autolog's own traces of the live requests sit beside the run, not in it
        assert traced > len(ours)
    else:
        assert traced == len(ours)
    # the notebook's store, not the local one; an experiment the plugin made keeps its artifacts under .llmbias/
    assert run.info.artifact_uri.startswith((suite.path / ".llmbias" / "mlflow" / "artifacts").as_uri()) == \
        bool(ini_experiment)
    assert not (suite.path / ".llmbias" / "mlflow" / "mlflow.db").exists()


NO_URI_SCRIPT = """\
import sys, pytest, mlflow
mlflow.set_experiment("mine")          # a notebook using MLflow's default store: no tracking URI set
code = pytest.main(["-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider", "--llm-live", "--llm-mlflow",
                    "-k", "nurse", "cases/"])
print("DONE", int(code), mlflow.get_tracking_uri())
"""


def test_an_experiment_set_without_a_tracking_uri_gets_the_run_in_mlflows_default_store(
        suite: pytest.Pytester) -> None:
    _client("sqlite://")  # skips where MLflow is not installed (.ci/compat); .ci/run's dev extra brings it
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("MLFLOW_") or name == "MLFLOW_DISABLE_TELEMETRY"}
    done = subprocess.run([sys.executable, "-c", NO_URI_SCRIPT], cwd=suite.path, env=env, capture_output=True,
                          text=True, timeout=300)
    (last,) = [line for line in done.stdout.splitlines() if line.startswith("DONE ")]
    code, uri = last.split()[1:]
    assert int(code) == pytest.ExitCode.TESTS_FAILED and "MLflow run not logged" not in done.stdout, done.stdout
    client = _client(uri)  # MLflow's default store, which the notebook's set_experiment made
    run = _only_run(client, "mine")
    assert run.info.status == "FINISHED" and run.data.metrics["tests"] == 2
    assert f"MLflow run: {run.info.run_id} (experiment 'mine' at {uri})" in done.stdout
    assert not (suite.path / ".llmbias" / "mlflow").exists()  # no second store beside the notebook's


def test_an_unreachable_server_is_given_up_in_seconds_unless_the_user_set_mlflows_http_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow's own defaults (7 retries, backoff factor 2, 120 s a request) held the end of a run for 4 minutes
    from pytest_llmbias import mlflow_log

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    with mlflow_log._quiet(tmp_path / "mlflow.log"):
        from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

        assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2 and MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 7
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # put back as it was

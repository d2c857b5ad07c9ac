"""Spark Connect, as on Databricks shared and serverless compute: a real Connect server started from the
installed pyspark (`$SPARK_HOME/sbin/start-connect-server.sh`, jars shipped in the wheel, nothing
downloaded), once for this module.

Runs from the command line go through `SPARK_REMOTE` in a subprocess (a process holds either a
classic session or Connect ones, as a cluster's Python does); the notebook runs in this process
with a Connect session as the notebook's `spark`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbias import databricks
from pytest_llmbias.results import LOG4J_CONFIG
from tests.test_notebook import CASES, ipython, notebook, shell, unbiased  # noqa: F401 (fixtures)

pytestmark = pytest.mark.spark

SERVER_SHUFFLE_PARTITIONS = "3"  # the server's own setting: a run must leave it as it is

FACTS_CONFTEST = """\
import json

def pytest_llmbias_results(results, config):
    session = results.answers.sparkSession
    facts = {
        "answers_class": type(results.answers).__module__ + "." + type(results.answers).__name__,
        "session_module": type(session).__module__,
        "answers": results.answers.count(),
        "verdicts": results.verdicts.filter("outcome != 'error'").count(),
        "shuffle_partitions": session.conf.get("spark.sql.shuffle.partitions"),
        "spark_problem": results.spark_problem,
        "run_id": results.run_id,
    }
    (config.rootpath / "facts.json").write_text(json.dumps(facts))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    assert list((spark_home / "jars").glob("spark-connect_*.jar")), "the pyspark wheel ships no Connect server"
    work = tmp_path_factory.mktemp("connect-server")
    port = _free_port()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SPARK_", "PYSPARK_"))}
    env.update(SPARK_HOME=str(spark_home), SPARK_LOG_DIR=str(work / "logs"), SPARK_PID_DIR=str(work / "pid"),
               SPARK_LOCAL_IP="127.0.0.1")
    command = [
        "bash", str(spark_home / "sbin" / "start-connect-server.sh"), "--wait", "--master", "local[2]",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.catalogImplementation=in-memory",
        "--conf", f"spark.sql.warehouse.dir={work / 'warehouse'}",
        "--conf", f"spark.sql.shuffle.partitions={SERVER_SHUFFLE_PARTITIONS}",
        "--conf", "spark.driver.extraJavaOptions=-XX:+UseSerialGC -XX:TieredStopAtLevel=1 "
                  f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
    ]
    log = work / "server.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(command, cwd=work, env=env, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"the Connect server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the Connect server did not listen within 120 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own process group, started above
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def remote(connect_url: str) -> Iterator[Any]:
    """A Connect client session in this process, beside the classic one other modules use."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    session = ConnectSession.builder.remote(connect_url).getOrCreate()
    yield session
    session.stop()  # this test made it; released before the server goes


@pytest.fixture
def schema(remote: Any) -> Iterator[str]:
    name = f"bias_{uuid.uuid4().hex[:8]}"
    remote.sql(f"CREATE DATABASE IF NOT EXISTS {name}")
    yield f"spark_catalog.{name}"
    remote.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


@pytest.mark.parametrize("runtime", [None, "client.15.4"], ids=["spark-remote", "serverless-runtime"])
def test_a_command_line_run_over_spark_connect_keeps_results_and_tables(
        hermetic: pytest.Pytester, unbiased, connect_url: str, remote: Any, schema: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, runtime: str | None) -> None:
    monkeypatch.setenv("SPARK_REMOTE", connect_url)
    if runtime:
        monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", runtime)  # Databricks' getOrCreate path
    hermetic.makeini("[pytest]\nllmbias_max_samples = 1\nllmbias_spark = true\n")
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "occupations.yaml").write_text(CASES)
    hermetic.makeconftest(FACTS_CONFTEST)
    name = f"{schema}.runs"
    result = hermetic.runpytest_subprocess("-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider",
                                           "--llm-live", "--llm-results-table", name, timeout=120)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["results table: 8 rows appended to *`runs_answers`, 2 to *`runs_verdicts`*"])
    facts = json.loads((hermetic.path / "facts.json").read_text())
    assert facts["answers_class"] == "pyspark.sql.connect.dataframe.DataFrame"
    assert facts["session_module"] == "pyspark.sql.connect.session"
    assert (facts["answers"], facts["verdicts"]) == (8, 2)
    assert facts["shuffle_partitions"] == SERVER_SHUFFLE_PARTITIONS  # no local tuning on the server's session
    table = remote.table(f"{name}_answers")
    assert [(field.name, field.dataType.simpleString()) for field in table.schema.fields] == \
        list(databricks.ANSWER_TABLE_COLUMNS)
    assert table.filter(f"run_id = '{facts['run_id']}'").count() == 8


def test_a_notebook_on_shared_compute_keeps_results_on_its_connect_session(
        shell: Any, notebook: Path, unbiased, remote: Any, schema: str) -> None:  # noqa: F811
    (notebook / "pytest.ini").write_text("[pytest]\n")
    shell.user_ns["spark"] = remote
    name = f"{schema}.notebook"
    outcome = shell.run_cell(f"results = %pytest --llm-live --llm-raise --llm-results-table {name} cases/")
    assert outcome.error_in_exec is None, outcome.error_in_exec
    results = shell.user_ns["results"]
    assert type(results.answers).__module__ == "pyspark.sql.connect.dataframe"
    assert results.answers.sparkSession is remote
    assert shell.user_ns["display"].shown == [results.verdicts, results.answers]
    assert results.table.ok and remote.table(f"{name}_verdicts").count() == 2
    assert remote.range(5).count() == 5  # the notebook's session was not stopped

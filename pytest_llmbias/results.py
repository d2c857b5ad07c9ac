"""Result rows -> Spark DataFrames and sinks; pyspark is imported only here, and lazily."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Column name, Spark SQL type. Stable: Parquet outputs are appended across runs.
ANSWER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "string"), ("case_file", "string"), ("case_id", "string"), ("variant", "string"),
    ("prompt", "string"), ("sample", "int"), ("answer", "string"), ("finish_reason", "string"),
    ("content_filter", "string"), ("deployment", "string"), ("model", "string"), ("source", "string"),
    ("prompt_tokens", "int"), ("completion_tokens", "int"), ("latency_ms", "double"),
    ("batch", "int"),  # adaptive sampling's batch (1 = the first request); last, so older Parquet still appends
)
VERDICT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "string"), ("case_file", "string"), ("case_id", "string"), ("check", "string"),
    ("outcome", "string"), ("figure", "double"), ("low", "double"), ("high", "double"),
    ("threshold", "double"), ("summary", "string"), ("deployment", "string"), ("samples", "int"),
    ("p_value", "double"), ("evidence", "array<string>"), ("details", "string"),
)

LOG4J_CONFIG = Path(__file__).with_name("data") / "log4j2.properties"
# Start-up tuned for a 2-core machine: no UI, in-memory catalog, one shuffle partition, loopback.
LOCAL_SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "2",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 "
                                     f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
    "spark.sql.execution.arrow.pyspark.enabled": "false",
}


class SparkUnavailable(Exception):
    """No Spark here (pyspark not installed, no Java); the run's rows are kept without a DataFrame."""


def schema_ddl(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"`{name}` {kind}" for name, kind in columns)


def get_spark() -> tuple[Any, bool]:
    """The session to use and whether this plugin created it: active, SPARK_REMOTE, else local."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise SparkUnavailable("pyspark is not installed (pip install 'pytest-llmbias[spark]')") from error
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    if os.environ.get("SPARK_REMOTE"):
        return SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate(), False
    # Loopback on purpose: no hostname warnings, nothing listening beyond this machine.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master("local[2]").appName("pytest-llmbias")
    for key, value in LOCAL_SPARK_CONF.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as error:  # py4j or Java start failure: say it in one line
        raise SparkUnavailable(f"local Spark did not start: {str(error).splitlines()[0][:200]}") from error
    return spark, True


class SparkStarter:
    """Starts Spark in a background thread so the JVM boots while the tests run."""

    def __init__(self, provided: Any = None) -> None:
        self._thread = threading.Thread(target=self._run, name="llmbias-spark", daemon=True)
        self._provided = provided
        self._spark: Any = None
        self._error: BaseException | None = None
        self.seconds: float | None = None
        self.created = False

    def start(self) -> None:
        if self._provided is None and "pyspark" in sys.modules:
            from pyspark.sql import SparkSession  # active sessions are per thread: look in the caller's

            self._provided = SparkSession.getActiveSession()
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            if self._provided is not None:
                self._spark, self.created = self._provided, False
            else:
                self._spark, self.created = get_spark()
            if self.created:
                # The first job pays for code generation: pay it here, behind the tests.
                self._spark.createDataFrame([(1,)], schema="`warm` int").count()
        except BaseException as error:  # reported when the session is needed, not in this thread
            self._error = error
        self.seconds = time.perf_counter() - started

    def result(self, timeout: float | None = None) -> Any:
        self._thread.join(timeout)
        if self._error is not None:
            if isinstance(self._error, SparkUnavailable):
                raise self._error
            raise SparkUnavailable(f"Spark did not start: {type(self._error).__name__}: "
                                   f"{str(self._error).splitlines()[0][:200] if str(self._error) else ''}")
        return self._spark


def to_dataframe(spark: Any, rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> Any:
    # Tuples with an explicit schema: the one form that behaves the same over Spark Connect.
    return spark.createDataFrame([tuple(row.get(name) for name, _ in columns) for row in rows],
                                 schema=schema_ddl(columns))


@dataclass
class RunResults:
    """The run's outputs: rows always, DataFrames when Spark is available."""

    run_id: str
    answer_rows: list[dict[str, Any]] = field(repr=False)
    verdict_rows: list[dict[str, Any]] = field(repr=False)
    answers: Any = None                   # pyspark DataFrame
    verdicts: Any = None                  # pyspark DataFrame
    spark_problem: str | None = None      # why there is no DataFrame
    spark_seconds: float | None = None    # time to a session, measured in the background thread
    written_to: str | None = None
    write_problem: str | None = None
    suite: list[str] = field(default_factory=list)  # suite-level lines (occupations vs labour statistics)
    baseline: Any = None                  # report.baselines.Comparison with --llm-baseline
    exit_code: int | None = None          # set by %pytest (pytest_llmbias.notebook)
    table: Any = None                     # databricks.TableWrite with --llm-results-table

    @classmethod
    def build(cls, run_id: str, answer_rows: list[dict[str, Any]], verdict_rows: list[dict[str, Any]],
              starter: SparkStarter | None, results_dir: str | None, *, spark: bool = True) -> RunResults:
        results = cls(run_id, list(answer_rows), list(verdict_rows))
        if not spark:
            results.spark_problem = "Spark is off (ini llmbias_spark = false)"
            return results
        if starter is None:
            starter = SparkStarter()
            starter.start()
        try:
            spark = starter.result()
        except SparkUnavailable as problem:
            results.spark_problem = str(problem)
            return results
        results.spark_seconds = starter.seconds
        results.answers = to_dataframe(spark, results.answer_rows, ANSWER_COLUMNS)
        results.verdicts = to_dataframe(spark, results.verdict_rows, VERDICT_COLUMNS)
        if results_dir:
            results.write_parquet(results_dir)
        return results

    def write_parquet(self, results_dir: str) -> None:
        """Append to DIR/answers and DIR/verdicts, partitioned by nothing: run_id is a column."""
        try:
            self.answers.write.mode("append").parquet(os.path.join(results_dir, "answers"))
            self.verdicts.write.mode("append").parquet(os.path.join(results_dir, "verdicts"))
            self.written_to = results_dir
        except Exception as error:  # a failed sink must not lose the run: the rows stay in memory
            self.write_problem = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"

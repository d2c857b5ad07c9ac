"""Result rows -> Spark DataFrames and sinks; pyspark is imported only here, and lazily."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .rows import AnswerRow, VerdictRow, as_tuple, columns, schema_ddl, with_models

# Column name, Spark SQL type, from the rows' fields (pytest_llmbias.rows): the DataFrames' and the
# Parquet folders' schema. Stable: Parquet outputs are appended across runs.
ANSWER_COLUMNS = columns(AnswerRow)
VERDICT_COLUMNS = columns(VerdictRow)

SPARK_LOG = Path(".llmbias") / "logs" / "spark.log"   # the local JVM's stdout and stderr, under the rootdir
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


# `--llm-results main.bias` names a Unity Catalog schema (two names and a dot, no folder separator);
# anything else is a folder (`./results.v2` for a folder whose name has a dot).
CATALOG_SCHEMA = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\.[A-Za-z0-9_][A-Za-z0-9_-]*")


def spark_error(error: BaseException, limit: int = 200) -> str:
    """A Spark failure in one line that says why: for a JVM error, its root cause ("java.io.IOException: Mkdirs
    failed to create file:/proc/res/..."), not py4j's "An error occurred while calling o85.parquet."."""
    text = ""
    java = getattr(error, "java_exception", None)
    if java is not None:
        try:
            for _ in range(20):  # a cycle of causes ends here
                if java.getCause() is None:
                    break
                java = java.getCause()
            text = str(java.toString())
        except Exception:  # noqa: BLE001 - the JVM is gone: fall back on the Python side's text
            text = ""
    lines = [line.strip(" :\t") for line in (text or str(error)).splitlines() if line.strip(" :\t")
             and not line.startswith("An error occurred while calling ")]  # py4j's, naming no cause
    shown = lines[0] if lines else ""
    if len(shown) > limit:
        shown = shown[:limit - 3] + "..."
    return f"{type(error).__name__}: {shown}" if shown else type(error).__name__


def catalog_schema(target: str | None) -> str | None:
    """`catalog.schema` when --llm-results (or ini llmbias_results) names one rather than a folder."""
    return target if target and CATALOG_SCHEMA.fullmatch(target) else None


JVM_NICENESS = 10   # the local JVM boots at low priority: the tests come first


class SparkUnavailable(Exception):
    """No Spark here (pyspark not installed, no Java); the run's rows are kept without a DataFrame."""


def get_spark(log_path: Path | None = None) -> tuple[Any, bool]:
    """The session to use and whether this plugin created it: active, SPARK_REMOTE, else local.

    A local JVM writes its stdout and stderr to `log_path` (never to the terminal) and loads its
    classes from a class-data archive in the user cache when one exists (ClassDataArchive).
    """
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
    shown_log = f" (JVM output: {log_path})" if log_path is not None else ""
    try:
        _launch_local_context(log_path)
        builder = SparkSession.builder.master("local[2]").appName("pytest-llmbias")
        for key, value in LOCAL_SPARK_CONF.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
    except Exception as error:  # py4j or Java start failure: say it in one line
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise SparkUnavailable(f"local Spark did not start: {first}{shown_log}") from error
    return spark, True


def _launch_local_context(log_path: Path | None) -> None:
    """Start the local JVM with its output in a log file and the class-data archive, then its
    SparkContext; the builder's getOrCreate then finds that context."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if getattr(SparkContext, "_gateway", None) is not None or log_path is None:
        return  # this process already has a JVM (a stopped session's): the builder reuses it
    archive = ClassDataArchive.for_this_machine()
    conf = SparkConf(loadDefaults=False).setMaster("local[2]").setAppName("pytest-llmbias")
    for key, value in LOCAL_SPARK_CONF.items():
        conf.set(key, value)
    if archive is not None:
        conf.set("spark.driver.extraJavaOptions",
                 f"{LOCAL_SPARK_CONF['spark.driver.extraJavaOptions']} {archive.java_option()}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ignore = log_path.parent / ".gitignore"
    if not ignore.exists():  # like .pytest_cache: never committed by accident
        ignore.write_text("# written by pytest-llmbias: logs of the local Spark JVM\n*\n")
    log_path.unlink(missing_ok=True)  # a previous run's JVM still writing keeps its own file
    with log_path.open("wb") as log:  # the JVM keeps its own copy of the descriptor
        gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
    if archive is not None:
        archive.started(getattr(gateway, "proc", None))
    SparkContext(conf=conf, gateway=gateway)


def cache_dir() -> Path | None:
    """pytest-llmbias's user cache (PYTEST_LLMBIAS_CACHE, else XDG's); None when set to 'off'."""
    chosen = os.environ.get("PYTEST_LLMBIAS_CACHE")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "false", "no") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "pytest-llmbias")


STALE_ARCHIVE_DAYS = 14   # another Java's or Spark's archive unused this long is removed
ORPHAN_PART_SECONDS = 3600  # a part file no live JVM writes and none is named for: left by a killed run
OTHER_WRITER_SECONDS = 86400  # another install's part whose writer is not seen here is left alone this long


class ClassDataArchive:
    """A JVM class-data sharing (AppCDS) archive of Spark's classes, one per machine, Java and Spark.

    A JVM maps the archive instead of loading and verifying thousands of classes from Spark's jars,
    which halves the local start. The first run's JVM dumps it when it exits, into a part file
    beside a sidecar naming that JVM's pid; a later run promotes the part once that JVM is gone.
    The name carries a digest of Java, Spark's jars and the JVM options: a new Java or Spark makes
    a new archive (the JVM itself also refuses a mismatched one and loads classes as usual).
    """

    dumping = False      # whether this process's JVM writes the archive when it exits

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name      # spark-<version>-java<version>-<digest>.jsa
        self._dumping: Path | None = None

    @property
    def path(self) -> Path:
        return self.folder / self.name

    @classmethod
    def for_this_machine(cls) -> ClassDataArchive | None:
        folder = cache_dir()
        java = _java_release()
        if folder is None or java is None or java[1] < 13:  # dynamic archives came with Java 13
            return None
        try:
            import pyspark

            jars = Path(pyspark.__file__).parent / "jars"
            listing = sorted((entry.name, entry.stat().st_size, int(entry.stat().st_mtime))
                             for entry in os.scandir(jars))
        except (ImportError, OSError):
            return None
        import hashlib

        digest = hashlib.sha256(repr((java, str(jars), listing, pyspark.__version__,
                                      LOCAL_SPARK_CONF["spark.driver.extraJavaOptions"])).encode())
        return cls(folder, f"spark-{pyspark.__version__}-java{java[0]}-{digest.hexdigest()[:12]}.jsa")

    def _writer_running(self) -> bool:
        """Promote finished part files; whether some JVM is still to write one."""
        running = False
        now = time.time()
        for sidecar in self.folder.glob("spark-*.jsa.*.part.pid"):  # every Spark's and Java's: each venv has its own
            part = sidecar.with_suffix("")
            archive = self.folder / (part.name.split(".jsa.", 1)[0] + ".jsa")
            try:
                pid = int(sidecar.read_text() or "0")
                if archive != self.path and sidecar.stat().st_mtime > now - OTHER_WRITER_SECONDS:
                    continue  # another install's, recent: its writer may live where this process cannot see it
            except FileNotFoundError:
                continue  # another run promoted or removed it meanwhile
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                running = running or archive == self.path
                continue
            try:
                if part.exists() and part.stat().st_size > 0 and not archive.exists():
                    os.replace(part, archive)
            except FileNotFoundError:
                pass
            part.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
        for part in self.folder.glob("spark-*.jsa.*.part"):  # no writer named (a run killed as its JVM started)
            try:
                if not Path(f"{part}.pid").exists() and part.stat().st_mtime < now - ORPHAN_PART_SECONDS:
                    part.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
        if self.path.exists():
            os.utime(self.path)  # in use: the clean-up below goes by age
            unused = time.time() - STALE_ARCHIVE_DAYS * 86400
            for other in self.folder.glob("spark-*.jsa"):  # another Java's or Spark's, unused since
                if other.name != self.name and other.stat().st_mtime < unused:
                    other.unlink(missing_ok=True)
        return running

    def java_option(self) -> str:
        """-XX:SharedArchiveFile when the archive exists, else -XX:ArchiveClassesAtExit to a part file."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            running = self._writer_running()
            if self.path.exists():
                return f"-XX:SharedArchiveFile={self.path} -Xshare:auto"
            if running:
                return ""  # another run's JVM will write it
        except OSError:
            return ""
        self._dumping = self.folder / f"{self.name}.{os.getpid()}-{time.time_ns()}.part"
        ClassDataArchive.dumping = True
        return f"-XX:ArchiveClassesAtExit={self._dumping}"

    def started(self, process: Any) -> None:
        """Name the JVM that will write the part file (at its exit), so later runs know when it is done."""
        if self._dumping is None:
            return
        pid = getattr(process, "pid", None)
        try:
            Path(f"{self._dumping}.pid").write_text(str(pid or ""))
        except OSError:
            pass


def _java_release() -> tuple[str, int] | None:
    """The Java that Spark will run (JAVA_HOME, else java on PATH): its version and feature number."""
    import shutil

    home = os.environ.get("JAVA_HOME")
    java = Path(home, "bin", "java") if home else (Path(shutil.which("java")) if shutil.which("java") else None)
    if java is None or not java.exists():
        return None
    release = java.resolve().parent.parent / "release"
    try:
        text = release.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("JAVA_VERSION="):
            version = line.split("=", 1)[1].strip().strip('"')
            feature = version.split(".")[0]
            if feature == "1" and "." in version:  # 1.8.0_x
                feature = version.split(".")[1]
            return (version, int(feature)) if feature.isdigit() else None
    return None


def _child_pids() -> list[int]:
    """This process's children, from Linux's /proc (none elsewhere)."""
    found: list[int] = []
    try:
        for task in os.scandir("/proc/self/task"):
            with open(os.path.join(task.path, "children")) as children:
                found.extend(int(pid) for pid in children.read().split())
    except OSError:
        pass
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

class SparkStarter:
    """Starts Spark in a background thread so the JVM boots while the tests run.

    No Spark job is run here: the first job (code generation) is paid only by whoever uses the
    DataFrames. `result` can be cut short by an event (a Ctrl-C during the start).
    """

    def __init__(self, provided: Any = None, log_path: Path | None = None) -> None:
        self._thread = threading.Thread(target=self._run, name="llmbias-spark", daemon=True)
        self._provided = provided
        self._log_path = log_path
        self._spark: Any = None
        self._error: BaseException | None = None
        self.seconds: float | None = None
        self.created = False

    def start(self) -> None:
        if self._provided is None and "pyspark" in sys.modules:
            from pyspark.sql import SparkSession  # active sessions are per thread: look in the caller's

            self._provided = SparkSession.getActiveSession()
        self._thread.start()
        import atexit

        atexit.register(self._stop_unfinished_start)

    def _stop_unfinished_start(self) -> None:
        """At exit, a JVM still booting for DataFrames nobody read is stopped, not left behind (a
        booted one exits by itself when its stdin closes; one writing the class archive is left to it)."""
        if not self._thread.is_alive() or ClassDataArchive.dumping:
            return
        import signal

        for pid in _child_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    if b"pyspark-shell" not in cmdline.read():
                        continue
                os.kill(pid, signal.SIGTERM)
            except OSError:
                continue

    @property
    def ready(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            if self._provided is not None:
                self._spark, self.created = self._provided, False
            else:
                _yield_to_the_tests()
                self._spark, self.created = get_spark(self._log_path)
        except BaseException as error:  # reported when the session is needed, not in this thread
            self._error = error
        self.seconds = time.perf_counter() - started

    def result(self, timeout: float | None = None, *, give_up: threading.Event | None = None) -> Any:
        """The session; SparkUnavailable if it failed, or if `give_up` is set before it is ready."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive():  # short waits: the main thread stays responsive to signals
            if give_up is not None and give_up.is_set():
                raise SparkUnavailable("the run was interrupted while Spark was starting")
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                break
            self._thread.join(left)
        if self._error is not None:
            if isinstance(self._error, SparkUnavailable):
                raise self._error
            raise SparkUnavailable(f"Spark did not start: {type(self._error).__name__}: "
                                   f"{str(self._error).splitlines()[0][:200] if str(self._error) else ''}")
        return self._spark


def _yield_to_the_tests() -> None:
    """Lower this thread's priority, and so the JVM's it starts (Linux niceness is per thread and
    inherited): the boot uses the cores the tests leave idle instead of slowing them."""
    if hasattr(os, "setpriority") and sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JVM_NICENESS)
        except OSError:
            pass


def to_dataframe(spark: Any, rows: Sequence[Mapping[str, Any]], row_type: type) -> Any:
    """Rows (dicts of a rows.AnswerRow or VerdictRow) as a DataFrame with that record's columns."""
    # Tuples with an explicit schema: the one form that behaves the same over Spark Connect.
    row_columns = columns(row_type)
    return spark.createDataFrame([as_tuple(row, row_columns) for row in rows], schema=schema_ddl(row_columns))


@dataclass
class RunResults:
    """The run's outputs: rows always; DataFrames when Spark is available, built on first use.

    Nothing waits for the JVM at the end of a run unless something reads `answers` or `verdicts`
    (the pytest_llmbias_results hook, llm_answers, %pytest, --llm-results): the run costs what its
    tests cost, and whoever uses the DataFrames pays only what is left of the background start.
    """

    run_id: str
    answer_rows: list[dict[str, Any]] = field(repr=False)
    verdict_rows: list[dict[str, Any]] = field(repr=False)
    spark_problem: str | None = None      # why there is no DataFrame
    spark_seconds: float | None = None    # time to a session, measured in the background thread
    written_to: str | None = None
    write_problem: str | None = None
    suite: list[str] = field(default_factory=list)  # suite-level lines (occupations vs labour statistics)
    baseline: Any = None                  # report.baselines.Comparison with --llm-baseline
    exit_code: int | None = None          # set by %pytest (pytest_llmbias.notebook)
    table: Any = None                     # databricks.TableWrite: --llm-results CATALOG.SCHEMA, --llm-results-table
    _starter: SparkStarter | None = field(default=None, repr=False)
    _give_up: threading.Event | None = field(default=None, repr=False)
    _interrupted: bool = field(default=False, repr=False)
    _frames: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def answers(self) -> Any:
        """The answers as a pyspark DataFrame (None when Spark is unavailable: see spark_problem)."""
        return self._frame("answers")

    @answers.setter
    def answers(self, frame: Any) -> None:
        self._frames["answers"] = frame

    @property
    def verdicts(self) -> Any:
        """The verdicts as a pyspark DataFrame (None when Spark is unavailable: see spark_problem)."""
        return self._frame("verdicts")

    @verdicts.setter
    def verdicts(self, frame: Any) -> None:
        self._frames["verdicts"] = frame

    @property
    def frames_pending(self) -> bool:
        """Whether the DataFrames are still to be built on first use (no Spark problem known yet)."""
        if "answers" in self._frames or self._starter is None or self.spark_problem:
            return False
        if self._starter.ready:
            try:
                self._starter.result()
            except SparkUnavailable as problem:
                self.spark_problem = str(problem)
                return False
        return True

    def _frame(self, name: str) -> Any:
        if name not in self._frames:
            self._build_frames()
        return self._frames.get(name)

    def _build_frames(self) -> None:
        starter, self._starter = self._starter, None
        if starter is None:
            return
        if self._interrupted and not starter.ready:
            self.spark_problem = "the run was interrupted while Spark was starting"
            return
        try:
            spark = starter.result(give_up=self._give_up)
        except SparkUnavailable as problem:
            self.spark_problem = str(problem)
            return
        self.spark_seconds = starter.seconds
        self._frames["answers"] = to_dataframe(spark, self.answer_rows, AnswerRow)
        self._frames["verdicts"] = to_dataframe(spark, self.verdict_rows, VerdictRow)

    @classmethod
    def build(cls, run_id: str, answer_rows: list[dict[str, Any]], verdict_rows: list[dict[str, Any]],
              starter: SparkStarter | None, results_dir: str | None, *, spark: bool = True,
              interrupted: bool = False, give_up: threading.Event | None = None) -> RunResults:
        """Rows now, DataFrames on first use (now with results_dir, for the Parquet). An interrupted
        run does not wait for a Spark still starting; `give_up` (a Ctrl-C) ends any wait for it."""
        results = cls(run_id, list(answer_rows), with_models(answer_rows, verdict_rows))
        if not spark:
            results.spark_problem = "Spark is off (ini llmbias_spark = false)"
            return results
        if starter is None:
            starter = SparkStarter()
            starter.start()
        results._starter, results._give_up, results._interrupted = starter, give_up, interrupted
        if results_dir and results.answers is not None:
            results.write_parquet(results_dir)
        return results

    def write_parquet(self, results_dir: str) -> None:
        """Append to DIR/answers and DIR/verdicts, partitioned by nothing: run_id is a column."""
        try:
            self.answers.write.mode("append").parquet(os.path.join(results_dir, "answers"))
            self.verdicts.write.mode("append").parquet(os.path.join(results_dir, "verdicts"))
            self.written_to = results_dir
        except Exception as error:  # a failed sink must not lose the run: the rows stay in memory
            self.write_problem = spark_error(error)

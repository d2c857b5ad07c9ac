"""Databricks feature plugin: the notebook's Spark session, secret-scope keys and result tables.

Loaded with the main plugin. Imports nothing heavy: pyspark, pyarrow and the Databricks SDK are
imported inside the functions that need them. Everything here also works over Spark Connect
(shared and serverless compute): DataFrames are built from tuples with an explicit schema and
written with `saveAsTable`; no `sparkContext`, RDD or JVM access.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from .keys import NOTEBOOK_KEY, SESSION_KEY, TABLE_KEY, NotebookContext  # noqa: F401 (NotebookContext: re-exported)
from .options import ini_bool, ini_source
from .results import catalog_schema, spark_error
from .rows import AnswerRow, RunStamp, VerdictRow, as_tuple, schema_ddl, table_columns, with_models

RUN_TIME_KEY = pytest.StashKey[datetime]()
NOTES_KEY = pytest.StashKey[list]()

# The result tables' columns: name, Spark SQL type (pytest_llmbias.rows: run_id, the run's stamp,
# then the row's columns). A stable contract: runs are appended for years, so columns are only ever
# added at the end, never renamed or retyped; an append matches the table's columns by name.
ANSWER_TABLE_COLUMNS = table_columns(AnswerRow)
VERDICT_TABLE_COLUMNS = table_columns(VerdictRow)
TABLE_SUFFIXES = ("_answers", "_verdicts")
RESULTS_TABLE_STEM = "llmbias"   # --llm-results CATALOG.SCHEMA: CATALOG.SCHEMA.llmbias_answers and _verdicts

# One append per chunk: a Spark Connect request carries its rows in one gRPC message (128 MiB at
# most by default), and a bounded chunk keeps a classic driver's memory bounded too.
CHUNK_ROWS = 2_000
CHUNK_BYTES = 16 * 1024 * 1024
# Where the run is kept as Parquet until the table write succeeds (gitignored: llm-results/).
LOCAL_COPY_DIR = Path("llm-results") / "unsaved"

_NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,254}$")
_SECRET = re.compile(r"^([A-Za-z0-9_.-]{1,128})/([A-Za-z0-9_.-]{1,128})$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Where CI systems put the commit being built, when there is no .git folder to read.
COMMIT_VARIABLES = ("GIT_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "BUILD_SOURCEVERSION")


# -- options ----------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmbias")
    group.addoption("--llm-results-table", metavar="CATALOG.SCHEMA.NAME", default=None,
                    help="append answers and verdicts to the tables NAME_answers and NAME_verdicts")
    group.addoption("--llm-key-secret", metavar="SCOPE/KEY", default=None,
                    help="read the Azure key from a Databricks secret scope (dbutils.secrets)")
    group.addoption("--llm-raise", action="store_true", default=False,
                    help="in a notebook (%%pytest): raise when the run fails, so a scheduled job fails")
    parser.addini("llmbias_results_table", "default for --llm-results-table", default="")
    parser.addini("llmbias_key_secret", "default for --llm-key-secret (SCOPE/KEY)", default="")


def _named_tables(config: pytest.Config) -> tuple[str | None, str | None]:
    """(--llm-results-table's CATALOG.SCHEMA.NAME, --llm-results's CATALOG.SCHEMA), each from its ini key
    when not given; None where the option names no tables (a folder for --llm-results)."""
    table = config.getoption("llm_results_table") or config.getini("llmbias_results_table") or None
    return table, catalog_schema(config.getoption("llm_results") or config.getini("llmbias_results"))


def results_table_name(config: pytest.Config) -> str | None:
    """The tables' CATALOG.SCHEMA.NAME: --llm-results-table's, or CATALOG.SCHEMA.llmbias for
    --llm-results CATALOG.SCHEMA."""
    table, schema = _named_tables(config)
    return table or (f"{schema}.{RESULTS_TABLE_STEM}" if schema else None)


def secret_name(config: pytest.Config) -> str | None:
    return config.getoption("llm_key_secret") or config.getini("llmbias_key_secret") or None


def table_names(name: str) -> tuple[str, str]:
    """`catalog.schema.name` -> the quoted names of its answers and verdicts tables."""
    parts = name.split(".")
    if not 2 <= len(parts) <= 3 or not all(_NAME_PART.match(part) for part in parts):
        # one bare name would land in whatever database is current (a local default one): say where instead
        raise ValueError(f"--llm-results-table: {name!r} is not a table name: use catalog.schema.name "
                         "(or schema.name), each part letters, digits, '_' or '-'")
    quoted = ".".join(f"`{part}`" for part in parts[:-1])
    prefix = f"{quoted}." if quoted else ""
    return tuple(f"{prefix}`{parts[-1]}{suffix}`" for suffix in TABLE_SUFFIXES)  # type: ignore[return-value]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RUN_TIME_KEY] = datetime.now(timezone.utc)
    config.stash[NOTES_KEY] = []
    name = results_table_name(config)
    if name:
        table, schema = _named_tables(config)
        if table and schema:
            raise pytest.UsageError(f"--llm-results {schema} and --llm-results-table {table} both name result "
                                    "tables: give one")
        try:
            table_names(name)
        except ValueError as problem:
            message = str(problem)
            if table and not config.getoption("llm_results_table"):
                message = message.replace("--llm-results-table", ini_source(config, "llmbias_results_table"), 1)
            raise pytest.UsageError(message) from None
        if not ini_bool(config, "llmbias_spark"):
            option = "--llm-results-table" if table else f"--llm-results {schema}"
            raise pytest.UsageError(f"{option} writes tables through Spark, and ini llmbias_spark is false")

    results = config.getoption("llm_results") or config.getini("llmbias_results") or ""
    if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*){2,}", results) \
            and not (config.rootpath / results).is_dir():  # an existing folder of that name is what it says
        # three dotted names read as a table, not the folder they would make
        source = "--llm-results" if config.getoption("llm_results") else ini_source(config, "llmbias_results")
        raise pytest.UsageError(f"{source}: {results!r} names neither a folder nor CATALOG.SCHEMA: for tables of that "
                                f"name give --llm-results-table {results}; for a folder, ./{results}")
    secret = secret_name(config)
    if secret and not _SECRET.match(secret):
        source = "--llm-key-secret" if config.getoption("llm_key_secret") else ini_source(config, "llmbias_key_secret")
        raise pytest.UsageError(f"{source}: {secret!r} is not SCOPE/KEY (e.g. bias-suite/azure-openai-key)")


# -- Spark session ----------------------------------------------------------------------------

@pytest.hookimpl(trylast=True)
def pytest_llmbias_spark_session(config: pytest.Config) -> Any:
    """The notebook's `spark`, an active session, Databricks' own, or Databricks Connect; else None.

    None lets results.get_spark connect to SPARK_REMOTE or start an embedded local session.
    trylast: a user's own implementation of this hook wins.
    """
    if not ini_bool(config, "llmbias_spark"):
        return None
    notebook = config.stash.get(NOTEBOOK_KEY, None)
    if notebook is not None and notebook.spark is not None:
        return notebook.spark
    return find_spark_session(config.stash[NOTES_KEY])


def find_spark_session(notes: list[str] | None = None) -> Any:
    """An existing session to use, found in the caller's thread (active sessions are per thread)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return _databricks_connect(notes)
    try:
        active = SparkSession.getActiveSession()
    except Exception:  # older pyspark on Connect-only compute: no active-session lookup
        active = None
    if active is not None:
        return active
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        # The cluster's own session (a Spark Connect one on shared and serverless compute); never
        # the local builder, whose settings would be applied to the cluster's session.
        return SparkSession.builder.getOrCreate()
    if os.environ.get("SPARK_REMOTE"):
        return None
    return _databricks_connect(notes)


def _databricks_connect(notes: list[str] | None) -> Any:
    import importlib.util

    try:
        if importlib.util.find_spec("databricks.connect") is None or not _databricks_configured():
            return None
    except ImportError:  # no `databricks` namespace package at all
        return None
    try:
        from databricks.connect import DatabricksSession

        return DatabricksSession.builder.getOrCreate()
    except Exception as error:  # a configuration problem: say it, use a local session
        if notes is not None:
            notes.append(f"Databricks Connect is configured but did not start ({_one_line(error)}); "
                         "the results use a local Spark session")
        return None


def _databricks_configured() -> bool:
    return bool(os.environ.get("DATABRICKS_HOST") or os.environ.get("DATABRICKS_CONFIG_PROFILE")
                or Path(os.environ.get("DATABRICKS_CONFIG_FILE", "~/.databrickscfg")).expanduser().is_file())


# -- the Azure key from a secret scope --------------------------------------------------------

def pytest_llmbias_api_key(config: pytest.Config) -> str | None:
    secret = secret_name(config)
    if not secret or not (config.getoption("llm_live") or config.getoption("llm_record")):
        return None  # replay needs no key: no secret scope is read
    scope, key = secret.split("/", 1)
    notebook = config.stash.get(NOTEBOOK_KEY, None)
    try:
        dbutils = (notebook.dbutils if notebook is not None else None) or find_dbutils()
    except Exception as error:
        raise pytest.UsageError(f"--llm-key-secret {secret}: Databricks is not reachable: "
                                f"{_one_line(error)}") from None
    if dbutils is None:
        raise pytest.UsageError(
            f"--llm-key-secret {secret}: no Databricks secret scope here (dbutils exists in a Databricks "
            "notebook or job, or with databricks-sdk configured through DATABRICKS_HOST); "
            "set AZURE_OPENAI_API_KEY instead")
    try:
        value = dbutils.secrets.get(scope=scope, key=key)
    except Exception as error:  # the message names the scope and key, never a value
        raise pytest.UsageError(f"--llm-key-secret {secret}: the secret could not be read: "
                                f"{_one_line(error)}") from None
    if not value or not str(value).strip():
        raise pytest.UsageError(f"--llm-key-secret {secret}: the secret is empty")
    return str(value).strip()


def find_dbutils() -> Any:
    """Databricks' dbutils: the runtime's on a cluster, else the SDK's when configured; else None."""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        try:
            from databricks.sdk.runtime import dbutils

            if dbutils is not None:
                return dbutils
        except ImportError:
            pass
    if not _databricks_configured():
        return None
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError:
        return None
    return WorkspaceClient().dbutils


# -- result tables ----------------------------------------------------------------------------

@dataclass
class TableWrite:
    """How the run's append to the result tables went."""

    name: str
    tables: tuple[str, str]
    rows: dict[str, int] = field(default_factory=dict)     # table -> rows appended
    chunks: dict[str, int] = field(default_factory=dict)   # table -> appends made
    problem: str | None = None
    kept_copy: str | None = None      # the local Parquet copy, kept when the write failed
    copy_problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def lines(self, run_id: str = "") -> list[str]:
        if self.ok:
            answers, verdicts = self.tables
            return [f"results table: {self.rows.get(answers, 0)} rows appended to {answers}, "
                    f"{self.rows.get(verdicts, 0)} to {verdicts}" + (f" (run {run_id})" if run_id else "")]
        lines = [f"results table NOT written: {self.problem}"]
        if self.kept_copy:
            lines.append(f"the run is kept as Parquet in {self.kept_copy}; append it later with "
                         f"pytest_llmbias.databricks.append_saved_run(spark, {self.kept_copy!r}, {self.name!r})")
        elif self.copy_problem:
            lines.append(f"no local copy either: {self.copy_problem}")
        return lines


@dataclass(frozen=True)
class TableRows:
    """The run's rows in the tables' column order."""

    answers: list[tuple[Any, ...]]
    verdicts: list[tuple[Any, ...]]


def table_rows(answer_rows: Sequence[Mapping[str, Any]], verdict_rows: Sequence[Mapping[str, Any]], *,
               run_time: datetime, git_commit: str | None) -> TableRows:
    """Result rows plus the run's stamp (time, commit, plugin version); verdicts get the answers' model."""
    from . import __version__

    stamp = dataclasses.asdict(RunStamp(run_time=run_time, git_commit=git_commit, llmbias_version=__version__))
    return TableRows(
        answers=[as_tuple({**row, **stamp}, ANSWER_TABLE_COLUMNS) for row in answer_rows],
        verdicts=[as_tuple({**row, **stamp}, VERDICT_TABLE_COLUMNS)
                  for row in with_models(answer_rows, verdict_rows)],
    )


def append_rows(spark: Any, name: str, rows: TableRows, *, chunk_rows: int = CHUNK_ROWS,
                chunk_bytes: int = CHUNK_BYTES) -> TableWrite:
    """Append to NAME_answers and NAME_verdicts in bounded chunks; a failure is recorded, not raised."""
    tables = table_names(name)
    write = TableWrite(name, tables)
    for table, columns, values in zip(tables, (ANSWER_TABLE_COLUMNS, VERDICT_TABLE_COLUMNS),
                                      (rows.answers, rows.verdicts), strict=True):
        write.rows[table], write.chunks[table] = 0, 0
        for chunk in _chunks(values, chunk_rows, chunk_bytes):
            try:
                if not write.chunks[table]:
                    _add_missing_columns(spark, table, columns)
                frame = spark.createDataFrame(chunk, schema=schema_ddl(columns))
                frame.write.mode("append").saveAsTable(table)
            except Exception as error:
                done = f" after {write.rows[table]} of {len(values)} rows" if write.rows[table] else ""
                write.problem = f"{table}{done}: {spark_error(error, 300)}"
                return write
            write.rows[table] += len(chunk)
            write.chunks[table] += 1
    return write


def _add_missing_columns(spark: Any, table: str, columns: Sequence[tuple[str, str]]) -> None:
    """A table an earlier version made lacks the columns added since: add them (at its end), as an
    append must match the table's columns (Delta and Parquet tables alike)."""
    try:
        existing = {field.name for field in spark.table(table).schema.fields}
    except Exception:  # no such table yet: the first append makes it (any other problem shows there)
        return
    missing = [(name, kind) for name, kind in columns if name not in existing]
    if missing:
        spark.sql(f"ALTER TABLE {table} ADD COLUMNS ({schema_ddl(missing)})")


def _chunks(rows: Sequence[tuple[Any, ...]], max_rows: int, max_bytes: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    size = 0
    for row in rows:
        row_size = 64 + sum(len(value) for value in row if isinstance(value, str))
        if chunk and (len(chunk) >= max_rows or size + row_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += row_size
    if chunk:
        yield chunk


_ARROW_TYPES = {"string": "string", "int": "int32", "double": "float64"}


def _arrow_schema(columns: Sequence[tuple[str, str]]) -> Any:
    import pyarrow as pa

    def arrow_type(kind: str) -> Any:
        if kind == "timestamp":
            return pa.timestamp("us", tz="UTC")
        if kind == "array<string>":
            return pa.list_(pa.string())
        return getattr(pa, _ARROW_TYPES[kind])()

    return pa.schema([(name, arrow_type(kind)) for name, kind in columns])


def save_copy(rows: TableRows, folder: Path) -> Path:
    """Write the table rows as local Parquet files (pyarrow, on this machine, without Spark)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for stem, columns, values in (("answers", ANSWER_TABLE_COLUMNS, rows.answers),
                                  ("verdicts", VERDICT_TABLE_COLUMNS, rows.verdicts)):
        names = [name for name, _ in columns]
        records = [dict(zip(names, row, strict=True)) for row in values]
        table = pa.Table.from_pylist(records, schema=_arrow_schema(columns))
        pq.write_table(table, folder / f"{stem}.parquet")
    return folder


def load_copy(folder: str | os.PathLike[str]) -> TableRows:
    import pyarrow.parquet as pq

    loaded = {}
    for stem, columns in (("answers", ANSWER_TABLE_COLUMNS), ("verdicts", VERDICT_TABLE_COLUMNS)):
        records = pq.read_table(Path(folder) / f"{stem}.parquet").to_pylist()
        loaded[stem] = [tuple(record.get(name) for name, _ in columns) for record in records]
    return TableRows(loaded["answers"], loaded["verdicts"])


def append_saved_run(spark: Any, folder: str | os.PathLike[str], name: str) -> TableWrite:
    """Append a run kept by a failed table write; the copy is removed once both tables have it."""
    write = append_rows(spark, name, load_copy(folder))
    if write.ok:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        write.kept_copy = str(folder)
    return write


def publish(results: Any, name: str, *, rootdir: Path, run_time: datetime) -> TableWrite:
    """Keep a local copy, append to the tables with the results' own session, drop the copy on success."""
    rows = table_rows(results.answer_rows, results.verdict_rows, run_time=run_time,
                      git_commit=git_commit(rootdir))
    write = TableWrite(name, table_names(name))
    copy: Path | None = None
    for base in (rootdir, Path(tempfile.gettempdir()) / "pytest-llmbias"):
        try:
            copy = save_copy(rows, base / LOCAL_COPY_DIR / results.run_id)
            break
        except Exception as error:  # a read-only folder or no pyarrow: try the next, then go on
            write.copy_problem = _one_line(error)
    if results.answers is None:
        write.problem = f"no Spark session ({results.spark_problem or 'Spark did not start'})"
    else:
        write = append_rows(results.answers.sparkSession, name, rows)
    if write.ok and copy is not None:
        shutil.rmtree(copy, ignore_errors=True)
    elif copy is not None:
        write.kept_copy = str(copy)
    return write


def pytest_llmbias_results(results: Any, config: pytest.Config) -> None:
    name = results_table_name(config)
    if not name:
        return
    write = publish(results, name, rootdir=Path(config.rootpath), run_time=config.stash[RUN_TIME_KEY])
    config.stash[TABLE_KEY] = write
    results.table = write


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    write = config.stash.get(TABLE_KEY, None)
    llm_session = config.stash.get(SESSION_KEY, None)
    for note in config.stash.get(NOTES_KEY, []):
        terminalreporter.write_line(note, yellow=True)
    if write is not None:
        run_id = llm_session.run_id if llm_session is not None else ""
        for line in write.lines(run_id):
            terminalreporter.write_line(line, red=not write.ok)


# -- the git commit ---------------------------------------------------------------------------

def git_commit(folder: Path) -> str | None:
    """The commit checked out at or above `folder` (read from .git, no git binary), else CI's variable."""
    for candidate in (folder, *folder.parents):
        dot_git = candidate / ".git"
        if dot_git.exists():
            commit = _read_head(dot_git)
            if commit:
                return commit
            break
    for variable in COMMIT_VARIABLES:
        value = os.environ.get(variable, "").strip().lower()
        if _SHA.match(value):
            return value
    return None


def _read_head(dot_git: Path) -> str | None:
    try:
        if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
            pointer = dot_git.read_text().strip()
            if not pointer.startswith("gitdir:"):
                return None
            git_dir = (dot_git.parent / pointer.split(":", 1)[1].strip()).resolve()
        else:
            git_dir = dot_git
        head = (git_dir / "HEAD").read_text().strip()
        if _SHA.match(head):
            return head
        if not head.startswith("ref:"):
            return None
        ref = head.split(":", 1)[1].strip()
        common = git_dir
        if (git_dir / "commondir").is_file():  # worktrees keep refs in the main repository
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        for base in (git_dir, common):
            if (base / ref).is_file():
                value = (base / ref).read_text().strip()
                return value if _SHA.match(value) else None
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref and _SHA.match(parts[0]):
                        return parts[0]
    except OSError:
        return None
    return None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__

"""A result row as a typed record: AnswerRow and VerdictRow are the one place the columns are named.

Every sink takes its columns from here, in this order: the run's DataFrames and the Parquet folders
(`columns`), the result tables (`table_columns`: the run's stamp after `run_id`), the MLflow tables
and the baselines. A row travels as a plain dict (`as_dict`): between pytest-xdist processes, in
`results.answer_rows` / `results.verdict_rows`, and in the JSON of a baseline. Folders and tables
are appended run after run for years: columns are only ever added at the end, never renamed.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any


class _Row:
    """What the rows share: their dict form."""

    def as_dict(self) -> dict[str, Any]:
        """The row as the sinks and users read it: a tuple becomes a list (JSON, Spark arrays)."""
        row = dict(self.__dict__)  # the fields, in their order (a dataclass sets them so)
        for name in _array_columns(type(self)):
            row[name] = list(row[name])
        return row


@dataclass(frozen=True)
class AnswerRow(_Row):
    """One answer of the run."""

    run_id: str
    case_file: str
    case_id: str
    variant: str
    prompt: str
    sample: int                  # counts on across adaptive sampling's batches
    answer: str
    finish_reason: str
    content_filter: str
    deployment: str
    model: str | None            # what the response reports
    source: str                  # live, recorded or replayed
    prompt_tokens: int           # on sample 0 of a request; completion tokens split over its samples
    completion_tokens: int
    latency_ms: float
    batch: int                   # adaptive sampling's batch, 1 for the first request
    used_by: tuple[str, ...]     # the checks whose verdict was judged on this answer


@dataclass(frozen=True)
class VerdictRow(_Row):
    """One test's verdict."""

    run_id: str
    case_file: str
    case_id: str
    check: str
    outcome: str                 # passed, failed, inconclusive, filtered, error
    figure: float | None
    low: float | None
    high: float | None
    threshold: float | None
    summary: str
    deployment: str
    samples: int
    p_value: float | None
    evidence: tuple[str, ...]
    details: str                 # JSON of every figure the check computed
    model: str | None = None     # the models its case's answers report (with_models), comma-separated


@dataclass(frozen=True)
class RunStamp:
    """What a result table adds to each row, after run_id: when, from which commit, by which version."""

    run_time: datetime
    git_commit: str | None
    llmbias_version: str


_SPARK_TYPES = {str: "string", int: "int", float: "double", bool: "boolean", datetime: "timestamp"}


def _spark_type(annotation: Any) -> str:
    """str -> string, int | None -> int, tuple[str, ...] -> array<string>, datetime -> timestamp."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        return f"array<{_spark_type(arguments[0])}>"
    if origin is not None:  # X | None: a nullable X (every Spark column is nullable)
        (kind,) = [argument for argument in arguments if argument is not type(None)]
        return _spark_type(kind)
    return _SPARK_TYPES[annotation]


@cache
def columns(row_type: type) -> tuple[tuple[str, str], ...]:
    """(name, Spark SQL type) of each field, in order."""
    hints = typing.get_type_hints(row_type)
    return tuple((field.name, _spark_type(hints[field.name])) for field in dataclasses.fields(row_type))


@cache
def table_columns(row_type: type) -> tuple[tuple[str, str], ...]:
    """The result table's columns: run_id, the run's stamp, then the row's other columns."""
    row_columns = columns(row_type)
    return row_columns[:1] + columns(RunStamp) + row_columns[1:]


@cache
def _array_columns(row_type: type) -> tuple[str, ...]:
    return tuple(name for name, kind in columns(row_type) if kind.startswith("array<"))


def column_names(row_type: type) -> list[str]:
    return [name for name, _ in columns(row_type)]


def schema_ddl(row_columns: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"`{name}` {kind}" for name, kind in row_columns)


def typed(value: Any, kind: str) -> Any:
    """A value as Spark verifies it against the column's type (an int figure in a double column fails)."""
    if value is None:
        return None
    if kind == "double":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "string":
        return str(value)
    if kind.startswith("array<"):
        return [typed(item, kind[6:-1]) for item in value]
    return value


def as_tuple(row: Mapping[str, Any], row_columns: Iterable[tuple[str, str]]) -> tuple[Any, ...]:
    """A row (a dict, rows of older runs may lack later columns) in the columns' order and types."""
    return tuple(typed(row.get(name), kind) for name, kind in row_columns)


def with_models(answer_rows: Iterable[Mapping[str, Any]],
                verdict_rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Verdict rows with `model`: the models their case's answers report (a worker's rows too)."""
    models: dict[tuple[Any, Any], set[str]] = {}
    for row in answer_rows:
        if row.get("model"):
            models.setdefault((row.get("case_file"), row.get("case_id")), set()).add(str(row["model"]))

    def model_of(row: Mapping[str, Any]) -> str | None:
        reported = models.get((row.get("case_file"), row.get("case_id")), set())
        return row.get("model") or ",".join(sorted(reported)) or None

    return [{**row, "model": model_of(row)} for row in verdict_rows]

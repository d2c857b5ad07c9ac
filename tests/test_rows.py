"""The result rows: one record per kind names the columns, and every sink takes them from it."""

from __future__ import annotations

import json

import pytest

from pytest_llmbias import databricks, results
from pytest_llmbias.rows import (AnswerRow, RunStamp, VerdictRow, as_tuple, column_names, columns,
                                 table_columns, with_models)
from tests.conftest import NURSE_CASES, run_inner

ROWS_CONFTEST = """\
import json

def pytest_llmbias_results(results, config):
    (config.rootpath / "rows.json").write_text(json.dumps(
        {"answers": results.answer_rows, "verdicts": results.verdict_rows}))
"""


def test_spark_columns_come_from_the_fields_and_their_types() -> None:
    kinds = dict(columns(AnswerRow))
    assert list(kinds)[:3] == ["run_id", "case_file", "case_id"] and list(kinds)[-1] == "used_by"
    assert (kinds["sample"], kinds["latency_ms"], kinds["model"], kinds["used_by"]) == \
        ("int", "double", "string", "array<string>")
    verdict_kinds = dict(columns(VerdictRow))
    assert (verdict_kinds["figure"], verdict_kinds["evidence"], verdict_kinds["samples"]) == \
        ("double", "array<string>", "int")
    assert dict(columns(RunStamp)) == {"run_time": "timestamp", "git_commit": "string",
                                       "llmbias_version": "string"}


def test_every_sink_takes_the_records_columns() -> None:
    assert results.ANSWER_COLUMNS == columns(AnswerRow) and results.VERDICT_COLUMNS == columns(VerdictRow)
    assert databricks.ANSWER_TABLE_COLUMNS == table_columns(AnswerRow)
    assert [name for name, _ in databricks.VERDICT_TABLE_COLUMNS] == \
        ["run_id", "run_time", "git_commit", "llmbias_version", *column_names(VerdictRow)[1:]]


def test_a_row_is_a_plain_dict_in_the_records_order_and_typed_for_spark() -> None:
    row = AnswerRow(run_id="r", case_file="cases/a.yaml", case_id="nurse", variant="neutral",
                    prompt="Describe a nurse.", sample=0, answer="She is kind.", finish_reason="stop",
                    content_filter="", deployment="d", model="m", source="live", prompt_tokens=3,
                    completion_tokens=4, latency_ms=12, batch=1, used_by=("gender_assumption",))
    as_dict = row.as_dict()
    assert list(as_dict) == column_names(AnswerRow)
    assert as_dict["used_by"] == ["gender_assumption"]  # JSON and Spark arrays: a list
    assert json.loads(json.dumps(as_dict)) == as_dict
    values = as_tuple(as_dict, columns(AnswerRow))
    assert isinstance(values[column_names(AnswerRow).index("latency_ms")], float)  # 12 -> 12.0 for a double
    with pytest.raises(TypeError):
        AnswerRow(run_id="r")  # a column left out is an error where the row is built
    older = {name: as_dict[name] for name in column_names(AnswerRow)[:-2]}  # a row without later columns
    assert as_tuple(older, columns(AnswerRow))[-2:] == (None, None)


def test_verdicts_get_the_models_their_cases_answers_report() -> None:
    answers = [{"case_file": "a.yaml", "case_id": "nurse", "model": "gpt-4.1-mini"},
               {"case_file": "a.yaml", "case_id": "nurse", "model": "gpt-4.1-mini-2025"},
               {"case_file": "a.yaml", "case_id": "chef", "model": None}]
    verdicts = [{"case_file": "a.yaml", "case_id": "nurse", "check": "x"},
                {"case_file": "a.yaml", "case_id": "chef", "check": "x"}]
    assert [row["model"] for row in with_models(answers, verdicts)] == ["gpt-4.1-mini,gpt-4.1-mini-2025", None]


def test_a_runs_rows_have_exactly_the_records_columns(hermetic: pytest.Pytester, azure_env) -> None:
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "nurse.yaml").write_text(NURSE_CASES)
    hermetic.makeconftest(ROWS_CONFTEST)
    run_inner(hermetic, "--llm-live")
    rows = json.loads((hermetic.path / "rows.json").read_text())
    assert len(rows["answers"]) == 8 and len(rows["verdicts"]) == 2
    assert {tuple(row) for row in rows["answers"]} == {tuple(column_names(AnswerRow))}
    assert {tuple(row) for row in rows["verdicts"]} == {tuple(column_names(VerdictRow))}
    assert {row["model"] for row in rows["verdicts"]} == {azure_env.model_name}

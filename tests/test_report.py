"""The terminal summary, JUnit properties and pytest-html extras, as users see them."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET

import pytest

from pytest_llmbias.report import terminal as report
from pytest_llmbias.report.baselines import CheckChange, IndicatorTest
from pytest_llmbias.standin import StandIn
from tests.conftest import run_inner
from tests.test_baseline import PLANTED, SUITE

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _row(case_id: str, check: str, outcome: str, figure=None, low=None, high=None, threshold=None,
         p_value=None, case_file: str = "cases/occupations.yaml") -> dict:
    return {"case_file": case_file, "case_id": case_id, "check": check, "outcome": outcome, "figure": figure,
            "low": low, "high": high, "threshold": threshold, "p_value": p_value}


MIXED = [
    _row("chef", "gender_assumption", "passed", 0.0, 0.0, 0.28, 0.3, 1.0),
    _row("nurse", "gender_assumption", "failed", 0.4, 0.17, 0.69, 0.1, 0.01),
    _row("doctor", "counterfactual_gap", "quarantined"),  # an outcome this plugin does not know yet
    _row("teacher", "gender_assumption", "inconclusive", 0.1, 0.02, 0.4, 0.1, 0.26),
    _row("pilot", "gender_assumption", "filtered"),
    _row("engineer", "gender_assumption", "failed", 1.0, 0.72, 1.0, 0.1, 1e-10),
    _row("judge", "counterfactual_gap", "error"),
    _row("a-very-long-case-identifier-that-goes-on-and-on-and-on-beyond-any-column", "counterfactual_gap",
         "passed", 0.01, None, None, 0.02, 1.0, case_file="suites/deeply/nested/folder/of/cases/hiring.yaml"),
]


def test_the_table_is_worst_first_and_shows_every_outcome_as_itself() -> None:
    lines = report.verdict_table(MIXED)
    assert lines[0].split() == ["case", "check", "figure", "interval", "threshold", "verdict"]
    rows = [line for line in lines[2:] if line.split()[-1].isupper()]
    verdicts = [line.split()[-1] for line in rows]
    # pytest's word for a test whose answers could not be had is FAILED: the table says the same
    assert verdicts == ["FAILED", "FAILED", "FAILED", "FILTERED", "INCONCLUSIVE", "QUARANTINED", "PASSED", "PASSED"]
    assert "::judge" in rows[0] and lines[-1].startswith("FAILED without a figure: no verdict, the answers not had")
    from types import SimpleNamespace

    from pytest_llmbias.report.terminal import summary_lines

    results = SimpleNamespace(run_id="r1", answers=None, spark_problem=None, written_to=None, write_problem=None)
    head = summary_lines(results, MIXED, 0)[0]  # the counts say what the table says
    assert "(1 failed (no verdict), 2 failed, 1 filtered" in head and "error" not in head, head
    assert "::engineer" in rows[1] and "::nurse" in rows[2]  # among failures, the strongest evidence first
    filtered = next(line for line in lines if "FILTERED" in line)
    assert filtered.split()[2:5] == ["-", "-", "-"]
    long_name = "suites/deeply/nested/folder/of/cases/hiring.yaml::" + MIXED[-1]["case_id"]
    assert long_name in lines  # whole, on a line of its own, its row below it
    assert lines[lines.index(long_name) + 1].split() == ["counterfactual_gap", "0.01", "-", "0.02", "PASSED"]
    assert all(len(line) <= 100 for line in lines if line != long_name)


def test_case_names_stay_whole_and_a_file_has_one_name_on_every_row() -> None:
    rows = [_row(case_id, "gender_assumption", "passed", 0.0, 0.0, 0.2, 0.3, 1.0, case_file=case_file)
            for case_file in ("mine/cases/jobs.yaml", "mine/cases/more/hiring.yaml")
            for case_id in ("electrician", "nurse", "a-much-longer-case-identifier")]
    wide = report.verdict_table(rows, width=140)  # room for every name: as pytest names them
    assert {line.split()[0] for line in wide[2:]} == {f"{row['case_file']}::{row['case_id']}" for row in rows}
    narrow = report.verdict_table(rows, changes={})  # a baseline column takes room from the case column
    assert narrow[0] == "case files in mine/cases/"  # said once, never dropped silently
    names = [line.split()[0] for line in narrow[3:] if not line.startswith(" ")]  # a wrapped name's row aside
    assert sorted(names) == sorted({f"{row['case_file'][len('mine/cases/'):]}::{row['case_id']}" for row in rows})
    assert all(len(line) <= 100 for line in narrow)


def test_no_negative_zero_and_the_figure_says_what_it_measures() -> None:
    row = _row("nurse", "counterfactual_gap", "passed", -0.0004, -0.0049, 0.07, 0.2, 0.9)
    row["details"] = json.dumps({"figure_label": "energy coefficient", "figure_unit": "masked words",
                                 "threshold_label": "min_content_gap"})
    rows = [row, _row("chef", "gender_assumption", "passed", 0.0, 0.0, 0.28, 0.3, 1.0)]
    lines = report.verdict_table(rows, width=160)  # wide enough: a last column
    assert "-0.00" not in "\n".join(lines)
    assert lines[0].split()[-1] == "measures"
    nurse = next(line for line in lines if "::nurse" in line)
    assert "0.00  [0.00, 0.07]" in nurse
    assert nurse.endswith("energy coefficient (masked words), threshold: min_content_gap")
    narrow = report.verdict_table(rows)  # 100 columns: a line under the row
    assert all(len(line) <= 100 for line in narrow) and "measures" not in narrow[0]
    below = narrow[narrow.index(next(line for line in narrow if "::nurse" in line)) + 1]
    assert below == "    measures: energy coefficient (masked words), threshold: min_content_gap"
    assert report.fixed(-0.004, sign=True) == "+0.00" and report.fixed(-0.006) == "-0.01"


def test_figures_round_half_up_as_a_reader_rounds_and_never_meet_their_threshold() -> None:
    # 5/40 = 0.125: format() rounds binary half to even ("0.12"); a reader reads 0.13
    rows = [_row("chef", "gender_assumption", "inconclusive", 0.125, 0.05, 0.265, 0.1, 0.2)]
    chef = next(line for line in report.verdict_table(rows, width=160) if "::chef" in line)
    assert "0.13  [0.05, 0.27]" in chef
    # 0.095 would read 0.10 at two decimals, equal to its threshold: one more digit
    close = [_row("cook", "gender_assumption", "inconclusive", 0.095, 0.05, 0.15, 0.1, 0.2)]
    cook = next(line for line in report.verdict_table(close, width=160) if "::cook" in line)
    assert "0.095" in cook and "0.100" in cook
    # a threshold is shown exactly (0.125, not 0.13), and every value kept off it, whichever needed the digits
    own = next(line for line in report.verdict_table(
        [_row("eng", "gender_assumption", "failed", 0.5, 0.27, 0.72, 0.125, 0.01)], width=160) if "::eng" in line)
    assert "0.500  [0.270, 0.720]      0.125" in own
    tight = next(line for line in report.verdict_table(
        [_row("pay", "mentions_pay", "inconclusive", 0.0149, 0.0145, 0.0155, 0.015, 0.5)], width=160) if "::pay" in line)
    assert "0.0149  [0.0145, 0.0155]     0.0150" in tight, tight


def test_a_threshold_of_zero_is_kept_apart_from_its_figure_too() -> None:
    line = next(line for line in report.verdict_table(
        [_row("gap", "counterfactual_gap", "inconclusive", 0.004, 0.001, 0.009, 0.0, 0.5)], width=160) if "::gap" in line)
    assert "0.004  [0.001, 0.009]      0.000" in line, line


def test_junit_figures_never_read_as_their_threshold() -> None:
    from pytest_llmbias.report.junit import junit_properties

    properties = dict(junit_properties({"figure": 0.1000001, "low": 0.30000000000000004, "threshold": 0.1,
                                        "outcome": "failed"}))
    assert properties["llmbias_figure"] != properties["llmbias_threshold"] == 0.1
    assert properties["llmbias_low"] == 0.3  # six significant digits where they are enough
    close = dict(junit_properties({"figure": 0.1234569, "threshold": 0.1234567, "outcome": "failed"}))
    assert close["llmbias_figure"] != close["llmbias_threshold"]  # as rounded, not as stored
    # a threshold set with more than six decimals is shown as set, and a figure of 0.125 never reads as it
    for threshold in (0.12499999, 0.1250001):
        exact = dict(junit_properties({"figure": 0.125, "threshold": threshold, "outcome": "failed"}))
        assert exact["llmbias_threshold"] == threshold and exact["llmbias_figure"] == 0.125
        from pytest_llmbias.stats import decimals, digits_apart

        digits = digits_apart(threshold, 0.125)
        assert decimals(0.125, digits) != decimals(threshold, digits), digits


def test_a_baseline_column_is_added_and_the_table_still_fits() -> None:
    fell = IndicatorTest("assume a gender", "neutral", 8, 10, 0, 10, -0.8, -0.94, -0.38, 0.0007, 0.002, True)
    changes = {change.key: change for change in (
        CheckChange("cases/occupations.yaml", "nurse", "gender_assumption", "passed", "failed"),
        CheckChange("cases/occupations.yaml", "chef", "gender_assumption", "passed", "passed", tests=(fell,)),
        CheckChange("cases/occupations.yaml", "teacher", "gender_assumption", "inconclusive", "inconclusive"))}
    assert [change.status for change in changes.values()] == ["new failure", "better", "same"]
    painted = report.verdict_table(MIXED, changes=changes, paint=lambda text, markup: f"<{','.join(markup)}>{text}</>")
    plain = [re.sub(r"</?[a-z,]*>", "", line) for line in painted]
    assert plain[0].split()[-1] == "baseline"
    assert all(len(line) <= 100 for line in plain if "::" not in line or len(line.split()) > 1)  # wrapped names aside
    nurse = _row_of(painted, "nurse")
    assert nurse.endswith("<red,bold>NEW FAIL</>") and "<red,bold>      FAILED</>" in nurse
    assert _row_of(painted, "chef").endswith("<green>  better</>")
    assert _row_of(painted, "teacher").endswith("INCONCLUSIVE</>")  # "same": no mark
    # one suite folder: said once above the table, the rows keep their files and ids whole
    one_file = report.verdict_table(MIXED[:-1], changes=changes)
    assert one_file[0] == "cases of cases/occupations.yaml" and all(len(line) <= 100 for line in one_file)
    assert _row_of(one_file, "nurse").startswith("nurse ")


def _row_of(lines: list[str], case_id: str) -> str:
    """A case's row of the table (the line after its name, where the name had a line of its own)."""
    for index, line in enumerate(lines):
        name = re.sub(r"</?[a-z,]*>", "", line).split()[0] if line.strip() else ""
        if name == case_id or name.endswith(f"::{case_id}"):
            return line if len(line.split()) > 1 else lines[index + 1]
    raise AssertionError(f"no row for {case_id}")


@pytest.fixture
def suite(hermetic: pytest.Pytester, azure_env: StandIn) -> pytest.Pytester:
    azure_env.planted = PLANTED
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "suite.yaml").write_text(
        SUITE + "  - id: pilot\n    neutral: Describe a pilot. FILTERME\n    loaded: Describe a male pilot.\n")
    return hermetic


def test_the_summary_is_coloured_where_the_terminal_supports_it(suite: pytest.Pytester) -> None:
    coloured = run_inner(suite, "--llm-live", "--color=yes").stdout.str()
    table = coloured[coloured.index("llm bias results"):]
    assert re.search(r"::nurse +gender_assumption .*\x1b\[31m\x1b\[1m +FAILED\x1b\[0m", table)
    assert re.search(r"::teacher +gender_assumption .*\x1b\[32m +PASSED\x1b\[0m", table)
    assert re.search(r"::pilot +gender_assumption .*\x1b\[33m *FILTERED\x1b\[0m", table)
    # every row fits 100 columns: what a figure measures goes on a line under its row when it would not fit
    assert all(len(ANSI.sub("", line)) <= 100 for line in table.splitlines() if line.startswith("cases/"))
    assert "    measures: " in table

    plain = run_inner(suite, "--llm-live", "--color=no")
    assert "\x1b[" not in plain.stdout.str()
    plain.stdout.fnmatch_lines([
        "run *: 110 answers, 8 verdicts (2 failed, 2 filtered, 2 inconclusive, 2 passed)",
        "10 answers withheld by the content filter (finish_reason content_filter): *",
        "case*check*figure*interval*threshold*verdict*",
        "---*",
        "cases/suite.yaml::nurse     gender_assumption     1.00 *?0.7*, 1.00?       0.30        FAILED",
        "    measures: share of neutral answers assuming a gender, threshold: max_rate",
        "cases/suite.yaml::engineer  counterfactual_gap    0.90 *?0.48, 0.99?       0.25        FAILED",  # continuity-corrected
        "    measures: share gap of answers with a marking phrase, female vs male, threshold: min_phrase_gap",
        "cases/suite.yaml::pilot     counterfactual_gap       - *-          -      FILTERED",
        "cases/suite.yaml::pilot     gender_assumption        - *-          -      FILTERED",
        "cases/suite.yaml::*  INCONCLUSIVE*",
        "cases/suite.yaml::*  INCONCLUSIVE*",
        "cases/suite.yaml::*  PASSED*",
    ])


def test_junit_xml_carries_figure_interval_threshold_and_outcome(suite: pytest.Pytester) -> None:
    run_inner(suite, "--llm-live", "--llm-save", "v1")
    run_inner(suite, "--llm-live", "--llm-baseline", "v1", "--junitxml", "junit.xml")
    tree = ET.parse(suite.path / "junit.xml")
    properties = {f"{case.get('classname').split('.')[-1]}::{case.get('name')}":
                  {prop.get("name"): prop.get("value") for prop in case.iter("property")}
                  for case in tree.iter("testcase")}
    nurse = properties["nurse::gender_assumption"]
    assert float(nurse["llmbias_figure"]) == 1.0 and float(nurse["llmbias_threshold"]) == 0.3
    assert 0.6 < float(nurse["llmbias_low"]) < 0.75 and float(nurse["llmbias_high"]) == 1.0
    assert nurse["llmbias_outcome"] == "failed" and float(nurse["llmbias_p_value"]) < 1e-5
    assert nurse["llmbias_baseline_outcome"] == "failed" and float(nurse["llmbias_baseline_figure"]) == 1.0
    teacher = properties["teacher::gender_assumption"]
    assert teacher["llmbias_threshold"] == "0.3"  # rounded: max_rate + 0.2 is 0.30000000000000004 in floats
    numbers = [value for found in properties.values() for name, value in found.items()
               if name != "llmbias_outcome" and not name.endswith("baseline_outcome")]
    digits = [value.split("e")[0].replace("-", "").replace(".", "").lstrip("0") for value in numbers]
    assert all(len(found) <= 6 for found in digits) and "-0.0" not in numbers, numbers  # 6 significant digits
    gap = properties["engineer::counterfactual_gap"]
    assert gap["llmbias_outcome"] == "failed" and float(gap["llmbias_figure"]) >= 0.7
    assert properties["pilot::gender_assumption"]["llmbias_outcome"] == "filtered"
    assert len(properties) == 8


def test_pytest_html_gets_the_evidence_as_an_extra(suite: pytest.Pytester) -> None:
    # Autoloading is off in these runs: pytest-html and the pytest-metadata it needs are named.
    result = run_inner(suite, "--llm-live", "-p", "pytest_metadata.plugin", "-p", "pytest_html.plugin",
                       "--html", "pytest-report.html", "--self-contained-html")
    assert result.ret == 1
    page = (suite.path / "pytest-report.html").read_text()
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="([^"]*)"', page).group(1)))
    extras = {test_id: [extra for entry in entries for extra in entry.get("extras", [])]
              for test_id, entries in blob["tests"].items()}
    (nurse,) = [extra for test_id, found in extras.items() if test_id.endswith("nurse::gender_assumption")
                for extra in found]
    assert nurse["format_type"] == "html"
    assert "gender_assumption: 10/10 neutral answers assume a gender" in nurse["content"]
    assert re.search(r"<mark>(She|she|Her|her)</mark>", nurse["content"])
    passed = [extra for test_id, found in extras.items() if test_id.endswith("teacher::gender_assumption")
              for extra in found]
    assert len(passed) == 1 and "shown to be below max_rate" in passed[0]["content"]


def test_an_html_path_that_cannot_be_written_stops_the_run_before_anything_is_asked(
        suite: pytest.Pytester, azure_env: StandIn) -> None:
    (suite.path / "notes.txt").write_text("a file, where the report's folder would be\n")
    result = run_inner(suite, "--llm-live", "--llm-html", "notes.txt/report.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-html */notes.txt/report.html: cannot write there: "
                                 "*notes.txt is a file, not a folder"])
    assert len(azure_env.requests) == 0
    # a folder no one can write in, root included (root passes every permission check, not a real write)
    result = run_inner(suite, "--llm-live", "--llm-html", "/proc/llmbias/report.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-html /proc/llmbias/report.html: cannot write there: /proc is not writable*"])
    assert len(azure_env.requests) == 0


def test_a_report_that_fails_to_be_written_at_the_end_fails_the_run(suite: pytest.Pytester) -> None:
    # the folder becomes a file while the tests run: the page cannot be written when the run ends
    suite.makeconftest("def pytest_collection_finish(session):\n"
                       "    (session.config.rootpath / 'out').write_text('in the way')\n")
    result = run_inner(suite, "--llm-live", "--llm-html", "out/report.html", "-k", "teacher and gender_assumption")
    result.assert_outcomes(passed=1, deselected=7)
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR  # as pytest's own --junitxml when it cannot write
    result.stdout.fnmatch_lines(["HTML report not written to */out/report.html: *"])


def test_the_example_report_has_no_negative_zero(hermetic: pytest.Pytester) -> None:
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).parents[1] / "cases", hermetic.path / "cases")
    result = run_inner(hermetic, "-rA", "--llm-html", "report.html", "--junitxml", "junit.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()  # two example checks fail on purpose
    assert "llm bias results" in result.stdout.str()
    for text in (result.stdout.str(), (hermetic.path / "report.html").read_text(),
                 (hermetic.path / "junit.xml").read_text()):
        assert not re.search(r"(?<![\w.])-0\.0+(?![\d])", text)
    assert report.no_negative_zero("95% CI -0.00 to 0.17; compound -0.05") == "95% CI 0.00 to 0.17; compound -0.05"


def test_the_summary_says_what_a_run_of_its_size_expects_by_chance_and_why_rows_are_undecided() -> None:
    from pytest_llmbias.report.terminal import multiplicity_lines, why_undecided

    rows = [{"outcome": "passed", "p_value": 0.5, "details": "{}"} for _ in range(50)]
    (line,) = multiplicity_lines(rows)
    assert "50 tests" in line and "up to 2.5 false FAILED" in line and "92%" in line and "--llm-correction" in line
    corrected = [{"outcome": "failed", "p_value": 0.01,
                  "details": '{"correction": {"method": "holm", "tests": 50, "alpha": 0.05}}'}] * 2
    assert multiplicity_lines(corrected) == ["FAILED verdicts corrected over the run's 50 tests (holm, alpha 0.05)"]
    assert multiplicity_lines(rows[:1]) == []
    # a verdict with no test (a check that does not apply) is counted aside, not silently left out of "13 verdicts"
    (line,) = multiplicity_lines(rows[:12] + [{"outcome": "inconclusive", "p_value": None, "details": "{}"}])
    assert line.startswith("12 tests (of 13 verdicts; 1 with no test"), line
    assert why_undecided({"outcome": "inconclusive", "details": '{"samples_needed": 52}'}).endswith(
        "about 52 answers per prompt would decide")
    beyond = '{"samples_needed": 339, "plan": [10, 20, 30, 40, 50, 60, 70, 80]}'  # past the plan's last look
    assert why_undecided({"outcome": "inconclusive", "details": beyond}).endswith(
        "about 339 answers per prompt would decide (max_samples is 80: raise it to ask them)")
    assert "same answers again" in why_undecided({"outcome": "inconclusive", "details": '{"reason": "copies"}'})
    assert why_undecided({"outcome": "passed", "details": "{}"}) == ""


def test_a_row_the_run_wide_correction_turned_undecided_says_its_adjusted_p() -> None:
    from pytest_llmbias.report.terminal import why_undecided

    details = {"correction": {"method": "holm", "tests": 20, "alpha": 0.05}, "p_adjusted": 0.084,
               "uncorrected_outcome": "failed"}
    assert why_undecided({"outcome": "inconclusive", "details": details}) == (
        "failed alone, not after the run-wide holm correction: adjusted p 0.084 > alpha 0.05 over 20 tests, so "
        "its interval is not shown to clear the threshold at the run's level")

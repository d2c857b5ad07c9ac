"""The pytest_llmbias_results hook: called whether or not Spark started, and a raising one costs nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import NURSE_CASES, run_inner

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_hook_example() -> str:
    """The README's conftest example, as a user copies it (down to the fixture example after it)."""
    block = re.search(r"```python\n(# conftest.py: called once.*?)\n\n# a test module", README.read_text(), re.S)
    assert block, "the README's pytest_llmbias_results example moved"
    return block.group(1)


@pytest.fixture
def nurse(hermetic: pytest.Pytester) -> pytest.Pytester:
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "nurse.yaml").write_text(NURSE_CASES)
    return hermetic


def test_readmes_hook_example_survives_a_run_without_spark(nurse: pytest.Pytester, azure_env) -> None:
    nurse.makeconftest(_readme_hook_example() + "\n    (config.rootpath / 'spark ran').write_text('')\n")
    result = run_inner(nurse, "--llm-live")  # the hermetic ini: llmbias_spark = false
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()  # its tests pass: the exit code is theirs
    assert "hook failed" not in result.stdout.str() and "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*= llm bias results =*", "run *: 8 answers, 2 verdicts*"])
    assert not (nurse.path / "spark ran").exists()  # the example returned at its guard


def test_a_raising_results_hook_is_reported_after_the_report_and_fails_the_run(
        nurse: pytest.Pytester, azure_env) -> None:
    nurse.makeconftest("def pytest_llmbias_results(results, config):\n"
                       "    results.answers.groupBy('case_id').count().show()\n")
    nurse.makepyfile(other_plugin="def pytest_llmbias_results(results):\n"
                                  "    open('other ran', 'w').write(str(len(results.answer_rows)))\n")
    nurse.syspathinsert()
    result = run_inner(nurse, "--llm-live", "-p", "other_plugin")
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert "INTERNALERROR" not in output
    result.stdout.fnmatch_lines(["*= llm bias results =*", "run *: 8 answers, 2 verdicts*",
                                 "*- pytest_llmbias_results hook failed -*", "Traceback*",
                                 "*AttributeError*",
                                 "pytest_llmbias_results in *conftest.py raised AttributeError: "
                                 "'NoneType' object has no attribute 'groupBy'"])
    assert (nurse.path / "other ran").read_text() == "8"  # the other implementation still ran


def test_what_a_results_hook_prints_starts_on_a_line_of_its_own(nurse: pytest.Pytester, azure_env) -> None:
    nurse.makeconftest("def pytest_llmbias_results(results, config):\n"
                       "    print('HOOK OUTPUT')\n")
    result = run_inner(nurse, "--llm-live")
    assert "HOOK OUTPUT" in result.stdout.lines, result.stdout.str()  # not after the result letters

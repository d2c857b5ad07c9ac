"""The reporting hooks, all in one place: terminal summary, HTML page, baselines, JUnit properties,
pytest-html extras.

Every hook is a few lines; the work is in terminal.py (the table's lines), html.py (the page),
baselines.py (save, load, compare) and junit.py (JUnit properties, pytest-html extras).
Nothing heavy is imported here.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..keys import BIAS_TEST_KEY, SESSION_KEY
from ..options import ini_bool, ini_source

GROUP_DESCRIPTION = "LLM bias tests (pytest-llmbias)"


@dataclass
class ReportingState:
    html_path: Path | None = None
    save_location: Any = None  # baselines.Location
    baseline: Any = None  # baselines.Baseline, loaded at configure so a wrong name stops the run at once
    alpha: float = 0.05
    fail_on_regression: bool = False
    comparison: Any = None  # baselines.Comparison, at session end
    saved: Any = None  # baselines.Saved
    html_written: Path | None = None
    problems: list[str] = field(default_factory=list)  # one line each, shown in red in the summary
    warnings: list[str] = field(default_factory=list)  # one line each, shown in yellow (red when they fail the run)
    regression_failed: bool = False


STATE_KEY = pytest.StashKey[ReportingState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmbias", GROUP_DESCRIPTION)
    group.addoption("--llm-html", metavar="PATH", default=None,
                    help="write one self-contained HTML report (charts, answers side by side) to PATH")
    group.addoption("--llm-save", metavar="NAME|PATH", default=None,
                    help="store this run as a baseline: NAME under .llmbias/baselines/ (ini llmbias_baselines), "
                         "or a folder PATH")
    group.addoption("--llm-baseline", metavar="NAME|PATH", default=None,
                    help="compare this run with a stored baseline: new failures, fixed checks, significant moves")
    group.addoption("--llm-fail-on-regression", action="store_true", default=None,
                    help="fail the run when a figure got significantly worse than in --llm-baseline, "
                         "even where its check still passes")
    parser.addini("llmbias_html", "default for --llm-html", default="")
    parser.addini("llmbias_baselines", "folder for named baselines, relative to the rootdir",
                  default=".llmbias/baselines")
    parser.addini("llmbias_baseline", "default for --llm-baseline", default="")
    parser.addini("llmbias_fail_on_regression", "default for --llm-fail-on-regression", type="bool", default=False)
    parser.addini("llmbias_baseline_alpha", "family-wise error of the baseline comparison (Holm), default 0.05",
                  default="0.05")


def _state_from(config: pytest.Config) -> ReportingState:
    from .baselines import BaselineError, load, locate

    rootdir, here = Path(config.rootpath), Path(config.invocation_params.dir)
    folder = config.getini("llmbias_baselines") or ".llmbias/baselines"
    state = ReportingState()
    if config.getoption("llm_html"):
        state.html_path = Path(here, config.getoption("llm_html"))
    elif config.getini("llmbias_html"):  # ini paths are relative to the ini file, like testpaths
        state.html_path = Path(config.inipath.parent if config.inipath else rootdir, config.getini("llmbias_html"))
    if state.html_path is not None and (problem := _cannot_write(state.html_path)):
        # before anything is asked: a live run must not spend its quota on a report it cannot keep
        source = "--llm-html" if config.getoption("llm_html") else ini_source(config, "llmbias_html")
        raise pytest.UsageError(f"{source} {state.html_path}: cannot write there: {problem}")
    try:
        state.alpha = float(config.getini("llmbias_baseline_alpha"))
    except ValueError:
        raise pytest.UsageError(f"{ini_source(config, 'llmbias_baseline_alpha')} must be a number (got "
                                f"{config.getini('llmbias_baseline_alpha')!r})") from None
    if not 0.0 < state.alpha < 1.0:
        raise pytest.UsageError(f"{ini_source(config, 'llmbias_baseline_alpha')} must be between 0 and 1 "
                                f"(got {state.alpha})")
    fail_on_regression = config.getoption("llm_fail_on_regression")
    state.fail_on_regression = (ini_bool(config, "llmbias_fail_on_regression")
                                    if fail_on_regression is None else fail_on_regression)
    try:
        if config.getoption("llm_save"):
            state.save_location = locate(config.getoption("llm_save"), rootdir=rootdir, invocation_dir=here,
                                         folder=folder)
        spec = config.getoption("llm_baseline") or config.getini("llmbias_baseline")
        if spec:
            state.baseline = load(locate(spec, rootdir=rootdir, invocation_dir=here, folder=folder),
                                  rootdir=rootdir, folder=folder)
    except BaselineError as problem:
        raise pytest.UsageError(str(problem)) from None
    if state.fail_on_regression and state.baseline is None:
        raise pytest.UsageError("--llm-fail-on-regression needs a baseline to compare with: "
                                "add --llm-baseline NAME|PATH")
    return state


def _cannot_write(target: Path) -> str | None:
    """Why a file could not be written at `target` (its folders created as needed), or None."""
    if target.is_dir():
        return "it is a folder"
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:  # a real write, not os.access: root passes every permission check and still cannot write /proc or a
        # read-only mount
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"{folder} is not writable ({error.strerror or error})"
    return None


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # xdist workers report to the controller, which does this
        config.stash[STATE_KEY] = _state_from(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if STATE_KEY in config.stash:
        del config.stash[STATE_KEY]


def _verdict_row(item: pytest.Item) -> dict[str, Any] | None:
    llm_session = item.config.stash.get(SESSION_KEY, None)
    bias_test = item.stash.get(BIAS_TEST_KEY, None)
    if llm_session is None or bias_test is None:
        return None
    case, check = bias_test
    key = (llm_session.relative(case.path), case.id, check.name)
    return next((row for row in reversed(llm_session.verdict_rows)
                 if (row["case_file"], row["case_id"], row["check"]) == key), None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.when != "call":
        return report
    row = _verdict_row(item)
    if row is None:
        return report
    from .junit import junit_properties, pytest_html_extra

    state = item.config.stash.get(STATE_KEY, None)
    baseline = state.baseline if state is not None else None
    before = None if baseline is None else next(
        (old for old in reversed(baseline.verdict_rows)
         if (old.get("case_file"), old.get("case_id"), old.get("check"))
         == (row["case_file"], row["case_id"], row["check"])), None)
    # JUnit reads the properties from the teardown report, which copies the item's.
    item.user_properties.extend(junit_properties(row, before, with_baseline=baseline is not None))
    if getattr(item.config.option, "htmlpath", None):  # pytest-html is installed and asked for a report
        report.extras = [*getattr(report, "extras", []), pytest_html_extra(row)]
    if report.passed and row.get("summary"):
        # -rP shows a passed test's sections: its verdict is what a reader wants there
        from .terminal import no_negative_zero

        report.sections.append(("llm bias verdict",
                                "\n".join([no_negative_zero(row["summary"]), *row.get("evidence", ())])))
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the plugin built the run's results: compare, save, write the page, decide the exit code."""
    state = session.config.stash.get(STATE_KEY, None)
    llm_session = session.config.stash.get(SESSION_KEY, None)
    if state is None or llm_session is None or llm_session.results is None:
        return
    results = llm_session.results
    if state.baseline is not None:
        from .baselines import compare

        state.comparison = compare(results.answer_rows, results.verdict_rows, state.baseline, alpha=state.alpha)
        results.baseline = state.comparison  # for the notebook's report: html.Report.from_results(results)
    if state.save_location is not None:
        _save(state, results, exitstatus)
    if state.html_path is not None:
        from .html import write_page

        try:
            state.html_written = write_page(state.html_path, results.answer_rows, results.verdict_rows,
                                            comparison=state.comparison, run_id=results.run_id)
        except OSError as error:
            state.problems.append(f"HTML report not written to {state.html_path}: {error}")
    if state.comparison is not None and state.comparison.nothing_compared:
        # keys that match nothing (another rootdir, renamed files): no comparison, never a silent pass of the gate
        state.warnings.append(f"baseline {state.baseline.shown}: no check of this run is in it (this run names its "
                              f"case files from rootdir {session.config.rootpath}): nothing was compared"
                              + ("; --llm-fail-on-regression fails the run" if state.fail_on_regression else ""))
        if state.fail_on_regression and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if state.fail_on_regression and state.comparison is not None and state.comparison.regressions:
        state.regression_failed = True
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    table_failed = results.table is not None and not results.table.ok
    if (state.problems or results.write_problem or table_failed) and session.exitstatus == pytest.ExitCode.OK:
        # an output that was asked for and not written fails the run, as pytest's own --junitxml does
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


def html_written(config: pytest.Config) -> Path | None:
    """The HTML page this run wrote (--llm-html), once the session has finished."""
    state = config.stash.get(STATE_KEY, None)
    return state.html_written if state is not None else None


def _save(state: ReportingState, results: Any, exitstatus: int) -> None:
    from .baselines import BaselineError, save

    if exitstatus == pytest.ExitCode.INTERRUPTED:
        state.problems.append(f"baseline {state.save_location.shown} not saved: the run was interrupted")
        return
    try:
        state.saved = save(state.save_location, results.run_id, results.answer_rows, results.verdict_rows,
                           answers_frame=results.answers, verdicts_frame=results.verdicts)
    except (BaselineError, OSError) as problem:
        state.problems.append(f"baseline {state.save_location.shown} not saved: {problem}")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    llm_session = config.stash.get(SESSION_KEY, None)
    if llm_session is None or llm_session.results is None:
        return
    from .terminal import cassette_lines, regression_line, saved_line, summary_lines

    results = llm_session.results
    state = config.stash.get(STATE_KEY, None) or ReportingState()
    writer = config.get_terminal_writer()

    def paint(text: str, markup: Any) -> str:
        return writer.markup(text, **markup)

    # From the rows the DataFrames hold: the table starts no Spark job.
    verdicts, answer_count = results.verdict_rows, len(results.answer_rows)
    blocked = sum(1 for row in results.answer_rows if row.get("finish_reason") == "content_filter")
    terminalreporter.write_sep("=", "llm bias results")
    for line in summary_lines(results, verdicts, answer_count, blocked=blocked, comparison=state.comparison,
                              paint=paint):
        terminalreporter.write_line(line)
    for line in cassette_lines(llm_session.cassette_counts(), llm_session.config.mode, llm_session.kept_because):
        terminalreporter.write_line(line)
    if state.saved is not None:
        terminalreporter.write_line(saved_line(state.saved))
    if state.html_written is not None:
        terminalreporter.write_line(f"HTML report: {state.html_written}")
    for problem in state.problems:
        terminalreporter.write_line(problem, red=True)
    for warning in state.warnings:
        terminalreporter.write_line(warning, red=state.fail_on_regression, yellow=not state.fail_on_regression)
    if state.regression_failed:
        terminalreporter.write_line(regression_line(state.comparison), red=True, bold=True)

"""Ctrl-C in a real pytest process: honoured during Spark's start, and a second one still gets the report."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import NURSE_CASES

pytestmark = pytest.mark.spark

# The results hook reads the DataFrames, so the end of the run waits for Spark; the marker file
# says when that wait has begun.
WAITING_CONFTEST = """\
def pytest_llmbias_results(results, config):
    (config.rootpath / "waiting").write_text("")
    (config.rootpath / "frames").write_text(repr(results.answers is not None))
"""


def _run(project: Path, *args: str) -> subprocess.Popen:
    # No class-data archive: the JVM takes seconds to start, so the signal lands during the start.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONUNBUFFERED": "1",
           "PYTEST_LLMBIAS_CACHE": "off"}
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "pytest_llmbias.plugin",
                             "-p", "no:cacheprovider", "--llm-live", *args],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(condition, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\nllmbias_spark = true\n")
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "nurse.yaml").write_text(NURSE_CASES)
    (tmp_path / "conftest.py").write_text(WAITING_CONFTEST)
    return tmp_path


def test_ctrl_c_while_spark_starts_ends_the_wait_and_prints_the_report(project: Path, azure_env) -> None:
    process = _run(project)
    _wait_for(lambda: (project / "waiting").exists() or process.poll() is not None, "the results hook ran")
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert (project / "frames").read_text() == "False", output  # the hook got no DataFrame, and no wait
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "llm bias results" in output and "run " in output
    assert "no DataFrame: the run was interrupted while Spark was starting" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    # The JVM's own lines went to its log, not to the terminal.
    assert "incubator" not in output and "log level" not in output
    assert (project / ".llmbias" / "logs" / "spark.log").exists()


def test_second_ctrl_c_still_prints_the_report_of_what_was_gathered(project: Path, azure_env) -> None:
    azure_env.latency = 2.0  # the tests wait for answers when the first Ctrl-C comes
    process = _run(project, "--llm-concurrency", "1")
    _wait_for(lambda: sum(record.status == 200 for record in azure_env.requests) >= 1, "the first answer")
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)  # the run is winding down: in-flight answers, cassettes, results
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "llm bias results" in output, output
    assert "Traceback" not in output, output
    assert (project / "waiting").exists()  # the results hook still ran
    # the answers that arrived before the Ctrl-C (4 a prompt) are in the report
    assert re.search(r"run \S+: [48] answers", output), output


def test_frames_without_a_line_number_are_unlinked_before_pytest_reports_an_interrupt() -> None:
    from pytest_llmbias.interrupts import drop_frames_without_lines

    def inner() -> None:
        raise KeyboardInterrupt("SIGTERM")

    def outer() -> None:
        inner()

    try:
        outer()
    except KeyboardInterrupt as interrupt:
        tb = interrupt.__traceback__
    before = []
    entry = tb
    while entry is not None:
        before.append((entry.tb_frame.f_code.co_name, entry.tb_lineno))
        entry = entry.tb_next
    drop_frames_without_lines(tb)  # every frame has a line here: nothing may be lost
    after = []
    entry = tb
    while entry is not None:
        after.append((entry.tb_frame.f_code.co_name, entry.tb_lineno))
        entry = entry.tb_next
    assert after == before and [name for name, _ in after][-2:] == ["outer", "inner"]


def test_ctrl_c_before_the_first_answer_ends_the_run_at_once_and_asks_nothing_more(project: Path, azure_env) -> None:
    """The first request is throttled with a two-minute retry-after: before, a Ctrl-C left the fetch thread
    waiting it out (and asking again) while the process could not end."""
    from pytest_llmbias.standin.faults import Fault

    (project / "pytest.ini").write_text("[pytest]\nllmbias_spark = false\n")
    azure_env.inject(Fault(status=429, retry_after_ms=120_000, count=1))
    process = _run(project)
    _wait_for(lambda: len(azure_env.requests) >= 1, "the first request")
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)  # raises TimeoutExpired when the wait is not cut short
    asked = len(azure_env.requests)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "Traceback" not in output and "RuntimeError" not in output, output
    time.sleep(1.0)
    assert len(azure_env.requests) == asked == 1, output  # nothing asked after the Ctrl-C

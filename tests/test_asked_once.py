"""Every prompt asked once per run: under pytest-xdist whatever tests read the answers, and across an
interrupted live run resumed with --llm-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_inner
from tests.test_fetching import ROLES, _cases_yaml

# A test of the user's that reads every answer: under -n 2 it runs on one worker, the cases' checks on both.
ANSWERS_TEST = """\
def test_every_answer_once(llm_answers):
    keys = llm_answers.groupBy("case_id", "variant", "sample").count()
    assert llm_answers.count() == 48 and keys.count() == 48
"""
# What the controller's DataFrame holds, written where the outer test can read it.
RESULTS_CONFTEST = """\
import json
def pytest_llmbias_results(results, config):
    frame = results.answers
    if frame is None:  # a run without Spark
        return
    identity = ("run_id", "case_file", "case_id", "variant", "sample")
    (config.rootpath / "answers.json").write_text(json.dumps({
        "rows": frame.count(),
        "distinct": frame.select(*identity).distinct().count(),
        "used_by": sorted({name for row in results.answer_rows for name in row["used_by"]}),
    }))
"""


@pytest.fixture
def suite(hermetic: pytest.Pytester) -> pytest.Pytester:
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "jobs.yaml").write_text(_cases_yaml(ROLES))
    hermetic.makepyfile(test_answers=ANSWERS_TEST)
    hermetic.makeconftest(RESULTS_CONFTEST)
    return hermetic


def _answers_test_passed(result: pytest.RunResult) -> None:
    assert result.ret in (0, 1) and "errors" not in result.parseoutcomes(), result.stdout.str()
    result.stdout.fnmatch_lines(["PASSED test_answers.py::test_every_answer_once"])


def _answers(project: pytest.Pytester) -> dict:
    return json.loads((project.path / "answers.json").read_text())


@pytest.mark.spark
def test_xdist_with_an_llm_answers_test_asks_and_stores_each_answer_once(suite: pytest.Pytester, azure_env) -> None:
    # serial, the cases alone: what a run asks
    recorded = run_inner(suite, "--llm-record", "-o", "llmbias_spark=false", "cases/")
    assert recorded.ret in (0, 1), recorded.stdout.str()
    serial = len(azure_env.requests)
    assert serial == 16

    live = run_inner(suite, "-p", "xdist.plugin", "-n", "2", "--llm-live", "-rA",
                     "-o", "llmbias_spark=true")
    _answers_test_passed(live)
    assert len(azure_env.requests) - serial == serial  # the same requests as the serial run, not more
    assert _answers(suite) == {"rows": 48, "distinct": 48, "used_by": ["gender_assumption"]}
    assert not list((suite.path / ".llmbias" / "journal").glob("*.shared"))  # the workers' exchange is gone

    replay = run_inner(suite, "-p", "xdist.plugin", "-n", "2", "-rA", "-o", "llmbias_spark=true")
    _answers_test_passed(replay)
    assert len(azure_env.requests) == 2 * serial  # replay asks nobody
    assert _answers(suite) == {"rows": 48, "distinct": 48, "used_by": ["gender_assumption"]}


def _live_run(project: Path, *args: str, group: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider",
                             "--llm-live", "-o", "llmbias_spark=false", *args],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=group)


def test_ctrl_c_under_xdist_names_the_journal_to_resume_from_and_leaves_no_exchange_folder(
        hermetic: pytest.Pytester, azure_env) -> None:
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "jobs.yaml").write_text(_cases_yaml(ROLES))
    azure_env.latency = 0.5
    process = _live_run(hermetic.path, "-p", "xdist.plugin", "-n", "2", "--llm-concurrency", "1", group=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(record.status == 200 for record in azure_env.requests) < 3:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the run gets it
    output, _ = process.communicate(timeout=60)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    folder = hermetic.path / ".llmbias" / "journal"
    (journal,) = folder.glob("*.jsonl")
    kept = len(journal.read_text().splitlines())
    assert 3 <= kept < 16, output
    assert (f"interrupted: {kept} requests' answers are kept in .llmbias/journal/{journal.name}; run again "
            "with --llm-resume (and the same arguments) to ask only for the rest") in output, output
    assert not [path for path in folder.iterdir() if path.is_dir()]  # the workers' exchange is gone


def test_resume_asks_only_what_the_interrupted_run_did_not_get(hermetic: pytest.Pytester, azure_env) -> None:
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "jobs.yaml").write_text(_cases_yaml(ROLES))
    azure_env.latency = 0.3
    process = _live_run(hermetic.path, "--llm-concurrency", "1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(record.status == 200 for record in azure_env.requests) < 5:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    first = sum(record.status == 200 for record in azure_env.requests)
    journal = list((hermetic.path / ".llmbias" / "journal").glob("*.jsonl"))
    assert len(journal) == 1 and len(journal[0].read_text().splitlines()) == first
    assert 5 <= first < 16, output
    assert (f"interrupted: {first} requests' answers are kept in .llmbias/journal/{journal[0].name}; run again "
            "with --llm-resume (and the same arguments) to ask only for the rest") in output, output

    azure_env.latency = 0.0
    resumed = _live_run(hermetic.path, "--llm-resume")
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode in (0, 1), output
    asked = len(azure_env.requests) - first
    assert asked == 16 - first, output  # only the rest
    assert f"--llm-resume: {first} requests answered from .llmbias/journal/{journal[0].name}, the rest asked" \
        in output, output
    assert "ERROR" not in output and "error" not in output.splitlines()[-1], output
    # the resumed run went through every test: neither its journal nor the one it used is left for a later
    # --llm-resume, which took a finished run's answers for a live run's
    assert not list((hermetic.path / ".llmbias" / "journal").glob("*.jsonl"))
    again = _live_run(hermetic.path, "--llm-resume")
    output, _ = again.communicate(timeout=120)
    assert "--llm-resume: no journal of an earlier run" in output and len(azure_env.requests) == 32, output


def test_resume_is_for_live_runs(hermetic: pytest.Pytester) -> None:
    result = run_inner(hermetic, "--llm-resume")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llm-resume continues an interrupted --llm-live run: give it with --llm-live*"])
    recording = run_inner(hermetic, "--llm-resume", "--llm-record")
    recording.stderr.fnmatch_lines(["*--llm-live run; a record run keeps what it got in its cassettes*"])


def test_resume_reads_every_unfinished_journal_and_an_empty_one_hides_none(tmp_path: Path) -> None:
    """A run stopped at its first request (a refused key) left an empty journal that, being the newest, hid the
    interrupted run's 23 answers from --llm-resume: every earlier journal is read, the newest's answer first."""
    import dataclasses
    import os

    from pytest_llmbias.journal import JOURNAL_DIR, earlier_answers
    from pytest_llmbias.wire import Completion

    folder = tmp_path / JOURNAL_DIR
    folder.mkdir(parents=True)

    def line(key: str, text: str) -> str:
        completion = Completion((text,), ("stop",), 1, 1, "m", "id", 0.1, False)
        return json.dumps({"key": key, **dataclasses.asdict(completion)}) + "\n"

    (folder / "old.jsonl").write_text(line("a", "first") + line("b", "old b"))
    (folder / "newer.jsonl").write_text(line("b", "new b"))
    (folder / "stopped.jsonl").write_text("")
    for age, name in enumerate(("old", "newer", "stopped")):
        os.utime(folder / f"{name}.jsonl", (1_000_000 + age, 1_000_000 + age))
    newest, answers, read = earlier_answers(tmp_path, "this-run")
    assert newest == folder / "newer.jsonl" and {path.name: set(keys) for path, keys in read.items()} == {
        "old.jsonl": {"a", "b"}, "newer.jsonl": {"b"}}
    assert {key: completion.texts[0] for key, completion in answers.items()} == {"a": "first", "b": "new b"}


def test_a_record_run_leaves_no_journal_even_when_cut_short(hermetic: pytest.Pytester, azure_env) -> None:
    """A record run's journal was left behind (its cassettes hold the answers) and a later live --llm-resume took
    its answers: a record run removes its journal, interrupted or not."""
    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "jobs.yaml").write_text(_cases_yaml(ROLES))
    stopped = run_inner(hermetic, "--llm-record", "--llm-deployment", "no-such-deployment")  # stops at once
    assert stopped.ret == pytest.ExitCode.TESTS_FAILED, stopped.stdout.str()
    assert not list((hermetic.path / ".llmbias" / "journal").glob("*.jsonl"))
    assert run_inner(hermetic, "--llm-record").ret in (0, 1)
    assert not list((hermetic.path / ".llmbias" / "journal").glob("*.jsonl"))


def test_a_cassette_is_readable_by_others_as_the_umask_allows(hermetic: pytest.Pytester, azure_env) -> None:
    """Cassettes were written 0600 (tempfile's mode), unreadable on a shared checkout or by CI's other users."""
    import stat

    hermetic.mkdir("cases")
    (hermetic.path / "cases" / "jobs.yaml").write_text(_cases_yaml(ROLES[:1]))
    run_inner(hermetic, "--llm-record")
    (cassette,) = (hermetic.path / "cases" / "__cassettes__").glob("*.yaml")
    current = os.umask(0o022)
    os.umask(current)
    assert stat.S_IMODE(cassette.stat().st_mode) == 0o666 & ~current

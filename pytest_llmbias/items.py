"""The YAML case files as pytest collects and runs them: a File per case file, a Collector per case,
an Item per (case, check), and the progress shown while a test waits for its answers."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from .cases import Case, CaseError, CheckConfig, load_case_file
from .cassettes import CassetteUnreadable
from .keys import BIAS_TEST_KEY, CHECK_SETTINGS_KEY, FILE_TESTS_KEY, SESSION_KEY
from .options import progress_seconds
from .session import PromptFiltered, PromptUnavailable, RunStopped


class CaseFile(pytest.File):
    def collect(self):
        from .checks import REGISTRY

        try:
            cases = load_case_file(self.path, checks=REGISTRY.schemas(), default_checks=REGISTRY.defaults())
        except CaseError as error:
            shown = os.path.relpath(self.path, self.config.invocation_params.dir)
            raise self.CollectError(error.shown_as(shown)) from None
        settings = self.config.stash.get(CHECK_SETTINGS_KEY, {})
        self.config.stash.setdefault(FILE_TESTS_KEY, {})[Path(self.path)] = {
            (case.id, check.name) for case in cases for check in case.checks}
        for case in cases:
            yield CaseNode.from_parent(self, name=case.id, case=with_ini_options(case, settings))


class CaseNode(pytest.Collector):
    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def collect(self):
        for check in self.case.checks:
            yield CheckItem.from_parent(self, name=check.name, case=self.case, check=check)

    def reportinfo(self):
        return self.path, self.case.line - 1, f"case {self.case.id}"


class BiasCheckFailed(Exception):
    def __init__(self, verdict: Any) -> None:
        super().__init__(verdict.summary)
        self.verdict = verdict


class CheckItem(pytest.Item):
    def __init__(self, *, case: Case, check: CheckConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.check = check
        self.stash[BIAS_TEST_KEY] = (case, check)
        self.add_marker("llmbias")

    def runtest(self) -> None:
        llm_session = self.config.stash[SESSION_KEY]
        try:
            verdict = llm_session.verdict_for(self.case, self.check, on_wait=on_wait(self.config))
        except RunStopped as stop:  # no request of the run can succeed: one line, not one failure per test
            if hasattr(self.config, "workerinput"):  # a pytest-xdist worker stops through its controller
                llm_session.add_verdict(self.case, self.check.name, "error", message=str(stop))  # a failed test
                self.session.shouldstop = f"pytest-llmbias: {stop}"
                raise PromptUnavailable(str(stop)) from None
            # serially the run exits here and pytest counts no test: no row either (the table showed a FAILED
            # that neither pytest's count nor JUnit had); the exit line says why
            pytest.exit(f"pytest-llmbias: {stop}", returncode=pytest.ExitCode.TESTS_FAILED)
        except PromptUnavailable as problem:
            llm_session.add_verdict(self.case, self.check.name, "error", message=self._unavailable(problem))
            raise
        except CassetteUnreadable as problem:  # a pytest-xdist worker opens the cassettes as its tests ask
            llm_session.add_verdict(self.case, self.check.name, "error", message=str(problem))
            raise PromptUnavailable(str(problem)) from None
        except PromptFiltered as filtered:
            llm_session.add_verdict(self.case, self.check.name, "filtered", message=str(filtered))
            raise pytest.skip.Exception(f"{self._name}: filtered: {filtered}", _use_item_location=True) from None
        except Exception as error:  # a check's own bug: pytest shows the traceback; the table and counts show it too
            llm_session.add_verdict(self.case, self.check.name, "error",
                                    message=f"the check raised {type(error).__name__}: {error}")
            raise
        finally:
            settle_progress(self.config, self.nodeid)
        llm_session.add_verdict(self.case, self.check.name, verdict.outcome, verdict)
        if verdict.outcome == "failed":
            raise BiasCheckFailed(verdict)
        if verdict.outcome == "inconclusive":
            # -rs names the YAML line (a template's for all its cases): the case id says which
            raise pytest.skip.Exception(f"{self._name}: inconclusive: {self._cause(verdict.summary)}",
                                        _use_item_location=True)

    @property
    def _name(self) -> str:
        return f"{self.case.id}::{self.check.name}"

    def _cause(self, summary: str) -> str:
        """A verdict's summary without the check's name (the node id already says it) nor a -0.00."""
        from .report.terminal import no_negative_zero

        return no_negative_zero(summary.removeprefix(f"{self.check.name}: "))

    def _unavailable(self, problem: PromptUnavailable) -> str:
        if not problem.unrecorded:
            return str(problem)
        return f"{problem}; record it with: {record_command(self.config, self.case)}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        # The first line is what pytest's short summary shows after the node id: the cause.
        if isinstance(excinfo.value, BiasCheckFailed):
            verdict = excinfo.value.verdict
            return "\n".join([self._cause(verdict.summary), *("  " + line for line in verdict.evidence)])
        if isinstance(excinfo.value, PromptUnavailable):
            shown = os.path.relpath(self.case.path, self.config.invocation_params.dir)
            return f"{self._unavailable(excinfo.value)}\n  {shown}:{self.case.line}: case '{self.case.id}'"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.case.line - 1, f"{self.case.id}::{self.check.name}"


# Options that change what is asked: a record command for a missing recording repeats them.
REQUEST_OPTIONS = (("llm_deployment", "--llm-deployment"), ("llm_samples", "--llm-samples"),
                   ("llm_max_samples", "--llm-max-samples"))


def record_command(config: pytest.Config, case: Case) -> str:
    """The command that records what this run asked for the case's file, from where pytest was run."""
    import shlex

    words = ["pytest", "--llm-record"]
    for option, flag in REQUEST_OPTIONS:
        value = config.getoption(option, None)
        if value is not None:
            words += [flag, str(value)]
    # the whole file, not the node id: a record run drops only the recordings of files run whole
    words.append(os.path.relpath(case.path, config.invocation_params.dir))
    return " ".join(shlex.quote(word) for word in words)


def with_ini_options(case: Case, settings: dict[str, dict[str, Any]]) -> Case:
    """ini options sit under the file's and the case's own."""
    if not settings:
        return case
    checks = tuple(dataclasses.replace(check, options=tuple(sorted(
        {**settings.get(check.name, {}), **dict(check.options)}.items()))) for check in case.checks)
    return dataclasses.replace(case, checks=checks)


PROGRESS_KEY = pytest.StashKey[Any]()


def progress(config: pytest.Config) -> Any:
    """The run's progress display (report.progress), or None: replay asks nothing, so it shows nothing.

    A status line rewritten every second on a terminal; a plain line every 15 s in CI logs (not a
    terminal, or CI set); ini llmbias_progress_seconds changes the pace.
    """
    if PROGRESS_KEY not in config.stash:
        writer = config.pluginmanager.get_plugin("terminalreporter")
        llm_session = config.stash[SESSION_KEY]
        display = None
        # pytest-xdist workers have no screen of their own: their controller reports
        if writer is not None and llm_session.config.mode != "replay" and not hasattr(config, "workerinput"):
            from .report.progress import ProgressDisplay

            on_terminal = writer.isatty() and not os.environ.get("CI")
            every = progress_seconds(config)
            display = ProgressDisplay(writer, config.pluginmanager.get_plugin("capturemanager"),
                                      status_line=on_terminal,
                                      every=every if every else (1.0 if on_terminal else 15.0),
                                      describe=llm_session.progress_line,
                                      width=lambda: config.get_terminal_writer().fullwidth)
        config.stash[PROGRESS_KEY] = display
    return config.stash[PROGRESS_KEY]


def on_wait(config: pytest.Config) -> Any:
    display = progress(config)
    return display.tick if display is not None else None


def settle_progress(config: pytest.Config, nodeid: str) -> None:
    display = config.stash.get(PROGRESS_KEY, None)
    if display is not None:
        display.settle(nodeid)

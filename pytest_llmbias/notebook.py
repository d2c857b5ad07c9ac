"""The IPython extension: `%load_ext pytest_llmbias`, then `%pytest ARGS` and `%%pytest ARGS` cells.

Both magics run pytest in the notebook's own process with defaults that work on Databricks: no
cache provider, no bytecode files, the notebook's folder as working directory (found the same way
on every runtime), and the modules a run imported from the project dropped afterwards, so the next
run sees edited test modules and case files. The run's results come back as the magic's value and
go to the notebook's `display`; `--llm-raise` makes a failed run raise (a scheduled job fails).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from .keys import NOTEBOOK_KEY, TABLE_KEY, NotebookContext

DEFAULT_ARGS = ("-p", "no:cacheprovider")
CELL_FILE = "test_cell.py"


class RunFailed(Exception):
    """A %pytest run with --llm-raise failed; shown in the notebook as this one line."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"RunFailed: {self}"]


class _RunCapture:
    """A plugin object handed to pytest.main: it passes the notebook in and takes the results out."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.results: Any = None
        self.raise_on_failure = False
        self.table: Any = None
        self.counts: dict[str, int] = {}

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[NOTEBOOK_KEY] = NotebookContext(self.namespace)
        with contextlib.suppress(ValueError):  # the option is ours only when the plugin is loaded
            self.raise_on_failure = bool(config.getoption("llm_raise"))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            outcome = "failed" if report.when == "call" else "error"
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            return
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def pytest_llmbias_results(self, results: Any, config: pytest.Config) -> None:
        self.results = results

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.table = config.stash.get(TABLE_KEY, None)


def run(args: Sequence[str] = (), *, namespace: Mapping[str, Any] | None = None,
        folder: str | os.PathLike[str] | None = None, raise_on_failure: bool = False,
        display: Callable[[Any], Any] | None = None) -> Any:
    """Run pytest in this process as %pytest does; return the run's RunResults (None without bias cases).

    namespace: the notebook's variables (`spark`, `dbutils`, `display`); folder: the working
    directory (default: the notebook's folder); raise_on_failure: raise RunFailed when the run
    fails, as `--llm-raise` does; display: called with the verdicts and answers DataFrames.
    """
    namespace = {} if namespace is None else namespace
    capture = _RunCapture(namespace)
    arguments = _with_defaults(list(args))
    with _isolated(Path(folder) if folder is not None else notebook_folder(namespace)):
        exit_code = pytest.main(arguments, plugins=[capture])
    results = capture.results
    if results is not None:
        results.exit_code = int(exit_code)
        shown = display if display is not None else _display_of(namespace)
        for frame in (results.verdicts, results.answers):
            if frame is not None and shown is not None:
                shown(frame)
        if shown is not None:  # the report's charts inline: displayHTML on Databricks, IPython's display elsewhere
            from .report.html import Report

            Report.from_results(results).show(namespace)
    if raise_on_failure or capture.raise_on_failure or _asks_to_raise(arguments):
        problem = _failure(int(exit_code), capture)
        if problem:
            raise RunFailed(problem)
    return results


def run_cell(line_args: Sequence[str], body: str, **options: Any) -> Any:
    """Run a cell's test code (plus any paths in line_args) from a temporary folder, then delete it."""
    cell_folder = Path(tempfile.mkdtemp(prefix="pytest-llmbias-cell-"))
    folder = Path(options["folder"]) if options.get("folder") is not None else notebook_folder(options.get("namespace") or {})
    try:
        cell_file = cell_folder / CELL_FILE
        cell_file.write_text(body, encoding="utf-8")
        return run([*_project_root(folder, line_args), str(cell_file), *line_args], **options)
    finally:
        shutil.rmtree(cell_folder, ignore_errors=True)


_CONFIG_FILES = (("pytest.ini", ""), (".pytest.ini", ""), ("pyproject.toml", "[tool.pytest"), ("tox.ini", "[pytest]"),
                 ("setup.cfg", "[tool:pytest]"))


def _project_root(folder: Path, args: Sequence[str]) -> list[str]:
    """A cell's file lives in a temporary folder; pytest would take the common folder of it and the case files
    (often /) as its rootdir and miss the project's ini file, so rows would be keyed 'project/cases/...'. The
    rootdir and ini file a run from the notebook's folder gets, unless the magic's arguments name their own."""
    if any(arg.startswith(("--rootdir", "-c", "--config-file", "--inifile")) for arg in args):
        return []
    for candidate in (folder, *folder.parents):
        for name, section in _CONFIG_FILES:
            path = candidate / name
            try:
                if path.is_file() and (not section or section in path.read_text(encoding="utf-8", errors="replace")):
                    return [f"--rootdir={candidate}", "-c", str(path)]
            except OSError:
                continue
    return [f"--rootdir={folder}"]


def _asks_to_raise(arguments: Sequence[str]) -> bool:
    """--llm-raise among the arguments (or PYTEST_ADDOPTS): read here too, since a run that stops on a usage
    error (a mistyped flag, a bad ini value) never configures, and a scheduled job must still fail."""
    given = list(arguments) + shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    return "--llm-raise" in given[: given.index("--")] if "--" in given else "--llm-raise" in given


def _failure(exit_code: int, capture: _RunCapture) -> str | None:
    problems = []
    if exit_code != 0:
        try:
            name = pytest.ExitCode(exit_code).name
        except ValueError:
            name = "unknown"
        tally = ", ".join(f"{count} {outcome}" for outcome, count in sorted(capture.counts.items()))
        problems.append(f"pytest exited with {exit_code} ({name})" + (f": {tally}" if tally else ""))
    if capture.table is not None and not capture.table.ok:
        problems.append(f"results table not written: {capture.table.problem}")
    return "; ".join(problems) or None


def _with_defaults(args: list[str]) -> list[str]:
    extra: list[str] = []
    if not any("cacheprovider" in arg for arg in args):
        extra += list(DEFAULT_ARGS)
    # With plugin autoload off, our plugin must be named; with it on, naming it twice is an error.
    autoload_off = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") or "--disable-plugin-autoload" in args
    if autoload_off and "pytest_llmbias.plugin" not in args:
        extra += ["-p", "pytest_llmbias.plugin"]
    return extra + args


def notebook_folder(namespace: Mapping[str, Any]) -> Path:
    """The notebook's folder: Databricks' notebook path when it can be read, else the kernel's cwd.

    Databricks Runtime 14+ starts notebooks in their own folder and older ones in /databricks/driver;
    asking the notebook context gives the same answer on every runtime.
    """
    dbutils = namespace.get("dbutils")
    if dbutils is not None and os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        try:
            context = dbutils.notebook.entry_point.getDbutils().notebook().getContext()
            notebook_path = str(context.notebookPath().get())
        except Exception:  # not allowed on some access modes: the cwd is the notebook's folder there
            notebook_path = ""
        if notebook_path:
            if not notebook_path.startswith("/Workspace/"):
                notebook_path = "/Workspace" + notebook_path
            folder = Path(notebook_path).parent
            if folder.is_dir():
                return folder
    return Path.cwd()


def _display_of(namespace: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    """The notebook's display: Databricks puts one in the namespace; IPython has a builtin one."""
    shown = namespace.get("display")
    if callable(shown):
        return shown
    import builtins

    shown = getattr(builtins, "display", None)
    if callable(shown):
        return shown
    try:
        from IPython.display import display as ipython_display
    except ImportError:
        return None
    return ipython_display


def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    roots.update(path for path in sys.path if path.rstrip("/").endswith(("site-packages", "dist-packages")))
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots)


def _is_project_module(module: Any, installed: tuple[str, ...]) -> bool:
    """A module imported from the user's files (test modules, conftests, helpers), not a library."""
    name = getattr(module, "__name__", "") or ""
    if name == "pytest_llmbias" or name.startswith("pytest_llmbias."):
        return False
    file = getattr(module, "__file__", None)
    if not file:
        return False
    return not os.path.realpath(file).startswith(installed)


@contextlib.contextmanager
def _isolated(folder: Path) -> Iterator[None]:
    """Run in `folder`, write no bytecode, and leave sys.path and sys.modules as they were."""
    saved_cwd = os.getcwd()
    saved_path = list(sys.path)
    saved_bytecode = sys.dont_write_bytecode
    before = set(sys.modules)
    sys.dont_write_bytecode = True
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.dont_write_bytecode = saved_bytecode
        sys.path[:] = saved_path
        installed = _installed_roots()
        # Test modules, conftests and case helpers imported by this run: the next run imports the
        # edited files again instead of reusing these.
        for name in set(sys.modules) - before:
            if _is_project_module(sys.modules.get(name), installed):
                sys.modules.pop(name, None)


def load_ipython_extension(ipython: Any) -> None:
    from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

    @magics_class
    class PytestMagics(Magics):
        @line_magic("pytest")
        def pytest_line(self, line: str) -> Any:
            """%pytest ARGS: run pytest in this notebook with the command line's arguments."""
            return run(shlex.split(line), namespace=self.shell.user_ns)

        @cell_magic("pytest")
        def pytest_cell(self, line: str, cell: str) -> Any:
            """%%pytest ARGS: run the cell's test code (from a temporary folder) with these arguments."""
            return run_cell(shlex.split(line), cell, namespace=self.shell.user_ns)

    ipython.register_magics(PytestMagics)
    from .results import RunResults

    # `results = %pytest ...` shows a one-line summary, not every row.
    ipython.display_formatter.formatters["text/plain"].for_type(
        RunResults, lambda results, printer, cycle: printer.text(describe(results)))


def describe(results: Any) -> str:
    """RunResults in one line: the run, its counts, its exit code and where its DataFrames are."""
    counts: dict[str, int] = {}
    for row in results.verdict_rows:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    tally = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    frames = ("results.answers and results.verdicts (Spark DataFrames)" if results.answers is not None
              else f"no DataFrames: {results.spark_problem}")
    exit_code = getattr(results, "exit_code", None)
    return (f"RunResults(run {results.run_id}: {len(results.answer_rows)} answers, "
            f"{len(results.verdict_rows)} verdicts" + (f" ({tally})" if tally else "")
            + (f", exit code {exit_code}" if exit_code is not None else "") + f"; {frames})")

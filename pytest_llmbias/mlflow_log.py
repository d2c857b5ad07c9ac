"""The run as an MLflow run (`--llm-mlflow`): tags, params, metrics, the verdicts and answers as
MLflow tables, the reports as artifacts. Logged once per session, from the pytest-xdist controller,
after every report is written. mlflow is imported only when a run is logged.

Where: MLflow's own tracking URI when one is set (MLFLOW_TRACKING_URI, `mlflow.set_tracking_uri`),
on a Databricks cluster (the notebook's experiment), or where an active run lives (the new run is
nested under it); elsewhere a SQLite store with its artifacts under `.llmbias/mlflow/` in the rootdir.
MLflow's output goes to `.llmbias/logs/mlflow.log`, never to pytest's terminal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .keys import SESSION_KEY
from .options import ini_bool
from .report.hooks import html_written
from .rows import AnswerRow, VerdictRow, column_names

EXTRA_HINT = "pip install 'pytest-llmbias[mlflow]'"
DEFAULT_EXPERIMENT = "pytest-llmbias"
LOCAL_STORE = Path(".llmbias") / "mlflow"       # mlflow.db and artifacts/, under the rootdir
MLFLOW_LOG = Path(".llmbias") / "logs" / "mlflow.log"
OUTCOMES = ("passed", "failed", "inconclusive", "filtered", "error")
MAX_EVAL_WORKERS = 2   # evaluate's default 10 workers stall on SQLite's connection pool; 2 cores here
SERVED_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")  # these stores place artifacts themselves


class MlflowLogError(Exception):
    """Logging to MLflow failed; the message is one line."""


@dataclass
class MlflowState:
    experiment: str | None                  # ini llmbias_mlflow_experiment
    rootdir: Path
    run_id: str | None = None                # the MLflow run's id once logged
    where: str = ""                          # tracking URI and experiment, as shown
    problem: str | None = None               # one line, shown in red
    logged: bool = False
    put_back: Callable[[], None] | None = None  # MLflow's loggers as they were before the session


STATE_KEY = pytest.StashKey[MlflowState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmbias", "LLM bias tests (pytest-llmbias)")
    group.addoption("--llm-mlflow", action="store_true", default=None,
                    help="log the run to MLflow: tags, params, metrics, verdicts and answers as tables, "
                         "reports as artifacts (MLFLOW_TRACKING_URI, else .llmbias/mlflow/)")
    parser.addini("llmbias_mlflow", "default for --llm-mlflow", type="bool", default=False)
    parser.addini("llmbias_mlflow_experiment", "MLflow experiment for the runs (default: MLflow's "
                  f"MLFLOW_EXPERIMENT_NAME or the notebook's, else {DEFAULT_EXPERIMENT})", default="")


def pytest_configure(config: pytest.Config) -> None:
    wanted = config.getoption("llm_mlflow")
    if not (ini_bool(config, "llmbias_mlflow") if wanted is None else wanted):
        return
    if hasattr(config, "workerinput"):  # pytest-xdist workers hand their rows to the controller, which logs
        return
    import importlib.util

    # before anything is asked: a live run must not spend its quota on a run it cannot log
    if importlib.util.find_spec("mlflow") is None:
        raise pytest.UsageError(f"--llm-mlflow needs MLflow, which is not installed: {EXTRA_HINT}")
    state = MlflowState(experiment=config.getini("llmbias_mlflow_experiment").strip() or None,
                        rootdir=Path(config.rootpath))
    if "mlflow" in sys.modules:  # a notebook's MLflow (autolog) logs and warns during the session
        state.put_back = _log_to_file(state.rootdir / MLFLOW_LOG)
        # MLflow's own warnings (MLflow 2.x's autolog imports pydantic models that warn) are not the suite's
        config.addinivalue_line("filterwarnings", "ignore:::mlflow")
    config.stash[STATE_KEY] = state


def pytest_unconfigure(config: pytest.Config) -> None:
    if STATE_KEY in config.stash:
        state = config.stash[STATE_KEY]
        if state.put_back is not None:
            state.put_back()
        del config.stash[STATE_KEY]


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, Any, Any]:
    """Around every other session-finish hook: log once the results are built, the HTML page and
    JUnit XML written and the exit code decided (and before the terminal's summary)."""
    finished = yield
    llm_session = session.config.stash.get(SESSION_KEY, None)
    if llm_session is not None:
        log_finished_session(session, llm_session, html_written(session.config))
    return finished


def log_finished_session(session: pytest.Session, llm_session: Any, html: Path | None) -> None:
    """Log the run; an MLflow failure is one red line and a non-zero exit, and loses nothing else."""
    state = session.config.stash.get(STATE_KEY, None)
    results = getattr(llm_session, "results", None)
    if state is None or state.logged or results is None:
        return
    state.logged = True
    junit = getattr(session.config.option, "xmlpath", None)
    # logged under the names the README gives (llmbias/report.html, llmbias/junit.xml) whatever the files are called
    folder = Path(tempfile.mkdtemp(prefix="llmbias-mlflow-"))
    artifacts = []
    try:
        for path, name in ((html, "report.html"), (junit, "junit.xml")):
            if path and Path(path).is_file():
                try:
                    shutil.copyfile(path, folder / name)
                except OSError as problem:
                    raise MlflowLogError(f"{path} could not be copied: {problem.strerror or problem}") from None
                artifacts.append(folder / name)
        state.run_id, state.where = log_run(
            results.answer_rows, results.verdict_rows, run_id=results.run_id,
            params=run_params(llm_session, results.answer_rows, results.verdict_rows),
            tags={"llmbias.mode": llm_session.config.mode},
            artifacts=artifacts, table_text=_table_text(results),
            experiment=state.experiment, rootdir=state.rootdir,
            status="KILLED" if session.exitstatus == pytest.ExitCode.INTERRUPTED else "FINISHED")
    except MlflowLogError as problem:
        state.problem = f"MLflow run not logged: {problem} (details: {state.rootdir / MLFLOW_LOG})"
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR  # as for a report that could not be written
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is None or not state.logged:
        return
    if state.problem:
        terminalreporter.write_line(state.problem, red=True)
    else:
        terminalreporter.write_line(f"MLflow run: {state.run_id} ({state.where})")


def run_params(llm_session: Any, answer_rows: Sequence[Mapping[str, Any]],
               verdict_rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """What the run asked with: deployments, models, answers per prompt, the correction."""
    cases = list({id(case): case for case, _ in llm_session.selected}.values())

    def distinct(values: Any) -> str:
        return ",".join(sorted({str(value) for value in values if value not in (None, "")}))

    config = llm_session.config
    params = {
        "deployments": distinct([row.get("deployment") for row in verdict_rows]
                                + [row.get("deployment") for row in answer_rows]),
        "models": distinct(row.get("model") for row in answer_rows),
        # a pytest-xdist controller collects no case: there the verdicts' answers per prompt stand in
        "samples": distinct(llm_session.samples_of(case) for case in cases) if cases
        else distinct(row.get("samples") for row in verdict_rows),
        "max_samples": distinct(llm_session.max_samples_of(case) for case in cases),
        "confidence": distinct(dict(check.options).get("confidence") for _, check in llm_session.selected),
        "correction": config.correction or "none",
        "mode": config.mode,
        "checks": distinct(row.get("check") for row in verdict_rows),
        "tests": str(len(verdict_rows)),
    }
    return {name: value for name, value in params.items() if value}


def run_metrics(answer_rows: Sequence[Mapping[str, Any]],
                verdict_rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """A count per outcome (every known outcome, zero included, and any other met), answers, tokens."""
    metrics: dict[str, float] = {outcome: 0 for outcome in OUTCOMES}
    for row in verdict_rows:
        outcome = str(row.get("outcome"))
        metrics[outcome] = metrics.get(outcome, 0) + 1
    prompt_tokens = sum(int(row.get("prompt_tokens") or 0) for row in answer_rows)
    completion_tokens = sum(int(row.get("completion_tokens") or 0) for row in answer_rows)
    metrics.update({
        "tests": len(verdict_rows),
        "answers": len(answer_rows),
        "answers_content_filtered": sum(1 for row in answer_rows if row.get("finish_reason") == "content_filter"),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "tokens": prompt_tokens + completion_tokens,
    })
    return {_metric_name(name): float(value) for name, value in metrics.items()}


def _metric_name(name: str) -> str:
    return "".join(char if char.isalnum() or char in "_-./ " else "_" for char in name)


def table_columns(rows: Sequence[Mapping[str, Any]], row_type: type) -> dict[str, list[Any]]:
    """Rows as MLflow table columns: the record's (pytest_llmbias.rows), in its order, then any other key."""
    names = dict.fromkeys(column_names(row_type))
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: [_cell(row.get(name)) for row in rows] for name in names}


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_cell(item) for item in value]
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _table_text(results: Any) -> str:
    from .report.terminal import summary_lines

    blocked = sum(1 for row in results.answer_rows if row.get("finish_reason") == "content_filter")
    lines = summary_lines(results, results.verdict_rows, len(results.answer_rows), blocked=blocked,
                          comparison=getattr(results, "baseline", None))
    return "\n".join(lines) + "\n"


def log_run(answer_rows: Sequence[Mapping[str, Any]], verdict_rows: Sequence[Mapping[str, Any]], *,
            run_id: str, params: Mapping[str, str], tags: Mapping[str, str] | None = None,
            artifacts: Sequence[Path] = (), table_text: str | None = None, experiment: str | None = None,
            rootdir: Path, status: str = "FINISHED") -> tuple[str, str]:
    """Log one run; returns (MLflow run id, where it went). Usable without pytest.

    Bias tests that fail make a FINISHED run whose metrics say so; MlflowLogError (one line) when
    MLflow is missing or refuses, after the run it created is marked FAILED.
    """
    with _quiet(rootdir / MLFLOW_LOG) as mlflow:
        try:
            return _log(mlflow, answer_rows, verdict_rows, run_id=run_id, params=params, tags=tags or {},
                        artifacts=artifacts, table_text=table_text, experiment=experiment, rootdir=rootdir,
                        status=status)
        except MlflowLogError:
            raise
        except Exception as error:  # MLflow's errors are many and deep: one line, the traceback in the log
            logging.getLogger("pytest_llmbias.mlflow").exception("logging the run to MLflow failed")
            raise MlflowLogError(_one_line(error)) from error


HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}

CREDENTIALS_IN_URL = re.compile(r"(?<=//)[^/\s:@]+:[^/\s@]+@")  # scheme://user:password@host


def _without_credentials(text: str) -> str:
    return CREDENTIALS_IN_URL.sub("", text)


class _CredentialFreeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _without_credentials(super().format(record))


def _one_line(error: BaseException) -> str:
    text = _without_credentials(str(error).strip().splitlines()[0] if str(error).strip() else "")
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _log(mlflow: Any, answer_rows: Sequence[Mapping[str, Any]], verdict_rows: Sequence[Mapping[str, Any]], *,
         run_id: str, params: Mapping[str, str], tags: Mapping[str, str], artifacts: Sequence[Path],
         table_text: str | None, experiment: str | None, rootdir: Path, status: str) -> tuple[str, str]:
    from mlflow import MlflowClient
    from mlflow.tracking import is_tracking_uri_set

    from . import __version__
    from .databricks import git_commit

    parent = mlflow.active_run()
    on_databricks = bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))
    store = rootdir / LOCAL_STORE
    # an experiment id (a notebook's mlflow.set_experiment sets one) lives in MLflow's own store, its
    # default one when no URI is set: the run goes there too, never to a store that lacks the experiment
    in_use = bool(os.environ.get("MLFLOW_EXPERIMENT_ID"))
    if parent is not None or is_tracking_uri_set() or on_databricks or in_use:
        uri = mlflow.get_tracking_uri()
    else:
        store.mkdir(parents=True, exist_ok=True)
        _ignore_in_git(store)
        uri = f"sqlite:///{store / 'mlflow.db'}"
        _needs_sqlalchemy()
    # a store without a server puts a new experiment's artifacts in ./mlruns unless told otherwise
    artifact_root = None if uri.split(":", 1)[0] in SERVED_SCHEMES else store / "artifacts"
    client = MlflowClient(tracking_uri=uri)
    if parent is not None and not experiment:
        experiment_id = parent.info.experiment_id
    else:
        experiment_id = _experiment_id(client, experiment, artifact_root, on_databricks=on_databricks)
    commit = git_commit(rootdir)
    run_tags = {"llmbias.run_id": run_id, "llmbias.version": __version__, **tags}
    if commit:
        run_tags.update({"llmbias.commit": commit, "mlflow.source.git.commit": commit})
    if parent is not None:
        run_tags["mlflow.parentRunId"] = parent.info.run_id
    run = client.create_run(experiment_id, run_name=run_id, tags=run_tags)
    mlflow_run_id = run.info.run_id
    try:
        import time

        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        client.log_batch(mlflow_run_id,
                         metrics=[Metric(name, value, now, 0) for name, value in
                                  run_metrics(answer_rows, verdict_rows).items()],
                         params=[Param(name, str(value)[:6000]) for name, value in params.items()])
        client.log_table(mlflow_run_id, table_columns(verdict_rows, VerdictRow), "llmbias/verdicts.json")
        client.log_table(mlflow_run_id, table_columns(answer_rows, AnswerRow), "llmbias/answers.json")
        if table_text:
            client.log_text(mlflow_run_id, table_text, "llmbias/results.txt")
        for path in artifacts:
            client.log_artifact(mlflow_run_id, str(path), "llmbias")
        _log_assessments(mlflow, uri, mlflow_run_id, experiment_id, answer_rows, verdict_rows,
                         nested=parent is not None)
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(mlflow_run_id, "FAILED")
        raise
    client.set_terminated(mlflow_run_id, status)
    name = client.get_experiment(experiment_id).name
    return mlflow_run_id, f"experiment {name!r} at {_shown_uri(uri)}"


def _log_assessments(mlflow: Any, uri: str, run_id: str, experiment_id: str, answer_rows: Sequence[Mapping[str, Any]],
                     verdict_rows: Sequence[Mapping[str, Any]], *, nested: bool) -> None:
    """Each verdict as an evaluation row of the run (mlflow.genai.evaluate): the case's prompts as inputs,
    its answers as outputs, a code scorer giving the verdict (no judge call). MLflow 2.x: none."""
    try:
        from mlflow.entities import Feedback
        from mlflow.genai import evaluate
        from mlflow.genai.scorers import scorer
    except ImportError:
        return
    if not verdict_rows:
        return
    answers_of: dict[tuple[Any, Any], list[Mapping[str, Any]]] = {}
    for answer in answer_rows:
        answers_of.setdefault((answer.get("case_file"), answer.get("case_id")), []).append(answer)
    verdict_of: dict[tuple[str, str], Mapping[str, Any]] = {}
    data = []
    for row in verdict_rows:
        name = f"{row.get('case_file')}::{row.get('case_id')}"
        verdict_of[(name, str(row.get("check")))] = row
        answers = answers_of.get((row.get("case_file"), row.get("case_id")), [])
        data.append({
            "inputs": {"case": name, "check": str(row.get("check")),
                       "prompts": list(dict.fromkeys(f"{answer.get('variant')}: {answer.get('prompt')}"
                                                     for answer in answers))},
            "outputs": {"answers": [f"{answer.get('variant')} #{answer.get('sample')}: {answer.get('answer')}"
                                    for answer in answers]},
        })

    @scorer(name="llmbias_verdict")
    def verdict(inputs: dict[str, Any]) -> Any:
        row = verdict_of[(inputs["case"], inputs["check"])]
        figures = {key: row.get(key) for key in ("figure", "low", "high", "threshold", "p_value", "samples")}
        return Feedback(value=str(row.get("outcome")).upper(),
                        rationale="\n".join([str(row.get("summary") or ""), *map(str, row.get("evidence") or ())]),
                        metadata={key: str(value) for key, value in figures.items() if value is not None})

    # evaluate works through MLflow's fluent API: its tracking URI for the time of the call only
    saved = {"MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI"),
             "MLFLOW_GENAI_EVAL_MAX_WORKERS": os.environ.get("MLFLOW_GENAI_EVAL_MAX_WORKERS")}
    os.environ["MLFLOW_GENAI_EVAL_MAX_WORKERS"] = str(MAX_EVAL_WORKERS)  # more stall on SQLite's pool
    from mlflow.tracking import is_tracking_uri_set

    if not is_tracking_uri_set():
        os.environ["MLFLOW_TRACKING_URI"] = uri
    # A notebook's own experiment (mlflow.set_experiment, which sets MLFLOW_EXPERIMENT_ID) other than the
    # run's: start_run(run_id) refuses the run, so the run's is made active for the call and then put back.
    notebooks = os.environ.get("MLFLOW_EXPERIMENT_ID")
    switch = bool(notebooks) and notebooks != experiment_id
    try:
        if switch:
            mlflow.set_experiment(experiment_id=experiment_id)
        with mlflow.start_run(run_id=run_id, nested=nested):
            evaluate(data=data, scorers=[verdict])
    finally:
        _restore_environment(saved)
        if switch:  # in the notebook's own store, now that its tracking URI is back
            mlflow.set_experiment(experiment_id=notebooks)


def _experiment_id(client: Any, name: str | None, artifact_root: Path | None, *, on_databricks: bool) -> str:
    """The named experiment (created if missing); else MLFLOW_EXPERIMENT_ID or _NAME; else a Databricks
    notebook's own; else DEFAULT_EXPERIMENT (never MLflow's "Default", whose artifacts go to ./mlruns)."""
    if name is None:
        chosen = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if chosen:
            return chosen
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or None
    if name is None and on_databricks:
        from mlflow.tracking.fluent import _get_experiment_id

        return _get_experiment_id()
    name = name or DEFAULT_EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (artifact_root / name).as_uri() if artifact_root is not None else None
    return client.create_experiment(name, artifact_location=location)


def _needs_sqlalchemy() -> None:
    import importlib.util

    missing = [name for name in ("sqlalchemy", "alembic") if importlib.util.find_spec(name) is None]
    if missing:
        raise MlflowLogError(f"the local MLflow store (SQLite under .llmbias/mlflow/) needs {' and '.join(missing)}: "
                             "pip install sqlalchemy alembic (or the full 'mlflow'), or set MLFLOW_TRACKING_URI")


def _shown_uri(uri: str) -> str:
    """A tracking URI as shown: no user or password (a URI may carry credentials)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        return urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))
    return uri


def _ignore_in_git(folder: Path) -> None:
    ignore = folder / ".gitignore"
    if not ignore.exists():  # like .pytest_cache: never committed by accident
        ignore.write_text("# written by pytest-llmbias\n*\n")


@contextlib.contextmanager
def _quiet(log_path: Path) -> Iterator[Any]:
    """mlflow, imported with its output, logging and warnings going into `log_path`; no telemetry.
    Put back as it was afterwards (a notebook kernel runs on)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _ignore_in_git(log_path.parent)
    settings = {"MLFLOW_DISABLE_TELEMETRY": "true"}
    # An unreachable tracking server: MLflow's own defaults (7 retries, backoff factor 2, 120 s a request) hold the
    # end of the run for minutes; ours fail it within seconds. A user's own settings of these are kept.
    settings.update({name: value for name, value in HTTP_DEFAULTS.items() if not os.environ.get(name)})
    saved_environment = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    with log_path.open("a", encoding="utf-8") as log:
        try:
            with warnings.catch_warnings(record=True) as caught, \
                    contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                warnings.simplefilter("always")
                import mlflow  # configures its own logger on first import: swapped below, after that
            _write_warnings(log, caught)
        except ImportError as error:
            _restore_environment(saved_environment)
            raise MlflowLogError(f"MLflow is not installed: {EXTRA_HINT}") from error
        put_back = _swap_loggers(log)
        try:
            with warnings.catch_warnings(record=True) as caught, \
                    contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                warnings.simplefilter("always")
                try:
                    yield mlflow
                finally:
                    _write_warnings(log, caught)
        finally:
            put_back()
            _restore_environment(saved_environment)
            log.flush()


def _swap_loggers(stream: Any) -> Callable[[], None]:
    """MLflow's (and alembic's) log records go to `stream` only; returns what puts the loggers back."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic", "pytest_llmbias.mlflow")]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_CredentialFreeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = [(logger, logger.handlers[:], logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [handler], False

    def put_back() -> None:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate
    return put_back


def _log_to_file(log_path: Path) -> Callable[[], None]:
    """For the session: records of an MLflow already imported (autolog tracing our requests) go to
    `log_path`, not to pytest's terminal; returns what puts them back and closes the file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _ignore_in_git(log_path.parent)
    log = log_path.open("a", encoding="utf-8")
    put_back = _swap_loggers(log)

    def close() -> None:
        put_back()
        log.close()
    return close


def _write_warnings(log: Any, caught: list[warnings.WarningMessage]) -> None:
    for warning in caught:
        log.write(_without_credentials(f"{warning.category.__name__}: {warning.message} "
                                       f"({warning.filename}:{warning.lineno})\n"))


def _restore_environment(saved: Mapping[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

"""pytest hooks: options, collection and the run's order; each hook forwards to the run's LLMSession.

The YAML files' File/Item classes are in items.py, option reading in options.py, signals in interrupts.py."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

from . import interrupts
from .cassettes import CassetteUnreadable
from .cases import DEFAULT_MAX_SAMPLES, DEPLOYMENT_NAME, MAX_LOOKS, MAX_SAMPLES, Case, CaseError, looks_of
from .items import REQUEST_OPTIONS, CaseFile, CheckItem, on_wait, settle_progress
from .keys import CHECK_SETTINGS_KEY, DESELECTED_FILES_KEY, FILE_TESTS_KEY, SESSION_KEY
from .options import ini_bool, ini_source, positive_int, progress_seconds, timeout
from .results import catalog_schema
from .session import LLMSession, RunConfig

GC_FROZEN_KEY = pytest.StashKey[bool]()  # this run froze the start-up's objects (gc.freeze)
USER_CHECKS_KEY = pytest.StashKey[list]()
USER_ATTRIBUTES_KEY = pytest.StashKey[list]()  # attributes added through registry.add_attribute, dropped at unconfigure
YAML_SUFFIXES = (".yaml", ".yml")


class LLMBiasSpec:
    @pytest.hookspec(historic=False)
    def pytest_llmbias_results(self, results: Any, config: pytest.Config) -> None:
        """Called once at session end with the run's RunResults (rows and DataFrames)."""

    @pytest.hookspec(firstresult=True)
    def pytest_llmbias_spark_session(self, config: pytest.Config) -> Any:
        """Return the SparkSession to hold the results (e.g. a notebook's `spark`), or None."""

    @pytest.hookspec(firstresult=True)
    def pytest_llmbias_api_key(self, config: pytest.Config) -> str | None:
        """Return the Azure key from somewhere other than AZURE_OPENAI_API_KEY, or None."""

    @pytest.hookspec(historic=True)
    def pytest_llmbias_register_checks(self, registry: Any, config: pytest.Config) -> None:
        """Add checks of your own: `registry.add(check)` with an object of the checks' interface
        (pytest_llmbias.checks: name, asks, fails_when, options, default, evaluate). Called once, before
        collection; the checks are then validated, configured and reported like the built-in ones."""


# Features with options and hooks of their own; each is a plugin module, loaded with this one.
FEATURE_PLUGINS = ("pytest_llmbias.report.hooks", "pytest_llmbias.databricks", "pytest_llmbias.mlflow_log")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(LLMBiasSpec)
    for name in FEATURE_PLUGINS:
        if not pluginmanager.has_plugin(name):
            pluginmanager.register(importlib.import_module(name), name)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """`pytest --llm-record cases/` records: a bare --llm-record must not swallow the path after it."""
    for index, arg in enumerate(args):
        following = args[index + 1] if index + 1 < len(args) else None
        if arg == "--llm-record" and following not in ("new", "all"):
            args[index] = "--llm-record=new"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmbias", "LLM bias tests (pytest-llmbias)")
    # No argparse choices: pytest's early parse would reject `--llm-record cases/` before
    # pytest_load_initial_conftests can rewrite it; _run_config checks the value instead.
    group.addoption("--llm-record", nargs="?", const="new", default=None, metavar="new|all",
                    help="call the deployment for unrecorded prompts (new, the default) or all, "
                         "and write cassettes")
    group.addoption("--llm-live", action="store_true", default=False,
                    help="call the deployment for everything; read and write no cassettes")
    group.addoption("--llm-deployment", metavar="NAME", default=None,
                    help="deployment to call (default: the YAML's, else gpt-35-turbo)")
    group.addoption("--llm-samples", metavar="N", type=int, default=None,
                    help="completions per prompt, overriding the YAML")
    group.addoption("--llm-max-samples", metavar="N", type=int, default=None,
                    help="adaptive sampling's ceiling: an undecided check asks for more answers in "
                         f"batches of the samples up to N per prompt (overrides the YAML; default {DEFAULT_MAX_SAMPLES})")
    group.addoption("--llm-results", metavar="DIR|CATALOG.SCHEMA", default=None,
                    help="append the run as Parquet to DIR/answers and DIR/verdicts, or to the tables "
                         "CATALOG.SCHEMA.llmbias_answers and CATALOG.SCHEMA.llmbias_verdicts")
    group.addoption("--llm-concurrency", metavar="N", type=int, default=None,
                    help="requests in flight (default 8)")
    group.addoption("--llm-tpm", metavar="N", type=int, default=None,
                    help="the deployment's tokens-per-minute quota: pace requests to it (default: "
                         "the quota its x-ratelimit-* headers report, else learned from its 429s)")
    group.addoption("--llm-rpm", metavar="N", type=int, default=None,
                    help="the deployment's requests-per-minute quota: pace requests to it")
    group.addoption("--llm-timeout", metavar="SECONDS", type=float, default=None,
                    help="seconds to wait for one answer before retrying it (default 300: reasoning "
                         "models writing thousands of tokens take minutes)")
    group.addoption("--llm-correction", choices=("holm", "bh"), default=None,
                    help="judge all the run's tests together: adjust p-values over them (holm: "
                         "family-wise error; bh: false discovery rate)")
    group.addoption("--llm-resume", action="store_true", default=False,
                    help="with --llm-live: take the answers of the newest earlier run's journal "
                         "(.llmbias/journal/, e.g. a run interrupted by Ctrl-C) and ask only for the rest")
    group.addoption("--llm-plan", action="store_true", default=False,
                    help="print what the run would ask (requests, tokens, time at the quota) and stop")
    parser.addini("llmbias_cases", "name of the directories whose YAML files are bias cases",
                  default="cases")
    parser.addini("llmbias_cassette_dir", "one folder for all cassettes (default: __cassettes__ "
                  "beside each case file)", default="")
    parser.addini("llmbias_deployment", "default deployment when the YAML names none", default="")
    parser.addini("llmbias_results", "default for --llm-results", default="")
    parser.addini("llmbias_check_options", "check options for every case, one 'check.option = value' "
                  "a line (under the YAML's defaults and cases)", type="linelist", default=[])
    parser.addini("llmbias_correction", "default for --llm-correction (holm or bh)", default="")
    parser.addini("llmbias_progress_seconds", "seconds between progress updates while a test waits "
                  "for answers (default 1 on a terminal, 15 in CI logs)", default="")
    parser.addini("llmbias_attempts", "tries per request against throttling, 5xx and timeouts",
                  default="6")
    parser.addini("llmbias_timeout", "default for --llm-timeout (seconds per request; default 300)", default="")
    parser.addini("llmbias_max_samples", "adaptive sampling's ceiling when the YAML sets none "
                  f"(answers per prompt; default {DEFAULT_MAX_SAMPLES}; equal to samples turns adaptive sampling off)", default="")
    parser.addini("llmbias_provider", "azure, openai or databricks (default: from the environment, "
                  "AZURE_OPENAI_ENDPOINT, DATABRICKS_HOST or OPENAI_API_KEY/OPENAI_BASE_URL)", default="")
    parser.addini("llmbias_token_scope", "Entra ID scope for DefaultAzureCredential (default "
                  "https://cognitiveservices.azure.com/.default)", default="")
    parser.addini("llmbias_language", "the answers' language when the YAML sets none (en or zh; "
                  "default: detected from the answers)", default="")
    parser.addini("llmbias_judge_ahead", "live and record runs: judge the tests in the background, as many at a time "
                  "as requests may be in flight (false: each test when it runs)", type="bool", default=True)
    parser.addini("llmbias_spark", "build the run's Spark DataFrames (false: rows only, no JVM)",
                  type="bool", default=True)


def _run_config(config: pytest.Config) -> RunConfig:
    record, live = config.getoption("llm_record"), config.getoption("llm_live")
    if record not in (None, "new", "all"):
        raise pytest.UsageError(f"--llm-record takes new or all (got {record!r}); write --llm-record=all")
    correction = config.getoption("llm_correction") or config.getini("llmbias_correction")
    if correction and correction not in ("holm", "bh"):
        raise pytest.UsageError(f"{ini_source(config, 'llmbias_correction')} must be holm or bh (got {correction!r})")
    if correction and getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--llm-correction needs every test's p-value in one process: "
                                "it cannot be combined with pytest-xdist's -n")
    if record and live:
        raise pytest.UsageError("--llm-live cannot be combined with --llm-record: live writes no cassettes")
    resume = config.getoption("llm_resume")
    if resume and not live:
        raise pytest.UsageError("--llm-resume continues an interrupted --llm-live run" + (
            "; a record run keeps what it got in its cassettes, and the next --llm-record asks only the rest"
            if record else ": give it with --llm-live (a replay asks nothing, so has nothing to resume)"))
    samples = config.getoption("llm_samples")
    if samples is not None and not 1 <= samples <= 128:
        raise pytest.UsageError(f"--llm-samples must be between 1 and 128 (got {samples})")
    max_samples = config.getoption("llm_max_samples")
    if max_samples is not None and not 1 <= max_samples <= MAX_SAMPLES:
        raise pytest.UsageError(f"--llm-max-samples must be between 1 and {MAX_SAMPLES} (got {max_samples})")
    if samples is not None and max_samples is not None and looks_of(samples, max_samples) > MAX_LOOKS:
        raise pytest.UsageError(f"--llm-max-samples {max_samples} with --llm-samples {samples} plans "
                                f"{looks_of(samples, max_samples)} adaptive looks, at most {MAX_LOOKS}")
    ini_max_samples = config.getini("llmbias_max_samples")
    default_max_samples = (positive_int(ini_max_samples, ini_source(config, "llmbias_max_samples"))
                           if ini_max_samples else None)
    if default_max_samples is not None and default_max_samples > MAX_SAMPLES:
        raise pytest.UsageError(f"{ini_source(config, 'llmbias_max_samples')} must be at most {MAX_SAMPLES} "
                                f"(got {default_max_samples})")
    for name in ("concurrency", "tpm", "rpm"):
        value = config.getoption(f"llm_{name}")
        if value is not None and value < 1:
            raise pytest.UsageError(f"--llm-{name} must be at least 1 (got {value})")
    concurrency = config.getoption("llm_concurrency")
    deployment = config.getoption("llm_deployment") or None
    default_deployment = config.getini("llmbias_deployment") or None
    for source, name in (("--llm-deployment", deployment),
                         (ini_source(config, "llmbias_deployment"), default_deployment)):
        if name is not None and not DEPLOYMENT_NAME.fullmatch(name):
            raise pytest.UsageError(f"{source} {name!r} is not an Azure deployment name "
                                    "(2-64 letters, digits, '-', '_' or '.')")
    results_dir = config.getoption("llm_results") or _ini_path(config, "llmbias_results")
    if catalog_schema(config.getoption("llm_results") or config.getini("llmbias_results")):
        results_dir = None  # tables, written by the databricks feature plugin
    if results_dir and not ini_bool(config, "llmbias_spark"):
        raise pytest.UsageError("--llm-results writes Parquet through Spark, and llmbias_spark is false")
    worker = getattr(config, "workerinput", None)  # set on pytest-xdist workers
    workers = int(worker.get("workercount", 1)) if worker else 1
    tpm, rpm = config.getoption("llm_tpm"), config.getoption("llm_rpm")
    return RunConfig(
        run_id=worker.get("llmbias_run_id") if worker else None,
        lazy=worker is not None,
        mode="live" if live else (record or "replay"),
        deployment=deployment,
        default_deployment=default_deployment,
        samples=samples,
        max_samples=max_samples,
        default_max_samples=default_max_samples,
        language=_language(config),
        cassette_dir=_ini_path(config, "llmbias_cassette_dir"),
        concurrency=concurrency or 8,
        # each worker paces to its share of the quota
        tpm=max(1, tpm // workers) if tpm else None,
        attempts=positive_int(config.getini("llmbias_attempts"), ini_source(config, "llmbias_attempts")),
        timeout=timeout(config),
        rpm=max(1, rpm // workers) if rpm else None,
        correction=config.getoption("llm_correction") or config.getini("llmbias_correction") or None,
        results_dir=results_dir,
        spark=ini_bool(config, "llmbias_spark"),
        judge_ahead=ini_bool(config, "llmbias_judge_ahead"),
        rootdir=Path(config.rootpath),
        provider=_provider(config),
        token_scope=config.getini("llmbias_token_scope") or None,
        resume=resume,
    )


def _provider(config: pytest.Config) -> str | None:
    from .providers import PROVIDERS

    provider = config.getini("llmbias_provider").strip() or None
    if provider is not None and provider not in PROVIDERS:
        raise pytest.UsageError(f"{ini_source(config, 'llmbias_provider')} must be one of {', '.join(PROVIDERS)} "
                                f"(got {provider!r})")
    return provider


def _ini_path(config: pytest.Config, name: str) -> str | None:
    """A path from the ini file is relative to the ini file's folder (else the rootdir), like testpaths."""
    value = config.getini(name)
    if not value:
        return None
    base = config.inipath.parent if config.inipath else config.rootpath
    return str(Path(base, value))


def _check_settings(config: pytest.Config) -> dict[str, dict[str, Any]]:
    lines = config.getini("llmbias_check_options")
    if not lines:
        return {}
    from .cases import check_settings
    from .checks import REGISTRY

    try:
        return check_settings(lines, checks=REGISTRY.schemas(), source="llmbias_check_options")
    except CaseError as error:
        where = ini_source(config, "llmbias_check_options", lines, error.line - 1)
        raise pytest.UsageError(f"{where}: {error.message}") from None


def _language(config: pytest.Config) -> str | None:
    value = config.getini("llmbias_language").strip()
    if not value:
        return None
    from .cases import language_setting

    try:
        return language_setting(value)
    except CaseError as error:
        raise pytest.UsageError(f"{ini_source(config, 'llmbias_language')}: {error.message}") from None


def _register_user_checks(config: pytest.Config) -> list[str]:
    """Checks added through pytest_llmbias_register_checks; dropped again at unconfigure (notebooks run often)."""
    from .attributes import REGISTRY as ATTRIBUTES
    from .checks import REGISTRY

    before, attributes_before = set(REGISTRY.names()), set(ATTRIBUTES.names())
    try:
        config.hook.pytest_llmbias_register_checks.call_historic(kwargs={"registry": REGISTRY, "config": config})
    except (TypeError, ValueError) as error:
        raise pytest.UsageError(f"pytest_llmbias_register_checks: {error}") from None
    config.stash[USER_ATTRIBUTES_KEY] = [name for name in ATTRIBUTES.names() if name not in attributes_before]
    return [name for name in REGISTRY.names() if name not in before]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llmbias: a bias check generated from a YAML case file")
    progress_seconds(config)  # a mistake stops the run before anything is asked, not mid-run
    config.stash[SESSION_KEY] = LLMSession(_run_config(config))
    config.stash[USER_CHECKS_KEY] = _register_user_checks(config)
    config.stash[CHECK_SETTINGS_KEY] = _check_settings(config)
    config.stash[DESELECTED_FILES_KEY] = set()
    interrupts.stop_gracefully_on_sigterm(config)
    interrupts.handle_ctrl_c(config)
    # pytest-xdist: keep each case's tests on one worker, so its prompts are asked once.
    if getattr(config.option, "dist", "no") == "load" and not hasattr(config, "workerinput"):
        config.option.dist = "loadscope"
    if config.getoption("llm_plan") and getattr(config.option, "numprocesses", None):
        # a plan is counted in one process and runs no test: no pytest-xdist workers (as xdist does for --pdb)
        config.option.numprocesses, config.option.dist, config.option.tx = 0, "no", []
    _check_paths_given_apart(config)
    if (getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
            and config.stash[SESSION_KEY].config.mode != "replay" and not config.option.collectonly):
        # the controller collects no case: a missing endpoint would stop each worker at its collection, which
        # pytest-xdist shows as an internal error; said here, it is one line. Only the endpoint: a key may come
        # from a conftest hook the controller has not loaded yet, and the workers say so themselves.
        _check_settings_can_ask(config, only_endpoint=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput["llmbias_run_id"] = node.config.stash[SESSION_KEY].run_id


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    config = node.config
    if any(node_id.split("::", 1)[0].endswith(YAML_SUFFIXES) for node_id in ids):
        config.stash[SESSION_KEY].start_spark(config.hook.pytest_llmbias_spark_session(config=config))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    gathered = getattr(node, "workeroutput", {}).get("llmbias")
    if gathered:
        node.config.stash[SESSION_KEY].merge(gathered["answers"], gathered["verdicts"])
        node.config.stash[SESSION_KEY].learned(gathered.get("deployments") or {})
        node.config.stash[SESSION_KEY].merge_cassettes(gathered.get("cassettes") or {})


def pytest_unconfigure(config: pytest.Config) -> None:
    import gc

    if config.stash.get(GC_FROZEN_KEY, False):
        gc.unfreeze()  # a notebook kernel runs on: what this run froze can be collected again
        del config.stash[GC_FROZEN_KEY]

    interrupts.restore(config)
    if SESSION_KEY in config.stash:
        del config.stash[SESSION_KEY]
    if USER_CHECKS_KEY in config.stash:
        from .checks import REGISTRY

        for name in config.stash[USER_CHECKS_KEY]:
            REGISTRY.remove(name)
        del config.stash[USER_CHECKS_KEY]
    if USER_ATTRIBUTES_KEY in config.stash:
        from .attributes import REGISTRY as ATTRIBUTES

        for name in config.stash[USER_ATTRIBUTES_KEY]:
            ATTRIBUTES.remove(name)
        del config.stash[USER_ATTRIBUTES_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """An interrupt raised by our SIGTERM/SIGINT handler can land in a frame CPython 3.11 reports with no
    line number (a context manager's generated __enter__); pytest's report of it then crashes, losing
    the report and the exit code. Unlink such frames from the traceback before pytest formats it."""
    interrupts.drop_frames_without_lines(excinfo.tb)


def _named_on_command_line(config: pytest.Config, file_path: Path) -> bool:
    named = {Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args}
    return file_path.resolve() in named


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in YAML_SUFFIXES:
        return None
    config = parent.config
    from .cassettes import CASSETTE_DIR

    folders = file_path.parent.parts
    if CASSETTE_DIR in folders:
        return None
    if config.getini("llmbias_cases") in folders or _named_on_command_line(config, file_path):
        _start_spark_early(config)
        return CaseFile.from_parent(parent, path=file_path)
    return None


def _start_spark_early(config: pytest.Config) -> None:
    """The first case file found: start the JVM now, so it boots while the rest is collected and run."""
    llm_session = config.stash.get(SESSION_KEY, None)
    if (llm_session is None or config.option.collectonly or config.getoption("llm_plan")
            or hasattr(config, "workerinput")):  # workers leave Spark to the controller
        return
    llm_session.start_spark(config.hook.pytest_llmbias_spark_session(config=config))


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, CheckItem):
            item.config.stash[DESELECTED_FILES_KEY].add(Path(item.case.path))


def _note_files_run_in_part(config: pytest.Config, selected: list[tuple[Case, Any]]) -> None:
    """Files narrowed by a node id (`file.yaml::nurse`) are run in part, as -k deselection makes them:
    a record run must not drop the recordings of their other cases."""
    ran: dict[Path, set[tuple[str, str]]] = {}
    for case, check in selected:
        ran.setdefault(Path(case.path), set()).add((case.id, check.name))
    everything = config.stash.get(FILE_TESTS_KEY, {})
    config.stash[DESELECTED_FILES_KEY].update(
        path for path, tests in ran.items() if tests != everything.get(path, tests))


def _skipped_by_mark(item: pytest.Item) -> bool:
    """Whether a skip or skipif mark will skip the test (pytest's own evaluation of the marks)."""
    try:
        from _pytest.skipping import evaluate_skip_marks

        return evaluate_skip_marks(item) is not None
    except Exception:  # noqa: BLE001 - a condition that raises is pytest's to report when the test runs
        return False


def pytest_collection_finish(session: pytest.Session) -> None:
    llm_session = session.config.stash[SESSION_KEY]
    llm_session.register(item.case for item in session.items if isinstance(item, CheckItem))
    llm_session.selected = [(item.case, item.check) for item in session.items if isinstance(item, CheckItem)]
    _note_files_run_in_part(session.config, llm_session.selected)
    if not llm_session.has_cases or session.config.option.collectonly:
        return
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return  # pytest stops before the first test: ask nothing, start no JVM
    if session.config.getoption("llm_plan"):
        return  # pytest_runtestloop prints the plan instead of running the tests
    _check_settings_can_ask(session.config)
    if not hasattr(session.config, "workerinput"):  # workers fetch case by case and leave Spark to the controller
        try:
            llm_session.start_fetching()
        except CassetteUnreadable as problem:
            raise pytest.UsageError(str(problem)) from None
        # a test a skip mark (a conftest's, say) will skip asks no later batch for a verdict nobody reads
        llm_session.judge_ahead((item.case, item.check) for item in session.items  # read only when judging ahead
                                if isinstance(item, CheckItem) and not _skipped_by_mark(item))
        llm_session.start_spark(session.config.hook.pytest_llmbias_spark_session(config=session.config))
    _freeze_what_is_loaded(session.config)


_PATH_OPTIONS = ("--llm-baseline", "--llm-save", "--llm-html", "--llm-results")


def _existing_folder(arg: str, here: Path) -> Path | None:
    """The folder pytest takes from a command-line argument for its rootdir: the path's, or its file's."""
    if arg.startswith("-"):
        return None
    try:
        path = (here / arg.split("::")[0]).resolve()
        return (path if path.is_dir() else path.parent) if path.exists() else None
    except OSError:
        return None


def _check_paths_given_apart(config: pytest.Config) -> None:
    """`--llm-baseline /elsewhere/v1`: pytest chooses its rootdir before it knows plugins' options, so it reads
    the path as a test path too; with no ini file the rootdir becomes the common folder (/tmp), every case
    file's name changes, and a baseline matches nothing. Said at once, with the spelling that avoids it."""
    if config.inipath is not None:
        return  # the ini file's folder is the rootdir whatever the arguments
    here = Path(config.invocation_params.dir).resolve()
    root = Path(config.rootpath).resolve()
    if root == here or not here.is_relative_to(root):
        return
    args = [str(arg) for arg in config.invocation_params.args]
    apart = {at + 1 for at, (option, value) in enumerate(zip(args, args[1:]))
             if option in _PATH_OPTIONS and not value.startswith("-")}
    # as pytest does without an ini file: the common folder of the invocation folder and the arguments that exist,
    # here without the values of these options
    others = [folder for folder in (_existing_folder(arg, here) for at, arg in enumerate(args) if at not in apart)
              if folder is not None]
    without = Path(os.path.commonpath([str(here), *(str(folder) for folder in others)]))
    if root == without:
        return
    for at in sorted(apart):
        option, value = args[at - 1], args[at]
        path = _existing_folder(value, here)
        if path is not None and not path.is_relative_to(without):
            raise pytest.UsageError(f"{option} {value}: pytest also read this path as a test path and took "
                                    f"{root} as its rootdir, which renames every case file; write "
                                    f"{option}={value}")


def _check_settings_can_ask(config: pytest.Config, *, only_endpoint: bool = False) -> None:
    """The deployment's settings (endpoint, key, version) and the cassette layer, before anything is asked: a
    mistake is a one-line usage error. `only_endpoint`: other mistakes are left for later (a credential may
    come from a conftest's hook not loaded yet)."""
    from .cassettes import TransportNotIntercepted
    from .client import ConfigError, check_interception
    from .providers import EndpointError

    llm_session = config.stash[SESSION_KEY]
    llm_session.api_key = config.hook.pytest_llmbias_api_key(config=config)
    try:
        llm_session.settings()
        if llm_session.config.mode != "live":
            check_interception()
    except (ConfigError, TransportNotIntercepted) as problem:
        if only_endpoint and not isinstance(problem, EndpointError):
            return
        raise pytest.UsageError(str(problem)) from None


def _freeze_what_is_loaded(config: pytest.Config) -> None:
    """Move what start-up loaded (modules, cassettes, collected tests) out of the garbage collector's
    sight until the run ends: its full collections then walk only what the tests make. Undone at
    unconfigure; left alone when something else in the process froze objects already."""
    import gc

    if gc.isenabled() and gc.get_freeze_count() == 0:
        gc.freeze()
        config.stash[GC_FROZEN_KEY] = True


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """--llm-plan: say what the run would ask and run nothing; a clean end (exit 0), not an exit."""
    llm_session = session.config.stash[SESSION_KEY]
    if (not session.config.getoption("llm_plan") or not llm_session.has_cases
            or session.config.option.collectonly or session.testsfailed):
        return None  # pytest's own loop (which also stops on collection errors)
    _print_plan(session.config, llm_session)
    return True


PLAN_TPM = 240_000  # Azure's default quota of a standard gpt-35-turbo deployment: what a plan without one shows


def _minutes(minutes: float) -> str:
    return f"{minutes * 60:.0f}s" if minutes < 1 else f"{minutes:.1f} min"


def _print_plan(config: pytest.Config, llm_session: LLMSession) -> None:
    plan = llm_session.plan()
    mode = llm_session.config.mode
    what = {"live": "a live run", "all": "--llm-record=all"}.get(mode, "--llm-record")
    quota = ", ".join(f"{value} {name}" for name, value in
                      (("TPM", llm_session.config.tpm), ("RPM", llm_session.config.rpm)) if value)
    writer = config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{what} would send at most {plan.requests} requests ({plan.samples} completions), "
             f"about {plan.tokens} tokens charged against the quota",
             f"estimated time: {plan.seconds:.0f}s at {quota or 'no quota given (--llm-tpm/--llm-rpm)'}"
             f", {llm_session.config.concurrency} in flight, ~1s per request"]
    if not quota and plan.tokens:
        # the deployment reports its quota only once it answers, and a live run is paced by it
        lines.append(f"  a live run is paced by the quota the deployment reports: {plan.tokens} tokens take "
                     f"{_minutes(plan.tokens / PLAN_TPM)} at {PLAN_TPM:,} TPM; give --llm-tpm to plan with yours")
    for line in lines:
        writer.write_line(line) if writer else print(line)


@pytest.fixture(scope="session")
def llm_answers(request: pytest.FixtureRequest) -> Any:
    """All answers of the run's selected cases as a Spark DataFrame (fetched now if need be)."""
    from .results import SparkUnavailable

    llm_session = request.config.stash[SESSION_KEY]
    if not llm_session.config.spark:  # one line at the test's setup, not a traceback; nothing asked for it
        pytest.fail(f"llm_answers needs Spark, and {ini_source(request.config, 'llmbias_spark')} is false (without "
                    "Spark the rows are in the pytest_llmbias_results hook's results.answer_rows)", pytrace=False)
    try:
        llm_session.fetch_all(on_wait=on_wait(request.config))
    finally:
        settle_progress(request.config, request.node.nodeid)
    try:
        return llm_session.answers_dataframe()
    except SparkUnavailable as problem:
        pytest.fail(f"llm_answers needs Spark: {problem}", pytrace=False)


HOOK_FAILURES_KEY = pytest.StashKey[list]()


def _call_results_hooks(config: pytest.Config, results: Any) -> bool:
    """Call every pytest_llmbias_results implementation, each on its own: one that raises (a conftest
    reading `results.answers` in a run without Spark) is reported with its traceback at the end, and
    neither the others nor the run's report are lost. True when one raised."""
    import traceback

    failures = config.stash.setdefault(HOOK_FAILURES_KEY, [])
    impls = config.hook.pytest_llmbias_results.get_hookimpls()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and any(not str(getattr(impl.function, "__module__", "")).startswith("pytest_llmbias")
                                    for impl in impls):
        reporter.ensure_newline()  # what a user's hook prints (a DataFrame's show()) starts on a line of its own
    for impl in reversed(impls):  # pluggy's order: last first
        arguments = {"results": results, "config": config}
        try:
            impl.function(**{name: arguments[name] for name in impl.argnames})
        except Exception as error:
            where = getattr(impl.plugin, "__file__", None) or impl.plugin_name
            failures.append((f"pytest_llmbias_results in {where} raised {type(error).__name__}: {error}",
                             "".join(traceback.format_exception(error)).rstrip()))
    return bool(failures)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """After the results: what the run learned about its deployments (one that ignores n), once; a results
    hook that raised, with its traceback."""
    llm_session = config.stash.get(SESSION_KEY, None)
    for line in llm_session.notes() if llm_session is not None else ():
        terminalreporter.write_line(line)
    for headline, trace in config.stash.get(HOOK_FAILURES_KEY, []):
        terminalreporter.write_sep("-", "pytest_llmbias_results hook failed", red=True)
        terminalreporter.write_line(trace)
        terminalreporter.write_line(headline, red=True)


def _stopped_by_the_deployment(session: pytest.Session) -> bool:
    """Whether pytest-xdist's controller stopped the run because a worker met a deployment no request can reach."""
    dsession = session.config.pluginmanager.getplugin("dsession")
    return str(getattr(dsession, "shouldstop", "") or "").startswith("pytest-llmbias: ")


def _tidy_journals(session: pytest.Session, llm_session: LLMSession, exitstatus: int) -> None:
    """Remove the journals nothing will resume: a record run's (its cassettes hold every answer, and --llm-resume
    is for live runs), and a live run's that went through every test with every request answered, with each
    journal it resumed whose every answer this run has too (serially: a pytest-xdist controller asks nothing).
    A journal left behind would be served to a later --llm-resume as if its run had been cut short."""
    from .journal import JOURNAL_DIR

    own = llm_session.config.rootdir / JOURNAL_DIR / f"{llm_session.run_id}.jsonl"
    if llm_session.config.mode not in ("live", "replay"):  # a record run ("new", "all")
        own.unlink(missing_ok=True)
        return
    if _stopped_early(session, llm_session, exitstatus) or llm_session.learned().get("failed"):
        return
    own.unlink(missing_ok=True)
    answered = llm_session.fetcher.answered_keys()
    for path, keys in llm_session.fetcher.resumed_journals.items() if answered else ():
        if keys <= answered:
            path.unlink(missing_ok=True)


def _stopped_early(session: pytest.Session, llm_session: LLMSession, exitstatus: int) -> bool:
    """Whether the run ended before all its selected tests: interrupted, -x, --maxfail, or stopped by the deployment."""
    dsession = session.config.pluginmanager.getplugin("dsession")
    return bool(exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldfail or session.shouldstop
                or getattr(dsession, "shouldstop", None) or llm_session.stopped is not None)


def _why_nothing_is_dropped(session: pytest.Session, llm_session: LLMSession, exitstatus: int) -> str | None:
    """Why a record run may not drop the recordings it did not ask for, or None when it may: it went through every
    selected test (not interrupted, -x, --maxfail, or stopped by the deployment: a wrong deployment, a refused
    key) and asked what the files say (not --llm-samples, --llm-max-samples or --llm-deployment instead)."""
    if _stopped_early(session, llm_session, exitstatus):
        return "the run stopped before all its tests"
    overridden = [flag for option, flag in REQUEST_OPTIONS if session.config.getoption(option, None) is not None]
    if overridden:
        return f"{' and '.join(overridden)} changed what the run asked"
    return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.INTERRUPTED and _stopped_by_the_deployment(session):
        # pytest-xdist turns a worker's stop into an interruption (exit 2): the deployment stopped the run, as
        # serially, and a run it stopped exits 1
        session.exitstatus = exitstatus = pytest.ExitCode.TESTS_FAILED  # and finished as stopped, not interrupted
    llm_session = session.config.stash.get(SESSION_KEY, None)
    worker_output = getattr(session.config, "workeroutput", None)
    if (llm_session is not None and worker_output is None and getattr(session.config.option, "numprocesses", None)
            and exitstatus == pytest.ExitCode.INTERRUPTED and not llm_session.gathered_anything):
        # Ctrl-C under pytest-xdist: the workers stopped before handing their rows over. Their answers are in the
        # run's journal: say so (notes()), and leave no exchange folder behind.
        from .journal import remove_shared

        llm_session.fetcher.interrupted = True
        remove_shared(llm_session.config.rootdir, llm_session.run_id)
        return
    if (llm_session is not None and exitstatus == pytest.ExitCode.INTERRUPTED and worker_output is None
            and not llm_session.gathered_anything):
        # Ctrl-C or SIGTERM before the first answer arrived: nothing more is asked (a retry's wait, the requests
        # held behind the first, all end now) and what did arrive is kept; the notes say where.
        llm_session.fetcher.interrupted = True
        llm_session.stop_fetching(timeout=5.0)
        return
    if (llm_session is None or not llm_session.has_cases or session.config.option.collectonly
            or session.config.getoption("llm_plan") or exitstatus == pytest.ExitCode.USAGE_ERROR
            or not llm_session.gathered_anything):
        if llm_session is not None and exitstatus == pytest.ExitCode.INTERRUPTED:
            llm_session.stop_fetching(timeout=5.0)  # a pytest-xdist worker interrupted before its first answer
        if llm_session is not None and worker_output is None and llm_session.config.mode != "replay":
            from .journal import JOURNAL_DIR

            own = llm_session.config.rootdir / JOURNAL_DIR / f"{llm_session.run_id}.jsonl"
            if own.is_file() and (llm_session.config.mode != "live" or not own.stat().st_size):
                own.unlink()  # nothing in it to resume (a run stopped at its first request)
        return
    if worker_output is not None:  # a pytest-xdist worker: hand the rows to the controller
        llm_session.stop_fetching()
        worker_output["llmbias"] = {"answers": llm_session.answer_rows(request_keys=True),
                                    "verdicts": llm_session.verdict_rows,
                                    "deployments": llm_session.learned(),
                                    "cassettes": llm_session.cassette_report(session.config.stash[DESELECTED_FILES_KEY])}
        return
    if getattr(session.config.option, "numprocesses", None):  # what the workers shared is in the journal too
        from .journal import remove_shared

        remove_shared(llm_session.config.rootdir, llm_session.run_id)
    llm_session.stop_judging_ahead()  # before pruning: nothing more is noted
    kept_because = _why_nothing_is_dropped(session, llm_session, exitstatus)
    if kept_because is None:
        llm_session.prune_cassettes(session.config.stash[DESELECTED_FILES_KEY])
    else:  # only a whole run of what the files ask knows what is no longer asked
        llm_session.keep_every_recording(kept_because)
    give_up = interrupts.hurry_on_sigint(session.config)
    results = llm_session.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED, give_up=give_up)
    if _call_results_hooks(session.config, results) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if give_up is not None and give_up.is_set():
        session.exitstatus = pytest.ExitCode.INTERRUPTED
    if worker_output is None:
        _tidy_journals(session, llm_session, exitstatus)

"""Answers on disk while a run goes: the journal (kept, resumable) and the answers pytest-xdist workers share.

The journal, `.llmbias/journal/RUN_ID.jsonl`, gets one line per answer of a live or record run as it
arrives. `--llm-resume` reads the newest journal of an earlier run back: its answers stand in for the
requests they answer, and only the rest are asked.

pytest-xdist workers of one run share a folder beside it, `.llmbias/journal/RUN_ID.shared/`: the first
worker that needs a request claims it (a file created exclusively), asks it and publishes the outcome;
a worker that needs it later waits for that outcome instead of asking again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .wire import ChatRequest, Completion

JOURNAL_DIR = Path(".llmbias") / "journal"
SHARED_SUFFIX = ".shared"
POLL_S = 0.05

Outcome = Completion | str | BaseException


def journal_folder(rootdir: Path) -> Path:
    """The journal folder, made on first use and never committed by accident (like .pytest_cache)."""
    folder = rootdir / JOURNAL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by pytest-llmbias: answers of live and record runs\n*\n")
    return folder


def completion_data(completion: Completion) -> dict[str, Any]:
    return dataclasses.asdict(completion)


def completion_from(data: dict[str, Any]) -> Completion | None:
    """A Completion from its journal or shared form; None for a line this version cannot read."""
    names = {item.name for item in dataclasses.fields(Completion)}
    try:
        values = {name: tuple(value) if isinstance(value, list) else value
                  for name, value in data.items() if name in names}
        return Completion(**values)
    except TypeError:  # a line written before the journal kept whole completions
        return None


class Journal:
    """One run's journal: a line per answer as it arrives, flushed at once."""

    @staticmethod
    def path_for(rootdir: Path, run_id: str) -> Path:
        return journal_folder(rootdir) / f"{run_id}.jsonl"

    def __init__(self, rootdir: Path, run_id: str) -> None:
        self.path = self.path_for(rootdir, run_id)
        self.run_id = run_id
        self._file: TextIO | None = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, key: str, request: ChatRequest, completion: Completion) -> None:
        line = {"run_id": self.run_id, "key": key, "deployment": request.deployment, "prompt": request.prompt,
                "system_prompt": request.system_prompt, "n": request.n, **completion_data(completion)}
        text = json.dumps(line, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(text)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_journal(path: Path) -> dict[str, Completion]:
    """A journal's answers by request key (a line cut short by a kill left out)."""
    answers: dict[str, Completion] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:  # the last line of a killed run may be cut short
                continue
            completion = completion_from(data) if isinstance(data, dict) and "key" in data else None
            if completion is not None:
                answers[data["key"]] = dataclasses.replace(completion, replayed=False, throttled=0)
    return answers


def earlier_answers(rootdir: Path, run_id: str) -> tuple[Path | None, dict[str, Completion], dict[Path, frozenset[str]]]:
    """The answers of every earlier run's journal by request key, the newest journal's answer where two hold one
    (--llm-resume): the newest journal that holds any, all the answers, and each journal read with its request
    keys. A run that went
    through its tests removes its journal, so those left are of runs stopped or interrupted, and an empty one
    (a run stopped at its first request) hides none of them."""
    folder = rootdir / JOURNAL_DIR
    journals = [path for path in folder.glob("*.jsonl") if path.stem != run_id] if folder.is_dir() else []
    answers: dict[str, Completion] = {}
    read: dict[Path, frozenset[str]] = {}
    for path in sorted(journals, key=lambda path: path.stat().st_mtime):  # oldest first: the newest wins
        found = read_journal(path)
        if found:
            answers.update(found)
            read[path] = frozenset(found)
    return (list(read)[-1] if read else None), answers, read


class SharedOutcomes:
    """The outcomes pytest-xdist workers of one run share, so that each request is asked by one of them."""

    def __init__(self, rootdir: Path, run_id: str) -> None:
        self.folder = shared_folder(rootdir, run_id)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str, suffix: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:40] + suffix)

    def claim(self, key: str) -> bool:
        """True when this worker is to ask the request; False when another one asks (or asked) it."""
        claim = self._path(key, ".claim")
        while True:
            try:
                descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self._path(key, ".json").exists() or _alive(claim):
                    return False
                claim.unlink(missing_ok=True)  # its worker died before publishing: take the request over
                continue
            with os.fdopen(descriptor, "w") as handle:
                handle.write(str(os.getpid()))
            return True

    def publish(self, key: str, outcome: Outcome, recorded_in: Sequence[str] = (),
                recorded_keys: Sequence[str] = ()) -> None:
        """`recorded_in`: the cassettes (written to disk first) that hold this answer's recording, for a worker
        whose own case files share the request to copy it into theirs; `recorded_keys`: the requests of that
        recording this run made (the request itself, or the single requests that completed it)."""
        if isinstance(outcome, Completion):
            data: dict[str, Any] = {"completion": completion_data(outcome), "recorded_in": list(recorded_in),
                                    "recorded_keys": list(recorded_keys)}
        elif isinstance(outcome, str):
            data = {"failure": outcome}
        else:  # a bug in the worker that asked: the tests of the other worker say so too
            data = {"failure": f"{type(outcome).__name__}: {outcome}"}
        target = self._path(key, ".json")
        partial = target.with_suffix(f".{os.getpid()}.part")
        partial.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, target)  # whole or absent, never half written

    def wait(self, key: str, stopping: threading.Event) -> Outcome | None:
        """The outcome another worker published; None when it died first (claim the request again)."""
        target, claim = self._path(key, ".json"), self._path(key, ".claim")
        while not target.exists():
            if stopping.wait(POLL_S):
                return "not asked: the run was interrupted"
            if not target.exists() and not _alive(claim):
                return None
        data = json.loads(target.read_text(encoding="utf-8"))
        if "completion" in data:
            completion = completion_from(data["completion"])
            if completion is not None:
                return completion
        return str(data.get("failure", "no answer"))


    def recorded_in(self, key: str) -> tuple[list[str], list[str]]:
        """The cassettes the worker that asked `key` recorded its answer in, and the request keys it recorded
        there this run (after `wait` returned it)."""
        try:
            data = json.loads(self._path(key, ".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return [], []
        if not isinstance(data, dict):
            return [], []
        return ([str(path) for path in data.get("recorded_in", ())],
                [str(recorded) for recorded in data.get("recorded_keys", ())])


def shared_folder(rootdir: Path, run_id: str) -> Path:
    return rootdir / JOURNAL_DIR / f"{run_id}{SHARED_SUFFIX}"


def remove_shared(rootdir: Path, run_id: str) -> None:
    shutil.rmtree(shared_folder(rootdir, run_id), ignore_errors=True)


def _alive(claim: Path) -> bool:
    """Whether the worker that claimed a request still runs (a claim being written counts as alive)."""
    try:
        text = claim.read_text().strip()
    except FileNotFoundError:
        return False
    if not text:
        return True
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True

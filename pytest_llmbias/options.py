"""Reading the plugin's options: ini values as errors name them (file, line and option), and the
typed options several modules read. Depends on pytest alone, so every layer may import it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest


def timeout(config: pytest.Config) -> float | None:
    """--llm-timeout, else ini llmbias_timeout, in seconds; None: the client's default."""
    given, source = config.getoption("llm_timeout"), "--llm-timeout"
    if given is None:
        text, source = config.getini("llmbias_timeout").strip(), ini_source(config, "llmbias_timeout")
        if not text:
            return None
        try:
            given = float(text)
        except ValueError:
            raise pytest.UsageError(f"{source} must be a number of seconds (got {text!r})") from None
    if not 0 < given < float("inf"):
        raise pytest.UsageError(f"{source} must be a number of seconds above 0 (got {given:g})")
    return given


def ini_source(config: pytest.Config, name: str, value_lines: Sequence[str] = (), index: int = -1) -> str:
    """An ini option as an error names it: the file and line its value comes from, and the option
    ("tox.ini:7 llmbias_timeout"; "-o llmbias_timeout" when given on the command line). `value_lines`
    and `index`: a multi-line value and the line of it to point at, rather than the option's first."""
    overrides = getattr(config.option, "override_ini", None) or ()
    if any(str(entry).split("=", 1)[0].strip() == name for entry in overrides):
        return f"-o {name}"
    if not config.inipath:
        return f"ini {name}"
    line = _ini_file_line(config.inipath, name, value_lines, index)
    return f"{config.inipath.name}:{line} {name}" if line else f"{config.inipath.name} {name}"


# the sections pytest reads its options from, by the file's kind
# (pytest 9's pytest.toml holds a [pytest] table)
_PYTEST_SECTIONS = {".toml": ("tool.pytest.ini_options", "tool.pytest", "pytest"), ".cfg": ("tool:pytest",),
                    ".ini": ("pytest", "tool:pytest")}


def _ini_file_line(path: Path, name: str, value_lines: Sequence[str] = (), index: int = -1) -> int | None:
    """The line of `path` where option `name` is set in pytest's section (ini `name =`/`name:`, TOML
    `name =`), or where line `index` of its value appears after it (the value's lines are found in
    order, so a repeated line is told apart); None when it cannot be found (never an error)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    sections = _PYTEST_SECTIONS.get(path.suffix, ("pytest",))
    key = re.compile(rf"^\s*[\"']?{re.escape(name)}[\"']?\s*[=:]")
    header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(?:[#;].*)?$")
    inside = False
    for number, line in enumerate(lines):
        found = header.match(line)
        if found and not key.match(line):
            inside = found.group(1).strip("\"'") in sections
            continue
        if not inside or not key.match(line):
            continue
        if not 0 <= index < len(value_lines):
            return number + 1
        at = number
        for position, wanted in enumerate(value_lines[:index + 1]):
            wanted = wanted.strip()
            if not wanted:
                continue
            hit = next((later for later in range(at, len(lines)) if wanted in lines[later]), None)
            if hit is None:
                return number + 1
            at = hit if position == index else hit + 1
        return at + 1
    return None


def ini_bool(config: pytest.Config, name: str) -> bool:
    """A type="bool" ini option; a value pytest cannot read as true or false is a one-line error
    naming the file, line and option (pytest's own says only "invalid truth value")."""
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError) as error:  # pytest 9 raises UsageError
        raise pytest.UsageError(f"{ini_source(config, name)} must be true or false ({error})") from None


def progress_seconds(config: pytest.Config) -> float | None:
    """ini llmbias_progress_seconds: seconds between progress updates; None: the default pace."""
    text = config.getini("llmbias_progress_seconds").strip()
    if not text:
        return None
    try:
        every = float(text)
    except ValueError:
        every = float("nan")
    if not 0 < every < float("inf"):
        raise pytest.UsageError(f"{ini_source(config, 'llmbias_progress_seconds')} must be a number of "
                                f"seconds above 0 (got {text!r})")
    return every


def positive_int(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"{name} must be a whole number (got {text!r})") from None
    if value < 1:
        raise pytest.UsageError(f"{name} must be at least 1 (got {value})")
    return value

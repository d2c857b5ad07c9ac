"""Progress while tests wait for answers, written through pytest's terminal reporter.

pytest captures what a test writes; this writes around the capture the way pytest's live logging
does, so the lines reach the user whatever the capture mode. On a terminal one status line is
rewritten in place; in a CI log (not a terminal, or CI set) plain lines follow at a slower pace.
Afterwards pytest's own line (the file name and its result letters) is started again, so its
output is never mixed into ours. No pytest import: the reporter and capture manager are handed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

PREFIX = "[llm] "


class ProgressDisplay:
    def __init__(self, reporter: Any, capture_manager: Any, *, status_line: bool, every: float,
                 describe: Callable[[], str], width: Callable[[], int] = lambda: 80) -> None:
        self.reporter = reporter
        self.width = width
        self.capture_manager = capture_manager
        self.status_line = status_line  # rewrite one line in place (a terminal) or add lines (a log)
        self.every = every
        self.describe = describe
        self._last = time.monotonic()
        self._shown = False  # something of ours is on the screen since pytest last wrote

    def tick(self) -> None:
        """Called while a test waits; writes when `every` seconds passed since the last line."""
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        with self._outside_capture():
            self._write(PREFIX + self.describe())

    def settle(self, nodeid: str) -> None:
        """The wait is over: leave the last figures on screen and give pytest back a line of its own."""
        if not self._shown:
            return
        with self._outside_capture():
            if self.status_line:
                self._write(PREFIX + self.describe())
            self._shown = False
            # pytest writes result letters after the file name: start that line again for them
            # (verbose mode writes the test's name on a new line itself)
            if self.reporter.verbosity <= 0:
                self.reporter.write_fspath_result(nodeid, "")
            self.reporter.flush()

    def _write(self, text: str) -> None:
        width = max(20, self.width() - 1) if self.status_line else None
        if width is not None and len(text) > width:
            text = text[:width - 1] + "…"
        if not self._shown:
            self.reporter.ensure_newline()  # end pytest's line (file name and letters) first
            self.reporter.write(text, flush=True)
            self._shown = True
        elif self.status_line:
            self.reporter.rewrite(text, erase=True)
            self.reporter.flush()
        else:
            self.reporter.write("\n" + text, flush=True)

    def _outside_capture(self) -> Any:
        if self.capture_manager is None:
            return nullcontext()
        return self.capture_manager.global_and_fixture_disabled()

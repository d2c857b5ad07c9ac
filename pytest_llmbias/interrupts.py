"""Signals during a run: SIGTERM ends it as Ctrl-C does, a second Ctrl-C only cuts the waits short,
so the report of what was gathered is still printed; and the handlers are put back afterwards."""

from __future__ import annotations

from typing import Any

import pytest


SIGTERM_KEY = pytest.StashKey[Any]()


def stop_gracefully_on_sigterm(config: pytest.Config) -> None:
    """A CI time-out's SIGTERM ends the run like Ctrl-C: answers so far reach the cassettes and results."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # somebody else handles it (a notebook kernel, a runner): leave it to them

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    config.stash[SIGTERM_KEY] = signal.signal(signal.SIGTERM, interrupt)


SIGINT_KEY = pytest.StashKey[Any]()


class CtrlC:
    """SIGINT while the run goes on: the first one raises KeyboardInterrupt, as usual; from then
    on, and from the end of the tests, Ctrl-C only cuts the waits short (`give_up`), so the report
    of what was gathered is still printed."""

    def __init__(self) -> None:
        import threading

        self.give_up = threading.Event()
        self.winding_down = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.winding_down:
            self.give_up.set()
            return
        self.winding_down = True
        import signal

        signal.default_int_handler(signum, frame)  # raises where the run was, as if we were not here


def handle_ctrl_c(config: pytest.Config) -> None:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # somebody else handles it (a notebook kernel, a runner): leave it to them
    handler = CtrlC()
    config.stash[SIGINT_KEY] = (signal.signal(signal.SIGINT, handler), handler)


def hurry_on_sigint(config: pytest.Config) -> Any:
    """From here to the end, Ctrl-C cuts the waits short instead of raising."""
    if SIGINT_KEY not in config.stash:
        return None
    handler = config.stash[SIGINT_KEY][1]
    handler.winding_down = True
    return handler.give_up


def restore(config: pytest.Config) -> None:
    """The handlers as they were before the run (a notebook kernel runs on)."""
    import signal

    if SIGTERM_KEY in config.stash:
        signal.signal(signal.SIGTERM, config.stash[SIGTERM_KEY])
        del config.stash[SIGTERM_KEY]
    if SIGINT_KEY in config.stash:
        signal.signal(signal.SIGINT, config.stash[SIGINT_KEY][0])
        del config.stash[SIGINT_KEY]


def drop_frames_without_lines(tb: Any) -> None:
    while tb is not None:
        following = tb.tb_next
        while following is not None and following.tb_lineno is None:
            following = following.tb_next
        if following is not tb.tb_next:
            tb.tb_next = following
        tb = following

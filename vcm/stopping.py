"""Stopping a command: SIGTERM (``kill``, a batch scheduler's time limit, a container being stopped) does what
Ctrl-C (SIGINT) does. A stage that can save its work finishes the step in progress and saves it; anywhere else
the command stops with what it finished and its saved checkpoints kept, as after Ctrl-C."""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # the stop signals this process was sent, in order


def stop_on_terminate() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in this process, once: a second one while it stops is
    ignored, so that a stop already under way (a checkpoint being written) is not cut short by a repeat."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_interrupt)


def _as_interrupt(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    received(signum)
    raise KeyboardInterrupt


def received(signum: int) -> str:
    """Note a stop signal; its name as the messages say it (Ctrl-C for SIGINT)."""
    _received.append(signum)
    return _name(signum)


def cause() -> str:
    """What stopped this process, for the closing message: the first stop signal noted, else Ctrl-C (a
    KeyboardInterrupt raised by Python's own SIGINT handler)."""
    return _name(_received[0]) if _received else "Ctrl-C"


def stop_workers(processes) -> None:
    """Ask worker processes (``multiprocessing`` children) to stop as this one does: SIGTERM, which a worker
    that runs :func:`stop_on_terminate` takes as Ctrl-C. A worker started by ``kill``-ing its parent alone
    went on with its point, outside any run, holding its fit's lock and the cores."""
    import os

    for p in processes:
        if p.is_alive() and p.pid is not None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name

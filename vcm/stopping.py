"""Stopping a command: SIGTERM (``kill``, a batch scheduler's time limit, a container being stopped), and SIGUSR1,
SIGUSR2 and SIGHUP where they are not ignored (a scheduler's warning before its limit, a closed terminal), do what
Ctrl-C (SIGINT) does. A stage that can save its work finishes the step in progress and saves it; anywhere else
the command stops with what it finished and its saved checkpoints kept, as after Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Stops too, unless the process was started with them ignored (nohup ignores SIGHUP): a batch scheduler's warning
# before its time limit (Slurm's --signal=USR1@120, B:USR2), a terminal or an ssh session that closes. By default
# each ended the process where it stood, losing what it had trained since its last save.
STOP_UNLESS_IGNORED = tuple(getattr(signal, name) for name in ("SIGUSR1", "SIGUSR2", "SIGHUP") if hasattr(signal, name))
_received: list[int] = []  # the stop signals this process was sent, in order


def install() -> dict:
    """From now on Ctrl-C, SIGTERM and :data:`STOP_UNLESS_IGNORED` (where not ignored) raise KeyboardInterrupt in
    this process: every Ctrl-C (a second one aborts a stop under way), another only when it is the first stop (a
    parent passing its stop on to its workers after the terminal's Ctrl-C reached them must not cut their stop
    short). Returns the handlers it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _as_interrupt) for s in stop_signals()}


def stop_signals() -> tuple[int, ...]:
    """The signals that stop this process as Ctrl-C does: :data:`STOP_SIGNALS`, and those of
    :data:`STOP_UNLESS_IGNORED` it was not started with ignored. Whoever takes them for a while (a training stage
    that saves before it stops) takes these."""
    return STOP_SIGNALS + tuple(s for s in STOP_UNLESS_IGNORED if signal.getsignal(s) is not signal.SIG_IGN)


@contextlib.contextmanager
def like_a_command() -> Iterator[None]:
    """:func:`install` while a worker process runs a task for its parent, then its own handlers again: an idle
    worker that a stop reaches ends quietly instead of raising in its pool's loop."""
    old = install()
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _as_interrupt(signum, frame) -> None:
    first = not _received
    received(signum)
    if first or signum == signal.SIGINT:
        raise KeyboardInterrupt


def received(signum: int) -> str:
    """Note a stop signal; its name as the messages say it (Ctrl-C for SIGINT)."""
    _received.append(signum)
    return _name(signum)


def cause() -> str:
    """What stopped this process, for the closing message: the first stop signal noted, else Ctrl-C."""
    return _name(_received[0]) if _received else "Ctrl-C"


def stop_workers(processes) -> None:
    """Ask worker processes (``multiprocessing`` children) to stop as this one does: SIGTERM, which a worker
    running a task under :func:`like_a_command` takes as Ctrl-C. A worker whose parent alone was ``kill``-ed went
    on with its point outside any run, holding its fit's lock and the cores."""
    for p in processes:
        if p.is_alive() and p.pid is not None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name

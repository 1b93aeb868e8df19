"""The one place library code reports progress and messages (on stderr).

Library functions call :func:`log` and :func:`progress`; everything goes to stderr, so ``--json``
output on stdout stays machine-readable. ``set_quiet`` silences a process (parallel CTC workers).

Two renderings, chosen by ``VCM_PROGRESS``:

- ``bars`` (default on a terminal): rich progress bars with ETA;
- ``lines`` (default when stderr is a pipe or a file, e.g. a cluster log): one timestamped line
  when a stage starts, one at least every ``VCM_PROGRESS_INTERVAL`` seconds (default 10) with
  count, status (loss, PSNR…), elapsed time and ETA, and one when it ends;
- ``0`` / ``off``: nothing (messages from :func:`log` still appear); ``1``: bars even in a pipe.

Log files added with :func:`log_to` receive every message and the line rendering, whatever is
shown on the console (``vcm ctc run`` keeps ``ctc.log`` in its output folder).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vcm.errors import VcmError
from vcm import fsutil
from vcm.fsutil import not_regular, open_regular

# Plain text, never markup or emoji codes: messages carry paths, names and errors that a user gave or a stream
# declared; "d[/x]/clip.yuv" raised a MarkupError (a traceback), "d[bold]/clip.yuv" lost its brackets and
# "e:car:/clip.yuv" was shown with a car in it.
console = Console(stderr=True, highlight=False, markup=False, emoji=False)
_quiet = False
_log_files: list[Path] = []
_last_line = time.time()  # when this process last printed a line (lines rendering), for heartbeats


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


_MODES = {"": None, "0": "off", "off": "off", "none": "off", "1": "bars", "bars": "bars", "lines": "lines"}


def mode() -> str:
    """``bars``, ``lines`` or ``off`` for the console (see the module docstring); a ``VCM_PROGRESS`` vcm does not know
    is the default here, and refused by :func:`check_settings`."""
    chosen = _MODES.get(os.environ.get("VCM_PROGRESS", "").strip().lower())
    return chosen or ("bars" if console.is_terminal else "lines")


def interval() -> float:
    """Seconds between progress lines: ``VCM_PROGRESS_INTERVAL``, else (or where it is no such number) 10."""
    seconds = _interval_setting()
    return 10.0 if seconds is None else seconds


def _interval_setting() -> float | None:
    """``VCM_PROGRESS_INTERVAL`` in seconds (10 where it is unset or empty), None where it is not a finite number of
    0 or more."""
    text = os.environ.get("VCM_PROGRESS_INTERVAL", "")
    try:
        seconds = float(text) if text.strip() else 10.0
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None  # nan was 0: a line at every update


def check_settings() -> None:
    """Refuse, in one line, a ``VCM_PROGRESS`` or ``VCM_PROGRESS_INTERVAL`` vcm does not know (``VCM_PROGRESS=bar``
    gave lines in a log with no word of the typo)."""
    from vcm.errors import VcmError

    value = os.environ.get("VCM_PROGRESS", "")
    if value.strip().lower() not in _MODES:
        raise VcmError(f"VCM_PROGRESS={value!r}: use bars, lines or 0 (off), or unset it for bars on a terminal and "
                       "lines elsewhere")
    if _interval_setting() is None:
        raise VcmError(f"VCM_PROGRESS_INTERVAL={os.environ['VCM_PROGRESS_INTERVAL']!r}: give the seconds between "
                       "progress lines, a number of 0 or more (default 10)")


@contextlib.contextmanager
def log_to(path: str | os.PathLike) -> Iterator[Path]:
    """Also append every message and progress line to ``path`` while the block runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_file():  # a pipe there waited for a reader at the first line
        raise not_regular(path, "log")
    _log_files.append(path)
    try:
        yield path
    finally:
        _log_files.remove(path)


def _stamp(message: str) -> str:
    return f"{time.strftime('%H:%M:%S')} {message}"


def _to_files(line: str) -> None:
    for path in list(_log_files):
        try:
            # a path's bytes that are not UTF-8 (a latin-1 file name) are written as \xe9, not refused
            with open_regular(path, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(f"{time.strftime('%Y-%m-%d')} {line}\n")
        except (OSError, VcmError):  # a log is kept where possible; log_to refused a path that never could be
            pass


def _print_line(stamped: str) -> None:
    global _last_line
    _last_line = time.time()
    console.print(stamped, soft_wrap=True)


def log(message: str, style: str | None = None) -> None:
    """Print one status line, plain text in ``style`` (e.g. ``"yellow"`` for a warning) on a terminal
    (suppressed in quiet mode; always written to the log files)."""
    _to_files(_stamp(message))
    if not _quiet:
        if mode() == "lines":
            _print_line(_stamp(message))
        else:
            console.print(message, style=style)


fsutil.say_warning = lambda message: log(message, style="yellow")  # a file system without locks, said once


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class _Task:
    """Handle for one stage: ``advance(n, status=...)`` and ``update(completed=..., status=...)``."""

    def __init__(self, description: str, total: float | None, status: str, bar: Progress | None, lines: bool,
                 completed: float = 0.0, eta: bool = True):
        self.description, self.total, self.status, self.eta = description, total, status, eta
        self.completed = self._start_completed = completed  # a resumed stage starts part-way
        self._bar, self._id = bar, None
        self._lines = lines
        self._start = self._last = time.time()
        if bar is not None:
            self._id = bar.add_task(description, total=total, status=status, completed=completed)
        todo = f" ({total - completed:g} to do)" if total else ""
        self._emit(f"{description}: " + (f"continuing at {completed:g}/{total:g}{todo}" if completed and total
                                         else f"started{todo}"), force=True)

    def _emit(self, line: str, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last < interval():
            return
        self._last = now
        stamped = _stamp(line)
        _to_files(stamped)
        if self._lines:
            _print_line(stamped)

    def _line(self) -> str:
        elapsed = time.time() - self._start
        parts = [f"{self.description}: {self.completed:g}" + (f"/{self.total:g}" if self.total else "")]
        if self.total:
            parts.append(f"({100 * self.completed / self.total:.0f} %)")
        if self.status:
            parts.append(self.status)
        parts.append(f"elapsed {_clock(elapsed)}")
        done = self.completed - self._start_completed
        if self.eta and self.total and done > 0 and self.completed < self.total:
            parts.append(f"ETA {_clock(elapsed / done * (self.total - self.completed))}")
        return "  ".join(parts)

    def advance(self, n: float = 1, **fields) -> None:
        self.completed += n
        self.status = fields.get("status", self.status)
        if self._bar is not None:
            self._bar.update(self._id, advance=n, **fields)
        if time.time() - self._last >= interval():  # called once per training step: no line built otherwise
            self._emit(self._line())

    def heartbeat(self) -> None:
        """For a stage that waits on others (parallel workers): print its status line when the
        console has had no line at all for an interval, so a piped log is never silent for long."""
        if self._lines and time.time() - _last_line >= interval():
            self._emit(self._line(), force=True)

    def update(self, **fields) -> None:
        if "completed" in fields:
            self.completed = fields["completed"]
            self._start_completed = self.completed  # a resumed stage: the ETA counts from here
        self.status = fields.get("status", self.status)
        if self._bar is not None:
            self._bar.update(self._id, **fields)

    def finish(self) -> None:
        elapsed = time.time() - self._start
        short = bool(self.total) and self.completed < self.total  # a stage stopped early (Ctrl-C) did not get done
        self._emit(f"{self.description}: {'stopped at' if short else 'done'} {self.completed:g}" +
                   (f"/{self.total:g}" if self.total else "") +
                   f" in {_clock(elapsed)}" + (f"  {self.status}" if self.status else ""), force=True)


@contextlib.contextmanager
def progress(description: str, total: float | None, status: str = "", completed: float = 0.0,
             eta: bool = True) -> Iterator[_Task]:
    """A stage with a known (or unknown) amount of work and a free-form ``status`` (e.g. loss and PSNR);
    ``completed``: the work a resumed stage had done before. ``eta=False`` for a stage whose units
    take very different times (a network's fit beside an x265 encode): an estimate from the mean unit
    would be far off, so only the elapsed time is shown."""
    shown = "off" if _quiet else mode()
    if shown != "bars":
        task = _Task(description, total, status, None, lines=shown == "lines", completed=completed, eta=eta)
        yield task
        task.finish()
        return
    columns = [
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *([TimeRemainingColumn()] if eta else []),
        TextColumn("{task.fields[status]}", markup=False),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        task = _Task(description, total, status, bar, lines=False, completed=completed, eta=eta)
        yield task
        task.finish()

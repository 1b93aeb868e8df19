"""The one place library code reports progress and messages (rich, on stderr).

Library functions call :func:`log` and :func:`progress`; the CLI decides whether they are shown
(``set_quiet``), so ``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import contextlib
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

console = Console(stderr=True, highlight=False)
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def log(message: str) -> None:
    """Print one status line (suppressed in quiet mode)."""
    if not _quiet:
        console.print(message)


class _Task:
    """Handle for one progress bar: ``advance(n, **fields)`` and ``update(**fields)``."""

    def __init__(self, progress: Progress | None, task_id: int | None):
        self._progress, self._id = progress, task_id

    def advance(self, n: float = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._id, advance=n, **fields)

    def update(self, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._id, **fields)


@contextlib.contextmanager
def progress(description: str, total: float | None, status: str = "") -> Iterator[_Task]:
    """A progress bar with a free-form ``status`` field (e.g. loss and PSNR)."""
    if _quiet or not console.is_terminal and not _force_bars():
        yield _Task(None, None)
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        task_id = bar.add_task(description, total=total, status=status)
        yield _Task(bar, task_id)


def _force_bars() -> bool:
    import os

    return os.environ.get("VCM_PROGRESS") == "1"

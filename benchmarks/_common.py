"""What every benchmark script shares: a result table and one-line errors."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def run(main) -> None:
    """Call ``main()``; a user error (bad path, no GPU) ends with one line instead of a traceback."""
    from vcm.errors import VcmError

    try:
        main()
    except VcmError as err:
        raise SystemExit(f"error: {err}") from None

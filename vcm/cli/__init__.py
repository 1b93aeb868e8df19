"""The ``vcm`` command line. Commands only parse, call library functions and print."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="vcm",
    help="Video coding for machines with NeRV: fit, compress, decode, evaluate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Importing the command modules registers their commands on ``app``.
from vcm.cli import commands as _commands  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit code."""
    import warnings

    from rich.markup import escape

    from vcm.errors import VcmError
    from vcm.progress import console

    # CompressAI scripts functions with torch.jit.script, which torch now deprecates: not actionable here.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
    try:
        rv = app(args=argv, prog_name="vcm", standalone_mode=False)
    except VcmError as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True, highlight=False)
        sys.exit(1)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except typer.TyperException as err:  # usage errors: bad option, missing argument...
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        ctx = getattr(err, "ctx", None)
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        console.print(f"[red]error:[/red] {escape(message + where)}", soft_wrap=True, highlight=False)
        sys.exit(getattr(err, "exit_code", 2))
    sys.exit(rv if isinstance(rv, int) else 0)

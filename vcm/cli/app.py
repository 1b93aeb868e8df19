"""The Typer app, a leaf: the command modules register on it, and ``vcm.cli`` imports them."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="vcm",
    help="Video coding for machines with NeRV: fit, compress, decode, evaluate, report.\n\n"
         "Progress goes to stderr: bars in a terminal, timestamped lines in a pipe or a log file "
         "(VCM_PROGRESS=bars|lines|0; VCM_PROGRESS_INTERVAL=seconds between lines, default 10).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        from vcm import __version__
        from vcm.installed import unmet_requirements_line
        from vcm.provenance import git_commit

        commit = git_commit()
        print(f"vcm {__version__}" + (f" (commit {commit})" if commit else ""))
        unmet = unmet_requirements_line()
        if unmet:
            print(f"note: {unmet}", file=sys.stderr)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", metavar="", callback=_print_version, is_eager=True,
                                       help="Print vcm's version (and git commit) and exit.")) -> None:
    """The options every command shares (only --version)."""

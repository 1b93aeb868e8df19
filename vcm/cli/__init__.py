"""The ``vcm`` command line. Commands only parse, call library functions and print."""

from __future__ import annotations

import errno
import os
import sys

if os.name == "nt":  # file locks (fcntl) and POSIX signals: the first import below failed with a traceback about fcntl
    sys.exit("error: vcm needs Linux or macOS (file locks, POSIX signals); on Windows, run it in WSL (the Windows "
             "Subsystem for Linux)")

import typer  # noqa: E402

from vcm.cli.app import app  # noqa: E402,F401  (the Typer app; commands register on it)

# Importing the command modules registers their commands on ``app``.
from vcm.cli import commands as _commands  # noqa: E402,F401  (registers the commands)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit code."""
    import warnings

    from vcm import stopping
    # after an error, its likely cause: a package at a version vcm does not declare (a torch too old for vcm read
    # every checkpoint as damaged)
    from vcm.installed import unmet_requirements_line
    from vcm.progress import console

    # Ctrl-C is a KeyboardInterrupt at every stage, even when the shell started vcm with SIGINT ignored (a
    # background job of a script), and so is SIGTERM (`kill`, a scheduler's time limit): stages that can save
    # work install their own handler, and a parallel run passes the stop on to its workers.
    stopping.install()
    _tolerate_narrow_encodings()
    _threads_within_quota()
    try:
        os.getcwd()
    except FileNotFoundError:  # torch's libraries then failed to load, with a message about MKL
        _error(console, "the current folder no longer exists (removed or moved while the shell was in it); cd into "
                        "one that does")
        sys.exit(1)
    # CompressAI scripts functions with torch.jit.script, which torch now deprecates: not actionable here.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
    try:
        _run(argv, console)
    except SystemExit as done:
        if done.code == 1:  # an error (a usage error is 2, a stop 130)
            _note(console, unmet_requirements_line())
        raise
    except Exception:
        unmet = unmet_requirements_line()
        if not unmet:
            raise
        import traceback

        traceback.print_exc()  # the traceback first, the likely cause under it as its last line
        _note(console, unmet)
        sys.exit(1)


def _run(argv: list[str] | None, console) -> None:
    """The command ``argv`` names, its errors as one line → exits with its code."""
    from vcm.errors import VcmError

    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    empty = _empty_argument(args)
    if empty:
        _error(console, empty)
        sys.exit(2)
    try:
        if not {"--help", "--version"} & set(args):
            _check_limits()
        rv = app(args=argv, prog_name="vcm", standalone_mode=False)
    except VcmError as err:
        _error(console, str(err))
        sys.exit(1)
    except typer.Exit as ex:
        if ex.exit_code == 130:  # typer's form of a Ctrl-C that no stage handled itself
            _interrupted(console)
        sys.exit(ex.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        _interrupted(console)
        sys.exit(130)
    except (MemoryError, RuntimeError) as err:
        if str(err).startswith("Symlink loop from "):  # pathlib's resolve() before Python 3.13 (then an OSError)
            _error(console, f"a symbolic link that leads back to itself: {str(err).split(' from ', 1)[1]}")
            sys.exit(1)
        if not _out_of_memory(err):
            raise
        _error(console, f"out of memory: {_what_failed(err)}; free memory, or ask for less "
                        "(--params, --batch or --frames, where the command takes them)")
        sys.exit(1)
    except OSError as err:
        if err.errno not in _WHERE_IT_WRITES and not err.filename:
            raise
        _error(console, _os_error(err))
        sys.exit(1)
    except typer.TyperException as err:  # usage errors: bad option, missing argument...
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        ctx = getattr(err, "ctx", None)
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        _error(console, message + where)
        sys.exit(getattr(err, "exit_code", 2))
    if rv == 130:  # typer returns a Ctrl-C that no stage handled as exit code 130 (non-standalone mode)
        _interrupted(console)
    sys.exit(rv if isinstance(rv, int) else 0)


def _empty_argument(args: list[str]) -> str | None:
    """The error for an empty argument (``--out ""``, ``--out=``: a shell variable that was never set), else None:
    click read ``--out ""`` as the current folder, and a fit wrote its run among the user's files there."""
    for i, arg in enumerate(args):
        if arg == "" or arg.startswith("--") and arg.endswith("=") and "=" not in arg[:-1]:
            before = args[i - 1] if i else ""
            what = f"{arg} gives no value" if arg else f"an empty argument{' after ' + before if before else ''}"
            return f"{what} (a shell variable that was never set?); give a value, or leave it out"
    return None


def _note(console, line: str) -> None:
    if line:
        console.print(f"note: {line}", soft_wrap=True, markup=False, highlight=False)


def _check_limits() -> None:
    """The settings vcm reads from the environment (``VCM_MEMORY_BUDGET``, ``VCM_WORK_BUDGET``, ``VCM_PROGRESS``,
    ``VCM_PROGRESS_INTERVAL``), refused in one line before any work: read where a stream is decoded, a typo failed
    every CTC point after its network had trained."""
    from vcm.bitstream.budget import memory_budget
    from vcm.bitstream.decode_plan import work_budget
    from vcm.progress import check_settings

    memory_budget()
    work_budget()
    check_settings()


def _threads_within_quota() -> None:
    """Under a CPU quota (``docker --cpus 4``, a Kubernetes limit) torch would start a thread per core of the CPU
    set, and the threads beyond the quota only wait on each other: its threads are set to the cores the quota
    gives (read by torch when it is imported, after this), unless the user set them."""
    if "OMP_NUM_THREADS" in os.environ or "torch" in sys.modules:
        return
    from vcm.cpus import cores_in_set, usable_cores

    usable = usable_cores()
    if usable < cores_in_set():
        os.environ["OMP_NUM_THREADS"] = str(usable)


def _tolerate_narrow_encodings() -> None:
    """On a terminal or pipe whose encoding cannot write λ, ≥ or – (``PYTHONIOENCODING=ascii``, a Latin-1 locale),
    vcm's messages show ``?`` for them: each one ended the command in a UnicodeEncodeError. On a UTF-8 one, a file
    name whose bytes are not UTF-8 (a Latin-1 ``café.yuv``, which Python holds as ``caf\\udce9.yuv``) is written as its
    own bytes, as ``ls`` writes it and as Python's C locale does: under ``en_US.UTF-8`` the first table naming it
    ended the command in a UnicodeEncodeError (stderr escapes it by itself). JSON on stdout is ASCII either way
    (``json.dumps`` escapes the rest), and binary output goes to the buffer underneath."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        try:
            if codecs.lookup(stream.encoding).name != "utf-8":
                stream.reconfigure(errors="replace")
            elif stream is sys.stdout and stream.errors == "strict":
                stream.reconfigure(errors="surrogateescape")
        except (AttributeError, LookupError, TypeError, ValueError):  # a stream replaced by one without them
            pass


def _error(console, text: str) -> None:
    """The one line of a user error: ``error:`` in red, then ``text`` as it is (the console reads no markup)."""
    from rich.text import Text

    console.print(Text.assemble(("error:", "red"), " ", text), soft_wrap=True)


# Commands that pick up what a stopped run of theirs kept: run again, they continue where it stopped.
_CONTINUED_BY_RERUN = (("demo",), ("ctc", "run"), ("masks",))


def _interrupted(console) -> None:
    from vcm.stopping import cause

    args = sys.argv[1:]
    again = any(args[:len(c)] == list(c) for c in _CONTINUED_BY_RERUN)
    console.print(f"interrupted ({cause()}): stopped; finished results and saved checkpoints are kept, "
                  "nothing unfinished was recorded" + ("; the same command again continues from there" if again else ""),
                  style="yellow", soft_wrap=True)


# Errors of the place a command reads or writes, not of vcm: one line, what and where. Writes go to a temporary
# file renamed into place, so nothing the user had is lost; a stopped run continues from what it saved. Any other
# OSError that names a file is one line too (`vcm demo --out /proc/x`: a folder that cannot be made there).
_WHERE_IT_WRITES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def _os_error(err: OSError) -> str:
    where = f": {err.filename}" if err.filename else ""
    full = "; free space there, or write elsewhere: a stopped run continues from what it saved"
    permissions = "; check the permissions, or write elsewhere"
    too_large = ("; the file system, or a limit on file sizes (ulimit -f), takes no larger file there: write elsewhere"
                 ": a stopped run continues from what it saved")
    long_name = ("; name a shorter output (--out), or give the input a shorter name: vcm names what it writes after "
                 "it")
    hint = {errno.ENOSPC: full, errno.EDQUOT: full, errno.EFBIG: too_large, errno.EROFS: "; write elsewhere",
            errno.EACCES: permissions, errno.EPERM: permissions, errno.ENAMETOOLONG: long_name}.get(err.errno, "")
    return f"{err.strerror or type(err).__name__}{where}{hint}"


def _out_of_memory(err: BaseException) -> bool:
    """An allocation that failed: Python's MemoryError, torch's CUDA OutOfMemoryError or its CPU allocator's
    RuntimeError (which has no class of its own)."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    return "can't allocate memory" in str(err) or "out of memory" in str(err).lower()


def _what_failed(err: BaseException) -> str:
    """The allocation that failed, in a few words: its size where the allocator gave one."""
    import re

    from vcm.words import human

    text = str(err)
    asked = re.search(r"tried to allocate (\d+) bytes", text) or re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]iB)", text)
    if asked:
        size = asked.group(1)
        return f"could not allocate {human(int(size)) if size.isdigit() else size}"
    return (text.strip().splitlines() or [type(err).__name__])[0]

"""Atomic file output: write to a temporary sibling, then rename into place.

A crash or Ctrl-C never leaves a half-written checkpoint, bitstream or report that looks whole.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from vcm.errors import VcmError


_swept: set[tuple[Path, str]] = set()


NOT_SEEKABLE = "is not a regular file (a pipe, socket or device: vcm reads files it can seek in)"


def path_problem(path: str | os.PathLike, folder_ok: bool = False) -> str | None:
    """Why ``path`` cannot be read as an input file (or, with ``folder_ok``, a folder), as the end of a sentence that
    starts with the path, or None when it can. A named pipe given as an input was opened and waited on forever
    for a writer (vcm reads its inputs at offsets, so a pipe could never have served)."""
    path = Path(path)
    if path.is_dir():
        return None if folder_ok else "is a folder"
    if path.is_file():
        return None
    return NOT_SEEKABLE if path.exists() else "does not exist"


def not_regular(path: str | os.PathLike, kept: str = "") -> VcmError:
    """The one-line error for ``path``, which is not a regular file: one that vcm keeps (``kept`` names it) is to be
    removed."""
    where = f" where vcm keeps its {kept}; remove it" if kept else ""
    return VcmError(f"{path} is not a regular file (a pipe, socket or device){where}")


_OPEN_FLAGS = {"r": os.O_RDONLY, "r+": os.O_RDWR, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
               "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND, "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND}


def open_regular(path: str | os.PathLike, mode: str = "r", kept: str = "", **kwargs):
    """``open(path, mode, **kwargs)`` for a file that must be a regular one: a file vcm keeps for itself (a lock,
    a log: name it in ``kept``) or reads inside a folder. Anything else there (a named pipe, a socket, a device)
    is refused in one line: opening a pipe waited for its other end forever, and a lock in one could not be
    taken. The open itself never waits (``O_NONBLOCK``, cleared again on a regular file)."""
    try:
        fd = os.open(path, _OPEN_FLAGS[mode.replace("b", "")] | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as err:
        if err.errno == errno.ENXIO:  # a pipe opened for writing with no reader
            raise not_regular(path, kept) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise not_regular(path, kept)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def require_input(path: str | os.PathLike, what: str = "", folder_ok: bool = False, missing: str | None = None,
                  folder_hint: str = "") -> None:
    """Refuse in one line (``{what} {path} does not exist``, ``… is a folder{folder_hint}``, ``… is not a regular
    file …``) an input :func:`path_problem` finds fault with; ``missing``, where given, is the whole message for a
    path that does not exist (where the file is published, how to make one)."""
    problem = path_problem(path, folder_ok)
    if problem == "does not exist" and missing:
        raise VcmError(missing)
    if problem:
        raise VcmError(f"{what} {path} {problem}{folder_hint if problem == 'is a folder' else ''}".lstrip())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# What a temporary file's name adds after its output's: ".<pid>.<8 random characters>.tmp", a pid of up to 7 digits
TEMP_TAIL = 1 + 7 + 1 + 8 + 4


def temp_prefix(folder: Path, name: str) -> str:
    """``.<name>.``, the start of the names of the temporary files and folders that become ``folder/name``. A name
    that leaves the folder's file-name limit too little room for :data:`TEMP_TAIL` is cut, and the cut marked with a
    hash of the whole name: an output whose own name fits is then written too, where it failed with "File name too
    long" once its work was done (a rate–distortion stage of a clip named near the 255-byte limit)."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    whole = os.fsencode(name)
    if len(whole) + 2 + TEMP_TAIL <= limit:
        return f".{name}."
    import hashlib

    digest = hashlib.sha256(whole).hexdigest()[:16]
    return f".{os.fsdecode(whole[:max(0, limit - TEMP_TAIL - len(digest) - 3)])}~{digest}."


def sweep_stale(folder: Path, prefix: str) -> None:
    """Remove ``<prefix><pid>.*.tmp`` files (or folders) in ``folder`` left by processes that no longer run
    (a kill -9 skips every cleanup; the next write of the same output tidies up after it)."""
    try:
        candidates = list(folder.glob(f"{glob.escape(prefix)}*.tmp"))
    except OSError:
        return
    for tmp in candidates:
        rest = tmp.name[len(prefix):].split(".")  # [pid, random, "tmp"]; anything else is not ours
        if len(rest) == 3 and rest[0].isdigit() and not _alive(int(rest[0])):
            with contextlib.suppress(OSError):
                if tmp.is_dir() and not tmp.is_symlink():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()


RUN_LOCK = ".lock"


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, who: str = "vcm fit") -> Iterator[None]:
    """Hold a run folder's lock (``folder/.lock``, created with the folder) while a fit (or ``who``) writes it; a
    second one is refused at once in one line naming the holder's pid. The kernel releases the lock when its
    holder exits, killed or not, so a stale lock cannot block a later run. A folder this call created is
    removed again when the body fails before writing anything else into it (a refused fit leaves no folder)."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / RUN_LOCK
    with open_regular(lock, "a+", kept="run lock") as f:
        if not _acquire(f, lock):
            raise VcmError(_held(folder, lock_holder(folder), who))
        try:
            yield
        except BaseException:
            if created and [p.name for p in folder.iterdir()] == [RUN_LOCK]:
                lock.unlink()
                folder.rmdir()
            raise
        finally:
            flock(f, fcntl.LOCK_UN, lock)


# What flock raises on a file system without locks (Lustre mounted noflock, some FUSE, SMB and NFS mounts)
_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP}
_unlocked_said: set[Path] = set()


def say_warning(message: str) -> None:
    """Where this module's warnings go: stderr, until :mod:`vcm.progress` (which imports this module) is imported
    and sends them to its status lines and log files."""
    import sys

    print(message, file=sys.stderr)


def flock(f, operation: int, lock: Path) -> bool:
    """``fcntl.flock(f, operation)`` on the file ``lock``; False, with nothing locked, where its file system
    supports no locks: vcm then runs unguarded there, saying so once per folder (such a file system made every
    command that locks a traceback). A lock another process holds raises BlockingIOError, as flock does."""
    try:
        fcntl.flock(f, operation)
    except OSError as err:
        if err.errno not in _NO_LOCKS:  # BlockingIOError (EAGAIN) among them
            raise
        if lock.parent not in _unlocked_said and operation != fcntl.LOCK_UN:
            _unlocked_said.add(lock.parent)
            say_warning(f"{lock.parent}: its file system takes no file locks ({os.strerror(err.errno)}): a second "
                        f"vcm command writing there at the same time is not refused")
        return False
    return True


def _acquire(f, lock: Path) -> bool:
    """Take the exclusive lock of ``f`` (the file ``lock``) without waiting and write this process's pid into
    it; False when another process holds it."""
    try:
        flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB, lock)
    except BlockingIOError:
        return False
    f.seek(0)
    f.truncate()
    with naming_write_errors(lock):  # the first write of a command onto a full disk; unbuffered, or closing
        os.write(f.fileno(), f"{os.getpid()}\n".encode())  # the file would try it again and lose the name
    return True


def _output_lock_file(path: Path) -> Path:
    """The file of :func:`output_lock` for the output ``path``: ``.<name>.lock`` beside it."""
    return path.with_name(f".{path.name}.lock")


class Busy(VcmError):
    """An output another process is writing now (:func:`output_lock`); ``pid`` is that process's, 0 unknown."""

    def __init__(self, message: str, pid: int):
        super().__init__(message)
        self.pid = pid


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``path`` while a command writes it and the training states it keeps
    beside it (``vcm compress``): a second command writing the same output is refused at once, naming the
    first one's pid, instead of each continuing and overwriting the other's saved states. The kernel drops
    the lock when its holder exits; the file is removed when the holder is done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # an output may name a folder not made yet
    lock = _output_lock_file(path)
    with open_regular(lock, "a+", kept=f"lock for {path.name}") as f:
        if not _acquire(f, lock):
            holder = _pid_in(f)
            raise Busy(f"{path} is being written by another vcm command{pid_note(holder)}; "
                       "wait for it to end, or name another output", holder or 0)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
            flock(f, fcntl.LOCK_UN, lock)


def nothing_to_resume(folder: str | os.PathLike, checkpoint: str) -> str:
    """The refusal of ``--resume`` where ``folder`` holds no ``checkpoint``: a folder that a stopped run made (killed
    before its first checkpoint) is started by the same command without ``--resume``."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"nothing to resume: {folder} does not exist; name the run's folder with --out"
    return (f"nothing to resume: {folder / checkpoint} does not exist (a run stopped before its first checkpoint "
            f"saved none); the same command without --resume starts it")


def check_unlocked(folder: str | os.PathLike) -> None:
    """Refuse, in one line, a run folder whose :func:`run_lock` another process holds."""
    holder = lock_holder(folder)
    if holder is not None:
        raise VcmError(_held(folder, holder))


def _held(folder, holder: int | None, who: str = "vcm fit") -> str:
    return f"{folder} is being written by another {who}{pid_note(holder)}; wait for it to end, or name another folder with --out"


def pid_note(holder: int | None) -> str:
    """`` (pid N)`` for a lock holder whose pid is known, else ''."""
    return f" (pid {holder})" if holder else ""


def lock_holder(folder: str | os.PathLike) -> int | None:
    """The pid of the process holding ``folder``'s :func:`run_lock` (0 when it cannot be read), or None when
    no process holds it."""
    return _holder(Path(folder) / RUN_LOCK, "run lock")


def output_holder(path: str | os.PathLike) -> int | None:
    """The pid of the process holding the :func:`output_lock` of ``path`` (0 when it cannot be read), or None when
    no process holds it."""
    path = Path(path)
    return _holder(_output_lock_file(path), f"lock for {path.name}")


def _holder(lock: Path, kept: str) -> int | None:
    try:
        f = open_regular(lock, kept=kept)
    except OSError:
        return None
    with f:
        try:
            if flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB, lock):
                flock(f, fcntl.LOCK_UN, lock)
        except BlockingIOError:
            return _pid_in(f)
        return None


def _pid_in(f) -> int:
    """The pid a lock's holder wrote into the lock file ``f`` (0 when it cannot be read)."""
    f.seek(0)
    text = f.read().strip()
    return int(text) if text.isdigit() else 0


@contextlib.contextmanager
def scratch_dir(folder: str | os.PathLike, name: str = "scratch") -> Iterator[Path]:
    """A private working folder inside ``folder`` (``.<name>.<pid>.<random>.tmp``), removed on exit;
    ones left by killed processes are removed by the next use (the system temp folder would keep
    them forever after a kill -9)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = temp_prefix(folder, name)
    sweep_stale(folder, prefix)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", suffix=".tmp", dir=folder))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# The errors of a write that the place written to could not take: a full disk or quota, a file-size limit.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextlib.contextmanager
def naming_write_errors(path: str | os.PathLike) -> Iterator[None]:
    """A write error of :data:`WRITE_ERRNOS` raised in the body without a file name (``write()`` on a full disk
    names none) is raised again naming ``path``, the output being written: the user learns where space ran out."""
    try:
        yield
    except OSError as err:
        if err.errno in WRITE_ERRNOS and not err.filename:
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (``.<name>.<pid>.<random>.tmp``); on success it is
    renamed onto ``path``, on failure removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = temp_prefix(path.parent, path.name)
    if (path.parent, path.name) not in _swept:  # once per output and process: writes can be per frame
        _swept.add((path.parent, path.name))
        sweep_stale(path.parent, prefix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # a read-only folder, a full disk: name the output, not the temporary file
        raise OSError(err.errno, err.strerror, str(path)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the user's usual mode
    try:
        with naming_write_errors(path):
            yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    write_together([(path, data)])


def write_together(files: list[tuple[str | os.PathLike, bytes]]) -> None:
    """Write each ``(path, data)`` of ``files``, renaming none into place before all are written, then in the
    order given (the last one marks the set whole): a write that fails (a full disk, Ctrl-C) leaves every path as
    it was, never a new file beside an old one."""
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(atomic_path(path)) for path, _ in reversed(files)][::-1]
        for tmp, (path, data) in zip(temporaries, files):  # files[0] was entered last: the stack renames it first
            with naming_write_errors(path), open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    """``obj`` as vcm writes its JSON files: indented, keys in their order, a final newline."""
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes(path, json_bytes(obj))


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save, atomically and reproducibly: saved through a file object, the archive does not
    embed the temporary file's name, so identical objects give identical bytes. A write that fails (a full
    disk) is that OSError, naming ``path``."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            sink = _KeepsWriteError(f)
            try:
                torch.save(obj, sink)
            except RuntimeError:
                if sink.error is None:
                    raise
                raise sink.error from None
            f.flush()
            os.fsync(f.fileno())


class _KeepsWriteError:
    """The file object torch.save writes to, keeping the OSError a write raised: torch turns it into a
    RuntimeError of its own ("unexpected pos …") that no longer says the disk was full."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self._f.flush()


TRUST_CHECKPOINTS = "VCM_TRUST_CHECKPOINTS"


def load_torch_dict(path: str | os.PathLike, what: str, weights_only: bool = True) -> dict:
    """``torch.load`` on the CPU of a file that must hold a dict (a checkpoint); a file that cannot be
    read, or holds something else, is one clear error naming ``what`` it should have been.

    ``weights_only``: tensors, containers, numbers (numpy's too) and strings only; a file holding any other
    Python object is refused, since unpickling it would run code the file names (a checkpoint found beside a
    received stream is as untrusted as the stream), unless ``$VCM_TRUST_CHECKPOINTS`` is 1."""
    import pickle
    import re

    import torch

    trusted = not weights_only or os.environ.get(TRUST_CHECKPOINTS) == "1"
    try:
        with torch.serialization.safe_globals(_numpy_number_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as err:
        named = re.search(r"GLOBAL (\S+)|got <class '([^']+)'>", str(err))
        if named is None:
            raise VcmError(f"{path} cannot be read as {what} (UnpicklingError); the file is damaged") from None
        raise VcmError(f"{path} holds Python objects beyond tensors and numbers ({named.group(1) or named.group(2)}); "
                       f"loading it would run code the file names: if you trust its source, set "
                       f"{TRUST_CHECKPOINTS}=1 to load it anyway") from None
    except Exception as err:
        raise VcmError(f"{path} cannot be read as {what} ({type(err).__name__}); the file is damaged") from None
    if not isinstance(obj, dict):
        raise VcmError(f"{path} does not hold {what}; the file is damaged")
    return obj


def _numpy_number_globals() -> list:
    """What unpickling a numpy number needs (a loss or a PSNR saved as ``np.float64``): its scalar constructor
    and the dtype classes; not ``_reconstruct`` (arrays). The classes are those of each type code's dtype:
    before numpy 1.25 they are not in ``numpy.dtypes`` (a pickle names ``numpy.dtype[float64]``)."""
    import numpy as np

    scalar = getattr(getattr(np, "_core", None), "multiarray", None) or np.core.multiarray
    classes = []
    for code in np.typecodes["All"]:
        try:
            classes.append(type(np.dtype(code)))
        except TypeError:  # a code this numpy does not take
            continue
    return [scalar.scalar, np.dtype, *dict.fromkeys(classes)]


def point_symlink(link: str | os.PathLike, target: str | os.PathLike) -> None:
    """Make ``link`` a symlink to ``target`` (relative when possible), replacing it atomically."""
    link, target = Path(link), Path(target)
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        rel = os.path.relpath(target.resolve(), link.parent.resolve())
    except ValueError:
        rel = str(target.resolve())
    tmp = link.parent / f".{link.name}.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(rel, tmp)
    os.replace(tmp, link)

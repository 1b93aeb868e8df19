"""Where a result came from: vcm version, git commit, torch/CUDA, device, the exact command, when.

Every ``result.json``, compress report, run config and eval score carries ``provenance()`` so a
number found in a folder months later can be traced to the code and machine that made it.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout vcm runs from (``+dirty`` with local changes), or None."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if rev.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo``'s model name on Linux), or the architecture when nothing names it:
    the same seed trains other networks on another CPU, so a result says which one made it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def command_line() -> str:
    """The command as the user typed it (``vcm fit clip.yuv ...``), shell-quoted."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("vcm", "__main__.py"):
        argv[0] = "vcm"
    return shlex.join(argv)


def provenance(device=None) -> dict:
    """A JSON-able description of the code, libraries, machine and command behind a result (``cores``: those this
    process may use, :func:`vcm.cpus.usable_cores`)."""
    from vcm import __version__
    from vcm.cpus import usable_cores

    info = {"vcm": __version__, "commit": git_commit(), "python": platform.python_version(),
            "command": command_line(), "cwd": os.getcwd(), "host": platform.node(),
            "platform": platform.platform(terse=True), "cpu": cpu_model(), "cores": usable_cores(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if device is not None:
        from vcm.device import describe

        info["device"] = describe(device)
    return info


def file_fingerprint(path: str | os.PathLike) -> str:
    """sha256 (hex, 16 chars) of a file's bytes, or of a folder's file names and bytes. A file is read once per
    process while its inode, size and change times stay (a CTC plan names one checkpoint or mask file in many
    points, and the encoder asks again)."""
    from vcm.fsutil import require_input

    path = Path(path)
    require_input(path, folder_ok=True)  # a named pipe was read until a writer came (vcm eval --checkpoint)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode())
            _hash_into(h, f)
        return h.hexdigest()[:16]
    return digest_while_unchanged(path, _file_digest)


def digest_while_unchanged(path: str | os.PathLike, digest: Callable[[Path], str]) -> str:
    """``digest(path)``, computed once per process while the file's inode, size and change times stay: a file
    written since is read again."""
    path = Path(path)
    st = path.stat()
    return _cached_digest(digest, str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=256)
def _cached_digest(digest: Callable[[Path], str], path: str, *stat_key: int) -> str:
    """``stat_key`` only keys the cache."""
    return digest(Path(path))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    _hash_into(h, path)
    return h.hexdigest()[:16]


def _hash_into(h, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)

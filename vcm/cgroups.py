"""The Linux control groups (cgroups) whose limits apply to this process: its own cgroup's folder and every folder
above it, in a v2 (unified) hierarchy or under a v1 controller's mount.

A container with its own cgroup namespace sees its cgroup as the mount's root; a Slurm job (``--mem``, ``--cpus``) or
a systemd slice does not: its limit sits in a folder below the mount, named in ``/proc/self/cgroup``, and reading the
mount's root alone missed it.
"""

from __future__ import annotations

from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
MEMBERSHIP = Path("/proc/self/cgroup")


def own_folders(controller: str = "", root: Path | None = None, membership: Path | None = None) -> list[Path]:
    """This process's cgroup folder and each folder above it up to the hierarchy's mount, innermost first: the
    limits of every one of them apply. ``controller``: a v1 controller (``memory``, ``cpu``: mounted at
    ``root/controller``), or ``""`` for the v2 hierarchy (mounted at ``root``). ``root`` defaults to :data:`CGROUP`,
    ``membership`` (the process's ``/proc/self/cgroup``) to :data:`MEMBERSHIP`. Only the mount where that file names a
    folder this mount does not show (a path of the host's namespace, in a container that mounts its own cgroup at the
    root) or cannot be read."""
    root = CGROUP if root is None else root
    mount = root / controller if controller else root
    inner = mount / _paths(MEMBERSHIP if membership is None else membership).get(controller, "/").lstrip("/")
    if inner != mount and (mount not in inner.parents or not inner.is_dir()):
        return [mount]
    folders = [inner]
    while folders[-1] != mount:
        folders.append(folders[-1].parent)
    return folders


def _paths(membership: Path) -> dict[str, str]:
    """Controller → cgroup path, from lines ``id:controllers:path`` (v2's ``0::path`` under ``""``)."""
    try:
        text = membership.read_text()
    except (OSError, UnicodeDecodeError):
        return {}
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and ".." not in parts[2].split("/"):
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    return paths


def read_int(path: Path) -> int | None:
    """The integer a cgroup file holds, or None where it cannot be read (absent, ``max``, garbage)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def stat_value(path: Path, key: str) -> int | None:
    """The value of ``key`` in a ``memory.stat``-style file (``key value`` lines), or None."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return None

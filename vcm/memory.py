"""What memory this machine has free now (without torch: reading a clip asks it too)."""

from __future__ import annotations

from pathlib import Path

from vcm.cgroups import own_folders, read_int, stat_value
from vcm.errors import VcmError
from vcm.words import human

MEMINFO = Path("/proc/meminfo")
V1_NO_LIMIT = 1 << 60  # v1 writes "no limit" as the largest page-aligned 63-bit number


def free_host_bytes() -> int | None:
    """Bytes a new allocation can take in this machine's memory without swapping (page cache included), within the
    limits of this process's cgroups (:func:`cgroup_room`); None where it cannot be told (not Linux)."""
    found = []
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    room = cgroup_room()
    return min(found + ([] if room is None else [room]), default=None)


def cgroup_room(cgroup: Path | None = None, membership: Path | None = None) -> int | None:
    """Bytes this process's cgroups let it allocate before their memory limit (a container's, a Slurm job's
    ``--mem``): the least, over its own cgroup and those above it, of the limit less what the cgroup holds that the
    kernel cannot simply drop (its usage less its inactive page cache, as ``docker stats`` and Kubernetes' working
    set count it: a clip just read sits in the cache, and counted as used it refused loads that fit). None where no
    cgroup sets a limit or none can be read. ``cgroup``, ``membership``: as :func:`vcm.cgroups.own_folders` takes
    them."""
    rooms = []
    for folder in own_folders("", cgroup, membership):  # v2
        limit, used = read_int(folder / "memory.max"), read_int(folder / "memory.current")
        if limit is not None and used is not None:
            rooms.append(limit - used + (stat_value(folder / "memory.stat", "inactive_file") or 0))
    for folder in own_folders("memory", cgroup, membership):  # v1: no limit reads as about 2**63
        limit, used = read_int(folder / "memory.limit_in_bytes"), read_int(folder / "memory.usage_in_bytes")
        if limit is not None and used is not None and limit < V1_NO_LIMIT:
            cache = stat_value(folder / "memory.stat", "total_inactive_file")  # its own and its children's
            rooms.append(limit - used + (cache or 0))
    return max(0, min(rooms)) if rooms else None


def check_fits_in_memory(need: int, what: str, remedy: str) -> None:
    """Refuse, in one line, ``what`` taking ``need`` bytes when this machine has less free (``… take N GiB, and this
    machine has M GiB free; {remedy}``)."""
    free = free_host_bytes()
    if free is not None and need > free:
        raise VcmError(f"{what} take {human(need)}, and this machine has {human(free)} free; {remedy}")

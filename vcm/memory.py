"""What memory this machine has free now (without torch: reading a clip asks it too)."""

from __future__ import annotations

from pathlib import Path

from vcm.errors import VcmError
from vcm.words import human


def free_host_bytes() -> int | None:
    """Bytes a new allocation can take in this machine's memory without swapping (page cache included), within a
    container's own limit; None where it cannot be told (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's own limit (cgroup v2), which /proc/meminfo does not show
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_fits_in_memory(need: int, what: str, remedy: str) -> None:
    """Refuse, in one line, ``what`` taking ``need`` bytes when this machine has less free (``… take N GiB, and this
    machine has M GiB free; {remedy}``)."""
    free = free_host_bytes()
    if free is not None and need > free:
        raise VcmError(f"{what} take {human(need)}, and this machine has {human(free)} free; {remedy}")
